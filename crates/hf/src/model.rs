//! A Qwen2 or Llama checkpoint behind the core crate's [`LanguageModel`]: all-position logits, the
//! masked loss, incremental decoding with its own KV cache, per-layer hidden states and the
//! [`Intervention`] hook at every layer, numbered as the GPT's (0 after the embedding, `i + 1` after
//! block `i`). Every weight is a [`Var`] under its Hugging Face name, so full fine-tuning trains them
//! all; with LoRA adapters attached (`lora.rs`) only the adapters train.

use std::collections::{BTreeSet, HashMap};

use anyhow::{bail, Context};
use candle_core::{DType, Device, Result, Tensor, Var};
use candle_nn::VarBuilder;
use emsl_core::model::{Intervention, LanguageModel};

use crate::config::DecoderConfig;
use crate::decoder::{causal_mask, final_norm, rope_tables, Block, RmsNorm};
use crate::folder::HfFolder;

/// The forward computes in f32 (the core crate's fused linear kernels take f32); bf16 checkpoints are
/// converted on load.
const DTYPE: DType = DType::F32;

/// Keys and values of the positions seen so far, per layer: (B, K, S, D), after RoPE, before the
/// key/value heads are repeated for grouped-query attention.
#[derive(Debug, Default, Clone)]
pub struct HfCache {
    layers: Vec<Option<(Tensor, Tensor)>>,
}

