//! Slurm's own commands, the only way the kit talks to a cluster: `sbatch` submits, `squeue` lists the
//! jobs the controller still holds, `sacct` the ones that ended (from accounting, or with `-c` from the
//! job-completion log where a cluster keeps no accounting), `scancel` stops.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

/// What Slurm says of one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Queued or running: Slurm's state (PENDING, RUNNING, ...) and its reason (`Dependency`, ...).
    Active { state: String, reason: String },
    /// Ended: COMPLETED, FAILED, TIMEOUT, CANCELLED, OUT_OF_MEMORY, NODE_FAIL, ... and the exit code
    /// where Slurm gives one.
    Ended { state: String, exit: String },
}

impl State {
    /// A pending job whose dependency failed, on a cluster that keeps such jobs (Slurm's default
    /// without `--kill-on-invalid-dep`): it would wait forever.
    pub fn never_runs(&self) -> bool {
        matches!(self, State::Active { reason, .. } if reason == "DependencyNeverSatisfied")
    }
}

/// Slurm's states of jobs that have not ended (squeue's long names).
const ACTIVE: &[&str] = &[
    "PENDING",
    "RUNNING",
    "CONFIGURING",
    "COMPLETING",
    "REQUEUED",
    "REQUEUE_HOLD",
    "REQUEUE_FED",
    "RESIZING",
    "SUSPENDED",
    "STOPPED",
    "SIGNALING",
    "STAGE_OUT",
    "RESV_DEL_HOLD",
];

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

impl Submission<'_> {
    /// sbatch's arguments (the script last).
    pub fn args(&self) -> Vec<String> {
        let mut a = vec![
            "--parsable".to_owned(),
            format!("--job-name={}", self.name),
            format!("--output={}", self.log.display()),
            format!("--chdir={}", self.workdir.display()),
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
        a.push(self.script.display().to_string());
        a
    }
}

/// Runs a Slurm command and returns its standard output; an error names the command and says what it
/// printed.
fn slurm(program: &str, args: &[String]) -> Result<std::process::Output> {
    Command::new(program).args(args).output().with_context(|| {
        format!(
            "running {program}: is Slurm installed here and is this a machine that may submit jobs? \
             (`cluster/one-node.sh up` starts a one-node test cluster)"
        )
    })
}

