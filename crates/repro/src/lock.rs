//! `repro.lock`: per job, its identity, inputs, resolved config, outputs with their sha256 and the
//! thread count; with the toolchain at the top. Sorted and human-readable (TOML). And the folder lock
//! that keeps two `reproduce` runs out of one output folder.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

pub const LOCK_FILE: &str = "repro.lock";
pub const LOCK_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub identity: String,
    pub kind: String,
    pub label: String,
    /// Rayon threads the job ran with (results are bit-exact only at the same count).
    pub threads: usize,
    /// `dataset <name> <sha256>` and `job <key> <identity>` lines.
    pub inputs: Vec<String>,
    /// The job's resolved config.
    pub config: toml::Value,
    /// Output files relative to the results folder, with their sha256.
    pub outputs: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    pub version: u32,
    pub toolchain: String,
    pub jobs: BTreeMap<String, Entry>,
}

impl Lock {
    pub fn load(dir: &Path) -> Result<Lock> {
        let path = dir.join(LOCK_FILE);
        if !path.exists() {
            return Ok(Lock {
                version: LOCK_VERSION,
                ..Lock::default()
            });
        }
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let lock: Lock = toml::from_str(&text).with_context(|| {
            format!(
                "{} is not a valid lock file (delete it to rerun every job)",
                path.display()
            )
        })?;
        if lock.version != LOCK_VERSION {
            bail!(
                "{}: version {} (this kit writes {LOCK_VERSION}; delete it to rerun every job)",
                path.display(),
                lock.version
            );
        }
        Ok(lock)
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let text = format!(
            "# Written by `cargo xtask reproduce`; `cargo xtask verify` checks it. Do not edit.\n{}",
            toml::to_string(self)?
        );
        emsl_io::write_atomic(&dir.join(LOCK_FILE), text.as_bytes())?;
        Ok(())
    }

    /// Records the finished job `key`. A result file has one writer, the job that wrote it last: any
    /// other entry listing one of its outputs is forgotten (a figure's table job of an older version
    /// or code, superseded after a run of only some figures), so the lock never holds two hashes for
    /// one file.
    pub fn record(&mut self, key: &str, entry: Entry) {
        self.jobs
            .retain(|k, e| k == key || !e.outputs.keys().any(|f| entry.outputs.contains_key(f)));
        self.jobs.insert(key.to_owned(), entry);
    }

    /// Whether the entry's outputs are all present with their recorded hashes.
    pub fn intact(&self, dir: &Path, key: &str, identity: &str) -> bool {
        let Some(e) = self.jobs.get(key) else {
            return false;
        };
        e.identity == identity
            && e.outputs.iter().all(|(rel, sha)| {
                emsl_io::sha256_file(&dir.join(rel)).is_ok_and(|actual| &actual == sha)
            })
    }
}

/// Forgets every job of the results folder `dir` whose key `keep` refuses: its lock entry, and its
/// folder, log and config under `jobs/`. Returns the keys whose entries were forgotten.
pub fn forget_jobs_unless(dir: &Path, keep: impl Fn(&str) -> bool) -> Result<Vec<String>> {
    let mut lock = Lock::load(dir)?;
    let forget: Vec<String> = lock.jobs.keys().filter(|k| !keep(k)).cloned().collect();
    if !forget.is_empty() {
        lock.jobs.retain(|k, _| keep(k));
        lock.save(dir)?;
    }
    crate::store::remove_jobs_unless(dir, keep)?;
    Ok(forget)
}

/// Held for the whole run: an OS file lock on `<dir>/.reproduce.pid`, released by the OS even when the
/// process is killed. A folder the lock created and the run left empty (a refused plan) is removed
/// with the pid file when the lock is dropped, so a refusal leaves nothing behind.
pub struct FolderLock {
    _file: File,
    created: Option<std::path::PathBuf>,
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        let Some(dir) = &self.created else {
            return;
        };
        let names: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name()).collect())
            .unwrap_or_default();
        if names.len() == 1 && names[0] == ".reproduce.pid" {
            let _ = std::fs::remove_file(dir.join(".reproduce.pid"));
            let _ = std::fs::remove_dir(dir);
        }
    }
}

impl FolderLock {
    pub fn acquire(dir: &Path) -> Result<FolderLock> {
        let created = (!dir.exists()).then(|| dir.to_path_buf());
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(".reproduce.pid");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if file.try_lock().is_err() {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            bail!(
                "another `cargo xtask reproduce` (process {}) is writing to {}; wait for it to \
                 finish or stop it, or choose another folder with --out",
                holder.trim(),
                dir.display()
            );
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(FolderLock {
            _file: file,
            created,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(outputs: &[(&str, &str)]) -> Entry {
        Entry {
            identity: "i".into(),
            kind: "figure".into(),
            label: "l".into(),
            threads: 1,
            inputs: vec![],
            config: toml::Value::Table(Default::default()),
            outputs: outputs
                .iter()
                .map(|(f, h)| ((*f).to_owned(), (*h).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn the_last_writer_of_a_result_file_supersedes_older_entries() {
        let mut lock = Lock::default();
        lock.record(
            "figure-old",
            entry(&[
                ("dynamics/effects.parquet", "a"),
                ("dynamics/SHA256SUMS", "b"),
            ]),
        );
        lock.record("figure-other", entry(&[("controls/effects.parquet", "c")]));
        lock.record("figure-new", entry(&[("dynamics/effects.parquet", "d")]));
        let keys: Vec<&String> = lock.jobs.keys().collect();
        assert_eq!(keys, ["figure-new", "figure-other"]);
        // Recording the same job again replaces its own entry.
        lock.record("figure-new", entry(&[("dynamics/effects.parquet", "e")]));
        assert_eq!(
            lock.jobs["figure-new"].outputs["dynamics/effects.parquet"],
            "e"
        );
        assert_eq!(lock.jobs.len(), 2);
    }
}
