//! `x W^T (+ b)` over the last dimension as one gemm on the (rows, k) view of `x`, the bias folded
//! into the destination; backward: two gemms and a column sum.

use std::mem::MaybeUninit;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Result, Shape, Tensor};
use gemm::Parallelism;

use super::{data, threads, with_data};

/// Blocks a large product is cut into: a number fixed by the shape alone, so that the arithmetic is
/// the same at any thread count.
const BLOCKS: usize = 8;
/// A `b` of at least this many floats (4 MiB, beyond a core's L2) is cut by columns, not rows.
const LARGE_B: usize = 1 << 20;

/// `dst (m, n) = [dst +] a (m, k) . b (k, n)`, each given as (row stride, column stride), `dst`
/// contiguous. Large products are cut into [`BLOCKS`] blocks and the blocks run on the rayon threads,
/// each a single-threaded gemm: the same arithmetic at any thread count, and no thread pool inside
/// another. The kit's own models cut by rows (each block packs all of `b`, which is small); a large
/// `b` (a 0.5B model's weights, its 150k-token head) is cut by columns, so each block packs only its
/// share of `b` and the few rows of `a` again, and a handful of rows (sampling) still uses every core.
fn gemm_into(
    dst: &mut [MaybeUninit<f32>],
    accumulate: bool,
    (m, n, k): (usize, usize, usize),
    a: &[f32],
    (a_rs, a_cs): (usize, usize),
    b: &[f32],
    (b_rs, b_cs): (usize, usize),
) {
    let none = Parallelism::None;
    let dst = &mut dst[..m * n];
    if m * n * k < 1 << 18 || (m < 32 && n * k < LARGE_B) {
        return gemm_strided(
            dst,
            n,
            accumulate,
            (m, n, k),
            a,
            (a_rs, a_cs),
            b,
            (b_rs, b_cs),
            none,
        );
    }
    if n * k >= LARGE_B && n >= 2 * BLOCKS {
        let cols = n.div_ceil(BLOCKS).div_ceil(16) * 16;
        let blocks = n.div_ceil(cols);
        let ptr = SendPtr(dst.as_mut_ptr());
        let block = |j: usize| {
            let (first, width) = (j * cols, cols.min(n - j * cols));
            let b = &b[first * b_cs..];
            // SAFETY: block `j` writes (and, accumulating, reads) only the columns
            // `first..first + width` of each of the `m` rows of `dst`, which no other block touches;
            // `dst` outlives the blocks, which all end before this function returns.
            unsafe {
                let d = (ptr.get().add(first), (m - 1) * n + width);
                gemm_raw(
                    d,
                    n,
                    accumulate,
                    (m, width, k),
                    a,
                    (a_rs, a_cs),
                    b,
                    (b_rs, b_cs),
                    none,
                );
            }
        };
        if threads() > 1 {
            use rayon::prelude::*;
            (0..blocks).into_par_iter().for_each(block);
        } else {
            (0..blocks).for_each(block);
        }
        return;
    }
    let rows = m.div_ceil(BLOCKS).div_ceil(8) * 8;
    let block = |(i, d): (usize, &mut [MaybeUninit<f32>])| {
        let r = d.len() / n;
        let a = &a[i * rows * a_rs..];
        gemm_strided(
            d,
            n,
            accumulate,
            (r, n, k),
            a,
            (a_rs, a_cs),
            b,
            (b_rs, b_cs),
            none,
        );
    };
    if threads() > 1 {
        use rayon::prelude::*;
        dst.par_chunks_mut(rows * n).enumerate().for_each(block);
    } else {
        dst.chunks_mut(rows * n).enumerate().for_each(block);
    }
}

/// A destination pointer the column blocks share; each writes its own columns.
#[derive(Clone, Copy)]
struct SendPtr(*mut MaybeUninit<f32>);
// SAFETY: the blocks that share it write disjoint elements (see `gemm_into`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

impl SendPtr {
    fn get(self) -> *mut MaybeUninit<f32> {
        self.0
    }
}

/// [`gemm_into`] with the destination's row stride and the parallelism given.
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_strided(
    dst: &mut [MaybeUninit<f32>],
    dst_rs: usize,
    accumulate: bool,
    mnk: (usize, usize, usize),
    a: &[f32],
    a_strides: (usize, usize),
    b: &[f32],
    b_strides: (usize, usize),
    parallelism: Parallelism,
) {
    let (len, ptr) = (dst.len(), dst.as_mut_ptr());
    // SAFETY: `ptr` is the start of `dst`, `len` floats that this call borrows mutably.
    unsafe {
        gemm_raw(
            (ptr, len),
            dst_rs,
            accumulate,
            mnk,
            a,
            a_strides,
            b,
            b_strides,
            parallelism,
        )
    }
}

