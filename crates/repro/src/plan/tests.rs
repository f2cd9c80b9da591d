//! The plan: the figure registry against the figure files, runs of some figures, the dataset stage
//! before planning, and pruning.

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
    let all =
        crate::spec::load_figures(&crate::test_support::root().join("figures"), "smoke").unwrap();
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
