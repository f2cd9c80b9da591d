//! Causal self-attention from the packed qkv projection: the fused kernel when training or scoring
//! whole sequences, and the composed candle ops with a key-value cache when sampling.

use candle_core::{Result, Tensor, D};

use crate::model::lora::AdaptedLinear;
use crate::model::ops::softmax_last;

/// Keys and values of the positions seen so far, per layer: (B, H, T_past, hd).
#[derive(Debug, Default, Clone)]
pub struct KvCache {
    pub(super) layers: Vec<Option<(Tensor, Tensor)>>,
}

impl KvCache {
    /// An empty cache for a model of `n_layer` blocks.
    pub fn new(n_layer: usize) -> Self {
        KvCache {
            layers: vec![None; n_layer],
        }
    }

    /// How many positions are cached.
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |(k, _)| k.dim(2).unwrap_or(0))
    }

    /// Whether no position is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
pub(super) struct Attention {
    pub(super) c_attn: AdaptedLinear,
    pub(super) c_proj: AdaptedLinear,
    pub(super) n_head: usize,
}

impl Attention {
    /// `x`: (B, T, C); `mask`: (T, T_past + T) additive causal mask; `cache`: keys and values so far.
    pub(super) fn forward(
        &self,
        x: &Tensor,
        mask: &Tensor,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let (b, t, c) = x.dims3()?;
        let hd = c / self.n_head;
        let qkv = self.c_attn.forward(x)?; // (B, T, 3C)
        if cache.is_none() {
            let y = crate::kernels::causal_attention(&qkv, self.n_head)?; // (B, T, C)
            return self.c_proj.forward(&y);
        }
        let heads = |i: usize| -> Result<Tensor> {
            qkv.narrow(D::Minus1, i * c, c)?
                .reshape((b, t, self.n_head, hd))?
                .transpose(1, 2)? // (B, H, T, hd)
                .contiguous()
        };
        let (q, mut k, mut v) = (heads(0)?, heads(1)?, heads(2)?);
        if let Some(slot) = cache {
            if let Some((pk, pv)) = slot.as_ref() {
                k = Tensor::cat(&[pk, &k], 2)?; // (B, H, T_past + T, hd)
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let scores = (q.matmul(&k.t()?)? / (hd as f64).sqrt())?; // (B, H, T, T_all)
        let att = softmax_last(&scores.broadcast_add(mask)?)?;
        let y = att.matmul(&v)?; // (B, H, T, hd)
        let y = y.transpose(1, 2)?.reshape((b, t, c))?; // (B, T, C)
        self.c_proj.forward(&y)
    }
}
