//! What the Slurm coordinator keeps beside the job store on the shared filesystem: per submitted job
//! its Slurm id (`jobs/<key>.slurm`, present while the job is queued or running) and batch script
//! (`jobs/<key>.sbatch`), and the job binary every batch job runs (`.slurm/bin/`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::commands::State;
use crate::graph::Job;
use crate::store;

/// The record of a submitted job: the name it is submitted under and its Slurm id.
pub fn record_path(out: &Path, key: &str) -> PathBuf {
    store::jobs_dir(out).join(format!("{key}.slurm"))
}

pub fn script_path(out: &Path, key: &str) -> PathBuf {
    store::jobs_dir(out).join(format!("{key}.sbatch"))
}

/// What `jobs/<key>.slurm` holds: the name the job is submitted under, written before `sbatch` runs
/// (the intent to submit it), and its Slurm id, added once `sbatch` answered. A record with a name and
/// no id is a submission whose coordinator stopped in between; the next call asks Slurm for a job of
/// that name (`adopt`). A file of a bare id is one written before names were recorded.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Record {
    pub name: Option<String>,
    pub id: Option<String>,
}

pub fn read(out: &Path, key: &str) -> Option<Record> {
    let text = std::fs::read_to_string(record_path(out, key)).ok()?;
    let mut r = Record::default();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match line.split_once(' ') {
            Some(("name", name)) => r.name = Some(name.trim().to_owned()),
            Some(("id", id)) => r.id = Some(id.trim().to_owned()),
            _ => r.id = Some(line.to_owned()),
        }
    }
    Some(r)
}

/// The Slurm id of a submitted job, if `sbatch` answered.
pub fn read_record(out: &Path, key: &str) -> Option<String> {
    read(out, key)?.id
}

/// Writes a job's record (atomically and durably: the intent must be on disk before `sbatch` runs).
pub fn write_record(out: &Path, key: &str, name: &str, id: Option<&str>) -> Result<()> {
    let mut text = format!("name {name}\n");
    if let Some(id) = id {
        text.push_str(&format!("id {id}\n"));
    }
    emsl_io::write_atomic(&record_path(out, key), text.as_bytes())?;
    Ok(())
}

/// The local executor must not clear the folders of jobs a cluster is still writing.
pub fn refuse_if_submitted(out: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(store::jobs_dir(out)) else {
        return Ok(());
    };
    let mut submitted: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter_map(|n| n.strip_suffix(".slurm").map(str::to_owned))
        .collect();
    if submitted.is_empty() {
        return Ok(());
    }
    submitted.sort();
    bail!(
        "{} has {} job(s) submitted to Slurm and not collected yet (first: {}); collect them with \
         `cargo xtask reproduce --executor slurm --status` (or cancel them with scancel and delete \
         {}/*.slurm) before running locally",
        out.display(),
        submitted.len(),
        submitted[0],
        store::jobs_dir(out).display()
    )
}

/// The job binary on the shared filesystem: a copy of this one under `<out>/.slurm/bin/`, named by its
/// hash, so that a rebuild never swaps the binary under jobs still queued.
pub fn install_binary(out: &Path, binary: &Path) -> Result<PathBuf> {
    let hash = emsl_io::sha256_file(binary)?;
    let dir = out.join(".slurm").join("bin");
    let dest = dir.join(format!("xtask-{}", &hash[..12]));
    if !dest.exists() {
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".xtask-{}.tmp", &hash[..12]));
        std::fs::copy(binary, &tmp)
            .with_context(|| format!("copying {} to {}", binary.display(), tmp.display()))?;
        std::fs::rename(&tmp, &dest)?;
    }
    Ok(dest)
}

/// The last lines of a log, indented, for a report.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(8).collect();
    tail.into_iter()
        .rev()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The report of a job that ended without finishing: its key, label, Slurm state and log; or, for a
/// job Slurm cancelled because an input failed, that input.
pub fn report(
    out: &Path,
    job: &Job,
    id: &str,
    state: Option<&State>,
    cause: Option<&String>,
) -> String {
    if let Some(input) = cause {
        return format!(
            "job {} ({}) was not run: its input {input} failed (Slurm job {id} cancelled)",
            job.key, job.label
        );
    }
    let state = match state {
        Some(State::Ended { state, exit }) if !exit.is_empty() => format!("{state} (exit {exit})"),
        Some(State::Ended { state, .. }) => state.clone(),
        Some(State::Active { state, reason }) => format!("{state} ({reason})"),
        None => "ended, and Slurm keeps no record of how".to_owned(),
    };
    let log = store::log_path(out, &job.key);
    format!(
        "job {} ({}) failed on Slurm: {state} (Slurm job {id}); its log is {}:\n{}",
        job.key,
        job.label,
        log.display(),
        log_tail(&log)
    )
}

#[cfg(test)]
mod tests {
    /// A results folder with a job submitted to Slurm and not collected is refused to the local
    /// executor (which would clear the folder the cluster writes), naming the job and the way out.
    #[test]
    fn the_local_executor_refuses_a_folder_with_jobs_on_slurm() {
        let out = tempfile::tempdir().unwrap();
        super::refuse_if_submitted(out.path()).unwrap();
        std::fs::create_dir_all(crate::store::jobs_dir(out.path())).unwrap();
        std::fs::write(
            super::record_path(out.path(), "pretrain-0123456789ab"),
            "17\n",
        )
        .unwrap();
        // A record of the form before names were written is still read.
        assert_eq!(
            super::read_record(out.path(), "pretrain-0123456789ab").as_deref(),
            Some("17")
        );
        let err = format!("{:#}", super::refuse_if_submitted(out.path()).unwrap_err());
        assert!(err.contains("1 job(s) submitted to Slurm"), "{err}");
        assert!(err.contains("pretrain-0123456789ab"), "{err}");
        assert!(err.contains("--executor slurm --status"), "{err}");
    }

    /// An intent (a name, no id) has no Slurm id yet; the id written after `sbatch` is read back with
    /// the name.
    #[test]
    fn a_record_holds_the_intent_then_the_id() {
        let out = tempfile::tempdir().unwrap();
        let (o, key) = (out.path(), "pretrain-0123456789ab");
        super::write_record(o, key, "emsl-pretrain-0123456789ab-1f2e3d4c", None).unwrap();
        let r = super::read(o, key).unwrap();
        assert_eq!(
            r.name.as_deref(),
            Some("emsl-pretrain-0123456789ab-1f2e3d4c")
        );
        assert_eq!(super::read_record(o, key), None);
        super::write_record(o, key, "emsl-pretrain-0123456789ab-1f2e3d4c", Some("42")).unwrap();
        assert_eq!(super::read_record(o, key).as_deref(), Some("42"));
        assert!(super::read(o, key).unwrap().name.is_some());
    }
}
