//! When a base's persona inference formed during pretraining (issue 38's ground truth about *why*
//! some bases show emergent misalignment): on each checkpoint its pretraining kept, and on its final
//! model, the likelihood probe on the grid's cell prompts after one misaligned minus after one
//! aligned episode (persona-inference's cell arm: at the end it is that figure's own job), beside the
//! pretraining loss up to that step. A base's formation step is the first step at which the effect on
//! the coherent-persona corpus reaches half its final value; the independent-traits corpus, whose
//! episodes say nothing about the next answer, is the control at every step.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use emsl_analysis::stats::{self, Estimate};
use emsl_analysis::Measurement;
use emsl_world::Persona;

use super::inputs::train_losses;
use super::inputs::{seed_of, Inputs};
use super::persona_inference::{context_eval_at, mean_probe, Arm};
use super::{role, Ctx};

/// The steps the measures are read at: every checkpoint, then the last step (the final model).
fn steps(ctx: &Ctx) -> Vec<(Option<usize>, usize)> {
    let last = ctx.profile.pretrain.dose.steps;
    let kept = ctx
        .profile
        .pretrain
        .checkpoints
        .iter()
        .map(|s| (Some(*s), *s));
    kept.chain([(None, last)]).collect()
}

/// The jobs of one base of one corpus at one seed: the probe after `episodes` episodes by each
/// persona at every step, and the base's pretraining itself (for its loss).
pub(super) fn expand(
    ctx: &mut Ctx,
    (corpus, base): (&str, &str),
    (episodes, answer_tokens): (usize, usize),
    seed: u64,
    inputs: &mut BTreeMap<String, String>,
) -> Result<()> {
    let s = seed.to_string();
    for (checkpoint, step) in steps(ctx) {
        let at = step.to_string();
        for persona in [Persona::Misaligned, Persona::Aligned] {
            let who = (episodes, Some(persona));
            let ev = context_eval_at(ctx, (base, checkpoint), Arm::Cell, who, answer_tokens, seed)?;
            let p = persona.to_string();
            let r = [
                ("what", "formation"),
                ("corpus", corpus),
                ("step", &at),
                ("persona", &p),
                ("seed", &s),
            ];
            inputs.insert(role(&r), ev);
        }
    }
    inputs.insert(
        role(&[("what", "pretrain"), ("corpus", corpus)]),
        base.to_owned(),
    );
    Ok(())
}

/// A base's probe effect at each step: `(base, step) -> estimate` over that base's seeds.
fn effects(inputs: &Inputs, corpus: &str) -> Result<BTreeMap<(u64, usize), Estimate>> {
    // (base, step, seed) -> mean probe per persona.
    let mut by: BTreeMap<(u64, usize, u64), [f64; 2]> = BTreeMap::new();
    for (i, persona) in ["misaligned", "aligned"].iter().enumerate() {
        for (m, dir) in inputs.find(&[
            ("what", "formation"),
            ("corpus", corpus),
            ("persona", persona),
        ]) {
            let (base, seed) = seed_of(&m)?;
            let step: usize = m["step"].parse().context("a formation role's step")?;
            by.entry((base, step, seed)).or_insert([f64::NAN; 2])[i] = mean_probe(dir)?;
        }
    }
    let mut per: BTreeMap<(u64, usize), Vec<f64>> = BTreeMap::new();
    for ((base, step, _), [mis, ali]) in by {
        per.entry((base, step)).or_default().push(mis - ali);
    }
    Ok(per
        .into_iter()
        .map(|(k, v)| (k, stats::mean_over_seeds(&v, 1)))
        .collect())
}

/// The mean training loss of the last (at most 50) steps up to `step` of a pretrain job's log.
fn loss_up_to(dir: &std::path::Path, step: usize) -> Result<f64> {
    let losses = train_losses(dir)?;
    let losses = &losses[..step.min(losses.len())];
    let tail = &losses[losses.len().saturating_sub(50)..];
    Ok(tail.iter().sum::<f64>() / tail.len().max(1) as f64)
}

/// The rows of the `formation` table (per base, corpus and step: the probe effect and the loss), and
/// each base's formation step (`base -> step`, NaN where the final effect is not above 0).
pub(super) fn tables(inputs: &Inputs) -> Result<(Vec<Measurement>, BTreeMap<u64, Estimate>)> {
    let mut rows = Vec::new();
    let mut formed = BTreeMap::new();
    for corpus in ["coherent", "independent"] {
        let effects = effects(inputs, corpus)?;
        let pretrain: BTreeMap<u64, std::path::PathBuf> = inputs
            .find(&[("what", "pretrain"), ("corpus", corpus)])
            .into_iter()
            .map(|(m, dir)| Ok((seed_of(&m)?.0, dir.to_path_buf())))
            .collect::<Result<_>>()?;
        for (&(base, step), est) in &effects {
            let v = |metric: &str, e: Estimate| {
                Measurement::new(
                    &[
                        ("base", (base as f64).into()),
                        ("corpus", corpus.into()),
                        ("step", (step as f64).into()),
                    ],
                    metric,
                    e,
                )
            };
            rows.push(v("probe_inference_cell", *est));
            if let Some(dir) = pretrain.get(&base) {
                let loss = loss_up_to(dir, step)?;
                rows.push(v("pretrain_loss", Estimate::exact(loss, step as u64, 1)));
            }
        }
        if corpus == "coherent" {
            formed = formation_steps(&effects);
        }
    }
    Ok((rows, formed))
}

/// Per base, the first step whose effect reaches half the last step's; NaN when the last effect is
/// not above 0 (nothing formed to reach half of).
fn formation_steps(effects: &BTreeMap<(u64, usize), Estimate>) -> BTreeMap<u64, Estimate> {
    let mut by_base: BTreeMap<u64, Vec<(usize, f64)>> = BTreeMap::new();
    for (&(base, step), e) in effects {
        by_base.entry(base).or_default().push((step, e.value));
    }
    by_base
        .into_iter()
        .map(|(base, steps)| {
            let last = steps.last().map_or(f64::NAN, |s| s.1);
            let at = match last > 0.0 {
                true => steps
                    .iter()
                    .find(|(_, v)| *v >= last / 2.0)
                    .map_or(f64::NAN, |s| s.0 as f64),
                false => f64::NAN,
            };
            (base, Estimate::exact(at, steps.len() as u64, 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(v: f64) -> Estimate {
        Estimate::exact(v, 1, 1)
    }

    #[test]
    fn a_base_forms_at_the_first_step_reaching_half_its_final_effect() {
        let mut e = BTreeMap::new();
        for (step, v) in [(250, 0.1), (500, 0.9), (1000, 2.5), (5000, 4.0)] {
            e.insert((1, step), exact(v));
        }
        // A base whose effect never rises above 0 has no formation step.
        for (step, v) in [(250, 0.1), (500, -0.2), (1000, 0.0), (5000, -0.1)] {
            e.insert((2, step), exact(v));
        }
        let f = formation_steps(&e);
        assert_eq!(f[&1].value, 1000.0);
        assert!(f[&2].value.is_nan());
    }
}
