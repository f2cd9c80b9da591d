//! The kit's differentiable forward of the Llama-style decoder that Qwen2 and Llama share: pre-RMSNorm
//! blocks, causal grouped-query attention with rotary positions, a SwiGLU MLP. Written for training:
//! every op has a backward. candle 0.11's fused `rms_norm`, `softmax_last_dim` and `rope` do not (they
//! are `apply_op*_no_bwd`), which is why candle-transformers' own models give a gradient to 1 of 26
//! variables (docs/design.md, "Measured facts the code relies on"); here RMS norm and SwiGLU are the
//! kit's own fused kernels with their backward (`kernels.rs`), attention over a whole sequence the
//! core crate's fused causal attention (with the KV cache, the composed softmax of the core crate),
//! and RoPE `rotary_emb::rope_slow`.
//!
//! Names follow the Hugging Face weights (`VarBuilder::pp`): `model.layers.{i}.self_attn.q_proj`, ...
//! Shapes: B batch rows, T new positions, S all positions (cached and new), C hidden size, H query
//! heads, K key/value heads, D head dim, F the MLP's width.

use candle_core::{Result, Tensor};
use candle_nn::{Activation, Linear, Module, VarBuilder};
use emsl_core::model::{softmax_last, AdaptedLinear};

use crate::config::DecoderConfig;

/// RMS norm over the last dimension, composed of differentiable ops.
#[derive(Debug, Clone)]
pub struct RmsNorm {
    weight: Tensor,
    eps: f64,
}

impl RmsNorm {
    fn new(cfg: &DecoderConfig, vb: VarBuilder) -> Result<Self> {
        Ok(RmsNorm {
            weight: vb.get(cfg.hidden_size, "weight")?,
            eps: cfg.rms_norm_eps,
        })
    }

    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::kernels::rms_norm(x, &self.weight, self.eps)
    }

    pub fn freeze(&mut self) {
        self.weight = self.weight.detach();
    }
}

/// A linear layer of the Hugging Face checkpoint, as the core crate's [`AdaptedLinear`] so that LoRA
/// attaches to it the way it does to the GPT's.
fn linear(in_dim: usize, out_dim: usize, bias: bool, vb: VarBuilder) -> Result<AdaptedLinear> {
    let weight = vb.get((out_dim, in_dim), "weight")?;
    let bias = if bias {
        Some(vb.get(out_dim, "bias")?)
    } else {
        None
    };
    Ok(AdaptedLinear::new(Linear::new(weight, bias)))
}

/// Reads a frozen layer's weights detached (sharing their storage), so no gradient reaches them.
fn freeze_linear(l: &mut AdaptedLinear) {
    let w = l.linear.weight().detach();
    let b = l.linear.bias().map(Tensor::detach);
    l.linear = Linear::new(w, b);
}

