//! The job store of a results folder: `<out>/jobs/<key>/` holds a finished compute job's outputs,
//! `<key>.partial/` one being written, `<key>.toml` its stage config and `<key>.log` its log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

pub fn jobs_dir(out: &Path) -> PathBuf {
    out.join(JOBS_DIR)
}

/// The folder of a results folder that holds the job folders, logs and configs.
pub const JOBS_DIR: &str = "jobs";

/// Removes every folder and file of `out`'s jobs folder (job folders, logs, configs, scripts) whose
/// job key `keep` refuses.
pub fn remove_jobs_unless(out: &Path, keep: impl Fn(&str) -> bool) -> Result<()> {
    let jobs = jobs_dir(out);
    if !jobs.is_dir() {
        return Ok(());
    }
    for e in std::fs::read_dir(&jobs).with_context(|| format!("listing {}", jobs.display()))? {
        let p = e?.path();
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if !keep(name.split('.').next().unwrap_or("")) {
            if p.is_dir() {
                std::fs::remove_dir_all(&p)?;
            } else {
                std::fs::remove_file(&p)?;
            }
        }
    }
    Ok(())
}

/// The folder of a finished compute job.
pub fn job_folder(out: &Path, key: &str) -> PathBuf {
    jobs_dir(out).join(key)
}

/// The folder a compute job writes into until it has finished.
pub fn partial_folder(out: &Path, key: &str) -> PathBuf {
    jobs_dir(out).join(format!("{key}.partial"))
}

pub fn config_path(out: &Path, key: &str) -> PathBuf {
    jobs_dir(out).join(format!("{key}.toml"))
}

pub fn log_path(out: &Path, key: &str) -> PathBuf {
    jobs_dir(out).join(format!("{key}.log"))
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

/// The sha256 of each of `files` (relative to `out`).
pub fn hashes(out: &Path, files: &[String]) -> Result<BTreeMap<String, String>> {
    files
        .iter()
        .map(|f| Ok((f.clone(), emsl_io::sha256_file(&out.join(f))?)))
        .collect()
}
