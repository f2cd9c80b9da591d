//! Layer norm over the last dimension with weight and bias (eps 1e-5), forward and backward in one
//! pass per row each (llm.c's formulation).

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor};

use super::{data, dot, for_chunks, simd, sum, with_data};

pub const EPS: f32 = 1e-5;
/// Widest row (the backward keeps a row on the stack).
pub const MAX_WIDTH: usize = 1024;

/// Mean and 1/sqrt(var + eps) of one row.
#[inline(always)]
fn stats(x: &[f32]) -> (f32, f32) {
    let n = x.len() as f32;
    let mean = sum(x) / n;
    let mut acc = [0f32; 8];
    let full = x.len() / 8 * 8;
    for c in x[..full].chunks_exact(8) {
        for l in 0..8 {
            let d = c[l] - mean;
            acc[l] += d * d;
        }
    }
    let mut var = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for v in &x[full..] {
        var += (v - mean) * (v - mean);
    }
    (mean, 1.0 / (var / n + EPS).sqrt())
}

struct LayerNorm;

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (data(s1, l1)?, data(s2, l2)?, data(s3, l3)?);
        let c = w.len();
        let mut out = vec![0f32; x.len()];
        for_chunks(&mut out, c, 8 * x.len(), |r, o| {
            let x = &x[r * c..(r + 1) * c];
            simd(
                #[inline(always)]
                || {
                    let (mean, rstd) = stats(x);
                    for i in 0..c {
                        o[i] = (x[i] - mean) * rstd * w[i] + b[i];
                    }
                },
            )
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let c = w.elem_count();
        let dev = x.device();
        let (dx, dw, db) = with_data(x, |x| {
            with_data(w, |w| {
                with_data(grad, |g| {
                    let mut dx = vec![0f32; x.len()];
                    for_chunks(&mut dx, c, 12 * x.len(), |r, d| {
                        let (x, g) = (&x[r * c..(r + 1) * c], &g[r * c..(r + 1) * c]);
                        simd(
                            #[inline(always)]
                            || {
                                let (mean, rstd) = stats(x);
                                let mut dnorm = [0f32; MAX_WIDTH];
                                let mut xhat = [0f32; MAX_WIDTH];
                                for i in 0..c {
                                    xhat[i] = (x[i] - mean) * rstd;
                                    dnorm[i] = g[i] * w[i];
                                }
                                let mean_d = sum(&dnorm[..c]) / c as f32;
                                let mean_dx = dot(&dnorm[..c], &xhat[..c]) / c as f32;
                                for i in 0..c {
                                    d[i] = rstd * (dnorm[i] - mean_d - xhat[i] * mean_dx);
                                }
                            },
                        )
                    });
                    // Weight and bias gradients: rows summed in order, one thread.
                    let (mut dw, mut db) = (vec![0f32; c], vec![0f32; c]);
                    for (xr, gr) in x.chunks_exact(c).zip(g.chunks_exact(c)) {
                        let (mean, rstd) = stats(xr);
                        for i in 0..c {
                            dw[i] += gr[i] * ((xr[i] - mean) * rstd);
                            db[i] += gr[i];
                        }
                    }
                    (dx, dw, db)
                })
            })
        })???;
        Ok((
            Some(Tensor::from_vec(dx, x.shape(), dev)?),
            Some(Tensor::from_vec(dw, c, dev)?),
            Some(Tensor::from_vec(db, c, dev)?),
        ))
    }
}

/// Layer norm of `x` over its last dimension, scaled by `w` and shifted by `b`.
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    if w.elem_count() > MAX_WIDTH {
        candle_core::bail!("the fused layer norm takes rows of at most {MAX_WIDTH}");
    }
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, LayerNorm)
}
