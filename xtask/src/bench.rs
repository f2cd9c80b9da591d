//! `cargo xtask bench`: the kit's training and sampling throughput against PyTorch (the measuring and
//! the table are [`emsl_perf`]'s).

use emsl_perf::Suite;

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SuiteArg {
    Gpt,
    Hf,
}

#[derive(clap::Args)]
pub struct Args {
    /// Which models: the kit's GPT, or a Qwen2 checkpoint's shapes with LoRA.
    #[arg(long, value_enum, default_value = "gpt")]
    suite: SuiteArg,
    /// Model sizes (gpt: the profiles' sizes smoke, quick, paper; hf: qwen2.5-0.5b).
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<String>>,
    /// Thread counts; each side is pinned to that many cores.
    #[arg(long, value_delimiter = ',', default_value = "1,2")]
    threads: Vec<usize>,
    /// Alternating runs of each side per size and thread count (gpt 3, hf 2).
    #[arg(long)]
    rounds: Option<usize>,
    /// Timed training steps per run, after the warm-up (gpt 20, hf 3).
    #[arg(long)]
    steps: Option<usize>,
    /// Untimed training steps at the start of each run (gpt 5, hf 1).
    #[arg(long)]
    warmup: Option<usize>,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let suite = match args.suite {
        SuiteArg::Gpt => Suite::Gpt,
        SuiteArg::Hf => Suite::Hf,
    };
    let bench = emsl_perf::Args {
        suite,
        sizes: args.sizes.clone(),
        threads: args.threads.clone(),
        rounds: args.rounds,
        steps: args.steps,
        warmup: args.warmup,
    };
    emsl_perf::run(&crate::project_root(), &bench)
}
