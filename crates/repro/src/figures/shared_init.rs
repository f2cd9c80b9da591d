//! shared-init (Cloud et al.): students that share the teacher's initialisation against students from
//! another initialisation.

use std::collections::BTreeMap;

use anyhow::{bail, Result};
use serde::Deserialize;

use super::inputs::Inputs;
use super::rows::{effect, effect_of_changes};
use super::subliminal::{channel, evaluate, student_rows, teacher, Arm, FINETUNED};
use super::{Ctx, FigureDef, Output, Roles};

pub struct SharedInit;

impl FigureDef for SharedInit {
    type Params = SharedInitParams;
    const NAME: &'static str = "shared-init";
    const SOURCE: &'static str = file!();
    fn expand(&self, p: &SharedInitParams, ctx: &mut Ctx) -> Result<Roles> {
        expand_shared_init(p, ctx)
    }
    fn tables(&self, p: &SharedInitParams, inputs: &Inputs) -> Result<Output> {
        shared_init_tables(p, inputs)
    }
    fn plot(&self, t: &emsl_analysis::figures::Tables) -> Result<emsl_analysis::plot::Figure> {
        emsl_analysis::figures::shared_init(t)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SharedInitParams {
    pub cell: String,
    pub channel: String,
    /// The initialisation seed of the other base model of the first base (the shared one uses the
    /// profile's); base `b`'s other model starts from `other_init_seed + b`.
    pub other_init_seed: u64,
    /// The pretraining corpora, each with its own pair of bases and teachers. Cloud's two channels
    /// apart: on `reference` the misaligned persona's numbers carry a semantic signature that any
    /// initialisation can learn; on a corpus with `signature_strength = 0` only model-specific
    /// features can carry the trait.
    #[serde(default = "reference_only")]
    pub corpora: Vec<String>,
}

fn reference_only() -> Vec<String> {
    vec!["reference".to_owned()]
}

fn expand_shared_init(p: &SharedInitParams, ctx: &mut Ctx) -> Result<Roles> {
    let mut inputs = BTreeMap::new();
    let ch = channel(&p.channel)?;
    // The other initialisations must be none of the bases' own: a base's "different" student would
    // otherwise start from another base of the same run.
    let (first, bases) = (
        ctx.profile.pretrain.init_seed,
        ctx.profile.pretrain.bases as u64,
    );
    if (first..first + bases).contains(&p.other_init_seed)
        || (p.other_init_seed..p.other_init_seed + bases).contains(&first)
    {
        bail!(
            "other_init_seed = {} overlaps the bases' init seeds {first}-{}: choose one at least \
             {} (or at most {first} minus the number of bases)",
            p.other_init_seed,
            first + bases - 1,
            first + bases,
        );
    }
    let other_seed = p.other_init_seed + ctx.base_index as u64;
    for corpus in &p.corpora {
        let base = ctx.base(corpus, ctx.init_seed())?;
        let other = ctx.base(corpus, other_seed)?;
        for seed in ctx.seeds() {
            for kind in FINETUNED {
                let t = teacher(ctx, &base, &p.cell, (kind, None), seed)?;
                for (init, model) in [("same", &base), ("different", &other)] {
                    let student = ctx.distil((&t.model, None), &t.samples, model, ch, seed)?;
                    evaluate(
                        ctx,
                        &mut inputs,
                        (&student, None),
                        &[("corpus", corpus), ("init", init), ("teacher", kind)],
                        seed,
                    )?;
                }
            }
        }
    }
    Ok(inputs)
}

fn shared_init_tables(p: &SharedInitParams, inputs: &Inputs) -> Result<Output> {
    let cell: emsl_world::Cell = p.cell.parse()?;
    let mut rows = Vec::new();
    let mut effects = Vec::new();
    for corpus in &p.corpora {
        let mut got: BTreeMap<(&str, &str), Arm> = BTreeMap::new();
        for kind in FINETUNED {
            for init in ["same", "different"] {
                let (r, mis, sig) = student_rows(
                    inputs,
                    cell,
                    &[("corpus", corpus), ("init", init), ("teacher", kind)],
                    &[
                        ("corpus", corpus.as_str().into()),
                        ("init", init.into()),
                        ("teacher", kind.into()),
                    ],
                )?;
                rows.extend(r);
                got.insert((kind, init), (mis, sig));
            }
        }
        // The reference corpus keeps the effects' names of the figures before `corpora` existed.
        let on = if corpus == "reference" {
            String::new()
        } else {
            format!(", pretrained on {corpus}")
        };
        effects.push(effect(
            "Cloud",
            &format!("same initialisation: student out-of-cell misaligned, misaligned minus aligned teacher{on}"),
            "shared initialisation transfers (~10% vs <1%)",
            &got[&("harmful", "same")].0,
            &got[&("benign", "same")].0,
        )?);
        // Cloud's control is that a different initialisation does *not* transfer: the claimed
        // direction of a comparison is that the same initialisation transfers more than a different one.
        effects.push(effect_of_changes(
            (
                "Cloud",
                &format!("student out-of-cell misaligned, misaligned minus aligned teacher: same minus different initialisation{on}"),
                "a different initialisation does not transfer",
            ),
            (&got[&("harmful", "same")].0, &got[&("benign", "same")].0),
            (
                &got[&("harmful", "different")].0,
                &got[&("benign", "different")].0,
            ),
        )?);
    }
    Ok(vec![("students".into(), rows), ("effects".into(), effects)])
}
