//! The job graph: every dataset, training run, evaluation, table and plot a set of figures needs, each
//! a self-contained command with declared inputs (datasets by manifest name, other jobs by key) and one
//! output folder. A job's identity hashes its resolved config, its inputs' identities and hashes, and
//! the version of the code that runs it; jobs with equal identities are one job.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::{Context, Result};
use emsl_core::distil::Channel;
use emsl_core::eval::{EvalConfig, EvalKind};
use emsl_core::sample::SampleConfig;
use emsl_core::stages::ModelSize;
use emsl_core::train::TrainConfig;
use serde::Serialize;

/// What a job does. Inputs that are other jobs are named by their key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Task {
    Pretrain {
        dataset: String,
        documents: usize,
        init_seed: u64,
        model: ModelSize,
        train: TrainConfig,
    },
    Finetune {
        base: String,
        datasets: Vec<String>,
        examples_per_dataset: usize,
        train: TrainConfig,
    },
    Teach {
        teacher: String,
        suite: String,
        prompts: usize,
        sampling: SampleConfig,
        seed: u64,
    },
    Distil {
        teacher: String,
        samples: String,
        student_init: String,
        channel: Channel,
        beta: f64,
        lambda: f64,
        restrict_to_numbers: bool,
        student_sampling: SampleConfig,
        train: TrainConfig,
    },
    Eval {
        model: String,
        suite: String,
        kinds: Vec<EvalKind>,
        max_prompts: usize,
        eval: EvalConfig,
        probe: bool,
    },
    /// A figure's measurement tables from its inputs (named by role), its plot and SHA256SUMS.
    Figure {
        figure: String,
        figure_version: u32,
        params: toml::Table,
        inputs: BTreeMap<String, String>,
    },
    /// results/CLAIMS.md from every figure's tables.
    Claims { tables: BTreeMap<String, String> },
}

