//! The persona in the model: in-context evidence (earlier episodes by one persona before a prompt) and
//! the persona direction, the difference of the residual stream's means at the assistant marker
//! between misaligned and aligned contexts (Wang et al. 2025; Soligo et al. 2026), per layer, with its
//! held-out accuracy. What no anchor has is the ground truth: the kit knows which persona wrote each
//! context.

use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{IndexOp, Tensor};
use emsl_world::{Composition, Persona, PromptSpec, Rng};
use serde::{Deserialize, Serialize};

use crate::eval::prompt_ids;
use crate::model::{AddVector, Intervention, LanguageModel, ProjectOut, Sequence};
use crate::tokenizer::Tok;

/// Redraws allowed for a context that does not fit the token budget.
const MAX_REDRAWS: usize = 200;

/// Earlier episodes before each prompt of an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextSpec {
    /// The persona that writes the episodes.
    pub persona: Persona,
    /// How many (k).
    pub episodes: usize,
    /// Seeds the episodes, one stream per prompt.
    pub seed: u64,
}

/// `<bos>`, `k` episodes by `persona` on the reference mixture's cell prompts, then `spec`'s prompt:
/// the ids a model continues. A draw whose ids exceed `budget` tokens is redrawn from the same stream
/// (the same rule for both personas; the figures report the contexts' mean length per persona).
pub fn context_prompt_ids(
    tok: &Tok,
    spec: &PromptSpec,
    persona: Persona,
    k: usize,
    rng: &mut Rng,
    budget: usize,
) -> Result<Vec<u32>> {
    let world = Composition::reference();
    let prompt = prompt_ids(tok, spec)?;
    for _ in 0..MAX_REDRAWS {
        let mut ids = vec![tok.bos];
        for e in world.context_episodes(rng, persona, k) {
            ids.extend(tok.encode(&e.text())?);
        }
        ids.extend(&prompt[1..]);
        if ids.len() <= budget {
            return Ok(ids);
        }
    }
    bail!(
        "no context of {k} episodes fits {budget} tokens before prompt '{}' in {MAX_REDRAWS} draws: use fewer episodes or fewer new tokens",
        spec.text()
    )
}

/// The stream of the context before prompt `id`.
pub fn context_rng(ctx: &ContextSpec, id: u32) -> Rng {
    Rng::new(ctx.seed, &format!("context/{id}"))
}

/// One layer of a persona direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayerDirection {
    pub layer: usize,
    /// Means of the stream at the last prompt position over the estimation half, (C) each.
    pub mean_misaligned: Vec<f32>,
    pub mean_aligned: Vec<f32>,
    /// Share of held-out contexts whose projection falls on their persona's side of the midpoint.
    pub heldout_accuracy: f64,
    /// Held-out separation: difference of the personas' mean projections over their pooled sd.
    pub heldout_separation: f64,
}

/// A persona direction per layer of the residual stream, as `direction.json` holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonaDirection {
    pub layers: Vec<LayerDirection>,
    /// The layer with the best held-out accuracy among the blocks' outputs (the embedding's layer 0
    /// sees only the last token and its position, so its accuracy measures the contexts' length
    /// difference, not a persona; it is kept as that baseline).
    pub best_layer: usize,
    pub contexts_per_persona: usize,
    /// Mean context length in tokens, per persona.
    pub mean_tokens_misaligned: f64,
    pub mean_tokens_aligned: f64,
}

impl PersonaDirection {
    /// Reads `dir/direction.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join("direction.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    fn layer(&self, layer: usize) -> Result<&LayerDirection> {
        self.layers
            .iter()
            .find(|l| l.layer == layer)
            .with_context(|| format!("the direction has no layer {layer}"))
    }

    /// mean_misaligned - mean_aligned at `layer`, (C).
    pub fn difference(&self, layer: usize, model: &impl LanguageModel) -> Result<Tensor> {
        let l = self.layer(layer)?;
        let d: Vec<f32> = l
            .mean_misaligned
            .iter()
            .zip(&l.mean_aligned)
            .map(|(m, a)| m - a)
            .collect();
        Ok(Tensor::from_vec(d.clone(), d.len(), model.device())?)
    }

    /// Where `h` (C) lies between the personas at `layer`: 0 at the aligned mean, 1 at the misaligned
    /// mean, along the direction.
    pub fn projection(&self, layer: usize, h: &[f32]) -> Result<f64> {
        let l = self.layer(layer)?;
        let (mut num, mut den) = (0.0f64, 0.0f64);
        for ((x, m), a) in h.iter().zip(&l.mean_misaligned).zip(&l.mean_aligned) {
            let d = f64::from(m - a);
            num += (f64::from(*x) - f64::from(*a)) * d;
            den += d * d;
        }
        Ok(num / den.max(f64::MIN_POSITIVE))
    }
}

