//! LoRA adapters on the GPT: identity at initialisation, a gradient for every adapter variable and
//! none for the frozen weights, lower loss after a few steps, merged = unmerged, PEFT round trip.

mod common;

use candle_core::{Device, Tensor};
use common::tiny;
use emsl_core::model::{load_adapters, save_adapters, Gpt, LoraConfig};
use emsl_core::optim::AdamW;
use emsl_core::train::optim;
use emsl_core::LanguageModel;
use emsl_world::Rng;

fn ids(seed: u64) -> (Tensor, Tensor, Tensor) {
    let mut rng = Rng::new(seed, "lora-batch");
    let (b, t) = (4, 12);
    let x: Vec<u32> = (0..b * t).map(|_| rng.below(50) as u32).collect();
    let y: Vec<u32> = (0..b * t).map(|_| rng.below(50) as u32).collect();
    let d = Device::Cpu;
    (
        Tensor::from_vec(x, (b, t), &d).unwrap(),
        Tensor::from_vec(y, (b, t), &d).unwrap(),
        Tensor::ones((b, t), candle_core::DType::F32, &d).unwrap(),
    )
}

fn cfg(rank: usize, modules: &[&str]) -> LoraConfig {
    LoraConfig {
        rank,
        alpha: 2.0 * rank as f64,
        modules: modules.iter().map(|m| m.to_string()).collect(),
        seed: 7,
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn adapters_start_as_the_identity_and_only_they_train() {
    for (rank, modules) in [(1, vec!["h.1.mlp.c_proj"]), (4, vec!["all-linear"])] {
        let mut model = Gpt::new(&tiny(), 3, &Device::Cpu).unwrap();
        let (x, y, m) = ids(1);
        let before = values(&model.forward(&x).unwrap());
        model.attach_lora(&cfg(rank, &modules)).unwrap();
        assert_eq!(values(&model.forward(&x).unwrap()), before, "B = 0 at init");
        let want = if rank == 1 { 2 } else { 2 * 4 * 2 };
        assert_eq!(
            model.trainable_vars().len(),
            want,
            "A and B per adapted layer"
        );
        // Every adapter variable gets a gradient, with B = 0 too (A's gradient flows through B only
        // after the first step, so take one step first).
        let mut opt = AdamW::new(optim(1e-2, 0), model.trainable_vars()).unwrap();
        let first = model.loss(&x, &y, &m).unwrap();
        opt.step(&first.backward().unwrap(), 1e-2).unwrap();
        let grads = model.loss(&x, &y, &m).unwrap().backward().unwrap();
        for (name, var) in model.trainable_vars() {
            let g = grads
                .get(var.as_tensor())
                .unwrap_or_else(|| panic!("rank {rank}: {name} received no gradient"));
            let norm: f32 = g.sqr().unwrap().sum_all().unwrap().to_scalar().unwrap();
            assert!(norm > 0.0, "rank {rank}: {name} has a zero gradient");
        }
    }
}

#[test]
fn a_few_adapter_steps_lower_the_loss_and_leave_the_base_weights() {
    let mut model = Gpt::new(&tiny(), 3, &Device::Cpu).unwrap();
    // Handles on the base's variables (they share storage with the model's).
    let base: Vec<(String, candle_core::Var)> = model.trainable_vars().to_vec();
    let before: Vec<Vec<f32>> = base.iter().map(|(_, v)| values(v.as_tensor())).collect();
    model.attach_lora(&cfg(2, &["all-linear"])).unwrap();
    let (x, y, m) = ids(2);
    let mut opt = AdamW::new(optim(1e-2, 0), model.trainable_vars()).unwrap();
    let start: f32 = model.loss(&x, &y, &m).unwrap().to_scalar().unwrap();
    for _ in 0..20 {
        let loss = model.loss(&x, &y, &m).unwrap();
        opt.step(&loss.backward().unwrap(), 1e-2).unwrap();
    }
    let end: f32 = model.loss(&x, &y, &m).unwrap().to_scalar().unwrap();
    assert!(end < start - 0.1, "loss {start} -> {end}");
    for ((name, var), old) in base.iter().zip(before) {
        assert_eq!(values(var.as_tensor()), old, "{name} moved under LoRA");
    }
}

#[test]
fn merged_and_unmerged_adapters_give_the_same_logits_and_round_trip_as_peft() {
    let mut model = Gpt::new(&tiny(), 4, &Device::Cpu).unwrap();
    let c = cfg(3, &["attn.c_attn", "mlp.c_fc"]);
    model.attach_lora(&c).unwrap();
    let (x, y, m) = ids(3);
    let mut opt = AdamW::new(optim(1e-2, 0), model.trainable_vars()).unwrap();
    for _ in 0..5 {
        let loss = model.loss(&x, &y, &m).unwrap();
        opt.step(&loss.backward().unwrap(), 1e-2).unwrap();
    }
    let adapted = values(&model.forward(&x).unwrap());
    let dir = tempfile::tempdir().unwrap();
    save_adapters(dir.path(), &c, &model.adapters()).unwrap();
    model.merge_adapters().unwrap();
    assert_eq!(
        model.trainable_vars().len(),
        4 + 2 * 12,
        "the base trains again"
    );
    let merged = values(&model.forward(&x).unwrap());
    assert!(
        max_diff(&adapted, &merged) < 1e-4,
        "{}",
        max_diff(&adapted, &merged)
    );
    // A fresh base with the saved adapters computes the adapted logits again.
    let (peft, loaded) = load_adapters(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(peft.r, 3);
    assert_eq!(
        peft.target_modules,
        [
            "h.0.attn.c_attn",
            "h.0.mlp.c_fc",
            "h.1.attn.c_attn",
            "h.1.mlp.c_fc"
        ]
    );
    let mut again = Gpt::new(&tiny(), 4, &Device::Cpu).unwrap();
    again.attach_adapters(loaded).unwrap();
    assert_eq!(values(&again.forward(&x).unwrap()), adapted);
}

#[test]
fn adapter_configs_that_name_nothing_are_errors() {
    let mut model = Gpt::new(&tiny(), 3, &Device::Cpu).unwrap();
    let err = model.attach_lora(&cfg(1, &["mlp.c_out"])).unwrap_err();
    assert!(err.to_string().contains("names no linear layer"), "{err}");
    let err = model.attach_lora(&cfg(0, &["all-linear"])).unwrap_err();
    assert!(err.to_string().contains("rank must be at least 1"), "{err}");
}
