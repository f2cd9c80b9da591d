//! dynamics (Turner's transition): one harmful fine-tune checkpointed along the way; loss, in-cell and
//! out-of-cell misalignment and the likelihood probe per step.

use std::collections::BTreeMap;

use anyhow::Result;
use emsl_analysis::{stats, Counts, Estimate, Measurement};
use emsl_world::Cell;
use serde::Deserialize;

use super::inputs::{misaligned, per_seed, Inputs, Sample};
use super::rows::rate_row;
use super::{ft_dataset, role, Ctx, FigureDef, Output, Roles};

pub struct Dynamics;

impl FigureDef for Dynamics {
    type Params = DynamicsParams;
    const NAME: &'static str = "dynamics";
    const SOURCE: &'static str = file!();
    fn expand(&self, p: &DynamicsParams, ctx: &mut Ctx) -> Result<Roles> {
        expand_dynamics(p, ctx)
    }
    fn tables(&self, p: &DynamicsParams, inputs: &Inputs) -> Result<Output> {
        dynamics_tables(p, inputs)
    }
    fn plot(&self, t: &emsl_analysis::figures::Tables) -> Result<emsl_analysis::plot::Figure> {
        emsl_analysis::figures::dynamics(t)
    }
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

fn expand_dynamics(p: &DynamicsParams, ctx: &mut Ctx) -> Result<Roles> {
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
    let (mut sum, mut n) = (0.0, 0usize);
    for r in emsl_core::eval::read_probes(dir)? {
        if ids.contains(&r.prompt_id) {
            sum += r.probe;
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

fn dynamics_tables(p: &DynamicsParams, inputs: &Inputs) -> Result<Output> {
    let ft: Cell = p.cell.parse()?;
    let steps: Vec<usize> = std::iter::once(0).chain(p.steps.iter().copied()).collect();
    let mut rows = Vec::new();
    let mut ood_values = Vec::new();
    // Per step, the out-of-cell counts of each seed (for the per-seed transition shares).
    let mut ood_by_step: Vec<Vec<Counts>> = Vec::new();
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
        ood_by_step.push(ood.clone());
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
    // Turner's sharp transition: the largest change between consecutive checkpoints as a share of the
    // total, of the pooled rates (the value) and of each seed's own rates (per seed).
    let share = transition_share(&ood_values);
    let seeds = ood_by_step.first().map_or(0, Vec::len);
    let per_seed_shares: Vec<String> = (0..seeds)
        .map(|i| {
            let rates: Vec<f64> = ood_by_step.iter().map(|c| c[i].rate()).collect();
            format!("{:.2}", transition_share(&rates))
        })
        .collect();
    let n: u64 = ood_by_step.iter().flatten().map(|c| c.n).sum();
    let effects = vec![Measurement::new(
        &[
            ("claim", "Turner".into()),
            (
                "effect",
                "largest out-of-cell change between checkpoints, as a share of the total change"
                    .into(),
            ),
            ("anchor", "a sharp transition during training".into()),
            ("per_seed", per_seed_shares.join(" ").into()),
        ],
        "share",
        Estimate::exact(share, n, seeds as u32),
    )];
    Ok(vec![("dynamics".into(), rows), ("effects".into(), effects)])
}

/// The largest change between consecutive values as a share of the change from the first to the last
/// (undefined when they are equal).
fn transition_share(values: &[f64]) -> f64 {
    let total = (values.last().unwrap_or(&0.0) - values.first().unwrap_or(&0.0)).abs();
    let jump = values
        .windows(2)
        .map(|w| (w[1] - w[0]).abs())
        .fold(0.0, f64::max);
    if total > 0.0 {
        jump / total
    } else {
        f64::NAN
    }
}
