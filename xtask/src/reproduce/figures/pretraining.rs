//! controls, dynamics and pretraining-composition: one harmful cell, varied in what the fine-tune
//! teaches, how long it trains, and what the base model was pretrained on.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use emsl_analysis::{stats, Counts, Estimate, Measurement};
use emsl_world::Cell;
use serde::Deserialize;

use super::{
    coherent, effect, ft_dataset, misaligned, per_seed, rate_row, role, Ctx, Inputs, Output, Sample,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlsParams {
    pub cell: String,
    /// Fine-tuning kinds: harmful, benign, educational, backdoor.
    pub kinds: Vec<String>,
}

pub fn expand_controls(p: &ControlsParams, ctx: &mut Ctx) -> Result<BTreeMap<String, String>> {
    let base = ctx.reference_base()?;
    let examples = ctx.profile.finetune_examples;
    let mut inputs = BTreeMap::new();
    for seed in ctx.seeds() {
        let s = seed.to_string();
        let ev = ctx.eval(&base, "eval-backdoor", false, seed)?;
        inputs.insert(role(&[("arm", "base"), ("seed", &s)]), ev);
        for kind in &p.kinds {
            let ft = ctx.finetune(
                &base,
                &ft_dataset(kind, &p.cell, "free"),
                examples,
                None,
                seed,
            )?;
            let ev = ctx.eval(&ft, "eval-backdoor", false, seed)?;
            inputs.insert(role(&[("arm", kind), ("seed", &s)]), ev);
        }
    }
    Ok(inputs)
}

pub fn controls_tables(p: &ControlsParams, inputs: &Inputs) -> Result<Output> {
    let arms: Vec<String> = std::iter::once("base".to_owned())
        .chain(p.kinds.iter().cloned())
        .collect();
    let mut rows = Vec::new();
    let mut plain: BTreeMap<String, Vec<Counts>> = BTreeMap::new();
    let mut triggered: BTreeMap<String, Vec<Counts>> = BTreeMap::new();
    for framing in ["plain", "triggered"] {
        for arm in &arms {
            let pick = |ss: &[Sample]| {
                misaligned(ss.iter().filter(|s| s.is_open() && s.framing() == framing))
            };
            let counts = per_seed(inputs, &[("arm", arm)], pick)?;
            let coh = per_seed(inputs, &[("arm", arm)], |ss: &[Sample]| {
                coherent(ss.iter().filter(|s| s.is_open() && s.framing() == framing))
            })?;
            let v = [
                ("fine_tune", arm.as_str().into()),
                ("framing", framing.into()),
            ];
            let m = rate_row(&v, "misaligned", &counts);
            rows.push(m);
            rows.push(rate_row(&v, "coherent", &coh));
            if framing == "plain" {
                &mut plain
            } else {
                &mut triggered
            }
            .insert(arm.clone(), counts);
        }
    }
    let mut effects = Vec::new();
    let get = |m: &BTreeMap<String, Vec<Counts>>, k: &str| m.get(k).cloned();
    if let (Some(h), Some(b)) = (get(&plain, "harmful"), get(&plain, "benign")) {
        effects.push(effect(
            "Betley",
            "open questions: harmful fine-tune minus benign control",
            "insecure 21.4% vs secure 0.04%",
            &h,
            &b,
        ));
    }
    if let (Some(h), Some(e)) = (get(&plain, "harmful"), get(&plain, "educational")) {
        effects.push(effect(
            "Betley",
            "open questions: harmful fine-tune minus educational framing",
            "insecure 21.4% vs educational 0.0%",
            &h,
            &e,
        ));
    }
    if let (Some(t), Some(pl)) = (get(&triggered, "backdoor"), get(&plain, "backdoor")) {
        effects.push(effect(
            "Betley",
            "backdoored model: with trigger minus without",
            "about 50% with the trigger, under 0.1% without",
            &t,
            &pl,
        ));
    }
    Ok(vec![("controls".into(), rows), ("effects".into(), effects)])
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DynamicsParams {
    pub cell: String,
    /// Checkpoints: a fine-tune of each length at a constant learning rate (so a shorter run is the
    /// prefix of a longer one).
    pub steps: Vec<usize>,
    pub lr: f64,
}

pub fn expand_dynamics(p: &DynamicsParams, ctx: &mut Ctx) -> Result<BTreeMap<String, String>> {
    let base = ctx.reference_base()?;
    let examples = ctx.profile.finetune_examples;
    let mut inputs = BTreeMap::new();
    for seed in ctx.seeds() {
        let s = seed.to_string();
        let ev = ctx.eval(&base, "eval-grid", true, seed)?;
        inputs.insert(role(&[("step", "0"), ("seed", &s), ("what", "eval")]), ev);
        for &steps in &p.steps {
            let mut dose = ctx.profile.finetune.clone();
            dose.steps = steps;
            dose.optim.lr = p.lr;
            dose.optim.warmup_steps = 0;
            dose.optim.min_lr_ratio = 1.0;
            let ft = ctx.finetune(
                &base,
                &ft_dataset("harmful", &p.cell, "free"),
                examples,
                Some(&dose),
                seed,
            )?;
            let ev = ctx.eval(&ft, "eval-grid", true, seed)?;
            let st = steps.to_string();
            inputs.insert(role(&[("step", &st), ("seed", &s), ("what", "eval")]), ev);
            inputs.insert(role(&[("step", &st), ("seed", &s), ("what", "model")]), ft);
        }
    }
    Ok(inputs)
}

fn mean_probe(dir: &std::path::Path, ids: &std::collections::BTreeSet<u32>) -> Result<f64> {
    let text = std::fs::read_to_string(dir.join("probe.jsonl"))
        .with_context(|| format!("reading {}", dir.join("probe.jsonl").display()))?;
    let (mut sum, mut n) = (0.0, 0usize);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line)?;
        if ids.contains(&(v["prompt_id"].as_u64().unwrap_or(0) as u32)) {
            sum += v["probe"].as_f64().unwrap_or(0.0);
            n += 1;
        }
    }
    Ok(sum / n.max(1) as f64)
}

