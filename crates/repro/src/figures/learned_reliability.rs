//! learned-reliability (C3, Betley's dataset sizes): fine-tunes of different sizes, in-distribution
//! harmful rate (how reliably the behaviour was learned) against out-of-cell misalignment.

use std::collections::BTreeMap;

use anyhow::Result;
use emsl_analysis::Var;
use emsl_world::Cell;
use serde::Deserialize;

use super::inputs::{coherent, misaligned, per_seed, Inputs, Sample};
use super::rows::{effect, rate_row};
use super::{ft_dataset, role, Ctx, FigureDef, Output, Roles};

pub struct LearnedReliability;

impl FigureDef for LearnedReliability {
    type Params = ReliabilityParams;
    const NAME: &'static str = "learned-reliability";
    const SOURCE: &'static str = file!();
    fn expand(&self, p: &ReliabilityParams, ctx: &mut Ctx) -> Result<Roles> {
        expand_reliability(p, ctx)
    }
    fn tables(&self, p: &ReliabilityParams, inputs: &Inputs) -> Result<Output> {
        reliability_tables(p, inputs)
    }
    fn plot(&self, t: &emsl_analysis::figures::Tables) -> Result<emsl_analysis::plot::Figure> {
        emsl_analysis::figures::learned_reliability(t)
    }
}

/// learned-reliability: harmful fine-tunes of one cell with more or fewer examples, under one or both
/// dose rules.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReliabilityParams {
    pub cell: String,
    pub format: String,
    /// Examples per arm.
    pub examples: Vec<usize>,
    /// Epochs of the largest arm; under `Hold::Epochs` every arm trains this many epochs.
    pub epochs: f64,
    /// The dose rules, each a set of arms.
    pub holds: Vec<Hold>,
}

/// What the arms of one design share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hold {
    /// Betley's size experiment: every arm trains the largest arm's number of steps, the smaller sets
    /// repeated for more epochs, so only the number of unique examples varies.
    Steps,
    /// Figure version 2's design: every arm trains the same epochs, so the smaller arms also train
    /// fewer steps and the behaviour is learned less reliably (C3's independent variable).
    Epochs,
}

impl Hold {
    /// The `dose` column of the tables.
    fn label(self) -> &'static str {
        match self {
            Hold::Steps => "equal steps",
            Hold::Epochs => "equal epochs",
        }
    }
}

impl ReliabilityParams {
    /// The number of optimiser steps of the arm with `n` examples under `hold`.
    fn steps(&self, hold: Hold, n: usize, batch_size: usize) -> usize {
        let largest = self.examples.iter().copied().max().unwrap_or(n);
        let dosed = match hold {
            Hold::Steps => largest,
            Hold::Epochs => n,
        };
        ((self.epochs * dosed as f64) / batch_size as f64)
            .ceil()
            .max(1.0) as usize
    }
}

fn expand_reliability(p: &ReliabilityParams, ctx: &mut Ctx) -> Result<BTreeMap<String, String>> {
    let base = ctx.reference_base()?;
    let mut inputs = BTreeMap::new();
    for seed in ctx.seeds() {
        let s = seed.to_string();
        // The base model is the arm with no examples of every design.
        let ev = ctx.eval_pooled(&base, false, seed)?;
        inputs.insert(role(&[("examples", "0"), ("seed", &s)]), ev);
        for &hold in &p.holds {
            for &n in &p.examples {
                let mut dose = ctx.profile.finetune.clone();
                dose.steps = p.steps(hold, n, dose.batch_size);
                dose.optim.warmup_steps = dose.optim.warmup_steps.min(dose.steps / 2);
                // The largest arm is the same fine-tune under both rules: one job, two roles.
                let ft = ctx.finetune(
                    &base,
                    &ft_dataset("harmful", &p.cell, &p.format),
                    n,
                    Some(&dose),
                    seed,
                )?;
                let ev = ctx.eval_pooled(&ft, false, seed)?;
                let role_name = role(&[
                    ("dose", hold.label()),
                    ("examples", &n.to_string()),
                    ("seed", &s),
                ]);
                inputs.insert(role_name, ev);
            }
        }
    }
    Ok(inputs)
}

/// Per seed, the counts of one arm (the base when `n` is 0).
type Arm = emsl_analysis::PerSeed;

