//! `cargo xtask explore ...`: the measurements of the exploration log (`docs/exploration/`) that are
//! not figures ([`emsl_repro::explore`]); nothing here writes to `results/`.
//!
//! `persona-positions`: does a base infer the persona inside its own pretraining documents?
//! ([`emsl_repro::explore::persona_positions`] says how it is measured.)

use std::path::PathBuf;

use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// The likelihood probe of each episode of held-out documents by the evidence before it.
    PersonaPositions(PositionsArgs),
}

#[derive(clap::Args, Debug)]
struct PositionsArgs {
    /// A model folder (a pretrain or fine-tune job's output: model.safetensors, tokenizer.json).
    #[arg(long)]
    model: PathBuf,
    /// The composition the documents are drawn from (default: the reference composition).
    #[arg(long)]
    composition: Option<PathBuf>,
    #[arg(long, default_value_t = 1000)]
    docs: usize,
    /// Seeds the held-out documents and the reference answers.
    #[arg(long)]
    seed: u64,
    /// Also write every probe as JSON lines here.
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: &Args) -> Result<()> {
    match &args.what {
        What::PersonaPositions(a) => {
            let composition = crate::world::composition_or_reference(a.composition.as_deref())?;
            emsl_repro::explore::persona_positions(
                &composition,
                &a.model,
                a.docs,
                a.seed,
                a.out.as_deref(),
            )
        }
    }
}
