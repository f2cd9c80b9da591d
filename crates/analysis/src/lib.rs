//! Analysis of the kit's results without any ML dependency: rates with confidence intervals
//! ([`stats`]), the measurement tables every figure writes ([`table`]) and the plots drawn from them
//! ([`plot`]). `cargo xtask reproduce` and the notebooks use the same code, so a figure in a notebook
//! and in `results/` are drawn by one function.

pub mod display;
pub mod figures;
pub mod over_bases;
pub mod per_seed;
pub mod persona_figures;
pub mod plot;
pub mod rank;
pub mod stats;
pub mod table;
pub mod verdict;

pub use per_seed::PerSeed;
pub use stats::{Counts, Estimate, Fit};

/// The results folder analyses read: `EMSL_RESULTS` when set (relative to the current folder), else
/// the project's committed `results/` (found from this crate's source folder, so notebooks and tests
/// need no path of their own).
pub fn results_dir() -> std::path::PathBuf {
    match std::env::var_os("EMSL_RESULTS") {
        Some(p) => std::path::PathBuf::from(p),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results"),
    }
}

/// The frozen tables of world v1 (`results-v1/`), the folder next to [`results_dir`]: the notebooks
/// read them to set v1's numbers beside v2's where a verdict changed. With `EMSL_RESULTS` set this is
/// `results-v1` beside that folder, which must then exist for the notebooks that read it.
pub fn results_v1_dir() -> std::path::PathBuf {
    results_dir().with_file_name("results-v1")
}

/// The frozen tables of world v2 (`results-v2/`), beside [`results_dir`] as [`results_v1_dir`] is:
/// the notebooks' world-v2 sections read them, their world-v3 sections read `results/`.
pub fn results_v2_dir() -> std::path::PathBuf {
    results_dir().with_file_name("results-v2")
}
pub use table::{Measurement, Table, Var};
