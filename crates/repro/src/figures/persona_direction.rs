//! persona-direction: the persona direction (difference of means at the assistant marker between
//! misaligned and aligned contexts, per layer, with held-out accuracy) of the base on each corpus;
//! where open-question and cell prompts lie on it before and after harmful and benign fine-tunes;
//! steering the base with it (dose-response of the open questions); ablating it from a harmful
//! fine-tune (how much in-cell, out-of-cell and open-question misalignment remains). Wang et al. and
//! Soligo et al. measure these without a ground truth; the kit knows who wrote every context.

use std::collections::BTreeMap;

use anyhow::Result;
use emsl_analysis::PerSeed;
use emsl_core::eval::EvalKind;
use emsl_core::persona::{DirectionUse, PersonaDirection};
use emsl_world::{Cell, Target};
use serde::Deserialize;

use super::ctx_persona::PersonaEval;
use super::inputs::{coherent, misaligned, per_seed, values_by_base, Inputs, Sample};
use super::rows::{effect, mean_row, rate_row};
use super::{ft_dataset, role, Ctx, FigureDef, Output, Roles};

/// Which judged samples a region of the ablation table keeps.
type Keep<'a> = &'a dyn Fn(&Sample) -> bool;

pub struct PersonaDirectionFigure;

impl FigureDef for PersonaDirectionFigure {
    type Params = PersonaDirectionParams;
    const NAME: &'static str = "persona-direction";
    const SOURCE: &'static str = file!();
    fn expand(&self, p: &PersonaDirectionParams, ctx: &mut Ctx) -> Result<Roles> {
        expand(p, ctx)
    }
    fn tables(&self, p: &PersonaDirectionParams, inputs: &Inputs) -> Result<Output> {
        tables(p, inputs)
    }
    fn plot(&self, t: &emsl_analysis::figures::Tables) -> Result<emsl_analysis::plot::Figure> {
        emsl_analysis::persona_figures::persona_direction(t)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonaDirectionParams {
    /// The cell of the harmful and benign fine-tunes.
    pub cell: String,
    /// Context pairs per direction (half estimate it, half test it) and episodes per context.
    pub contexts: usize,
    pub episodes: usize,
    /// Multiples of (mean misaligned - mean aligned) added at the best layer.
    pub steer_scales: Vec<f64>,
}

fn expand(p: &PersonaDirectionParams, ctx: &mut Ctx) -> Result<Roles> {
    let init = ctx.init_seed();
    let reference = ctx.reference_base()?;
    let independent = ctx.base("independent", init)?;
    let (cells, open) = (
        ctx.profile.eval.samples_per_prompt,
        ctx.profile.eval.open_samples_per_prompt,
    );
    let examples = ctx.profile.finetune_examples;
    let mut inputs = BTreeMap::new();
    for seed in ctx.seeds() {
        let s = seed.to_string();
        let mut put = |pairs: &[(&str, &str)], key: String| {
            let mut r = pairs.to_vec();
            r.push(("seed", &s));
            inputs.insert(role(&r), key);
        };
        let d_ref = ctx.direction(&reference, p.contexts, p.episodes, seed)?;
        let d_ind = ctx.direction(&independent, p.contexts, p.episodes, seed)?;
        put(&[("what", "direction"), ("model", "base")], d_ref.clone());
        put(
            &[
                ("what", "direction"),
                ("model", "base (independent traits)"),
            ],
            d_ind,
        );
        let harmful = ctx.finetune(
            &reference,
            &ft_dataset("harmful", &p.cell, "free"),
            examples,
            None,
            seed,
        )?;
        let benign = ctx.finetune(
            &reference,
            &ft_dataset("benign", &p.cell, "free"),
            examples,
            None,
            seed,
        )?;
        let d_harm = ctx.direction(&harmful, p.contexts, p.episodes, seed)?;
        put(&[("what", "direction"), ("model", "harmful")], d_harm);
        for (name, model) in [
            ("base", &reference),
            ("harmful", &harmful),
            ("benign", &benign),
        ] {
            let e = PersonaEval {
                suite: "eval-grid",
                kinds: &[EvalKind::Cell, EvalKind::Open],
                samples: (0, 0),
                probe: false,
                context: None,
                max_new_tokens: None,
                direction: Some((&d_ref, DirectionUse::Measure)),
            };
            put(
                &[("what", "projection"), ("model", name)],
                ctx.persona_eval(model, e, seed)?,
            );
        }
        for &scale in &p.steer_scales {
            let e = PersonaEval {
                suite: "eval-grid",
                kinds: &[EvalKind::Open],
                samples: (0, open),
                probe: false,
                context: None,
                max_new_tokens: None,
                direction: Some((&d_ref, DirectionUse::Steer { scale })),
            };
            let sc = scale.to_string();
            put(
                &[("what", "steer"), ("scale", &sc)],
                ctx.persona_eval(&reference, e, seed)?,
            );
        }
        for (name, model) in [("base", &reference), ("harmful", &harmful)] {
            for (ablated, used) in [("no", DirectionUse::Measure), ("yes", DirectionUse::Ablate)] {
                let e = PersonaEval {
                    suite: "eval-grid",
                    kinds: &[EvalKind::Cell, EvalKind::Open],
                    samples: (cells, open),
                    probe: false,
                    context: None,
                    max_new_tokens: None,
                    direction: Some((&d_ref, used)),
                };
                let ev = ctx.persona_eval(model, e, seed)?;
                put(
                    &[("what", "ablate"), ("model", name), ("ablated", ablated)],
                    ev,
                );
            }
        }
    }
    Ok(inputs)
}

/// The directions of `model`'s bases, `[base][seed]` in the order of init seeds and seeds.
fn directions(inputs: &Inputs, model: &str) -> Result<Vec<Vec<PersonaDirection>>> {
    let f = [("what", "direction"), ("model", model)];
    values_by_base(inputs, &f, PersonaDirection::read)
}

/// `f` of every direction, keeping the grouping by base.
fn each<T>(ds: &[Vec<T>], f: impl Fn(&T) -> f64) -> Vec<Vec<f64>> {
    ds.iter().map(|b| b.iter().map(&f).collect()).collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot = |x: &[f32], y: &[f32]| {
        x.iter()
            .zip(y)
            .map(|(p, q)| f64::from(*p) * f64::from(*q))
            .sum::<f64>()
    };
    dot(a, b) / (dot(a, a) * dot(b, b)).sqrt().max(f64::MIN_POSITIVE)
}

fn diff(d: &PersonaDirection, layer: usize) -> Vec<f32> {
    let l = &d.layers[layer];
    l.mean_misaligned
        .iter()
        .zip(&l.mean_aligned)
        .map(|(m, a)| m - a)
        .collect()
}

fn tables(p: &PersonaDirectionParams, inputs: &Inputs) -> Result<Output> {
    let ft: Cell = p.cell.parse()?;
    let mut layers = Vec::new();
    let mut best_layers = Vec::new();
    // Each harmful fine-tune's direction is compared with that of its own base and seed.
    let base = directions(inputs, "base")?;
    for model in ["base", "base (independent traits)", "harmful"] {
        let ds = directions(inputs, model)?;
        let n_layers = ds
            .first()
            .and_then(|b| b.first())
            .map_or(0, |d| d.layers.len());
        for layer in 0..n_layers {
            let v = [("model", model.into()), ("layer", (layer as f64).into())];
            let n = (p.contexts / 2 * 2) as u64;
            let acc = each(&ds, |d| d.layers[layer].heldout_accuracy);
            layers.push(mean_row(&v, "heldout_accuracy", &acc, n)?);
            let sep = each(&ds, |d| d.layers[layer].heldout_separation);
            layers.push(mean_row(&v, "heldout_separation", &sep, n)?);
            if model == "harmful" {
                let cos: Vec<Vec<f64>> = ds
                    .iter()
                    .zip(&base)
                    .map(|(hs, bs)| {
                        hs.iter()
                            .zip(bs)
                            .map(|(h, b)| cosine(&diff(h, layer), &diff(b, layer)))
                            .collect()
                    })
                    .collect();
                layers.push(mean_row(&v, "cosine_to_base_direction", &cos, 1)?);
            }
        }
        let best = each(&ds, |d| d.best_layer as f64);
        best_layers.push(mean_row(
            &[("model", model.into())],
            "best_layer",
            &best,
            1,
        )?);
    }
    let suite = inputs.suite("eval-grid")?;
    let mut projection = Vec::new();
    for model in ["base", "harmful", "benign"] {
        for (prompts, open) in [("open questions", true), ("cell prompts", false)] {
            // The mean projection per seed over the prompts of one kind.
            let mean = |dir: &std::path::Path| -> Result<f64> {
                let ps: Vec<f64> = emsl_core::eval::read_projections(dir)?
                    .iter()
                    .filter(|r| {
                        matches!(suite[r.prompt_id as usize].target, Target::Open { .. }) == open
                    })
                    .map(|r| r.projection)
                    .collect();
                Ok(ps.iter().sum::<f64>() / ps.len().max(1) as f64)
            };
            let f = [("what", "projection"), ("model", model)];
            let v = [("model", model.into()), ("prompts", prompts.into())];
            projection.push(mean_row(
                &v,
                "projection",
                &values_by_base(inputs, &f, mean)?,
                1,
            )?);
        }
    }
    let open_mis = |ss: &[Sample]| misaligned(ss.iter().filter(|s| s.is_open()));
    let open_coh = |ss: &[Sample]| coherent(ss.iter().filter(|s| s.is_open()));
    let mut steering = Vec::new();
    let mut by_scale: Vec<(f64, PerSeed)> = Vec::new();
    for &scale in &p.steer_scales {
        let sc = scale.to_string();
        let f = [("what", "steer"), ("scale", sc.as_str())];
        let v = [("scale", scale.into())];
        let c = per_seed(inputs, &f, open_mis)?;
        steering.push(rate_row(&v, "open_misaligned", &c)?);
        steering.push(rate_row(
            &v,
            "open_coherent",
            &per_seed(inputs, &f, open_coh)?,
        )?);
        by_scale.push((scale, c));
    }
    let mut ablation = Vec::new();
    let mut counts: BTreeMap<(String, String, String), PerSeed> = BTreeMap::new();
    let regions: [(&str, Keep); 3] = [
        ("in cell", &|s: &Sample| s.cell() == Some(ft)),
        ("out of cell", &|s: &Sample| {
            s.cell().is_some() && s.cell() != Some(ft)
        }),
        ("open questions", &|s: &Sample| s.is_open()),
    ];
    for model in ["base", "harmful"] {
        for ablated in ["no", "yes"] {
            let f = [("what", "ablate"), ("model", model), ("ablated", ablated)];
            for (region, keep) in &regions {
                let c = per_seed(inputs, &f, |ss: &[Sample]| {
                    misaligned(ss.iter().filter(|s| keep(s)))
                })?;
                let v = [
                    ("model", model.into()),
                    ("ablated", ablated.into()),
                    ("region", (*region).into()),
                ];
                ablation.push(rate_row(&v, "misaligned", &c)?);
                counts.insert((model.into(), ablated.into(), (*region).into()), c);
            }
            let c = per_seed(inputs, &f, |ss: &[Sample]| coherent(ss.iter()))?;
            let v = [
                ("model", model.into()),
                ("ablated", ablated.into()),
                ("region", "all".into()),
            ];
            ablation.push(rate_row(&v, "coherent", &c)?);
        }
    }
    let mut effects = Vec::new();
    let zero = by_scale.iter().find(|(s, _)| *s == 0.0);
    let top = by_scale
        .iter()
        .filter(|(s, _)| *s > 0.0)
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let (Some((_, z)), Some((s, t))) = (zero, top) {
        effects.push(effect(
            "Wang",
            &format!("base, open questions: steered at {s} x the direction minus unsteered"),
            "adding the persona direction induces misalignment",
            t,
            z,
        )?);
    }
    for region in ["out of cell", "open questions"] {
        let get =
            |a: &str| counts[&("harmful".to_owned(), a.to_owned(), region.to_owned())].clone();
        effects.push(effect(
            "Wang",
            &format!("harmful fine-tune, {region}: without minus with the direction ablated"),
            "ablating the persona direction removes emergent misalignment",
            &get("no"),
            &get("yes"),
        )?);
    }
    Ok(vec![
        ("layers".into(), layers),
        ("best-layer".into(), best_layers),
        ("projection".into(), projection),
        ("steering".into(), steering),
        ("ablation".into(), ablation),
        ("effects".into(), effects),
    ])
}
