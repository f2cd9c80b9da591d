//! The decoder's fused kernels (`emsl_hf::kernels`) against the candle ops they replace: values and the
//! gradient of every input under a random linear functional of the output, on shapes that take the
//! blocked paths (a ragged last block of rows), and no gradient for an input read detached.

use candle_core::{Device, Tensor, Var};
use emsl_hf::kernels::{rms_norm, swiglu};
use emsl_world::Rng;

fn randn(shape: &[usize], std: f32, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed, "kernel-test");
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.normal() as f32 * std).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let d = (a - b).unwrap().abs().unwrap().max_all().unwrap();
    let s = b.abs().unwrap().max_all().unwrap();
    d.to_scalar::<f32>().unwrap() / s.to_scalar::<f32>().unwrap().max(1e-12)
}

/// `f` and `g` of the same inputs agree in value and in the gradient of each input.
fn check(inputs: &[Tensor], f: impl Fn(&[Tensor]) -> Tensor, g: impl Fn(&[Tensor]) -> Tensor) {
    let run = |op: &dyn Fn(&[Tensor]) -> Tensor| {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let out = op(&ts);
        let probe = randn(out.dims(), 1.0, 7);
        let grads = (&out * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gs: Vec<Tensor> = vars.iter().map(|v| grads.get(v).unwrap().clone()).collect();
        (out, gs)
    };
    let ((yf, gf), (yg, gg)) = (run(&f), run(&g));
    assert!(
        rel_diff(&yf, &yg) < 1e-5,
        "values differ by {}",
        rel_diff(&yf, &yg)
    );
    for (i, (a, b)) in gf.iter().zip(&gg).enumerate() {
        assert!(
            rel_diff(a, b) < 1e-4,
            "gradient {i} differs by {}",
            rel_diff(a, b)
        );
    }
}

#[test]
fn rms_norm_matches_candles_composed_one() {
    // 3 x 41 rows: blocks of 16 rows with a ragged last one.
    let (x, w) = (
        randn(&[3, 41, 96], 1.0, 1),
        randn(&[96], 0.5, 2).affine(1.0, 1.0).unwrap(),
    );
    check(
        &[x, w],
        |t| rms_norm(&t[0], &t[1], 1e-6).unwrap(),
        |t| candle_nn::ops::rms_norm_slow(&t[0], &t[1], 1e-6).unwrap(),
    );
}

#[test]
fn swiglu_matches_silu_times_up() {
    // 2^15 + 3 elements: blocks of 2^14 with a ragged last one.
    let (g, u) = (randn(&[1, 3, 10923], 2.0, 3), randn(&[1, 3, 10923], 1.0, 4));
    check(
        &[g, u],
        |t| swiglu(&t[0], &t[1]).unwrap(),
        |t| (candle_nn::ops::silu(&t[0]).unwrap() * &t[1]).unwrap(),
    );
}

#[test]
fn a_frozen_norm_weight_gets_no_gradient() {
    let x = Var::from_tensor(&randn(&[2, 5, 32], 1.0, 5)).unwrap();
    let w = randn(&[32], 1.0, 6);
    let grads = rms_norm(&x, &w, 1e-5)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    assert!(grads.get(&w).is_none());
    assert!(grads.get(&x).is_some());
}