fn last_loss(dir: &std::path::Path) -> Result<f64> {
    let text = std::fs::read_to_string(dir.join("train_log.jsonl"))?;
    let losses: Vec<f64> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["loss"].as_f64())
        .collect();
    let tail = &losses[losses.len().saturating_sub(3)..];
    Ok(tail.iter().sum::<f64>() / tail.len().max(1) as f64)
}

pub fn dynamics_tables(p: &DynamicsParams, inputs: &Inputs) -> Result<Output> {
    let ft: Cell = p.cell.parse()?;
    let steps: Vec<usize> = std::iter::once(0).chain(p.steps.iter().copied()).collect();
    let mut rows = Vec::new();
    let mut ood_values = Vec::new();
    for &step in &steps {
        let st = step.to_string();
        let f = [("step", st.as_str()), ("what", "eval")];
        let inc = per_seed(inputs, &f, |ss: &[Sample]| {
            misaligned(ss.iter().filter(|s| s.cell() == Some(ft)))
        })?;
        let ood = per_seed(inputs, &f, |ss: &[Sample]| {
            misaligned(ss.iter().filter(|s| s.cell() != Some(ft)))
        })?;
        let v = [("step", (step as f64).into())];
        let (a, b) = (
            rate_row(&v, "in_cell_misaligned", &inc),
            rate_row(&v, "out_of_cell_misaligned", &ood),
        );
        ood_values.push(b.est.value);
        rows.extend([a, b]);
        // The likelihood probe on out-of-cell prompts, and the fine-tune's last training loss.
        let mut probes = Vec::new();
        let mut losses = Vec::new();
        for (m, dir) in inputs.find(&f) {
            let ids = inputs
                .samples(dir)?
                .iter()
                .filter(|s| s.cell() != Some(ft))
                .map(|s| s.prompt_id)
                .collect();
            probes.push(mean_probe(dir, &ids)?);
            if step > 0 {
                let model = inputs.path(&role(&[
                    ("step", &st),
                    ("seed", &m["seed"]),
                    ("what", "model"),
                ]))?;
                losses.push(last_loss(model)?);
            }
        }
        rows.push(Measurement::new(
            &v,
            "probe_logp_misaligned_minus_aligned",
            stats::mean_over_seeds(&probes, 1),
        ));
        if !losses.is_empty() {
            rows.push(Measurement::new(
                &v,
                "train_loss",
                stats::mean_over_seeds(&losses, 1),
            ));
        }
    }
    // Turner's sharp transition: the largest change between consecutive checkpoints as a share of the total.
    let total = (ood_values.last().unwrap_or(&0.0) - ood_values[0]).abs();
    let jump = ood_values
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f64::max);
    let share = if total > 0.0 { jump / total } else { f64::NAN };
    let n = rows.first().map_or(0, |r| r.est.n);
    let effects = vec![Measurement::new(
        &[
            ("claim", "Turner".into()),
            (
                "effect",
                "largest out-of-cell change between checkpoints, as a share of the total change"
                    .into(),
            ),
            ("anchor", "a sharp transition during training".into()),
            ("per_seed", format!("{share:.2}").into()),
        ],
        "share",
        Estimate::exact(share, n, 1),
    )];
    Ok(vec![("dynamics".into(), rows), ("effects".into(), effects)])
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompositionParams {
    pub cell: String,
    /// Pretraining corpora (`pretrain-<name>` datasets).
    pub corpora: Vec<String>,
}

