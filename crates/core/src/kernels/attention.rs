//! Causal multi-head self-attention from the packed `qkv` (B, T, 3C) to `y` (B, T, C): scores, mask,
//! softmax and the weighted sum of values in one pass per (batch, head), the probabilities kept for
//! the backward. No T x T tensor goes through candle, and the masked half is never computed.

use std::mem::MaybeUninit;
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use gemm::Parallelism;

use super::linear::{as_uninit, assume_init, gemm_strided, written_by_gemm};
use super::{data, dot, exp, for_chunks, simd, with_data};

struct Attention {
    n_head: usize,
    /// Softmax probabilities of the forward, (B, H, T, T) with the upper triangle unused.
    probs: Mutex<Vec<f32>>,
}

impl Attention {
    fn dims(&self, l: &Layout) -> Result<(usize, usize, usize, usize)> {
        let (b, t, c3) = l.shape().dims3()?;
        let c = c3 / 3;
        if c3 % 3 != 0 || c % self.n_head != 0 {
            candle_core::bail!(
                "qkv width {c3} does not split into 3 x {} heads",
                self.n_head
            );
        }
        Ok((b, t, c, c / self.n_head))
    }
}

impl CustomOp1 for Attention {
    fn name(&self) -> &'static str {
        "fused-causal-attention"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let qkv = data(s, l)?;
        let (b, t, c, hd) = self.dims(l)?;
        let h = self.n_head;
        let c3 = 3 * c;
        let scale = 1.0 / (hd as f32).sqrt();
        // One batch row per task: its outputs and probabilities are contiguous.
        let work = |bi: usize, y: &mut [MaybeUninit<f32>], p: &mut [MaybeUninit<f32>]| {
            let qkv = &qkv[bi * t * c3..(bi + 1) * t * c3];
            for hi in 0..h {
                let p = &mut p[hi * t * t..(hi + 1) * t * t];
                // S = Q K^T (the whole square; the masked half is overwritten below).
                let (q, k, v) = (
                    &qkv[hi * hd..],
                    &qkv[c + hi * hd..],
                    &qkv[2 * c + hi * hd..],
                );
                gemm_strided(
                    p,
                    t,
                    false,
                    (t, t, hd),
                    q,
                    (c3, 1),
                    k,
                    (1, c3),
                    Parallelism::None,
                );
                // SAFETY: the gemm above wrote all t x t elements.
                let p = unsafe { assume_init(p) };
                simd(
                    #[inline(always)]
                    || {
                        for (i, row) in p.chunks_exact_mut(t).enumerate() {
                            softmax_causal_row(row, i, scale);
                        }
                    },
                );
                // Y = P V into this head's columns.
                let out = &mut y[hi * hd..];
                gemm_strided(
                    out,
                    c,
                    false,
                    (t, hd, t),
                    p,
                    (t, 1),
                    v,
                    (c3, 1),
                    Parallelism::None,
                );
            }
        };
        // Both buffers are written whole by the gemms of `work` (no zeroing first).
        let mut probs = Vec::new();
        // SAFETY: `work` writes every row of every head of both buffers with its two gemms.
        let y = unsafe {
            written_by_gemm(b * t * c, |y_all| {
                probs = written_by_gemm(b * h * t * t, |p_all| {
                    if super::threads() > 1 && b > 1 && b * t * t * c >= 1 << 16 {
                        use rayon::prelude::*;
                        y_all
                            .par_chunks_mut(t * c)
                            .zip(p_all.par_chunks_mut(h * t * t))
                            .enumerate()
                            .for_each(|(bi, (y, p))| work(bi, y, p));
                    } else {
                        for (bi, (y, p)) in y_all
                            .chunks_mut(t * c)
                            .zip(p_all.chunks_mut(h * t * t))
                            .enumerate()
                        {
                            work(bi, y, p);
                        }
                    }
                });
            })
        };
        *self.probs.lock().expect("probs lock") = probs;
        Ok((CpuStorage::F32(y), (b, t, c).into()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let (b, t, c3) = arg.dims3()?;
        let c = c3 / 3;
        let h = self.n_head;
        let hd = c / h;
        let scale = 1.0 / (hd as f32).sqrt();
        let probs = self.probs.lock().expect("probs lock");
        let dqkv = with_data(arg, |qkv| {
            with_data(grad, |dy| {
                let mut dqkv = vec![0f32; b * t * c3];
                for_chunks(&mut dqkv, t * c3, b * t * t * c * 3, |bi, d| {
                    let qkv = &qkv[bi * t * c3..(bi + 1) * t * c3];
                    let dy = &dy[bi * t * c..(bi + 1) * t * c];
                    let mut ds = vec![0f32; t * t];
                    for hi in 0..h {
                        let p = &probs[(bi * h + hi) * t * t..(bi * h + hi + 1) * t * t];
                        let (q, k, v) = (
                            &qkv[hi * hd..],
                            &qkv[c + hi * hd..],
                            &qkv[2 * c + hi * hd..],
                        );
                        let dyh = &dy[hi * hd..];
                        let none = Parallelism::None;
                        // dP = dY V^T; dV = P^T dY.
                        gemm_strided(
                            // SAFETY: gemm writes only floats.
                            unsafe { as_uninit(&mut ds) },
                            t,
                            false,
                            (t, t, hd),
                            dyh,
                            (c, 1),
                            v,
                            (1, c3),
                            none,
                        );
                        let dv = &mut d[2 * c + hi * hd..];
                        gemm_strided(
                            // SAFETY: gemm writes only floats.
                            unsafe { as_uninit(dv) },
                            c3,
                            false,
                            (t, hd, t),
                            p,
                            (1, t),
                            dyh,
                            (c, 1),
                            none,
                        );
                        // dS = P (dP - rowsum(P dP)) / sqrt(hd), zero above the diagonal.
                        for (i, (dsr, pr)) in
                            ds.chunks_exact_mut(t).zip(p.chunks_exact(t)).enumerate()
                        {
                            let s = dot(&pr[..=i], &dsr[..=i]);
                            for (x, pj) in dsr[..=i].iter_mut().zip(&pr[..=i]) {
                                *x = pj * (*x - s) * scale;
                            }
                            dsr[i + 1..].iter_mut().for_each(|x| *x = 0.0);
                        }
                        // dQ = dS K; dK = dS^T Q.
                        let dq = &mut d[hi * hd..];
                        gemm_strided(
                            // SAFETY: gemm writes only floats.
                            unsafe { as_uninit(dq) },
                            c3,
                            false,
                            (t, hd, t),
                            &ds,
                            (t, 1),
                            k,
                            (c3, 1),
                            none,
                        );
                        let dk = &mut d[c + hi * hd..];
                        gemm_strided(
                            // SAFETY: gemm writes only floats.
                            unsafe { as_uninit(dk) },
                            c3,
                            false,
                            (t, hd, t),
                            &ds,
                            (1, t),
                            q,
                            (c3, 1),
                            none,
                        );
                    }
                });
                dqkv
            })
        })??;
        Ok(Some(Tensor::from_vec(dqkv, arg.shape(), arg.device())?))
    }
}

/// Row `i` of the scores becomes its causal softmax: `scale` applied, positions after `i` zero.
#[inline(always)]
fn softmax_causal_row(row: &mut [f32], i: usize, scale: f32) {
    let (live, masked) = row.split_at_mut(i + 1);
    for s in live.iter_mut() {
        *s *= scale;
    }
    let max = super::max(live);
    for s in live.iter_mut() {
        *s = exp(*s - max);
    }
    let inv = 1.0 / super::sum(live);
    for s in live.iter_mut() {
        *s *= inv;
    }
    masked.iter_mut().for_each(|x| *x = 0.0);
}

/// Causal self-attention of `n_head` heads over the packed projections `qkv` (B, T, 3C) -> (B, T, C).
pub fn causal_attention(qkv: &Tensor, n_head: usize) -> Result<Tensor> {
    qkv.contiguous()?.apply_op1(Attention {
        n_head,
        probs: Mutex::new(Vec::new()),
    })
}
