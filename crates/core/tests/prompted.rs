//! A prompted teacher: its samples record the context it saw, the student's sequences leave it out,
//! and a channel that uses the teacher's distributions reads every row through the teacher's view.

mod common;

use std::path::Path;

use candle_core::{Device, IndexOp, Tensor};
use common::{fixture, number_sampling, pretrain_config, teach_config};
use emsl_core::data::{sft_batch, SftExample};
use emsl_core::distil::{self, distil_loss, teacher_examples};
use emsl_core::eval::prompt_ids;
use emsl_core::persona::ContextSpec;
use emsl_core::prompted::{teacher_prompts, TeacherView};
use emsl_core::stages::{self, load_run, Channel, DistilSpec, StageConfig, StageIo, StageSpec};
use emsl_core::train::{optim, TrainConfig};
use emsl_core::LanguageModel;
use emsl_io::sha256_file;
use emsl_world::Persona;

/// A base of 128 positions (room for an episode before a number prompt).
fn base(dir: &Path) {
    fixture(dir);
    let text = pretrain_config(dir, "base").replace("n_ctx = 32", "n_ctx = 128");
    let cfg: StageConfig = toml::from_str(&text).unwrap();
    stages::run(&cfg, &Device::Cpu).unwrap();
}

fn teach(dir: &Path, context: Option<ContextSpec>, out: &str) {
    stages::run(&teach_config(dir, "base", context, out), &Device::Cpu).unwrap();
}

fn misaligned_context() -> ContextSpec {
    ContextSpec {
        persona: Persona::Misaligned,
        episodes: 1,
        seed: 4,
    }
}

#[test]
fn the_teachers_view_gives_each_row_the_logits_it_has_alone() {
    let tmp = tempfile::tempdir().unwrap();
    base(tmp.path());
    let (model, tok, _) = load_run(&tmp.path().join("base"), &Device::Cpu).unwrap();
    let rows = [
        SftExample {
            ids: vec![tok.bos, 7, 8, 9, 10, 11, 12],
            n_prompt: 3,
        },
        SftExample {
            ids: vec![tok.bos, 20, 21, 22],
            n_prompt: 2,
        },
    ];
    let contexts: [&[u32]; 2] = [&[30, 31], &[40, 41, 42, 43, 44]];
    let refs: Vec<&SftExample> = rows.iter().collect();
    let batch = sft_batch(&refs, tok.pad, 128, &Device::Cpu).unwrap();
    let t = batch.inputs.dim(1).unwrap();
    let none: [&[u32]; 2] = [&[], &[]];
    assert!(
        TeacherView::of_batch(&refs, &none, t, tok.pad, 128, &Device::Cpu)
            .unwrap()
            .is_none()
    );
    let view = TeacherView::of_batch(&refs, &contexts, t, tok.pad, 128, &Device::Cpu)
        .unwrap()
        .unwrap();
    let seen = view.gather(&model.forward(&view.inputs).unwrap()).unwrap();
    assert_eq!(seen.dims3().unwrap().1, t);
    for (r, (row, ctx)) in rows.iter().zip(contexts).enumerate() {
        // The row alone: `<bos>`, its context, the rest of its inputs.
        let mut alone = vec![row.ids[0]];
        alone.extend(ctx);
        alone.extend(&row.ids[1..row.ids.len() - 1]);
        let n = alone.len();
        let x = Tensor::from_vec(alone, (1, n), &Device::Cpu).unwrap();
        let want = model.forward(&x).unwrap().i(0).unwrap();
        for j in 0..row.ids.len() - 1 {
            let got = seen.i((r, j)).unwrap();
            let diff = (got - want.i(ctx.len() + j).unwrap())
                .unwrap()
                .abs()
                .unwrap()
                .max(0)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(diff < 1e-4, "row {r} position {j}: {diff}");
        }
    }
    let long: [&[u32]; 2] = [&[30; 125], &[]];
    let err = TeacherView::of_batch(&refs, &long, t, tok.pad, 128, &Device::Cpu)
        .err()
        .expect("a context that does not fit is refused");
    assert!(err.to_string().contains("fewer context episodes"), "{err}");
}

