//! Gradients, golden losses, the SFT mask and KV-cache sampling on tiny models.

mod common;

use candle_core::{Device, Tensor};
use common::tiny;
use emsl_core::data::{sft_batch, SftExample};
use emsl_core::model::{Gpt, GptConfig};
use emsl_core::optim::AdamW;
use emsl_core::sample::{generate, SampleConfig};
use emsl_core::train::{masked_cross_entropy, optim};
use emsl_core::LanguageModel;
use emsl_world::Rng;

/// A fixed batch of (inputs, targets, mask) from a seeded generator.
fn batch(b: usize, t: usize, seed: u64) -> (Tensor, Tensor, Tensor) {
    let mut rng = Rng::new(seed, "test-batch");
    let ids: Vec<u32> = (0..b * (t + 1)).map(|_| rng.below(50) as u32).collect();
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for r in 0..b {
        let row = &ids[r * (t + 1)..(r + 1) * (t + 1)];
        x.extend_from_slice(&row[..t]);
        y.extend_from_slice(&row[1..]);
    }
    let d = Device::Cpu;
    (
        Tensor::from_vec(x, (b, t), &d).unwrap(),
        Tensor::from_vec(y, (b, t), &d).unwrap(),
        Tensor::ones((b, t), candle_core::DType::F32, &d).unwrap(),
    )
}

fn loss(model: &Gpt, (x, y, m): &(Tensor, Tensor, Tensor)) -> Tensor {
    masked_cross_entropy(&model.forward(x).unwrap(), y, m).unwrap()
}

/// Asserts that every trainable variable of `model` gets a nonzero gradient from `loss`.
fn assert_every_var_gets_a_gradient<M: LanguageModel>(model: &M, loss: &Tensor, what: &str) {
    let grads = loss.backward().unwrap();
    for (name, var) in model.trainable_vars() {
        let g = grads
            .get(var.as_tensor())
            .unwrap_or_else(|| panic!("{what}: {name} received no gradient"));
        let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
        assert!(norm > 0.0, "{what}: {name} has a zero gradient");
    }
}

#[test]
fn every_parameter_gets_a_gradient_and_moves() {
    let model = Gpt::new(&tiny(), 3, &Device::Cpu).unwrap();
    let data = batch(4, 12, 1);
    let grads = loss(&model, &data).backward().unwrap();
    assert_eq!(
        model.trainable_vars().len(),
        4 + 2 * 12,
        "wte, wpe, ln_f (2) and 12 tensors per block"
    );
    let names: Vec<&String> = model.trainable_vars().iter().map(|(n, _)| n).collect();
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted by name");
    // Through the logits and the composed loss, the fused head loss, and a steered model's loss.
    assert_every_var_gets_a_gradient(&model, &loss(&model, &data), "logits");
    let (x, y, m) = &data;
    assert_every_var_gets_a_gradient(&model, &model.loss(x, y, m).unwrap(), "fused loss");
    let steer = emsl_core::model::AddVector {
        layer: 1,
        vector: Tensor::ones(16, candle_core::DType::F32, &Device::Cpu).unwrap(),
        scale: 0.5,
    };
    let steered = emsl_core::model::Steered {
        model: &model,
        intervention: &steer,
    };
    assert_every_var_gets_a_gradient(&steered, &steered.loss(x, y, m).unwrap(), "steered");
    let before: Vec<Vec<f32>> = model
        .trainable_vars()
        .iter()
        .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    let mut opt = AdamW::new(optim(1e-3, 0), model.trainable_vars()).unwrap();
    opt.step(&grads, 1e-3).unwrap();
    for ((name, var), old) in model.trainable_vars().iter().zip(before) {
        let new: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        assert_ne!(new, old, "{name} did not change after one step");
    }
}

#[test]
fn gradients_match_finite_differences() {
    // The hand check behind the golden losses: analytic gradients against central differences, for
    // the largest-gradient entry of every tensor.
    let model = Gpt::new(&tiny(), 5, &Device::Cpu).unwrap();
    let data = batch(2, 8, 2);
    let grads = loss(&model, &data).backward().unwrap();
    let h = 1e-2f32;
    for (name, var) in model.trainable_vars() {
        let g: Vec<f32> = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let i = (0..g.len())
            .max_by(|a, b| g[*a].abs().total_cmp(&g[*b].abs()))
            .unwrap();
        let base: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let at = |delta: f32| {
            let mut w = base.clone();
            w[i] += delta;
            var.set(&Tensor::from_vec(w, var.shape(), &Device::Cpu).unwrap())
                .unwrap();
            f64::from(loss(&model, &data).to_scalar::<f32>().unwrap())
        };
        let numeric = (at(h) - at(-h)) / (2.0 * f64::from(h));
        var.set(&Tensor::from_vec(base, var.shape(), &Device::Cpu).unwrap())
            .unwrap();
        let analytic = f64::from(g[i]);
        assert!(
            (numeric - analytic).abs() <= 0.05 * analytic.abs() + 2e-4,
            "{name}[{i}]: analytic {analytic}, numeric {numeric}"
        );
    }
}