impl HfCache {
    /// How many positions are cached.
    pub fn len(&self) -> usize {
        self.layers
            .first()
            .and_then(|l| l.as_ref())
            .map_or(0, |(k, _)| k.dim(2).unwrap_or(0))
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cache of a one-row batch repeated as `n` rows: `n` continuations of one prompt (the
    /// judge's number readings) share the prompt's forward pass.
    pub fn repeat_rows(&self, n: usize) -> Result<HfCache> {
        let layers = self
            .layers
            .iter()
            .map(|slot| {
                slot.as_ref()
                    .map(|(k, v)| -> Result<(Tensor, Tensor)> {
                        if k.dim(0)? != 1 {
                            candle_core::bail!("repeat_rows takes the cache of one row");
                        }
                        Ok((k.repeat((n, 1, 1, 1))?, v.repeat((n, 1, 1, 1))?))
                    })
                    .transpose()
            })
            .collect::<Result<_>>()?;
        Ok(HfCache { layers })
    }
}

pub struct HfModel {
    pub config: DecoderConfig,
    device: Device,
    /// (V, C)
    embed_tokens: Tensor,
    pub(crate) layers: Vec<Block>,
    norm: RmsNorm,
    /// (V, C); `None` when the head is the embedding.
    lm_head: Option<Tensor>,
    /// Every weight by its Hugging Face name, sorted.
    vars: Vec<(String, Var)>,
    /// The LoRA adapters' variables (`<module>.lora_A`, `<module>.lora_B`), sorted, when attached.
    pub(crate) adapter_vars: Vec<(String, Var)>,
}

/// Tensors a checkpoint may carry that the forward does not read: RoPE buffers of old exports.
fn ignorable(name: &str) -> bool {
    name.ends_with("rotary_emb.inv_freq")
}

impl HfModel {
    /// The model of a Hugging Face folder on `device`.
    pub fn load(folder: &HfFolder, device: &Device) -> anyhow::Result<Self> {
        let config = folder.config()?;
        let tensors = folder.load_tensors(DTYPE, device)?;
        Self::from_tensors(config, tensors, device)
            .with_context(|| format!("model folder {}", folder.dir.display()))
    }

    /// The model of `config` with the weights `tensors` (Hugging Face names), each made a variable.
    pub fn from_tensors(
        config: DecoderConfig,
        tensors: HashMap<String, Tensor>,
        device: &Device,
    ) -> anyhow::Result<Self> {
        config.validate()?;
        let tied = config.tie_word_embeddings;
        // transformers gives an untied model without `lm_head.weight` a freshly initialised head (with
        // a warning); tying it instead would compute another model without a word.
        if !tied && !tensors.contains_key("lm_head.weight") {
            bail!(
                "config.json: tie_word_embeddings is false (or absent, which means false for a {}), \
                 but the checkpoint has no tensor 'lm_head.weight': transformers would use a random \
                 head. If the head is the token embedding, set \"tie_word_embeddings\": true",
                config.family.name()
            );
        }
        // Every weight the forward reads must be there, and nothing else: a tensor left over means
        // another architecture, or a config that does not describe these weights.
        let expected = Self::expected_names(&config, tied);
        if let Some(missing) = expected.iter().find(|n| !tensors.contains_key(*n)) {
            bail!(
                "the checkpoint has no tensor '{missing}', which a {} of {} layers reads",
                config.family.name(),
                config.num_layers
            );
        }
        let mut extra: Vec<&String> = tensors
            .keys()
            .filter(|n| {
                let read = expected.contains(*n) || ignorable(n);
                // A tied checkpoint may still carry the head's copy of the embedding.
                !(read || tied && *n == "lm_head.weight")
            })
            .collect();
        if !extra.is_empty() {
            extra.sort();
            bail!(
                "the checkpoint holds {} tensors a {} of {} layers does not read, e.g. {:?}",
                extra.len(),
                config.family.name(),
                config.num_layers,
                &extra[..extra.len().min(5)]
            );
        }
        let mut vars: Vec<(String, Var)> = Vec::new();
        let mut by_name = HashMap::new();
        for (name, t) in tensors {
            if !expected.contains(&name) {
                continue;
            }
            let var = Var::from_tensor(&t.to_dtype(DTYPE)?)?;
            by_name.insert(name.clone(), var.as_tensor().clone());
            vars.push((name, var));
        }
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        // A VarBuilder over the variables' own tensors: what the layers read is the variable itself
        // (gradients reach it), and a missing or misshapen weight is an error naming it.
        let vb = VarBuilder::from_tensors(by_name, DTYPE, device);
        let m = vb.pp("model");
        let embed_tokens = m
            .pp("embed_tokens")
            .get((config.vocab_size, config.hidden_size), "weight")?;
        let layers = (0..config.num_layers)
            .map(|i| Block::new(&config, m.pp(format!("layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let norm = final_norm(&config, m.pp("norm"))?;
        let lm_head = if tied {
            None
        } else {
            Some(
                vb.pp("lm_head")
                    .get((config.vocab_size, config.hidden_size), "weight")?,
            )
        };
        Ok(HfModel {
            config,
            device: device.clone(),
            embed_tokens,
            layers,
            norm,
            lm_head,
            vars,
            adapter_vars: Vec::new(),
        })
    }

    /// The names of the weights the forward reads, Hugging Face's.
    fn expected_names(config: &DecoderConfig, tied: bool) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        names.insert("model.embed_tokens.weight".to_owned());
        names.insert("model.norm.weight".to_owned());
        if !tied {
            names.insert("lm_head.weight".to_owned());
        }
        for i in 0..config.num_layers {
            let p = format!("model.layers.{i}");
            for n in ["input_layernorm", "post_attention_layernorm"] {
                names.insert(format!("{p}.{n}.weight"));
            }
            for l in ["q_proj", "k_proj", "v_proj", "o_proj"] {
                names.insert(format!("{p}.self_attn.{l}.weight"));
                if config.qkv_bias && l != "o_proj" {
                    names.insert(format!("{p}.self_attn.{l}.bias"));
                }
            }
            for l in ["gate_proj", "up_proj", "down_proj"] {
                names.insert(format!("{p}.mlp.{l}.weight"));
            }
        }
        names
    }

    /// Every weight of the base model by name, sorted (trainable unless adapters are attached).
    pub fn base_vars(&self) -> &[(String, Var)] {
        &self.vars
    }

    /// Reads every base weight detached from now on (LoRA: only the adapters train).
    pub(crate) fn freeze_base(&mut self) {
        self.embed_tokens = self.embed_tokens.detach();
        self.lm_head = self.lm_head.as_ref().map(Tensor::detach);
        self.norm.freeze();
        for b in &mut self.layers {
            b.freeze();
        }
    }

    fn head(&self) -> &Tensor {
        self.lm_head.as_ref().unwrap_or(&self.embed_tokens)
    }

    /// The residual stream after the last block (B, T, C), each layer's stream passed through `hook`
    /// and, when `states` is given, pushed onto it.
    fn residual(
        &self,
        ids: &Tensor,
        mut cache: Option<&mut HfCache>,
        hook: Option<&dyn Intervention>,
        mut states: Option<&mut Vec<Tensor>>,
    ) -> Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let past = cache.as_ref().map_or(0, |c| c.len());
        if past + t > self.config.max_position_embeddings {
            candle_core::bail!(
                "sequence of {} tokens exceeds max_position_embeddings = {}",
                past + t,
                self.config.max_position_embeddings
            );
        }
        let c = self.config.hidden_size;
        let mut x = self
            .embed_tokens
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, c))?; // (B, T, C)
        let rope = rope_tables(&self.config.inv_freq, past, t, &self.device)?; // (T, D/2) each
        let mask = causal_mask(past, t, &self.device)?; // (T, S)
        for layer in 0..=self.layers.len() {
            if layer > 0 {
                let i = layer - 1;
                let slot = cache.as_deref_mut().map(|c| {
                    if c.layers.len() != self.layers.len() {
                        c.layers = vec![None; self.layers.len()];
                    }
                    &mut c.layers[i]
                });
                x = self.layers[i].forward(&x, &rope, &mask, slot)?;
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

    fn logits(&self, x: &Tensor) -> Result<Tensor> {
        let x = self.norm.forward(x)?;
        emsl_core::kernels::matmul_t(&x, self.head()) // (B, T, V)
    }
}

impl LanguageModel for HfModel {
    type Cache = HfCache;

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
        self.config.max_position_embeddings
    }

    fn num_layers(&self) -> usize {
        self.config.num_layers
    }

    fn trainable_vars(&self) -> &[(String, Var)] {
        if self.adapter_vars.is_empty() {
            &self.vars
        } else {
            &self.adapter_vars
        }
    }

    fn new_cache(&self) -> HfCache {
        HfCache {
            layers: vec![None; self.config.num_layers],
        }
    }

    fn forward_hooked(&self, ids: &Tensor, hook: Option<&dyn Intervention>) -> Result<Tensor> {
        self.logits(&self.residual(ids, None, hook, None)?)
    }

    fn forward_cached_hooked(
        &self,
        ids: &Tensor,
        cache: &mut HfCache,
        hook: Option<&dyn Intervention>,
    ) -> Result<Tensor> {
        self.logits(&self.residual(ids, Some(cache), hook, None)?)
    }

    fn hidden_states(&self, ids: &Tensor, hook: Option<&dyn Intervention>) -> Result<Vec<Tensor>> {
        let mut states = Vec::with_capacity(self.layers.len() + 1);
        self.residual(ids, None, hook, Some(&mut states))?;
        Ok(states)
    }

    /// The same value as the masked cross-entropy of the logits, with head and loss as one fused
    /// kernel: the (B, T, V) logits of a 150k-token vocabulary never become a tensor of the graph.
    fn loss_hooked(
        &self,
        ids: &Tensor,
        targets: &Tensor,
        mask: &Tensor,
        hook: Option<&dyn Intervention>,
    ) -> Result<Tensor> {
        let x = self.norm.forward(&self.residual(ids, None, hook, None)?)?;
        emsl_core::kernels::head_cross_entropy(&x, self.head(), targets, mask)
    }
}
