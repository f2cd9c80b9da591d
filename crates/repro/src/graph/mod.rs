//! The job graph: every dataset, training run, evaluation, table and plot a set of figures needs, each
//! a self-contained command with declared inputs (datasets by manifest name, other jobs by key) and one
//! output folder. A job's identity hashes its resolved config, its inputs' identities and hashes, and
//! the version of the code that runs it; jobs with equal identities are one job.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use anyhow::{bail, Context, Result};

use emsl_core::stages::{StageConfig, StageIo};

use crate::code_version::CodeVersions;

mod own_task;
mod task;

pub use own_task::{is_own_job, own_kind, own_stage_config};
pub use task::{JobBinary, Task};

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
        Task::Own { .. } => return own_stage_config(&job.task, dest),
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
