//! `emsl STAGE CONFIG`: run one stage of the pipeline from its TOML config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use emsl_core::{distil, stages};

#[derive(Parser)]
#[command(
    name = "emsl",
    about = "Run one stage (pretrain, finetune, sample, eval, teach, distil) from a config file"
)]
struct Cli {
    #[command(subcommand)]
    stage: Stage,
}

#[derive(Subcommand)]
enum Stage {
    /// Pretrain a model on a pretraining corpus.
    Pretrain { config: PathBuf },
    /// Fine-tune a model on fine-tuning sets (loss on answers only).
    Finetune { config: PathBuf },
    /// Print judged samples for a suite's prompts.
    Sample { config: PathBuf },
    /// Sample, judge and summarise; write per-sample records, the probe and a summary.
    Eval { config: PathBuf },
    /// A teacher writes number continuations; the world's filter keeps the clean ones.
    Teach { config: PathBuf },
    /// Train a student on a teacher's filtered samples by SFT, off-policy or on-policy distillation.
    Distil { config: PathBuf },
}

fn main() -> ExitCode {
    let result = match Cli::parse().stage {
        Stage::Pretrain { config } => {
            stages::read_config(&config).and_then(|c| stages::pretrain(&c))
        }
        Stage::Finetune { config } => {
            stages::read_config(&config).and_then(|c| stages::finetune(&c))
        }
        Stage::Sample { config } => stages::read_config(&config).and_then(|c| stages::sample(&c)),
        Stage::Eval { config } => stages::read_config(&config).and_then(|c| stages::eval(&c)),
        Stage::Teach { config } => stages::read_config(&config).and_then(|c| distil::teach(&c)),
        Stage::Distil { config } => stages::read_config(&config).and_then(|c| distil::distil(&c)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
