//! The Slurm executor: the whole job graph submitted at once, each compute job an `sbatch` job that
//! waits on its inputs' jobs (`afterok`), so the user can log out; a later run collects what finished.
//!
//! Each call is one or more *cycles* of the coordinator, the only writer of the lock: it asks Slurm for
//! the state of every job it submitted (recorded in `<out>/jobs/<key>.slurm`), records the finished
//! ones (their batch script renamed `<key>.partial/` to `<key>/` after the job binary succeeded),
//! reports the failed ones with their key, label, Slurm state and log, runs the analysis jobs (tables,
//! plots, claims) whose inputs are all there, in this process, and submits what is missing (never
//! twice: a job with a live record is in flight, and a submission a killed coordinator left
//! unrecorded is found by its name, `adopt`). `--wait` repeats the cycle until the graph is done
//! and stops at the first failure, cancelling the jobs that need the failed one.

mod adopt;
pub mod batch;
pub mod commands;
mod dry_run;
mod files;
mod parse;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use self::batch::Sizing;
use self::commands::{Commands, State, Submission};
pub use self::files::refuse_if_submitted;
use self::files::{install_binary, read_record, record_path, report, script_path, write_record};
use super::Settings;
use crate::graph::{Graph, Job, JobBinary};
use crate::lock::Lock;
use crate::store;

/// What a call does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Collect, then submit what is missing, and return.
    Submit,
    /// Collect and submit until the graph is done; stop at the first failure.
    Wait,
    /// Collect and report; submit nothing. Failures found make it an error.
    Status,
    /// Print what would be submitted and with which request; ask Slurm nothing, write nothing.
    DryRun,
}

pub struct Options {
    pub mode: Mode,
    pub partition: Option<String>,
    pub account: Option<String>,
    pub sizing: Sizing,
    /// How often `--wait` asks Slurm.
    pub poll: Duration,
    /// Where Slurm's commands are and how long a failing one is tried again.
    pub commands: Commands,
}

/// Where a call left the graph.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Jobs recorded in the lock during this call.
    pub ran: Vec<String>,
    pub up_to_date: usize,
    /// Jobs submitted during this call (key, Slurm id).
    pub submitted: Vec<(String, String)>,
    pub in_flight: usize,
    /// Failures seen (each a full report), in the order of the graph.
    pub failures: Vec<String>,
    /// Every job of the graph is in the lock.
    pub complete: bool,
    /// With [`Mode::DryRun`]: per job that would be submitted, its request and full sbatch command.
    pub dry_run: Vec<String>,
}

/// One coordinator call against one results folder.
struct Coordinator<'a> {
    s: &'a Settings,
    graph: &'a Graph,
    opts: &'a Options,
    /// Each job binary, by the jobs it runs.
    binaries: BTreeMap<JobBinary, PathBuf>,
    lock: Lock,
    done: BTreeSet<String>,
    /// Jobs Slurm holds, by key: their Slurm id.
    in_flight: BTreeMap<String, String>,
    outcome: Outcome,
}

