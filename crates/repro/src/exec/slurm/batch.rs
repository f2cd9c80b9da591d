//! What one compute job's batch job asks for (cores, memory, a time limit, from the job's recorded
//! cost) and what it runs (the job binary on the job's stage config, then the rename that marks it
//! finished).

use std::collections::BTreeMap;
use std::path::Path;

use crate::graph::{Graph, Job};
use crate::{store, timings};

/// How requests are sized from recorded costs.
#[derive(Debug, Clone)]
pub struct Sizing {
    /// Time limit = this times the recorded (or scaled) wall time...
    pub time_factor: f64,
    /// ...and never under this many minutes (Slurm counts whole minutes).
    pub min_minutes: u64,
    /// The limit of a job with nothing recorded to scale from.
    pub default_minutes: u64,
    /// The memory of a job with no recorded peak (MiB); a recorded peak asks for twice itself.
    pub default_mem_mib: u64,
}

/// A batch job's request and where its numbers come from.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub cpus: usize,
    pub mem_mib: u64,
    pub minutes: u64,
    /// "its own log", "3 timed pretrain jobs, scaled by cost" or "nothing recorded: defaults".
    pub basis: String,
}

/// The smallest memory request (MiB): the job binary alone maps about 150 MiB.
const MIN_MEM_MIB: u64 = 1024;

/// What the job logs of a results folder record, read once per submission pass: each job's own wall
/// time and peak memory, and per kind of job the slowest time per unit of the executor's cost model
/// and the largest peak among its timed jobs.
pub struct Recorded {
    own: BTreeMap<String, (f64, Option<f64>)>,
    by_kind: BTreeMap<&'static str, (usize, f64, Option<f64>)>,
}

impl Recorded {
    pub fn read(out: &Path, graph: &Graph) -> Recorded {
        let mut own = BTreeMap::new();
        let mut by_kind: BTreeMap<&'static str, (usize, f64, Option<f64>)> = BTreeMap::new();
        for job in graph.jobs.iter().filter(|j| j.task.is_compute()) {
            let Some(secs) = timings::job_seconds(out, &job.key) else {
                continue;
            };
            let peak = timings::job_peak_mib(out, &job.key);
            own.insert(job.key.clone(), (secs, peak));
            let k = by_kind.entry(job.task.kind()).or_default();
            k.0 += 1;
            k.1 = k.1.max(secs / job.task.cost().max(1.0));
            if let Some(p) = peak {
                k.2 = Some(k.2.map_or(p, |q: f64| q.max(p)));
            }
        }
        Recorded { own, by_kind }
    }
}

/// The request of `job` at `threads` threads, from what was recorded: the job's own log (an earlier
/// try of the same identity), else the timed jobs of its kind in this graph scaled by the executor's
/// cost model (the slowest per unit of cost, and the largest peak), else the defaults.
pub fn request(recorded: &Recorded, job: &Job, threads: usize, sizing: &Sizing) -> Request {
    let kind = job.task.kind();
    let (secs, peak, basis) = match (recorded.own.get(&job.key), recorded.by_kind.get(kind)) {
        (Some(&(s, peak)), _) => (Some(s), peak, "its own log".to_owned()),
        (None, Some(&(timed, rate, peak))) => {
            let basis = format!("{timed} timed {kind} job(s), scaled by cost");
            (Some(rate * job.task.cost()), peak, basis)
        }
        (None, None) => (None, None, "nothing recorded: defaults".to_owned()),
    };
    let minutes = match secs {
        Some(s) => ((s * sizing.time_factor / 60.0).ceil() as u64).max(sizing.min_minutes),
        None => sizing.default_minutes.max(sizing.min_minutes),
    }
    .max(1);
    let mem_mib = match peak {
        Some(p) => ((2.0 * p).ceil() as u64).max(MIN_MEM_MIB),
        None => sizing.default_mem_mib.max(MIN_MEM_MIB),
    };
    Request {
        cpus: threads,
        mem_mib,
        minutes,
        basis,
    }
}

/// `s` as one bash word.
fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// `s` as one bash word, quoted only where it needs to be (for commands shown to the user).
pub fn shell_word(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:=,+@%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_owned()
    } else {
        quoted(s)
    }
}

