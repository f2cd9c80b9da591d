//! What each stage computes, without the folders it reads and writes (those are [`super::StageIo`]):
//! the part of a config a run records, so the same run in another folder records the same bytes.

use serde::{Deserialize, Serialize};

use crate::model::LoraConfig;
use crate::persona::{ContextSpec, DirectionUse};
use crate::sample::SampleConfig;
use crate::train::TrainConfig;

/// One stage of the pipeline, tagged by `kind` in TOML.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StageSpec {
    Pretrain(PretrainSpec),
    Finetune(FinetuneSpec),
    Teach(TeachSpec),
    Distil(DistilSpec),
    Eval(EvalSpec),
    Direction(DirectionSpec),
}

impl StageSpec {
    /// `pretrain`, `finetune`, `teach`, `distil` or `eval`.
    pub fn kind(&self) -> &'static str {
        match self {
            StageSpec::Pretrain(_) => "pretrain",
            StageSpec::Finetune(_) => "finetune",
            StageSpec::Teach(_) => "teach",
            StageSpec::Distil(_) => "distil",
            StageSpec::Eval(_) => "eval",
            StageSpec::Direction(_) => "direction",
        }
    }

    /// The datasets of the manifest the stage reads directly.
    pub fn datasets(&self) -> Vec<String> {
        match self {
            StageSpec::Pretrain(s) => vec![s.dataset.clone()],
            StageSpec::Finetune(s) => {
                let mut d = s.datasets.clone();
                d.extend(s.kl_to_base.iter().flat_map(|k| k.datasets.clone()));
                d
            }
            StageSpec::Teach(TeachSpec { suite, .. })
            | StageSpec::Eval(EvalSpec { suite, .. })
            | StageSpec::Direction(DirectionSpec { suite, .. }) => vec![suite.clone()],
            StageSpec::Distil(_) => vec![],
        }
    }

    /// An error naming the first `[spec]` field whose value the stage cannot compute with, so a bad
    /// config fails before any work (a learning rate of 0, NaN or 1e30 fails later, as divergence).
    pub fn check(&self) -> anyhow::Result<()> {
        use anyhow::Context;
        let unit = |name: &str, x: f64| {
            anyhow::ensure!(
                (0.0..=1.0).contains(&x),
                "{name} = {x}: it must be between 0 and 1"
            );
            Ok(())
        };
        let sampling = |name: &str, s: &SampleConfig| {
            let t = s.temperature;
            anyhow::ensure!(
                t.is_finite() && t >= 0.0,
                "{name}.temperature = {t}: it must be finite and at least 0 (0: greedy)"
            );
            let p = s.top_p;
            anyhow::ensure!(
                p > 0.0 && p <= 1.0,
                "{name}.top_p = {p}: it must be in (0, 1]"
            );
            Ok(())
        };
        let train = |t: &TrainConfig| t.check().context("[spec.train]");
        match self {
            StageSpec::Pretrain(s) => {
                train(&s.train)?;
                let steps = s.train.steps;
                for (i, c) in s.checkpoints.iter().enumerate() {
                    anyhow::ensure!(
                        *c >= 1 && *c < steps && (i == 0 || *c > s.checkpoints[i - 1]),
                        "[spec] checkpoints = {:?}: they must increase, each from 1 to below \
                         train.steps = {steps} (the last step's model is the run's own)",
                        s.checkpoints
                    );
                }
                Ok(())
            }
            StageSpec::Finetune(s) => {
                train(&s.train)?;
                if let Some(k) = &s.kl_to_base {
                    let w = k.weight;
                    anyhow::ensure!(
                        w.is_finite() && w >= 0.0,
                        "[spec.kl_to_base] weight = {w}: it must be finite and at least 0"
                    );
                }
                Ok(())
            }
            StageSpec::Teach(s) => sampling("[spec.sampling]", &s.sampling),
            StageSpec::Distil(s) => {
                train(&s.train)?;
                unit("[spec] beta", s.beta)?;
                unit("[spec] lambda", s.lambda)?;
                sampling("[spec.student_sampling]", &s.student_sampling)
            }
            StageSpec::Eval(_) | StageSpec::Direction(_) => Ok(()),
        }
    }

    /// The roles of the run folders the stage reads (the keys of [`super::StageIo::inputs`]).
    pub fn input_roles(&self) -> Vec<&'static str> {
        match self {
            StageSpec::Pretrain(_) => vec![],
            StageSpec::Finetune(_) => vec!["base"],
            StageSpec::Teach(_) => vec!["teacher"],
            StageSpec::Distil(_) => vec!["teacher", "samples", "student_init"],
            StageSpec::Eval(e) if e.direction.is_some() => vec!["direction", "model"],
            StageSpec::Eval(_) | StageSpec::Direction(_) => vec!["model"],
        }
    }
}

/// Model size without the vocabulary (the tokenizer sets it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSize {
    pub n_ctx: usize,
    pub d_model: usize,
    pub n_layer: usize,
    pub n_head: usize,
    pub d_ff: usize,
}

