//! The exact bits of a tiny model's arithmetic, recorded before the model interface was introduced:
//! the losses of its first three training steps, a hash of the logits of one forward pass, and sampled
//! token ids. Any change to initialisation order, seeds, kernels, op order or sampling fails here.

mod common;

use candle_core::{DType, Device, Tensor};
use common::tiny;
use emsl_core::model::Gpt;
use emsl_core::optim::AdamW;
use emsl_core::sample::{generate, generate_many, SampleConfig};
use emsl_core::train::optim;
use emsl_core::LanguageModel;
use emsl_world::Rng;

fn ids(b: usize, t: usize, seed: u64) -> Vec<u32> {
    let mut rng = Rng::new(seed, "bits");
    (0..b * t).map(|_| rng.below(50) as u32).collect()
}

/// FNV-1a over the bits of every element.
fn fnv(values: &[f32]) -> u64 {
    values.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, x| {
        (h ^ u64::from(x.to_bits())).wrapping_mul(0x100_0000_01b3)
    })
}

const LOSS_BITS: [u32; 3] = [1081796280, 1081313010, 1080614118];
const LOGITS_FNV: u64 = 0xd012_b19e_1481_8173;
const FIRST_LOGITS_BITS: [u32; 3] = [1024787977, 1019623007, 3154870491];
const SAMPLED: [&[u32]; 3] = [
    &[34, 9, 15, 28, 47, 16, 37, 42],
    &[24, 22, 0, 19, 18, 14, 11, 25],
    &[12, 4, 28, 15, 44, 30, 28, 7],
];
const SAMPLED_MANY: [&[u32]; 3] = [
    &[8, 10, 18, 13, 31, 45, 34, 45],
    &[34, 8, 0, 3, 3, 4, 27, 0],
    &[3, 19, 34, 44, 35, 7, 37],
];

#[test]
fn losses_logits_and_samples_keep_their_bits() {
    let dev = Device::Cpu;
    let model = Gpt::new(&tiny(), 7, &dev).unwrap();
    let all = ids(4, 17, 1);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for r in 0..4 {
        x.extend_from_slice(&all[r * 17..r * 17 + 16]);
        y.extend_from_slice(&all[r * 17 + 1..r * 17 + 17]);
    }
    let x = Tensor::from_vec(x, (4, 16), &dev).unwrap();
    let y = Tensor::from_vec(y, (4, 16), &dev).unwrap();
    let m = Tensor::ones((4, 16), DType::F32, &dev).unwrap();
    let mut opt = AdamW::new(optim(1e-2, 1), model.trainable_vars()).unwrap();
    let mut losses = Vec::new();
    for step in 0..3 {
        let l = model.loss(&x, &y, &m).unwrap();
        losses.push(l.to_scalar::<f32>().unwrap().to_bits());
        opt.step(&l.backward().unwrap(), 1e-2 * (step + 1) as f64)
            .unwrap();
    }

    let fresh = Gpt::new(&tiny(), 11, &dev).unwrap();
    let input = Tensor::from_vec(ids(3, 13, 2), (3, 13), &dev).unwrap();
    let logits: Vec<f32> = fresh
        .forward(&input)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap();
    let first: Vec<u32> = logits[..3].iter().map(|v| v.to_bits()).collect();

    let cfg = SampleConfig {
        temperature: 1.0,
        top_p: 0.9,
        max_new_tokens: 8,
    };
    let mut rngs: Vec<Rng> = (0..3).map(|k| Rng::new(5, &format!("bits/{k}"))).collect();
    let sampled = generate(&model, &[2, 5, 9, 13], &mut rngs, &cfg, 49, true).unwrap();
    let prompts = vec![vec![2u32, 7, 1], vec![2, 8], vec![2, 3, 3, 6]];
    let rngs: Vec<Rng> = (0..3).map(|k| Rng::new(6, &format!("bits/{k}"))).collect();
    let many = generate_many(&model, &prompts, rngs, &cfg, 49, 2).unwrap();

    assert_eq!(losses, LOSS_BITS, "training losses");
    assert_eq!(fnv(&logits), LOGITS_FNV, "logits");
    assert_eq!(first, FIRST_LOGITS_BITS, "first logits");
    assert_eq!(sampled, SAMPLED, "generate");
    assert_eq!(many, SAMPLED_MANY, "generate_many");
}
