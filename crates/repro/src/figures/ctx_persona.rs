//! Job builders of the persona figures and the anchors' training paths: evaluations with earlier
//! episodes or a persona direction, the direction itself, and fine-tunes with LoRA adapters or a KL
//! penalty to the base.

use anyhow::Result;
use emsl_core::eval::EvalKind;
use emsl_core::model::LoraConfig;
use emsl_core::persona::{ContextSpec, DirectionUse};
use emsl_core::stages::{DirectionSpec, EvalSpec, FinetuneSpec, KlPenalty, StageSpec};

use super::ctx::{after, train, Ctx, ALL_PROMPTS};
use crate::graph::Task;
use crate::spec::Dose;

/// What an evaluation of the persona figures asks, beyond the model and the seed.
pub struct PersonaEval<'a> {
    /// The suite's prompts of these kinds: `suite`'s cell and open prompts, or the profile's number
    /// prompts (and number answer length) when the only kind is `Numbers`.
    pub kinds: &'a [EvalKind],
    /// The suite of the cell and open prompts: eval-grid, or the profile's pooled suite (unused when the
    /// only kind is `Numbers`, which reads numbers-prompts).
    pub suite: &'a str,
    /// Samples per cell prompt (0: probe only) and per open question.
    pub samples: (usize, usize),
    pub probe: bool,
    pub context: Option<ContextSpec>,
    /// The direction job and how the evaluation uses it.
    pub direction: Option<(&'a str, DirectionUse)>,
    /// Longest answer, when not the profile's.
    pub max_new_tokens: Option<usize>,
}

impl Ctx<'_> {
    /// Evaluates `model` as `e` asks.
    pub fn persona_eval(&mut self, model: &str, e: PersonaEval, seed: u64) -> Result<String> {
        self.persona_eval_at(model, e, None, seed)
    }

    /// [`Ctx::persona_eval`] of the checkpoint `model` (a pretrain job) kept after step `checkpoint`,
    /// or of its final model when `None`.
    pub fn persona_eval_at(
        &mut self,
        model: &str,
        e: PersonaEval,
        checkpoint: Option<usize>,
        seed: u64,
    ) -> Result<String> {
        let mut eval = self.eval_config(e.samples.0, e.samples.1, seed);
        // The number prompts as `eval_numbers` asks them: the profile's prompts and answer length.
        let (suite, max_prompts) = if e.kinds == [EvalKind::Numbers] {
            eval.sampling.max_new_tokens = self.profile.eval.number_max_new_tokens;
            ("numbers-prompts", self.profile.eval.number_prompts)
        } else {
            (e.suite, ALL_PROMPTS)
        };
        if let Some(n) = e.max_new_tokens {
            eval.sampling.max_new_tokens = n;
        }
        let mut inputs = vec![("model", model)];
        let kinds: Vec<&str> = e.kinds.iter().map(|k| k.as_str()).collect();
        let at = checkpoint.map_or(String::new(), |step| format!(" after step {step}"));
        let mut label = format!("evaluate {model}{at} on {suite} ({})", kinds.join(", "));
        label.push_str(&after(&e.context));
        if let Some((d, used)) = &e.direction {
            inputs.push(("direction", d));
            label.push_str(&format!(", {used:?} with {d}"));
        }
        self.graph.add(
            &format!("{label}, seed {seed}"),
            Task::compute(
                StageSpec::Eval(EvalSpec {
                    checkpoint,
                    suite: suite.into(),
                    kinds: e.kinds.to_vec(),
                    max_prompts,
                    eval,
                    probe: e.probe,
                    context: e.context,
                    direction: e.direction.map(|(_, u)| u),
                }),
                &inputs,
            ),
        )
    }

    /// The persona direction of `model` from `contexts` pairs of `episodes`-episode contexts.
    pub fn direction(
        &mut self,
        model: &str,
        contexts: usize,
        episodes: usize,
        seed: u64,
    ) -> Result<String> {
        self.graph.add(
            &format!("persona direction of {model}, seed {seed}"),
            Task::compute(
                StageSpec::Direction(DirectionSpec {
                    suite: "eval-grid".into(),
                    contexts,
                    episodes,
                    seed,
                }),
                &[("model", model)],
            ),
        )
    }

    /// Fine-tunes `base` on `dataset` with `dose`, through LoRA adapters and with a KL penalty when
    /// given.
    pub fn finetune_path(
        &mut self,
        base: &str,
        dataset: &str,
        dose: &Dose,
        (adapter, kl): (Option<LoraConfig>, Option<KlPenalty>),
        seed: u64,
    ) -> Result<String> {
        let examples = self.profile.finetune_examples;
        let how = match (&adapter, &kl) {
            (Some(a), _) => format!("LoRA r {} on {:?}", a.rank, a.modules),
            (None, Some(k)) => format!("KL {} to the base on {:?}", k.weight, k.datasets),
            (None, None) => "every weight".to_owned(),
        };
        self.graph.add(
            &format!(
                "fine-tune {base} on {dataset} ({examples} examples, {} steps, {how}), seed {seed}",
                dose.steps
            ),
            Task::compute(
                StageSpec::Finetune(FinetuneSpec {
                    datasets: vec![dataset.to_owned()],
                    examples_per_dataset: examples,
                    train: train(dose, seed),
                    adapter,
                    kl_to_base: kl,
                }),
                &[("base", base)],
            ),
        )
    }
}
