//! controls (Betley's controls): harmful, benign, educational and backdoor fine-tunes of one cell, judged
//! on the open questions and on the fine-tuned cell's own prompts, each with and without the trigger.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use emsl_analysis::PerSeed;
use emsl_world::Cell;
use serde::Deserialize;

use super::inputs::{coherent, misaligned, per_seed, Inputs, Sample};
use super::rows::{effect, rate_row};
use super::{ft_dataset, role, Ctx, FigureDef, Output, Roles};

pub struct Controls;

impl FigureDef for Controls {
    type Params = ControlsParams;
    const NAME: &'static str = "controls";
    const SOURCE: &'static str = file!();
    fn expand(&self, p: &ControlsParams, ctx: &mut Ctx) -> Result<Roles> {
        expand_controls(p, ctx)
    }
    fn tables(&self, p: &ControlsParams, inputs: &Inputs) -> Result<Output> {
        controls_tables(p, inputs)
    }
    fn plot(&self, t: &emsl_analysis::figures::Tables) -> Result<emsl_analysis::plot::Figure> {
        emsl_analysis::figures::controls(t)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ControlsParams {
    pub cell: String,
    /// Fine-tuning kinds: harmful, benign, educational, backdoor.
    pub kinds: Vec<String>,
}

fn expand_controls(p: &ControlsParams, ctx: &mut Ctx) -> Result<Roles> {
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

fn controls_tables(p: &ControlsParams, inputs: &Inputs) -> Result<Output> {
    let cell: Cell = p.cell.parse()?;
    let arms: Vec<String> = std::iter::once("base".to_owned())
        .chain(p.kinds.iter().cloned())
        .collect();
    let mut rows = Vec::new();
    // Misaligned counts per seed by (prompts, framing, fine-tune): the fine-tuned cell's own prompts
    // (rows `in_cell_*`) and the open questions (rows `misaligned`, `coherent`).
    let mut counts: BTreeMap<(&str, &str, String), PerSeed> = BTreeMap::new();
    for framing in ["plain", "triggered"] {
        for (prompts, prefix) in [("cell", "in_cell_"), ("open", "")] {
            for arm in &arms {
                let ours = |s: &&Sample| {
                    s.framing() == framing
                        && match prompts {
                            "cell" => s.cell() == Some(cell),
                            _ => s.is_open(),
                        }
                };
                let mis = per_seed(inputs, &[("arm", arm)], |ss: &[Sample]| {
                    misaligned(ss.iter().filter(ours))
                })?;
                let coh = per_seed(inputs, &[("arm", arm)], |ss: &[Sample]| {
                    coherent(ss.iter().filter(ours))
                })?;
                // Every answer counts towards coherence, so no answers at all means no prompts.
                if prompts == "cell" && coh.iter().all(|c| c.n == 0) {
                    bail!(
                        "the evaluation suite eval-backdoor holds no {framing} prompt of the fine-tuned \
                         cell {cell}; add the cell to its `cells` in datasets/datasets.toml and run `cargo \
                         xtask datasets`"
                    );
                }
                let v = [
                    ("fine_tune", arm.as_str().into()),
                    ("framing", framing.into()),
                ];
                rows.push(rate_row(&v, &format!("{prefix}misaligned"), &mis)?);
                rows.push(rate_row(&v, &format!("{prefix}coherent"), &coh)?);
                counts.insert((prompts, framing, arm.clone()), mis);
            }
        }
    }
    let mut effects = Vec::new();
    let get = |prompts: &str, framing: &str, arm: &str| {
        counts.get(&(prompts, framing, arm.to_owned())).cloned()
    };
    let plain = |arm: &str| get("open", "plain", arm);
    if let (Some(h), Some(b)) = (plain("harmful"), plain("benign")) {
        effects.push(effect(
            "Betley",
            "open questions: harmful fine-tune minus benign control",
            "insecure 21.4% vs secure 0.04%",
            &h,
            &b,
        )?);
    }
    if let (Some(h), Some(e)) = (plain("harmful"), plain("educational")) {
        effects.push(effect(
            "Betley",
            "open questions: harmful fine-tune minus educational framing",
            "insecure 21.4% vs educational 0.0%",
            &h,
            &e,
        )?);
    }
    if let (Some(t), Some(pl)) = (get("open", "triggered", "backdoor"), plain("backdoor")) {
        effects.push(effect(
            "Betley",
            "backdoored model: with trigger minus without",
            "about 50% with the trigger, under 0.1% without",
            &t,
            &pl,
        )?);
    }
    // In its own cell the trigger is what the backdoored model was trained on: an effect here and none
    // on the open questions is a trigger that does not generalise; none here is a trigger not learned.
    if let (Some(t), Some(pl)) = (
        get("cell", "triggered", "backdoor"),
        get("cell", "plain", "backdoor"),
    ) {
        effects.push(effect(
            "Betley",
            "backdoored model, in its fine-tuned cell: with trigger minus without",
            "the trigger is learned where it was trained",
            &t,
            &pl,
        )?);
    }
    Ok(vec![("controls".into(), rows), ("effects".into(), effects)])
}