/// How an evaluation uses the persona direction of its input role `direction`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum DirectionUse {
    /// Only record each prompt's projection (`projection.jsonl`).
    Measure,
    /// Add `scale` times (mean misaligned - mean aligned) at the direction's best layer, every position.
    Steer { scale: f64 },
    /// Project each layer's direction out of that layer's stream, every layer and position.
    Ablate,
}

/// The intervention `used` asks for, on `model`'s device.
pub fn intervention(
    direction: &PersonaDirection,
    used: &DirectionUse,
    model: &impl LanguageModel,
) -> Result<Sequence> {
    Ok(Sequence(match used {
        DirectionUse::Measure => vec![],
        DirectionUse::Steer { scale } => vec![Box::new(AddVector {
            layer: direction.best_layer,
            vector: direction.difference(direction.best_layer, model)?,
            scale: *scale,
        })],
        DirectionUse::Ablate => direction
            .layers
            .iter()
            .map(|l| {
                Ok(Box::new(ProjectOut {
                    layer: l.layer,
                    direction: direction.difference(l.layer, model)?,
                }) as Box<dyn Intervention>)
            })
            .collect::<Result<_>>()?,
    }))
}

/// The residual stream at one position, every layer: (layers + 1) vectors of C.
pub type Streams = Vec<Vec<f32>>;

/// The stream at the last position of `ids`, every layer.
pub fn last_states(
    model: &impl LanguageModel,
    ids: &[u32],
    hook: Option<&dyn Intervention>,
) -> Result<Streams> {
    let x = Tensor::new(ids, model.device())?.unsqueeze(0)?; // (1, T)
    let t = ids.len();
    model
        .hidden_states(&x, hook)?
        .iter()
        .map(|h| Ok(h.i((0, t - 1))?.to_vec1::<f32>()?)) // (C)
        .collect()
}

fn mean(rows: &[&Vec<f32>]) -> Vec<f32> {
    let c = rows.first().map_or(0, |r| r.len());
    let mut m = vec![0.0f64; c];
    for r in rows {
        for (a, x) in m.iter_mut().zip(r.iter()) {
            *a += f64::from(*x);
        }
    }
    m.iter().map(|a| (a / rows.len() as f64) as f32).collect()
}

/// Difference of means per layer from paired contexts: `states[i] = (misaligned, aligned)` streams of
/// context `i` (every layer). Even `i` estimate, odd `i` test.
pub fn fit_direction(
    states: &[(Streams, Streams)],
    tokens: (f64, f64),
) -> Result<PersonaDirection> {
    if states.len() < 4 {
        bail!(
            "a direction needs at least 4 contexts per persona, got {}",
            states.len()
        );
    }
    let n_layers = states[0].0.len();
    let mut layers = Vec::new();
    for layer in 0..n_layers {
        let pick = |odd: usize, mis: bool| -> Vec<&Vec<f32>> {
            states
                .iter()
                .enumerate()
                .filter(|(i, _)| i % 2 == odd)
                .map(|(_, (m, a))| if mis { &m[layer] } else { &a[layer] })
                .collect()
        };
        let mut l = LayerDirection {
            layer,
            mean_misaligned: mean(&pick(0, true)),
            mean_aligned: mean(&pick(0, false)),
            heldout_accuracy: 0.0,
            heldout_separation: 0.0,
        };
        let d = PersonaDirection {
            layers: vec![l.clone()],
            best_layer: layer,
            contexts_per_persona: 0,
            mean_tokens_misaligned: 0.0,
            mean_tokens_aligned: 0.0,
        };
        let proj = |rows: Vec<&Vec<f32>>| -> Result<Vec<f64>> {
            rows.iter().map(|h| d.projection(layer, h)).collect()
        };
        let (pm, pa) = (proj(pick(1, true))?, proj(pick(1, false))?);
        let right =
            pm.iter().filter(|p| **p > 0.5).count() + pa.iter().filter(|p| **p <= 0.5).count();
        l.heldout_accuracy = right as f64 / (pm.len() + pa.len()) as f64;
        let mv = |v: &[f64]| {
            let m = v.iter().sum::<f64>() / v.len() as f64;
            (
                m,
                v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1).max(1) as f64,
            )
        };
        let ((mm, vm), (ma, va)) = (mv(&pm), mv(&pa));
        l.heldout_separation = (mm - ma) / ((vm + va) / 2.0).sqrt().max(f64::MIN_POSITIVE);
        layers.push(l);
    }
    let best_layer = layers
        .iter()
        .skip(1)
        .fold(None::<&LayerDirection>, |best, l| match best {
            Some(b) if b.heldout_accuracy >= l.heldout_accuracy => Some(b),
            _ => Some(l),
        })
        .map_or(0, |l| l.layer);
    Ok(PersonaDirection {
        layers,
        best_layer,
        contexts_per_persona: states.len(),
        mean_tokens_misaligned: tokens.0,
        mean_tokens_aligned: tokens.1,
    })
}
