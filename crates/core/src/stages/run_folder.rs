//! Run folders: what a training stage writes (model, optimizer, tokenizer, recorded spec, log) and
//! how a later stage loads the model back; and the small writers the stages share.

use std::path::Path;

use anyhow::{Context, Result};
use candle_core::Device;
use emsl_io::Manifest;
use serde::Serialize;

use crate::checkpoint::{self, CheckpointMeta};
use crate::model::{Gpt, LanguageModel};
use crate::optim::AdamW;
use crate::tokenizer::Tok;

/// The manifest of a datasets folder.
pub(super) fn manifest(dir: &Path) -> Result<Manifest> {
    Ok(Manifest::load(&dir.join("manifest.toml"))?)
}

/// sha256 over (name, sha256, rows used) of each dataset: what a checkpoint was trained on.
pub(super) fn data_hash(m: &Manifest, names: &[String], rows: usize) -> Result<String> {
    let mut text = String::new();
    for n in names {
        let e = m
            .get(n)
            .with_context(|| format!("dataset '{n}' is not in the manifest"))?;
        text.push_str(&format!("{n}:{}:{rows}\n", e.sha256));
    }
    Ok(emsl_io::sha256_bytes(text.as_bytes()))
}

/// A spec as TOML, its keys sorted (through a JSON value, as the runs before the spec/io split wrote
/// `stage.toml`, so the bytes stayed the same).
pub(super) fn recorded_toml<T: Serialize>(spec: &T) -> Result<String> {
    Ok(toml::to_string(&serde_json::to_value(spec)?)?)
}

/// Writes one JSON object per line, atomically.
pub(super) fn write_jsonl<T: Serialize>(
    path: &Path,
    items: impl IntoIterator<Item = T>,
) -> Result<()> {
    let mut text = String::new();
    for item in items {
        text.push_str(&serde_json::to_string(&item)?);
        text.push('\n');
    }
    Ok(emsl_io::write_atomic(path, text.as_bytes())?)
}

/// What a run's checkpoint records beyond what the model, tokenizer and optimizer already say.
pub(super) struct RunRecord {
    pub stage: String,
    pub data_sha256: String,
    pub parent_sha256: Option<String>,
    pub config: serde_json::Value,
}

/// Writes a run folder; the model last, so that its presence marks a finished run.
pub(super) fn write_run(
    out: &Path,
    model: &Gpt,
    opt: &AdamW,
    tok: &Tok,
    record: RunRecord,
    stage_toml: String,
    logs: &[crate::train::StepLog],
) -> Result<()> {
    let meta = CheckpointMeta {
        stage: record.stage,
        model: model.config.clone(),
        tokenizer_sha256: tok.hash.clone(),
        data_sha256: record.data_sha256,
        parent_sha256: record.parent_sha256,
        step: opt.step,
        config: record.config,
    };
    // Before the folder exists: a diverged model leaves no run folder behind.
    let vars = model.trainable_vars();
    let tensors = vars.iter().map(|(n, v)| (n.as_str(), v.as_tensor()));
    checkpoint::check_finite(tensors, &out.join("model.safetensors"))?;
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    tok.save(&out.join("tokenizer.json"))?;
    write_jsonl(&out.join("train_log.jsonl"), logs)?;
    emsl_io::write_atomic(&out.join("stage.toml"), stage_toml.as_bytes())?;
    checkpoint::save_optimizer(&out.join("optimizer.safetensors"), opt)?;
    checkpoint::save(&out.join("model.safetensors"), model, &meta)
}

/// Loads a run folder's model onto `device`, with the tokenizer saved beside it.
pub fn load_run(dir: &Path, device: &Device) -> Result<(Gpt, Tok, CheckpointMeta)> {
    let tok = Tok::load(&dir.join("tokenizer.json"))?;
    let (model, meta) = checkpoint::load(&dir.join("model.safetensors"), &tok, device)?;
    Ok((model, tok, meta))
}

/// A fresh AdamW over the model's trainable variables.
pub(super) fn optimizer<M: LanguageModel>(
    cfg: &crate::train::TrainConfig,
    model: &M,
) -> Result<AdamW> {
    Ok(AdamW::new(cfg.optim.clone(), model.trainable_vars())?)
}
