//! Fine-tuning a model folder on a chat JSONL set: LoRA (any rank, rsLoRA, chosen modules) or every
//! weight, with the loss on the assistant's tokens only (the chat template's assistant spans), the
//! core crate's AdamW, the kit's cosine or Betley et al.'s linear schedule, gradients accumulated over
//! micro-batches as theirs were (2 x 8), and a data order drawn from the seed alone. The result is the
//! adapter in PEFT's layout, or, for full fine-tuning, a model folder of the same layout as the input.

use std::path::Path;

use anyhow::{bail, Context, Result};
use emsl_core::data::epoch_indices;
pub use emsl_core::optim::Schedule;
use emsl_core::optim::{AdamW, OptimConfig};
use emsl_core::train::{train_steps, StepLog, Steps, TrainConfig};
use emsl_core::LanguageModel;
use serde::{Deserialize, Serialize};

use crate::chat::{encode_chat, training_batch, ChatExample};
use crate::jsonl::ChatDataset;
use crate::lora::{save_peft, HfLoraConfig};
use crate::Loaded;

/// How to fine-tune.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneConfig {
    /// LoRA adapters; `None` trains every weight.
    pub lora: Option<HfLoraConfig>,
    /// Passes over the set; the last step may reach into the next epoch's order to fill its batch.
    pub epochs: usize,
    /// Optimizer steps in place of `epochs` (as transformers' `max_steps`: the schedule spans them,
    /// and the data order runs into further epochs where they need more than one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<usize>,
    /// Examples per micro-batch (one forward and backward pass).
    pub batch_size: usize,
    /// Micro-batches whose gradients are summed (each loss divided by their number) before one
    /// optimizer step: a step sees `batch_size * grad_accumulation` examples.
    pub grad_accumulation: usize,
    pub schedule: Schedule,
    /// Examples are cut to this many tokens (and to the model's context).
    pub max_len: usize,
    /// Seeds the data order (LoRA's initialisation has the adapter config's seed).
    pub seed: u64,
    pub optim: OptimConfig,
}

impl FinetuneConfig {
    /// An error naming the first setting a fine-tune cannot run with, before any work.
    pub fn check(&self) -> Result<()> {
        for (name, v) in [
            ("epochs", self.epochs),
            ("batch_size", self.batch_size),
            ("grad_accumulation", self.grad_accumulation),
            ("max_len", self.max_len),
        ] {
            anyhow::ensure!(v >= 1, "{name} = 0: it must be at least 1");
        }
        anyhow::ensure!(
            self.max_steps != Some(0),
            "max_steps = 0: it must be at least 1 (leave it out to train for `epochs`)"
        );
        self.optim.check()
    }
}

/// What a fine-tune did: its config, data and loss curve (no timings, so that two runs compare).
#[derive(Debug, Clone, Serialize)]
pub struct FinetuneSummary {
    pub config: FinetuneConfig,
    /// The JSONL file's name (not its folder) and sha256.
    pub dataset_file: String,
    pub dataset_sha256: String,
    pub examples: usize,
    pub steps: usize,
    /// Assistant tokens the loss covers per epoch.
    pub assistant_tokens: usize,
    pub trainable_params: usize,
    pub losses: Vec<StepLog>,
}

/// The training examples of `data` through the model's chat template, each cut to `max_len`; an
/// example left with no assistant token is an error naming its line.
pub fn encode_dataset(
    loaded: &Loaded,
    data: &ChatDataset,
    max_len: usize,
) -> Result<Vec<ChatExample>> {
    let max_len = max_len.min(loaded.model.context_length() + 1);
    data.records
        .iter()
        .zip(&data.lines)
        .map(|(messages, line)| {
            let at = || format!("{}:{line}", data.path.display());
            let mut e =
                encode_chat(&loaded.tokenizer, &loaded.template, messages).with_context(at)?;
            let full = e.ids.len();
            e.ids.truncate(max_len);
            e.assistant.truncate(max_len);
            // Position 0 is never a target: an assistant token must be among the others.
            if !e.assistant.iter().skip(1).any(|a| *a) {
                bail!(
                    "{}: no assistant token within the first {max_len} of its {full} tokens; raise \
                     --max-len (at most the model's context) or shorten the prompt",
                    at()
                );
            }
            Ok(e)
        })
        .collect()
}

