//! subliminal-channels (C5, Cloud et al.): students of a misaligned and a control teacher through SFT,
//! off-policy and on-policy distillation on filtered numbers.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Deserialize;

use super::inputs::Inputs;
use super::rows::effect;
use super::subliminal::{channel, evaluate, student_rows, teacher, Arm};
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
}

fn expand_channels(p: &ChannelsParams, ctx: &mut Ctx) -> Result<Roles> {
    let base = ctx.reference_base()?;
    let mut inputs = BTreeMap::new();
    for seed in ctx.seeds() {
        evaluate(ctx, &mut inputs, &base, &[("model", "base")], seed)?;
        for kind in ["harmful", "benign"] {
            let (t, samples) = teacher(ctx, &base, &p.cell, kind, seed)?;
            evaluate(
                ctx,
                &mut inputs,
                &t,
                &[("model", "teacher"), ("teacher", kind)],
                seed,
            )?;
            for ch in &p.channels {
                let student = ctx.distil(&t, &samples, &base, channel(ch)?, seed)?;
                evaluate(
                    ctx,
                    &mut inputs,
                    &student,
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
    for kind in ["harmful", "benign"] {
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
    for kind in ["harmful", "benign"] {
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
    for (i, ch) in p.channels.iter().enumerate() {
        let (h, b) = (&per_kind["harmful"][i], &per_kind["benign"][i]);
        effects.push(effect(
            "C5",
            &format!(
                "{ch} student out-of-cell misaligned: misaligned teacher minus aligned control"
            ),
            "Cloud: ~10% vs under 1% for controls",
            &h.0,
            &b.0,
        ));
        effects.push(effect(
            "Cloud",
            &format!("{ch} student number signature: misaligned teacher minus aligned control"),
            "the trait travels through numbers",
            &h.1,
            &b.1,
        ));
    }
    Ok(vec![("students".into(), rows), ("effects".into(), effects)])
}