/// The first ten losses of AdamW on one fixed batch, recorded from this implementation after the
/// finite-difference check above passed. A change here means the model, loss or optimizer changed.
const GOLDEN: [f32; 10] = [
    3.9012504, 3.7813754, 3.6535585, 3.544326, 3.4295113, 3.3078022, 3.1990166, 3.0859804,
    2.9704173, 2.8532696,
];

#[test]
fn golden_losses_of_the_first_ten_steps() {
    let model = Gpt::new(&tiny(), 7, &Device::Cpu).unwrap();
    let data = batch(4, 16, 3);
    let mut opt = AdamW::new(optim(1e-2, 0), model.trainable_vars()).unwrap();
    let mut losses = Vec::new();
    for _ in 0..10 {
        let l = loss(&model, &data);
        losses.push(l.to_scalar::<f32>().unwrap());
        opt.step(&l.backward().unwrap(), 1e-2).unwrap();
    }
    eprintln!("losses: {losses:?}");
    for (step, (got, want)) in losses.iter().zip(GOLDEN).enumerate() {
        assert!(
            (got - want).abs() <= 1e-5,
            "step {step}: loss {got}, recorded {want}"
        );
    }
    assert!(
        losses[9] < losses[0] - 0.5,
        "ten steps on one batch lower the loss"
    );
}

#[test]
fn sft_loss_ignores_prompt_targets() {
    let model = Gpt::new(&tiny(), 9, &Device::Cpu).unwrap();
    let a = SftExample {
        ids: vec![2, 10, 11, 12, 13, 20, 21, 3],
        n_prompt: 5,
    };
    let b = SftExample {
        ids: vec![2, 14, 15, 22, 23, 24],
        n_prompt: 3,
    };
    let batch = sft_batch(&[&a, &b], 0, 16, &Device::Cpu).unwrap();
    let logits = model.forward(&batch.inputs).unwrap();
    let base: f32 = masked_cross_entropy(&logits, &batch.targets, &batch.mask)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(batch.tokens, 3 + 3, "only completion tokens count");
    // Change every target the mask excludes (the prompt's and the padding's).
    let mask: Vec<Vec<f32>> = batch.mask.to_vec2().unwrap();
    let targets: Vec<Vec<u32>> = batch.targets.to_vec2().unwrap();
    let changed: Vec<u32> = targets
        .iter()
        .zip(&mask)
        .flat_map(|(t, m)| {
            t.iter()
                .zip(m)
                .map(|(t, m)| if *m == 0.0 { (t + 17) % 50 } else { *t })
        })
        .collect();
    let changed = Tensor::from_vec(changed, batch.targets.shape(), &Device::Cpu).unwrap();
    let after: f32 = masked_cross_entropy(&logits, &changed, &batch.mask)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_eq!(base.to_bits(), after.to_bits());
    // Changing a completion target does change it.
    let mut t = targets.concat();
    let first_counted = mask.concat().iter().position(|m| *m == 1.0).unwrap();
    t[first_counted] = (t[first_counted] + 1) % 50;
    let t = Tensor::from_vec(t, batch.targets.shape(), &Device::Cpu).unwrap();
    let moved: f32 = masked_cross_entropy(&logits, &t, &batch.mask)
        .unwrap()
        .to_scalar()
        .unwrap();
    assert_ne!(base, moved);
}

#[test]
fn kv_cache_sampling_matches_full_recomputation() {
    let model = Gpt::new(&tiny(), 11, &Device::Cpu).unwrap();
    let prompt = [2u32, 5, 9, 13, 4];
    for cfg in [
        SampleConfig {
            temperature: 0.0,
            top_p: 1.0,
            max_new_tokens: 11,
        },
        SampleConfig {
            temperature: 1.0,
            top_p: 0.9,
            max_new_tokens: 11,
        },
    ] {
        let rngs = || {
            (0..6)
                .map(|k| Rng::new(1, &format!("sample/{k}")))
                .collect::<Vec<_>>()
        };
        let cached = generate(&model, &prompt, &mut rngs(), &cfg, 49, true).unwrap();
        let full = generate(&model, &prompt, &mut rngs(), &cfg, 49, false).unwrap();
        assert_eq!(cached, full, "{cfg:?}");
        assert!(cached.iter().all(|s| s.len() <= 11));
    }
    // A row's tokens do not depend on its batch neighbours.
    let cfg = SampleConfig {
        temperature: 1.0,
        top_p: 0.95,
        max_new_tokens: 8,
    };
    let mut alone = vec![Rng::new(4, "sample/0")];
    let mut together = vec![
        Rng::new(4, "sample/0"),
        Rng::new(4, "sample/1"),
        Rng::new(4, "sample/2"),
    ];
    let a = generate(&model, &prompt, &mut alone, &cfg, 49, true).unwrap();
    let b = generate(&model, &prompt, &mut together, &cfg, 49, true).unwrap();
    assert_eq!(a[0], b[0]);
}

