//! The pretrain stage: a fresh model trained on the first documents of a corpus.

use anyhow::{bail, Result};
use candle_core::Device;
use emsl_io::{column_str, load_dataset};

use super::run_folder::{data_hash, manifest, optimizer, recorded_toml, write_run, RunRecord};
use super::{PretrainSpec, StageIo};
use crate::data::TokenStream;
use crate::model::{Gpt, GptConfig, LanguageModel};
use crate::tokenizer::Tok;
use crate::train::{train, TrainData};

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
    let logs = train(
        &model,
        &mut opt,
        &TrainData::Stream(&stream),
        &spec.train,
        "pretrain",
    )?;
    let record = RunRecord {
        stage: "pretrain".to_owned(),
        data_sha256: data_hash(&m, std::slice::from_ref(&spec.dataset), spec.documents)?,
        parent_sha256: None,
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
