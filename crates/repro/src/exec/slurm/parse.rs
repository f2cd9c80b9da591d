//! What Slurm's listings say: `squeue`'s and `sacct`'s lines read into each job's [`State`].

use std::collections::{BTreeMap, BTreeSet};

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
    /// Slurm's name of the state (PENDING, RUNNING, FAILED, ...).
    pub fn name(&self) -> &str {
        match self {
            State::Active { state, .. } | State::Ended { state, .. } => state,
        }
    }

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

/// A state as squeue prints it, with its reason.
fn squeue_state(state: &str, reason: Option<&str>) -> State {
    let state = state.to_owned();
    if ACTIVE.contains(&state.as_str()) {
        State::Active {
            state,
            reason: reason.unwrap_or("").to_owned(),
        }
    } else {
        State::Ended {
            state,
            exit: String::new(),
        }
    }
}

/// `squeue -o %i|%T|%r` lines of the jobs in `ids`.
pub fn parse_squeue(text: &str, ids: &BTreeSet<String>) -> BTreeMap<String, State> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.trim().split('|');
        let (Some(id), Some(state), reason) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if ids.contains(id) {
            out.insert(id.to_owned(), squeue_state(state, reason));
        }
    }
    out
}

/// `squeue -o %i|%j|%T|%r` lines of the jobs named one of `names`: by name, each job's id and state
/// (more than one where a name was submitted more than once).
pub fn parse_named(text: &str, names: &BTreeSet<String>) -> BTreeMap<String, Vec<(String, State)>> {
    let mut out: BTreeMap<String, Vec<(String, State)>> = BTreeMap::new();
    for line in text.lines() {
        let mut f = line.trim().split('|');
        let (Some(id), Some(name), Some(state), reason) = (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        if names.contains(name) {
            let jobs = out.entry(name.to_owned()).or_default();
            jobs.push((id.to_owned(), squeue_state(state, reason)));
        }
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

    /// squeue lines by name: each name's jobs (two for a name submitted twice), other names ignored.
    #[test]
    fn named_squeue_lines_group_by_name() {
        let text = "30|emsl-a-1|PENDING|Dependency\n31|emsl-b-2|RUNNING|None\n\
                    32|emsl-b-2|FAILED|NonZeroExitCode\n33|other|RUNNING|None\n";
        let n = parse_named(text, &ids(&["emsl-a-1", "emsl-b-2", "emsl-c-3"]));
        assert_eq!(n.len(), 2, "{n:?}");
        assert_eq!(n["emsl-a-1"].len(), 1);
        assert_eq!(n["emsl-a-1"][0].0, "30");
        let b: Vec<&str> = n["emsl-b-2"].iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(b, ["31", "32"]);
        assert!(matches!(&n["emsl-b-2"][1].1, State::Ended { state, .. } if state == "FAILED"));
    }
}
