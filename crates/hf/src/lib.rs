//! Your own model: Qwen2 and Llama checkpoints from a local Hugging Face folder behind the core
//! crate's [`emsl_core::LanguageModel`], so that training, sampling, probes and steering take them as
//! they take the kit's GPT.
//!
//! - `folder.rs`: the folder's files (config, one or sharded safetensors, tokenizer, tokenizer
//!   config), a clear error naming a missing one, and the sha256 of every file.
//! - `config.rs`, `qwen2.rs`, `llama.rs`: each family's `config.json` read into the one config the
//!   forward takes; `config_fields.rs`: every field either read, known not to change the logits, or
//!   refused naming it; `rope.rs`: RoPE from transformers 4's keys or 5's `rope_parameters`.
//! - `decoder.rs`, `model.rs`: the kit's own differentiable forward (candle-transformers' models cut
//!   the gradient: docs/design.md, measured facts), with a KV cache, hidden states and intervention
//!   hooks;
//!   `kernels.rs`: its fused RMS norm and SwiGLU, with their backward.
//! - `lora.rs`: LoRA and rsLoRA with the core crate's adapters, saved in PEFT's layout; `peft.rs`:
//!   adapters read back, PEFT's own too (short or full `target_modules`, every key of its
//!   `LoraConfig` read, known inert, or refused naming it).
//! - `gguf/`: a Llama or Qwen2 GGUF file (llama.cpp's format) imported as a Hugging Face folder:
//!   every metadata key and tensor accounted for, weights dequantized by candle, the tokenizer built
//!   from the vocabulary.
//! - `chat.rs`, `jsonl.rs`: chat templates rendered with minijinja, chat JSONL, the assistant-only mask.
//! - `finetune.rs`: LoRA or full fine-tuning on a chat JSONL set, loss on the assistant's tokens.
//! - `distil.rs`: distillation between two checkpoints sharing a tokenizer (the core crate's SFT,
//!   off-policy and on-policy channels) on chat prompts.
//! - `questions.rs`, `judge.rs`, `answers.rs`: Betley et al.'s evaluation questions (their YAML
//!   format), a local judge model's 0-100 scores, the sampled and judged answers.
//! - `tables.rs`, `output.rs`, `protocol.rs`: the judged evaluation and the EM protocol end to end,
//!   into Parquet tables, a manifest and `SHA256SUMS`, written whole or not at all; `runs.rs`: a
//!   fine-tune or a distillation into an output folder the same way.
//! - `stage.rs`: each of them from a stage config (`[spec]` with its `kind` and each model as
//!   `{ family, path }`, `[io]`), as the core crate's stages are run from theirs.

pub mod answers;
pub mod chat;
pub mod config;
pub mod config_fields;
pub mod decoder;
pub mod distil;
pub mod finetune;
pub mod folder;
pub mod gguf;
pub mod jsonl;
pub mod judge;
pub mod kernels;
pub mod llama;
pub mod lora;
pub mod model;
pub mod output;
pub mod peft;
pub mod protocol;
pub mod questions;
pub mod qwen2;
pub mod rope;
pub mod runs;
pub mod stage;
pub mod stage_plan;
pub mod tables;

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Device;

pub use chat::{encode_chat, training_batch, ChatExample, ChatTemplate, Message};
pub use config::{DecoderConfig, Family};
pub use folder::{file_hashes, HfFolder};
pub use jsonl::{read_chat_jsonl, ChatDataset};
pub use lora::{save_peft, HfLoraConfig};
pub use model::{HfCache, HfModel};
pub use peft::{load_peft, PeftAdapters};

/// A model folder loaded whole: the model, its tokenizer and its chat template.
pub struct Loaded {
    pub folder: HfFolder,
    pub model: HfModel,
    pub tokenizer: tokenizers::Tokenizer,
    pub template: ChatTemplate,
}

/// Loads the model, tokenizer and chat template of the Hugging Face folder `dir` onto `device`.
pub fn load(dir: &Path, device: &Device) -> Result<Loaded> {
    let folder = HfFolder::open(dir)?;
    let model = HfModel::load(&folder, device)?;
    let tokenizer = tokenizers::Tokenizer::from_file(folder.tokenizer_path())
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("loading {}", folder.tokenizer_path().display()))?;
    let template = ChatTemplate::from_folder(&folder.dir)?;
    Ok(Loaded {
        folder,
        model,
        tokenizer,
        template,
    })
}

/// [`load`], with a LoRA adapter in PEFT's layout (the kit's or PEFT's own) attached when `adapter`
/// names one.
pub fn load_with_adapter(dir: &Path, adapter: Option<&Path>, device: &Device) -> Result<Loaded> {
    let mut loaded = load(dir, device)?;
    if let Some(a) = adapter {
        let peft =
            load_peft(a, device).with_context(|| format!("loading the adapter {}", a.display()))?;
        loaded.model.attach_adapters(peft.adapters)?;
    }
    Ok(loaded)
}
