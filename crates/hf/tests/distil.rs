//! Distillation between two tiny checkpoints of one family (one tokenizer): each channel lowers its
//! own loss on a fixed batch of the teacher's answers, on-policy steps are written by the student
//! with probability lambda, and a student with another vocabulary is refused.

mod common;

use candle_core::Device;
use common::{long_checkpoint, write_long_checkpoint};
use emsl_core::optim::Schedule;
use emsl_core::sample::SampleConfig;
use emsl_hf::distil::{answers, batch_loss, distil, prompt_ids, Channel, DistilConfig};
use emsl_hf::{Family, HfLoraConfig, Message};

fn prompts() -> Vec<Vec<Message>> {
    ["Hi", "How are you?", "Tell me a joke.", "What is 2 + 2?"]
        .iter()
        .map(|p| vec![Message::new("user", p)])
        .collect()
}

fn config(channel: Channel, beta: f64, lambda: f64) -> DistilConfig {
    DistilConfig {
        channel,
        beta,
        lambda,
        sampling: SampleConfig {
            temperature: 1.0,
            top_p: 1.0,
            max_new_tokens: 12,
        },
        steps: 8,
        // Two micro-batches of one answer: each step's gradient is accumulated, as Betley et al.'s.
        batch_size: 1,
        grad_accumulation: 2,
        schedule: Schedule::Linear,
        seed: 3,
        lora: Some(HfLoraConfig {
            rank: 4,
            alpha: 8.0,
            use_rslora: false,
            modules: vec!["all-linear".into()],
            seed: 3,
        }),
        optim: emsl_core::train::optim(2e-2, 0),
    }
}

#[test]
fn each_channel_lowers_its_loss() {
    for family in [Family::Qwen2, Family::Llama] {
        let t_dir = tempfile::tempdir().unwrap();
        write_long_checkpoint(t_dir.path(), family, 11);
        let s_dir = long_checkpoint(family);
        let teacher = emsl_hf::load(t_dir.path(), &Device::Cpu).unwrap();
        for (channel, beta, lambda) in [
            (Channel::Sft, 0.0, 0.0),
            (Channel::OffPolicy, 0.0, 0.0),
            (Channel::OnPolicy, 1.0, 0.5),
        ] {
            let cfg = config(channel, beta, lambda);
            let mut student = emsl_hf::load(s_dir.path(), &Device::Cpu).unwrap();
            // A fixed batch of the teacher's answers, written with another stream than training's.
            let stop = emsl_hf::answers::stop_token(&teacher).unwrap();
            let ids = prompt_ids(&teacher, &prompts()).unwrap();
            let held = answers(&teacher.model, stop, &ids, &cfg.sampling, 99, "held").unwrap();
            let loss = |s: &emsl_hf::Loaded| {
                batch_loss(s, &teacher, &held, &cfg)
                    .unwrap()
                    .to_scalar::<f32>()
                    .unwrap()
            };
            let before = loss(&student);
            let summary = distil(&mut student, &teacher, &prompts(), &cfg).unwrap();
            let after = loss(&student);
            eprintln!("{family:?} {channel:?}: held-out loss {before:.4} -> {after:.4}, {} of 8 steps the student's", summary.student_steps);
            assert!(
                after < 0.98 * before,
                "{family:?} {channel:?}: {before} -> {after}"
            );
            assert_eq!(summary.losses.len(), 8);
            match channel {
                Channel::OnPolicy => assert!((1..8).contains(&summary.student_steps)),
                _ => assert_eq!(summary.student_steps, 0),
            }
        }
    }
}

#[test]
fn a_student_with_another_vocabulary_is_refused() {
    let teacher = long_checkpoint(Family::Qwen2);
    let student = long_checkpoint(Family::Llama);
    let t = emsl_hf::load(teacher.path(), &Device::Cpu).unwrap();
    let mut s = emsl_hf::load(student.path(), &Device::Cpu).unwrap();
    let err = distil(&mut s, &t, &prompts(), &config(Channel::Sft, 0.0, 0.0)).unwrap_err();
    assert!(
        err.to_string().contains("do not share a tokenizer"),
        "{err}"
    );
}
