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
    let hashes = manifest_hashes(root)?;
    plan_from(root, figures_dir, (profile, only), out, hashes)
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
    hashes: BTreeMap<String, String>,
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
    let mut graph = Graph::new(hashes, CodeVersions::of_sources(root)?);
    let mut figure_jobs = BTreeMap::new();
    for fig in all
        .iter()
        .filter(|f| only.is_empty() || only.contains(&f.file.name))
    {
        let name = fig.file.name.clone();
        let context = || format!("{}: [{profile}]", fig.path.display());
        let figure = figures::get(&name).with_context(context)?;
        let inputs = {
            let mut ctx = figures::Ctx {
                graph: &mut graph,
                profile: &prof,
                profile_name: profile,
            };
            figure.expand(&fig.params, &mut ctx).with_context(context)?
        };
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
        crate::datasets::run(&datasets, false)
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
    plan_from(root, figures_dir, (profile, only), out, hashes)?;
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
    let mut lock = crate::lock::Lock::load(out)?;
    let planned: BTreeSet<&str> = graph.jobs.iter().map(|j| j.key.as_str()).collect();
    let keep = |key: &str| planned.contains(key) || key.starts_with("own-");
    let before = lock.jobs.len();
    lock.jobs.retain(|k, _| keep(k));
    if lock.jobs.len() != before {
        lock.save(out)?;
    }
    crate::store::remove_jobs_unless(out, keep)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every registered figure has a file in figures/, and every figure file a registered figure.
    #[test]
    fn the_registry_and_the_figure_files_agree() {
        let dir = crate::test_support::root().join("figures");
        let files: BTreeSet<String> = crate::spec::load_figures(&dir, "smoke")
            .unwrap()
            .into_iter()
            .map(|f| f.file.name)
            .collect();
        let registered: BTreeSet<String> = crate::figures::names()
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(files, registered);
        assert_eq!(
            registered.len(),
            crate::figures::REGISTRY.len(),
            "a name registered twice"
        );
    }

    /// A run of some figures builds the claims table only when every other figure's effects table is
    /// in the results folder, and records each one's hash; a run of every figure reads none.
    #[test]
    fn a_run_of_some_figures_reads_the_others_effects_tables() {
        let all = crate::spec::load_figures(&crate::test_support::root().join("figures"), "smoke")
            .unwrap();
        let out = tempfile::tempdir().unwrap();
        let only = vec!["controls".to_owned()];
        assert_eq!(
            super::committed_effects(out.path(), &all, &only).unwrap(),
            None
        );
        for f in all.iter().filter(|f| f.file.name != "controls") {
            let dir = out.path().join(&f.file.name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("effects.parquet"), f.file.name.as_bytes()).unwrap();
        }
        let committed = super::committed_effects(out.path(), &all, &only)
            .unwrap()
            .expect("every other figure's table is there");
        assert_eq!(committed.len(), all.len() - 1);
        assert!(!committed.contains_key("controls"));
        assert_eq!(
            committed["dynamics"],
            emsl_io::sha256_bytes(b"dynamics"),
            "the hash of the file as it is"
        );
        let every = super::committed_effects(out.path(), &all, &[]).unwrap();
        assert_eq!(every, Some(Default::default()));
    }

    /// A run plans from the manifest its dataset stage leaves: a catalog that changed gives its jobs
    /// the new datasets' identities, not the old ones'.
    #[test]
    fn a_run_plans_from_the_manifest_the_dataset_stage_leaves() {
        let (tmp, manifest, (figures, only, out)) = scratch_root();
        let root = tmp.path();
        let pretrain = |p: &super::Plan| {
            let j = p.graph.jobs.iter().find(|j| j.key.starts_with("pretrain-"));
            j.expect("controls pretrains a base").identity.clone()
        };
        let before = super::plan(root, &figures, "smoke", &only, &out).unwrap();
        let old = emsl_io::Manifest::load(&manifest).unwrap();
        let old = old.get("pretrain-reference").unwrap().sha256.clone();
        let text = std::fs::read_to_string(&manifest).unwrap();
        // The dataset stage regenerates the reference corpus (here: its manifest entry) differently.
        let stage = || {
            Ok(std::fs::write(
                &manifest,
                text.replace(&old, &"f".repeat(64)),
            )?)
        };
        let after = super::plan_after(root, &figures, ("smoke", &only), &out, stage).unwrap();
        assert_ne!(pretrain(&before), pretrain(&after));
        let again = super::plan(root, &figures, "smoke", &only, &out).unwrap();
        assert_eq!(pretrain(&after), pretrain(&again));
    }

    /// A scratch project root (removed with the returned folder): the real sources linked in, the real
    /// catalog under `datasets/` with a copy of the real manifest (its path returned, for the test to
    /// rewrite), and the arguments of a plan of the controls figure (the real figure files, an output
    /// folder in the scratch root).
    #[allow(clippy::type_complexity)]
    fn scratch_root() -> (
        tempfile::TempDir,
        std::path::PathBuf,
        (std::path::PathBuf, [String; 1], std::path::PathBuf),
    ) {
        let real = crate::test_support::root();
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        for name in ["crates", "Cargo.toml", "Cargo.lock"] {
            std::os::unix::fs::symlink(real.join(name), root.join(name)).unwrap();
        }
        std::fs::create_dir(root.join("datasets")).unwrap();
        for name in ["datasets.toml", "compositions"] {
            std::os::unix::fs::symlink(
                real.join("datasets").join(name),
                root.join("datasets").join(name),
            )
            .unwrap();
        }
        let manifest = root.join("datasets/manifest.toml");
        std::fs::copy(real.join("datasets/manifest.toml"), &manifest).unwrap();
        let plan_args = (
            real.join("figures"),
            ["controls".to_owned()],
            root.join("o"),
        );
        (tmp, manifest, plan_args)
    }

    /// A dataset the catalog declares and the manifest does not yet hold (a new composition) does not
    /// stop the check before the dataset stage, which is what writes it (a plan without the stage
    /// refuses it, naming it).
    #[test]
    fn a_dataset_new_to_the_catalog_is_planned_after_the_stage_writes_it() {
        let (tmp, manifest, (figures, only, out)) = scratch_root();
        let root = tmp.path();
        let full = std::fs::read_to_string(&manifest).unwrap();
        let mut without = emsl_io::Manifest::load(&manifest).unwrap();
        without.datasets.retain(|e| e.name != "pretrain-reference");
        without.save(&manifest).unwrap();
        let Err(err) = super::plan(root, &figures, "smoke", &only, &out) else {
            panic!("a plan without the dataset stage took a dataset the manifest lacks")
        };
        assert!(
            format!("{err:#}").contains("'pretrain-reference'"),
            "{err:#}"
        );
        let stage = || Ok(std::fs::write(&manifest, &full)?);
        let after = super::plan_after(root, &figures, ("smoke", &only), &out, stage).unwrap();
        let again = super::plan(root, &figures, "smoke", &only, &out).unwrap();
        let ids = |p: &super::Plan| {
            p.graph
                .jobs
                .iter()
                .map(|j| j.identity.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&after), ids(&again));
    }

    /// After a run of every figure, cached jobs and lock entries no figure needs are forgotten; the
    /// needed ones stay, and so do your own model's.
    #[test]
    fn pruning_forgets_only_the_jobs_no_figure_needs() {
        use crate::lock::{Entry, Lock};
        let mut g = crate::test_support::empty_graph(&crate::test_support::root());
        let kept = g.add("kept", crate::test_support::pretrain(1)).unwrap();
        let out = tempfile::tempdir().unwrap();
        let jobs = crate::store::jobs_dir(out.path());
        let mut lock = Lock {
            version: crate::lock::LOCK_VERSION,
            ..Lock::default()
        };
        for key in [
            kept.as_str(),
            "pretrain-000000000000",
            "own-em-000000000000",
        ] {
            std::fs::create_dir_all(jobs.join(key)).unwrap();
            std::fs::write(jobs.join(format!("{key}.log")), "log").unwrap();
            let entry = Entry {
                identity: key.to_owned(),
                kind: "pretrain".into(),
                label: key.to_owned(),
                threads: 1,
                inputs: vec![],
                config: toml::Value::Table(Default::default()),
                outputs: Default::default(),
            };
            lock.jobs.insert(key.to_owned(), entry);
        }
        lock.save(out.path()).unwrap();
        super::prune_unneeded(out.path(), &g).unwrap();
        let left: BTreeSet<String> = std::fs::read_dir(&jobs)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        let own = "own-em-000000000000".to_owned();
        let want = [
            kept.clone(),
            format!("{kept}.log"),
            own.clone(),
            format!("{own}.log"),
        ];
        assert_eq!(left, BTreeSet::from(want));
        let lock = Lock::load(out.path()).unwrap();
        assert_eq!(lock.jobs.keys().collect::<Vec<_>>(), vec![&own, &kept]);
    }
}