/// Fine-tunes the model of `loaded` on `examples`, the records of `data` as [`encode_dataset`] gave
/// them for a model of the same folder and `cfg.max_len` (callers encode, and so check, every record
/// before they create an output folder), attaching fresh adapters first when `cfg.lora` is set.
pub fn finetune(
    loaded: &mut Loaded,
    data: &ChatDataset,
    examples: &[ChatExample],
    cfg: &FinetuneConfig,
    label: &str,
) -> Result<FinetuneSummary> {
    cfg.check()?;
    if examples.len() != data.records.len() {
        bail!(
            "{} examples for the {} records of {}: encode the set with encode_dataset",
            examples.len(),
            data.records.len(),
            data.path.display()
        );
    }
    if let Some(lora) = &cfg.lora {
        loaded.model.attach_lora(lora)?;
    }
    let model = &loaded.model;
    let n = examples.len();
    let per_step = cfg.batch_size * cfg.grad_accumulation;
    let steps = cfg
        .max_steps
        .unwrap_or_else(|| (cfg.epochs * n).div_ceil(per_step));
    let mut opt = AdamW::new(cfg.optim.clone(), model.trainable_vars())?;
    let train = TrainConfig {
        steps,
        batch_size: cfg.batch_size,
        seed: cfg.seed,
        log_every: 10,
        optim: cfg.optim.clone(),
    };
    let how = Steps {
        schedule: cfg.schedule,
        micro_batches: cfg.grad_accumulation,
    };
    let losses = train_steps(&mut opt, &train, how, label, |step, micro| {
        // The data order is the one of a step of `per_step` examples, cut into micro-batches.
        let order = epoch_indices(n, cfg.seed, "finetune", step, per_step);
        let picked: Vec<ChatExample> = order[micro * cfg.batch_size..][..cfg.batch_size]
            .iter()
            .map(|&i| examples[i].clone())
            .collect();
        // Padding is masked, and right padding leaves the real positions' attention unchanged, so
        // the pad id does not matter.
        let (x, y, mask) = training_batch(&picked, 0, model.device())?;
        Ok((model.loss(&x, &y, &mask)?, x.elem_count()))
    })?;
    let assistant_tokens = examples
        .iter()
        .map(|e| e.assistant.iter().skip(1).filter(|a| **a).count())
        .sum();
    Ok(FinetuneSummary {
        config: cfg.clone(),
        dataset_file: file_name(&data.path),
        dataset_sha256: data.sha256.clone(),
        examples: n,
        steps,
        assistant_tokens,
        trainable_params: model.num_params(),
        losses,
    })
}

/// A path's last component, as outputs record input files (their folders differ between machines).
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Writes what `finetune` (or `distil`) trained into `dir`: the adapter in PEFT's layout, or every weight as
/// `model.safetensors` beside copies of the input folder's config and tokenizer files (a model
/// folder that loads like the input).
pub fn save_finetuned(dir: &Path, loaded: &Loaded, lora: Option<&HfLoraConfig>) -> Result<()> {
    let vars = loaded.model.trainable_vars();
    let tensors = vars.iter().map(|(n, v)| (n.as_str(), v.as_tensor()));
    emsl_core::checkpoint::check_finite(tensors, dir)?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    if let Some(lora) = lora {
        return save_peft(dir, &loaded.model, lora);
    }
    let tensors: std::collections::HashMap<String, candle_core::Tensor> = loaded
        .model
        .base_vars()
        .iter()
        .map(|(name, var)| (name.clone(), var.as_tensor().clone()))
        .collect();
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))
        .with_context(|| format!("writing {}", dir.join("model.safetensors").display()))?;
    let src = &loaded.folder;
    for name in [
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
    ] {
        let from = src.dir.join(name);
        if from.is_file() {
            std::fs::copy(&from, dir.join(name))
                .with_context(|| format!("copying {} into {}", from.display(), dir.display()))?;
        }
    }
    Ok(())
}
