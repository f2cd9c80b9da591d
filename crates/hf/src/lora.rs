//! LoRA on a Qwen2 or Llama model, with the core crate's adapters ([`LoraAdapter`] on
//! [`AdaptedLinear`]) and its PEFT writer (`peft.rs` reads adapters back). Modules are named as in
//! the Hugging Face model (`model.layers.0.self_attn.q_proj`), so the saved tensors carry PEFT's keys
//! (`base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`) and PEFT and vLLM load them.
//!
//! What the core crate's config lacks is rsLoRA (Kalajdzievski 2023: scale `alpha / sqrt(r)` instead of
//! `alpha / r`, which Turner et al.'s rank-1 adapters use): [`HfLoraConfig`] adds it, and the saved
//! `adapter_config.json` gets PEFT's `use_rslora` key so that PEFT scales the same way.

use std::path::Path;

use anyhow::bail;
use candle_core::Result;
use emsl_core::model::{
    attach_by_name, fresh_adapters, save_adapters, AdaptedLinear, LanguageModel, LoraAdapter,
    LoraConfig,
};
use serde::{Deserialize, Serialize};

use crate::model::HfModel;

/// Which linear layers get an adapter, and its size.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HfLoraConfig {
    /// r: the rank of the update (1 is allowed).
    pub rank: usize,
    pub alpha: f64,
    /// Scale the update by `alpha / sqrt(r)` (rsLoRA) instead of `alpha / r`.
    #[serde(default)]
    pub use_rslora: bool,
    /// Modules that get an adapter: a full name (`model.layers.3.mlp.down_proj`), a name every block
    /// has (`q_proj`, `self_attn.q_proj`), or `all-linear` (every linear layer but the head).
    pub modules: Vec<String>,
    /// Seeds the initialisation of every `A`.
    pub seed: u64,
}

impl HfLoraConfig {
    /// The core crate's config of the same adapters (which scales by `alpha / r`).
    pub fn core(&self) -> LoraConfig {
        LoraConfig {
            rank: self.rank,
            alpha: self.alpha,
            modules: self.modules.clone(),
            seed: self.seed,
        }
    }

    /// The factor of the update `B A`.
    pub fn scale(&self) -> f64 {
        scale(self.alpha, self.rank, self.use_rslora)
    }
}

/// The factor of a LoRA update `B A`: `alpha / r`, or rsLoRA's `alpha / sqrt(r)`.
pub(crate) fn scale(alpha: f64, rank: usize, rslora: bool) -> f64 {
    if rslora {
        alpha / (rank as f64).sqrt()
    } else {
        alpha / rank as f64
    }
}

impl HfModel {
    /// Every linear layer with its Hugging Face module name, sorted by name. A tied head is the
    /// embedding, not a linear layer; an untied head gets no adapter either (PEFT's `all-linear`
    /// leaves the output layer out too).
    pub fn linears(&self) -> Vec<(String, &AdaptedLinear)> {
        let mut out = Vec::new();
        for (i, b) in self.layers.iter().enumerate() {
            for (name, l) in b.linears() {
                out.push((format!("model.layers.{i}.{name}"), l));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// [`HfModel::linears`], mutable (in the same order).
    fn linears_mut(&mut self) -> Vec<(String, &mut AdaptedLinear)> {
        let mut out = Vec::new();
        for (i, b) in self.layers.iter_mut().enumerate() {
            for (name, l) in b.linears_mut() {
                out.push((format!("model.layers.{i}.{name}"), l));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Fresh adapters (`B` zero, so the logits do not change) on every linear layer `cfg` names;
    /// from now on only they train.
    pub fn attach_lora(&mut self, cfg: &HfLoraConfig) -> Result<()> {
        let made = fresh_adapters(&self.linears(), &cfg.core(), cfg.scale(), self.device())?;
        if made.is_empty() {
            candle_core::bail!(
                "adapter modules {:?} name no linear layer of the model (q_proj, k_proj, v_proj, \
                 o_proj, gate_proj, up_proj, down_proj, a full name such as \
                 model.layers.0.self_attn.q_proj, or all-linear)",
                cfg.modules
            );
        }
        self.attach_adapters(made)
    }

    /// Attaches adapters by module name (fresh ones, or ones read by [`load_peft`]) and freezes the
    /// base model.
    pub fn attach_adapters(&mut self, adapters: Vec<(String, LoraAdapter)>) -> Result<()> {
        if !self.adapter_vars.is_empty() {
            candle_core::bail!("the model already carries adapters");
        }
        let vars = attach_by_name(self.linears_mut(), adapters)?;
        self.freeze_base();
        self.adapter_vars = vars;
        Ok(())
    }

    /// The attached adapters by module name, sorted.
    pub fn adapters(&self) -> Vec<(String, &LoraAdapter)> {
        self.linears()
            .into_iter()
            .filter_map(|(m, l)| l.adapter.as_ref().map(|a| (m, a)))
            .collect()
    }
}

/// Writes the model's adapters in PEFT's layout into `dir` (the core crate's writer, plus
/// `use_rslora` in `adapter_config.json`).
pub fn save_peft(dir: &Path, model: &HfModel, cfg: &HfLoraConfig) -> anyhow::Result<()> {
    let adapters = model.adapters();
    if adapters.is_empty() {
        bail!("the model carries no adapters to save");
    }
    save_adapters(dir, &cfg.core(), &adapters)?;
    let path = dir.join("adapter_config.json");
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
    json["use_rslora"] = serde_json::Value::Bool(cfg.use_rslora);
    emsl_io::write_atomic(&path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    Ok(())
}
