//! A decoder-only GPT in the style of nanoGPT: pre-LayerNorm blocks, causal multi-head attention, GELU
//! MLP, learned positions, output head tied to the token embedding.
//!
//! Layer norm, GELU, the linear layers, causal attention (without a KV cache) and the loss run as the
//! kit's fused kernels (`crate::kernels`), each with its own backward: candle 0.11's fused `LayerNorm`
//! module and `ops::softmax_last_dim` have no backward pass on the CPU and silently stop the gradient
//! (see `tests::every_parameter_gets_a_gradient`), and its composed ops are several times slower.
//! Sampling with a KV cache uses the composed softmax of `super::ops`.

use candle_core::{DType, Device, Module, Result, Tensor, Var};
use candle_nn::{embedding, linear, Embedding, VarBuilder, VarMap};
use emsl_world::Rng;
use serde::{Deserialize, Serialize};

use super::lora::AdaptedLinear;
use super::{Intervention, LanguageModel};

mod adapters;
mod attention;

use attention::Attention;
pub use attention::KvCache;

/// The fused kernels compute in f32 only.
const DTYPE: DType = DType::F32;

/// The size of a model. `vocab_size` comes from the tokenizer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GptConfig {
    pub vocab_size: usize,
    /// Context length in tokens.
    pub n_ctx: usize,
    pub d_model: usize,
    pub n_layer: usize,
    pub n_head: usize,
    /// Width of the MLP's hidden layer.
    pub d_ff: usize,
}

impl GptConfig {
    /// An error naming the first size that cannot build a model.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.n_head == 0 || !self.d_model.is_multiple_of(self.n_head) {
            return Err(format!(
                "d_model = {} must be a multiple of n_head = {}",
                self.d_model, self.n_head
            ));
        }
        if [
            self.vocab_size,
            self.n_ctx,
            self.d_model,
            self.n_layer,
            self.d_ff,
        ]
        .contains(&0)
        {
            return Err("every model size must be positive".to_owned());
        }
        Ok(())
    }
}

/// Layer norm over the last dimension (eps 1e-5), the fused kernel.
#[derive(Debug, Clone)]
struct LayerNorm {
    weight: Tensor,
    bias: Tensor,
}

impl LayerNorm {
    fn new(d: usize, vb: VarBuilder) -> Result<Self> {
        Ok(LayerNorm {
            weight: vb.get(d, "weight")?,
            bias: vb.get(d, "bias")?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        crate::kernels::layer_norm(x, &self.weight, &self.bias)
    }
}

#[derive(Debug, Clone)]
struct Block {
    ln_1: LayerNorm,
    attn: Attention,
    ln_2: LayerNorm,
    c_fc: AdaptedLinear,
    c_proj: AdaptedLinear,
}

impl Block {
    fn new(cfg: &GptConfig, vb: VarBuilder) -> Result<Self> {
        let d = cfg.d_model;
        Ok(Block {
            ln_1: LayerNorm::new(d, vb.pp("ln_1"))?,
            attn: Attention {
                c_attn: AdaptedLinear::new(linear(d, 3 * d, vb.pp("attn.c_attn"))?),
                c_proj: AdaptedLinear::new(linear(d, d, vb.pp("attn.c_proj"))?),
                n_head: cfg.n_head,
            },
            ln_2: LayerNorm::new(d, vb.pp("ln_2"))?,
            c_fc: AdaptedLinear::new(linear(d, cfg.d_ff, vb.pp("mlp.c_fc"))?),
            c_proj: AdaptedLinear::new(linear(cfg.d_ff, d, vb.pp("mlp.c_proj"))?),
        })
    }

    fn forward(
        &self,
        x: &Tensor,
        mask: &Tensor,
        cache: Option<&mut Option<(Tensor, Tensor)>>,
    ) -> Result<Tensor> {
        let x = (x + self.attn.forward(&self.ln_1.forward(x)?, mask, cache)?)?;
        let h = crate::kernels::gelu(&self.c_fc.forward(&self.ln_2.forward(&x)?)?)?; // (B, T, d_ff)
        &x + self.c_proj.forward(&h)?
    }
}

/// The model, its variables sorted by name, and the causal mask.
pub struct Gpt {
    pub config: GptConfig,
    device: Device,
    wte: Embedding,
    wpe: Embedding,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    /// Every variable of the model, sorted by name (VarMap iterates in random order).
    vars: Vec<(String, Var)>,
    /// The LoRA adapters' variables, sorted by name, when adapters are attached (`adapters.rs`): then
    /// they are what trains, and `vars` stay frozen.
    adapter_vars: Vec<(String, Var)>,
    mask: Tensor,
}

impl Gpt {
    /// A fresh model. Weights come from the kit's seeded generator in sorted-name order: N(0, 0.02),
    /// residual projections N(0, 0.02 / sqrt(2 n_layer)) as in GPT-2, layer norms 1 and biases 0.
    pub fn new(config: &GptConfig, seed: u64, device: &Device) -> Result<Self> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DTYPE, device);
        let model = Self::build(config, vb, &varmap, device)?;
        let mut rng = Rng::new(seed, "init");
        let resid_std = 0.02 / (2.0 * config.n_layer as f32).sqrt();
        for (name, var) in &model.vars {
            let shape = var.shape().clone();
            let n = shape.elem_count();
            let values: Vec<f32> = if name.contains("ln_") && name.ends_with(".weight") {
                vec![1.0; n]
            } else if name.ends_with(".bias") {
                vec![0.0; n]
            } else {
                let std = if name.ends_with("c_proj.weight") {
                    resid_std
                } else {
                    0.02
                };
                (0..n).map(|_| rng.normal() as f32 * std).collect()
            };
            var.set(&Tensor::from_vec(values, shape, device)?)?;
        }
        Ok(model)
    }

