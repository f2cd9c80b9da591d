//! The single error type of `emsl-io`.
//!
//! Every message is meant to be read by a person running the kit: it names the
//! file involved and, where one exists, the command that fixes the problem, so
//! the lead binary can print it as-is without extra context.

use std::path::PathBuf;

/// Everything that can go wrong while reading or writing kit files.
#[derive(Debug, thiserror::Error)]
pub enum IoError {
    /// A filesystem operation on `path` failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        /// The file or directory being accessed.
        path: PathBuf,
        /// The underlying OS error.
        source: std::io::Error,
    },

    /// Reading or writing the Parquet file at `path` failed.
    #[error("Parquet error in {}: {source}", path.display())]
    Parquet {
        /// The Parquet file.
        path: PathBuf,
        /// The underlying Parquet error.
        source: parquet::errors::ParquetError,
    },

    /// An Arrow operation not tied to a single file failed.
    #[error("Arrow error: {source}")]
    Arrow {
        /// The underlying Arrow error.
        source: arrow::error::ArrowError,
    },

    /// A manifest file exists but is not valid (bad TOML, unknown field, ...).
    #[error("cannot parse {}: {message}", path.display())]
    ManifestParse {
        /// The manifest file.
        path: PathBuf,
        /// The TOML error, which names the offending key or line.
        message: String,
    },

    /// The manifest file does not exist.
    #[error("dataset manifest {} does not exist; create it with `{fix}`", path.display())]
    ManifestMissing {
        /// Where the manifest was expected.
        path: PathBuf,
        /// The command that creates it.
        fix: String,
    },

    /// A `SHA256SUMS` file has a line that `sha256sum -c` would not accept.
    #[error("{}:{line}: {message}", path.display())]
    ChecksumParse {
        /// The `SHA256SUMS` file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },

    /// A file name cannot be used where it was given (absolute, escapes the
    /// directory, or contains characters `sha256sum` would escape).
    #[error("invalid file name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A column is absent from a batch or has an unexpected Arrow type.
    #[error("column '{column}': expected {expected}, found {found}")]
    Column {
        /// The requested column name.
        column: String,
        /// The Arrow type the caller asked for.
        expected: String,
        /// The actual type, or a note that the column is missing.
        found: String,
    },

    /// The manifest has no dataset with this name.
    #[error(
        "unknown dataset '{name}': datasets/manifest.toml does not list it (known: {}); \
         if it is new, regenerate the manifest with `cargo xtask datasets`",
        known_list(known)
    )]
    UnknownDataset {
        /// The requested name.
        name: String,
        /// Every name the manifest does list.
        known: Vec<String>,
    },

    /// The manifest lists the dataset but its file is not on disk.
    #[error(
        "dataset '{name}' ({}) is missing; large datasets are not committed to git. \
         Regenerate it with {fix}.",
        path.display()
    )]
    DatasetMissing {
        /// Dataset name from the manifest.
        name: String,
        /// Where the file was expected.
        path: PathBuf,
        /// The command(s) that bring it back, already quoted in backticks.
        fix: String,
    },

    /// The dataset file exists but its bytes do not hash to the manifest's sha256.
    #[error(
        "dataset '{name}' ({}) has sha256 {actual} but datasets/manifest.toml records \
         {expected}; its bytes were changed. Regenerate it with {fix}.",
        path.display()
    )]
    DatasetTampered {
        /// Dataset name from the manifest.
        name: String,
        /// The file that was hashed.
        path: PathBuf,
        /// The sha256 recorded in the manifest.
        expected: String,
        /// The sha256 of the file on disk.
        actual: String,
        /// The command(s) that bring the right bytes back, already quoted in backticks.
        fix: String,
    },
}

impl IoError {
    /// Shorthand for wrapping an OS error with the path it concerns.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IoError::Io {
            path: path.into(),
            source,
        }
    }
}

/// Formats a few known names; the full list can be long and would drown the
/// actual problem in the message.
fn known_list(known: &[String]) -> String {
    const SHOWN: usize = 5;
    if known.is_empty() {
        return "none".to_string();
    }
    let mut s = known
        .iter()
        .take(SHOWN)
        .map(|n| format!("'{n}'"))
        .collect::<Vec<_>>()
        .join(", ");
    if known.len() > SHOWN {
        s.push_str(&format!(" and {} more", known.len() - SHOWN));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_dataset_lists_a_few_names() {
        let known: Vec<String> = (0..8).map(|i| format!("d{i}")).collect();
        let msg = IoError::UnknownDataset {
            name: "nope".into(),
            known,
        }
        .to_string();
        assert!(msg.contains("'nope'"), "{msg}");
        assert!(
            msg.contains("'d0', 'd1', 'd2', 'd3', 'd4' and 3 more"),
            "{msg}"
        );
        assert!(msg.contains("cargo xtask datasets"), "{msg}");
    }

    #[test]
    fn io_error_names_path() {
        let e = IoError::io(
            "some/file.txt",
            std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        );
        assert!(e.to_string().contains("some/file.txt"));
    }
}
