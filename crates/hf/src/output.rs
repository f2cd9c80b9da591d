//! Output folders written whole or not at all: everything goes into a staging folder beside the
//! destination, which is renamed onto it only when the last file is written (a rename within one
//! folder is atomic), so a bad input, an error or a killed run leaves no half-written results. An
//! existing destination is never overwritten.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Serialize;

/// A staging folder for `out`, removed unless [`Staged::finish`] renames it onto `out`.
pub struct Staged {
    tmp: PathBuf,
    out: PathBuf,
    finished: bool,
}

impl Staged {
    /// Refuses an existing `out`; clears a staging folder a killed run left behind.
    pub fn new(out: &Path) -> Result<Self> {
        if out.exists() {
            bail!(
                "output folder {} exists; remove it or choose another --out (results are never \
                 overwritten)",
                out.display()
            );
        }
        let name = out
            .file_name()
            .with_context(|| format!("output folder {} has no name", out.display()))?
            .to_string_lossy()
            .into_owned();
        let parent = match out.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let tmp = parent.join(format!(".{name}.partial"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)
                .with_context(|| format!("removing the leftover {}", tmp.display()))?;
        }
        std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok(Staged {
            tmp,
            out: out.to_path_buf(),
            finished: false,
        })
    }

    /// The staging folder, where every output file is written.
    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Writes `SHA256SUMS` over every file of the staging folder (subfolders included), then renames
    /// the folder onto the destination.
    pub fn finish(mut self) -> Result<PathBuf> {
        let files = relative_files(&self.tmp)?;
        let names: Vec<&str> = files.iter().map(String::as_str).collect();
        emsl_io::write_sha256sums(&self.tmp, &names)?;
        std::fs::rename(&self.tmp, &self.out).with_context(|| {
            format!("renaming {} to {}", self.tmp.display(), self.out.display())
        })?;
        self.finished = true;
        Ok(self.out.clone())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.finished {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

/// Every file under `dir` by its `/`-separated path relative to it, sorted.
pub fn relative_files(dir: &Path) -> Result<Vec<String>> {
    Ok(crate::folder::file_hashes(dir)?
        .into_iter()
        .map(|(name, _)| name)
        .collect())
}

/// Writes `value` as pretty JSON (with a final newline) to `path`.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    emsl_io::write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// Writes one JSON object per line to `path`.
pub fn write_jsonl<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut text = String::new();
    for r in rows {
        text.push_str(&serde_json::to_string(r)?);
        text.push('\n');
    }
    emsl_io::write_atomic(path, text.as_bytes())?;
    Ok(())
}

/// An input file as a manifest records it: its name (not its folder) and sha256.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InputFile {
    pub file: String,
    pub sha256: String,
}

/// Every file of a model (or adapter) folder with its sha256.
pub fn folder_inputs(dir: &Path) -> Result<Vec<InputFile>> {
    Ok(crate::folder::file_hashes(dir)?
        .into_iter()
        .map(|(file, sha256)| InputFile { file, sha256 })
        .collect())
}
