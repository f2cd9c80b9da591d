//! `cargo xtask notebooks [--check] [--write]`: executes every evcxr notebook of `notebooks/`
//! headless into `target/notebooks/`, failing when any cell errors or prints a panic. Installs what is
//! missing into folders of the project: `evcxr_jupyter` (cargo install --root .tools/evcxr), nbclient
//! (a virtual environment in .tools/nbvenv) and the kernel spec (.tools/jupyter, not the user's home).
//! evcxr's build folder (target/evcxr) is kept between runs, so a second run takes seconds to a minute.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

const EVCXR_VERSION: &str = "0.22.0";
const NBCLIENT_VERSION: &str = "0.11.0";
const RUNNER: &str = include_str!("notebooks_run.py");

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Fail when the outputs committed in notebooks/ differ from a fresh execution.
    #[arg(long, conflicts_with = "write")]
    pub check: bool,
    /// Copy the executed notebooks (with their outputs) over the committed ones.
    #[arg(long)]
    pub write: bool,
    /// The results folder the notebooks read (passed as EMSL_RESULTS).
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Write the notebooks' code as the tests crates/analysis/tests/notebook_<name>.rs instead of executing
    /// them (with --check: fail when one is stale). Needs neither Jupyter nor evcxr.
    #[arg(long, conflicts_with = "write")]
    pub extract: bool,
    /// Only these notebooks (file stems); default: all.
    #[arg(long = "notebook")]
    pub only: Vec<String>,
}

/// Installs evcxr_jupyter, nbclient and the kernel spec into `.tools/` when missing.
fn tools(sh: &Shell, root: &Path) -> Result<(PathBuf, PathBuf)> {
    let tools = root.join(".tools");
    let evcxr = tools.join("evcxr/bin/evcxr_jupyter");
    if !evcxr.exists() {
        eprintln!("notebooks: installing evcxr_jupyter {EVCXR_VERSION} into .tools/evcxr (about 15-20 minutes, once)");
        let dest = tools.join("evcxr");
        cmd!(
            sh,
            "cargo install evcxr_jupyter --version {EVCXR_VERSION} --locked --root {dest}"
        )
        .run()?;
    }
    let venv = tools.join("nbvenv");
    let python = venv.join("bin/python");
    if !python.exists() {
        eprintln!("notebooks: installing nbclient {NBCLIENT_VERSION} into .tools/nbvenv");
        cmd!(sh, "python3 -m venv {venv}").run()?;
        cmd!(
            sh,
            "{python} -m pip install --quiet nbclient=={NBCLIENT_VERSION} nbformat"
        )
        .run()?;
    }
    let kernels = tools.join("jupyter/kernels/rust");
    std::fs::create_dir_all(&kernels)?;
    let spec = serde_json::json!({
        "argv": [evcxr, "--control_file", "{connection_file}"],
        "display_name": "Rust",
        "language": "rust",
        "interrupt_mode": "message",
    });
    emsl_io::write_atomic(
        &kernels.join("kernel.json"),
        serde_json::to_string_pretty(&spec)?.as_bytes(),
    )?;
    Ok((python, tools.join("jupyter")))
}

/// The code cells' outputs of a notebook, as compared by --check.
fn outputs(path: &Path) -> Result<Vec<serde_json::Value>> {
    let nb: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
    )?;
    Ok(nb["cells"]
        .as_array()
        .context("no cells")?
        .iter()
        .filter(|c| c["cell_type"] == "code")
        .map(|c| c["outputs"].clone())
        .collect())
}

pub fn run(args: &Args) -> Result<()> {
    let root = crate::project_root();
    if args.extract {
        return crate::notebook_code::run(&root, args.check);
    }
    let sh = Shell::new()?;
    let (python, jupyter_path) = tools(&sh, &root)?;
    let out = root.join("target/notebooks");
    std::fs::create_dir_all(&out)?;
    let runner = out.join("run.py");
    std::fs::write(&runner, RUNNER)?;
    let results = std::env::current_dir()?.join(&args.results);
    let mut notebooks = crate::notebook_code::list(&root)?;
    let stem = |p: &Path| {
        p.file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("")
            .to_owned()
    };
    if !args.only.is_empty() {
        notebooks.retain(|p| args.only.contains(&stem(p)));
    }
    let mut stale = Vec::new();
    for nb in &notebooks {
        let dest = out.join(nb.file_name().expect("a file"));
        let started = std::time::Instant::now();
        let _env = (
            sh.push_env("JUPYTER_PATH", &jupyter_path),
            sh.push_env("EVCXR_TMPDIR", root.join("target/evcxr")),
            sh.push_env("EMSL_RESULTS", &results),
        );
        cmd!(sh, "{python} {runner} {nb} {dest}")
            .run()
            .with_context(|| {
                format!(
                    "notebook {} failed; the executed copy is {}",
                    nb.display(),
                    dest.display()
                )
            })?;
        eprintln!(
            "notebooks: {} ran in {:.0} s -> {}",
            stem(nb),
            started.elapsed().as_secs_f64(),
            dest.display()
        );
        if args.check && outputs(nb)? != outputs(&dest)? {
            stale.push(stem(nb));
        }
        if args.write {
            std::fs::copy(&dest, nb)?;
        }
    }
    if !stale.is_empty() {
        bail!(
            "the committed outputs of {} are stale; refresh them with `cargo xtask notebooks --write`",
            stale.join(", ")
        );
    }
    Ok(())
}