impl Coordinator<'_> {
    /// Collects what finished and runs the analysis jobs that can run; returns the compute jobs that
    /// are missing (neither finished nor in flight) and the failures found this cycle, by key.
    fn collect(&mut self) -> Result<(Vec<usize>, BTreeSet<String>)> {
        let out = &self.s.out;
        let cmds = &self.opts.commands;
        let open = self
            .graph
            .jobs
            .iter()
            .filter(|j| !self.done.contains(&j.key));
        adopt::settle(cmds, out, open.map(|j| j.key.as_str()))?;
        let ids: BTreeSet<String> = self
            .graph
            .jobs
            .iter()
            .filter(|j| !self.done.contains(&j.key))
            .filter_map(|j| read_record(out, &j.key))
            .collect();
        let states = cmds.states(&ids)?;
        let mut missing = Vec::new();
        let mut failed = BTreeSet::new();
        self.in_flight.clear();
        for (i, job) in self.graph.jobs.iter().enumerate() {
            if self.done.contains(&job.key) {
                continue;
            }
            let deps = job.task.deps();
            let deps_done = deps.iter().all(|d| self.done.contains(d));
            if !job.task.is_compute() {
                if deps_done {
                    let files = super::run_analysis(self.s, self.graph, job)?;
                    self.finish(job, &files)?;
                }
                continue;
            }
            if store::job_folder(out, &job.key).is_dir() {
                let files = store::files_under(&store::job_folder(out, &job.key), out)?;
                self.finish(job, &files)?;
                continue;
            }
            match read_record(out, &job.key) {
                Some(id) => match states.get(&id) {
                    Some(state @ State::Active { .. }) if !state.never_runs() => {
                        self.in_flight.insert(job.key.clone(), id);
                    }
                    other => {
                        let cause = deps.iter().find(|d| failed.contains(*d));
                        self.outcome
                            .failures
                            .push(report(out, job, &id, other, cause));
                        failed.insert(job.key.clone());
                        if other.is_some_and(State::never_runs) {
                            cmds.scancel(std::slice::from_ref(&id))?;
                        }
                        std::fs::remove_file(record_path(out, &job.key))?;
                        missing.push(i);
                    }
                },
                None => missing.push(i),
            }
        }
        Ok((missing, failed))
    }

    /// Records a finished job in the lock (saved at once: a killed coordinator loses nothing).
    fn finish(&mut self, job: &Job, files: &[String]) -> Result<()> {
        let outputs = store::hashes(&self.s.out, files)?;
        let threads = self.s.threads;
        let entry = super::entry(self.graph, job, threads, outputs);
        self.lock.record(&job.key, entry);
        self.lock.save(&self.s.out)?;
        let _ = std::fs::remove_file(record_path(&self.s.out, &job.key));
        self.done.insert(job.key.clone());
        self.outcome.ran.push(job.key.clone());
        if self.opts.mode == Mode::Wait && job.task.is_compute() {
            let secs = crate::timings::job_seconds(&self.s.out, &job.key).unwrap_or(f64::NAN);
            eprintln!("ran {} ({}) in {secs:.1} s", job.key, job.label);
        }
        Ok(())
    }

    /// Submits the missing compute jobs whose inputs are finished or in flight, in graph order, each
    /// after the Slurm jobs of its inputs.
    fn submit(&mut self, missing: &[usize]) -> Result<()> {
        let out = self.s.out.clone();
        // Read before any job of this pass starts (and opens its log afresh).
        let recorded = batch::Recorded::read(&out, self.graph);
        for &i in missing {
            let job = &self.graph.jobs[i];
            let deps = job.task.deps();
            if !deps
                .iter()
                .all(|d| self.done.contains(d) || self.in_flight.contains_key(d))
            {
                continue; // an input waits for an analysis job of this process: a later cycle
            }
            let after = deps
                .iter()
                .filter_map(|d| self.in_flight.get(d).cloned())
                .collect();
            super::prepare_compute(self.s, job)?;
            let script = script_path(&out, &job.key);
            let kind = job.task.binary().expect("a compute job");
            let binary = self.binaries.get(&kind).with_context(|| {
                format!(
                    "no job binary for {:?} jobs was given to the Slurm executor",
                    kind
                )
            })?;
            let text = batch::script(&out, job, binary, self.s.threads);
            emsl_io::write_atomic(&script, text.as_bytes())?;
            let req = batch::request(&recorded, job, self.s.threads, &self.opts.sizing);
            let paths = (script, store::log_path(&out, &job.key));
            let name = adopt::job_name(&job.key);
            let sub = self.submission(name.clone(), &req, &paths, after);
            // The intent first: a coordinator killed after sbatch took the job leaves the job's name,
            // by which the next call finds the job instead of submitting it again.
            write_record(&out, &job.key, &name, None)?;
            let id = self.opts.commands.sbatch(&sub).with_context(|| {
                format!(
                    "submitting job {} ({}) as {name} (the next call asks Slurm whether it took the \
                     job all the same)",
                    job.key, job.label
                )
            })?;
            write_record(&out, &job.key, &name, Some(&id))?;
            self.in_flight.insert(job.key.clone(), id.clone());
            self.outcome.submitted.push((job.key.clone(), id));
        }
        Ok(())
    }

    /// Cancels the jobs in flight that need any of `failed`, directly or not (they could never run);
    /// returns their positions in the graph and Slurm ids.
    fn cancel_dependants(&mut self, failed: &BTreeSet<String>) -> Result<Vec<(usize, String)>> {
        let mut bad = failed.clone();
        let mut cancelled = Vec::new();
        for (i, job) in self.graph.jobs.iter().enumerate() {
            if job.task.deps().iter().any(|d| bad.contains(d)) {
                bad.insert(job.key.clone());
                if let Some(id) = self.in_flight.remove(&job.key) {
                    cancelled.push((i, id));
                    std::fs::remove_file(record_path(&self.s.out, &job.key))?;
                }
            }
        }
        let ids: Vec<String> = cancelled.iter().map(|(_, id)| id.clone()).collect();
        self.opts.commands.scancel(&ids)?;
        Ok(cancelled)
    }

    /// The sbatch request of `job` under `name`, from its sizing, (script, log) paths and the Slurm
    /// jobs it waits for.
    fn submission<'p>(
        &'p self,
        name: String,
        req: &batch::Request,
        paths: &'p (PathBuf, PathBuf),
        after: Vec<String>,
    ) -> Submission<'p> {
        Submission {
            name,
            script: &paths.0,
            log: &paths.1,
            workdir: &self.s.root,
            cpus: req.cpus,
            mem_mib: req.mem_mib,
            minutes: req.minutes,
            after,
            partition: self.opts.partition.as_deref(),
            account: self.opts.account.as_deref(),
        }
    }
}

