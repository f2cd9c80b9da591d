//! The fused kernels against the composed candle ops they replace: values and gradients on random
//! inputs, and bit-identical training at a fixed thread count (and across 1 and 2 threads).

mod common;

use candle_core::{DType, Device, Tensor, Var, D};
use emsl_core::kernel_check::{check, randn, rel_diff};
use emsl_core::kernels;
use emsl_core::model::softmax_last;
use emsl_core::train::masked_cross_entropy_composed;
use emsl_core::LanguageModel;
use emsl_world::Rng;

const TOL: f32 = 2e-5;

/// `linear` and `matmul_t` of `x` (.., k) with `w` (n, k) and `b` (n) against candle's matmul.
fn check_linear(x: Tensor, w: Tensor, b: Tensor, tol: f32) -> u64 {
    let h = check(
        "linear",
        &[x.clone(), w.clone(), b],
        |t| kernels::linear(&t[0], &t[1], &t[2]).unwrap(),
        |t| {
            t[0].broadcast_matmul(&t[1].t().unwrap())
                .unwrap()
                .broadcast_add(&t[2])
                .unwrap()
        },
        tol,
    );
    h ^ check(
        "matmul_t",
        &[x, w],
        |t| kernels::matmul_t(&t[0], &t[1]).unwrap(),
        |t| t[0].broadcast_matmul(&t[1].t().unwrap()).unwrap(),
        tol,
    )
}

#[test]
fn linear_and_matmul_t_match_candle() {
    check_linear(
        randn(&[3, 5, 24], 1.0, 1),
        randn(&[40, 24], 0.2, 2),
        randn(&[40], 0.1, 3),
        TOL,
    );
}

/// The fused layer norm of (b, t, c) rows against the composed one.
fn check_layer_norm(shape: &[usize], tol: f32) -> u64 {
    let c = *shape.last().unwrap();
    let (x, w, b) = (
        (randn(shape, 2.0, 4) + 0.5).unwrap(),
        (randn(&[c], 0.3, 5) + 1.0).unwrap(),
        randn(&[c], 0.3, 6),
    );
    check(
        "layer_norm",
        &[x, w, b],
        |t| kernels::layer_norm(&t[0], &t[1], &t[2]).unwrap(),
        |t| {
            let x = &t[0];
            let mean = x.mean_keepdim(D::Minus1).unwrap();
            let centred = x.broadcast_sub(&mean).unwrap();
            let var = centred.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
            let normed = centred
                .broadcast_div(&(var + 1e-5).unwrap().sqrt().unwrap())
                .unwrap();
            normed
                .broadcast_mul(&t[1])
                .unwrap()
                .broadcast_add(&t[2])
                .unwrap()
        },
        tol,
    )
}

#[test]
fn layer_norm_matches_candle() {
    check_layer_norm(&[4, 6, 37], TOL);
}

fn check_gelu(shape: &[usize], tol: f32) -> u64 {
    check(
        "gelu",
        &[randn(shape, 3.0, 7)],
        |t| kernels::gelu(&t[0]).unwrap(),
        |t| t[0].gelu().unwrap(),
        tol,
    )
}

#[test]
fn gelu_matches_candle() {
    check_gelu(&[7, 300], TOL);
}

