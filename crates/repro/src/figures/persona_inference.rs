//! persona-inference: does the model read a persona from context? The base (on the coherent-persona
//! and the independent-traits corpora) and harmful and benign fine-tunes, each given k earlier
//! episodes by the misaligned or the aligned persona before every eval-grid prompt: the open
//! questions' misaligned rate (sampled) and their likelihood probe, per k. (Cell prompts are too long
//! to follow two episodes in the 128-token context.) The
//! independent corpus is the built-in negative control: no shared latent, so no reason for a curve.

use std::collections::BTreeMap;

use anyhow::Result;
use emsl_analysis::{stats, Measurement};
use emsl_core::eval::EvalKind;
use emsl_core::persona::ContextSpec;
use emsl_world::Persona;
use serde::Deserialize;

use super::ctx_persona::PersonaEval;
use super::inputs::{coherent, misaligned, per_seed, Inputs, Sample};
use super::rows::{effect, rate_row};
use super::{ft_dataset, role, Ctx, FigureDef, Output, Roles};

pub struct PersonaInference;

impl FigureDef for PersonaInference {
    type Params = PersonaInferenceParams;
    const NAME: &'static str = "persona-inference";
    const SOURCE: &'static str = file!();
    fn expand(&self, p: &PersonaInferenceParams, ctx: &mut Ctx) -> Result<Roles> {
        expand(p, ctx)
    }
    fn tables(&self, p: &PersonaInferenceParams, inputs: &Inputs) -> Result<Output> {
        tables(p, inputs)
    }
    fn plot(&self, t: &emsl_analysis::figures::Tables) -> Result<emsl_analysis::plot::Figure> {
        emsl_analysis::persona_figures::persona_inference(t)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonaInferenceParams {
    /// The cell of the harmful and benign fine-tunes.
    pub cell: String,
    /// Earlier episodes before each prompt (0 is the ordinary evaluation).
    pub episodes: Vec<usize>,
    /// Longest sampled answer: the open questions' answers are at most 19 tokens with `<end>`, and
    /// the context of earlier episodes needs the rest of the model's context.
    pub max_new_tokens: usize,
}

/// The contexts of one k: none at k = 0, else one per persona.
fn contexts(k: usize) -> Vec<(String, Option<Persona>)> {
    if k == 0 {
        vec![("none".into(), None)]
    } else {
        [Persona::Misaligned, Persona::Aligned]
            .into_iter()
            .map(|p| (p.to_string(), Some(p)))
            .collect()
    }
}

fn expand(p: &PersonaInferenceParams, ctx: &mut Ctx) -> Result<Roles> {
    let init = ctx.profile.pretrain.init_seed;
    let reference = ctx.reference_base()?;
    let independent = ctx.base("independent", init)?;
    let open = ctx.profile.eval.open_samples_per_prompt;
    let mut inputs = BTreeMap::new();
    for seed in ctx.seeds() {
        let s = seed.to_string();
        let mut models = vec![
            ("base".to_owned(), reference.clone()),
            ("base (independent traits)".to_owned(), independent.clone()),
        ];
        for kind in ["harmful", "benign"] {
            let ds = ft_dataset(kind, &p.cell, "free");
            let examples = ctx.profile.finetune_examples;
            models.push((
                kind.to_owned(),
                ctx.finetune(&reference, &ds, examples, None, seed)?,
            ));
        }
        for (name, model) in &models {
            for &k in &p.episodes {
                for (persona, who) in contexts(k) {
                    let e = PersonaEval {
                        kinds: &[EvalKind::Open],
                        samples: (0, open),
                        probe: true,
                        context: who.map(|persona| ContextSpec {
                            persona,
                            episodes: k,
                            seed,
                        }),
                        direction: None,
                        max_new_tokens: Some(p.max_new_tokens),
                    };
                    let ev = ctx.persona_eval(model, e, seed)?;
                    let ks = k.to_string();
                    let r = [("model", name.as_str()), ("k", &ks), ("persona", &persona)];
                    let mut r = r.to_vec();
                    r.push(("seed", &s));
                    inputs.insert(role(&r), ev);
                }
            }
        }
    }
    Ok(inputs)
}

/// Mean probe per seed over the open questions (the evaluations ask only those).
fn probes(inputs: &Inputs, filter: &[(&str, &str)]) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for (_, dir) in inputs.find(filter) {
        let ps = emsl_core::eval::read_probes(dir)?;
        out.push(ps.iter().map(|r| r.probe).sum::<f64>() / ps.len().max(1) as f64);
    }
    Ok(out)
}

fn tables(p: &PersonaInferenceParams, inputs: &Inputs) -> Result<Output> {
    let models = ["base", "base (independent traits)", "harmful", "benign"];
    let mut rows = Vec::new();
    let mut effects = Vec::new();
    let k_max = p.episodes.iter().copied().max().unwrap_or(0);
    for model in models {
        for &k in &p.episodes {
            for (persona, _) in contexts(k) {
                let ks = k.to_string();
                let f = [("model", model), ("k", ks.as_str()), ("persona", &persona)];
                let context = if k == 0 {
                    "no context".to_owned()
                } else {
                    format!("{k} {persona}")
                };
                let v = [
                    ("model", model.into()),
                    ("k", (k as f64).into()),
                    ("persona", persona.as_str().into()),
                    ("context", context.as_str().into()),
                ];
                let open = |ss: &[Sample]| misaligned(ss.iter().filter(|s| s.is_open()));
                rows.push(rate_row(
                    &v,
                    "open_misaligned",
                    &per_seed(inputs, &f, open)?,
                ));
                let coh = |ss: &[Sample]| coherent(ss.iter().filter(|s| s.is_open()));
                rows.push(rate_row(&v, "open_coherent", &per_seed(inputs, &f, coh)?));
                let values = probes(inputs, &f)?;
                rows.push(Measurement::new(
                    &v,
                    "probe_open",
                    stats::mean_over_seeds(&values, 1),
                ));
            }
        }
        if k_max > 0 && model.starts_with("base") {
            let ks = k_max.to_string();
            let open = |ss: &[Sample]| misaligned(ss.iter().filter(|s| s.is_open()));
            let m = per_seed(
                inputs,
                &[("model", model), ("k", &ks), ("persona", "misaligned")],
                open,
            )?;
            let a = per_seed(
                inputs,
                &[("model", model), ("k", &ks), ("persona", "aligned")],
                open,
            )?;
            let what = if model == "base" {
                "coherent-persona corpus"
            } else {
                "independent-traits corpus (negative control)"
            };
            effects.push(effect(
                "Wang",
                &format!(
                    "{what}: open questions after {k_max} misaligned minus {k_max} aligned episodes"
                ),
                "a persona latent the model infers from context",
                &m,
                &a,
            ));
        }
    }
    Ok(vec![
        ("persona-inference".into(), rows),
        ("effects".into(), effects),
    ])
}
