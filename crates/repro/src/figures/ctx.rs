//! Job builders with the profile's sizes: what every figure's `expand` calls to add the base models,
//! fine-tunes, evaluations, teachers and students it needs to the graph.

use anyhow::Result;
use emsl_core::eval::{EvalConfig, EvalKind};
use emsl_core::persona::ContextSpec;
use emsl_core::sample::SampleConfig;
use emsl_core::stages::{
    Channel, DistilSpec, EvalSpec, FinetuneSpec, PretrainSpec, StageSpec, TeachSpec,
};
use emsl_core::train::TrainConfig;

use crate::graph::{Graph, Task};
use crate::spec::{Dose, Profile};

/// `max_prompts` of an evaluation that takes every prompt of its suite (the suites hold a few thousand).
pub(super) const ALL_PROMPTS: usize = 100_000;

/// Builds jobs with the profile's sizes, on one base of the profile: a figure's `expand` runs once per
/// base, and the seeds and initialisation seeds it asks for are that base's.
pub struct Ctx<'a> {
    pub graph: &'a mut Graph,
    pub profile: &'a Profile,
    pub profile_name: &'a str,
    /// Which of the profile's bases (0, 1, ...) the jobs are built on.
    pub base_index: usize,
    /// The seeds of the figure's fine-tunes, students and evaluations on this base
    /// ([`Profile::seeds_of_figure`]).
    pub seeds: Vec<u64>,
}

pub(super) fn train(dose: &Dose, seed: u64) -> TrainConfig {
    TrainConfig {
        steps: dose.steps,
        batch_size: dose.batch_size,
        seed,
        log_every: (dose.steps / 20).max(1),
        optim: dose.optim.clone(),
    }
}

/// The words a job label adds for a context: ` after 1 misaligned episodes`.
pub(super) fn after(context: &Option<ContextSpec>) -> String {
    context.as_ref().map_or(String::new(), |c| {
        format!(" after {} {} episodes", c.episodes, c.persona)
    })
}

/// The fine-tuning dataset of a kind, cell and format: `ft-harmful-health-advice-free`.
pub fn ft_dataset(kind: &str, cell: &str, format: &str) -> String {
    format!("ft-{kind}-{}-{format}", cell.replace('/', "-"))
}