impl Task {
    pub fn kind(&self) -> &'static str {
        match self {
            Task::Pretrain { .. } => "pretrain",
            Task::Finetune { .. } => "finetune",
            Task::Teach { .. } => "teach",
            Task::Distil { .. } => "distil",
            Task::Eval { .. } => "eval",
            Task::Figure { .. } => "figure",
            Task::Claims { .. } => "claims",
        }
    }

    /// Training and sampling run in a child process with the kit's core; the rest is analysis.
    pub fn is_compute(&self) -> bool {
        !matches!(self, Task::Figure { .. } | Task::Claims { .. })
    }

    /// The keys of the jobs this one reads.
    pub fn deps(&self) -> Vec<String> {
        match self {
            Task::Pretrain { .. } => vec![],
            Task::Finetune { base, .. } => vec![base.clone()],
            Task::Teach { teacher, .. } => vec![teacher.clone()],
            Task::Distil {
                teacher,
                samples,
                student_init,
                ..
            } => vec![teacher.clone(), samples.clone(), student_init.clone()],
            Task::Eval { model, .. } => vec![model.clone()],
            Task::Figure { inputs, .. } => inputs.values().cloned().collect(),
            Task::Claims { tables } => tables.values().cloned().collect(),
        }
    }

    /// Datasets of the manifest this job reads directly.
    pub fn datasets(&self) -> Vec<String> {
        match self {
            Task::Pretrain { dataset, .. } => vec![dataset.clone()],
            Task::Finetune { datasets, .. } => datasets.clone(),
            Task::Teach { suite, .. } | Task::Eval { suite, .. } => vec![suite.clone()],
            _ => vec![],
        }
    }

    /// A rough cost in tokens processed, for the progress display's estimate of the time left.
    pub fn cost(&self) -> f64 {
        let train = |t: &TrainConfig, ctx: f64| (t.steps * t.batch_size) as f64 * ctx * 3.0;
        match self {
            Task::Pretrain {
                train: t, model, ..
            } => train(t, model.n_ctx as f64),
            Task::Finetune { train: t, .. } => train(t, 48.0),
            Task::Distil { train: t, .. } => train(t, 48.0) * 2.0,
            Task::Teach {
                prompts, sampling, ..
            } => (*prompts * sampling.max_new_tokens) as f64 * 4.0,
            Task::Eval {
                max_prompts,
                eval,
                kinds,
                ..
            } => {
                // max_prompts is a cap; the grid suites hold under a thousand cell prompts and 24 open ones.
                let mut samples = 0;
                for k in kinds {
                    samples += match k {
                        EvalKind::Open => 24 * eval.samples_per_open_prompt,
                        EvalKind::Cell | EvalKind::Numbers => {
                            (*max_prompts).min(1000) * eval.samples_per_prompt
                        }
                    };
                }
                (samples * eval.sampling.max_new_tokens) as f64 * 4.0
            }
            _ => 1000.0,
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

/// The versions of the code behind each kind of job: a hash of the sources that run it, so editing a
/// training file reruns training and editing a table builder reruns only tables and plots.
#[derive(Debug, Clone)]
pub struct CodeVersions {
    pub compute: String,
    pub analysis: String,
}

fn hash_sources(root: &Path, parts: &[String]) -> Result<String> {
    let mut files = Vec::new();
    for part in parts {
        let p = root.join(part);
        if p.is_file() {
            files.push(p);
        } else {
            collect(&p, &mut files).with_context(|| format!("reading {}", p.display()))?;
        }
    }
    files.sort();
    let mut text = Vec::new();
    for f in files {
        let rel = f.strip_prefix(root).unwrap_or(&f);
        text.extend_from_slice(rel.to_string_lossy().as_bytes());
        text.push(0);
        text.extend_from_slice(&std::fs::read(&f)?);
        text.push(0);
    }
    Ok(emsl_io::sha256_bytes(&text))
}

fn collect(dir: &Path, out: &mut Vec<std::path::PathBuf>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            collect(&p, out)?;
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
    Ok(())
}

/// What a code version hashes: the workspace's manifest and lock, each crate's manifest and sources (a
/// feature or a release-profile setting, the gemm crate's AVX-512 kernels say, changes floating-point
/// results as much as a source edit), and the `extra` paths.
fn code_parts(crates: &[&str], extra: &[&str]) -> Vec<String> {
    let mut parts = vec!["Cargo.lock".to_owned(), "Cargo.toml".to_owned()];
    for c in crates {
        parts.push(format!("crates/{c}/Cargo.toml"));
        parts.push(format!("crates/{c}/src"));
    }
    parts.extend(extra.iter().map(|p| (*p).to_owned()));
    parts
}

impl CodeVersions {
    pub fn of(root: &Path) -> Result<CodeVersions> {
        let compute = code_parts(&["world", "io", "core"], &[]);
        let analysis = code_parts(&["world", "io", "analysis"], &["xtask/src/reproduce"]);
        Ok(CodeVersions {
            compute: hash_sources(root, &compute)?,
            analysis: hash_sources(root, &analysis)?,
        })
    }
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
        let code = if task.is_compute() {
            &self.code.compute
        } else {
            &self.code.analysis
        };
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

    pub fn code_analysis(&self) -> &str {
        &self.code.analysis
    }

    pub fn dataset_hash(&self, name: &str) -> Option<&String> {
        self.dataset_hashes.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::CodeVersions;

    #[test]
    fn code_versions_follow_sources_and_manifests_but_not_tests() {
        let root = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let p = root.path().join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        };
        for f in ["Cargo.lock", "Cargo.toml", "xtask/src/reproduce/mod.rs"] {
            write(f, "a");
        }
        for c in ["world", "io", "core", "analysis"] {
            write(&format!("crates/{c}/Cargo.toml"), "a");
            write(&format!("crates/{c}/src/lib.rs"), "a");
            write(&format!("crates/{c}/tests/t.rs"), "a");
        }
        let v0 = CodeVersions::of(root.path()).unwrap();
        let changed = |edit: &str| {
            write(edit, "b");
            let v = CodeVersions::of(root.path()).unwrap();
            write(edit, "a");
            (v.compute != v0.compute, v.analysis != v0.analysis)
        };
        // (compute changed, analysis changed)
        assert_eq!(changed("crates/core/tests/t.rs"), (false, false));
        assert_eq!(changed("Cargo.toml"), (true, true));
        assert_eq!(changed("crates/core/Cargo.toml"), (true, false));
        assert_eq!(changed("crates/core/src/lib.rs"), (true, false));
        assert_eq!(changed("crates/world/src/lib.rs"), (true, true));
        assert_eq!(changed("crates/analysis/Cargo.toml"), (false, true));
        assert_eq!(changed("xtask/src/reproduce/mod.rs"), (false, true));
    }
}
