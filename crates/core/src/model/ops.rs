//! Softmax, log-softmax and the masked cross-entropy over the vocabulary: the composed, differentiable
//! versions every model family can use on its logits (the fused kernels are the fast path).

use candle_core::{DType, Result, Tensor, D};

/// Softmax over the last dimension, composed of differentiable ops (the max is a constant shift).
pub fn softmax_last(x: &Tensor) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    let e = shifted.exp()?;
    e.broadcast_div(&e.sum_keepdim(D::Minus1)?)
}

/// Log-softmax over the last dimension, composed of differentiable ops.
pub fn log_softmax_last(x: &Tensor) -> Result<Tensor> {
    let shifted = x.broadcast_sub(&x.max_keepdim(D::Minus1)?.detach())?;
    shifted.broadcast_sub(&shifted.exp()?.sum_keepdim(D::Minus1)?.log()?)
}

/// Mean cross-entropy of `logits` (B, T, V) against `targets` (B, T) over positions where `mask` is 1:
/// the fused kernel for f32 logits and mask and u32 targets, else the composed version.
pub fn masked_cross_entropy(logits: &Tensor, targets: &Tensor, mask: &Tensor) -> Result<Tensor> {
    if logits.dtype() == DType::F32 && targets.dtype() == DType::U32 && mask.dtype() == DType::F32 {
        return crate::kernels::masked_cross_entropy(logits, targets, mask);
    }
    masked_cross_entropy_composed(logits, targets, mask)
}

/// [`masked_cross_entropy`] composed of candle ops (the reference of the fused kernel's tests).
pub fn masked_cross_entropy_composed(
    logits: &Tensor,
    targets: &Tensor,
    mask: &Tensor,
) -> Result<Tensor> {
    let logp = log_softmax_last(logits)?; // (B, T, V)
    let picked = logp
        .gather(&targets.unsqueeze(D::Minus1)?, D::Minus1)?
        .squeeze(D::Minus1)?; // (B, T)
    let total = (picked * mask)?.sum_all()?;
    let count = mask.sum_all()?;
    total.neg()?.div(&count)
}
