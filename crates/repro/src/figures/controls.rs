//! controls (Betley's controls): harmful, benign, educational and backdoor fine-tunes of one cell, judged
//! on the open questions and on the fine-tuned cell's own prompts, each with and without the trigger.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use emsl_analysis::Counts;
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
    let mut plain: BTreeMap<String, Vec<Counts>> = BTreeMap::new();
    let mut triggered: BTreeMap<String, Vec<Counts>> = BTreeMap::new();
    let mut in_cell: BTreeMap<(&str, String), Vec<Counts>> = BTreeMap::new();
    for framing in ["plain", "triggered"] {
        for arm in &arms {
            let ours = |s: &&Sample| s.cell() == Some(cell) && s.framing() == framing;
            let counts = per_seed(inputs, &[("arm", arm)], |ss: &[Sample]| {
                misaligned(ss.iter().filter(ours))
            })?;
            let coh = per_seed(inputs, &[("arm", arm)], |ss: &[Sample]| {
                coherent(ss.iter().filter(ours))
            })?;
            // Every answer counts towards coherence, so no answers at all means no prompts.
            if coh.iter().all(|c| c.n == 0) {
                bail!(
                    "the evaluation suite eval-backdoor holds no {framing} prompt of the fine-tuned cell \
                     {cell}; add the cell to its `cells` in datasets/datasets.toml and run `cargo xtask datasets`"
                );
            }
            let v = [
                ("fine_tune", arm.as_str().into()),
                ("framing", framing.into()),
            ];
            rows.push(rate_row(&v, "in_cell_misaligned", &counts));
            rows.push(rate_row(&v, "in_cell_coherent", &coh));
            in_cell.insert((framing, arm.clone()), counts);
        }
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
    // In its own cell the trigger is what the backdoored model was trained on: an effect here and none
    // on the open questions is a trigger that does not generalise; none here is a trigger not learned.
    let backdoor = |framing: &str| in_cell.get(&(framing, "backdoor".to_owned())).cloned();
    if let (Some(t), Some(pl)) = (backdoor("triggered"), backdoor("plain")) {
        effects.push(effect(
            "Betley",
            "backdoored model, in its fine-tuned cell: with trigger minus without",
            "the trigger is learned where it was trained",
            &t,
            &pl,
        ));
    }
    Ok(vec![("controls".into(), rows), ("effects".into(), effects)])
}
