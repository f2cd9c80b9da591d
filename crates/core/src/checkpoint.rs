//! Checkpoints as safetensors: the model's tensors plus one metadata entry `emsl` holding, as JSON,
//! the resolved model config, the tokenizer's hash, the training data's hash and the resolved stage
//! config. (One entry, because safetensors writes its metadata map in hash order: a single key keeps
//! the bytes deterministic.) The optimizer state goes to a second file beside it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::model::{Gpt, GptConfig, LanguageModel};
use crate::optim::AdamW;
use crate::tokenizer::Tok;

const META_KEY: &str = "emsl";

/// What a checkpoint says about itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointMeta {
    /// `pretrain` or `finetune`.
    pub stage: String,
    pub model: GptConfig,
    pub tokenizer_sha256: String,
    /// sha256 of the training data: the dataset hashes and rows used, as the stage resolved them.
    pub data_sha256: String,
    /// sha256 of the checkpoint this one was trained from, if any.
    pub parent_sha256: Option<String>,
    pub step: usize,
    /// The resolved stage config.
    pub config: serde_json::Value,
}

fn serialize(tensors: Vec<(String, Tensor)>, meta_json: String) -> Result<Vec<u8>> {
    let meta = HashMap::from([(META_KEY.to_owned(), meta_json)]);
    let sorted: BTreeMap<String, Tensor> = tensors.into_iter().collect();
    Ok(safetensors::serialize(
        sorted.iter().map(|(k, v)| (k.as_str(), v)),
        Some(meta),
    )?)
}

/// The tensors (on `device`) and the metadata entry of a safetensors file this kit wrote.
fn read(path: &Path, device: &Device) -> Result<(HashMap<String, Tensor>, String)> {
    let bytes =
        std::fs::read(path).with_context(|| format!("reading checkpoint {}", path.display()))?;
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
        .with_context(|| format!("{} is not a safetensors file", path.display()))?;
    let meta = header
        .metadata()
        .as_ref()
        .and_then(|m| m.get(META_KEY))
        .cloned()
        .with_context(|| {
            format!(
                "{} has no '{META_KEY}' metadata: it was not written by this kit",
                path.display()
            )
        })?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, device)?;
    Ok((tensors, meta))
}

/// An error naming the first of `tensors` that holds a NaN or an infinity: the weights of a diverged
/// training, which are never written as a result nor evaluated.
pub fn check_finite<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a Tensor)>,
    path: &Path,
) -> Result<()> {
    for (name, t) in tensors {
        let values = t
            .flatten_all()?
            .to_dtype(candle_core::DType::F32)?
            .to_vec1::<f32>()?;
        let bad = values.iter().filter(|x| !x.is_finite()).count();
        if bad > 0 {
            bail!(
                "{}: tensor '{name}' holds {bad} non-finite values (NaN or infinity) of {}: the \
                 weights of a diverged training are never written or evaluated; retrain with a \
                 lower learning rate",
                path.display(),
                values.len()
            );
        }
    }
    Ok(())
}

/// Writes the model's trainable variables atomically, refusing non-finite ones.
pub fn save<M: LanguageModel>(path: &Path, model: &M, meta: &CheckpointMeta) -> Result<()> {
    let tensors: Vec<(String, Tensor)> = model
        .trainable_vars()
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    check_finite(tensors.iter().map(|(n, t)| (n.as_str(), t)), path)?;
    emsl_io::write_atomic(path, &serialize(tensors, serde_json::to_string(meta)?)?)?;
    Ok(())
}

/// Loads a model onto `device`, refusing a checkpoint whose tokenizer or tensors do not match.
pub fn load(path: &Path, tok: &Tok, device: &Device) -> Result<(Gpt, CheckpointMeta)> {
    let (tensors, meta) = read(path, device)?;
    let mut named: Vec<(&String, &Tensor)> = tensors.iter().collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    check_finite(named.into_iter().map(|(n, t)| (n.as_str(), t)), path)?;
    let meta: CheckpointMeta = serde_json::from_str(&meta)
        .with_context(|| format!("{}: metadata '{META_KEY}' does not parse", path.display()))?;
    if meta.tokenizer_sha256 != tok.hash || meta.model.vocab_size != tok.vocab_size() {
        bail!(
            "checkpoint {} was trained with tokenizer sha256 {} ({} tokens), but the tokenizer given has sha256 {} ({} tokens); use the tokenizer.json saved beside the checkpoint",
            path.display(),
            meta.tokenizer_sha256,
            meta.model.vocab_size,
            tok.hash,
            tok.vocab_size()
        );
    }
    let model = Gpt::new(&meta.model, 0, device)?;
    model.load_tensors(&tensors).map_err(|e| {
        anyhow::anyhow!(
            "checkpoint {} does not match its config {:?}: {e}",
            path.display(),
            meta.model
        )
    })?;
    Ok((model, meta))
}

/// The optimizer state, atomically.
pub fn save_optimizer(path: &Path, opt: &AdamW) -> Result<()> {
    let meta = serde_json::json!({ "step": opt.step, "optim": opt.config });
    emsl_io::write_atomic(path, &serialize(opt.state(), meta.to_string())?)?;
    Ok(())
}

/// Restores the optimizer state saved by `save_optimizer`, read onto `device` (its parameters').
pub fn load_optimizer(path: &Path, opt: &mut AdamW, device: &Device) -> Result<()> {
    let (tensors, meta) = read(path, device)?;
    let meta: serde_json::Value = serde_json::from_str(&meta)?;
    let step = meta["step"]
        .as_u64()
        .with_context(|| format!("{}: no step in the metadata", path.display()))?
        as usize;
    opt.load_state(&tensors, step)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
