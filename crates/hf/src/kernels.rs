//! Fused CPU kernels of the decoder's own ops, each with its backward, as the core crate's kernels are
//! for the GPT: RMS norm and SwiGLU's `silu(gate) * up`. Composed from candle ops they are five to ten
//! passes over memory and as many tensors in the graph; here one pass forward and one backward. Work is
//! cut into blocks fixed by the shape (never by the thread count), so results are the same at any
//! number of threads; `tests/kernels.rs` checks values and gradients against the composed ops.

use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use emsl_core::kernels::{data, for_chunks, simd, threads, with_data};
use rayon::prelude::*;

/// Rows per block of the RMS norm.
const ROWS: usize = 16;
/// Elements per block of SwiGLU.
const CHUNK: usize = 1 << 14;

struct RmsNorm {
    eps: f32,
    /// 1 / rms of every row, from the forward.
    inv: Mutex<Vec<f32>>,
}

impl CustomOp2 for RmsNorm {
    fn name(&self) -> &'static str {
        "fused-rms-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w) = (data(s1, l1)?, data(s2, l2)?);
        let c = w.len();
        let rows = x.len() / c;
        let mut inv = vec![0f32; rows];
        for (r, i) in inv.iter_mut().enumerate() {
            let row = &x[r * c..(r + 1) * c];
            let ss: f32 = simd(
                #[inline(always)]
                || row.iter().map(|v| v * v).sum(),
            );
            *i = 1.0 / (ss / c as f32 + self.eps).sqrt();
        }
        let mut y = vec![0f32; x.len()];
        let work = 2 * y.len();
        for_chunks(&mut y, ROWS * c, work, |b, out| {
            for (j, o) in out.chunks_mut(c).enumerate() {
                let r = b * ROWS + j;
                let (row, s) = (&x[r * c..(r + 1) * c], inv[r]);
                simd(
                    #[inline(always)]
                    || {
                        for ((o, v), w) in o.iter_mut().zip(row).zip(w) {
                            *o = v * s * w;
                        }
                    },
                );
            }
        });
        *self.inv.lock().expect("inv lock") = inv;
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    /// With `xh = x / rms` and `g = dy * w`: `dx = (g - xh mean(g xh)) / rms`, `dw = sum_rows(dy xh)`,
    /// each only where the tensor takes part in the graph (LoRA leaves the norms frozen).
    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let c = w.elem_count();
        let inv = self.inv.lock().expect("inv lock").clone();
        let (want_dx, want_dw) = (x.track_op(), w.track_op());
        let (dx, dw) = with_data(x, |x| {
            with_data(w, |w| {
                with_data(grad, |dy| {
                    let rows = x.len() / c;
                    let row = |r: usize| (&x[r * c..(r + 1) * c], &dy[r * c..(r + 1) * c], inv[r]);
                    let dx = want_dx.then(|| {
                        let mut dx = vec![0f32; x.len()];
                        for_chunks(&mut dx, ROWS * c, 8 * x.len(), |b, out| {
                            for (j, o) in out.chunks_mut(c).enumerate() {
                                let (xr, dyr, s) = row(b * ROWS + j);
                                let dot: f32 = xr
                                    .iter()
                                    .zip(dyr)
                                    .zip(w)
                                    .map(|((x, d), w)| x * s * d * w)
                                    .sum();
                                let mean = dot / c as f32;
                                for (((o, x), d), w) in o.iter_mut().zip(xr).zip(dyr).zip(w) {
                                    *o = (d * w - x * s * mean) * s;
                                }
                            }
                        });
                        dx
                    });
                    // Per block of rows, then the blocks in order: the same sum at any thread count.
                    let dw = want_dw.then(|| {
                        let mut partial = vec![0f32; rows.div_ceil(ROWS) * c];
                        for_chunks(&mut partial, c, 3 * x.len(), |b, acc| {
                            for r in b * ROWS..((b + 1) * ROWS).min(rows) {
                                let (xr, dyr, s) = row(r);
                                for ((a, x), d) in acc.iter_mut().zip(xr).zip(dyr) {
                                    *a += d * x * s;
                                }
                            }
                        });
                        let mut dw = vec![0f32; c];
                        for p in partial.chunks(c) {
                            for (d, v) in dw.iter_mut().zip(p) {
                                *d += v;
                            }
                        }
                        dw
                    });
                    (dx, dw)
                })
            })
        })???;
        Ok((
            dx.map(|v| Tensor::from_vec(v, x.shape(), x.device()))
                .transpose()?,
            dw.map(|v| Tensor::from_vec(v, w.shape(), w.device()))
                .transpose()?,
        ))
    }
}

/// RMS norm over the last dimension of `x` (.., C) with weight `w` (C).
pub fn rms_norm(x: &Tensor, w: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op2(
        &w.contiguous()?,
        RmsNorm {
            eps: eps as f32,
            inv: Mutex::new(Vec::new()),
        },
    )
}

struct SwiGlu;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl CustomOp2 for SwiGlu {
    fn name(&self) -> &'static str {
        "fused-swiglu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (g, u) = (data(s1, l1)?, data(s2, l2)?);
        if g.len() != u.len() {
            candle_core::bail!("swiglu: gate and up differ in size");
        }
        let mut y = vec![0f32; g.len()];
        for_chunks(&mut y, CHUNK, 4 * g.len(), |b, out| {
            let at = b * CHUNK;
            for ((o, g), u) in out.iter_mut().zip(&g[at..]).zip(&u[at..]) {
                *o = g * sigmoid(*g) * u;
            }
        });
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    /// `d gate = dy u sig(g) (1 + g (1 - sig(g)))`, `d up = dy g sig(g)`.
    fn bwd(
        &self,
        g: &Tensor,
        u: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dg, du) = with_data(g, |g| {
            with_data(u, |u| {
                with_data(grad, |dy| {
                    let (mut dg, mut du) = (vec![0f32; g.len()], vec![0f32; g.len()]);
                    // Both gradients in one pass over the block, one sigmoid per element.
                    let block = |(b, (og, ou)): (usize, (&mut [f32], &mut [f32]))| {
                        let at = b * CHUNK;
                        let inputs = g[at..].iter().zip(&u[at..]).zip(&dy[at..]);
                        for ((og, ou), ((g, u), d)) in og.iter_mut().zip(ou.iter_mut()).zip(inputs)
                        {
                            let s = sigmoid(*g);
                            *og = d * u * s * (1.0 + g * (1.0 - s));
                            *ou = d * g * s;
                        }
                    };
                    // Two outputs per block, so `for_chunks` (one output) does not fit; the same rule.
                    if threads() > 1 && 6 * g.len() >= 1 << 16 {
                        let pairs = dg.par_chunks_mut(CHUNK).zip(du.par_chunks_mut(CHUNK));
                        pairs.enumerate().for_each(block);
                    } else {
                        let pairs = dg.chunks_mut(CHUNK).zip(du.chunks_mut(CHUNK));
                        pairs.enumerate().for_each(block);
                    }
                    (dg, du)
                })
            })
        })???;
        Ok((
            Some(Tensor::from_vec(dg, g.shape(), g.device())?),
            Some(Tensor::from_vec(du, u.shape(), u.device())?),
        ))
    }
}

/// `silu(gate) * up`, elementwise, for two tensors of one shape.
pub fn swiglu(gate: &Tensor, up: &Tensor) -> Result<Tensor> {
    gate.contiguous()?.apply_op2(&up.contiguous()?, SwiGlu)
}