/// [`gemm_strided`] into the (m, n) destination at `dst.0`, of row stride `dst_rs`, inside a buffer of
/// `dst.1` floats from there.
///
/// # Safety
/// `dst.0` must be valid for reads and writes of `dst.1` floats, and no other thread may touch the
/// (m, n) elements this call writes while it runs.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw(
    (dst, len): (*mut MaybeUninit<f32>, usize),
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
    assert!(dst_rs >= n && len > (m - 1) * dst_rs + (n - 1));
    assert!(m == 0 || k == 0 || a.len() > (m - 1) * a_rs + (k - 1) * a_cs);
    assert!(n == 0 || k == 0 || b.len() > (k - 1) * b_rs + (n - 1) * b_cs);
    // SAFETY: the asserts above keep every index the strides reach inside the buffers; gemm writes every
    // element of the (m, n) destination, and reads it only when `accumulate` (callers then pass
    // initialised memory).
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.cast::<f32>(),
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
    match b {
        Some(b) => {
            let mut out = Vec::with_capacity(m * n);
            for _ in 0..m {
                out.extend_from_slice(b);
            }
            // SAFETY: gemm writes only floats into `out`.
            let dst = unsafe { as_uninit(&mut out) };
            gemm_into(dst, true, (m, n, k), x, (k, 1), w, (1, k));
            out
        }
        // SAFETY: the gemm writes the whole (m, n) destination.
        None => unsafe {
            written_by_gemm(m * n, |d| {
                gemm_into(d, false, (m, n, k), x, (k, 1), w, (1, k))
            })
        },
    }
}

/// `x W^T` of the data: `x` (m, k), `w` (n, k) -> (m, n).
pub(crate) fn matmul_t_data(x: &[f32], w: &[f32], k: usize, n: usize) -> Vec<f32> {
    forward(x, w, None, k, n)
}

/// The gradients of `x` (m, k) and `w` (n, k) from that of `x W^T`, `dy` (m, n), each only where the
/// tensor takes part in the graph (`track_op`): a frozen weight (LoRA's base, read detached) gets no
/// gradient, which saves half of the backward's matrix products.
pub(crate) fn matmul_t_backward(
    x: &Tensor,
    w: &Tensor,
    dy: &[f32],
    k: usize,
    n: usize,
) -> Result<(Option<Tensor>, Option<Tensor>)> {
    let m = x.elem_count() / k;
    let dev = x.device();
    // SAFETY (both): each gemm writes its whole destination, (m, k) and (n, k).
    let dx = x
        .track_op()
        .then(|| {
            let dx = with_data(w, |wd| unsafe {
                written_by_gemm(m * k, |d| {
                    gemm_into(d, false, (m, k, n), dy, (n, 1), wd, (k, 1))
                })
            })?;
            Tensor::from_vec(dx, x.shape(), dev)
        })
        .transpose()?;
    let dw = w
        .track_op()
        .then(|| {
            let dw = with_data(x, |xd| unsafe {
                written_by_gemm(n * k, |d| {
                    gemm_into(d, false, (n, k, m), dy, (1, n), xd, (k, 1))
                })
            })?;
            Tensor::from_vec(dw, (n, k), dev)
        })
        .transpose()?;
    Ok((dx, dw))
}

/// The initialised `v` seen as memory gemm may write.
///
/// # Safety
/// Only initialised values may be written through the returned slice (as gemm does): writing
/// `MaybeUninit::uninit()` would leave `v` holding uninitialised floats.
pub(crate) unsafe fn as_uninit(v: &mut [f32]) -> &mut [MaybeUninit<f32>] {
    // SAFETY: same layout; the caller writes only initialised values through it.
    unsafe { &mut *(std::ptr::from_mut(v) as *mut [MaybeUninit<f32>]) }
}

/// `v` seen as initialised floats.
///
/// # Safety
/// Every element of `v` must have been written.
pub(crate) unsafe fn assume_init(v: &mut [MaybeUninit<f32>]) -> &mut [f32] {
    // SAFETY: same layout; the caller guarantees every element is initialised.
    unsafe { &mut *(std::ptr::from_mut(v) as *mut [f32]) }
}

/// A buffer of `len` floats that `fill` writes completely with gemms (`accumulate` false), without
/// zeroing it first.
///
/// # Safety
/// `fill` must write every one of the `len` elements it is given (and read none before writing it).
pub(crate) unsafe fn written_by_gemm(
    len: usize,
    fill: impl FnOnce(&mut [MaybeUninit<f32>]),
) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(len);
    fill(&mut v.spare_capacity_mut()[..len]);
    // SAFETY: the caller guarantees `fill` has written all `len` elements.
    unsafe { v.set_len(len) };
    v
}

/// Gradients of x (m, k) and w (n, k), and of the bias when asked, each only where the tensor takes
/// part in the graph.
fn backward(
    x: &Tensor,
    w: &Tensor,
    grad: &Tensor,
    bias: Option<&Tensor>,
) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
    let (n, k) = w.dims2()?;
    let dev = x.device();
    with_data(grad, |dy| {
        let (dx, dw) = matmul_t_backward(x, w, dy, k, n)?;
        let db = bias.filter(|b| b.track_op()).map(|_| {
            let mut db = vec![0f32; n];
            for row in dy.chunks_exact(n) {
                for (d, g) in db.iter_mut().zip(row) {
                    *d += g;
                }
            }
            db
        });
        Ok((
            dx,
            dw,
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
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        backward(x, w, grad, Some(b))
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
        let (dx, dw, _) = backward(x, w, grad, None)?;
        Ok((dx, dw))
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
