//! bases (issue 38): the pretrained bases themselves. Per base, before any fine-tune, how strongly it
//! reads a persona from context (persona-inference's effects, on the coherent-persona corpus and the
//! independent-traits control) and how well a linear direction separates the personas
//! (persona-direction's held-out accuracy); after the fine-tune, its emergent misalignment (controls'
//! harmful minus benign on the open questions). Then whether the measures before the fine-tune
//! predict a base's EM: Spearman's rank correlation across bases ("What shapes emergent
//! misalignment?", arXiv 2606.20814). Every job it reads is one those figures plan, built by the same
//! code, so the figure adds only its table job.

use std::collections::BTreeMap;

use anyhow::Result;
use emsl_analysis::stats::{self, Estimate};
use emsl_analysis::{Counts, Measurement};
use emsl_core::persona::PersonaDirection;
use emsl_world::Persona;
use serde::Deserialize;

use super::bases_formation;
use super::inputs::{misaligned, seed_of, Inputs, Sample};
use super::persona_inference::{context_eval, favoured, misaligned_open, Arm};
use super::{ft_dataset, role, Ctx, FigureDef, Output, Roles};

pub struct Bases;

impl FigureDef for Bases {
    type Params = BasesParams;
    const NAME: &'static str = "bases";
    const SOURCE: &'static str = file!();
    fn expand(&self, p: &BasesParams, ctx: &mut Ctx) -> Result<Roles> {
        expand(p, ctx)
    }
    fn tables(&self, _: &BasesParams, inputs: &Inputs) -> Result<Output> {
        tables(inputs)
    }
    fn plot(&self, t: &emsl_analysis::figures::Tables) -> Result<emsl_analysis::plot::Figure> {
        use emsl_analysis::figures::{bars, fig, table};
        let per_base = table(t, "per-base")?;
        let chart = bars(per_base, "em_harmful_minus_benign", &[], "base", "", |_| {
            "EM: harmful minus benign, open questions".into()
        });
        Ok(fig("bases", "base (init seed)", "points", chart))
    }
}

/// The settings of the figures whose jobs this one reads; equal to theirs, or the jobs are others.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasesParams {
    /// controls' cell (its harmful and benign fine-tunes).
    pub cell: String,
    /// persona-inference's largest k before the open questions and before the number prompts, and its
    /// answer length.
    pub open_episodes: usize,
    pub number_episodes: usize,
    pub max_new_tokens: usize,
    /// persona-direction's context pairs and episodes per context.
    pub contexts: usize,
    pub episodes: usize,
    /// persona-inference's cell arm: the episodes before the cell prompts whose probe is read at every
    /// checkpoint of the pretraining (`bases_formation`).
    pub formation_episodes: usize,
}

const CORPORA: [(&str, &str); 2] = [("reference", "coherent"), ("independent", "independent")];

fn expand(p: &BasesParams, ctx: &mut Ctx) -> Result<Roles> {
    let init = ctx.init_seed();
    let examples = ctx.profile.finetune_examples;
    let mut inputs = BTreeMap::new();
    let bases: Vec<(&str, String)> = CORPORA
        .iter()
        .map(|(corpus, name)| Ok((*name, ctx.base(corpus, init)?)))
        .collect::<Result<_>>()?;
    for seed in ctx.seeds() {
        let s = seed.to_string();
        for (name, base) in &bases {
            for (arm, k) in [
                (Arm::Open, p.open_episodes),
                (Arm::Numbers, p.number_episodes),
            ] {
                for persona in [Persona::Misaligned, Persona::Aligned] {
                    let ev =
                        context_eval(ctx, base, arm, (k, Some(persona)), p.max_new_tokens, seed)?;
                    let who = persona.to_string();
                    let r = [
                        ("what", "context"),
                        ("corpus", name),
                        ("prompts", arm.name()),
                    ];
                    inputs.insert(
                        role(&[&r[..], &[("persona", &who), ("seed", &s)]].concat()),
                        ev,
                    );
                }
            }
            let how = (p.formation_episodes, p.max_new_tokens);
            bases_formation::expand(ctx, (name, base), how, seed, &mut inputs)?;
            let d = ctx.direction(base, p.contexts, p.episodes, seed)?;
            inputs.insert(
                role(&[("what", "direction"), ("corpus", name), ("seed", &s)]),
                d,
            );
        }
        let reference = &bases[0].1;
        let ev = ctx.eval(reference, "eval-backdoor", false, seed)?;
        inputs.insert(role(&[("what", "em"), ("arm", "base"), ("seed", &s)]), ev);
        for kind in ["harmful", "benign"] {
            let data = ft_dataset(kind, &p.cell, "free");
            let ft = ctx.finetune(reference, &data, examples, None, seed)?;
            let ev = ctx.eval(&ft, "eval-backdoor", false, seed)?;
            inputs.insert(role(&[("what", "em"), ("arm", kind), ("seed", &s)]), ev);
        }
    }
    Ok(inputs)
}

/// Counts per base and seed of `f` over the inputs matching `filter`: `base -> [seed counts]`.
fn by_base(
    inputs: &Inputs,
    filter: &[(&str, &str)],
    f: impl Fn(&[Sample]) -> Counts,
) -> Result<BTreeMap<u64, Vec<Counts>>> {
    let mut keyed: BTreeMap<(u64, u64), Counts> = BTreeMap::new();
    for (m, path) in inputs.find(filter) {
        keyed.insert(seed_of(&m)?, f(&inputs.samples(path)?));
    }
    let mut out: BTreeMap<u64, Vec<Counts>> = BTreeMap::new();
    for ((base, _), c) in keyed {
        out.entry(base).or_default().push(c);
    }
    Ok(out)
}

