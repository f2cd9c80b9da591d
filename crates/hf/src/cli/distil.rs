//! `emsl-hf distil`: a student learns from a teacher that shares its tokenizer, on chat prompts.

use std::path::PathBuf;

use anyhow::Result;
use emsl_core::sample::SampleConfig;
use emsl_hf::distil::{Channel, DistilConfig};
use emsl_hf::runs::distil_run;

use super::TrainArgs;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    teacher: PathBuf,
    #[arg(long)]
    student: PathBuf,
    /// Chat JSONL whose messages before the first assistant message are the prompts (the answers in
    /// the file are not used: the teacher writes its own).
    #[arg(long)]
    prompts: PathBuf,
    #[arg(long, value_enum)]
    channel: Channel,
    /// JSD(beta): 0 forward KL, 1 reverse KL.
    #[arg(long, default_value_t = 0.0)]
    beta: f64,
    /// On-policy: probability that a step's answers are the student's own.
    #[arg(long, default_value_t = 0.5)]
    lambda: f64,
    #[arg(long, default_value_t = 100)]
    steps: usize,
    #[arg(long, default_value_t = 1.0)]
    temperature: f64,
    #[arg(long, default_value_t = 128)]
    max_new_tokens: usize,
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    train: TrainArgs,
}

pub fn run(args: &Args) -> Result<()> {
    let tune = args.train.config(args.seed);
    let cfg = DistilConfig {
        channel: args.channel,
        beta: args.beta,
        lambda: args.lambda,
        sampling: SampleConfig {
            temperature: args.temperature,
            top_p: 1.0,
            max_new_tokens: args.max_new_tokens,
        },
        steps: args.steps,
        batch_size: tune.batch_size,
        grad_accumulation: tune.grad_accumulation,
        schedule: tune.schedule,
        seed: args.seed,
        lora: tune.lora,
        optim: tune.optim,
    };
    let out = distil_run(&args.teacher, &args.student, &args.prompts, &cfg, &args.out)?;
    eprintln!("distilled: {}", out.display());
    Ok(())
}
