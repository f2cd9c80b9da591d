//! Runs a job graph: jobs whose identity is in the lock with intact outputs are skipped; the rest run
//! in dependency order, up to `jobs` at once, the ready job with the longest path to the end first.
//! Compute jobs go to a [`Runner`] (the local one starts a child process per job), which writes into
//! `<out>/jobs/<key>.partial/`, renamed to `<out>/jobs/<key>/` when the job finished; analysis jobs
//! (tables, plots, claims) run in this process and write their files atomically. Only this
//! coordinator writes the lock, after every job, so a run killed at any moment resumes from the
//! finished jobs. A failing or panicking job stops the run at once: the runner cancels the jobs still
//! running and the error names the job's key, label and log.

pub mod local;
pub mod slurm;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::graph::{Graph, Job, JobBinary};
use crate::lock::{Entry, Lock};
use crate::store;

pub use local::LocalRunner;

/// Where a run writes and how it runs its jobs.
pub struct Settings {
    pub root: PathBuf,
    pub out: PathBuf,
    pub jobs: usize,
    pub threads: usize,
    pub profile: String,
}

pub struct Report {
    pub ran: Vec<String>,
    pub up_to_date: usize,
}

/// One compute job as a runner sees it: the job binary runs its stage config, its outputs go into the
/// folder the config names, its output and errors into `log`.
pub struct ComputeJob<'a> {
    pub key: &'a str,
    /// The program that runs it.
    pub binary: JobBinary,
    pub label: &'a str,
    pub config: &'a Path,
    pub log: &'a Path,
    /// Threads the job may use (its results are bit-exact only at the same count).
    pub threads: usize,
}

/// What runs one compute job: a child process here, a cluster's batch job elsewhere.
pub trait Runner: Sync {
    /// Runs the job to its end; an error says why it failed (the executor adds its key, label and log).
    fn run(&self, job: &ComputeJob) -> Result<()>;
    /// Stops every job still running (another one failed); their `run` calls then return errors.
    fn cancel_all(&self);
}

/// Clears what an earlier try of a compute job left and writes its stage config: the start of every
/// compute job, whichever runner or cluster runs it. Returns the config's and the log's paths.
pub(crate) fn prepare_compute(s: &Settings, job: &Job) -> Result<(PathBuf, PathBuf)> {
    let partial = store::partial_folder(&s.out, &job.key);
    let done = store::job_folder(&s.out, &job.key);
    for p in [&partial, &done] {
        if p.exists() {
            std::fs::remove_dir_all(p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    let config_path = store::config_path(&s.out, &job.key);
    let config = crate::graph::stage_config(&s.root, &s.out, job, &partial)?;
    emsl_io::write_atomic(&config_path, config.as_bytes())?;
    Ok((config_path, store::log_path(&s.out, &job.key)))
}

/// Runs one compute job and returns its output files (relative to `out`).
fn run_compute(s: &Settings, runner: &dyn Runner, job: &Job) -> Result<Vec<String>> {
    let (config_path, log_path) = prepare_compute(s, job)?;
    let partial = store::partial_folder(&s.out, &job.key);
    let done = store::job_folder(&s.out, &job.key);
    let started = Instant::now();
    let compute = ComputeJob {
        key: &job.key,
        binary: job.task.binary().expect("a compute job"),
        label: &job.label,
        config: &config_path,
        log: &log_path,
        threads: s.threads,
    };
    if let Err(e) = runner.run(&compute) {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        bail!(
            "{e:#}; its log is {}:\n{}",
            log_path.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    // The wall time goes into the log, never into an output: outputs stay byte-identical across runs.
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)?;
    writeln!(
        log,
        "{} {:.1} s at {} thread(s)",
        crate::timings::LOG_PREFIX,
        started.elapsed().as_secs_f64(),
        s.threads
    )?;
    std::fs::rename(&partial, &done)
        .with_context(|| format!("renaming {} to {}", partial.display(), done.display()))?;
    store::files_under(&done, &s.out)
}

/// Runs a job; a panic (of a table builder, say) becomes an error like any failure.
fn run_job(s: &Settings, graph: &Graph, runner: &dyn Runner, job: &Job) -> Result<Vec<String>> {
    if job.task.is_compute() {
        guarded(job, || run_compute(s, runner, job))
    } else {
        run_analysis(s, graph, job)
    }
}

/// Runs an analysis job (tables, plots, claims) in this process and returns its output files.
pub(crate) fn run_analysis(s: &Settings, graph: &Graph, job: &Job) -> Result<Vec<String>> {
    let place = crate::analysis::Place {
        root: &s.root,
        out: &s.out,
        profile: &s.profile,
    };
    guarded(job, || crate::analysis::run(&place, graph, job))
}

/// `run`'s result, a panic turned into an error, with the job's key and label.
fn guarded(job: &Job, run: impl FnOnce() -> Result<Vec<String>>) -> Result<Vec<String>> {
    let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        Ok(r) => r,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "(no message)".to_owned());
            Err(anyhow!("panicked: {msg}"))
        }
    };
    result.with_context(|| format!("job {} ({}) failed", job.key, job.label))
}

/// The lock entry of a finished job.
pub(crate) fn entry(
    graph: &Graph,
    job: &Job,
    threads: usize,
    outputs: BTreeMap<String, String>,
) -> Entry {
    let mut inputs: Vec<String> = job
        .task
        .datasets()
        .iter()
        .map(|d| {
            format!(
                "dataset {d} {}",
                graph.dataset_hash(d).map(String::as_str).unwrap_or("?")
            )
        })
        .collect();
    inputs.extend(
        job.task
            .deps()
            .iter()
            .map(|k| format!("job {k} {}", graph.get(k).identity)),
    );
    if let crate::graph::Task::Own { inputs: own, .. } = &job.task {
        for (input, files) in own {
            for (name, sha) in files {
                let file = if name.is_empty() {
                    input.clone()
                } else {
                    format!("{input}/{name}")
                };
                inputs.push(format!("file {file} {sha}"));
            }
        }
    }
    Entry {
        identity: job.identity.clone(),
        kind: job.task.kind().to_owned(),
        label: job.label.clone(),
        threads: if job.task.is_compute() { threads } else { 1 },
        inputs,
        config: toml::Value::try_from(&job.task).expect("tasks serialise to TOML"),
        outputs,
    }
}

fn progress_bar(total_cost: f64) -> ProgressBar {
    let bar = ProgressBar::new(total_cost.max(1.0) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {msg} (about {eta} left)",
        )
        .expect("valid template"),
    );
    bar
}

