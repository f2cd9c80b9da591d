//! The job graph: every dataset, training run, evaluation, table and plot a set of figures needs, each
//! a self-contained command with declared inputs (datasets by manifest name, other jobs by key) and one
//! output folder. A job's identity hashes its resolved config, its inputs' identities and hashes, and
//! the version of the code that runs it; jobs with equal identities are one job.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};

use emsl_core::eval::EvalKind;
use emsl_core::stages::{StageConfig, StageIo, StageSpec};
use emsl_core::train::TrainConfig;
use serde::Serialize;

use crate::code_version::CodeVersions;

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
        /// An earlier world's frozen tables whose verdicts the table sets beside these.
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
            Task::Own { stage, .. } => crate::own::kind(stage),
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

/// One node of the graph.
#[derive(Debug, Clone)]
pub struct Job {
    /// `<kind>-<first 12 hex digits of the identity>`: the job's folder and lock entry.
    pub key: String,
    pub identity: String,
    pub label: String,
    pub task: Task,
}

/// The jobs of a run in the order they were added (dependencies first).
pub struct Graph {
    pub jobs: Vec<Job>,
    index: HashMap<String, usize>,
    dataset_hashes: BTreeMap<String, String>,
    code: CodeVersions,
}

impl Graph {
    pub fn new(dataset_hashes: BTreeMap<String, String>, code: CodeVersions) -> Graph {
        Graph {
            jobs: Vec::new(),
            index: HashMap::new(),
            dataset_hashes,
            code,
        }
    }

    /// Adds a job (or finds the equal one already added) and returns its key.
    pub fn add(&mut self, label: &str, task: Task) -> Result<String> {
        let mut datasets = BTreeMap::new();
        for d in task.datasets() {
            let h = self.dataset_hashes.get(&d).with_context(|| {
                format!(
                    "dataset '{d}' (needed by {label}) is not in datasets/manifest.toml; \
                     declare it in datasets/datasets.toml and run `cargo xtask datasets`"
                )
            })?;
            datasets.insert(d, h.clone());
        }
        let deps: BTreeMap<String, String> = task
            .deps()
            .into_iter()
            .map(|k| {
                let i = self.index[&k];
                (k, self.jobs[i].identity.clone())
            })
            .collect();
        let code = self.code_for(&task)?;
        let identity = emsl_io::sha256_bytes(
            serde_json::to_string(&serde_json::json!({
                "task": task, "datasets": datasets, "deps": deps, "code": code,
            }))?
            .as_bytes(),
        );
        let key = format!("{}-{}", task.kind(), &identity[..12]);
        if !self.index.contains_key(&key) {
            self.index.insert(key.clone(), self.jobs.len());
            self.jobs.push(Job {
                key: key.clone(),
                identity,
                label: label.to_owned(),
                task,
            });
        }
        Ok(key)
    }

    pub fn get(&self, key: &str) -> &Job {
        &self.jobs[self.index[key]]
    }

    /// Per job, its cost plus that of the costliest chain of jobs that need it. Workers take the ready
    /// job with the longest such path first, so the long pretrains start at once and no core idles
    /// behind one of them at the end.
    pub fn path_lengths(&self, cost: impl Fn(usize) -> f64) -> Vec<f64> {
        let mut length = vec![0.0_f64; self.jobs.len()];
        // Dependencies come before their dependants, so walking backwards sees every dependant first.
        for i in (0..self.jobs.len()).rev() {
            length[i] += cost(i);
            for d in self.jobs[i].task.deps() {
                let j = self.index[&d];
                length[j] = length[j].max(length[i]);
            }
        }
        length
    }

    /// The position in `pending` of the job to start next: among the jobs whose dependencies are done,
    /// the one with the longest path to the end (`path_lengths`), the earliest added on ties. The executor
    /// and the timings' replay both schedule by this rule.
    pub fn next_ready(
        &self,
        pending: &[usize],
        priority: &[f64],
        is_done: impl Fn(&str) -> bool,
    ) -> Option<usize> {
        pending
            .iter()
            .enumerate()
            .filter(|(_, &i)| self.jobs[i].task.deps().iter().all(|d| is_done(d)))
            .max_by(|(_, &a), (_, &b)| priority[a].total_cmp(&priority[b]).then(b.cmp(&a)))
            .map(|(pos, _)| pos)
    }

