//! `cargo xtask datasets [--check]`: generate, record and check the datasets of datasets/datasets.toml
//! (`emsl_repro::datasets`).

use std::path::PathBuf;

use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Regenerate every dataset in a temporary folder and fail when any byte differs from the manifest
    /// or a file of the checkout differs from it.
    #[arg(long)]
    pub check: bool,
    /// The datasets folder (default: datasets/ of the project).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| crate::project_root().join("datasets"));
    use emsl_repro::datasets::Mode;
    emsl_repro::datasets::run(
        &dir,
        if args.check {
            Mode::Check
        } else {
            Mode::Update
        },
    )
}
