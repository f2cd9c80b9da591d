//! Analysis of the kit's results without any ML dependency: rates with confidence intervals
//! ([`stats`]), the measurement tables every figure writes ([`table`]) and the plots drawn from them
//! ([`plot`]). `cargo xtask reproduce` and the notebooks use the same code, so a figure in a notebook
//! and in `results/` are drawn by one function.

pub mod display;
pub mod figures;
pub mod plot;
pub mod stats;
pub mod table;

pub use stats::{Counts, Estimate};
pub use table::{Measurement, Table, Var};