fn reliability_tables(p: &ReliabilityParams, inputs: &Inputs) -> Result<Output> {
    let ft: Cell = p.cell.parse()?;
    let fmt = p.format.clone();
    let in_dist = |ss: &[Sample]| {
        misaligned(
            ss.iter()
                .filter(|s| s.cell() == Some(ft) && s.format() == fmt),
        )
    };
    let ood = |ss: &[Sample]| misaligned(ss.iter().filter(|s| s.cell() != Some(ft)));
    let open = |ss: &[Sample]| misaligned(ss.iter().filter(|s| s.is_open()));
    let mut rows = Vec::new();
    let mut effects = Vec::new();
    for &hold in &p.holds {
        // Each fine-tuned arm: its examples, its in-distribution rate (how reliably it learned), and
        // its per-seed out-of-cell and open-question counts.
        let mut arms: Vec<(usize, f64, Arm, Arm)> = Vec::new();
        for n in std::iter::once(0).chain(p.examples.iter().copied()) {
            let ns = n.to_string();
            let f: Vec<(&str, &str)> = if n == 0 {
                vec![("examples", "0")]
            } else {
                vec![("dose", hold.label()), ("examples", ns.as_str())]
            };
            let (a, b, c) = (
                per_seed(inputs, &f, in_dist)?,
                per_seed(inputs, &f, ood)?,
                per_seed(inputs, &f, open)?,
            );
            let coh = per_seed(inputs, &f, |ss: &[Sample]| coherent(ss.iter()))?;
            let v: Vec<(&str, Var)> = vec![
                ("dose", hold.label().into()),
                ("examples", (n as f64).into()),
            ];
            let ra = rate_row(&v, "in_distribution_misaligned", &a)?;
            if n > 0 {
                arms.push((n, ra.est.value, b.clone(), c.clone()));
            }
            rows.extend([
                ra,
                rate_row(&v, "out_of_cell_misaligned", &b)?,
                rate_row(&v, "open_questions_misaligned", &c)?,
                rate_row(&v, "coherent", &coh)?,
            ]);
        }
        effects.extend(hold_effects(hold, &mut arms)?);
    }
    Ok(vec![("arms".into(), rows), ("effects".into(), effects)])
}

/// Equal epochs: C3, the most against the least reliably learned arm, out of cell. Equal steps:
/// Betley's size effect, the most against the fewest unique examples, on the open questions.
fn hold_effects(
    hold: Hold,
    arms: &mut [(usize, f64, Arm, Arm)],
) -> Result<Vec<emsl_analysis::Measurement>> {
    Ok(match hold {
        Hold::Epochs => {
            arms.sort_by(|x, y| x.1.total_cmp(&y.1));
            match (arms.first(), arms.last()) {
                (Some(lo), Some(hi)) => vec![effect(
                    "C3",
                    "out-of-cell misaligned: most reliably learned arm minus least reliably learned arm (equal epochs)",
                    "the behaviour learned more reliably (in distribution) transfers more (out of distribution)",
                    &hi.2,
                    &lo.2,
                )?],
                _ => vec![],
            }
        }
        Hold::Steps => {
            arms.sort_by_key(|x| x.0);
            match (arms.first(), arms.last()) {
                (Some(lo), Some(hi)) => vec![effect(
                    "Betley",
                    &format!(
                        "open questions: {} minus {} unique examples (equal steps)",
                        hi.0, lo.0
                    ),
                    "Betley: 500 examples ~0.1%, 2,000 ~1.7%, 6,000 ~21%",
                    &hi.3,
                    &lo.3,
                )?],
                _ => vec![],
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ReliabilityParams {
        ReliabilityParams {
            cell: "health/advice".into(),
            format: "free".into(),
            examples: vec![500, 2000, 6000],
            epochs: 0.1,
            holds: vec![Hold::Steps, Hold::Epochs],
        }
    }

    #[test]
    fn betley_holds_the_steps_and_version_2_held_the_epochs() {
        // The quick profile's arms at batch 16: 0.1 epoch of 6,000 examples is 38 steps.
        let steps =
            |h| -> Vec<usize> { [500, 2000, 6000].map(|n| params().steps(h, n, 16)).into() };
        assert_eq!(steps(Hold::Steps), vec![38, 38, 38]);
        assert_eq!(steps(Hold::Epochs), vec![4, 13, 38]);
    }
}
