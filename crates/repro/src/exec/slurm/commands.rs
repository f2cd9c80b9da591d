//! Slurm's own commands, the only way the kit talks to a cluster: `sbatch` submits, `squeue` lists the
//! jobs the controller still holds, `sacct` the ones that ended (from accounting, or with `-c` from the
//! job-completion log where a cluster keeps no accounting), `scancel` stops.
//!
//! A controller that restarts (or a `slurmdbd` that is down) makes these fail for a while; the ones
//! whose answer the coordinator needs (`squeue`, `scancel`) are tried again with backoff for a bounded
//! time before a call gives up. `sbatch` is never simply repeated: a failed `sbatch` may still have
//! been accepted, which the next call settles by the job's name (`adopt`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

pub use super::parse::State;
use super::parse::{parse_named, parse_sacct, parse_squeue};

/// How long a failing `squeue` or `scancel` is tried again before the call gives up: a controller
/// restart takes seconds to a few minutes.
pub const RETRY_FOR: Duration = Duration::from_secs(300);
/// The first wait between two tries; each next one doubles, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(2);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Where Slurm's commands are and how long a failing one is tried again.
#[derive(Debug, Clone)]
pub struct Commands {
    /// The folder holding `sbatch`, `squeue`, `sacct` and `scancel`; `None`: found on `PATH`.
    pub dir: Option<PathBuf>,
    pub retry_for: Duration,
    pub first_backoff: Duration,
}

impl Default for Commands {
    fn default() -> Self {
        Commands {
            dir: None,
            retry_for: RETRY_FOR,
            first_backoff: FIRST_BACKOFF,
        }
    }
}

/// One batch job to submit.
pub struct Submission<'a> {
    pub name: String,
    pub script: &'a Path,
    pub log: &'a Path,
    pub workdir: &'a Path,
    pub cpus: usize,
    pub mem_mib: u64,
    pub minutes: u64,
    /// Slurm job ids that must complete successfully first (`afterok`).
    pub after: Vec<String>,
    pub partition: Option<&'a str>,
    pub account: Option<&'a str>,
}

/// A path as one sbatch option value; the paths must be UTF-8 (sbatch takes them as text).
fn text<'p>(option: &str, path: &'p Path) -> Result<&'p str> {
    path.to_str().with_context(|| {
        format!(
            "the sbatch option {option} would be {}, which is not UTF-8: choose an --out (and a \
             checkout) whose path is",
            path.display()
        )
    })
}

/// A path for an sbatch option that takes a filename pattern (`--output`, `--error`, `--input`): Slurm
/// replaces `%j`, `%x`, ... there and reads `%%` as one `%`, so each `%` is doubled. A backslash turns
/// every pattern off and is itself dropped (Slurm's `expand_stdio_fields`), so such a path cannot be
/// given at all. `--chdir` and the script's path are taken as they are.
pub fn pattern_path(option: &str, path: &Path) -> Result<String> {
    let p = text(option, path)?;
    if p.contains('\\') {
        bail!(
            "the sbatch option {option} would be {p}, which has a backslash: Slurm drops backslashes \
             from {option} (and then reads no % pattern), so the job's log would go elsewhere; \
             choose an --out whose path has no backslash"
        );
    }
    Ok(p.replace('%', "%%"))
}

impl Submission<'_> {
    /// sbatch's arguments (the script last); an error names a path sbatch cannot be given.
    pub fn args(&self) -> Result<Vec<String>> {
        let mut a = vec![
            "--parsable".to_owned(),
            format!("--job-name={}", self.name),
            format!("--output={}", pattern_path("--output", self.log)?),
            format!("--chdir={}", text("--chdir", self.workdir)?),
            "--nodes=1".to_owned(),
            "--ntasks=1".to_owned(),
            format!("--cpus-per-task={}", self.cpus),
            format!("--mem={}M", self.mem_mib),
            format!("--time={}", self.minutes),
            // A dependant of a failed job is cancelled rather than left pending forever.
            "--kill-on-invalid-dep=yes".to_owned(),
        ];
        if !self.after.is_empty() {
            a.push(format!("--dependency=afterok:{}", self.after.join(":")));
        }
        if let Some(p) = self.partition {
            a.push(format!("--partition={p}"));
        }
        if let Some(acc) = self.account {
            a.push(format!("--account={acc}"));
        }
        a.push(text("the script", self.script)?.to_owned());
        Ok(a)
    }
}

