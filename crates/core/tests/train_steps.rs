//! The shared training loop's options (`train::train_steps`): the schedules' values, one micro-batch is
//! `train_with` bit for bit, and a step of two micro-batches of the same batch is a step of that batch
//! (each half of the gradient is exact), while a step of two different batches is not one of either.

mod common;

use candle_core::{DType, Device, Tensor};
use emsl_core::model::{Gpt, LanguageModel};
use emsl_core::optim::{AdamW, Schedule};
use emsl_core::train::{optim, train_steps, train_with, StepLog, Steps, TrainConfig};
use emsl_world::Rng;

/// (inputs, targets) of batch `i`: 4 rows of 8 random tokens.
fn batch(i: u64) -> (Tensor, Tensor) {
    let mut rng = Rng::new(i, "train-steps");
    let ids: Vec<u32> = (0..4 * 9).map(|_| rng.below(50) as u32).collect();
    let t = Tensor::from_vec(ids, (4, 9), &Device::Cpu).unwrap();
    (
        t.narrow(1, 0, 8).unwrap().contiguous().unwrap(),
        t.narrow(1, 1, 8).unwrap().contiguous().unwrap(),
    )
}

/// Trains a fresh tiny GPT for 3 steps; `pick(step, micro)` names the batch. Returns the logs and
/// every parameter's values after training.
fn run(steps: Option<Steps>, pick: impl Fn(usize, usize) -> u64) -> (Vec<StepLog>, Vec<Vec<f32>>) {
    let model = Gpt::new(&common::tiny(), 5, &Device::Cpu).unwrap();
    let cfg = TrainConfig {
        steps: 3,
        batch_size: 4,
        seed: 0,
        log_every: 100,
        optim: optim(1e-2, 1),
    };
    let mask = Tensor::ones((4, 8), DType::F32, &Device::Cpu).unwrap();
    let mut opt = AdamW::new(cfg.optim.clone(), model.trainable_vars()).unwrap();
    let loss = |step: usize, micro: usize| {
        let (x, y) = batch(pick(step, micro));
        Ok((model.loss(&x, &y, &mask)?, x.elem_count()))
    };
    let logs = match steps {
        None => train_with(&mut opt, &cfg, "test", |step| loss(step, 0)).unwrap(),
        Some(s) => train_steps(&mut opt, &cfg, s, "test", loss).unwrap(),
    };
    let params = model
        .trainable_vars()
        .iter()
        .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    (logs, params)
}

fn losses(logs: &[StepLog]) -> Vec<f32> {
    logs.iter().map(|l| l.loss).collect()
}

#[test]
fn schedules_give_their_learning_rates() {
    let o = optim(1.0, 2);
    let linear: Vec<f64> = (0..6).map(|s| Schedule::Linear.lr_at(&o, s, 6)).collect();
    // transformers' get_linear_schedule_with_warmup: 0, 1/2, then (6 - s) / 4.
    assert_eq!(linear, vec![0.0, 0.5, 1.0, 0.75, 0.5, 0.25]);
    assert_eq!(Schedule::Cosine.lr_at(&o, 3, 6), o.lr_at(3, 6));
}

#[test]
fn accumulation_is_the_mean_over_micro_batches() {
    let one = Steps {
        schedule: Schedule::Cosine,
        micro_batches: 1,
    };
    let two = Steps {
        micro_batches: 2,
        ..one
    };
    let base = run(None, |step, _| step as u64);
    // One micro-batch: train_with itself, bit for bit.
    let single = run(Some(one), |step, _| step as u64);
    assert_eq!(losses(&base.0), losses(&single.0));
    assert_eq!(base.1, single.1);
    // Two micro-batches of the same batch: each loss halved, the halves summed: the same step.
    let doubled = run(Some(two), |step, _| step as u64);
    assert_eq!(losses(&base.0), losses(&doubled.0));
    assert_eq!(base.1, doubled.1);
    // Two different batches: another step than either batch alone.
    let mixed = run(Some(two), |step, micro| (10 * step + micro) as u64);
    assert_ne!(base.1, mixed.1);
    let first = run(None, |step, _| (10 * step) as u64);
    assert_ne!(first.1, mixed.1);
}
