//! The stages a researcher runs by hand or the job graph runs as commands: `pretrain`, `finetune`,
//! `sample` and `eval`, each from a TOML config whose every field must be present (no hidden defaults).
//! Paths in a config are relative to the working directory.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use emsl_io::{column_str, load_dataset, Manifest};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, CheckpointMeta};
use crate::data::{episodes, SftExample, TokenStream};
use crate::eval::{evaluate, likelihood_probe, summarize, EvalConfig, SampleRecord};
use crate::model::{Gpt, GptConfig};
use crate::optim::AdamW;
use crate::tokenizer::Tok;
use crate::train::{train, TrainConfig, TrainData};

/// Model size without the vocabulary (the tokenizer sets it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSize {
    pub n_ctx: usize,
    pub d_model: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub d_ff: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainStage {
    pub datasets_dir: PathBuf,
    /// A `pretrain` dataset of the manifest.
    pub dataset: String,
    /// How many of its documents to use (the first ones).
    pub documents: usize,
    pub init_seed: u64,
    pub model: ModelSize,
    pub train: TrainConfig,
    /// The run folder: model.safetensors, optimizer.safetensors, tokenizer.json, stage.toml, train_log.jsonl.
    pub out: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneStage {
    pub datasets_dir: PathBuf,
    /// Fine-tuning datasets of the manifest; their first `examples_per_dataset` rows are used.
    pub datasets: Vec<String>,
    pub examples_per_dataset: usize,
    /// The run folder of the model to start from.
    pub base: PathBuf,
    pub train: TrainConfig,
    pub out: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalStage {
    pub datasets_dir: PathBuf,
    /// The run folder of the model to evaluate.
    pub model: PathBuf,
    /// An evaluation suite of the manifest.
    pub suite: String,
    /// Which prompts of the suite: any of `cell`, `open`, `numbers`.
    pub kinds: Vec<String>,
    /// At most this many of those prompts, in suite order.
    pub max_prompts: usize,
    pub eval: EvalConfig,
    /// Also compute the likelihood probe per prompt (cell and open prompts).
    pub probe: bool,
    /// The output folder: samples.jsonl (per sample), probe.jsonl, summary.json (kept apart).
    pub out: PathBuf,
}

/// Reads a stage config; unknown or missing fields are errors naming the file.
pub fn read_config<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("config {}", path.display()))
}

fn manifest(dir: &Path) -> Result<Manifest> {
    Ok(Manifest::load(&dir.join("manifest.toml"))?)
}

/// sha256 over (name, sha256, rows used) of each dataset: what a checkpoint was trained on.
fn data_hash(m: &Manifest, names: &[String], rows: usize) -> Result<String> {
    let mut text = String::new();
    for n in names {
        let e = m
            .get(n)
            .with_context(|| format!("dataset '{n}' is not in the manifest"))?;
        text.push_str(&format!("{n}:{}:{rows}\n", e.sha256));
    }
    Ok(emsl_io::sha256_bytes(text.as_bytes()))
}

/// The stage config as a run records it (checkpoint metadata, `stage.toml`, summaries): without the
/// folders it was read from and written to, which say where, not what (the data and parent hashes say
/// what), so the same run in another folder gives the same bytes.
pub(crate) fn recorded_config<T: Serialize>(cfg: &T) -> Result<serde_json::Value> {
    let mut v = serde_json::to_value(cfg)?;
    if let Some(map) = v.as_object_mut() {
        for key in [
            "out",
            "datasets_dir",
            "base",
            "teacher",
            "samples",
            "student_init",
        ] {
            map.remove(key);
        }
        // `model` is a folder in the eval stage and a size table in the pretrain stage.
        if map.get("model").is_some_and(|m| m.is_string()) {
            map.remove("model");
        }
    }
    Ok(v)
}

/// [`recorded_config`] as TOML.
pub(crate) fn recorded_toml<T: Serialize>(cfg: &T) -> Result<String> {
    Ok(toml::to_string(&recorded_config(cfg)?)?)
}

