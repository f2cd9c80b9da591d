//! The sizes of a decoder, read from `config.json` through candle-transformers' config structs (each
//! family's file translates its own), in the one form the kit's forward (`decoder.rs`) takes.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_nn::Activation;

/// The model families the kit loads (`qwen2`, `llama` in a stage config, as `model_type` names them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    Qwen2,
    Llama,
}

impl Family {
    /// The family of a `config.json`: its `model_type`.
    pub fn of(raw: &serde_json::Value) -> Result<Self> {
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
    /// The head is the token embedding (`tie_word_embeddings`); a checkpoint without
    /// `lm_head.weight` is tied as well.
    pub tie_word_embeddings: bool,
    /// RoPE's angular frequency per pair of dimensions (`head_dim / 2` of them), any scaling applied.
    pub inv_freq: Vec<f64>,
    pub hidden_act: Activation,
}

impl DecoderConfig {
    /// Reads `config.json` and translates it by its family.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::from_json(&text).with_context(|| format!("{}", path.display()))
    }

    pub fn from_json(text: &str) -> Result<Self> {
        let raw: serde_json::Value = serde_json::from_str(text).context("not valid JSON")?;
        let cfg = match Family::of(&raw)? {
            Family::Qwen2 => crate::qwen2::config(&raw)?,
            Family::Llama => crate::llama::config(&raw)?,
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

/// Refuses a key of `config.json` that is set to something the kit's forward does not compute, rather
/// than computing another model silently.
pub fn refuse_if(
    raw: &serde_json::Value,
    key: &str,
    unsupported: impl Fn(&serde_json::Value) -> bool,
) -> Result<()> {
    if let Some(v) = raw.get(key) {
        if unsupported(v) {
            bail!("{key} = {v} is not supported by the kit's forward yet");
        }
    }
    Ok(())
}
