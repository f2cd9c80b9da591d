//! The kit's pipeline as a library (`cargo xtask` is a thin command line over it): figures and
//! profiles declared as data (`spec`), expanded by the registered figures (`figures`) into a graph of
//! cached jobs (`graph`, `code_version`), run by the executor through a runner (`exec`), recorded in
//! `repro.lock` (`lock`), turned into tables, plots and the claims table (`analysis`, `claims`), and
//! checked by `verify` (and `currency`: whether they come from this checkout); `prose` checks the
//! numbers the results and performance pages and the notebooks print against the tables, and `readme`
//! writes README's claims table from `results/CLAIMS.md`. The dataset catalog (`catalog`, `datasets`)
//! generates what the jobs read; `own` plans the stages of your own model; `explore` holds the
//! exploration log's measurements that are not figures.

pub mod analysis;
pub mod catalog;
pub mod claims;
pub mod code_version;
pub mod currency;
mod dataset_tables;
pub mod datasets;
pub mod exec;
pub mod explore;
pub mod figures;
pub mod graph;
pub mod lock;
pub mod own;
pub mod plan;
pub mod prose;
pub mod readme;
pub mod scaffold;
pub mod spec;
pub mod store;
#[cfg(test)]
mod test_support;
pub mod timings;
pub mod verify;
