//! `cargo xtask readme [--check]`: README's claims table, written from `results/CLAIMS.md` between its
//! two marker lines (`emsl_repro::readme`); `--check` writes nothing and fails when it is stale.

use anyhow::{bail, Result};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write nothing; fail when README's claims table differs from results/CLAIMS.md's.
    #[arg(long)]
    check: bool,
}

pub fn run(args: &Args) -> Result<()> {
    let changed = emsl_repro::readme::update(&crate::project_root(), args.check)?;
    match (changed, args.check) {
        (true, true) => bail!(
            "README.md's claims table is not results/CLAIMS.md's; run `cargo xtask readme` and commit"
        ),
        (true, false) => println!("README.md: claims table written from results/CLAIMS.md"),
        (false, _) => println!("README.md: claims table is current"),
    }
    Ok(())
}