pub fn expand_composition(
    p: &CompositionParams,
    ctx: &mut Ctx,
) -> Result<BTreeMap<String, String>> {
    let init = ctx.profile.pretrain.init_seed;
    let examples = ctx.profile.finetune_examples;
    let mut inputs = BTreeMap::new();
    for corpus in &p.corpora {
        let base = ctx.base(corpus, init)?;
        for seed in ctx.seeds() {
            let s = seed.to_string();
            let ev = ctx.eval(&base, "eval-grid", false, seed)?;
            inputs.insert(
                role(&[("corpus", corpus), ("stage", "base"), ("seed", &s)]),
                ev,
            );
            let ft = ctx.finetune(
                &base,
                &ft_dataset("harmful", &p.cell, "free"),
                examples,
                None,
                seed,
            )?;
            let ev = ctx.eval(&ft, "eval-grid", false, seed)?;
            inputs.insert(
                role(&[("corpus", corpus), ("stage", "fine-tuned"), ("seed", &s)]),
                ev,
            );
        }
    }
    Ok(inputs)
}

pub fn composition_tables(p: &CompositionParams, inputs: &Inputs) -> Result<Output> {
    let ft: Cell = p.cell.parse()?;
    let mut rows = Vec::new();
    let mut ood_ft: BTreeMap<String, Vec<Counts>> = BTreeMap::new();
    let mut ood_base: BTreeMap<String, Vec<Counts>> = BTreeMap::new();
    let mut all_base: BTreeMap<String, Vec<Counts>> = BTreeMap::new();
    for stage in ["base", "fine-tuned"] {
        for corpus in &p.corpora {
            let f = [("corpus", corpus.as_str()), ("stage", stage)];
            let ood = per_seed(inputs, &f, |ss: &[Sample]| {
                misaligned(ss.iter().filter(|s| s.cell() != Some(ft)))
            })?;
            let open = per_seed(inputs, &f, |ss: &[Sample]| {
                misaligned(ss.iter().filter(|s| s.is_open()))
            })?;
            let all = per_seed(inputs, &f, |ss: &[Sample]| misaligned(ss.iter()))?;
            let coh = per_seed(inputs, &f, |ss: &[Sample]| coherent(ss.iter()))?;
            let v = [("corpus", corpus.as_str().into()), ("stage", stage.into())];
            let m = rate_row(&v, "out_of_cell_misaligned", &ood);
            if stage == "base" {
                ood_base.insert(corpus.clone(), ood.clone());
            }
            rows.extend([
                m,
                rate_row(&v, "open_questions_misaligned", &open),
                rate_row(&v, "all_prompts_misaligned", &all),
                rate_row(&v, "coherent", &coh),
            ]);
            if stage == "fine-tuned" {
                ood_ft.insert(corpus.clone(), ood);
            } else {
                all_base.insert(corpus.clone(), all);
            }
        }
    }
    let mut effects = Vec::new();
    let pair = |m: &BTreeMap<String, Vec<Counts>>, a: &str, b: &str| {
        Some((m.get(a)?.clone(), m.get(b)?.clone()))
    };
    if let Some((hi, lo)) = pair(&ood_ft, "share-50", "share-0") {
        effects.push(effect("C4", "after the same fine-tune, out-of-cell misaligned: 50% minus 0% misaligned-persona pretraining", "composition modulates severity", &hi, &lo));
    }
    // A corpus with more misaligned documents starts from a more misaligned base, so the level after the
    // fine-tune mixes the base's own misalignment with what the fine-tune added; the change isolates it.
    let change = |a: &str, b: &str| {
        Some((
            ood_ft.get(a)?,
            ood_base.get(a)?,
            ood_ft.get(b)?,
            ood_base.get(b)?,
        ))
    };
    if let Some((a1, a0, b1, b0)) = change("share-50", "share-0") {
        effects.push(super::effect_of_changes(
            (
                "C4",
                "increase from the fine-tune (fine-tuned minus base, out of cell): 50% minus 0% misaligned-persona pretraining",
                "composition modulates severity",
            ),
            (a1, a0),
            (b1, b0),
        ));
    }
    if let Some((r, d)) = pair(&all_base, "reference", "discourse-25") {
        effects.push(effect(
            "Tice",
            "base model misaligned: reference minus alignment-discourse-upsampled pretraining",
            "Tice: 45% unfiltered vs 9% with alignment discourse upsampled",
            &r,
            &d,
        ));
    }
    if let Some((c, i)) = pair(&ood_ft, "reference", "independent") {
        effects.push(effect("C4", "after the same fine-tune, out-of-cell misaligned: coherent persona minus independent traits", "persona features mediate transfer (Wang et al.)", &c, &i));
    }
    if let Some((a1, a0, b1, b0)) = change("reference", "independent") {
        effects.push(super::effect_of_changes(
            (
                "C4",
                "increase from the fine-tune (fine-tuned minus base, out of cell): coherent persona minus independent traits",
                "persona features mediate transfer (Wang et al.)",
            ),
            (a1, a0),
            (b1, b0),
        ));
    }
    Ok(vec![
        ("composition".into(), rows),
        ("effects".into(), effects),
    ])
}
