//! `cargo xtask new-figure NAME [--claim ID]`: a new figure's files, ready to edit
//! ([`emsl_repro::scaffold`]).

use anyhow::Result;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The figure's name, in kebab-case: also its TOML file's and results folder's name.
    pub name: String,
    /// The claim or anchor id of figures/claims.toml its effect speaks to.
    #[arg(long, default_value = "C1")]
    pub claim: String,
}

pub fn run(args: &Args) -> Result<()> {
    let root = crate::project_root();
    for path in emsl_repro::scaffold::new_figure(&root, &args.name, &args.claim)? {
        let shown = path.strip_prefix(&root).unwrap_or(&path);
        eprintln!("wrote {}", shown.display());
    }
    eprintln!(
        "next: cargo test -p emsl-repro, then `cargo xtask reproduce --profile smoke --figure {}`",
        args.name
    );
    Ok(())
}