    fn build(config: &GptConfig, vb: VarBuilder, varmap: &VarMap, device: &Device) -> Result<Self> {
        config.validate().map_err(candle_core::Error::msg)?;
        let wte = embedding(config.vocab_size, config.d_model, vb.pp("wte"))?;
        let wpe = embedding(config.n_ctx, config.d_model, vb.pp("wpe"))?;
        let blocks = (0..config.n_layer)
            .map(|i| Block::new(config, vb.pp(format!("h.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let ln_f = LayerNorm::new(config.d_model, vb.pp("ln_f"))?;
        let mut vars: Vec<(String, Var)> = varmap
            .data()
            .lock()
            .expect("varmap lock")
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let n = config.n_ctx;
        let mask: Vec<f32> = (0..n * n)
            .map(|i| {
                if i % n > i / n {
                    f32::NEG_INFINITY
                } else {
                    0.0
                }
            })
            .collect();
        let mask = Tensor::from_vec(mask, (n, n), device)?;
        Ok(Gpt {
            config: config.clone(),
            device: device.clone(),
            wte,
            wpe,
            blocks,
            ln_f,
            vars,
            adapter_vars: Vec::new(),
            mask,
        })
    }

    /// Everything before the head: the final layer norm's output (B, T, C).
    fn trunk(
        &self,
        ids: &Tensor,
        cache: Option<&mut KvCache>,
        hook: Option<&dyn Intervention>,
    ) -> Result<Tensor> {
        let x = self.residual(ids, cache, hook, None)?;
        self.ln_f.forward(&x) // (B, T, C)
    }

    /// The residual stream after the last block (B, T, C), each layer's stream passed through `hook`
    /// and, when `states` is given, pushed onto it.
    fn residual(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut KvCache>,
        hook: Option<&dyn Intervention>,
        mut states: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let (_b, t) = ids.dims2()?;
        let past = cache.as_ref().map_or(0, |c| c.len());
        if past + t > self.config.n_ctx {
            candle_core::bail!(
                "sequence of {} tokens exceeds the context of {}",
                past + t,
                self.config.n_ctx
            );
        }
        let positions = Tensor::arange(past as u32, (past + t) as u32, ids.device())?;
        let x = self
            .wte
            .forward(ids)?
            .broadcast_add(&self.wpe.forward(&positions)?)?; // (B, T, C)
        let mask = self.mask.narrow(0, past, t)?.narrow(1, 0, past + t)?; // (T, T_past + T)
        let mut x = x;
        for layer in 0..=self.blocks.len() {
            if layer > 0 {
                let i = layer - 1;
                let slot = cache.as_deref_mut().map(|c| {
                    if c.layers.len() != self.blocks.len() {
                        c.layers = vec![None; self.blocks.len()];
                    }
                    &mut c.layers[i]
                });
                x = self.blocks[i].forward(&x, &mask, slot)?;
            }
            if let Some(h) = hook {
                x = h.apply(layer, x)?;
            }
            if let Some(s) = states.as_deref_mut() {
                s.push(x.clone());
            }
        }
        Ok(x)
    }

    /// Overwrites every variable from `tensors` (by name), checking names and shapes.
    pub fn load_tensors(
        &self,
        tensors: &std::collections::HashMap<String, Tensor>,
    ) -> std::result::Result<(), String> {
        if tensors.len() != self.vars.len() {
            return Err(format!(
                "the checkpoint holds {} tensors, the model has {}",
                tensors.len(),
                self.vars.len()
            ));
        }
        for (name, var) in &self.vars {
            let t = tensors
                .get(name)
                .ok_or_else(|| format!("the checkpoint has no tensor '{name}'"))?;
            if t.shape() != var.shape() {
                return Err(format!(
                    "tensor '{name}' has shape {:?} in the checkpoint but {:?} in the model",
                    t.shape().dims(),
                    var.shape().dims()
                ));
            }
            var.set(t).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

impl LanguageModel for Gpt {
    type Cache = KvCache;

    fn device(&self) -> &Device {
        &self.device
    }

    fn dtype(&self) -> DType {
        DTYPE
    }

    fn vocab_size(&self) -> usize {
        self.config.vocab_size
    }

    fn context_length(&self) -> usize {
        self.config.n_ctx
    }

    fn num_layers(&self) -> usize {
        self.config.n_layer
    }

    fn trainable_vars(&self) -> &[(String, Var)] {
        if self.adapter_vars.is_empty() {
            &self.vars
        } else {
            &self.adapter_vars
        }
    }

    fn new_cache(&self) -> KvCache {
        KvCache::new(self.config.n_layer)
    }

    fn forward_hooked(&self, ids: &Tensor, hook: Option<&dyn Intervention>) -> Result<Tensor> {
        let x = self.trunk(ids, None, hook)?;
        crate::kernels::matmul_t(&x, self.wte.embeddings()) // (B, T, V), head tied to the embedding
    }

    fn forward_cached_hooked(
        &self,
        ids: &Tensor,
        cache: &mut KvCache,
        hook: Option<&dyn Intervention>,
    ) -> Result<Tensor> {
        let x = self.trunk(ids, Some(cache), hook)?;
        crate::kernels::matmul_t(&x, self.wte.embeddings()) // (B, T_new, V)
    }

    fn next_logits_hooked(
        &self,
        ids: &Tensor,
        cache: &mut KvCache,
        hook: Option<&dyn Intervention>,
    ) -> Result<Tensor> {
        let x = self.trunk(ids, Some(cache), hook)?; // (B, T_new, C)
        let (b, t, _) = x.dims3()?;
        let wte = self.wte.embeddings();
        // A product of one row takes the matrix library's vector path, which sums in another order:
        // one row keeps the full product of its positions, so that the values stay the same.
        if b == 1 && t > 1 {
            let logits = crate::kernels::matmul_t(&x, wte)?;
            return logits.narrow(1, t - 1, 1)?.squeeze(1);
        }
        let last = x.narrow(1, t - 1, 1)?.squeeze(1)?; // (B, C)
        crate::kernels::matmul_t(&last, wte) // (B, V)
    }

    fn logits_from_hooked(
        &self,
        ids: &Tensor,
        first: usize,
        hook: Option<&dyn Intervention>,
    ) -> Result<Tensor> {
        let x = self.trunk(ids, None, hook)?;
        let x = x.narrow(1, first, x.dim(1)? - first)?;
        crate::kernels::matmul_t(&x, self.wte.embeddings())
    }

    fn hidden_states(&self, ids: &Tensor, hook: Option<&dyn Intervention>) -> Result<Vec<Tensor>> {
        let mut states = Vec::with_capacity(self.blocks.len() + 1);
        self.residual(ids, None, hook, Some(&mut states))?;
        Ok(states)
    }

    /// The same value as [`super::masked_cross_entropy`] of the logits, with the head and the loss as
    /// one fused kernel (the logits never become a tensor of the graph).
    fn loss_hooked(
        &self,
        ids: &Tensor,
        targets: &Tensor,
        mask: &Tensor,
        hook: Option<&dyn Intervention>,
    ) -> Result<Tensor> {
        let x = self.trunk(ids, None, hook)?;
        crate::kernels::head_cross_entropy(&x, self.wte.embeddings(), targets, mask)
    }
}