/// The cos and sin of RoPE's angles at positions `start..start + t`: each (T, D / 2).
pub fn rope_tables(
    inv_freq: &[f64],
    start: usize,
    t: usize,
    device: &candle_core::Device,
) -> Result<(Tensor, Tensor)> {
    let half = inv_freq.len();
    let mut cos = Vec::with_capacity(t * half);
    let mut sin = Vec::with_capacity(t * half);
    for p in start..start + t {
        for f in inv_freq {
            let angle = p as f64 * f;
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    Ok((
        Tensor::from_vec(cos, (t, half), device)?,
        Tensor::from_vec(sin, (t, half), device)?,
    ))
}

#[derive(Debug, Clone)]
pub struct Attention {
    pub q_proj: AdaptedLinear,
    pub k_proj: AdaptedLinear,
    pub v_proj: AdaptedLinear,
    pub o_proj: AdaptedLinear,
    num_heads: usize,
    num_kv_heads: usize,
    head_dim: usize,
}

impl Attention {
    fn new(cfg: &DecoderConfig, vb: VarBuilder) -> Result<Self> {
        let (c, d) = (cfg.hidden_size, cfg.head_dim);
        Ok(Attention {
            q_proj: linear(c, cfg.num_heads * d, cfg.qkv_bias, vb.pp("q_proj"))?,
            k_proj: linear(c, cfg.num_kv_heads * d, cfg.qkv_bias, vb.pp("k_proj"))?,
            v_proj: linear(c, cfg.num_kv_heads * d, cfg.qkv_bias, vb.pp("v_proj"))?,
            o_proj: linear(cfg.num_heads * d, c, false, vb.pp("o_proj"))?,
            num_heads: cfg.num_heads,
            num_kv_heads: cfg.num_kv_heads,
            head_dim: d,
        })
    }

    /// `x` (B, T, C); `rope` the (T, D/2) tables of the new positions; `mask` (T, S) additive;
    /// `cache` the keys and values of the earlier positions, (B, K, S - T, D) each, extended here.
    fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        mask: &Tensor,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        let (h, k_heads, d) = (self.num_heads, self.num_kv_heads, self.head_dim);
        let split = |y: Tensor, n: usize| -> Result<Tensor> {
            y.reshape((b, t, n, d))?.transpose(1, 2)?.contiguous() // (B, n, T, D)
        };
        let q = split(self.q_proj.forward(x)?, h)?; // (B, H, T, D)
        let k = split(self.k_proj.forward(x)?, k_heads)?; // (B, K, T, D)
        let v = split(self.v_proj.forward(x)?, k_heads)?; // (B, K, T, D)
        let (cos, sin) = rope;
        let q = candle_nn::rotary_emb::rope_slow(&q, cos, sin)?;
        let mut k = candle_nn::rotary_emb::rope_slow(&k, cos, sin)?;
        let mut v = v;
        if let Some(slot) = cache {
            if let Some((pk, pv)) = slot.as_ref() {
                k = Tensor::cat(&[pk, &k], 2)?; // (B, K, S, D)
                v = Tensor::cat(&[pv, &v], 2)?;
            }
            *slot = Some((k.clone(), v.clone()));
        }
        let (k, v) = (repeat_kv(&k, h / k_heads)?, repeat_kv(&v, h / k_heads)?); // (B, H, S, D)
        let y = if k.dim(2)? == t {
            // No earlier positions (training, probes, a prompt's first pass): the core crate's fused
            // causal attention over the packed (B, T, 3 H D) projections, no T x T tensor in the graph.
            let pack = |x: &Tensor| x.transpose(1, 2)?.reshape((b, t, h * d)); // (B, T, H D)
            let qkv = Tensor::cat(&[pack(&q)?, pack(&k)?, pack(&v)?], 2)?;
            emsl_core::kernels::causal_attention(&qkv, h)? // (B, T, H D)
        } else {
            let scores = (q.matmul(&k.t()?)? / (d as f64).sqrt())?; // (B, H, T, S)
            let att = softmax_last(&scores.broadcast_add(mask)?)?;
            let y = att.matmul(&v)?; // (B, H, T, D)
            y.transpose(1, 2)?.reshape((b, t, h * d))? // (B, T, C)
        };
        self.o_proj.forward(&y)
    }
}

/// Each of the K key/value heads serves `n` consecutive query heads: (B, K, S, D) -> (B, K n, S, D),
/// head `i` reading kv head `i / n`, as Hugging Face's `repeat_kv`.
fn repeat_kv(x: &Tensor, n: usize) -> Result<Tensor> {
    if n == 1 {
        return Ok(x.clone());
    }
    let (b, k, s, d) = x.dims4()?;
    x.unsqueeze(2)?
        .broadcast_as((b, k, n, s, d))?
        .reshape((b, k * n, s, d))
}

#[derive(Debug, Clone)]
pub struct Mlp {
    pub gate_proj: AdaptedLinear,
    pub up_proj: AdaptedLinear,
    pub down_proj: AdaptedLinear,
    act: Activation,
}

impl Mlp {
    fn new(cfg: &DecoderConfig, vb: VarBuilder) -> Result<Self> {
        let (c, f) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Mlp {
            gate_proj: linear(c, f, false, vb.pp("gate_proj"))?,
            up_proj: linear(c, f, false, vb.pp("up_proj"))?,
            down_proj: linear(f, c, false, vb.pp("down_proj"))?,
            act: cfg.hidden_act,
        })
    }

    /// (B, T, C) -> (B, T, C): `down(act(gate(x)) * up(x))`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (gate, up) = (self.gate_proj.forward(x)?, self.up_proj.forward(x)?); // (B, T, F) each
        let h = match self.act {
            Activation::Silu => crate::kernels::swiglu(&gate, &up)?,
            act => (act.forward(&gate)? * up)?,
        };
        self.down_proj.forward(&h)
    }
}

