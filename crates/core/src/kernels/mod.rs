//! Fused CPU kernels with their own backward, as candle custom ops: linear layers (one gemm per
//! matrix product, bias folded in), layer norm, GELU, causal attention with its softmax, and the
//! masked cross-entropy over the vocabulary. Each replaces a chain of small candle ops and their
//! zero-then-add gradient bookkeeping; `tests/kernels.rs` checks each against the composed version.
//!
//! Work is split over rows (or over the batch) with rayon, every output element computed by one thread
//! in a fixed order, and reductions over rows summed serially: results do not depend on the thread
//! count.

mod attention;
mod gelu;
mod layer_norm;
mod linear;
mod loss;

pub use attention::causal_attention;
pub use gelu::gelu;
pub use layer_norm::layer_norm;
pub use linear::{linear, matmul_t};
pub use loss::{head_cross_entropy, masked_cross_entropy};

use candle_core::{bail, CpuStorage, Layout, Result, Storage, Tensor};
use rayon::prelude::*;

/// The contiguous f32 data a layout addresses (for custom ops' `cpu_fwd`, here and in other crates).
pub fn data<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [f32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<f32>()?[a..b]),
        None => bail!("fused kernels take contiguous inputs"),
    }
}

/// The contiguous u32 data a layout addresses.
pub(crate) fn data_u32<'a>(s: &'a CpuStorage, l: &Layout) -> Result<&'a [u32]> {
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&s.as_slice::<u32>()?[a..b]),
        None => bail!("fused kernels take contiguous inputs"),
    }
}

/// Runs `f` on the contiguous f32 data of `t` (made contiguous first if it is not).
pub fn with_data<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    let t = t.contiguous()?;
    let (s, l) = t.storage_and_layout();
    match &*s {
        Storage::Cpu(c) => Ok(f(data(c, l)?)),
        _ => bail!("fused kernels run on the CPU only"),
    }
}

/// Threads the kernels may use (RAYON_NUM_THREADS, as candle), read once.
pub fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(candle_core::utils::get_num_threads)
}

/// Calls `f(i, chunk)` for each `chunk`-sized piece of `out`, in parallel when the `work` (about the
/// floating-point operations of the whole call) pays for it.
pub fn for_chunks(
    out: &mut [f32],
    chunk: usize,
    work: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    if threads() > 1 && work >= 1 << 16 && out.len() > chunk {
        out.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    } else {
        out.chunks_mut(chunk).enumerate().for_each(|(i, c)| f(i, c));
    }
}

/// Runs `f` compiled for AVX-512 or AVX2 where the CPU has them, so that its loops vectorise sixteen
/// or eight wide instead of four. The arithmetic is the same in every version (Rust never fuses
/// `a * b + c` by itself, and the reductions fix their lanes in the source), so the results are too.
/// `f` must be an `#[inline(always)]` closure.
#[inline(always)]
pub fn simd<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
        unsafe fn avx512<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
        {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { avx512(f) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU has the features the function is compiled for.
            return unsafe { avx2(f) };
        }
    }
    f()
}

/// Largest element, with eight independent lanes (vectorises).
#[inline(always)]
pub(crate) fn max(a: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let full = a.len() / 8 * 8;
    for c in a[..full].chunks_exact(8) {
        for l in 0..8 {
            acc[l] = acc[l].max(c[l]);
        }
    }
    let mut m = acc.iter().fold(f32::NEG_INFINITY, |m, x| m.max(*x));
    for x in &a[full..] {
        m = m.max(*x);
    }
    m
}