/// What one run of a command gave: its standard output, or why it failed.
enum Ran {
    Ok(String),
    Failed(String),
}

impl Commands {
    fn program(&self, name: &str) -> PathBuf {
        match &self.dir {
            Some(d) => d.join(name),
            None => PathBuf::from(name),
        }
    }

    /// Runs a Slurm command once; an error (it could not be started at all) says where to look.
    fn run(&self, name: &str, args: &[String]) -> Result<Ran> {
        let out = Command::new(self.program(name))
            .args(args)
            .output()
            .with_context(|| {
                format!(
                    "running {name}: is Slurm installed here and is this a machine that may submit \
                     jobs? (`cluster/one-node.sh up` starts a one-node test cluster)"
                )
            })?;
        Ok(if out.status.success() {
            Ran::Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Ran::Failed(format!(
                "{name} {} exited with {}: {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        })
    }

    fn checked(&self, name: &str, args: &[String]) -> Result<String> {
        match self.run(name, args)? {
            Ran::Ok(out) => Ok(out),
            Ran::Failed(why) => bail!("{why}"),
        }
    }

    /// Runs a Slurm command until it succeeds, waiting longer after each failure, for at most
    /// `retry_for`; then the error names the command, how long it was tried and its last stderr.
    fn retried(&self, name: &str, args: &[String]) -> Result<String> {
        let started = Instant::now();
        let mut wait = self.first_backoff;
        let mut tries = 0;
        loop {
            tries += 1;
            let why = match self.run(name, args)? {
                Ran::Ok(out) => return Ok(out),
                Ran::Failed(why) => why,
            };
            let spent = started.elapsed();
            if spent + wait > self.retry_for {
                bail!(
                    "{why}\n{name} failed {tries} time(s) over {:.0} s (is Slurm's controller down?); \
                     the finished jobs are recorded and the next call goes on from them \
                     (--slurm-retry sets how long a failing Slurm command is tried, now {} s)",
                    spent.as_secs_f64(),
                    self.retry_for.as_secs()
                );
            }
            eprintln!("slurm: {why}; trying again in {:.0} s", wait.as_secs_f64());
            std::thread::sleep(wait);
            wait = (wait * 2).min(MAX_BACKOFF);
        }
    }

    /// Submits a job; returns its Slurm job id.
    pub fn sbatch(&self, sub: &Submission) -> Result<String> {
        let out = self.checked("sbatch", &sub.args()?)?;
        // `--parsable` prints `id` or `id;cluster`.
        let id = out.trim().split(';').next().unwrap_or("").to_owned();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            bail!(
                "sbatch printed '{}' where a job id was expected",
                out.trim()
            );
        }
        Ok(id)
    }

    /// Cancels jobs (nothing to do for none).
    pub fn scancel(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.retried("scancel", ids).map(|_| ())
    }

    /// `squeue` of this user's jobs (all states the controller holds), in `format`, with `more`
    /// options.
    fn squeue(&self, format: &str, more: &[String]) -> Result<String> {
        let user = self.user()?;
        let mut args: Vec<String> = ["-h", "-t", "all", "-u", &user].map(str::to_owned).to_vec();
        args.extend_from_slice(more);
        args.extend(["-o".to_owned(), format.to_owned()]);
        self.retried("squeue", &args)
    }

    fn user(&self) -> Result<String> {
        let out = Command::new("id")
            .arg("-un")
            .output()
            .context("running id -un")?;
        if !out.status.success() {
            bail!("id -un exited with {}", out.status);
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The states of `ids` that Slurm still knows: the controller's queue first, then accounting for
    /// the ones that ended. An id missing from the map is one Slurm has no record of.
    pub fn states(&self, ids: &BTreeSet<String>) -> Result<BTreeMap<String, State>> {
        if ids.is_empty() {
            return Ok(BTreeMap::new());
        }
        let mut found = parse_squeue(&self.squeue("%i|%T|%r", &[])?, ids);
        let ended: Vec<String> = ids
            .iter()
            .filter(|id| !found.contains_key(*id))
            .cloned()
            .collect();
        if !ended.is_empty() {
            let fields = ["-n", "-P", "-X", "-o", "JobID,State,ExitCode", "-j"].map(str::to_owned);
            let mut args: Vec<String> = fields.to_vec();
            args.push(ended.join(","));
            // Accounting first (what real clusters keep); where it is off, the job-completion log.
            // Not tried again: a cluster with neither fails it every time, and what it says only
            // words the report of a job that ended without finishing (its folder says that).
            let ran = match self.run("sacct", &args)? {
                Ran::Ok(out) => Some(out),
                Ran::Failed(_) => {
                    args.insert(0, "-c".to_owned());
                    match self.run("sacct", &args)? {
                        Ran::Ok(out) => Some(out),
                        Ran::Failed(_) => None,
                    }
                }
            };
            if let Some(out) = ran {
                found.extend(parse_sacct(&out, ids));
            }
        }
        Ok(found)
    }

    /// The jobs the controller holds under each of `names` (every job not ended, and the ones that
    /// ended recently): by name, each job's id and state.
    pub fn named(
        &self,
        names: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, Vec<(String, State)>>> {
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        let list = names.iter().cloned().collect::<Vec<_>>().join(",");
        let text = self.squeue("%i|%j|%T|%r", &[format!("--name={list}")])?;
        Ok(parse_named(&text, names))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submission<'a>(log: &'a Path, workdir: &'a Path, script: &'a Path) -> Submission<'a> {
        Submission {
            name: "emsl-pretrain-0123-00c0ffee".into(),
            script,
            log,
            workdir,
            cpus: 1,
            mem_mib: 2048,
            minutes: 12,
            after: vec!["7".into(), "9".into()],
            partition: Some("cpu"),
            account: None,
        }
    }

    /// The submission asks for what the job needs, waits on its inputs and cancels itself when one
    /// of them fails.
    #[test]
    fn a_submission_names_its_resources_and_dependencies() {
        let log = Path::new("/shared/out/jobs/pretrain-0123.log");
        let script = Path::new("/shared/out/jobs/pretrain-0123.sbatch");
        let a = submission(log, Path::new("/shared/kit"), script)
            .args()
            .unwrap();
        for want in [
            "--job-name=emsl-pretrain-0123-00c0ffee",
            "--cpus-per-task=1",
            "--mem=2048M",
            "--time=12",
            "--dependency=afterok:7:9",
            "--kill-on-invalid-dep=yes",
            "--partition=cpu",
            "--output=/shared/out/jobs/pretrain-0123.log",
            "--chdir=/shared/kit",
        ] {
            assert!(a.contains(&want.to_owned()), "{want} not in {a:?}");
        }
        assert!(!a.iter().any(|x| x.starts_with("--account")));
        assert_eq!(a.last().unwrap(), "/shared/out/jobs/pretrain-0123.sbatch");
    }

    /// A `%` in the results folder is doubled where sbatch reads filename patterns (`--output`: `%j`
    /// would become the job id) and kept as it is where it does not (`--chdir`, the script).
    #[test]
    fn a_percent_in_a_path_is_escaped_only_where_sbatch_expands_it() {
        let log = Path::new("/shared/run%j 100%/jobs/pretrain-0123.log");
        let script = Path::new("/shared/run%j 100%/jobs/pretrain-0123.sbatch");
        let a = submission(log, Path::new("/shared/kit%x"), script)
            .args()
            .unwrap();
        assert!(
            a.contains(&"--output=/shared/run%%j 100%%/jobs/pretrain-0123.log".to_owned()),
            "{a:?}"
        );
        assert!(a.contains(&"--chdir=/shared/kit%x".to_owned()), "{a:?}");
        assert_eq!(
            a.last().unwrap(),
            "/shared/run%j 100%/jobs/pretrain-0123.sbatch"
        );
    }

    /// A backslash cannot reach sbatch's `--output` (Slurm drops it): refused, naming the option,
    /// the path and the way out.
    #[test]
    fn a_backslash_in_the_log_path_is_refused() {
        let log = Path::new(r"/shared/a\b/jobs/x.log");
        let err = submission(log, Path::new("/k"), Path::new("/s"))
            .args()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(r"--output would be /shared/a\b/jobs/x.log"),
            "{err}"
        );
        assert!(
            err.contains("choose an --out whose path has no backslash"),
            "{err}"
        );
    }
}
