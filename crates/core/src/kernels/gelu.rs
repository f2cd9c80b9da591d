//! GELU, tanh approximation (candle's `gelu`, PyTorch's `approximate="tanh"`), written as
//! `x * sigmoid(2u)` with `u = sqrt(2/pi) (x + 0.044715 x^3)`, which equals `0.5 x (1 + tanh u)`.

use candle_core::{CpuStorage, CustomOp1, Layout, Result, Shape, Tensor};

use super::{data, exp, for_chunks, simd, with_data};

const SQRT_2_OVER_PI: f32 = 0.797_884_6;
const COEF: f32 = 0.044_715;
const CHUNK: usize = 4096;

/// sigmoid(2u) and 2u'.
#[inline(always)]
fn parts(x: f32) -> (f32, f32) {
    let u = SQRT_2_OVER_PI * (x + COEF * x * x * x);
    let s = 1.0 / (1.0 + exp(-2.0 * u));
    (s, 2.0 * SQRT_2_OVER_PI * (1.0 + 3.0 * COEF * x * x))
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "fused-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = data(s, l)?;
        let mut out = vec![0f32; x.len()];
        for_chunks(&mut out, CHUNK, 20 * x.len(), |i, o| {
            simd(
                #[inline(always)]
                || {
                    for (o, x) in o.iter_mut().zip(&x[i * CHUNK..]) {
                        *o = *x * parts(*x).0;
                    }
                },
            )
        });
        Ok((CpuStorage::F32(out), l.shape().clone()))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        let dx = with_data(arg, |x| {
            with_data(grad, |g| {
                let mut dx = vec![0f32; x.len()];
                for_chunks(&mut dx, CHUNK, 30 * x.len(), |i, d| {
                    let (x, g) = (&x[i * CHUNK..], &g[i * CHUNK..]);
                    simd(
                        #[inline(always)]
                        || {
                            for ((d, x), g) in d.iter_mut().zip(x).zip(g) {
                                let (s, du) = parts(*x);
                                *d = *g * (s + *x * s * (1.0 - s) * du);
                            }
                        },
                    )
                });
                dx
            })
        })??;
        Ok(Some(Tensor::from_vec(dx, arg.shape(), arg.device())?))
    }
}

/// GELU (tanh approximation) of every element.
pub fn gelu(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Gelu)
}