fn checked(program: &str, args: &[String]) -> Result<String> {
    let out = slurm(program, args)?;
    if !out.status.success() {
        bail!(
            "{program} {} exited with {}: {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Submits a job; returns its Slurm job id.
pub fn sbatch(sub: &Submission) -> Result<String> {
    let out = checked("sbatch", &sub.args())?;
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
pub fn scancel(ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    checked("scancel", ids).map(|_| ())
}

/// The states of `ids` that Slurm still knows: the controller's queue first, then accounting for the
/// ones that ended. An id missing from the map is one Slurm has no record of.
pub fn states(ids: &BTreeSet<String>) -> Result<BTreeMap<String, State>> {
    if ids.is_empty() {
        return Ok(BTreeMap::new());
    }
    let user = checked("id", &["-un".to_owned()])?.trim().to_owned();
    let queue = checked(
        "squeue",
        &["-h", "-t", "all", "-u", &user, "-o", "%i|%T|%r"].map(str::to_owned),
    )?;
    let mut found = parse_squeue(&queue, ids);
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
        let out = match slurm("sacct", &args)? {
            o if o.status.success() => o,
            _ => {
                args.insert(0, "-c".to_owned());
                slurm("sacct", &args)?
            }
        };
        if out.status.success() {
            found.extend(parse_sacct(&String::from_utf8_lossy(&out.stdout), ids));
        }
    }
    Ok(found)
}

/// `squeue -o %i|%T|%r` lines of the jobs in `ids`.
pub fn parse_squeue(text: &str, ids: &BTreeSet<String>) -> BTreeMap<String, State> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.trim().split('|');
        let (Some(id), Some(state), reason) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if !ids.contains(id) {
            continue;
        }
        let state = state.to_owned();
        let reason = reason.unwrap_or("").to_owned();
        let s = if ACTIVE.contains(&state.as_str()) {
            State::Active { state, reason }
        } else {
            State::Ended {
                state,
                exit: String::new(),
            }
        };
        out.insert(id.to_owned(), s);
    }
    out
}

/// `sacct -P -o JobID,State,ExitCode` lines of the jobs in `ids` (not their steps, `ID.batch`); the
/// state's first word (`CANCELLED by 0` is CANCELLED).
pub fn parse_sacct(text: &str, ids: &BTreeSet<String>) -> BTreeMap<String, State> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.trim().split('|');
        let (Some(id), Some(state)) = (f.next(), f.next()) else {
            continue;
        };
        if !ids.contains(id) {
            continue;
        }
        let state = state.split_whitespace().next().unwrap_or("").to_owned();
        let exit = f.next().unwrap_or("").to_owned();
        let s = if ACTIVE.contains(&state.as_str()) {
            State::Active {
                state,
                reason: String::new(),
            }
        } else {
            State::Ended { state, exit }
        };
        out.insert(id.to_owned(), s);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn ids(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    /// squeue lines as Slurm 22.05 prints them: the kit's jobs are read, other users' and other runs'
    /// ignored; a finished job still in the controller's memory is ended.
    #[test]
    fn squeue_lines_become_states() {
        let text = "12|PENDING|Dependency\n13|RUNNING|None\n14|COMPLETED|None\n99|RUNNING|None\n\
                    15|PENDING|DependencyNeverSatisfied\n";
        let s = parse_squeue(text, &ids(&["12", "13", "14", "15"]));
        assert_eq!(
            s["12"],
            State::Active {
                state: "PENDING".into(),
                reason: "Dependency".into()
            }
        );
        assert!(matches!(&s["13"], State::Active { state, .. } if state == "RUNNING"));
        assert!(matches!(&s["14"], State::Ended { state, .. } if state == "COMPLETED"));
        assert!(!s.contains_key("99"));
        assert!(s["15"].never_runs());
        assert!(!s["12"].never_runs());
    }

    /// sacct lines: steps are skipped, `CANCELLED by UID` is CANCELLED, the exit code is kept.
    #[test]
    fn sacct_lines_become_states() {
        let text =
            "20|TIMEOUT|0:0\n20.batch|CANCELLED|0:15\n21|CANCELLED by 0|0:0\n22|FAILED|1:0\n\
                    23|OUT_OF_MEMORY|0:125\n";
        let s = parse_sacct(text, &ids(&["20", "21", "22", "23"]));
        assert_eq!(
            s["20"],
            State::Ended {
                state: "TIMEOUT".into(),
                exit: "0:0".into()
            }
        );
        assert!(matches!(&s["21"], State::Ended { state, .. } if state == "CANCELLED"));
        assert!(matches!(&s["22"], State::Ended { exit, .. } if exit == "1:0"));
        assert!(matches!(&s["23"], State::Ended { state, .. } if state == "OUT_OF_MEMORY"));
        assert_eq!(s.len(), 4);
    }

    /// The submission asks for what the job needs, waits on its inputs and cancels itself when one
    /// of them fails.
    #[test]
    fn a_submission_names_its_resources_and_dependencies() {
        let sub = Submission {
            name: "emsl-pretrain-0123".into(),
            script: Path::new("/shared/out/jobs/pretrain-0123.sbatch"),
            log: Path::new("/shared/out/jobs/pretrain-0123.log"),
            workdir: Path::new("/shared/kit"),
            cpus: 1,
            mem_mib: 2048,
            minutes: 12,
            after: vec!["7".into(), "9".into()],
            partition: Some("cpu"),
            account: None,
        };
        let a = sub.args();
        for want in [
            "--cpus-per-task=1",
            "--mem=2048M",
            "--time=12",
            "--dependency=afterok:7:9",
            "--kill-on-invalid-dep=yes",
            "--partition=cpu",
            "--output=/shared/out/jobs/pretrain-0123.log",
        ] {
            assert!(a.contains(&want.to_owned()), "{want} not in {a:?}");
        }
        assert!(!a.iter().any(|x| x.starts_with("--account")));
        assert_eq!(a.last().unwrap(), "/shared/out/jobs/pretrain-0123.sbatch");
    }
}