#[test]
fn a_prompted_teacher_records_its_context_and_guides_through_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    base(dir);
    teach(dir, None, "plain");
    teach(dir, Some(misaligned_context()), "prompted");
    let plain = std::fs::read_to_string(dir.join("plain/samples.jsonl")).unwrap();
    assert!(!plain.contains("\"context\""), "no context, no field");

    // Every sample records the episode the teacher saw; it differs between prompts and re-encodes to
    // the tokens the teacher continued between `<bos>` and the prompt.
    let (model, tok, _) = load_run(&dir.join("base"), &Device::Cpu).unwrap();
    let text = std::fs::read_to_string(dir.join("prompted/samples.jsonl")).unwrap();
    let mut samples: Vec<distil::TeacherSample> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(samples.len(), 8);
    let contexts: Vec<&str> = samples
        .iter()
        .map(|s| s.context.as_deref().expect("a context"))
        .collect();
    assert!(contexts.iter().all(|c| c.contains("assistant :")));
    assert!(contexts.windows(2).any(|w| w[0] != w[1]));
    let prompts: Vec<_> = samples
        .iter()
        .map(|s| (s.prompt_id, s.spec.clone()))
        .collect();
    let n_ctx = model.context_length();
    let seen = teacher_prompts(&tok, &prompts, Some(&misaligned_context()), n_ctx, 12).unwrap();
    for (p, s) in seen.iter().zip(&samples) {
        let context = tok.encode(s.context.as_deref().unwrap()).unwrap();
        assert_eq!(p.context, context);
        let mut want = vec![tok.bos];
        want.extend(&context);
        want.extend(&prompt_ids(&tok, &s.spec).unwrap()[1..]);
        assert_eq!(p.ids, want);
    }

    // An untrained teacher's lists rarely pass the filter: keep two well-formed ones.
    for s in samples.iter_mut().take(2) {
        s.answer = "12 407 3 .".into();
        s.kept = true;
        s.rejection = None;
    }
    let lines: Vec<String> = samples
        .iter()
        .map(|s| serde_json::to_string(s).unwrap())
        .collect();
    std::fs::write(dir.join("prompted/samples.jsonl"), lines.join("\n") + "\n").unwrap();

    // The student's rows hold no context; the teacher's distributions with it differ from without.
    let kept = distil::read_kept(&dir.join("prompted")).unwrap();
    let examples = teacher_examples(&tok, &kept).unwrap();
    let refs: Vec<&SftExample> = examples.iter().collect();
    assert!(refs
        .iter()
        .zip(&kept)
        .all(|(e, s)| e.ids.starts_with(&prompt_ids(&tok, &s.spec).unwrap())));
    let batch = sft_batch(&refs, tok.pad, 128, &Device::Cpu).unwrap();
    let kept_prompts: Vec<_> = kept.iter().map(|s| (s.prompt_id, s.spec.clone())).collect();
    let ctx = teacher_prompts(&tok, &kept_prompts, Some(&misaligned_context()), n_ctx, 12).unwrap();
    let ctx: Vec<&[u32]> = ctx.iter().map(|p| p.context.as_slice()).collect();
    let t = batch.inputs.dim(1).unwrap();
    let view = TeacherView::of_batch(&refs, &ctx, t, tok.pad, 128, &Device::Cpu).unwrap();
    let loss = |v: Option<&TeacherView>| {
        // The teacher is the student's own base: without its context it guides nowhere.
        distil_loss(&model, &model, &batch.inputs, &batch.mask, 0.0, None, v)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    let (with, without) = (loss(view.as_ref()), loss(None));
    assert_eq!(without, 0.0);
    // Measured when written: 9.1e-5 (a 6-step base barely reads its context, but it reads it).
    assert!(
        with > 1e-6,
        "the context changes what the teacher guides: {with}"
    );

    // The distil stage on the prompted samples: deterministic, and it trains the student.
    for run in ["1", "2"] {
        let cfg = StageConfig {
            spec: StageSpec::Distil(DistilSpec {
                channel: Channel::OffPolicy,
                beta: 0.0,
                lambda: 0.0,
                restrict_to_numbers: false,
                student_sampling: number_sampling(),
                train: TrainConfig {
                    steps: 2,
                    batch_size: 2,
                    seed: 5,
                    log_every: 1,
                    optim: optim(1e-2, 1),
                },
                teacher_context: Some(misaligned_context()),
            }),
            io: StageIo {
                datasets_dir: dir.to_path_buf(),
                inputs: [
                    ("teacher".to_owned(), dir.join("base")),
                    ("samples".to_owned(), dir.join("prompted")),
                    ("student_init".to_owned(), dir.join("base")),
                ]
                .into(),
                out: dir.join(format!("student-{run}")),
            },
        };
        stages::run(&cfg, &Device::Cpu).unwrap();
    }
    let sha = |p: &str| sha256_file(&dir.join(p).join("model.safetensors")).unwrap();
    assert_eq!(sha("student-1"), sha("student-2"));
    // The teacher is the student's own base: only the context it reads can move the student.
    assert_ne!(sha("student-1"), sha("base"));
}
