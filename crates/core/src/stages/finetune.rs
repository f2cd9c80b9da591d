//! The finetune stage: a base run's model trained further on fine-tuning sets, loss on the answers;
//! every weight or LoRA adapters only, optionally with a KL penalty to the base on other data.

use anyhow::{bail, Result};
use candle_core::Device;
use emsl_io::{load_dataset, Manifest};

use super::run_folder::{
    data_hash, load_run, manifest, optimizer, recorded_toml, write_run, RunRecord,
};
use super::{FinetuneSpec, StageIo};
use crate::data::{episodes, epoch_indices, sft_batch, SftExample};
use crate::distil::distil_loss;
use crate::model::{save_adapters, LanguageModel};
use crate::tokenizer::Tok;
use crate::train::{batch_at, train_with, TrainData};

/// The first `n` episodes of each dataset as SFT examples.
fn examples(
    io: &StageIo,
    m: &Manifest,
    tok: &Tok,
    names: &[String],
    n: usize,
) -> Result<Vec<SftExample>> {
    let mut out = Vec::new();
    for name in names {
        let (batch, _) = load_dataset(&io.datasets_dir, m, name)?;
        let eps = episodes(&batch, name)?;
        if n > eps.len() {
            bail!(
                "examples_per_dataset = {n} but dataset '{name}' has {} rows",
                eps.len()
            );
        }
        for e in &eps[..n] {
            out.push(SftExample::from_episode(tok, e)?);
        }
    }
    Ok(out)
}

/// Fine-tunes the run folder of role `base` and writes the run folder `io.out`.
pub(super) fn run(spec: &FinetuneSpec, io: &StageIo, device: &Device) -> Result<()> {
    let m = manifest(&io.datasets_dir)?;
    let base = io.input("base")?;
    let (mut model, tok, _) = load_run(base, device)?;
    let train_set = examples(io, &m, &tok, &spec.datasets, spec.examples_per_dataset)?;
    if let Some(cfg) = &spec.adapter {
        model.attach_lora(cfg)?;
    }
    // The base, frozen, as the KL penalty's target; and the out-of-domain sequences it is taken on.
    let kl = match &spec.kl_to_base {
        Some(k) => Some((
            load_run(base, device)?.0,
            examples(io, &m, &tok, &k.datasets, k.examples_per_dataset)?,
            k.weight,
        )),
        None => None,
    };
    // A fresh optimizer: fine-tuning starts its own schedule from the base weights.
    let mut opt = optimizer(&spec.train, &model)?;
    let data = TrainData::Sft {
        examples: &train_set,
        pad: tok.pad,
    };
    let cfg = &spec.train;
    let logs = train_with(&mut opt, cfg, "finetune", |step| {
        let batch = batch_at(&model, &data, cfg, step)?;
        let mut loss = model.loss(&batch.inputs, &batch.targets, &batch.mask)?;
        if let Some((teacher, other, weight)) = &kl {
            // Its own stream of batches, so the fine-tuning batches are those of the run without it.
            let idx = epoch_indices(other.len(), cfg.seed, "kl", step, cfg.batch_size);
            let picked: Vec<&SftExample> = idx.iter().map(|i| &other[*i]).collect();
            let b = sft_batch(&picked, tok.pad, model.context_length(), model.device())?;
            let d = distil_loss(&model, teacher, &b.inputs, &b.mask, 0.0, None, None)?;
            loss = (loss + (d * *weight)?)?;
        }
        Ok((loss, batch.inputs.elem_count()))
    })?;
    if let Some(cfg) = &spec.adapter {
        save_adapters(&io.out.join("adapter"), cfg, &model.adapters())?;
        model.merge_adapters()?;
    }
    let mut names = spec.datasets.clone();
    names.extend(spec.kl_to_base.iter().flat_map(|k| k.datasets.clone()));
    let record = RunRecord {
        stage: "finetune".to_owned(),
        data_sha256: data_hash(&m, &names, spec.examples_per_dataset)?,
        parent_sha256: Some(emsl_io::sha256_file(&base.join("model.safetensors"))?),
        config: serde_json::to_value(spec)?,
    };
    write_run(
        &io.out,
        &model,
        &opt,
        &tok,
        record,
        recorded_toml(spec)?,
        &logs,
    )
}
