//! The check every fused kernel's test makes, here and in emsl-hf: the kernel and the composed candle
//! ops it replaces, run on the same inputs as variables, agree in value and in the gradient of every
//! input under a random linear functional of the output. Library code so that both crates' tests share
//! one copy; nothing in the pipeline calls it.

use candle_core::{Device, Tensor, Var};
use emsl_world::Rng;

/// A tensor of `shape` with normal entries of standard deviation `std`, from `seed` (Box-Muller).
pub fn randn(shape: &[usize], std: f32, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed, "kernel-test");
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n)
        .map(|_| {
            let u1 = rng.unit().max(1e-12);
            let u2 = rng.unit();
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32 * std
        })
        .collect();
    Tensor::from_vec(v, shape, &Device::Cpu).expect("randn: shape and values agree")
}

/// Largest absolute difference, relative to the largest magnitude of `want` (at least 1).
pub fn rel_diff(got: &Tensor, want: &Tensor) -> f32 {
    assert_eq!(got.dims(), want.dims());
    let values = |t: &Tensor| -> Vec<f32> { t.flatten_all().unwrap().to_vec1().unwrap() };
    let (g, w) = (values(got), values(want));
    let scale = w.iter().fold(1f32, |m, x| m.max(x.abs()));
    g.iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
        / scale
}

/// FNV-1a over the bits of every element of `tensors`.
fn fnv(tensors: &[&Tensor]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for t in tensors {
        for x in t.flatten_all().unwrap().to_vec1::<f32>().unwrap() {
            h = (h ^ u64::from(x.to_bits())).wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// Runs `fused` and `composed` on the same inputs and panics, naming `name`, where their values or
/// any input's gradient differ by more than `tol` ([`rel_diff`]), or where an input gets a gradient on
/// one side only. Returns a hash of the fused value and gradients (for same-bits checks).
pub fn check(
    name: &str,
    inputs: &[Tensor],
    fused: impl Fn(&[Tensor]) -> Tensor,
    composed: impl Fn(&[Tensor]) -> Tensor,
    tol: f32,
) -> u64 {
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
    let mut all = vec![&out_f];
    all.extend(grads_f.iter().flatten());
    fnv(&all)
}
