//! Expands the figures of a figures folder at a profile into a graph of cached jobs, and runs a plan:
//! what is not up to date runs, and `<out>/<figure>/` (tables, plot, SHA256SUMS), `<out>/repro.lock`
//! and `<out>/CLAIMS.md` are written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::code_version::CodeVersions;
use crate::exec::{self, Runner, Settings};
use crate::figures;
use crate::graph::{Graph, Task};
use crate::spec::{self, Claims};

/// The result of expanding figures: the graph and, per figure, its table job.
pub struct Plan {
    pub graph: Graph,
    pub figure_jobs: BTreeMap<String, String>,
}

/// The graph of `only` (every figure when empty) at `profile`, and the claims job: with every figure
/// from their table jobs; with some, also from the other figures' effects tables already in `out`
/// (none when one of them is missing there).
pub fn plan(
    root: &Path,
    figures_dir: &Path,
    profile: &str,
    only: &[String],
    out: &Path,
) -> Result<Plan> {
    let toolchain = crate::code_version::toolchain();
    plan_with_toolchain(root, figures_dir, (profile, only), out, &toolchain)
}

/// [`plan`] as a machine with `toolchain` (its `rustc -vV` and CPU features) plans it; a test passes
/// a lock's, to ask what a committed results folder computed whatever CPU the test runs on.
pub(crate) fn plan_with_toolchain(
    root: &Path,
    figures_dir: &Path,
    (profile, only): (&str, &[String]),
    out: &Path,
    toolchain: &str,
) -> Result<Plan> {
    let hashes = manifest_hashes(root)?;
    plan_from(root, figures_dir, (profile, only), out, (hashes, toolchain))
}

/// The sha256 of every dataset of `root/datasets/manifest.toml`, by name.
fn manifest_hashes(root: &Path) -> Result<BTreeMap<String, String>> {
    let manifest = emsl_io::Manifest::load(&root.join("datasets/manifest.toml"))?;
    Ok(manifest
        .names()
        .into_iter()
        .map(|n| {
            let sha = manifest.get(&n).expect("listed").sha256.clone();
            (n, sha)
        })
        .collect())
}