/// The fused causal attention of `b` rows of `t` positions and `h` heads of width `hd` against the
/// composed one.
fn check_attention(b: usize, t: usize, h: usize, hd: usize, tol: f32) -> u64 {
    let c = h * hd;
    let qkv = randn(&[b, t, 3 * c], 1.0, 8);
    let mask: Vec<f32> = (0..t * t)
        .map(|i| {
            if i % t > i / t {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    let mask = Tensor::from_vec(mask, (t, t), &Device::Cpu).unwrap();
    check(
        "attention",
        &[qkv],
        |x| kernels::causal_attention(&x[0], h).unwrap(),
        |x| {
            let head = |i: usize| {
                x[0].narrow(D::Minus1, i * c, c)
                    .unwrap()
                    .reshape((b, t, h, hd))
                    .unwrap()
                    .transpose(1, 2)
                    .unwrap()
                    .contiguous()
                    .unwrap()
            };
            let (q, k, v) = (head(0), head(1), head(2));
            let scores = (q.matmul(&k.t().unwrap()).unwrap() / (hd as f64).sqrt()).unwrap();
            let att = softmax_last(&scores.broadcast_add(&mask).unwrap()).unwrap();
            att.matmul(&v)
                .unwrap()
                .transpose(1, 2)
                .unwrap()
                .reshape((b, t, c))
                .unwrap()
        },
        tol,
    )
}

#[test]
fn causal_attention_matches_candle() {
    check_attention(3, 19, 4, 8, TOL);
}

/// Random u32 targets below `v` and a mask with some zeros, both (b, t).
fn targets_and_mask(b: usize, t: usize, v: usize, seed: u64, skip: usize) -> (Tensor, Tensor) {
    let mut rng = Rng::new(seed, "targets");
    let targets: Vec<u32> = (0..b * t).map(|_| rng.below(v) as u32).collect();
    let mask: Vec<f32> = (0..b * t).map(|i| f32::from(i % skip != 1)).collect();
    (
        Tensor::from_vec(targets, (b, t), &Device::Cpu).unwrap(),
        Tensor::from_vec(mask, (b, t), &Device::Cpu).unwrap(),
    )
}

fn check_cross_entropy(b: usize, t: usize, v: usize, tol: f32) -> u64 {
    let logits = randn(&[b, t, v], 3.0, 9);
    let (targets, mask) = targets_and_mask(b, t, v, 10, 3);
    check(
        "cross_entropy",
        &[logits],
        |x| kernels::masked_cross_entropy(&x[0], &targets, &mask).unwrap(),
        |x| masked_cross_entropy_composed(&x[0], &targets, &mask).unwrap(),
        tol,
    )
}

#[test]
fn cross_entropy_matches_candle() {
    check_cross_entropy(3, 11, 203, TOL);
    // The dispatching loss takes the fused path for these dtypes.
    let l = randn(&[2, 3, 5], 1.0, 11);
    let t = Tensor::zeros((2, 3), DType::U32, &Device::Cpu).unwrap();
    let m = Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap();
    let a = emsl_core::train::masked_cross_entropy(&l, &t, &m).unwrap();
    let b = masked_cross_entropy_composed(&l, &t, &m).unwrap();
    assert!(rel_diff(&a, &b) <= TOL);
}

fn check_head_cross_entropy(b: usize, t: usize, c: usize, v: usize, tol: f32) -> u64 {
    let x = randn(&[b, t, c], 1.0, 12);
    let w = randn(&[v, c], 0.5, 13);
    let (targets, mask) = targets_and_mask(b, t, v, 14, 4);
    check(
        "head_cross_entropy",
        &[x, w],
        |z| kernels::head_cross_entropy(&z[0], &z[1], &targets, &mask).unwrap(),
        |z| {
            let logits = z[0].broadcast_matmul(&z[1].t().unwrap()).unwrap();
            masked_cross_entropy_composed(&logits, &targets, &mask).unwrap()
        },
        tol,
    )
}

#[test]
fn head_cross_entropy_matches_candle() {
    check_head_cross_entropy(2, 9, 24, 131, TOL);
}

/// A frozen weight (read detached, as LoRA's base is) gets no gradient from the linear kernels, and
/// the input's gradient is the one it gets when the weight trains.
#[test]
fn a_frozen_weight_gets_no_gradient() {
    let x = Var::from_tensor(&randn(&[2, 40, 64], 1.0, 31)).unwrap();
    let w = randn(&[96, 64], 0.2, 32);
    let b = randn(&[96], 0.1, 33);
    let probe = randn(&[2, 40, 96], 1.0, 34);
    let grads = |w: &Tensor, b: &Tensor| {
        let out = kernels::linear(x.as_tensor(), w, b).unwrap();
        (&out * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap()
    };
    let frozen = grads(&w, &b);
    assert!(frozen.get(&w).is_none() && frozen.get(&b).is_none());
    let (wv, bv) = (Var::from_tensor(&w).unwrap(), Var::from_tensor(&b).unwrap());
    let trained = grads(wv.as_tensor(), bv.as_tensor());
    assert!(trained.get(wv.as_tensor()).is_some() && trained.get(bv.as_tensor()).is_some());
    let (gf, gt) = (frozen.get(&x).unwrap(), trained.get(&x).unwrap());
    assert_eq!(rel_diff(gf, gt), 0.0);
}

/// Every kernel at shapes that take its blocked and parallel paths (at more than one thread):
/// - linear, matmul_t and the head's matmul: m * n * k >= 2^18 with m >= 32 rows is cut into blocks of
///   rows, here with a ragged last block (201 rows in blocks of 32), forward and both backward gemms;
/// - a weight of at least 2^20 floats is cut into blocks of columns instead (ragged: 4100 columns in
///   blocks of 528), at 40 rows and at 8 (sampling's few rows);
/// - attention: b > 1 and b t^2 C >= 2^16 runs one batch row per task, forward and backward;
/// - layer norm, GELU and the losses: rows or 4096-element chunks split over threads once the work
///   passes 2^16, here with a ragged last chunk, and a layer-norm row at its widest (1024).
///
/// Returns a hash of every fused value and gradient. Sums over longer rows round more, hence the
/// looser tolerance.
fn large_shape_checks() -> u64 {
    let tol = 1e-4;
    let mut h = check_linear(
        randn(&[3, 67, 96], 1.0, 21),
        randn(&[160, 96], 0.2, 22),
        randn(&[160], 0.1, 23),
        tol,
    );
    h ^= check_linear(
        randn(&[2, 20, 256], 1.0, 24),
        randn(&[4100, 256], 0.05, 25),
        randn(&[4100], 0.1, 26),
        tol,
    )
    .rotate_left(7);
    h ^= check_linear(
        randn(&[1, 8, 256], 1.0, 27),
        randn(&[4100, 256], 0.05, 28),
        randn(&[4100], 0.1, 29),
        tol,
    )
    .rotate_left(8);
    h ^= check_layer_norm(&[8, 130, 200], tol).rotate_left(1);
    h ^= check_layer_norm(&[2, 35, 1024], tol).rotate_left(2);
    h ^= check_gelu(&[9, 5000], tol).rotate_left(3);
    h ^= check_attention(4, 40, 4, 16, tol).rotate_left(4);
    h ^= check_cross_entropy(4, 50, 301, tol).rotate_left(5);
    h ^= check_head_cross_entropy(4, 50, 64, 300, tol).rotate_left(6);
    h
}

/// Run by `kernels_at_large_shapes_match_candle_at_one_and_two_threads` in a child process with
/// RAYON_NUM_THREADS set (the kernels read the thread count once per process).
#[test]
#[ignore = "a child of kernels_at_large_shapes_match_candle_at_one_and_two_threads"]
fn large_shapes_child() {
    println!("large-shape-hash {:016x}", large_shape_checks());
}

#[test]
fn kernels_at_large_shapes_match_candle_at_one_and_two_threads() {
    let hashes: Vec<String> = ["1", "2"]
        .iter()
        .map(|threads| {
            let out = std::process::Command::new(std::env::current_exe().unwrap())
                .args(["--exact", "large_shapes_child", "--ignored", "--nocapture"])
                .env("RAYON_NUM_THREADS", threads)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(
                out.status.success(),
                "at {threads} thread(s): {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
            stdout
                .lines()
                .find_map(|l| l.strip_prefix("large-shape-hash "))
                .unwrap_or_else(|| panic!("no hash in {stdout}"))
                .to_owned()
        })
        .collect();
    assert_eq!(hashes[0], hashes[1], "fused kernels at 1 vs 2 threads");
}

#[test]
fn model_loss_equals_the_loss_of_the_logits() {
    let model = emsl_core::Gpt::new(&common::tiny(), 3, &Device::Cpu).unwrap();
    let mut rng = Rng::new(15, "ids");
    let ids: Vec<u32> = (0..4 * 12).map(|_| rng.below(50) as u32).collect();
    let x = Tensor::from_vec(ids.clone(), (4, 12), &Device::Cpu).unwrap();
    let y = Tensor::from_vec(
        ids.iter().map(|i| (i * 7) % 50).collect::<Vec<u32>>(),
        (4, 12),
        &Device::Cpu,
    )
    .unwrap();
    let m = Tensor::ones((4, 12), DType::F32, &Device::Cpu).unwrap();
    let fused = model.loss(&x, &y, &m).unwrap();
    let composed = masked_cross_entropy_composed(&model.forward(&x).unwrap(), &y, &m).unwrap();
    assert!(rel_diff(&fused, &composed) <= TOL);
    let (gf, gc) = (fused.backward().unwrap(), composed.backward().unwrap());
    for (name, var) in model.trainable_vars() {
        let d = rel_diff(gf.get(var).unwrap(), gc.get(var).unwrap());
        assert!(d <= 1e-4, "{name}: gradient differs by {d}");
    }
}

/// Trains a few steps of the smoke-size model in a subprocess, returning the JSON it prints.
fn bench_train(dir: &std::path::Path, threads: &str) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emsl-bench"))
        .args(["train", "--size", "smoke", "--steps", "3", "--dir"])
        .arg(dir)
        .env("RAYON_NUM_THREADS", threads)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn training_is_bit_identical_at_a_thread_count_and_across_one_and_two() {
    // At 16 x 128 tokens every kernel takes its parallel path at 2 threads.
    let tmp = tempfile::tempdir().unwrap();
    let prep = std::process::Command::new(env!("CARGO_BIN_EXE_emsl-bench"))
        .args(["prepare", "--size", "smoke", "--dir"])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        prep.status.success(),
        "{}",
        String::from_utf8_lossy(&prep.stderr)
    );
    let runs: Vec<serde_json::Value> = ["2", "2", "1"]
        .iter()
        .map(|t| bench_train(tmp.path(), t))
        .collect();
    for key in ["losses", "params_hash"] {
        assert_eq!(runs[0][key], runs[1][key], "{key}: two runs at 2 threads");
        assert_eq!(runs[0][key], runs[2][key], "{key}: 2 threads vs 1");
    }
}
