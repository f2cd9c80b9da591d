//! `emsl-hf judge`: Betley et al.'s judged open questions on one model (with an adapter or not).

use std::path::PathBuf;

use anyhow::Result;
use emsl_hf::protocol::{run_judge, JudgeInputs};

use super::EvalArgs;

#[derive(clap::Args)]
pub struct Args {
    /// The evaluated model folder.
    #[arg(long)]
    model: PathBuf,
    /// A LoRA adapter in PEFT's layout (adapter_config.json, adapter_model.safetensors) to attach.
    #[arg(long)]
    adapter: Option<PathBuf>,
    /// The output folder (must not exist).
    #[arg(long)]
    out: PathBuf,
    /// Seeds the paraphrase picks and the answers' draws.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    eval: EvalArgs,
}

pub fn run(args: &Args) -> Result<()> {
    let inputs = JudgeInputs {
        model: &args.model,
        adapter: args.adapter.as_deref(),
        judge: &args.eval.judge,
        questions: args.eval.questions.as_deref(),
    };
    let out = run_judge(
        &inputs,
        &args.eval.answers(args.seed),
        &args.eval.judge(),
        &args.out,
    )?;
    eprintln!("judged answers: {}", out.display());
    Ok(())
}
