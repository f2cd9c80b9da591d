//! File I/O for the reproducibility kit: atomic writes, sha256 checksums,
//! deterministic Parquet tables and the dataset manifest.
//!
//! Everything the kit writes is meant to be byte-for-byte reproducible and
//! verifiable, so every writer here is deterministic and atomic, and every
//! reader of a dataset checks its hash before trusting it.

pub mod atomic;
pub mod checksum;
pub mod error;
pub mod manifest;
pub mod table;

pub use atomic::{write_atomic, write_atomic_with};
pub use checksum::{
    check_sha256sums, listed_in_sha256sums, sha256_bytes, sha256_file, write_sha256sums,
    ChecksumMismatch, SHA256SUMS,
};
pub use error::IoError;
pub use manifest::{
    load_dataset, verify_entry, DatasetEntry, Manifest, MANIFEST_HEADER, REGENERATE,
};
pub use table::{
    column_bool, column_f64, column_str, column_u32, column_u64, read_parquet, write_parquet,
    CREATED_BY,
};

// Re-exported so dependants build batches with exactly the versions used here.
pub use arrow;
pub use parquet;
