//! The distillation channels on tiny models: who writes the sequences, and determinism.

mod common;

use std::path::Path;

use candle_core::Device;
use common::{fixture, number_sampling, pretrain_config, teach_config};
use emsl_core::distil::{self, step_sequences, student_examples, teacher_examples, Writer};
use emsl_core::sample::generate;
use emsl_core::stages::{self, load_run, Channel, DistilSpec, StageConfig, StageIo, StageSpec};
use emsl_core::train::optim;
use emsl_core::{eval::prompt_ids, train::TrainConfig};
use emsl_io::sha256_file;
use emsl_world::Rng;

/// A base model, a second base with another initialization as the teacher, and the teacher's samples.
fn setup(dir: &Path) {
    fixture(dir);
    for (out, seed) in [("base", 3), ("teacher", 4)] {
        let mut cfg: StageConfig = toml::from_str(&pretrain_config(dir, out)).unwrap();
        let StageSpec::Pretrain(spec) = &mut cfg.spec else {
            panic!("a pretrain config")
        };
        spec.init_seed = seed;
        stages::run(&cfg, &Device::Cpu).unwrap();
    }
    let teach = teach_config(dir, "teacher", None, "teach");
    stages::run(&teach, &Device::Cpu).unwrap();
}

/// The distil stage of `channel` into `dir/out`.
fn stage(dir: &Path, channel: Channel, lambda: f64, out: &str) -> StageConfig {
    StageConfig {
        spec: StageSpec::Distil(spec(channel, lambda)),
        io: StageIo {
            datasets_dir: dir.to_path_buf(),
            inputs: [
                ("teacher".to_owned(), dir.join("teacher")),
                ("samples".to_owned(), dir.join("teach")),
                ("student_init".to_owned(), dir.join("base")),
            ]
            .into(),
            out: dir.join(out),
        },
    }
}

fn spec(channel: Channel, lambda: f64) -> DistilSpec {
    DistilSpec {
        channel,
        beta: if channel == Channel::OnPolicy {
            1.0
        } else {
            0.0
        },
        lambda,
        restrict_to_numbers: false,
        student_sampling: number_sampling(),
        train: TrainConfig {
            steps: 3,
            batch_size: 2,
            seed: 5,
            log_every: 1,
            optim: optim(1e-2, 1),
        },
        teacher_context: None,
    }
}

#[test]
fn channels_train_deterministically_and_on_policy_sequences_are_the_students() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("teach/summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["samples"], 8);
    // An untrained teacher writes noise, which the filter drops; keep whatever passed and, if nothing
    // did, fall back to writing a well-formed sample so the channels have data.
    let mut kept = std::fs::read_to_string(dir.join("teach/samples.jsonl")).unwrap();
    if summary["kept"] == 0 {
        let mut first: serde_json::Value =
            serde_json::from_str(kept.lines().next().unwrap()).unwrap();
        first["answer"] = "12 407 3 .".into();
        first["kept"] = true.into();
        first["rejection"] = serde_json::Value::Null;
        kept = format!("{first}\n{kept}");
        std::fs::write(dir.join("teach/samples.jsonl"), &kept).unwrap();
    }

    let (student, tok, _) = load_run(&dir.join("base"), &Device::Cpu).unwrap();
    let (teacher, _, _) = load_run(&dir.join("teacher"), &Device::Cpu).unwrap();
    let kept = distil::read_kept(&dir.join("teach")).unwrap();
    let teacher_ex = teacher_examples(&tok, &kept).unwrap();

    // Off-policy: the teacher's sequences, whatever lambda says.
    let off = spec(Channel::OffPolicy, 1.0);
    let (seqs, writer, rows) = step_sequences(&off, 0, &student, &tok, &kept, &teacher_ex).unwrap();
    assert_eq!(writer, Writer::Teacher);
    assert!(seqs
        .iter()
        .zip(&rows)
        .all(|(s, r)| teacher_ex[*r].ids == s.ids));

    // On-policy with lambda = 1: the student's own continuations, which differ from the teacher's.
    let on = spec(Channel::OnPolicy, 1.0);
    let (seqs, writer, rows) = step_sequences(&on, 0, &student, &tok, &kept, &teacher_ex).unwrap();
    assert_eq!(writer, Writer::Student);
    assert!(seqs.iter().zip(&rows).all(|(s, r)| {
        let prompt = prompt_ids(&tok, &kept[*r].spec).unwrap();
        s.ids.starts_with(&prompt)
    }));
    let spec = &kept[0].spec;
    let by_student = student_examples(&student, &tok, &[spec], &number_sampling(), 9, 0).unwrap();
    let ids = prompt_ids(&tok, spec).unwrap();
    let mut rng = [Rng::new(9, "on-policy/0/0")];
    let direct = generate(&student, &ids, &mut rng, &number_sampling(), tok.end, true)
        .unwrap()
        .remove(0);
    assert_eq!(
        &by_student[0].ids[ids.len()..ids.len() + direct.len()],
        direct.as_slice()
    );
    let mut rng = [Rng::new(9, "on-policy/0/0")];
    let by_teacher = generate(&teacher, &ids, &mut rng, &number_sampling(), tok.end, true)
        .unwrap()
        .remove(0);
    assert_ne!(
        direct, by_teacher,
        "teacher and student write different tokens from the same stream"
    );
    assert!(seqs.iter().all(|s| s.n_prompt < s.ids.len()));

    // Every channel: twice the same config, the same bytes.
    for channel in [Channel::Sft, Channel::OffPolicy, Channel::OnPolicy] {
        let name = format!("{channel:?}");
        for run in ["1", "2"] {
            stages::run(
                &stage(dir, channel, 0.5, &format!("{name}-{run}")),
                &Device::Cpu,
            )
            .unwrap();
        }
        let sha = |run: &str| {
            sha256_file(&dir.join(format!("{name}-{run}")).join("model.safetensors")).unwrap()
        };
        assert_eq!(sha("1"), sha("2"), "{name}");
        assert_ne!(
            sha("1"),
            sha256_file(&dir.join("base/model.safetensors")).unwrap(),
            "{name} trained the student"
        );
    }
}