/// Each base's difference `a - b`, with its interval over that base's seeds.
fn per_base_difference(
    a: &BTreeMap<u64, Vec<Counts>>,
    b: &BTreeMap<u64, Vec<Counts>>,
) -> BTreeMap<u64, Estimate> {
    a.iter()
        .filter_map(|(base, x)| Some((*base, stats::difference(x, b.get(base)?))))
        .collect()
}

fn open_plain(ss: &[Sample]) -> Counts {
    misaligned(ss.iter().filter(|s| s.is_open() && s.framing() == "plain"))
}

fn tables(inputs: &Inputs) -> Result<Output> {
    let mut measures: Vec<(&str, BTreeMap<u64, Estimate>)> = Vec::new();
    for (_, corpus) in CORPORA {
        for (prompts, rate) in [
            ("open", misaligned_open as fn(&[Sample]) -> Counts),
            ("numbers", favoured),
        ] {
            let arm = |persona: &str| {
                let f = [
                    ("what", "context"),
                    ("corpus", corpus),
                    ("prompts", prompts),
                    ("persona", persona),
                ];
                by_base(inputs, &f, rate)
            };
            let name = match (corpus, prompts) {
                ("coherent", "open") => "inference_open",
                ("coherent", _) => "inference_numbers",
                (_, "open") => "inference_open_independent",
                _ => "inference_numbers_independent",
            };
            measures.push((
                name,
                per_base_difference(&arm("misaligned")?, &arm("aligned")?),
            ));
        }
        let mut accuracy: BTreeMap<u64, Vec<f64>> = BTreeMap::new();
        for (m, dir) in inputs.find(&[("what", "direction"), ("corpus", corpus)]) {
            let d = PersonaDirection::read(dir)?;
            let acc = d.layers[d.best_layer].heldout_accuracy;
            accuracy.entry(seed_of(&m)?.0).or_default().push(acc);
        }
        let name = match corpus {
            "coherent" => "direction_accuracy",
            _ => "direction_accuracy_independent",
        };
        let acc = accuracy
            .into_iter()
            .map(|(b, v)| (b, stats::mean_over_seeds(&v, 1)))
            .collect();
        measures.push((name, acc));
    }
    let em = |arm: &str| by_base(inputs, &[("what", "em"), ("arm", arm)], open_plain);
    let (harmful, benign, base) = (em("harmful")?, em("benign")?, em("base")?);
    let em_benign = per_base_difference(&harmful, &benign);
    measures.push(("em_harmful_minus_benign", em_benign.clone()));
    measures.push((
        "em_harmful_minus_base",
        per_base_difference(&harmful, &base),
    ));

    let (formation, formed_at) = bases_formation::tables(inputs)?;
    measures.push(("inference_formed_at_step", formed_at));
    let mut rows = Vec::new();
    for (metric, values) in &measures {
        for (b, est) in values {
            rows.push(Measurement::new(
                &[("base", (*b as f64).into())],
                metric,
                *est,
            ));
        }
    }
    Ok(vec![
        ("per-base".into(), rows),
        ("formation".into(), formation),
        ("effects".into(), summary(&measures, &em_benign)),
    ])
}

/// The share of bases whose EM interval lies above zero, and each measure before the fine-tune
/// against EM across bases (n/a below four bases, where ranks say nothing).
fn summary(
    measures: &[(&str, BTreeMap<u64, Estimate>)],
    em: &BTreeMap<u64, Estimate>,
) -> Vec<Measurement> {
    let bases = em.len();
    // Over the bases whose EM was measured at all (a base with no coherent answers has none).
    let measured = em.values().filter(|e| e.value.is_finite()).count();
    let above = em.values().filter(|e| e.ci_low > 0.0).count();
    let row = |effect: &str, p: f64, est: Estimate| {
        Measurement::new(
            &[
                ("claim", "Wang".into()),
                ("effect", effect.into()),
                (
                    "anchor",
                    "activations before fine-tuning predict later misalignment (arXiv 2606.20814)"
                        .into(),
                ),
                ("p_value", p.into()),
            ],
            "descriptive",
            est,
        )
    };
    let mut out = vec![row(
        "share of bases whose EM interval (harmful minus benign, open questions) lies above 0",
        f64::NAN,
        match measured {
            0 => Estimate::exact(f64::NAN, 0, bases as u32),
            m => Estimate::exact(above as f64 / m as f64, m as u64, bases as u32),
        },
    )];
    let em_values: Vec<f64> = em.values().map(|e| e.value).collect();
    for (name, values) in measures.iter().filter(|(n, _)| !n.starts_with("em_")) {
        let x: Vec<f64> = em
            .keys()
            .map(|b| values.get(b).map_or(f64::NAN, |e| e.value))
            .collect();
        let (est, p) = match emsl_analysis::rank::rank_correlation(&x, &em_values) {
            Ok(r) => (
                Estimate {
                    value: r.rho,
                    ci_low: r.ci_low,
                    ci_high: r.ci_high,
                    n: bases as u64,
                    seeds: bases as u32,
                },
                r.p_value,
            ),
            Err(_) => (
                Estimate::exact(f64::NAN, bases as u64, bases as u32),
                f64::NAN,
            ),
        };
        out.push(row(
            &format!("rank correlation across bases: {name} before the fine-tune against EM"),
            p,
            est,
        ));
    }
    out
}
