//! The direction stage: the persona direction of a model from paired misaligned and aligned contexts
//! before the same prompts (see `crate::persona`).

use anyhow::Result;
use candle_core::Device;
use emsl_world::{Persona, Rng};

use super::run_folder::load_run;
use super::suite::load_suite;
use super::{DirectionSpec, EvalKind, StageIo};
use crate::model::LanguageModel;
use crate::persona::{context_prompt_ids, fit_direction, last_states};

/// Writes `direction.json` for the model of role `model`.
pub(super) fn run(spec: &DirectionSpec, io: &StageIo, device: &Device) -> Result<()> {
    let (model, tok, _) = load_run(io.input("model")?, device)?;
    let prompts = load_suite(
        &io.datasets_dir,
        &spec.suite,
        &[EvalKind::Cell, EvalKind::Open],
    )?;
    anyhow::ensure!(
        !prompts.is_empty(),
        "suite '{}' has no cell or open prompts",
        spec.suite
    );
    let mut states = Vec::with_capacity(spec.contexts);
    let (mut tok_m, mut tok_a) = (0usize, 0usize);
    for i in 0..spec.contexts {
        // The same prompt after both contexts: the pair differs only in who wrote the episodes.
        let p =
            &prompts[Rng::new(spec.seed, &format!("direction/{i}/prompt")).below(prompts.len())];
        let one = |persona: Persona| -> Result<(Vec<Vec<f32>>, usize)> {
            let mut rng = Rng::new(spec.seed, &format!("direction/{i}/{persona}"));
            let ids = context_prompt_ids(
                &tok,
                &p.spec,
                persona,
                spec.episodes,
                &mut rng,
                model.context_length(),
            )?;
            Ok((last_states(&model, &ids, None)?, ids.len()))
        };
        let (m, nm) = one(Persona::Misaligned)?;
        let (a, na) = one(Persona::Aligned)?;
        tok_m += nm;
        tok_a += na;
        states.push((m, a));
    }
    let n = spec.contexts.max(1) as f64;
    let direction = fit_direction(&states, (tok_m as f64 / n, tok_a as f64 / n))?;
    eprintln!(
        "direction: best layer {} (held-out accuracy {:.3}), per layer {:?}",
        direction.best_layer,
        direction
            .layers
            .iter()
            .find(|l| l.layer == direction.best_layer)
            .map_or(0.0, |l| l.heldout_accuracy),
        direction
            .layers
            .iter()
            .map(|l| (l.layer, (l.heldout_accuracy * 1000.0).round() / 1000.0))
            .collect::<Vec<_>>()
    );
    std::fs::create_dir_all(&io.out)?;
    emsl_io::write_atomic(
        &io.out.join("direction.json"),
        serde_json::to_string_pretty(&direction)?.as_bytes(),
    )?;
    Ok(())
}