/// Runs (part of) a graph on Slurm from this coordinator; see the module's description.
pub fn run(
    s: &Settings,
    graph: &Graph,
    binaries: &BTreeMap<JobBinary, PathBuf>,
    opts: &Options,
) -> Result<Outcome> {
    let mut lock = Lock::load(&s.out)?;
    lock.toolchain = crate::code_version::toolchain();
    let mut done = BTreeSet::new();
    for job in &graph.jobs {
        let deps_done = job.task.deps().iter().all(|d| done.contains(d));
        if deps_done && lock.intact(&s.out, &job.key, &job.identity) {
            done.insert(job.key.clone());
        }
    }
    let up_to_date = done.len();
    if opts.mode != Mode::DryRun {
        std::fs::create_dir_all(store::jobs_dir(&s.out))?;
    }
    let mut installed = BTreeMap::new();
    for (&kind, binary) in binaries {
        let path = match opts.mode {
            Mode::Submit | Mode::Wait => install_binary(&s.out, binary)?,
            Mode::Status | Mode::DryRun => binary.clone(),
        };
        installed.insert(kind, path);
    }
    let mut c = Coordinator {
        s,
        graph,
        opts,
        binaries: installed,
        lock,
        done,
        in_flight: BTreeMap::new(),
        outcome: Outcome {
            up_to_date,
            ..Outcome::default()
        },
    };
    if opts.mode == Mode::DryRun {
        c.outcome.dry_run = c.dry_run()?;
        for line in &c.outcome.dry_run {
            println!("{line}");
        }
        return Ok(c.outcome);
    }
    let mut last = String::new();
    loop {
        let (mut missing, failed) = c.collect()?;
        let cancelled = c.cancel_dependants(&failed)?;
        if opts.mode == Mode::Wait && !failed.is_empty() {
            let mut text = c.outcome.failures.join("\n");
            if !cancelled.is_empty() {
                let ids: Vec<&str> = cancelled.iter().map(|(_, id)| id.as_str()).collect();
                text.push_str(&format!(
                    "\n{} queued job(s) that need it were cancelled (Slurm jobs {})",
                    ids.len(),
                    ids.join(", ")
                ));
            }
            bail!(
                "{text}\nreproduce stopped at a failed job; finished jobs are kept in {} and the next \
                 run resubmits only the failed and unfinished ones",
                s.out.join(crate::lock::LOCK_FILE).display()
            );
        }
        // What was cancelled because an input failed is submitted again after that input.
        missing.extend(cancelled.iter().map(|(i, _)| *i));
        missing.sort_unstable();
        missing.dedup();
        if opts.mode != Mode::Status {
            c.submit(&missing)?;
        }
        let left = graph.jobs.len() - c.done.len();
        let line = format!(
            "slurm: {} of {} jobs done, {} queued or running on Slurm, {} waiting for their inputs",
            c.done.len(),
            graph.jobs.len(),
            c.in_flight.len(),
            left - c.in_flight.len()
        );
        if opts.mode != Mode::Wait || left == 0 {
            c.outcome.in_flight = c.in_flight.len();
            c.outcome.complete = left == 0;
            eprintln!("{line}");
            break;
        }
        if c.in_flight.is_empty() && missing.is_empty() {
            bail!(
                "{left} jobs can neither run nor be submitted (an input of theirs never finished)"
            );
        }
        if line != last {
            eprintln!("{line}");
            last = line;
        }
        std::thread::sleep(opts.poll);
    }
    Ok(c.outcome)
}