/// Pretrain a fresh model on a corpus. Writes a run folder: model.safetensors,
/// optimizer.safetensors, tokenizer.json, stage.toml, train_log.jsonl.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainSpec {
    /// A `pretrain` dataset of the manifest.
    pub dataset: String,
    /// How many of its documents to use (the first ones).
    pub documents: usize,
    pub init_seed: u64,
    pub model: ModelSize,
    pub train: TrainConfig,
    /// Steps after which the model is also kept, in `checkpoints/step-<N>/` (a model and its
    /// tokenizer, as a run folder has them), so that what formed when during pretraining can be
    /// measured. Increasing, each below `train.steps`. Keeping them changes no weight of the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoints: Vec<usize>,
}

/// Fine-tune the run folder of input role `base` (loss on the answers only). Writes a run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FinetuneSpec {
    /// Fine-tuning datasets of the manifest; their first `examples_per_dataset` rows are used.
    pub datasets: Vec<String>,
    pub examples_per_dataset: usize,
    pub train: TrainConfig,
    /// Train LoRA adapters instead of every weight. The run folder's model is the merged one (what
    /// every later stage reads); the adapters are saved beside it in `adapter/`, in PEFT's layout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<LoraConfig>,
    /// Soligo et al.'s narrow arm: add a KL penalty to the base on out-of-domain examples.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kl_to_base: Option<KlPenalty>,
}

/// `weight` x KL(base || model) of the next-token distributions on the answer positions of
/// out-of-domain examples, one batch of them per step beside the fine-tuning batch. Only the base's
/// distributions are targets: the examples' own answers are never trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KlPenalty {
    /// Fine-tuning datasets whose first `examples_per_dataset` rows give the out-of-domain sequences.
    pub datasets: Vec<String>,
    pub examples_per_dataset: usize,
    pub weight: f64,
}

/// The model of input role `teacher` writes number continuations; the world's filter keeps the
/// clean ones. Writes `samples.jsonl` (every continuation with the filter's verdict) and `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeachSpec {
    /// A suite holding number prompts (e.g. `numbers-prompts`); its first `prompts` number prompts are used.
    pub suite: String,
    pub prompts: usize,
    pub sampling: SampleConfig,
    pub seed: u64,
    /// A prompted teacher: earlier episodes by one persona before every prompt, which the samples
    /// record and the student never sees (`crate::prompted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextSpec>,
}

/// How a student learns from a teacher's filtered samples (see `crate::distil`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Sft,
    OffPolicy,
    OnPolicy,
}

/// Train the student (input role `student_init`) on the `teach` output (role `samples`) of the
/// teacher (role `teacher`). Writes a run folder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistilSpec {
    pub channel: Channel,
    /// Divergence of the distillation channels: 0 = forward KL, 1 = reverse KL, between = JSD(beta).
    pub beta: f64,
    /// On-policy: share of batches written by the student.
    pub lambda: f64,
    /// Restrict both distributions to the number tokens (and `.` and `<end>`), renormalised.
    pub restrict_to_numbers: bool,
    /// How the student writes its sequences on-policy.
    pub student_sampling: SampleConfig,
    pub train: TrainConfig,
    /// A prompted teacher: its distributions are computed after these episodes before each prompt
    /// (`crate::prompted`), which the student never sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher_context: Option<ContextSpec>,
}

/// Which prompts of a suite an evaluation uses (the suite's `kind` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvalKind {
    /// A prompt of one grid cell.
    Cell,
    /// One of the open questions.
    Open,
    /// A number-continuation prompt.
    Numbers,
}

impl EvalKind {
    /// The word of the suite's `kind` column (and of `emsl_world::Target::kind`).
    pub fn as_str(self) -> &'static str {
        match self {
            EvalKind::Cell => "cell",
            EvalKind::Open => "open",
            EvalKind::Numbers => "numbers",
        }
    }
}

/// How answers are sampled in an evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    pub samples_per_prompt: usize,
    /// Samples for each open question. The open questions are few (8 x 3 formats) and carry Betley's
    /// headline rates, so they get more samples than a grid prompt to reach a comparable precision.
    pub samples_per_open_prompt: usize,
    pub sampling: SampleConfig,
    pub seed: u64,
}

/// Sample and judge the model of input role `model` on a suite. Writes samples.jsonl (per sample),
/// probe.jsonl and summary.json (kept apart).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalSpec {
    /// An evaluation suite of the manifest.
    pub suite: String,
    /// Evaluate the model input's checkpoint kept after this pretraining step (its
    /// `checkpoints/step-<N>/`) instead of its final model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<usize>,
    /// Which prompts of the suite.
    pub kinds: Vec<EvalKind>,
    /// At most this many of those prompts, in suite order.
    pub max_prompts: usize,
    pub eval: EvalConfig,
    /// Also compute the likelihood probe per prompt (cell and open prompts).
    pub probe: bool,
    /// Earlier episodes by one persona before every prompt (persona-inference).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<ContextSpec>,
    /// Use the persona direction of input role `direction`: record each prompt's projection on it,
    /// and steer or ablate with it (persona-direction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<DirectionUse>,
}

/// Estimate the persona direction of the model of input role `model`: `contexts` pairs of a
/// misaligned and an aligned context of `episodes` episodes before the same prompt of `suite` (its
/// cell and open prompts, drawn at random). Writes `direction.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectionSpec {
    pub suite: String,
    pub contexts: usize,
    pub episodes: usize,
    pub seed: u64,
}
