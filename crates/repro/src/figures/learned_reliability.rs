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

/// learned-reliability: harmful fine-tunes of one cell with more or fewer examples.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReliabilityParams {
    pub cell: String,
    pub format: String,
    /// Examples per arm.
    pub examples: Vec<usize>,
    /// Epochs of the largest arm; with `hold = "epochs"` every arm trains this many epochs.
    pub epochs: f64,
    /// What the arms share: "steps" (Betley's design: every arm trains the largest arm's number of
    /// steps, the smaller sets repeated for more epochs, so only the number of unique examples varies)
    /// or "epochs" (figure version 2's design: the smaller arms also train fewer steps).
    pub hold: Hold,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Hold {
    Steps,
    Epochs,
}

impl ReliabilityParams {
    /// The number of optimiser steps of the arm with `n` examples.
    fn steps(&self, n: usize, batch_size: usize) -> usize {
        let largest = self.examples.iter().copied().max().unwrap_or(n);
        let dosed = match self.hold {
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
        // The base model is the arm with no examples.
        let ev = ctx.eval(&base, "eval-grid", false, seed)?;
        inputs.insert(role(&[("examples", "0"), ("seed", &s)]), ev);
        for &n in &p.examples {
            let mut dose = ctx.profile.finetune.clone();
            dose.steps = p.steps(n, dose.batch_size);
            dose.optim.warmup_steps = dose.optim.warmup_steps.min(dose.steps / 2);
            let ft = ctx.finetune(
                &base,
                &ft_dataset("harmful", &p.cell, &p.format),
                n,
                Some(&dose),
                seed,
            )?;
            let ev = ctx.eval(&ft, "eval-grid", false, seed)?;
            inputs.insert(role(&[("examples", &n.to_string()), ("seed", &s)]), ev);
        }
    }
    Ok(inputs)
}

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
    let mut arms = Vec::new();
    for n in std::iter::once(0).chain(p.examples.iter().copied()) {
        let ns = n.to_string();
        let f = [("examples", ns.as_str())];
        let (a, b, c) = (
            per_seed(inputs, &f, in_dist)?,
            per_seed(inputs, &f, ood)?,
            per_seed(inputs, &f, open)?,
        );
        let coh = per_seed(inputs, &f, |ss: &[Sample]| coherent(ss.iter()))?;
        let v: Vec<(&str, Var)> = vec![("examples", (n as f64).into())];
        let (ra, rb) = (
            rate_row(&v, "in_distribution_misaligned", &a),
            rate_row(&v, "out_of_cell_misaligned", &b),
        );
        if n > 0 {
            arms.push((ra.est.value, b.clone()));
        }
        rows.extend([
            ra,
            rb,
            rate_row(&v, "open_questions_misaligned", &c),
            rate_row(&v, "coherent", &coh),
        ]);
    }
    arms.sort_by(|x, y| x.0.total_cmp(&y.0));
    let mut effects = Vec::new();
    if let (Some(lo), Some(hi)) = (arms.first(), arms.last()) {
        effects.push(effect(
            "C3",
            "out-of-cell misaligned: most reliably learned arm minus least reliably learned arm",
            "Betley: 500 examples ~0.1%, 2,000 ~1.7%, 6,000 ~21%",
            &hi.1,
            &lo.1,
        ));
    }
    Ok(vec![("arms".into(), rows), ("effects".into(), effects)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(hold: Hold) -> ReliabilityParams {
        ReliabilityParams {
            cell: "health/advice".into(),
            format: "free".into(),
            examples: vec![500, 2000, 6000],
            epochs: 0.1,
            hold,
        }
    }

    #[test]
    fn betley_holds_the_steps_and_version_2_held_the_epochs() {
        // The quick profile's arms at batch 16: 0.1 epoch of 6,000 examples is 38 steps.
        let steps = |h| -> Vec<usize> { [500, 2000, 6000].map(|n| params(h).steps(n, 16)).into() };
        assert_eq!(steps(Hold::Steps), vec![38, 38, 38]);
        assert_eq!(steps(Hold::Epochs), vec![4, 13, 38]);
    }
}
