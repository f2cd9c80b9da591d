//! The sha256 of an own-model stage's input files, cached per results folder.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// The file-hash cache of a results folder (`<out>/.own-file-hashes.json`).
pub const HASH_CACHE: &str = ".own-file-hashes.json";

/// sha256 of files, remembered by path, size and modification time (as git and DVC do): a file whose
/// size and time are unchanged is taken as unchanged.
pub struct FileHashes {
    path: PathBuf,
    known: BTreeMap<PathBuf, Known>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Known {
    size: u64,
    modified_ns: u128,
    sha256: String,
}

impl FileHashes {
    /// The cache of the results folder `out` (empty when there is none yet, or it is unreadable:
    /// a cache only saves time).
    pub fn load(out: &Path) -> FileHashes {
        let path = out.join(HASH_CACHE);
        let known = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        FileHashes { path, known }
    }

    pub fn sha256(&mut self, file: &Path) -> Result<String> {
        let meta =
            std::fs::metadata(file).with_context(|| format!("reading {}", file.display()))?;
        let modified_ns = meta
            .modified()?
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let size = meta.len();
        if let Some(k) = self.known.get(file) {
            if k.size == size && k.modified_ns == modified_ns {
                return Ok(k.sha256.clone());
            }
        }
        let sha256 =
            emsl_io::sha256_file(file).with_context(|| format!("hashing {}", file.display()))?;
        let known = Known {
            size,
            modified_ns,
            sha256: sha256.clone(),
        };
        self.known.insert(file.to_path_buf(), known);
        Ok(sha256)
    }

    pub fn save(&self) -> Result<()> {
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        emsl_io::write_atomic(&self.path, &serde_json::to_vec_pretty(&self.known)?)?;
        Ok(())
    }
}
