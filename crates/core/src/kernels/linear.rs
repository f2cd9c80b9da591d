//! `x W^T (+ b)` over the last dimension as one gemm on the (rows, k) view of `x`, the bias folded
//! into the destination; backward: two gemms and a column sum.

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::Parallelism;

use super::{data, threads, with_data};

fn parallelism(m: usize, n: usize, k: usize) -> Parallelism {
    let t = threads();
    if t > 1 && m * n * k >= 1 << 18 {
        Parallelism::Rayon(t)
    } else {
        Parallelism::None
    }
}

/// `dst (m, n) = [dst +] a (m, k) . b (k, n)`, each given as (row stride, column stride).
fn gemm_into(
    dst: &mut [f32],
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
) {
    gemm_strided(
        dst,
        n,
        accumulate,
        (m, n, k),
        a,
        a_strides,
        b,
        b_strides,
        parallelism(m, n, k),
    )
}

/// [`gemm_into`] with the destination's row stride and the parallelism given.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_strided(
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
    parallelism: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    assert!(dst_rs >= n && dst.len() > (m - 1) * dst_rs + (n - 1));
    assert!(m == 0 || k == 0 || a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
    assert!(n == 0 || k == 0 || b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    // SAFETY: the asserts above keep every index the strides reach inside the slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        )
    }
}

/// The forward: `x` (m, k), `w` (n, k), optional bias (n) -> (m, n).
fn forward(x: &[f32], w: &[f32], b: Option<&[f32]>, k: usize, n: usize) -> Vec<f32> {
    let m = x.len() / k;
    let mut out = vec![0f32; m * n];
    if let Some(b) = b {
        for row in out.chunks_exact_mut(n) {
            row.copy_from_slice(b);
        }
    }
    gemm_into(&mut out, b.is_some(), (m, n, k), x, (k, 1), w, (1, k));
    out
}

/// Gradients of x (m, k) and w (n, k), and of the bias when asked.
fn backward(
    x: &Tensor,
    w: &Tensor,
    grad: &Tensor,
    with_bias: bool,
) -> Result<(Tensor, Tensor, Option<Tensor>)> {
    let (n, k) = w.dims2()?;
    let m = x.elem_count() / k;
    let dev = x.device();
    with_data(grad, |dy| {
        let dx = with_data(w, |wd| {
            let mut dx = vec![0f32; m * k];
            gemm_into(&mut dx, false, (m, k, n), dy, (n, 1), wd, (k, 1));
            dx
        })?;
        let dw = with_data(x, |xd| {
            let mut dw = vec![0f32; n * k];
            gemm_into(&mut dw, false, (n, k, m), dy, (1, n), xd, (k, 1));
            dw
        })?;
        let db = with_bias.then(|| {
            let mut db = vec![0f32; n];
            for row in dy.chunks_exact(n) {
                for (d, g) in db.iter_mut().zip(row) {
                    *d += g;
                }
            }
            db
        });
        Ok((
            Tensor::from_vec(dx, x.shape(), dev)?,
            Tensor::from_vec(dw, (n, k), dev)?,
            db.map(|db| Tensor::from_vec(db, n, dev)).transpose()?,
        ))
    })?
}

fn out_shape(x: &Layout, n: usize) -> Shape {
    let mut dims = x.dims().to_vec();
    *dims.last_mut().expect("rank >= 1") = n;
    Shape::from(dims)
}

struct Linear;

impl CustomOp3 for Linear {
    fn name(&self) -> &'static str {
        "fused-linear"
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
        let (n, k) = l2.shape().dims2()?;
        let out = forward(data(s1, l1)?, data(s2, l2)?, Some(data(s3, l3)?), k, n);
        Ok((CpuStorage::F32(out), out_shape(l1, n)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, db) = backward(x, w, grad, true)?;
        Ok((Some(dx), Some(dw), db))
    }
}

struct MatmulT;

impl CustomOp2 for MatmulT {
    fn name(&self) -> &'static str {
        "fused-matmul-t"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (n, k) = l2.shape().dims2()?;
        let out = forward(data(s1, l1)?, data(s2, l2)?, None, k, n);
        Ok((CpuStorage::F32(out), out_shape(l1, n)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let (dx, dw, _) = backward(x, w, grad, false)?;
        Ok((Some(dx), Some(dw)))
    }
}

/// `x W^T + b` over the last dimension of `x` (.., k), with `w` (n, k) and `b` (n).
pub fn linear(x: &Tensor, w: &Tensor, b: &Tensor) -> Result<Tensor> {
    x.contiguous()?
        .apply_op3(&w.contiguous()?, &b.contiguous()?, Linear)
}

/// `x W^T` over the last dimension of `x` (.., k), with `w` (n, k).
pub fn matmul_t(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op2(&w.contiguous()?, MatmulT)
}
