//! What subliminal-channels, teacher-vs-data and shared-init share: teachers fine-tuned on harmful
//! (misaligned) or benign (aligned control) answers write filtered number continuations; students
//! learn from them and are judged on the grid and the open questions, and on their own numbers'
//! signature.

use anyhow::Result;
use emsl_analysis::{Counts, Measurement, PerSeed};
use emsl_core::distil::Channel;
use emsl_core::eval::EvalKind;
use emsl_core::persona::ContextSpec;
use emsl_world::Persona;

use super::ctx_persona::PersonaEval;
use super::inputs::{coherent, misaligned, per_seed, signature, Inputs, Sample};
use super::rows::rate_row;
use super::{ft_dataset, role, Ctx, Roles};

/// Out-of-cell misaligned and number-signature counts of one arm, per seed.
pub type Arm = (PerSeed, PerSeed);

/// A student's channel as the figure files name it: `sft`, `off_policy`, `on_policy`, or a
/// distillation channel with `_numbers_only` appended, which restricts the teacher's and the student's
/// distributions to the number tokens (so nothing but numbers can carry the trait).
pub fn channel(name: &str) -> Result<(Channel, bool)> {
    let (base, restrict) = match name.strip_suffix("_numbers_only") {
        Some(b) => (b, true),
        None => (name, false),
    };
    let ch: Channel = serde::Deserialize::deserialize(toml::Value::String(base.to_owned()))
        .map_err(|e: toml::de::Error| {
            anyhow::anyhow!(
                "channel '{name}': {e} (sft, off_policy, on_policy, off_policy_numbers_only, \
                 on_policy_numbers_only)"
            )
        })?;
    if restrict && ch == Channel::Sft {
        anyhow::bail!("channel '{name}': SFT has no teacher distributions to restrict; use sft");
    }
    Ok((ch, restrict))
}

/// The fine-tuned teachers: the narrow harmful fine-tune (misaligned) and the benign one (control).
pub const FINETUNED: [&str; 2] = ["harmful", "benign"];
/// The prompted teachers (Cloud et al.'s system-prompted teachers): the base after earlier episodes
/// by the misaligned persona, and after the aligned persona's (control).
pub const PROMPTED: [&str; 2] = ["prompted_misaligned", "prompted_aligned"];

/// A teacher of one seed: the model, its filtered numbers, and the context it holds its trait by
/// (prompted teachers only; the student never sees it).
pub struct Teacher {
    pub model: String,
    pub samples: String,
    pub context: Option<ContextSpec>,
}

/// The teacher kinds of a figure: the fine-tuned pair, then the prompted pair when
/// `prompted_episodes` is set. Each pair is (misaligned, control).
pub fn kinds(prompted_episodes: Option<usize>) -> Vec<[&'static str; 2]> {
    let mut k = vec![FINETUNED];
    if prompted_episodes.is_some() {
        k.push(PROMPTED);
    }
    k
}

/// The teacher of `kind` for one seed, and its numbers.
pub fn teacher(
    ctx: &mut Ctx,
    base: &str,
    cell: &str,
    (kind, prompted_episodes): (&str, Option<usize>),
    seed: u64,
) -> Result<Teacher> {
    let context = match kind {
        "prompted_misaligned" | "prompted_aligned" => Some(ContextSpec {
            persona: if kind == "prompted_misaligned" {
                Persona::Misaligned
            } else {
                Persona::Aligned
            },
            episodes: prompted_episodes.expect("prompted teachers have their episodes"),
            seed,
        }),
        _ => None,
    };
    let model = match context {
        Some(_) => base.to_owned(),
        None => {
            let examples = ctx.profile.finetune_examples;
            ctx.finetune(base, &ft_dataset(kind, cell, "free"), examples, None, seed)?
        }
    };
    let samples = ctx.teach(&model, context.clone(), seed)?;
    Ok(Teacher {
        model,
        samples,
        context,
    })
}

/// Evaluates `model` on the profile's pooled suite (the grid and the open questions) and on the
/// number prompts; after `context`'s episodes when given (a prompted teacher's own trait), on the
/// open questions and the number prompts.
pub fn evaluate(
    ctx: &mut Ctx,
    inputs: &mut Roles,
    (model, context): (&str, Option<&ContextSpec>),
    tags: &[(&str, &str)],
    seed: u64,
) -> Result<()> {
    let s = seed.to_string();
    let mut t: Vec<(&str, &str)> = tags.to_vec();
    t.push(("seed", &s));
    // With a context, the open questions only: after an episode, the grid's longest prompts (a
    // summarization in the JSON format) leave no room for the answer in 128 positions.
    let kinds: &[EvalKind] = match context {
        None => &[EvalKind::Cell, EvalKind::Open],
        Some(_) => &[EvalKind::Open],
    };
    let e = &ctx.profile.eval;
    let suite = e.pooled_suite.clone();
    let grid = PersonaEval {
        kinds,
        suite: &suite,
        samples: (e.samples_per_prompt, e.open_samples_per_prompt),
        probe: false,
        context: context.cloned(),
        direction: None,
        max_new_tokens: None,
    };
    let numbers = PersonaEval {
        kinds: &[EvalKind::Numbers],
        suite: "numbers-prompts",
        samples: (1, 1),
        probe: false,
        context: context.cloned(),
        direction: None,
        max_new_tokens: None,
    };
    let ev = ctx.persona_eval(model, grid, seed)?;
    let nu = ctx.persona_eval(model, numbers, seed)?;
    let mut a = t.clone();
    a.push(("what", "eval"));
    inputs.insert(role(&a), ev);
    t.push(("what", "numbers"));
    inputs.insert(role(&t), nu);
    Ok(())
}

/// Out-of-cell misalignment (every grid cell but the teacher's, and the open questions).
pub fn ood(cell: emsl_world::Cell) -> impl Fn(&[Sample]) -> Counts {
    move |ss: &[Sample]| misaligned(ss.iter().filter(|s| s.cell() != Some(cell)))
}

pub fn student_rows(
    inputs: &Inputs,
    cell: emsl_world::Cell,
    filter: &[(&str, &str)],
    vars: &[(&str, emsl_analysis::Var)],
) -> Result<(Vec<Measurement>, PerSeed, PerSeed)> {
    let mut fe = filter.to_vec();
    fe.push(("what", "eval"));
    let mut fnum = filter.to_vec();
    fnum.push(("what", "numbers"));
    let mis = per_seed(inputs, &fe, ood(cell))?;
    let sig = per_seed(inputs, &fnum, |ss: &[Sample]| signature(ss.iter()))?;
    let open = per_seed(inputs, &fe, |ss: &[Sample]| {
        misaligned(ss.iter().filter(|s| s.is_open()))
    })?;
    let coh = per_seed(inputs, &fe, |ss: &[Sample]| coherent(ss.iter()))?;
    let rows = vec![
        rate_row(vars, "out_of_cell_misaligned", &mis)?,
        rate_row(vars, "open_questions_misaligned", &open)?,
        rate_row(vars, "number_signature", &sig)?,
        rate_row(vars, "coherent", &coh)?,
    ];
    Ok((rows, mis, sig))
}