#[derive(Debug, Clone)]
pub struct Block {
    input_layernorm: RmsNorm,
    pub self_attn: Attention,
    post_attention_layernorm: RmsNorm,
    pub mlp: Mlp,
}

impl Block {
    pub fn new(cfg: &DecoderConfig, vb: VarBuilder) -> Result<Self> {
        Ok(Block {
            input_layernorm: RmsNorm::new(cfg, vb.pp("input_layernorm"))?,
            self_attn: Attention::new(cfg, vb.pp("self_attn"))?,
            post_attention_layernorm: RmsNorm::new(cfg, vb.pp("post_attention_layernorm"))?,
            mlp: Mlp::new(cfg, vb.pp("mlp"))?,
        })
    }

    /// (B, T, C) -> (B, T, C), the residual stream after this block.
    pub fn forward(
        &self,
        x: &Tensor,
        rope: &(Tensor, Tensor),
        mask: &Tensor,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let a = self
            .self_attn
            .forward(&self.input_layernorm.forward(x)?, rope, mask, cache)?;
        let x = (x + a)?;
        let m = self
            .mlp
            .forward(&self.post_attention_layernorm.forward(&x)?)?;
        &x + m
    }

    /// The block's linear layers by their name under the block (`self_attn.q_proj`, ...).
    pub fn linears(&self) -> [(&'static str, &AdaptedLinear); 7] {
        let (a, m) = (&self.self_attn, &self.mlp);
        [
            ("self_attn.q_proj", &a.q_proj),
            ("self_attn.k_proj", &a.k_proj),
            ("self_attn.v_proj", &a.v_proj),
            ("self_attn.o_proj", &a.o_proj),
            ("mlp.gate_proj", &m.gate_proj),
            ("mlp.up_proj", &m.up_proj),
            ("mlp.down_proj", &m.down_proj),
        ]
    }

    /// [`Block::linears`], mutable.
    pub fn linears_mut(&mut self) -> [(&'static str, &mut AdaptedLinear); 7] {
        let (a, m) = (&mut self.self_attn, &mut self.mlp);
        [
            ("self_attn.q_proj", &mut a.q_proj),
            ("self_attn.k_proj", &mut a.k_proj),
            ("self_attn.v_proj", &mut a.v_proj),
            ("self_attn.o_proj", &mut a.o_proj),
            ("mlp.gate_proj", &mut m.gate_proj),
            ("mlp.up_proj", &mut m.up_proj),
            ("mlp.down_proj", &mut m.down_proj),
        ]
    }

    /// Every weight of the block read detached from now on: adapters train, the base does not.
    pub fn freeze(&mut self) {
        self.input_layernorm.freeze();
        self.post_attention_layernorm.freeze();
        for (_, l) in self.linears_mut() {
            freeze_linear(l);
        }
    }
}

/// The additive causal mask of `t` new positions after `past` cached ones: (T, S), `-inf` where a
/// position would see a later one.
pub fn causal_mask(past: usize, t: usize, device: &candle_core::Device) -> Result<Tensor> {
    let s = past + t;
    let mask: Vec<f32> = (0..t * s)
        .map(|i| {
            if i % s > past + i / s {
                f32::NEG_INFINITY
            } else {
                0.0
            }
        })
        .collect();
    Tensor::from_vec(mask, (t, s), device)
}

/// The RMS norm of the final layer, built from `vb` (`model.norm`).
pub fn final_norm(cfg: &DecoderConfig, vb: VarBuilder) -> Result<RmsNorm> {
    RmsNorm::new(cfg, vb)
}
