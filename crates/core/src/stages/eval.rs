//! The eval stage (sample, judge, count, probe) and `print_samples`, its reading version.

use std::collections::{BTreeMap, HashMap};

use anyhow::{bail, Result};
use candle_core::Device;
use emsl_world::PromptSpec;

use super::run_folder::{load_run, write_jsonl};
use super::suite::{load_suite, SuitePrompt};
use super::{EvalKind, EvalSpec, StageConfig, StageIo, StageSpec};
use crate::eval::{
    evaluate_from, likelihood_probes_from, prompt_ids, summarize, EvalSummary, NumbersSignature,
    ProbeItem, ProbeRecord, ProjectionRecord, SampleRecord,
};
use crate::model::{LanguageModel, Sequence, Steered};
use crate::persona::{self, context_prompt_ids, context_rng, last_states, PersonaDirection};
use crate::tokenizer::Tok;

/// The prompts the spec asks for, at most `max_prompts` of them.
/// The folder of the model evaluated: the input's own, or the checkpoint the spec names.
fn model_folder(spec: &EvalSpec, io: &StageIo) -> Result<std::path::PathBuf> {
    let run = io.input("model")?;
    let Some(step) = spec.checkpoint else {
        return Ok(run.to_path_buf());
    };
    let dir = run.join("checkpoints").join(format!("step-{step}"));
    if !dir.join("model.safetensors").is_file() {
        bail!(
            "[spec] checkpoint = {step}: the model input {} kept no checkpoint after step {step} \
             (a pretraining keeps those its `checkpoints` list)",
            run.display()
        );
    }
    Ok(dir)
}

fn suite_prompts(spec: &EvalSpec, io: &StageIo) -> Result<Vec<SuitePrompt>> {
    let mut out = load_suite(&io.datasets_dir, &spec.suite, &spec.kinds)?;
    out.truncate(spec.max_prompts);
    Ok(out)
}

fn ids_and_specs(prompts: &[SuitePrompt]) -> Vec<(u32, PromptSpec)> {
    prompts.iter().map(|p| (p.id, p.spec.clone())).collect()
}

/// Samples and judges the model of role `model`; writes `samples.jsonl`, `probe.jsonl` (when the spec
/// asks), `projection.jsonl` (when it uses a direction) and `summary.json` to `io.out`.
pub(super) fn run(spec: &EvalSpec, io: &StageIo, device: &Device) -> Result<()> {
    let (model, tok, _) = load_run(&model_folder(spec, io)?, device)?;
    let prompts = suite_prompts(spec, io)?;
    let prefixes = prefixes(spec, &tok, &prompts, model.context_length())?;
    std::fs::create_dir_all(&io.out)?;
    match direction_of(spec, io, &model)? {
        None => run_with(&model, spec, io, &tok, &prompts, &prefixes),
        Some((direction, hook)) => {
            let steered = Steered {
                model: &model,
                intervention: &hook,
            };
            let mut lines = Vec::new();
            for (p, ids) in prompts.iter().zip(&prefixes) {
                let states = last_states(&steered, ids, None)?;
                lines.push(ProjectionRecord {
                    prompt_id: p.id,
                    projection: direction
                        .projection(direction.best_layer, &states[direction.best_layer])?,
                    tokens: ids.len(),
                });
            }
            write_jsonl(&io.out.join("projection.jsonl"), &lines)?;
            run_with(&steered, spec, io, &tok, &prompts, &prefixes)
        }
    }
}

/// The spec's persona direction (from input `direction`) and the intervention it asks for on `model`;
/// none when the spec uses no direction.
fn direction_of(
    spec: &EvalSpec,
    io: &StageIo,
    model: &impl LanguageModel,
) -> Result<Option<(PersonaDirection, Sequence)>> {
    let Some(used) = &spec.direction else {
        return Ok(None);
    };
    let direction = PersonaDirection::read(io.input("direction")?)?;
    let hook = persona::intervention(&direction, used, model)?;
    Ok(Some((direction, hook)))
}

/// The ids each prompt is continued from: `<bos>` and the prompt, after the spec's context if any
/// (drawn to leave room for the answer).
fn prefixes(
    spec: &EvalSpec,
    tok: &Tok,
    prompts: &[SuitePrompt],
    n_ctx: usize,
) -> Result<Vec<Vec<u32>>> {
    let budget = n_ctx.saturating_sub(spec.eval.sampling.max_new_tokens);
    prompts
        .iter()
        .map(|p| match &spec.context {
            None => prompt_ids(tok, &p.spec),
            Some(c) => context_prompt_ids(
                tok,
                &p.spec,
                c.persona,
                c.episodes,
                &mut context_rng(c, p.id),
                budget,
            ),
        })
        .collect()
}

