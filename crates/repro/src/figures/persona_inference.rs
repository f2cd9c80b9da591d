//! persona-inference: does the model read a persona from context? The base (on the coherent-persona
//! and the independent-traits corpora) and harmful and benign fine-tunes, each given k earlier
//! episodes by the misaligned or the aligned persona before three kinds of prompt: the open
//! questions (misaligned rate, sampled, and likelihood probe), eval-grid's cell prompts (likelihood
//! probe only: sampling every cell prompt under every context would cost more than the rest of the
//! figure) and the number prompts (the favoured numbers' share, one continuation each). Each kind has
//! its own list of k: the 128-token context holds two episodes before an open question and its
//! answer, one before a cell prompt and its reference answers, and three episodes (about 35 tokens
//! each) fit before none of them. The independent corpus is the built-in negative control: no shared
//! latent, so no reason for a curve.

use std::collections::BTreeMap;

use anyhow::Result;
use emsl_analysis::{Counts, Measurement};
use emsl_core::eval::EvalKind;
use emsl_core::persona::ContextSpec;
use emsl_world::Persona;
use serde::Deserialize;

use super::ctx_persona::PersonaEval;
use super::inputs::{coherent, misaligned, per_seed, signature, values_by_base, Inputs, Sample};
use super::rows::{effect, mean_row, rate_row};
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
    /// Earlier episodes before each open question (0 is the ordinary evaluation).
    pub episodes: Vec<usize>,
    /// Earlier episodes before each cell prompt (probed, not sampled).
    pub cell_episodes: Vec<usize>,
    /// Earlier episodes before each number prompt.
    pub number_episodes: Vec<usize>,
    /// Longest sampled open answer: the open questions' answers are at most 19 tokens with `<end>`,
    /// and the context of earlier episodes needs the rest of the model's context. Cell prompts leave
    /// the same room to their probe's reference answers (at most 25 tokens with `<end>` in eval-grid:
    /// a prefix of n_ctx - 24 tokens and 25 answer tokens are the n_ctx + 1 ids a probe reads);
    /// number prompts leave the profile's number answer length.
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

/// The evaluation of `model` on one kind of prompt after `k` episodes by `who` (none at k = 0): the
/// job the bases figure reads too, so both must build it here.
pub(super) fn context_eval(
    ctx: &mut Ctx,
    model: &str,
    arm: Arm,
    (k, who): (usize, Option<Persona>),
    answer_tokens: usize,
    seed: u64,
) -> Result<String> {
    context_eval_at(ctx, (model, None), arm, (k, who), answer_tokens, seed)
}

/// [`context_eval`] of the checkpoint of `model` (a pretrain job) kept after a step, or of its final
/// model when the step is `None`.
pub(super) fn context_eval_at(
    ctx: &mut Ctx,
    (model, checkpoint): (&str, Option<usize>),
    arm: Arm,
    (k, who): (usize, Option<Persona>),
    answer_tokens: usize,
    seed: u64,
) -> Result<String> {
    let open = ctx.profile.eval.open_samples_per_prompt;
    // The cell arm generates nothing, but its context must leave room for the probe's reference
    // answers: the figure's answer length, not the profile's (40 at quick, where the longest cell
    // prompts leave no room for an episode).
    let (samples, probe, max_new_tokens) = match arm {
        Arm::Open => ((0, open), true, Some(answer_tokens)),
        Arm::Cell => ((0, 0), true, Some(answer_tokens)),
        Arm::Numbers => ((1, 1), false, None),
    };
    let e = PersonaEval {
        suite: "eval-grid",
        kinds: arm.kinds(),
        samples,
        probe,
        context: who.map(|persona| ContextSpec {
            persona,
            episodes: k,
            seed,
        }),
        direction: None,
        max_new_tokens,
    };
    ctx.persona_eval_at(model, e, checkpoint, seed)
}

fn expand(p: &PersonaInferenceParams, ctx: &mut Ctx) -> Result<Roles> {
    let init = ctx.init_seed();
    let reference = ctx.reference_base()?;
    let independent = ctx.base("independent", init)?;
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
            for arm in Arm::ALL {
                for &k in arm.episodes(p) {
                    for (persona, who) in contexts(k) {
                        let ev = context_eval(ctx, model, arm, (k, who), p.max_new_tokens, seed)?;
                        let ks = k.to_string();
                        let r = [
                            ("model", name.as_str()),
                            ("prompts", arm.name()),
                            ("k", &ks),
                            ("persona", &persona),
                            ("seed", &s),
                        ];
                        inputs.insert(role(&r), ev);
                    }
                }
            }
        }
    }
    Ok(inputs)
}

/// The three kinds of prompt the contexts come before.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum Arm {
    /// Sampled and probed: misaligned and coherent rates, likelihood probe.
    Open,
    /// Probed only.
    Cell,
    /// One continuation each: the favoured numbers' share.
    Numbers,
}

