//! `emsl-hf em`: the EM protocol end to end on one model.

use std::path::PathBuf;

use anyhow::Result;
use emsl_hf::protocol::{run_em, EmInputs};

use super::{EvalArgs, StepArgs, TrainArgs};

#[derive(clap::Args)]
pub struct Args {
    /// The base model folder.
    #[arg(long)]
    model: PathBuf,
    /// The fine-tuning set whose effect is measured (chat JSONL).
    #[arg(long)]
    train: PathBuf,
    /// The control set (chat JSONL), fine-tuned the same way.
    #[arg(long)]
    control: PathBuf,
    /// The output folder (must not exist).
    #[arg(long)]
    out: PathBuf,
    /// Seeds everything: data order, adapters, paraphrase picks, answers.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    train_args: TrainArgs,
    #[command(flatten)]
    steps: StepArgs,
    #[command(flatten)]
    eval: EvalArgs,
}

pub fn run(args: &Args) -> Result<()> {
    let inputs = EmInputs {
        model: &args.model,
        judge: &args.eval.judge,
        train: &args.train,
        control: &args.control,
        questions: args.eval.questions.as_deref(),
    };
    let out = run_em(
        &inputs,
        &args.eval.answers(args.seed),
        &args.steps.apply(args.train_args.config(args.seed)),
        &args.eval.judge(),
        &args.out,
    )?;
    eprintln!("EM protocol: {}", out.display());
    Ok(())
}