fn run_with<M: LanguageModel>(
    model: &M,
    spec: &EvalSpec,
    io: &StageIo,
    tok: &Tok,
    prompts: &[SuitePrompt],
    prefixes: &[Vec<u32>],
) -> Result<()> {
    let started = std::time::Instant::now();
    let records = evaluate_from(model, tok, &ids_and_specs(prompts), prefixes, &spec.eval)?;
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
    write_jsonl(&io.out.join("samples.jsonl"), &records)?;
    if spec.probe {
        let (ids, items): (Vec<u32>, Vec<ProbeItem>) = prompts
            .iter()
            .zip(prefixes)
            .filter_map(|(p, ids)| match (&p.aligned, &p.misaligned) {
                (Some(a), Some(m)) => Some((p.id, (&ids[..], a.as_str(), m.as_str()))),
                _ => None,
            })
            .unzip();
        let probes: Vec<ProbeRecord> = ids
            .into_iter()
            .zip(likelihood_probes_from(model, tok, &items)?)
            .map(|(prompt_id, probe)| ProbeRecord { prompt_id, probe })
            .collect();
        write_jsonl(&io.out.join("probe.jsonl"), &probes)?;
    }
    let summary = summary(spec, prompts, &records);
    emsl_io::write_atomic(
        &io.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    eprintln!("{}", serde_json::to_string_pretty(&summary.all)?);
    Ok(())
}

/// Counts over all records, per grid cell and per prompt kind.
fn summary(spec: &EvalSpec, prompts: &[SuitePrompt], records: &[SampleRecord]) -> EvalSummary {
    let kinds: &HashMap<u32, &str> = &prompts
        .iter()
        .map(|p| (p.id, p.spec.target.kind()))
        .collect();
    let by_kind = |k: EvalKind| {
        records
            .iter()
            .filter(move |r| kinds[&r.prompt_id] == k.as_str())
    };
    let mut by_cell = BTreeMap::new();
    for cell in emsl_world::Cell::all() {
        let ids: Vec<u32> = prompts
            .iter()
            .filter(|p| p.spec.grid_cell() == Some(cell))
            .map(|p| p.id)
            .collect();
        if !ids.is_empty() {
            let s = summarize(records.iter().filter(|r| ids.contains(&r.prompt_id)));
            by_cell.insert(cell.to_string(), s);
        }
    }
    EvalSummary {
        all: summarize(records),
        by_cell,
        cell: summarize(by_kind(EvalKind::Cell)),
        open: summarize(by_kind(EvalKind::Open)),
        numbers: summarize(by_kind(EvalKind::Numbers)),
        numbers_signature: NumbersSignature::of(by_kind(EvalKind::Numbers)),
        config: spec.clone(),
    }
}

/// Prints a few samples per prompt with the judge's verdicts (for reading, not for figures), from an
/// eval config (its `io.out` is not written). The model sees what the eval stage gives it: the spec's
/// context is printed before the prompt, and its direction is applied.
pub fn print_samples(cfg: &StageConfig, device: &Device) -> Result<()> {
    let StageSpec::Eval(spec) = &cfg.spec else {
        bail!(
            "printing samples takes an eval config, not a {} config",
            cfg.spec.kind()
        );
    };
    cfg.check_inputs()?;
    let (model, tok, _) = load_run(&model_folder(spec, &cfg.io)?, device)?;
    let prompts = suite_prompts(spec, &cfg.io)?;
    let prefixes = prefixes(spec, &tok, &prompts, model.context_length())?;
    match direction_of(spec, &cfg.io, &model)? {
        None => print_with(&model, spec, &tok, &prompts, &prefixes),
        Some((_, hook)) => {
            let steered = Steered {
                model: &model,
                intervention: &hook,
            };
            print_with(&steered, spec, &tok, &prompts, &prefixes)
        }
    }
}

fn print_with<M: LanguageModel>(
    model: &M,
    spec: &EvalSpec,
    tok: &Tok,
    prompts: &[SuitePrompt],
    prefixes: &[Vec<u32>],
) -> Result<()> {
    for r in evaluate_from(model, tok, &ids_and_specs(prompts), prefixes, &spec.eval)? {
        let i = prompts
            .iter()
            .position(|p| p.id == r.prompt_id)
            .expect("record of a prompt");
        if r.sample == 0 && spec.context.is_some() {
            println!("[{}] context : {}", r.prompt_id, tok.decode(&prefixes[i])?);
        }
        println!(
            "[{}/{}] user : {}\n    assistant : {}\n    judge : {:?}",
            r.prompt_id,
            r.sample,
            prompts[i].spec.text(),
            r.answer,
            r.verdict
        );
    }
    Ok(())
}