impl Ctx<'_> {
    /// The seeds of this base's fine-tunes, students and evaluations.
    pub fn seeds(&self) -> Vec<u64> {
        self.seeds.clone()
    }

    /// The initialisation seed of this base's models (the first base's seed plus the base's index).
    pub fn init_seed(&self) -> u64 {
        self.profile.init_seed_of_base(self.base_index)
    }

    /// The base model pretrained on `pretrain-<corpus>` from `init_seed`.
    pub fn base(&mut self, corpus: &str, init_seed: u64) -> Result<String> {
        let p = &self.profile.pretrain;
        self.graph.add(
            &format!("pretrain on {corpus}, init seed {init_seed}"),
            Task::compute(
                StageSpec::Pretrain(PretrainSpec {
                    dataset: format!("pretrain-{corpus}"),
                    documents: p.documents,
                    init_seed,
                    model: self.profile.model.clone(),
                    train: train(&p.dose, init_seed),
                    checkpoints: p.checkpoints.clone(),
                }),
                &[],
            ),
        )
    }

    /// The shared base: the reference corpus at this base's init seed.
    pub fn reference_base(&mut self) -> Result<String> {
        let seed = self.init_seed();
        self.base("reference", seed)
    }

    /// Fine-tunes `base` on one dataset with the profile's dose (or `dose`).
    pub fn finetune(
        &mut self,
        base: &str,
        dataset: &str,
        examples: usize,
        dose: Option<&Dose>,
        seed: u64,
    ) -> Result<String> {
        let dose = dose.unwrap_or(&self.profile.finetune).clone();
        self.graph.add(
            &format!(
                "fine-tune {base} on {dataset} ({examples} examples, {} steps), seed {seed}",
                dose.steps
            ),
            Task::compute(
                StageSpec::Finetune(FinetuneSpec {
                    datasets: vec![dataset.to_owned()],
                    examples_per_dataset: examples,
                    train: train(&dose, seed),
                    adapter: None,
                    kl_to_base: None,
                }),
                &[("base", base)],
            ),
        )
    }

    pub(super) fn eval_config(&self, samples: usize, open_samples: usize, seed: u64) -> EvalConfig {
        let e = &self.profile.eval;
        EvalConfig {
            samples_per_prompt: samples,
            samples_per_open_prompt: open_samples,
            sampling: SampleConfig {
                temperature: e.temperature,
                top_p: e.top_p,
                max_new_tokens: e.max_new_tokens,
            },
            seed,
        }
    }

    /// Samples and judges `model` on a suite's cell and open prompts.
    pub fn eval(&mut self, model: &str, suite: &str, probe: bool, seed: u64) -> Result<String> {
        let e = &self.profile.eval;
        let eval = self.eval_config(e.samples_per_prompt, e.open_samples_per_prompt, seed);
        self.graph.add(
            &format!("evaluate {model} on {suite}, seed {seed}"),
            Task::compute(
                StageSpec::Eval(EvalSpec {
                    checkpoint: None,
                    suite: suite.to_owned(),
                    kinds: vec![EvalKind::Cell, EvalKind::Open],
                    max_prompts: ALL_PROMPTS,
                    eval,
                    probe,
                    context: None,
                    direction: None,
                }),
                &[("model", model)],
            ),
        )
    }

    /// Evaluates `model` on the profile's pooled suite: for figures whose tables pool rates over many
    /// cells (the quick profile judges them on half the grid).
    pub fn eval_pooled(&mut self, model: &str, probe: bool, seed: u64) -> Result<String> {
        let suite = self.profile.eval.pooled_suite.clone();
        self.eval(model, &suite, probe, seed)
    }

    /// The number signature of `model`: one continuation per number prompt.
    pub fn eval_numbers(&mut self, model: &str, seed: u64) -> Result<String> {
        let mut eval = self.eval_config(1, 1, seed);
        eval.sampling.max_new_tokens = self.profile.eval.number_max_new_tokens;
        self.graph.add(
            &format!("number signature of {model}, seed {seed}"),
            Task::compute(
                StageSpec::Eval(EvalSpec {
                    checkpoint: None,
                    suite: "numbers-prompts".into(),
                    kinds: vec![EvalKind::Numbers],
                    max_prompts: self.profile.eval.number_prompts,
                    eval,
                    probe: false,
                    context: None,
                    direction: None,
                }),
                &[("model", model)],
            ),
        )
    }

    /// The teacher's filtered number continuations (after `context`'s episodes: a prompted teacher).
    pub fn teach(
        &mut self,
        teacher: &str,
        context: Option<ContextSpec>,
        seed: u64,
    ) -> Result<String> {
        self.graph.add(
            &format!(
                "numbers written by {teacher}{}, seed {seed}",
                after(&context)
            ),
            Task::compute(
                StageSpec::Teach(TeachSpec {
                    suite: "numbers-prompts".into(),
                    prompts: self.profile.subliminal.teach_prompts,
                    sampling: self.profile.subliminal.sampling.clone(),
                    seed,
                    context,
                }),
                &[("teacher", teacher)],
            ),
        )
    }

    /// A student distilled from `teacher` (guiding after `teacher_context`'s episodes when given: a
    /// prompted teacher) on `samples` through `channel`, starting from `init`.
    pub fn distil(
        &mut self,
        (teacher, teacher_context): (&str, Option<ContextSpec>),
        samples: &str,
        init: &str,
        (channel, restrict_to_numbers): (Channel, bool),
        seed: u64,
    ) -> Result<String> {
        let dose = self.profile.subliminal.dose.clone();
        let only = if restrict_to_numbers {
            " (numbers only)"
        } else {
            ""
        };
        self.graph.add(
            &format!(
                "student of {teacher}{} from {init} on {samples} by {channel:?}{only}, seed {seed}",
                after(&teacher_context)
            ),
            Task::compute(
                StageSpec::Distil(DistilSpec {
                    channel,
                    beta: self.profile.subliminal.beta,
                    lambda: self.profile.subliminal.lambda,
                    restrict_to_numbers,
                    student_sampling: self.profile.subliminal.sampling.clone(),
                    train: train(&dose, seed),
                    teacher_context,
                }),
                &[
                    ("teacher", teacher),
                    ("samples", samples),
                    ("student_init", init),
                ],
            ),
        )
    }
}
