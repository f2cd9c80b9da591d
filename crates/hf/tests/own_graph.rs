//! Own-model stages as jobs of the kit's graph (`emsl_repro::own`, `cargo xtask own-model`): a config
//! runs once and is then up to date; the same files in another folder are the same job (paths are not
//! identity); a changed byte of the data is a new job; the lock lists every input file by its sha256
//! and the results link points at the job's outputs, which are what `emsl-hf job` writes by hand;
//! pruning forgets only the jobs no link points at.

mod common;

use std::path::{Path, PathBuf};

use common::{emsl_hf, finetune_config, long_checkpoint, write_set};
use emsl_hf::Family;
use emsl_repro::exec::{self, LocalRunner, Settings};
use emsl_repro::graph::JobBinary;
use emsl_repro::lock::Lock;
use emsl_repro::own;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn hf() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_emsl-hf"))
}

/// Runs a plan's graph into `out` on one thread with the emsl-hf binary, as `own-model` does.
fn execute(out: &Path, plan: &own::OwnPlan) -> anyhow::Result<exec::Report> {
    let settings = Settings {
        root: workspace_root(),
        out: out.to_path_buf(),
        jobs: 1,
        threads: 1,
        profile: "own-model".into(),
    };
    let runner = LocalRunner::new().with(JobBinary::OwnModel, hf(), vec!["job".into()]);
    exec::run(&settings, &plan.graph, &runner)
}

/// Plans `configs` into `out` and runs them on one thread; returns the run's report and the plan's
/// (name, key) pairs. Checks that the results a run will not run are the current ones.
fn run(out: &Path, cwd: &Path, configs: &[PathBuf]) -> (exec::Report, Vec<(String, String)>) {
    let plan = own::plan_configs(&workspace_root(), out, &hf(), cwd, configs).unwrap();
    let stale = own::not_current(out, &plan).unwrap();
    let report = execute(out, &plan).unwrap();
    own::link_results(out, &plan.results).unwrap();
    assert_eq!(stale.len(), report.ran.len(), "not current: {stale:?}");
    assert!(own::not_current(out, &plan).unwrap().is_empty());
    (report, plan.results)
}

