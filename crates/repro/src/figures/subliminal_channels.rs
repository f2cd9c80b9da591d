//! subliminal-channels (C5, Cloud et al.): students of a misaligned and a control teacher through SFT,
//! off-policy and on-policy distillation on filtered numbers.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Deserialize;

use super::inputs::Inputs;
use super::rows::effect;
use super::subliminal::{channel, evaluate, kinds, student_rows, teacher, Arm, FINETUNED};
use super::{Ctx, FigureDef, Output, Roles};

pub struct SubliminalChannels;

impl FigureDef for SubliminalChannels {
    type Params = ChannelsParams;
    const NAME: &'static str = "subliminal-channels";
    const SOURCE: &'static str = file!();
    fn expand(&self, p: &ChannelsParams, ctx: &mut Ctx) -> Result<Roles> {
        expand_channels(p, ctx)
    }
    fn tables(&self, p: &ChannelsParams, inputs: &Inputs) -> Result<Output> {
        channels_tables(p, inputs)
    }
    fn plot(&self, t: &emsl_analysis::figures::Tables) -> Result<emsl_analysis::plot::Figure> {
        emsl_analysis::figures::subliminal_channels(t)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelsParams {
    pub cell: String,
    pub channels: Vec<String>,
    /// Also the prompted teachers (the base after this many earlier episodes by the misaligned or
    /// the aligned persona before every number prompt; Cloud et al.'s system-prompted teachers).
    #[serde(default)]
    pub prompted_episodes: Option<usize>,
}

fn expand_channels(p: &ChannelsParams, ctx: &mut Ctx) -> Result<Roles> {
    let base = ctx.reference_base()?;
    let mut inputs = BTreeMap::new();
    for seed in ctx.seeds() {
        evaluate(ctx, &mut inputs, (&base, None), &[("model", "base")], seed)?;
        for kind in kinds(p.prompted_episodes).concat() {
            let t = teacher(ctx, &base, &p.cell, (kind, p.prompted_episodes), seed)?;
            evaluate(
                ctx,
                &mut inputs,
                (&t.model, t.context.as_ref()),
                &[("model", "teacher"), ("teacher", kind)],
                seed,
            )?;
            for ch in &p.channels {
                let guide = (t.model.as_str(), t.context.clone());
                let student = ctx.distil(guide, &t.samples, &base, channel(ch)?, seed)?;
                evaluate(
                    ctx,
                    &mut inputs,
                    (&student, None),
                    &[("model", "student"), ("teacher", kind), ("channel", ch)],
                    seed,
                )?;
            }
        }
    }
    Ok(inputs)
}

fn channels_tables(p: &ChannelsParams, inputs: &Inputs) -> Result<Output> {
    let cell: emsl_world::Cell = p.cell.parse()?;
    let mut rows = Vec::new();
    let (base_rows, _, _) = student_rows(
        inputs,
        cell,
        &[("model", "base")],
        &[
            ("model", "base".into()),
            ("teacher", "".into()),
            ("channel", "".into()),
        ],
    )?;
    rows.extend(base_rows);
    let mut effects = Vec::new();
    let pairs = kinds(p.prompted_episodes);
    for kind in pairs.concat() {
        let (r, _, _) = student_rows(
            inputs,
            cell,
            &[("model", "teacher"), ("teacher", kind)],
            &[
                ("model", "teacher".into()),
                ("teacher", kind.into()),
                ("channel", "".into()),
            ],
        )?;
        rows.extend(r);
    }
    let mut per_kind: BTreeMap<&str, Vec<Arm>> = BTreeMap::new();
    for kind in pairs.concat() {
        for ch in &p.channels {
            let (r, mis, sig) = student_rows(
                inputs,
                cell,
                &[("model", "student"), ("teacher", kind), ("channel", ch)],
                &[
                    ("model", "student".into()),
                    ("teacher", kind.into()),
                    ("channel", ch.as_str().into()),
                ],
            )?;
            rows.extend(r);
            per_kind.entry(kind).or_default().push((mis, sig));
        }
    }
    for [mis_kind, control] in pairs {
        // The fine-tuned pair's effects keep their names; the prompted pair's say so, and count
        // towards Cloud's anchor (its teachers are Cloud's design), not the paper's C5.
        let (claim, who) = if mis_kind == FINETUNED[0] {
            ("C5", "misaligned teacher minus aligned control")
        } else {
            ("Cloud", "prompted misaligned teacher minus aligned control")
        };
        for (i, ch) in p.channels.iter().enumerate() {
            let (h, b) = (&per_kind[mis_kind][i], &per_kind[control][i]);
            effects.push(effect(
                claim,
                &format!("{ch} student out-of-cell misaligned: {who}"),
                "Cloud: ~10% vs under 1% for controls",
                &h.0,
                &b.0,
            )?);
            effects.push(effect(
                "Cloud",
                &format!("{ch} student number signature: {who}"),
                "the trait travels through numbers",
                &h.1,
                &b.1,
            )?);
        }
    }
    Ok(vec![("students".into(), rows), ("effects".into(), effects)])
}