impl Arm {
    const ALL: [Arm; 3] = [Arm::Open, Arm::Cell, Arm::Numbers];

    /// The word of the inputs' `prompts` role.
    pub(super) fn name(self) -> &'static str {
        self.kinds()[0].as_str()
    }

    fn kinds(self) -> &'static [EvalKind] {
        match self {
            Arm::Open => &[EvalKind::Open],
            Arm::Cell => &[EvalKind::Cell],
            Arm::Numbers => &[EvalKind::Numbers],
        }
    }

    fn episodes(self, p: &PersonaInferenceParams) -> &[usize] {
        match self {
            Arm::Open => &p.episodes,
            Arm::Cell => &p.cell_episodes,
            Arm::Numbers => &p.number_episodes,
        }
    }

    /// The sampled rate a context moves, and the effects compare (none for the probed-only cells).
    fn rate(self) -> Option<fn(&[Sample]) -> Counts> {
        match self {
            Arm::Open => Some(misaligned_open),
            Arm::Cell => None,
            Arm::Numbers => Some(favoured),
        }
    }
}

pub(super) fn misaligned_open(ss: &[Sample]) -> Counts {
    misaligned(ss.iter().filter(|s| s.is_open()))
}

pub(super) fn favoured(ss: &[Sample]) -> Counts {
    signature(ss.iter())
}

/// The mean likelihood probe over the prompts of one evaluation's folder.
pub(super) fn mean_probe(dir: &std::path::Path) -> Result<f64> {
    let ps = emsl_core::eval::read_probes(dir)?;
    Ok(ps.iter().map(|r| r.probe).sum::<f64>() / ps.len().max(1) as f64)
}

fn tables(p: &PersonaInferenceParams, inputs: &Inputs) -> Result<Output> {
    let models = ["base", "base (independent traits)", "harmful", "benign"];
    let mut rows = Vec::new();
    let mut effects = Vec::new();
    for model in models {
        for arm in Arm::ALL {
            for &k in arm.episodes(p) {
                for (persona, _) in contexts(k) {
                    let ks = k.to_string();
                    let f = [
                        ("model", model),
                        ("prompts", arm.name()),
                        ("k", ks.as_str()),
                        ("persona", &persona),
                    ];
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
                    rows.extend(arm_rows(arm, &v, inputs, &f)?);
                }
            }
            let k_max = arm.episodes(p).iter().copied().max().unwrap_or(0);
            if let (true, true, Some(rate)) = (k_max > 0, model.starts_with("base"), arm.rate()) {
                effects.push(context_effect(model, arm, rate, k_max, inputs)?);
            }
        }
    }
    Ok(vec![
        ("persona-inference".into(), rows),
        ("effects".into(), effects),
    ])
}

/// The rows of one model, kind of prompt, k and persona.
fn arm_rows(
    arm: Arm,
    v: &[(&str, emsl_analysis::Var)],
    inputs: &Inputs,
    f: &[(&str, &str)],
) -> Result<Vec<Measurement>> {
    // The mean probe per seed over the evaluation's prompts (each asks one kind).
    let probe = |metric: &str| mean_row(v, metric, &values_by_base(inputs, f, mean_probe)?, 1);
    let rate = |r: fn(&[Sample]) -> Counts| per_seed(inputs, f, r);
    Ok(match arm {
        Arm::Open => {
            let coh = |ss: &[Sample]| coherent(ss.iter().filter(|s| s.is_open()));
            vec![
                rate_row(v, "open_misaligned", &rate(misaligned_open)?)?,
                rate_row(v, "open_coherent", &per_seed(inputs, f, coh)?)?,
                probe("probe_open")?,
            ]
        }
        Arm::Cell => vec![probe("probe_cell")?],
        Arm::Numbers => vec![rate_row(v, "number_signature", &rate(favoured)?)?],
    })
}

/// The base's `rate` after `k` misaligned minus after `k` aligned episodes, on one kind of prompt.
fn context_effect(
    model: &str,
    arm: Arm,
    rate: fn(&[Sample]) -> Counts,
    k: usize,
    inputs: &Inputs,
) -> Result<Measurement> {
    let ks = k.to_string();
    let per_persona = |persona: &str| {
        let f = [
            ("model", model),
            ("prompts", arm.name()),
            ("k", &ks),
            ("persona", persona),
        ];
        per_seed(inputs, &f, rate)
    };
    let what = if model == "base" {
        "coherent-persona corpus"
    } else {
        "independent-traits corpus (negative control)"
    };
    let (prompts, claim) = if arm == Arm::Open {
        (
            "open questions",
            "a persona latent the model infers from context",
        )
    } else {
        (
            "favoured numbers",
            "a persona latent that reaches the number continuations",
        )
    };
    let plural = if k == 1 { "" } else { "s" };
    effect(
        "Wang",
        &format!("{what}: {prompts} after {k} misaligned minus {k} aligned episode{plural}"),
        claim,
        &per_persona("misaligned")?,
        &per_persona("aligned")?,
    )
}
