//! Runs a job graph: jobs whose identity is in the lock with intact outputs are skipped; the rest run
//! in dependency order, up to `jobs` at once. Compute jobs are child processes (`xtask job KIND
//! CONFIG`) writing into `<out>/jobs/<key>.partial/`, renamed to `<out>/jobs/<key>/` when they finish;
//! analysis jobs write their files atomically. The lock is rewritten (atomically) after every job, so a
//! run killed at any moment resumes from the finished jobs.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use super::graph::{Graph, Job};
use super::lock::{Entry, Lock};
use super::{analysis, stage_config};

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

fn jobs_dir(out: &Path) -> PathBuf {
    out.join("jobs")
}

/// The folder of a finished compute job.
pub fn job_folder(out: &Path, key: &str) -> PathBuf {
    jobs_dir(out).join(key)
}

/// Every file under `dir`, relative to `base`, sorted.
pub fn files_under(dir: &Path, base: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("reading {}", d.display()))? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(base).expect("under base");
                out.push(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn hashes(out: &Path, files: &[String]) -> Result<BTreeMap<String, String>> {
    files
        .iter()
        .map(|f| Ok((f.clone(), emsl_io::sha256_file(&out.join(f))?)))
        .collect()
}

/// Runs one compute job in a child process and returns its output files (relative to `out`).
fn run_compute(s: &Settings, job: &Job) -> Result<Vec<String>> {
    let dir = jobs_dir(&s.out);
    let partial = dir.join(format!("{}.partial", job.key));
    let done = job_folder(&s.out, &job.key);
    for p in [&partial, &done] {
        if p.exists() {
            std::fs::remove_dir_all(p).with_context(|| format!("removing {}", p.display()))?;
        }
    }
    let config_path = dir.join(format!("{}.toml", job.key));
    let config = stage_config(&s.root, &s.out, job, &partial)?;
    emsl_io::write_atomic(&config_path, config.as_bytes())?;
    let log_path = dir.join(format!("{}.log", job.key));
    let log = std::fs::File::create(&log_path)?;
    // /proc/self/exe still reaches this binary after a rebuild replaced its file (the path would not).
    let exe = match Path::new("/proc/self/exe") {
        p if p.exists() => p.to_path_buf(),
        _ => std::env::current_exe()?,
    };
    let started = Instant::now();
    let status = std::process::Command::new(exe)
        .arg0("xtask")
        .args(["job", job.task.kind()])
        .arg(&config_path)
        .env("RAYON_NUM_THREADS", s.threads.to_string())
        .env("CANDLE_NUM_THREADS", s.threads.to_string())
        .stdout(log.try_clone()?)
        .stderr(log)
        .status()
        .context("starting a job process")?;
    if !status.success() {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(8).collect();
        bail!(
            "job {} ({}) failed with {status}; its log is {}:\n{}",
            job.key,
            job.label,
            log_path.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    // The wall time goes into the log, never into an output: outputs stay byte-identical across runs.
    let mut log = std::fs::OpenOptions::new().append(true).open(&log_path)?;
    writeln!(
        log,
        "{} {:.1} s at {} thread(s)",
        super::timings::LOG_PREFIX,
        started.elapsed().as_secs_f64(),
        s.threads
    )?;
    std::fs::rename(&partial, &done)
        .with_context(|| format!("renaming {} to {}", partial.display(), done.display()))?;
    files_under(&done, &s.out)
}

fn run_job(s: &Settings, graph: &Graph, job: &Job) -> Result<Vec<String>> {
    if job.task.is_compute() {
        run_compute(s, job)
    } else {
        analysis::run(s, graph, job)
    }
}

fn entry(graph: &Graph, job: &Job, threads: usize, outputs: BTreeMap<String, String>) -> Entry {
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

pub fn run(s: &Settings, graph: &Graph) -> Result<Report> {
    let mut lock = Lock::load(&s.out)?;
    lock.toolchain = super::lock::toolchain();
    let dir = jobs_dir(&s.out);
    std::fs::create_dir_all(&dir)?;
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
    let total_cost: f64 = pending.iter().map(|&i| graph.jobs[i].task.cost()).sum();
    let bar = ProgressBar::new(total_cost.max(1.0) as u64);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {msg} (about {eta} left)",
        )
        .expect("valid template"),
    );
    let say = |bar: &ProgressBar, line: String| {
        if bar.is_hidden() {
            eprintln!("{line}");
        } else {
            bar.println(line);
        }
    };
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
            if failure.is_none() {
                while running.len() < s.jobs {
                    let ready = graph.next_ready(&pending, &priority, |d| done.contains(d));
                    let Some(pos) = ready else { break };
                    let i = pending.remove(pos);
                    running.insert(i);
                    let tx = tx.clone();
                    scope.spawn(move || {
                        let started = Instant::now();
                        let r = run_job(s, graph, &graph.jobs[i]);
                        let _ = tx.send((i, started.elapsed().as_secs_f64(), r));
                    });
                }
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
            let (i, secs, result) = rx.recv().expect("a worker reports");
            running.remove(&i);
            let job = &graph.jobs[i];
            match result {
                Ok(files) => {
                    let outputs = hashes(&s.out, &files)?;
                    lock.jobs
                        .insert(job.key.clone(), entry(graph, job, s.threads, outputs));
                    lock.save(&s.out)?;
                    done.insert(job.key.clone());
                    ran.push(job.key.clone());
                    bar.inc(job.task.cost() as u64);
                    say(
                        &bar,
                        format!("ran {} ({}) in {secs:.1} s", job.key, job.label),
                    );
                }
                Err(e) => {
                    say(&bar, format!("FAILED {} ({})", job.key, job.label));
                    failure.get_or_insert(e);
                }
            }
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    if let Some(e) = failure {
        return Err(e.context(format!(
            "reproduce stopped after a failed job; finished jobs are kept in {} and the next run \
             resumes from them",
            s.out.join(super::lock::LOCK_FILE).display()
        )));
    }
    if !pending.is_empty() {
        bail!("{} jobs could not run (their inputs failed)", pending.len());
    }
    Ok(Report { ran, up_to_date })
}