/// A fine-tune config `name.toml` in `dir` of `model` on `data`, with relative paths from `dir`.
fn config(dir: &Path, name: &str, model: &str, data: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = finetune_config(
        "qwen2",
        Path::new(model),
        Path::new(data),
        Path::new("unused"),
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

#[test]
fn an_own_model_stage_is_a_cached_job_whose_identity_is_its_files() {
    let model = long_checkpoint(Family::Qwen2);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    copy_dir(model.path(), &w.join("model"));
    write_set(&w.join("set.jsonl"));
    let out = w.join("results-own");
    let first = config(w, "ft", "model", "set.jsonl");

    let (report, results) = run(&out, w, std::slice::from_ref(&first));
    assert_eq!((report.ran.len(), report.up_to_date), (1, 0));
    let key = results[0].1.clone();
    assert!(key.starts_with("own-finetune-"), "{key}");
    // The link names the job's outputs, and they are what the stage writes when run by hand.
    let by_hand = w.join("by-hand");
    let text = finetune_config("qwen2", &w.join("model"), &w.join("set.jsonl"), &by_hand);
    std::fs::write(w.join("by-hand.toml"), text).unwrap();
    let (ok, err) = emsl_hf(&["job", w.join("by-hand.toml").to_str().unwrap()]);
    assert!(ok, "{err}");
    let sums = |dir: &Path| std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    assert_eq!(sums(&out.join("ft")), sums(&by_hand));
    assert_eq!(
        std::fs::read_link(out.join("ft")).unwrap(),
        Path::new("jobs").join(&key)
    );
    // The lock records every input file by its sha256, under the input's name, and no path.
    let lock = Lock::load(&out).unwrap();
    let entry = &lock.jobs[&key];
    let data_sha = emsl_io::sha256_file(&w.join("set.jsonl")).unwrap();
    assert!(
        entry.inputs.contains(&format!("file data {data_sha}")),
        "{:?}",
        entry.inputs
    );
    let config_sha = emsl_io::sha256_file(&w.join("model/config.json")).unwrap();
    assert!(entry
        .inputs
        .contains(&format!("file model/config.json {config_sha}")));
    let recorded = toml::to_string(&entry.config).unwrap();
    assert!(!recorded.contains(w.to_str().unwrap()), "{recorded}");

    // `cargo xtask verify` checks the folder's files against the lock and compares no tables.
    let root = workspace_root();
    let report =
        emsl_repro::verify::verify(&root.join("datasets"), &out, &root.join("results")).unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    std::fs::write(out.join("jobs").join(&key).join("summary.json"), "{}").unwrap();
    let report =
        emsl_repro::verify::verify(&root.join("datasets"), &out, &root.join("results")).unwrap();
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    assert!(
        report.failures[0].contains("summary.json"),
        "{:?}",
        report.failures
    );

    // Again: the tampered output is no longer intact, so the job runs again; then it is up to date.
    let (report, _) = run(&out, w, std::slice::from_ref(&first));
    assert_eq!((report.ran.len(), report.up_to_date), (1, 0));
    let (report, _) = run(&out, w, std::slice::from_ref(&first));
    assert_eq!((report.ran.len(), report.up_to_date), (0, 1));

    // The same files in other folders, under another config name: the same job.
    copy_dir(&w.join("model"), &w.join("elsewhere/model-copy"));
    std::fs::copy(w.join("set.jsonl"), w.join("elsewhere/data.jsonl")).unwrap();
    let moved = config(w, "moved", "elsewhere/model-copy", "elsewhere/data.jsonl");
    let (report, results) = run(&out, w, &[moved]);
    assert_eq!((report.ran.len(), report.up_to_date), (0, 1));
    assert_eq!(results[0].1, key);

    // One more record in the data: a new job, and the link follows it.
    let mut text = std::fs::read_to_string(w.join("set.jsonl")).unwrap();
    text.push_str(text.clone().lines().next().unwrap());
    text.push('\n');
    std::fs::write(w.join("set.jsonl"), text).unwrap();
    let (report, results) = run(&out, w, std::slice::from_ref(&first));
    assert_eq!((report.ran.len(), report.up_to_date), (1, 0));
    assert_ne!(results[0].1, key);
    assert_eq!(
        std::fs::read_link(out.join("ft")).unwrap(),
        Path::new("jobs").join(&results[0].1)
    );
    // Pruning keeps the first job while `moved` links to it; once that link is gone it forgets it,
    // and keeps the current one.
    assert!(own::prune_unlinked(&out).unwrap().is_empty());
    std::fs::remove_file(out.join("moved")).unwrap();
    assert_eq!(own::prune_unlinked(&out).unwrap(), vec![key.clone()]);
    assert!(!out.join("jobs").join(&key).exists());
    assert!(!out.join("jobs").join(format!("{key}.log")).exists());
    let lock = Lock::load(&out).unwrap();
    assert_eq!(lock.jobs.keys().collect::<Vec<_>>(), vec![&results[0].1]);
    let (report, _) = run(&out, w, std::slice::from_ref(&first));
    assert_eq!((report.ran.len(), report.up_to_date), (0, 1));
}

/// A job carries the sha256 of every input file as planned: data edited between the plan and the run
/// (a job queued on Slurm for hours) fails the job, naming the input, instead of filing outputs of
/// other files under the planned identity.
#[test]
fn a_job_whose_inputs_changed_after_the_plan_is_refused() {
    let model = long_checkpoint(Family::Qwen2);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    write_set(&w.join("set.jsonl"));
    let out = w.join("results-own");
    let cfg = config(w, "ft", model.path().to_str().unwrap(), "set.jsonl");
    let plan = own::plan_configs(&workspace_root(), &out, &hf(), w, &[cfg]).unwrap();
    std::fs::write(w.join("set.jsonl"), "{}\n").unwrap();
    let Err(e) = execute(&out, &plan) else {
        panic!("a job ran on data that changed after its plan")
    };
    let e = format!("{e:#}");
    assert!(
        e.contains("[spec] data") && e.contains("changed since the job was planned"),
        "{e}"
    );
    assert!(!out.join("jobs").join(&plan.results[0].1).exists());
}

#[test]
fn a_bad_config_or_a_taken_name_fails_the_plan_before_anything_runs() {
    let model = long_checkpoint(Family::Qwen2);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    write_set(&w.join("set.jsonl"));
    let out = w.join("results-own");
    let plan = |configs: &[PathBuf]| {
        own::plan_configs(&workspace_root(), &out, &hf(), w, configs).map(|_| ())
    };
    let model_path = model.path().to_str().unwrap();
    // A model folder named as the other family.
    let wrong = w.join("wrong.toml");
    let text = finetune_config("llama", model.path(), &w.join("set.jsonl"), Path::new("x"));
    std::fs::write(&wrong, text).unwrap();
    let e = format!("{:#}", plan(std::slice::from_ref(&wrong)).unwrap_err());
    assert!(e.contains("wrong.toml") && e.contains("model_type"), "{e}");
    // A data file that is not there.
    let missing = config(w, "missing", model_path, "nowhere.jsonl");
    let e = format!("{:#}", plan(&[missing]).unwrap_err());
    assert!(e.contains("nowhere.jsonl"), "{e}");
    // Two configs of one name.
    std::fs::create_dir(w.join("b")).unwrap();
    let a = config(w, "same", model_path, "set.jsonl");
    let b = config(&w.join("b"), "same", model_path, "set.jsonl");
    let e = format!("{:#}", plan(&[a.clone(), b]).unwrap_err());
    assert!(e.contains("rename one"), "{e}");
    // A results name taken by a folder of someone else's.
    std::fs::create_dir_all(out.join("same")).unwrap();
    let e = format!("{:#}", plan(&[a]).unwrap_err());
    assert!(e.contains("is not a link"), "{e}");
    assert!(!out.join("jobs").exists(), "nothing ran");
}

/// Not a check of its own: writes `cluster/test.sh`'s fixture (a tiny Qwen2 checkpoint, a chat set
/// and a fine-tune config with absolute paths, `ft.toml`) into the folder `EMSL_OWN_FIXTURE` names,
/// for `own-model --executor slurm` on a real one-node Slurm. Run with `--ignored`.
#[test]
#[ignore = "writes cluster/test.sh's fixture when EMSL_OWN_FIXTURE is set"]
fn write_the_cluster_test_fixture() {
    let dir = PathBuf::from(std::env::var_os("EMSL_OWN_FIXTURE").expect("set EMSL_OWN_FIXTURE"));
    let dir = std::path::absolute(dir).unwrap();
    std::fs::create_dir_all(dir.join("model")).unwrap();
    common::write_long_checkpoint(&dir.join("model"), Family::Qwen2, 7);
    write_set(&dir.join("set.jsonl"));
    let text = finetune_config(
        "qwen2",
        &dir.join("model"),
        &dir.join("set.jsonl"),
        Path::new("x"),
    );
    std::fs::write(dir.join("ft.toml"), text).unwrap();
}
