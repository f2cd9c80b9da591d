//! What a job does ([`Task`]): a stage of the kit's core or of your own model run as a child process,
//! or an analysis job (a figure's tables, the claims table) run in the coordinator.

use std::collections::BTreeMap;

use emsl_core::eval::EvalKind;
use emsl_core::stages::StageSpec;
use emsl_core::train::TrainConfig;
use serde::Serialize;

/// What a job does. Inputs that are other jobs are named by their key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "job", rename_all = "snake_case")]
pub enum Task {
    /// A stage of the core crate (training, sampling, judging) run as a child process: what it computes
    /// and, by role, the jobs whose run folders it reads (the folders themselves are not part of it).
    Compute {
        spec: StageSpec,
        inputs: BTreeMap<String, String>,
    },
    /// A figure's measurement tables from its inputs (named by role), its plot and SHA256SUMS.
    Figure {
        figure: String,
        figure_version: u32,
        params: toml::Table,
        inputs: BTreeMap<String, String>,
    },
    /// results/CLAIMS.md from every figure's tables (`tables`: figure to its table job), judged against
    /// `claims`; `figures` holds the claim ids each figure's file lists.
    /// After a run of only some figures, `committed` holds the sha256 of each other figure's
    /// `effects.parquet` as the results folder has it: read, not recomputed, and part of the job's
    /// identity so that the table is rebuilt when one of them changes.
    Claims {
        claims: crate::spec::Claims,
        figures: BTreeMap<String, Vec<String>>,
        tables: BTreeMap<String, String>,
        #[serde(skip_serializing_if = "BTreeMap::is_empty")]
        committed: BTreeMap<String, String>,
        /// An earlier run's frozen tables whose verdicts the table sets beside these.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        previous: Option<crate::spec::PreviousTables>,
    },
    /// A stage of your own model (`emsl-hf job`, [`crate::own`]): its kind (`stage`), its spec with
    /// each input's path replaced by the input's name, and per input the sha256 of every file it
    /// reads, by the file's path inside the input. `resolved`, the spec with absolute paths that the
    /// job runs, is no part of the identity: the same files elsewhere are the same job.
    Own {
        stage: String,
        spec: serde_json::Value,
        inputs: BTreeMap<String, BTreeMap<String, String>>,
        #[serde(skip)]
        resolved: serde_json::Value,
    },
}

/// The program that runs a compute job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum JobBinary {
    /// `xtask job CONFIG`: the kit's own stages (crates/core).
    Kit,
    /// `emsl-hf job CONFIG`: a stage of your own model (crates/hf).
    OwnModel,
}

impl Task {
    /// A compute job of `spec` reading the run folders of `inputs` (role, job key).
    pub fn compute(spec: StageSpec, inputs: &[(&str, &str)]) -> Task {
        Task::Compute {
            spec,
            inputs: inputs
                .iter()
                .map(|(role, key)| ((*role).to_owned(), (*key).to_owned()))
                .collect(),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Task::Compute { spec, .. } => spec.kind(),
            Task::Figure { .. } => "figure",
            Task::Claims { .. } => "claims",
            // A stage emsl-hf does not have is refused when it is planned; `own` never reaches a key.
            Task::Own { stage, .. } => super::own_kind(stage).unwrap_or("own"),
        }
    }

    /// Training and sampling run in a child process (the kit's core, or emsl-hf for your own model);
    /// the rest is analysis.
    pub fn is_compute(&self) -> bool {
        self.binary().is_some()
    }

    /// The program of a compute job; `None` for analysis.
    pub fn binary(&self) -> Option<JobBinary> {
        match self {
            Task::Compute { .. } => Some(JobBinary::Kit),
            Task::Own { .. } => Some(JobBinary::OwnModel),
            Task::Figure { .. } | Task::Claims { .. } => None,
        }
    }

    /// The keys of the jobs this one reads.
    pub fn deps(&self) -> Vec<String> {
        match self {
            Task::Compute { inputs, .. } | Task::Figure { inputs, .. } => {
                inputs.values().cloned().collect()
            }
            Task::Claims { tables, .. } => tables.values().cloned().collect(),
            Task::Own { .. } => vec![],
        }
    }

    /// Datasets of the manifest this job reads directly.
    pub fn datasets(&self) -> Vec<String> {
        match self {
            Task::Compute { spec, .. } => spec.datasets(),
            _ => vec![],
        }
    }

    /// A rough cost in tokens processed, for the progress display's estimate of the time left and the
    /// scheduler's priorities.
    pub fn cost(&self) -> f64 {
        let train = |t: &TrainConfig, ctx: f64| (t.steps * t.batch_size) as f64 * ctx * 3.0;
        let spec = match self {
            Task::Compute { spec, .. } => spec,
            // Unknown until it runs; a real checkpoint outweighs every job of the kit's own.
            Task::Own { .. } => return 1e12,
            _ => return 1000.0,
        };
        match spec {
            StageSpec::Pretrain(p) => train(&p.train, p.model.n_ctx as f64),
            StageSpec::Finetune(f) => {
                train(&f.train, 48.0) * if f.kl_to_base.is_some() { 2.0 } else { 1.0 }
            }
            StageSpec::Direction(d) => (d.contexts * 2 * 100) as f64 * 2.0,
            StageSpec::Distil(d) => train(&d.train, 48.0) * 2.0,
            StageSpec::Teach(t) => (t.prompts * t.sampling.max_new_tokens) as f64 * 4.0,
            StageSpec::Eval(e) => {
                // max_prompts is a cap; the grid suites hold under a thousand cell prompts and 24 open ones.
                let mut samples = 0;
                for k in &e.kinds {
                    samples += match k {
                        EvalKind::Open => 24 * e.eval.samples_per_open_prompt,
                        EvalKind::Cell | EvalKind::Numbers => {
                            e.max_prompts.min(1000) * e.eval.samples_per_prompt
                        }
                    };
                }
                (samples * e.eval.sampling.max_new_tokens) as f64 * 4.0
            }
        }
    }
}