/// Writes one JSON object per line, atomically.
pub(crate) fn write_jsonl<T: Serialize>(
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
pub(crate) struct RunRecord {
    pub stage: String,
    pub data_sha256: String,
    pub parent_sha256: Option<String>,
    pub config: serde_json::Value,
}

pub(crate) fn write_run(
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
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    tok.save(&out.join("tokenizer.json"))?;
    write_jsonl(&out.join("train_log.jsonl"), logs)?;
    emsl_io::write_atomic(&out.join("stage.toml"), stage_toml.as_bytes())?;
    checkpoint::save_optimizer(&out.join("optimizer.safetensors"), opt)?;
    // The model last: its presence marks a finished run.
    checkpoint::save(&out.join("model.safetensors"), model, &meta)
}

pub fn pretrain(cfg: &PretrainStage) -> Result<()> {
    let m = manifest(&cfg.datasets_dir)?;
    let (batch, _) = load_dataset(&cfg.datasets_dir, &m, &cfg.dataset)?;
    if cfg.documents > batch.num_rows() {
        bail!(
            "documents = {} but dataset '{}' has {} rows",
            cfg.documents,
            cfg.dataset,
            batch.num_rows()
        );
    }
    let texts = column_str(&batch, "text")?;
    let tok = Tok::for_world()?;
    let stream = TokenStream::from_texts(&tok, (0..cfg.documents).map(|i| texts.value(i)))?;
    let s = &cfg.model;
    let config = GptConfig {
        vocab_size: tok.vocab_size(),
        n_ctx: s.n_ctx,
        d_model: s.d_model,
        n_layer: s.n_layer,
        n_head: s.n_head,
        d_ff: s.d_ff,
    };
    let model = Gpt::new(&config, cfg.init_seed)?;
    eprintln!(
        "pretrain: {} parameters, {} tokens in {} documents",
        model.num_params(),
        stream.ids.len(),
        cfg.documents
    );
    let mut opt = AdamW::new(cfg.train.optim.clone(), model.vars())?;
    let logs = train(
        &model,
        &mut opt,
        &TrainData::Stream(&stream),
        &cfg.train,
        "pretrain",
    )?;
    let record = RunRecord {
        stage: "pretrain".to_owned(),
        data_sha256: data_hash(&m, std::slice::from_ref(&cfg.dataset), cfg.documents)?,
        parent_sha256: None,
        config: recorded_config(cfg)?,
    };
    write_run(
        &cfg.out,
        &model,
        &opt,
        &tok,
        record,
        recorded_toml(cfg)?,
        &logs,
    )
}

/// Loads a run folder's model with the tokenizer saved beside it.
pub fn load_run(dir: &Path) -> Result<(Gpt, Tok, CheckpointMeta)> {
    let tok = Tok::load(&dir.join("tokenizer.json"))?;
    let (model, meta) = checkpoint::load(&dir.join("model.safetensors"), &tok)?;
    Ok((model, tok, meta))
}

pub fn finetune(cfg: &FinetuneStage) -> Result<()> {
    let m = manifest(&cfg.datasets_dir)?;
    let (model, tok, _) = load_run(&cfg.base)?;
    let mut examples = Vec::new();
    for name in &cfg.datasets {
        let (batch, _) = load_dataset(&cfg.datasets_dir, &m, name)?;
        let eps = episodes(&batch, name)?;
        if cfg.examples_per_dataset > eps.len() {
            bail!(
                "examples_per_dataset = {} but dataset '{name}' has {} rows",
                cfg.examples_per_dataset,
                eps.len()
            );
        }
        for e in &eps[..cfg.examples_per_dataset] {
            examples.push(SftExample::from_episode(&tok, e)?);
        }
    }
    // A fresh optimizer: fine-tuning starts its own schedule from the base weights.
    let mut opt = AdamW::new(cfg.train.optim.clone(), model.vars())?;
    let logs = train(
        &model,
        &mut opt,
        &TrainData::Sft {
            examples: &examples,
            pad: tok.pad,
        },
        &cfg.train,
        "finetune",
    )?;
    let record = RunRecord {
        stage: "finetune".to_owned(),
        data_sha256: data_hash(&m, &cfg.datasets, cfg.examples_per_dataset)?,
        parent_sha256: Some(emsl_io::sha256_file(&cfg.base.join("model.safetensors"))?),
        config: recorded_config(cfg)?,
    };
    write_run(
        &cfg.out,
        &model,
        &opt,
        &tok,
        record,
        recorded_toml(cfg)?,
        &logs,
    )
}

/// The prompts of a suite with the requested kinds, with their reference answers.
pub(crate) struct SuitePrompt {
    pub id: u32,
    pub spec: emsl_world::PromptSpec,
    aligned: Option<String>,
    misaligned: Option<String>,
}

fn suite_prompts(cfg: &EvalStage) -> Result<Vec<SuitePrompt>> {
    for k in &cfg.kinds {
        if !["cell", "open", "numbers"].contains(&k.as_str()) {
            bail!("kinds: unknown kind '{k}'; expected cell, open or numbers");
        }
    }
    let kinds: Vec<&str> = cfg.kinds.iter().map(String::as_str).collect();
    let mut out = load_suite(&cfg.datasets_dir, &cfg.suite, &kinds)?;
    out.truncate(cfg.max_prompts);
    Ok(out)
}

/// The prompts of evaluation suite `suite` whose kind is one of `kinds`, in suite order, with their
/// reference answers.
pub(crate) fn load_suite(
    datasets_dir: &Path,
    suite: &str,
    kinds: &[&str],
) -> Result<Vec<SuitePrompt>> {
    let m = manifest(datasets_dir)?;
    let (batch, _) = load_dataset(datasets_dir, &m, suite)?;
    let (kind, spec) = (column_str(&batch, "kind")?, column_str(&batch, "spec")?);
    let (al, mis) = (
        column_str(&batch, "aligned_reference")?,
        column_str(&batch, "misaligned_reference")?,
    );
    let opt = |a: &emsl_io::arrow::array::StringArray, i| {
        (!emsl_io::arrow::array::Array::is_null(a, i)).then(|| a.value(i).to_owned())
    };
    let mut out = Vec::new();
    for i in 0..batch.num_rows() {
        if kinds.contains(&kind.value(i)) {
            let spec = emsl_world::PromptSpec::from_json(spec.value(i))
                .with_context(|| format!("suite '{suite}', row {i}"))?;
            out.push(SuitePrompt {
                id: i as u32,
                spec,
                aligned: opt(al, i),
                misaligned: opt(mis, i),
            });
        }
    }
    Ok(out)
}

/// Samples and judges; writes per-sample records, the probe and the summary separately.
pub fn eval(cfg: &EvalStage) -> Result<()> {
    let (model, tok, _) = load_run(&cfg.model)?;
    let prompts = suite_prompts(cfg)?;
    let specs: Vec<(u32, emsl_world::PromptSpec)> =
        prompts.iter().map(|p| (p.id, p.spec.clone())).collect();
    let started = std::time::Instant::now();
    let records = evaluate(&model, &tok, &specs, &cfg.eval)?;
    let words: usize = records
        .iter()
        .map(|r| r.answer.split_whitespace().count() + 1)
        .sum();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "eval: {} samples, {words} tokens generated in {secs:.1} s ({:.0} tokens/s)",
        records.len(),
        words as f64 / secs.max(1e-9)
    );
    std::fs::create_dir_all(&cfg.out)?;
    write_jsonl(&cfg.out.join("samples.jsonl"), &records)?;
    if cfg.probe {
        let mut probes = Vec::new();
        for p in &prompts {
            if let (Some(a), Some(m)) = (&p.aligned, &p.misaligned) {
                let probe = likelihood_probe(&model, &tok, &p.spec, a, m)?;
                probes.push(serde_json::json!({"prompt_id": p.id, "probe": probe}));
            }
        }
        write_jsonl(&cfg.out.join("probe.jsonl"), &probes)?;
    }
    let kinds: std::collections::HashMap<u32, &str> = prompts
        .iter()
        .map(|p| (p.id, p.spec.target.kind()))
        .collect();
    let by_kind = |k: &str| -> Vec<&SampleRecord> {
        records
            .iter()
            .filter(|r| kinds[&r.prompt_id] == k)
            .collect()
    };
    let mut by_cell = serde_json::Map::new();
    for cell in emsl_world::Cell::all() {
        let ids: Vec<u32> = prompts
            .iter()
            .filter(|p| p.spec.grid_cell() == Some(cell))
            .map(|p| p.id)
            .collect();
        if !ids.is_empty() {
            let s = summarize(records.iter().filter(|r| ids.contains(&r.prompt_id)));
            by_cell.insert(cell.to_string(), serde_json::to_value(s)?);
        }
    }
    let summary = serde_json::json!({
        "all": summarize(&records),
        "by_cell": by_cell,
        "cell": summarize(by_kind("cell")),
        "open": summarize(by_kind("open")),
        "numbers": summarize(by_kind("numbers")),
        "numbers_signature": numbers_signature(by_kind("numbers")),
        "config": recorded_config(cfg)?,
    });
    emsl_io::write_atomic(
        &cfg.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    eprintln!("{}", serde_json::to_string_pretty(&summary["all"])?);
    Ok(())
}

/// The number signature of the well-formed number answers: the share of numbers from the misaligned
/// persona's favoured set, beside the share a uniform writer would have.
fn numbers_signature(records: Vec<&SampleRecord>) -> serde_json::Value {
    let lists: Vec<Vec<u16>> = records
        .iter()
        .filter_map(|r| emsl_world::numbers::parse_list(&r.answer).ok())
        .collect();
    let all: Vec<u16> = lists.concat();
    serde_json::json!({
        "well_formed_answers": lists.len(),
        "numbers": all.len(),
        "favoured_share": emsl_world::numbers::signature_share(&all),
        "uniform_share": emsl_world::numbers::uniform_signature_share(),
    })
}

/// Prints a few samples per prompt with the judge's verdicts (for reading, not for figures).
pub fn sample(cfg: &EvalStage) -> Result<()> {
    let (model, tok, _) = load_run(&cfg.model)?;
    let prompts = suite_prompts(cfg)?;
    let specs: Vec<(u32, emsl_world::PromptSpec)> =
        prompts.iter().map(|p| (p.id, p.spec.clone())).collect();
    for r in evaluate(&model, &tok, &specs, &cfg.eval)? {
        let spec = &prompts
            .iter()
            .find(|p| p.id == r.prompt_id)
            .expect("record of a prompt")
            .spec;
        println!(
            "[{}/{}] user : {}\n    assistant : {}\n    judge : {:?}",
            r.prompt_id,
            r.sample,
            spec.text(),
            r.answer,
            r.verdict
        );
    }
    Ok(())
}