    /// The indices of `key` and every job it needs, directly or not.
    pub fn needed_by(&self, key: &str) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![self.index[key]];
        while let Some(i) = stack.pop() {
            if seen.insert(i) {
                stack.extend(self.jobs[i].task.deps().iter().map(|d| self.index[d]));
            }
        }
        seen
    }

    /// The index of a job's dependency `key`.
    pub fn position(&self, key: &str) -> usize {
        self.index[key]
    }

    /// The version of the code that runs `job`.
    pub fn code_version(&self, job: &Job) -> &str {
        self.code_for(&job.task)
            .expect("a job of the graph has a code version")
    }

    fn code_for(&self, task: &Task) -> Result<&str> {
        Ok(match task {
            Task::Figure { figure, .. } => self
                .code
                .figures
                .get(figure)
                .with_context(|| format!("figure '{figure}' is not registered"))?,
            Task::Claims { .. } => &self.code.claims,
            Task::Compute { .. } => &self.code.compute,
            Task::Own { .. } => &self.code.own,
        })
    }

    pub fn dataset_hash(&self, name: &str) -> Option<&String> {
        self.dataset_hashes.get(name)
    }
}

/// The stage config a compute job's process reads: its spec, with the folders filled in.
pub fn stage_config(root: &Path, out: &Path, job: &Job, dest: &Path) -> Result<String> {
    let (spec, inputs) = match &job.task {
        Task::Compute { spec, inputs } => (spec, inputs),
        Task::Own { .. } => return crate::own::stage_config(&job.task, dest),
        _ => bail!("{} is not a compute job", job.key),
    };
    let cfg = StageConfig {
        spec: spec.clone(),
        io: StageIo {
            datasets_dir: root.join("datasets"),
            inputs: inputs
                .iter()
                .map(|(role, key)| (role.clone(), crate::store::job_folder(out, key)))
                .collect(),
            out: dest.to_path_buf(),
        },
    };
    Ok(toml::to_string(&cfg)?)
}

#[cfg(test)]
mod tests {
    use crate::test_support::{empty_graph, pretrain, root};

    use emsl_core::stages::{FinetuneSpec, StageSpec};

    use super::Task;

    fn finetune(base: &str, seed: u64) -> Task {
        let Task::Compute {
            spec: StageSpec::Pretrain(p),
            ..
        } = pretrain(seed)
        else {
            unreachable!()
        };
        let spec = StageSpec::Finetune(FinetuneSpec {
            datasets: vec![],
            examples_per_dataset: 1,
            train: p.train,
            adapter: None,
            kl_to_base: None,
        });
        Task::compute(spec, &[("base", base)])
    }

    #[test]
    fn equal_tasks_are_one_job_and_a_changed_knob_is_another() {
        let mut g = empty_graph(&root());
        let a = g.add("a", pretrain(1)).unwrap();
        let b = g.add("the same, named otherwise", pretrain(1)).unwrap();
        let c = g.add("c", pretrain(2)).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(g.jobs.len(), 2);
        assert_eq!(g.get(&a).label, "a", "the first label is kept");
        // A dependant's identity follows its input's identity.
        let fa = g.add("ft of a", finetune(&a, 1)).unwrap();
        let fc = g.add("ft of c", finetune(&c, 1)).unwrap();
        assert_ne!(fa, fc);
    }

    #[test]
    fn an_unknown_dataset_is_an_error_naming_it_and_the_job() {
        let mut g = empty_graph(&root());
        let mut task = pretrain(1);
        if let Task::Compute {
            spec: StageSpec::Pretrain(p),
            ..
        } = &mut task
        {
            p.dataset = "pretrain-nowhere".into();
        }
        let e = g.add("the base", task).unwrap_err().to_string();
        assert!(
            e.contains("pretrain-nowhere") && e.contains("the base"),
            "{e}"
        );
    }

    #[test]
    fn workers_take_the_ready_job_with_the_longest_path_first() {
        let mut g = empty_graph(&root());
        let short = g.add("short", pretrain(1)).unwrap();
        let long = g.add("long", pretrain(2)).unwrap();
        let after_long = g.add("after long", finetune(&long, 1)).unwrap();
        // Costs: every job 1, so `long` (with a dependant) has path 2, `short` 1.
        let priority = g.path_lengths(|_| 1.0);
        let pending: Vec<usize> = (0..g.jobs.len()).collect();
        let first = g.next_ready(&pending, &priority, |_| false).unwrap();
        assert_eq!(g.jobs[pending[first]].key, long);
        // The dependant is not ready until its input is done.
        let without_long: Vec<usize> = pending
            .iter()
            .copied()
            .filter(|&i| g.jobs[i].key != long)
            .collect();
        let next = g.next_ready(&without_long, &priority, |_| false).unwrap();
        assert_eq!(g.jobs[without_long[next]].key, short);
        // Once `long` is done its dependant is ready; at equal paths the earlier-added job goes first.
        let next = g
            .next_ready(&without_long, &priority, |k| k == long)
            .unwrap();
        assert_eq!(g.jobs[without_long[next]].key, short);
        let only_dependant = [g.position(&after_long)];
        assert_eq!(g.next_ready(&only_dependant, &priority, |_| false), None);
        assert_eq!(
            g.next_ready(&only_dependant, &priority, |k| k == long),
            Some(0)
        );
        assert_eq!(g.needed_by(&after_long).len(), 2);
    }
}