fn say(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
    }
}

pub fn run(s: &Settings, graph: &Graph, runner: &dyn Runner) -> Result<Report> {
    let mut lock = Lock::load(&s.out)?;
    lock.toolchain = crate::code_version::toolchain();
    let dir = store::jobs_dir(&s.out);
    std::fs::create_dir_all(&dir)?;
    slurm::refuse_if_submitted(&s.out)?;
    // Leftovers of a killed run: unfinished job folders.
    for e in std::fs::read_dir(&dir)? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "partial") {
            std::fs::remove_dir_all(&p)?;
        }
    }
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut pending: Vec<usize> = Vec::new();
    for (i, job) in graph.jobs.iter().enumerate() {
        let deps_done = job.task.deps().iter().all(|d| done.contains(d));
        if deps_done && lock.intact(&s.out, &job.key, &job.identity) {
            done.insert(job.key.clone());
        } else {
            pending.push(i);
        }
    }
    let up_to_date = done.len();
    let bar = progress_bar(pending.iter().map(|&i| graph.jobs[i].task.cost()).sum());
    say(
        &bar,
        format!(
            "reproduce: {} jobs, {up_to_date} up to date, {} to run ({} at once, {} thread(s) each)",
            graph.jobs.len(),
            pending.len(),
            s.jobs,
            s.threads
        ),
    );
    let priority = graph.path_lengths(|i| graph.jobs[i].task.cost());
    let (tx, rx) = mpsc::channel::<(usize, f64, Result<Vec<String>>)>();
    let mut running: BTreeSet<usize> = BTreeSet::new();
    let mut ran = Vec::new();
    let mut failure: Option<anyhow::Error> = None;
    std::thread::scope(|scope| -> Result<()> {
        loop {
            while failure.is_none() && running.len() < s.jobs {
                let ready = graph.next_ready(&pending, &priority, |d| done.contains(d));
                let Some(pos) = ready else { break };
                let i = pending.remove(pos);
                running.insert(i);
                let tx = tx.clone();
                scope.spawn(move || {
                    let started = Instant::now();
                    let r = run_job(s, graph, runner, &graph.jobs[i]);
                    // The receiver outlives every worker; a failed send cannot happen.
                    let _ = tx.send((i, started.elapsed().as_secs_f64(), r));
                });
            }
            bar.set_message(format!(
                "{} done, {} running, {} left",
                done.len() - up_to_date,
                running.len(),
                pending.len()
            ));
            if running.is_empty() {
                break;
            }
            // Every worker sends exactly once (run_job catches panics), so this cannot wait forever.
            let (i, secs, result) = rx.recv().expect("a worker reports");
            running.remove(&i);
            let job = &graph.jobs[i];
            match result {
                Ok(files) => {
                    let outputs = store::hashes(&s.out, &files)?;
                    lock.record(&job.key, entry(graph, job, s.threads, outputs));
                    lock.save(&s.out)?;
                    done.insert(job.key.clone());
                    ran.push(job.key.clone());
                    bar.inc(job.task.cost() as u64);
                    say(
                        &bar,
                        format!("ran {} ({}) in {secs:.1} s", job.key, job.label),
                    );
                }
                Err(_) if failure.is_some() => {
                    say(&bar, format!("stopped {} ({})", job.key, job.label));
                }
                Err(e) => {
                    say(&bar, format!("FAILED {} ({})", job.key, job.label));
                    runner.cancel_all();
                    failure = Some(e);
                }
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(e.context(format!(
            "reproduce stopped at a failed job; finished jobs are kept in {} and the next run \
             resumes from them",
            s.out.join(crate::lock::LOCK_FILE).display()
        )));
    }
    if !pending.is_empty() {
        bail!("{} jobs could not run (their inputs failed)", pending.len());
    }
    Ok(Report { ran, up_to_date })
}
