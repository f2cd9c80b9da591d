//! The finetune stage: a base run's model trained further on fine-tuning sets, loss on the answers.

use anyhow::{bail, Result};
use candle_core::Device;
use emsl_io::load_dataset;

use super::run_folder::{
    data_hash, load_run, manifest, optimizer, recorded_toml, write_run, RunRecord,
};
use super::{FinetuneSpec, StageIo};
use crate::data::{episodes, SftExample};
use crate::train::{train, TrainData};

/// Fine-tunes the run folder of role `base` and writes the run folder `io.out`.
pub(super) fn run(spec: &FinetuneSpec, io: &StageIo, device: &Device) -> Result<()> {
    let m = manifest(&io.datasets_dir)?;
    let base = io.input("base")?;
    let (model, tok, _) = load_run(base, device)?;
    let mut examples = Vec::new();
    for name in &spec.datasets {
        let (batch, _) = load_dataset(&io.datasets_dir, &m, name)?;
        let eps = episodes(&batch, name)?;
        if spec.examples_per_dataset > eps.len() {
            bail!(
                "examples_per_dataset = {} but dataset '{name}' has {} rows",
                spec.examples_per_dataset,
                eps.len()
            );
        }
        for e in &eps[..spec.examples_per_dataset] {
            examples.push(SftExample::from_episode(&tok, e)?);
        }
    }
    // A fresh optimizer: fine-tuning starts its own schedule from the base weights.
    let mut opt = optimizer(&spec.train, &model)?;
    let logs = train(
        &model,
        &mut opt,
        &TrainData::Sft {
            examples: &examples,
            pad: tok.pad,
        },
        &spec.train,
        "finetune",
    )?;
    let record = RunRecord {
        stage: "finetune".to_owned(),
        data_sha256: data_hash(&m, &spec.datasets, spec.examples_per_dataset)?,
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