/// Settings of the process that the kernels run best with. A binary calls this once, first thing in
/// `main`, before any thread starts: it sets an environment variable, which is only sound while the
/// process has one thread (and candle reads it when its pool starts), so a library must not do it on
/// its own (it did, from `Gpt::new`, which made building a model change the process). The settings
/// change speed only, never results: every kernel computes the same bits at any thread count.
///
/// - glibc's allocator keeps large buffers instead of handing each back to the kernel and faulting
///   fresh zeroed pages in on the next step (the GLIBC_TUNABLES setting of the README, set from
///   inside): buffers up to 32 MiB come from the heap and the heap is not trimmed below 1 GiB.
/// - candle's own elementwise ops (the residual adds, the embedding sum and the gradient
///   accumulation of its backward) run on one thread unless `CANDLE_NUM_THREADS` says otherwise: on
///   these small, memory-bound tensors its spin-waiting thread pool cost more than it gained and took
///   the cores from the kernels' rayon threads (measured at 2 threads: about 1.2-1.6x faster steps).
///   The kernels and the matrix products still use `RAYON_NUM_THREADS` threads.
pub fn tune_runtime() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            // Read once, when candle first starts its pool (after this).
            std::env::set_var("CANDLE_NUM_THREADS", "1");
        }
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        {
            extern "C" {
                fn mallopt(param: i32, value: i32) -> i32;
            }
            const M_TRIM_THRESHOLD: i32 = -1;
            const M_MMAP_THRESHOLD: i32 = -3;
            // SAFETY: mallopt only sets allocator parameters; both values are in range.
            unsafe {
                mallopt(M_MMAP_THRESHOLD, 32 << 20);
                mallopt(M_TRIM_THRESHOLD, 1 << 30);
            }
        }
    });
}

/// Dot product with eight independent accumulators (vectorises; a fixed summation order).
#[inline(always)]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; 8];
    let full = n / 8 * 8;
    for (ca, cb) in a[..full].chunks_exact(8).zip(b[..full].chunks_exact(8)) {
        for l in 0..8 {
            acc[l] += ca[l] * cb[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for i in full..n {
        s += a[i] * b[i];
    }
    s
}

/// Sum with eight independent accumulators.
#[inline(always)]
pub(crate) fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let full = a.len() / 8 * 8;
    for c in a[..full].chunks_exact(8) {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for x in &a[full..] {
        s += x;
    }
    s
}

/// e^x for x in about [-87, 88] (below: about 1e-38), within 2 ulp: Cephes' polynomial on a range
/// reduction by ln 2, written without branches or libm calls so that loops over it vectorise.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    let x = x.clamp(-87.0, 88.0);
    // Round to the nearest integer with the 1.5 * 2^23 trick (no libm, vectorises): `shifted` holds
    // `n` in its low mantissa bits, so `n` as an integer is a subtraction of bit patterns (an `as i32`
    // conversion saturates, which kept the loops from vectorising).
    let shifted = x * std::f32::consts::LOG2_E + MAGIC;
    let n = shifted - MAGIC;
    let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 1.666_666_5e-1)
        * r
        + 0.5;
    let e = p * r * r + r + 1.0;
    let n_int = shifted.to_bits().wrapping_sub(MAGIC.to_bits());
    e * f32::from_bits(n_int.wrapping_add(127) << 23)
}

#[cfg(test)]
mod tests {
    #[test]
    fn fast_exp_matches_libm() {
        let mut worst = 0f32;
        let mut x = -80.0f32;
        while x < 80.0 {
            let (a, b) = (super::exp(x), x.exp());
            worst = worst.max(((a - b) / b).abs());
            x += 0.001_37;
        }
        assert!(worst < 4e-7, "relative error {worst}");
    }

    /// The integer exponent taken from the bits equals the plain `as i32` conversion it replaced, so
    /// the vectorising form computes the same bits.
    #[test]
    fn fast_exp_is_the_same_as_with_a_saturating_conversion() {
        fn reference(x: f32) -> f32 {
            let x = x.clamp(-87.0, 88.0);
            let n = (x * std::f32::consts::LOG2_E + 12_582_912.0) - 12_582_912.0;
            let r = x - n * 0.693_359_4 + n * 2.121_944_4e-4;
            let p = ((((1.987_569_1e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
                * r
                + 1.666_666_5e-1)
                * r
                + 0.5;
            let e = p * r * r + r + 1.0;
            e * f32::from_bits(((n as i32 + 127) << 23) as u32)
        }
        let mut x = -200.0f32;
        while x < 200.0 {
            assert_eq!(super::exp(x).to_bits(), reference(x).to_bits(), "x = {x}");
            x += 0.000_97;
        }
    }
}
