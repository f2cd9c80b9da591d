//! What the Slurm coordinator keeps beside the job store on the shared filesystem: per submitted job
//! its Slurm id (`jobs/<key>.slurm`, present while the job is queued or running) and batch script
//! (`jobs/<key>.sbatch`), and the job binary every batch job runs (`.slurm/bin/`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::store;

/// The record of a submitted job: its Slurm id.
pub fn record_path(out: &Path, key: &str) -> PathBuf {
    store::jobs_dir(out).join(format!("{key}.slurm"))
}

pub fn script_path(out: &Path, key: &str) -> PathBuf {
    store::jobs_dir(out).join(format!("{key}.sbatch"))
}

pub fn read_record(out: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(record_path(out, key)).ok()?;
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
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
        assert_eq!(
            super::read_record(out.path(), "pretrain-0123456789ab").as_deref(),
            Some("17")
        );
        let err = format!("{:#}", super::refuse_if_submitted(out.path()).unwrap_err());
        assert!(err.contains("1 job(s) submitted to Slurm"), "{err}");
        assert!(err.contains("pretrain-0123456789ab"), "{err}");
        assert!(err.contains("--executor slurm --status"), "{err}");
    }
}
