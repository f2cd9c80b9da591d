//! Where the time of a run went. Each compute job appends its wall time to its log (never to an output,
//! which must stay byte-identical); `cargo xtask reproduce --timings` sums them per figure and replays
//! each figure's jobs through the scheduler to estimate how long `--figure NAME` takes from nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::Path;

use crate::graph::Graph;

/// The line a finished compute job's log ends with: `job wall time: 12.3 s at 1 thread(s)`.
pub const LOG_PREFIX: &str = "job wall time:";

/// ` (N what)` after a row with jobs that logged no time, nothing otherwise.
fn untimed(missing: usize, what: &str) -> String {
    if missing > 0 {
        format!(" ({missing} {what})")
    } else {
        String::new()
    }
}

/// The line the job binary ends its output with: `job peak memory: 312 MiB` (its peak resident set).
pub const PEAK_MEMORY_PREFIX: &str = "job peak memory:";

/// The number after the last line of a finished compute job's log that starts with `prefix`.
fn logged(out: &Path, key: &str, prefix: &str) -> Option<f64> {
    let log = std::fs::read_to_string(out.join("jobs").join(format!("{key}.log"))).ok()?;
    let line = log.lines().rev().find(|l| l.starts_with(prefix))?;
    line[prefix.len()..].split_whitespace().next()?.parse().ok()
}

/// The recorded wall time of a finished compute job, if its log has one.
pub fn job_seconds(out: &Path, key: &str) -> Option<f64> {
    logged(out, key, LOG_PREFIX)
}

/// The recorded peak memory (MiB) of a finished compute job, if its log has one.
pub fn job_peak_mib(out: &Path, key: &str) -> Option<f64> {
    logged(out, key, PEAK_MEMORY_PREFIX)
}

/// The finishing time of `subset` on `workers` workers that, like the executor, always take the ready
/// job with the longest path to the end.
pub fn replay(graph: &Graph, subset: &BTreeSet<usize>, secs: &[f64], workers: usize) -> f64 {
    let priority = graph.path_lengths(|i| if subset.contains(&i) { secs[i] } else { 0.0 });
    let mut pending: Vec<usize> = subset.iter().copied().collect();
    let mut done: BTreeSet<usize> = BTreeSet::new();
    let mut running: Vec<(f64, usize)> = Vec::new();
    let mut now = 0.0_f64;
    loop {
        while running.len() < workers.max(1) {
            let ready =
                graph.next_ready(&pending, &priority, |d| done.contains(&graph.position(d)));
            let Some(pos) = ready else { break };
            let i = pending.remove(pos);
            running.push((now + secs[i], i));
        }
        let Some(first) = (0..running.len()).min_by(|&a, &b| running[a].0.total_cmp(&running[b].0))
        else {
            return now;
        };
        let (t, i) = running.swap_remove(first);
        now = t;
        done.insert(i);
    }
}

/// A Markdown table: per figure, its jobs, their summed time (jobs shared between figures count in
/// each) and the replayed wall time of the figure alone on `workers` workers; then the whole run.
pub fn report(
    graph: &Graph,
    figure_jobs: &BTreeMap<String, String>,
    out: &Path,
    workers: usize,
) -> String {
    let secs: Vec<f64> = graph
        .jobs
        .iter()
        .map(|j| {
            if j.task.is_compute() {
                job_seconds(out, &j.key).unwrap_or(f64::NAN)
            } else {
                0.0 // tables and plots: well under a second
            }
        })
        .collect();
    let mut text = format!(
        "| figure | jobs | compute time (core-min) | wall time alone, {workers} workers (min) |\n|---|---|---|---|\n"
    );
    let mut row = |name: &str, subset: &BTreeSet<usize>| {
        let missing = subset.iter().filter(|&&i| secs[i].is_nan()).count();
        let known: Vec<f64> = secs
            .iter()
            .map(|s| if s.is_nan() { 0.0 } else { *s })
            .collect();
        let total: f64 = subset.iter().map(|&i| known[i]).sum();
        let wall = replay(graph, subset, &known, workers);
        let note = untimed(missing, "jobs without a recorded time");
        let _ = writeln!(
            text,
            "| {name} | {} | {:.1} | {:.1}{note} |",
            subset.len(),
            total / 60.0,
            wall / 60.0
        );
    };
    for (name, key) in figure_jobs {
        row(name, &graph.needed_by(key));
    }
    row("all figures", &(0..graph.jobs.len()).collect());
    // And by kind of job: where the compute time goes.
    let mut kinds: BTreeMap<&str, (usize, f64, usize)> = BTreeMap::new();
    for (j, s) in graph.jobs.iter().zip(&secs) {
        let e = kinds.entry(j.task.kind()).or_default();
        e.0 += 1;
        if s.is_nan() {
            e.2 += 1;
        } else {
            e.1 += s;
        }
    }
    text.push_str(
        "\n| kind | jobs | compute time (core-min) | mean per job (s) |\n|---|---|---|---|\n",
    );
    for (kind, (n, total, missing)) in kinds {
        let timed = n - missing;
        let mean = if timed > 0 {
            total / timed as f64
        } else {
            f64::NAN
        };
        let note = untimed(missing, "without a recorded time");
        let _ = writeln!(
            text,
            "| {kind} | {n} | {:.1} | {mean:.1}{note} |",
            total / 60.0
        );
    }
    text
}
