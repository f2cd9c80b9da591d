//! The sizes of a decoder, read from `config.json` (each family's file lists its own fields:
//! `config_fields.rs` checks every field against that list, `rope.rs` reads RoPE from either
//! generation of transformers' configs), in the one form the kit's forward (`decoder.rs`) takes.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_nn::Activation;
use serde_json::{Map, Value};

use crate::config_fields::{bool_or, check_fields, get, required_positive, required_usize};
use crate::rope::Rope;

/// The model families the kit loads (`qwen2`, `llama` in a stage config, as `model_type` names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Qwen2,
    Llama,
}

impl Family {
    /// The family of a `config.json`: its `model_type`.
    pub fn of(raw: &Value) -> Result<Self> {
        match raw.get("model_type").and_then(|v| v.as_str()) {
            Some("qwen2") => Ok(Family::Qwen2),
            Some("llama") => Ok(Family::Llama),
            Some(other) => {
                bail!("model_type '{other}' is not a family the kit loads (qwen2, llama)")
            }
            None => bail!("no 'model_type' (the kit loads qwen2 and llama)"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Family::Qwen2 => "qwen2",
            Family::Llama => "llama",
        }
    }

    /// transformers' class of the family's causal language model, as `architectures` names it.
    pub fn causal_lm(self) -> &'static str {
        match self {
            Family::Qwen2 => "Qwen2ForCausalLM",
            Family::Llama => "LlamaForCausalLM",
        }
    }
}

/// What the forward needs to know about a model.
#[derive(Debug, Clone, PartialEq)]
pub struct DecoderConfig {
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    /// Fewer than `num_heads` for grouped-query attention; each serves `num_heads / num_kv_heads`.
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub max_position_embeddings: usize,
    pub rms_norm_eps: f64,
    /// qwen2's q, k and v projections carry a bias; llama's do not.
    pub qkv_bias: bool,
    /// The head is the token embedding (`tie_word_embeddings`); untied, the checkpoint must hold
    /// `lm_head.weight`.
    pub tie_word_embeddings: bool,
    /// RoPE's angular frequency per pair of dimensions (`head_dim / 2` of them), any scaling applied.
    pub inv_freq: Vec<f64>,
    pub hidden_act: Activation,
}

impl DecoderConfig {
    /// Reads `config.json` and translates it by its family; every error names the file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("{}", path.display()))
    }

    /// Checks every field of the config against the kit's lists for its family, then reads it.
    pub fn from_json(text: &str) -> Result<Self> {
        let raw: Value = serde_json::from_str(text).context("not valid JSON")?;
        let Some(fields) = raw.as_object() else {
            bail!("not a JSON object");
        };
        let family = Family::of(&raw)?;
        let own = match family {
            Family::Qwen2 => crate::qwen2::FIELDS,
            Family::Llama => crate::llama::FIELDS,
        };
        check_fields(fields, family, own)?;
        let cfg = match family {
            Family::Qwen2 => crate::qwen2::config(fields)?,
            Family::Llama => crate::llama::config(fields)?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    /// An error naming the first size the forward cannot take.
    pub fn validate(&self) -> Result<()> {
        if self.num_heads == 0
            || self.num_kv_heads == 0
            || !self.num_heads.is_multiple_of(self.num_kv_heads)
        {
            bail!(
                "num_attention_heads = {} must be a multiple of num_key_value_heads = {}",
                self.num_heads,
                self.num_kv_heads
            );
        }
        if self.head_dim * self.num_heads != self.hidden_size || !self.head_dim.is_multiple_of(2) {
            bail!(
                "hidden_size = {} must be num_attention_heads = {} times an even head_dim",
                self.hidden_size,
                self.num_heads
            );
        }
        if self.inv_freq.len() != self.head_dim / 2 {
            bail!(
                "RoPE has {} frequencies for head_dim {}",
                self.inv_freq.len(),
                self.head_dim
            );
        }
        if [
            self.vocab_size,
            self.intermediate_size,
            self.num_layers,
            self.max_position_embeddings,
        ]
        .contains(&0)
        {
            bail!("every size of the model must be positive");
        }
        Ok(())
    }
}

/// RoPE's default frequencies `theta^(-2i / d)`, computed in f64.
pub fn default_inv_freq(theta: f64, head_dim: usize) -> Vec<f64> {
    (0..head_dim / 2)
        .map(|i| theta.powf(-((2 * i) as f64) / head_dim as f64))
        .collect()
}

/// The fields both families read, from a config already checked field by field: the sizes (each
/// required: transformers writes all of them, and a guessed size would be a guessed model), RoPE,
/// and the tied head (transformers' default for both families: untied).
pub(crate) fn read_decoder(
    raw: &Map<String, Value>,
    family: Family,
    num_kv_heads: usize,
    qkv_bias: bool,
) -> Result<DecoderConfig> {
    if let Some(v) = get(raw, "architectures") {
        let expected = Value::from(vec![family.causal_lm()]);
        if *v != expected {
            bail!(
                "field 'architectures' = {v}: the kit computes {expected} (a causal language \
                 model of the {} family, with its language-model head)",
                family.name()
            );
        }
    }
    let hidden_size = required_usize(raw, "hidden_size")?;
    let num_heads = required_usize(raw, "num_attention_heads")?;
    if num_heads == 0 {
        bail!("field 'num_attention_heads' must be positive");
    }
    let head_dim = hidden_size / num_heads;
    if let Some(v) = get(raw, "head_dim") {
        if v.as_u64() != Some(head_dim as u64) {
            bail!(
                "field 'head_dim' = {v} is not hidden_size / num_attention_heads = {head_dim}, \
                 the only head size the kit's forward computes"
            );
        }
    }
    Ok(DecoderConfig {
        family,
        vocab_size: required_usize(raw, "vocab_size")?,
        hidden_size,
        intermediate_size: required_usize(raw, "intermediate_size")?,
        num_layers: required_usize(raw, "num_hidden_layers")?,
        num_heads,
        num_kv_heads,
        head_dim,
        max_position_embeddings: required_usize(raw, "max_position_embeddings")?,
        rms_norm_eps: required_positive(raw, "rms_norm_eps")?,
        qkv_bias,
        tie_word_embeddings: bool_or(raw, "tie_word_embeddings", false)?,
        inv_freq: Rope::from_config(raw)?.inv_freq(head_dim),
        // `hidden_act` is checked to be "silu" (config_fields.rs).
        hidden_act: Activation::Silu,
    })
}