fn plan_from(
    root: &Path,
    figures_dir: &Path,
    (profile, only): (&str, &[String]),
    out: &Path,
    (hashes, toolchain): (BTreeMap<String, String>, &str),
) -> Result<Plan> {
    let all = spec::load_figures(figures_dir, profile)?;
    for name in only {
        if !all.iter().any(|f| &f.file.name == name) {
            bail!(
                "no figure '{name}' in {} (figures: {})",
                figures_dir.display(),
                all.iter()
                    .map(|f| f.file.name.clone())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let mut claims = Claims::load(figures_dir)?;
    claims.check(&all, figures_dir)?;
    let previous = claims.take_previous(root, figures_dir, profile, &all)?;
    let prof = spec::load_profile(figures_dir, profile)?;
    let names: Vec<&str> = all.iter().map(|f| f.file.name.as_str()).collect();
    for f in &prof.pretrain.first_base_only {
        if !crate::figures::sources()
            .iter()
            .any(|s| s.name == f.as_str())
        {
            bail!(
                "{}: [{profile}.pretrain] first_base_only names '{f}', which is no figure (figures: {})",
                figures_dir.join("profiles.toml").display(),
                names.join(", ")
            );
        }
    }
    let mut graph = Graph::new(
        hashes,
        CodeVersions::with_toolchain(root, &crate::figures::sources(), toolchain)?,
    );
    let mut figure_jobs = BTreeMap::new();
    for fig in all
        .iter()
        .filter(|f| only.is_empty() || only.contains(&f.file.name))
    {
        let name = fig.file.name.clone();
        let context = || format!("{}: [{profile}]", fig.path.display());
        let figure = figures::get(&name).with_context(context)?;
        // The figure's jobs on every base; with several, each role names its base (`base=302,arm=...`)
        // so that the tables can take bases as the outer level of every interval. One base adds nothing
        // to the roles, so its table jobs keep the identities of a kit without bases.
        let mut inputs = figures::Roles::new();
        let bases = prof.bases_of(&name);
        for base_index in 0..bases {
            let mut ctx = figures::Ctx {
                graph: &mut graph,
                profile: &prof,
                profile_name: profile,
                base_index,
                seeds: prof.seeds_of_figure(&name, base_index),
            };
            let roles = figure.expand(&fig.params, &mut ctx).with_context(context)?;
            let init_seed = prof.init_seed_of_base(base_index).to_string();
            for (role, key) in roles {
                let role = match bases {
                    1 => role,
                    _ => format!("{},{role}", figures::role(&[("base", &init_seed)])),
                };
                inputs.insert(role, key);
            }
        }
        let job = graph.add(
            &format!("tables and plot of {name}"),
            Task::Figure {
                figure: name.clone(),
                figure_version: fig.file.version,
                params: fig.params.clone(),
                inputs,
            },
        )?;
        figure_jobs.insert(name, job);
    }
    let committed = committed_effects(out, &all, only)?;
    if let Some(committed) = committed {
        let figures = all
            .iter()
            .map(|f| (f.file.name.clone(), f.file.claims.clone()))
            .collect();
        let tables = figure_jobs.clone();
        graph.add(
            "claims table",
            Task::Claims {
                claims,
                figures,
                tables,
                committed,
                previous,
            },
        )?;
    }
    Ok(Plan { graph, figure_jobs })
}

/// The plan of a run that executes: the figure files and profile are checked first (a bad one fails
/// before any dataset is written), then the dataset stage generates what is missing and refuses what
/// was tampered with, and the graph is planned again from the manifest it left. A job's identity holds
/// the sha256 of the datasets it reads: planned before a changed catalog (a new seed, a new knob) is
/// regenerated, a run would file the new catalog's outputs under the old catalog's identities, and a
/// later run on the old catalog would take them for its own.
pub fn plan_after_datasets(
    root: &Path,
    figures_dir: &Path,
    profile: &str,
    only: &[String],
    out: &Path,
) -> Result<Plan> {
    let datasets = root.join("datasets");
    plan_after(root, figures_dir, (profile, only), out, || {
        crate::datasets::run(&datasets, crate::datasets::Mode::Reproduce)
    })
}

fn plan_after(
    root: &Path,
    figures_dir: &Path,
    (profile, only): (&str, &[String]),
    out: &Path,
    dataset_stage: impl FnOnce() -> Result<()>,
) -> Result<Plan> {
    // The check: the catalog's datasets that the stage is about to write (a new composition) have no
    // manifest entry yet; they stand in with a placeholder hash, which no planned job keeps.
    let mut hashes = manifest_hashes(root)?;
    for d in crate::catalog::load(&root.join("datasets"))?.1 {
        hashes
            .entry(d.name)
            .or_insert_with(|| "to be generated".to_owned());
    }
    let toolchain = crate::code_version::toolchain();
    plan_from(
        root,
        figures_dir,
        (profile, only),
        out,
        (hashes, &toolchain),
    )?;
    dataset_stage()?;
    plan(root, figures_dir, profile, only, out)
}

/// The sha256 of `out/<figure>/effects.parquet` of every figure not in `only` (nothing to read when
/// `only` is empty); `None` when one is missing, so that no claims table is built from part of them.
fn committed_effects(
    out: &Path,
    all: &[spec::FigureSpec],
    only: &[String],
) -> Result<Option<BTreeMap<String, String>>> {
    let mut committed = BTreeMap::new();
    for f in all
        .iter()
        .filter(|f| !only.is_empty() && !only.contains(&f.file.name))
    {
        let path = out.join(&f.file.name).join("effects.parquet");
        if !path.exists() {
            return Ok(None);
        }
        committed.insert(f.file.name.clone(), emsl_io::sha256_file(&path)?);
    }
    Ok(Some(committed))
}

/// Runs a plan's graph into `settings.out`; after a run of every figure (`prune`), forgets lock
/// entries and job folders no figure needs any more.
pub fn run(
    settings: &Settings,
    plan: &Plan,
    runner: &dyn Runner,
    prune: bool,
) -> Result<exec::Report> {
    let report = exec::run(settings, &plan.graph, runner)?;
    if prune {
        prune_unneeded(&settings.out, &plan.graph)?;
    }
    Ok(report)
}

/// Runs a plan's graph on Slurm (`exec::slurm`); prunes as `run` does once every job is recorded.
pub fn run_on_slurm(
    settings: &Settings,
    plan: &Plan,
    binaries: &BTreeMap<crate::graph::JobBinary, std::path::PathBuf>,
    opts: &exec::slurm::Options,
    prune: bool,
) -> Result<exec::slurm::Outcome> {
    let outcome = exec::slurm::run(settings, &plan.graph, binaries, opts)?;
    if prune && outcome.complete {
        prune_unneeded(&settings.out, &plan.graph)?;
    }
    Ok(outcome)
}

/// Forgets the jobs of `out` that `graph` does not hold. Jobs of your own model (`own-` keys, from
/// `cargo xtask own-model` into the same folder) are no figure's to forget: they stay.
fn prune_unneeded(out: &Path, graph: &Graph) -> Result<()> {
    let planned: BTreeSet<&str> = graph.jobs.iter().map(|j| j.key.as_str()).collect();
    crate::lock::forget_jobs_unless(out, |key| {
        planned.contains(key) || crate::own::is_own_job(key)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests;