/// The batch script of `job`: the job binary on its config with its thread count, the wall-time line
/// the local runner also writes, and the rename from `.partial` that marks the job finished (a job
/// that fails or is killed leaves only the `.partial` folder, which the next submission clears).
pub fn script(out: &Path, job: &Job, binary: &Path, threads: usize) -> String {
    let config = store::config_path(out, &job.key);
    let partial = store::partial_folder(out, &job.key);
    let done = store::job_folder(out, &job.key);
    let q = |p: &Path| quoted(&p.display().to_string());
    format!(
        "#!/bin/bash\n\
         # Job {key} ({label}) of `cargo xtask reproduce --executor slurm`, written by its coordinator.\n\
         set -euo pipefail\n\
         export RAYON_NUM_THREADS={threads} CANDLE_NUM_THREADS={threads}\n\
         started=$(date +%s%N)\n\
         {binary} job {config}\n\
         ended=$(date +%s%N)\n\
         awk -v a=\"$started\" -v b=\"$ended\" 'BEGIN {{ printf \"{prefix} %.1f s at {threads} thread(s)\\n\", (b - a) / 1e9 }}'\n\
         mv -T {partial} {done}\n",
        key = job.key,
        label = job.label.replace('\n', " "),
        binary = q(binary),
        config = q(&config),
        prefix = timings::LOG_PREFIX,
        partial = q(&partial),
        done = q(&done),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::{empty_graph, pretrain, root};

    const SIZING: Sizing = Sizing {
        time_factor: 3.0,
        min_minutes: 2,
        default_minutes: 120,
        default_mem_mib: 4096,
    };

    fn log(out: &Path, key: &str, text: &str) {
        std::fs::create_dir_all(store::jobs_dir(out)).unwrap();
        std::fs::write(store::log_path(out, key), text).unwrap();
    }

    /// A job's own log sizes it; a job of the same kind with a log sizes the others by their cost;
    /// with nothing recorded the defaults apply.
    #[test]
    fn requests_come_from_recorded_costs() {
        let mut g = empty_graph(&root());
        let a = g.add("a", pretrain(1)).unwrap();
        let b = g.add("b", pretrain(2)).unwrap();
        let out = tempfile::tempdir().unwrap();
        let req = |k: &str| request(&Recorded::read(out.path(), &g), g.get(k), 1, &SIZING);
        assert_eq!(
            req(&a),
            Request {
                cpus: 1,
                mem_mib: 4096,
                minutes: 120,
                basis: "nothing recorded: defaults".into()
            }
        );
        log(
            out.path(),
            &a,
            "step 1\njob peak memory: 700 MiB\njob wall time: 100.0 s at 1 thread(s)\n",
        );
        // 100 s x 3 = 300 s: 5 minutes; twice the 700 MiB peak.
        assert_eq!(
            req(&a),
            Request {
                cpus: 1,
                mem_mib: 1400,
                minutes: 5,
                basis: "its own log".into()
            }
        );
        // b is the same kind at the same cost: scaled from a.
        let rb = req(&b);
        assert_eq!((rb.minutes, rb.mem_mib), (5, 1400));
        assert_eq!(rb.basis, "1 timed pretrain job(s), scaled by cost");
        // A short job still gets the minimum.
        log(out.path(), &a, "job wall time: 1.0 s at 1 thread(s)\n");
        assert_eq!(req(&a).minutes, 2);
        assert_eq!(req(&a).mem_mib, 4096, "no peak recorded: the default");
    }

    /// The script runs the binary on the job's config with its threads, logs the wall time in the
    /// form `--timings` reads, renames the folder only after the binary succeeded, and quotes paths.
    #[test]
    fn the_script_marks_the_job_finished_only_after_it_succeeded() {
        let mut g = empty_graph(&root());
        let a = g.add("a", pretrain(1)).unwrap();
        let out = Path::new("/shared/it's here");
        let text = script(out, g.get(&a), Path::new("/shared/bin/xtask-0123"), 2);
        assert!(text.starts_with("#!/bin/bash\n"));
        assert!(text.contains("set -euo pipefail\n"));
        assert!(text.contains("export RAYON_NUM_THREADS=2 CANDLE_NUM_THREADS=2\n"));
        let run = format!("'/shared/bin/xtask-0123' job '/shared/it'\\''s here/jobs/{a}.toml'");
        let mv = format!(
            "mv -T '/shared/it'\\''s here/jobs/{a}.partial' '/shared/it'\\''s here/jobs/{a}'"
        );
        let (r, m) = (text.find(&run).expect(&run), text.find(&mv).expect(&mv));
        assert!(r < m, "the rename comes after the job");
        assert!(text.contains("job wall time: %.1f s at 2 thread(s)"));
    }
}
