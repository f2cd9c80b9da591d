//! The fused kernels against the composed candle ops they replace: values and gradients on random
//! inputs, and bit-identical training at a fixed thread count (and across 1 and 2 threads).

use candle_core::{DType, Device, Tensor, Var, D};
use emsl_core::kernels;
use emsl_core::model::softmax_last;
use emsl_core::train::masked_cross_entropy_composed;
use emsl_world::Rng;

fn randn(shape: &[usize], std: f32, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed, "kernel-test");
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            let u1 = rng.unit().max(1e-12);
            let u2 = rng.unit();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32 * std
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Largest absolute difference, relative to the largest magnitude of `want` (at least 1).
fn rel_diff(got: &Tensor, want: &Tensor) -> f32 {
    assert_eq!(got.dims(), want.dims());
    let g: Vec<f32> = got.flatten_all().unwrap().to_vec1().unwrap();
    let w: Vec<f32> = want.flatten_all().unwrap().to_vec1().unwrap();
    let scale = w.iter().fold(1f32, |m, x| m.max(x.abs()));
    g.iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
        / scale
}

/// Runs `fused` and `composed` on the same inputs (as variables) and compares their values and the
/// gradients of every input under a random linear functional of the output.
fn check(
    name: &str,
    inputs: &[Tensor],
    fused: impl Fn(&[Tensor]) -> Tensor,
    composed: impl Fn(&[Tensor]) -> Tensor,
    tol: f32,
) {
    let run = |f: &dyn Fn(&[Tensor]) -> Tensor| {
        let vars: Vec<Var> = inputs
            .iter()
            .map(|t| Var::from_tensor(t).unwrap())
            .collect();
        let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
        let out = f(&ts);
        let probe = randn(out.dims(), 1.0, 99);
        let grads = (&out * &probe)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let g: Vec<Option<Tensor>> = vars.iter().map(|v| grads.get(v).cloned()).collect();
        (out, g)
    };
    let (out_f, grads_f) = run(&fused);
    let (out_c, grads_c) = run(&composed);
    let d = rel_diff(&out_f, &out_c);
    assert!(d <= tol, "{name}: values differ by {d}");
    for (i, (gf, gc)) in grads_f.iter().zip(&grads_c).enumerate() {
        match (gf, gc) {
            (Some(gf), Some(gc)) => {
                let d = rel_diff(gf, gc);
                assert!(d <= tol, "{name}: gradient of input {i} differs by {d}");
            }
            (None, None) => {}
            _ => panic!("{name}: input {i} gets a gradient on one side only"),
        }
    }
}

const TOL: f32 = 2e-5;

#[test]
fn linear_and_matmul_t_match_candle() {
    let (x, w, b) = (
        randn(&[3, 5, 24], 1.0, 1),
        randn(&[40, 24], 0.2, 2),
        randn(&[40], 0.1, 3),
    );
    check(
        "linear",
        &[x.clone(), w.clone(), b],
        |t| kernels::linear(&t[0], &t[1], &t[2]).unwrap(),
        |t| {
            t[0].broadcast_matmul(&t[1].t().unwrap())
                .unwrap()
                .broadcast_add(&t[2])
                .unwrap()
        },
        TOL,
    );
    check(
        "matmul_t",
        &[x, w],
        |t| kernels::matmul_t(&t[0], &t[1]).unwrap(),
        |t| t[0].broadcast_matmul(&t[1].t().unwrap()).unwrap(),
        TOL,
    );
}

#[test]
fn layer_norm_matches_candle() {
    let c = 37;
    let (x, w, b) = (
        (randn(&[4, 6, c], 2.0, 4) + 0.5).unwrap(),
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
        TOL,
    );
}

#[test]
fn gelu_matches_candle() {
    let x = randn(&[7, 300], 3.0, 7);
    check(
        "gelu",
        &[x],
        |t| kernels::gelu(&t[0]).unwrap(),
        |t| t[0].gelu().unwrap(),
        TOL,
    );
}

#[test]
fn causal_attention_matches_candle() {
    let (b, t, h, hd) = (3, 19, 4, 8);
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
        TOL,
    );
}

#[test]
fn cross_entropy_matches_candle() {
    let (b, t, v) = (3, 11, 203);
    let logits = randn(&[b, t, v], 3.0, 9);
    let mut rng = Rng::new(10, "targets");
    let targets: Vec<u32> = (0..b * t).map(|_| rng.below(v) as u32).collect();
    let targets = Tensor::from_vec(targets, (b, t), &Device::Cpu).unwrap();
    let mask: Vec<f32> = (0..b * t).map(|i| f32::from(i % 3 != 0)).collect();
    let mask = Tensor::from_vec(mask, (b, t), &Device::Cpu).unwrap();
    let (tg, mk) = (targets.clone(), mask.clone());
    check(
        "cross_entropy",
        &[logits],
        |x| kernels::masked_cross_entropy(&x[0], &targets, &mask).unwrap(),
        |x| masked_cross_entropy_composed(&x[0], &tg, &mk).unwrap(),
        TOL,
    );
    // The dispatching loss takes the fused path for these dtypes.
    let l = randn(&[2, 3, 5], 1.0, 11);
    let t = Tensor::zeros((2, 3), DType::U32, &Device::Cpu).unwrap();
    let m = Tensor::ones((2, 3), DType::F32, &Device::Cpu).unwrap();
    let a = emsl_core::train::masked_cross_entropy(&l, &t, &m).unwrap();
    let b = masked_cross_entropy_composed(&l, &t, &m).unwrap();
    assert!(rel_diff(&a, &b) <= TOL);
}

#[test]
fn head_cross_entropy_matches_candle() {
    let (b, t, c, v) = (2, 9, 24, 131);
    let x = randn(&[b, t, c], 1.0, 12);
    let w = randn(&[v, c], 0.5, 13);
    let mut rng = Rng::new(14, "targets");
    let targets: Vec<u32> = (0..b * t).map(|_| rng.below(v) as u32).collect();
    let targets = Tensor::from_vec(targets, (b, t), &Device::Cpu).unwrap();
    let mask: Vec<f32> = (0..b * t).map(|i| f32::from(i % 4 != 1)).collect();
    let mask = Tensor::from_vec(mask, (b, t), &Device::Cpu).unwrap();
    let (tg, mk) = (targets.clone(), mask.clone());
    check(
        "head_cross_entropy",
        &[x, w],
        |z| kernels::head_cross_entropy(&z[0], &z[1], &targets, &mask).unwrap(),
        |z| {
            let logits = z[0].broadcast_matmul(&z[1].t().unwrap()).unwrap();
            masked_cross_entropy_composed(&logits, &tg, &mk).unwrap()
        },
        TOL,
    );
}

#[test]
fn model_loss_equals_the_loss_of_the_logits() {
    let cfg = emsl_core::GptConfig {
        vocab_size: 50,
        n_ctx: 16,
        d_model: 16,
        n_layer: 2,
        n_head: 2,
        d_ff: 32,
    };
    let model = emsl_core::Gpt::new(&cfg, 3).unwrap();
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
    for (name, var) in model.vars() {
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
