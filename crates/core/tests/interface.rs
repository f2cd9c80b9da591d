//! The model interface: hidden states, interventions on the residual stream in the full and the
//! cached forward, and sampling a steered model.

mod common;

use candle_core::{DType, Device, Tensor};
use common::tiny;
use emsl_core::model::{AddVector, Gpt, Intervention, LanguageModel, ProjectOut, Steered};
use emsl_core::sample::{generate, SampleConfig};
use emsl_world::Rng;

fn model() -> Gpt {
    Gpt::new(&tiny(), 13, &Device::Cpu).unwrap()
}

fn ids(b: usize, t: usize) -> Tensor {
    let mut rng = Rng::new(3, "interface");
    let v: Vec<u32> = (0..b * t).map(|_| rng.below(50) as u32).collect();
    Tensor::from_vec(v, (b, t), &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1().unwrap()
}

/// A direction of the residual stream (16 wide).
fn direction(seed: u64) -> Tensor {
    let mut rng = Rng::new(seed, "direction");
    let v: Vec<f32> = (0..16).map(|_| rng.unit() as f32 - 0.5).collect();
    Tensor::from_vec(v, 16, &Device::Cpu).unwrap()
}

/// Leaves the stream as it is.
struct Identity;

impl Intervention for Identity {
    fn apply(&self, _layer: usize, x: Tensor) -> candle_core::Result<Tensor> {
        Ok(x)
    }
}

#[test]
fn the_interface_reports_the_model() {
    let m = model();
    assert_eq!(
        (m.vocab_size(), m.context_length(), m.num_layers()),
        (50, 16, 2)
    );
    assert_eq!(m.dtype(), DType::F32);
    assert!(m.device().is_cpu());
    assert_eq!(
        m.num_params(),
        m.trainable_vars()
            .iter()
            .map(|(_, v)| v.elem_count())
            .sum::<usize>()
    );
}

#[test]
fn hidden_states_are_one_per_layer_and_a_hook_that_changes_nothing_changes_no_bit() {
    let m = model();
    let x = ids(3, 10);
    let states = m.hidden_states(&x, None).unwrap();
    assert_eq!(states.len(), m.num_layers() + 1);
    for s in &states {
        assert_eq!(s.dims(), &[3, 10, 16]);
    }
    assert_ne!(values(&states[0]), values(&states[1]));
    let plain = values(&m.forward(&x).unwrap());
    assert_eq!(
        plain,
        values(&m.forward_hooked(&x, Some(&Identity)).unwrap())
    );
    let zero = AddVector {
        layer: 1,
        vector: Tensor::zeros(16, DType::F32, &Device::Cpu).unwrap(),
        scale: 3.0,
    };
    assert_eq!(plain, values(&m.forward_hooked(&x, Some(&zero)).unwrap()));
}

#[test]
fn a_steering_vector_moves_its_layer_and_projecting_out_removes_a_direction() {
    let m = model();
    let x = ids(2, 9);
    let plain = m.hidden_states(&x, None).unwrap();
    let add = AddVector {
        layer: 1,
        vector: direction(1),
        scale: 2.0,
    };
    let steered = m.hidden_states(&x, Some(&add)).unwrap();
    assert_eq!(
        values(&plain[0]),
        values(&steered[0]),
        "layers before are untouched"
    );
    let moved = (&steered[1] - &plain[1]).unwrap();
    let want = (direction(1) * 2.0).unwrap();
    for row in values(&moved).chunks(16) {
        for (a, b) in row.iter().zip(values(&want)) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
    }
    assert_ne!(
        values(&plain[2]),
        values(&steered[2]),
        "later layers follow"
    );

    let d = direction(2);
    let ablate = ProjectOut {
        layer: 2,
        direction: d.clone(),
    };
    let projected = &m.hidden_states(&x, Some(&ablate)).unwrap()[2];
    let along = values(&projected.broadcast_mul(&d).unwrap().sum(2).unwrap());
    assert!(along.iter().all(|a| a.abs() < 1e-5), "{along:?}");
    let before = values(&plain[2].broadcast_mul(&d).unwrap().sum(2).unwrap());
    assert!(before.iter().any(|a| a.abs() > 1e-3));
}

#[test]
fn a_steered_model_samples_the_same_with_and_without_its_cache() {
    let m = model();
    let steer = AddVector {
        layer: 1,
        vector: direction(3),
        scale: 4.0,
    };
    let steered = Steered {
        model: &m,
        intervention: &steer,
    };
    let cfg = SampleConfig {
        temperature: 0.0,
        top_p: 1.0,
        max_new_tokens: 10,
    };
    let prompt = [2u32, 5, 9, 13];
    let rngs = || vec![Rng::new(1, "steer/0"), Rng::new(1, "steer/1")];
    let cached = generate(&steered, &prompt, &mut rngs(), &cfg, 49, true).unwrap();
    let full = generate(&steered, &prompt, &mut rngs(), &cfg, 49, false).unwrap();
    assert_eq!(
        cached, full,
        "the intervention applies in the cached forward too"
    );
    let unsteered = generate(&m, &prompt, &mut rngs(), &cfg, 49, true).unwrap();
    assert_ne!(
        cached, unsteered,
        "steering changed the greedy continuation"
    );
    // Steered logits equal those of the model with the intervention passed per call.
    let x = ids(1, 6);
    assert_eq!(
        values(&steered.forward(&x).unwrap()),
        values(&m.forward_hooked(&x, Some(&steer)).unwrap())
    );
}
