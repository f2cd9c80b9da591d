//! `cargo xtask`: the kit's one entry point (datasets, the world's samples, reproduce, verify,
//! notebooks).

mod bench;
mod datasets;
mod demo;
mod explore;
mod export;
mod hf;
mod job;
mod new_figure;
mod notebook_code;
mod notebooks;
mod own_model;
mod readme;
mod reproduce;
mod reproduce_slurm;
mod verify;
mod world;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    about = "Reproducibility kit for emergent and subliminal misalignment"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Generate every dataset of datasets/datasets.toml and record it in datasets/manifest.toml.
    Datasets(datasets::Args),
    /// Export a fine-tuning set as chat-format JSONL (for TRL and the anchor repositories).
    Export(export::Args),
    /// Look at the world: samples with the judge's verdicts, documents, the vocabulary.
    World(world::Args),
    /// Run the demonstrations of docs/demonstrations.md (pretrain, fine-tune, distil, evaluate) from
    /// configs/demo/.
    Demo,
    /// Regenerate every figure: a cached graph of jobs from figures/*.toml into results/.
    Reproduce(reproduce::Args),
    /// Execute the evcxr notebooks headless (installing evcxr and nbclient into .tools/ when missing).
    Notebooks(notebooks::Args),
    /// Check every checksum (datasets, results, lock) and compare the results with the reference.
    Verify(verify::Args),
    /// Run one stage from its config: a compute job of the reproduce graph (what `reproduce` starts in
    /// a child process), or a stage by hand (configs/demo/).
    Job(job::Args),
    /// Measurements of the exploration log (docs/exploration/) that are not figures (exploration
    /// seeds; never results/).
    Explore(explore::Args),
    /// Training and sampling throughput of the kit against PyTorch (installs torch into target/bench).
    Bench(bench::Args),
    /// Your own model (crates/hf's emsl-hf): fine-tune, judge and the EM protocol on a local Qwen2 or
    /// Llama checkpoint; `cargo xtask hf --help` lists the commands.
    Hf(hf::Args),
    /// Your own model's stages (emsl-hf job configs) as cached jobs into results-own/: a config runs
    /// again only when a setting, an input file or crates/hf changed.
    OwnModel(own_model::Args),
    /// Write README's claims table from results/CLAIMS.md (--check: fail when it is stale).
    Readme(readme::Args),
    /// A new figure's files, ready to edit: its Rust file, its TOML file and its registry lines
    /// (docs/adding-a-figure.md).
    NewFigure(new_figure::Args),
}

/// The workspace root (xtask lives one folder below it).
pub fn project_root() -> PathBuf {
    // `cargo run` (and so `cargo xtask`) sets CARGO_MANIFEST_DIR at run time too. Prefer it to the
    // compile-time value: checkouts that share one target folder share one uplifted binary, which must
    // work on the checkout it was started from.
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|d| d.join("src/main.rs").is_file() && d.ends_with("xtask"))
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest_dir
        .parent()
        .expect("xtask has a parent folder")
        .to_path_buf()
}

fn main() -> std::process::ExitCode {
    emsl_core::kernels::tune_runtime();
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole context chain on one line, without a backtrace.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Datasets(args) => datasets::run(&args),
        Command::World(args) => world::run(&args),
        Command::Demo => demo::run(),
        Command::Bench(args) => bench::run(&args),
        Command::Hf(args) => hf::run(&args),
        Command::OwnModel(args) => own_model::run(&args),
        Command::Export(args) => export::run(&args),
        Command::Explore(args) => explore::run(&args),
        Command::NewFigure(args) => new_figure::run(&args),
        Command::Reproduce(args) => reproduce::run(&args),
        Command::Job(args) => job::run(&args),
        Command::Verify(args) => verify::run(&args),
        Command::Notebooks(args) => notebooks::run(&args),
        Command::Readme(args) => readme::run(&args),
    }
}