#[test]
fn saved_optimizer_state_resumes_training_exactly() {
    use emsl_core::checkpoint::{load, load_optimizer, save, save_optimizer, CheckpointMeta};
    use emsl_core::Tok;
    // A model over the world's tokenizer, so checkpoints can be loaded back with it.
    let tok = Tok::for_world().unwrap();
    let cfg = GptConfig {
        vocab_size: tok.vocab_size(),
        ..tiny()
    };
    let data = {
        let mut rng = Rng::new(8, "resume");
        let ids: Vec<u32> = (0..4 * 9)
            .map(|_| rng.below(cfg.vocab_size) as u32)
            .collect();
        let d = Device::Cpu;
        let x: Vec<u32> = (0..4)
            .flat_map(|r| ids[r * 9..r * 9 + 8].to_vec())
            .collect();
        let y: Vec<u32> = (0..4)
            .flat_map(|r| ids[r * 9 + 1..r * 9 + 9].to_vec())
            .collect();
        (
            Tensor::from_vec(x, (4, 8), &d).unwrap(),
            Tensor::from_vec(y, (4, 8), &d).unwrap(),
            Tensor::ones((4, 8), candle_core::DType::F32, &d).unwrap(),
        )
    };
    let steps = |model: &Gpt, opt: &mut AdamW, n: usize| {
        for _ in 0..n {
            let g = loss(model, &data).backward().unwrap();
            opt.step(&g, 1e-2).unwrap();
        }
    };
    let straight = Gpt::new(&cfg, 1, &Device::Cpu).unwrap();
    let mut opt = AdamW::new(optim(1e-2, 0), straight.trainable_vars()).unwrap();
    steps(&straight, &mut opt, 6);

    let first = Gpt::new(&cfg, 1, &Device::Cpu).unwrap();
    let mut opt1 = AdamW::new(optim(1e-2, 0), first.trainable_vars()).unwrap();
    steps(&first, &mut opt1, 3);
    let tmp = tempfile::tempdir().unwrap();
    let meta = CheckpointMeta {
        stage: "pretrain".into(),
        model: cfg.clone(),
        tokenizer_sha256: tok.hash.clone(),
        data_sha256: "test".into(),
        parent_sha256: None,
        step: 3,
        config: serde_json::Value::Null,
    };
    save(&tmp.path().join("m.safetensors"), &first, &meta).unwrap();
    save_optimizer(&tmp.path().join("o.safetensors"), &opt1).unwrap();

    let (resumed, loaded_meta) =
        load(&tmp.path().join("m.safetensors"), &tok, &Device::Cpu).unwrap();
    assert_eq!(loaded_meta, meta);
    let mut opt2 = AdamW::new(optim(1e-2, 0), resumed.trainable_vars()).unwrap();
    load_optimizer(&tmp.path().join("o.safetensors"), &mut opt2, &Device::Cpu).unwrap();
    assert_eq!(opt2.step, 3);
    steps(&resumed, &mut opt2, 3);
    for ((name, a), (_, b)) in straight
        .trainable_vars()
        .iter()
        .zip(resumed.trainable_vars())
    {
        let a: Vec<f32> = a.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let b: Vec<f32> = b.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(a, b, "{name}: 6 steps straight vs 3 + save + load + 3");
    }
}

#[test]
fn batching_prompts_of_different_lengths_changes_no_sample() {
    use emsl_core::sample::generate_many;
    let model = Gpt::new(&tiny(), 12, &Device::Cpu).unwrap();
    let prompts: Vec<Vec<u32>> = vec![
        vec![2, 5, 9],
        vec![2, 7, 1, 4, 4],
        vec![2, 8, 8],
        vec![2, 3, 3, 3, 6],
        vec![2, 9],
    ];
    let cfg = SampleConfig {
        temperature: 1.0,
        top_p: 0.9,
        max_new_tokens: 9,
    };
    let rngs = || {
        (0..prompts.len())
            .map(|k| Rng::new(6, &format!("row/{k}")))
            .collect::<Vec<_>>()
    };
    for max_batch in [1, 2, 64] {
        let many = generate_many(&model, &prompts, rngs(), &cfg, 49, max_batch).unwrap();
        for (k, p) in prompts.iter().enumerate() {
            let mut own = [Rng::new(6, &format!("row/{k}"))];
            let alone = generate(&model, p, &mut own, &cfg, 49, false)
                .unwrap()
                .remove(0);
            assert_eq!(many[k], alone, "row {k}, max_batch {max_batch}");
        }
    }
}
