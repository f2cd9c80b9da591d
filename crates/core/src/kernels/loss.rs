//! Mean cross-entropy over the positions where `mask` is 1, from logits (.., V), targets (..) and the
//! mask (..): log-softmax, pick and reduce in one pass per row; the backward writes
//! `(softmax - onehot) * mask / count` directly.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Result, Shape, Tensor};

use std::sync::Mutex;

use super::{data, data_u32, exp, for_chunks, simd, with_data};

struct CrossEntropy {
    /// Log-sum-exp of every row, from the forward.
    lse: Mutex<Vec<f32>>,
}

/// Log-sum-exp of one row.
#[inline(always)]
fn lse(row: &[f32]) -> f32 {
    let max = super::max(row);
    let mut acc = [0f32; 8];
    let full = row.len() / 8 * 8;
    for c in row[..full].chunks_exact(8) {
        for l in 0..8 {
            acc[l] += exp(c[l] - max);
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for x in &row[full..] {
        s += exp(x - max);
    }
    max + s.ln()
}

impl CustomOp3 for CrossEntropy {
    fn name(&self) -> &'static str {
        "fused-cross-entropy"
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
        let (logits, targets, mask) = (data(s1, l1)?, data_u32(s2, l2)?, data(s3, l3)?);
        let v = l1.dims().last().copied().unwrap_or(1);
        // Per row: the weighted negative log-likelihood and the log-sum-exp.
        let mut rows = vec![0f32; 2 * targets.len()];
        for_chunks(&mut rows, 128, 10 * logits.len(), |ci, out| {
            for (k, o) in out.chunks_exact_mut(2).enumerate() {
                let r = ci * 64 + k;
                if mask[r] != 0.0 {
                    let row = &logits[r * v..(r + 1) * v];
                    let lse = simd(
                        #[inline(always)]
                        || lse(row),
                    );
                    o[0] = -(row[targets[r] as usize] - lse) * mask[r];
                    o[1] = lse;
                }
            }
        });
        let count: f32 = mask.iter().sum();
        let total: f32 = rows.iter().step_by(2).sum();
        *self.lse.lock().expect("lse lock") = rows.iter().skip(1).step_by(2).copied().collect();
        Ok((CpuStorage::F32(vec![total / count]), Shape::from(())))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        targets: &Tensor,
        mask: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let v = logits.dims().last().copied().unwrap_or(1);
        let g = grad.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let targets: Vec<u32> = targets.flatten_all()?.to_vec1()?;
        let lse = self.lse.lock().expect("lse lock");
        let dl = with_data(logits, |x| {
            with_data(mask, |m| {
                let count: f32 = m.iter().sum();
                let mut dl = vec![0f32; x.len()];
                for_chunks(&mut dl, v, 12 * x.len(), |r, d| {
                    if m[r] != 0.0 {
                        let row = &x[r * v..(r + 1) * v];
                        let (w, l) = (g * m[r] / count, lse[r]);
                        simd(
                            #[inline(always)]
                            || {
                                for (d, x) in d.iter_mut().zip(row) {
                                    *d = exp(*x - l) * w;
                                }
                            },
                        );
                        d[targets[r] as usize] -= w;
                    }
                });
                dl
            })
        })??;
        Ok((
            Some(Tensor::from_vec(dl, logits.shape(), logits.device())?),
            None,
            None,
        ))
    }
}

/// Mean cross-entropy of `logits` (.., V) against u32 `targets` (..) over the positions where the f32
/// `mask` (..) is nonzero (weighted by it).
pub fn masked_cross_entropy(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
    logits.contiguous()?.apply_op3(
        &targets.contiguous()?,
        &mask.contiguous()?,
        CrossEntropy {
            lse: Mutex::new(Vec::new()),
        },
    )
}

/// The tied head and the loss in one: `x` (.., C) times `w^T` (w: V x C) gives the logits, which stay
/// inside the op; the backward turns them into their gradient in place and returns those of `x` and
/// `w`. The third input packs each position's target (as f32, exact below 2^24) and mask weight.
struct HeadCrossEntropy {
    /// The logits of the forward, then their gradient.
    logits: Mutex<Vec<f32>>,
    /// Log-sum-exp of every row.
    lse: Mutex<Vec<f32>>,
}

impl CustomOp3 for HeadCrossEntropy {
    fn name(&self) -> &'static str {
        "fused-head-cross-entropy"
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
        let (x, w, tm) = (data(s1, l1)?, data(s2, l2)?, data(s3, l3)?);
        let (v, k) = l2.shape().dims2()?;
        let logits = super::linear::matmul_t_data(x, w, k, v);
        let n = tm.len() / 2;
        let mut rows = vec![0f32; 2 * n];
        for_chunks(&mut rows, 128, 10 * logits.len(), |ci, out| {
            for (j, o) in out.chunks_exact_mut(2).enumerate() {
                let r = ci * 64 + j;
                let row = &logits[r * v..(r + 1) * v];
                let lse = simd(
                    #[inline(always)]
                    || lse(row),
                );
                let (target, weight) = (tm[2 * r] as usize, tm[2 * r + 1]);
                if weight != 0.0 {
                    o[0] = -(row[target] - lse) * weight;
                }
                o[1] = lse;
            }
        });
        let count: f32 = tm.iter().skip(1).step_by(2).sum();
        let total: f32 = rows.iter().step_by(2).sum();
        *self.lse.lock().expect("lse lock") = rows.iter().skip(1).step_by(2).copied().collect();
        *self.logits.lock().expect("logits lock") = logits;
        Ok((CpuStorage::F32(vec![total / count]), Shape::from(())))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        tm: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (v, k) = w.dims2()?;
        let g = grad.to_dtype(DType::F32)?.to_scalar::<f32>()?;
        let tm: Vec<f32> = tm.flatten_all()?.to_vec1()?;
        let lse = self.lse.lock().expect("lse lock");
        let mut dl = std::mem::take(&mut *self.logits.lock().expect("logits lock"));
        let count: f32 = tm.iter().skip(1).step_by(2).sum();
        for_chunks(&mut dl, v, 12 * tm.len() / 2 * v, |r, d| {
            let (target, weight) = (tm[2 * r] as usize, tm[2 * r + 1]);
            if weight == 0.0 {
                d.iter_mut().for_each(|x| *x = 0.0);
                return;
            }
            let (s, l) = (g * weight / count, lse[r]);
            simd(
                #[inline(always)]
                || {
                    for x in d.iter_mut() {
                        *x = exp(*x - l) * s;
                    }
                },
            );
            d[target] -= s;
        });
        let (dx, dw) = super::linear::matmul_t_backward(x, w, &dl, k, v)?;
        Ok((dx, dw, None))
    }
}

/// Mean cross-entropy of the logits `x W^T` (x: (.., C), w: (V, C)) against u32 `targets` (..) over
/// the positions where the f32 `mask` (..) is nonzero, without the logits in the graph.
pub fn head_cross_entropy(
    x: &Tensor,
    w: &Tensor,
    targets: &Tensor,
    mask: &Tensor,
) -> Result<Tensor> {
    let tm = Tensor::stack(
        &[
            targets.flatten_all()?.to_dtype(DType::F32)?,
            mask.flatten_all()?.to_dtype(DType::F32)?,
        ],
        1,
    )?; // (N, 2)
    x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &tm,
        HeadCrossEntropy {
            logits: Mutex::new(Vec::new()),
            lse: Mutex::new(Vec::new()),
        },
    )
}
