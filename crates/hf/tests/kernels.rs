//! The decoder's fused kernels (`emsl_hf::kernels`) against the candle ops they replace: values and the
//! gradient of every input under a random linear functional of the output, on shapes that take the
//! blocked paths (a ragged last block of rows), and no gradient for an input read detached.

use candle_core::Var;
use emsl_core::kernel_check::{check, randn};
use emsl_hf::kernels::{rms_norm, swiglu};

/// The fused kernels' tolerance (relative to the largest magnitude, at least 1).
const TOL: f32 = 2e-5;

#[test]
fn rms_norm_matches_candles_composed_one() {
    // 3 x 41 rows: blocks of 16 rows with a ragged last one.
    let (x, w) = (
        randn(&[3, 41, 96], 1.0, 1),
        randn(&[96], 0.5, 2).affine(1.0, 1.0).unwrap(),
    );
    check(
        "rms_norm",
        &[x, w],
        |t| rms_norm(&t[0], &t[1], 1e-6).unwrap(),
        |t| candle_nn::ops::rms_norm_slow(&t[0], &t[1], 1e-6).unwrap(),
        TOL,
    );
}

#[test]
fn swiglu_matches_silu_times_up() {
    // 2^15 + 3 elements: blocks of 2^14 with a ragged last one.
    let (g, u) = (randn(&[1, 3, 10923], 2.0, 3), randn(&[1, 3, 10923], 1.0, 4));
    check(
        "swiglu",
        &[g, u],
        |t| swiglu(&t[0], &t[1]).unwrap(),
        |t| (candle_nn::ops::silu(&t[0]).unwrap() * &t[1]).unwrap(),
        TOL,
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
