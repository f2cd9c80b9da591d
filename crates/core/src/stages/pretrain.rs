//! The pretrain stage: a fresh model trained on the first documents of a corpus.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::Device;
use emsl_io::{column_str, load_dataset};

use super::run_folder::{data_hash, manifest, optimizer, recorded_toml, write_run, RunRecord};
use super::{PretrainSpec, StageIo};
use crate::checkpoint::{self, CheckpointMeta};
use crate::data::TokenStream;
use crate::model::{Gpt, GptConfig, LanguageModel};
use crate::tokenizer::Tok;
use crate::train::{train_until, TrainData};

/// Pretrains and writes the run folder `io.out`.
pub(super) fn run(spec: &PretrainSpec, io: &StageIo, device: &Device) -> Result<()> {
    let m = manifest(&io.datasets_dir)?;
    let (batch, _) = load_dataset(&io.datasets_dir, &m, &spec.dataset)?;
    if spec.documents > batch.num_rows() {
        bail!(
            "documents = {} but dataset '{}' has {} rows",
            spec.documents,
            spec.dataset,
            batch.num_rows()
        );
    }
    let texts = column_str(&batch, "text")?;
    let tok = Tok::for_world()?;
    let stream = TokenStream::from_texts(&tok, (0..spec.documents).map(|i| texts.value(i)))?;
    let s = &spec.model;
    let config = GptConfig {
        vocab_size: tok.vocab_size(),
        n_ctx: s.n_ctx,
        d_model: s.d_model,
        n_layer: s.n_layer,
        n_head: s.n_head,
        d_ff: s.d_ff,
    };
    let model = Gpt::new(&config, spec.init_seed, device)?;
    eprintln!(
        "pretrain: {} parameters, {} tokens in {} documents",
        model.num_params(),
        stream.ids.len(),
        spec.documents
    );
    let mut opt = optimizer(&spec.train, &model)?;
    let record = RunRecord {
        stage: "pretrain".to_owned(),
        data_sha256: data_hash(&m, std::slice::from_ref(&spec.dataset), spec.documents)?,
        parent_sha256: None,
        config: serde_json::to_value(spec)?,
    };
    // Checkpoints are written into a folder beside the run's, which becomes the run's
    // `checkpoints/` only once the run is written: a run that fails leaves nothing behind. The
    // folder's name is the kit's own; one left by a killed run is removed first.
    let kept = io.out.with_extension("checkpoints.tmp");
    if kept.exists() {
        std::fs::remove_dir_all(&kept).with_context(|| format!("removing {}", kept.display()))?;
    }
    let data = TrainData::Stream(&stream);
    let last = spec.train.steps;
    let train_and_write = || -> Result<()> {
        let mut logs = Vec::new();
        for &step in spec.checkpoints.iter().chain([&last]) {
            logs.extend(train_until(
                &model,
                &mut opt,
                &data,
                &spec.train,
                "pretrain",
                step,
            )?);
            if step < last {
                let dir = kept.join(format!("step-{step}"));
                write_checkpoint(&dir, &model, &tok, &record, step)?;
            }
        }
        write_run(
            &io.out,
            &model,
            &opt,
            &tok,
            record,
            recorded_toml(spec)?,
            &logs,
        )
    };
    if let Err(e) = train_and_write() {
        // Best effort: the error says what went wrong; a folder that cannot be removed stays.
        let _ = std::fs::remove_dir_all(&kept);
        return Err(e);
    }
    if !spec.checkpoints.is_empty() {
        let dest = io.out.join("checkpoints");
        std::fs::rename(&kept, &dest)
            .with_context(|| format!("moving {} to {}", kept.display(), dest.display()))?;
    }
    Ok(())
}

/// A model kept on the way: a folder that [`super::run_folder::load_run`] reads as it reads a run's.
fn write_checkpoint(
    dir: &Path,
    model: &Gpt,
    tok: &Tok,
    record: &RunRecord,
    step: usize,
) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    tok.save(&dir.join("tokenizer.json"))?;
    let meta = CheckpointMeta {
        stage: record.stage.clone(),
        model: model.config.clone(),
        tokenizer_sha256: tok.hash.clone(),
        data_sha256: record.data_sha256.clone(),
        parent_sha256: None,
        step,
        config: record.config.clone(),
    };
    checkpoint::save(&dir.join("model.safetensors"), model, &meta)
}
