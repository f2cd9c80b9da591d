//! `cargo xtask job KIND CONFIG`: runs one compute job of the reproduce graph in its own process (the
//! unit a cluster scheduler would run). The config is the stage's TOML with its folders filled in.

use std::path::PathBuf;

use anyhow::{bail, Result};
use emsl_core::{distil, stages};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// pretrain, finetune, teach, distil or eval.
    pub kind: String,
    pub config: PathBuf,
}

pub fn run(args: &Args) -> Result<()> {
    let c = &args.config;
    match args.kind.as_str() {
        "pretrain" => stages::pretrain(&stages::read_config(c)?),
        "finetune" => stages::finetune(&stages::read_config(c)?),
        "eval" => stages::eval(&stages::read_config(c)?),
        "teach" => distil::teach(&stages::read_config(c)?),
        "distil" => distil::distil(&stages::read_config(c)?),
        other => bail!("unknown job kind '{other}' (pretrain, finetune, teach, distil, eval)"),
    }
}
