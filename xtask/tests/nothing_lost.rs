//! Nothing lost, nothing poisoned, end to end: a user's file in a figure folder survives (the run
//! stops, naming it); a diverging training fails the run at its step and no table is written from
//! it; a refused run leaves no folder behind; a stage config that diverges exits non-zero through
//! `xtask job` with no output.

mod common;

use std::path::Path;

use common::*;

#[test]
fn a_file_the_kit_did_not_write_stops_the_figure_and_survives() {
    let figs = figures_dir(r#"["harmful", "benign"]"#);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    copy_dir(finished(), &out);
    // The figure's table job reruns (one of its outputs is gone) and finds the user's notes.
    std::fs::remove_file(out.join("controls/plot.svg")).unwrap();
    std::fs::write(out.join("controls/NOTES.txt"), "my notes").unwrap();
    let o = reproduce(figs.path(), &out);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("NOTES.txt") && e.contains("did not write") && e.contains("Move it"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("controls/NOTES.txt")).unwrap(),
        "my notes"
    );
    assert!(!out.join("controls/plot.svg").exists(), "nothing written");

    // At the top level of the results folder it is kept, and the folder verifies.
    std::fs::rename(out.join("controls/NOTES.txt"), out.join("NOTES.txt")).unwrap();
    let o = reproduce(figs.path(), &out);
    // The figure's table job, and the claims job that reads it; no training or evaluation.
    let kinds: Vec<String> = ran(&o)
        .iter()
        .map(|k| k.split('-').next().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, ["claims", "figure"], "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(out.join("NOTES.txt")).unwrap(),
        "my notes"
    );
    let o = xtask(&[
        "verify",
        "--results",
        out.to_str().unwrap(),
        "--reference",
        finished().to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
}

#[test]
fn a_diverging_pretraining_fails_the_run_and_writes_no_table() {
    let figs = figures_dir(r#"["harmful", "benign"]"#);
    let profile = PROFILE.replacen("lr = 3e-3", "lr = 1e12", 1);
    assert_ne!(profile, PROFILE);
    std::fs::write(figs.path().join("profiles.toml"), profile).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let o = reproduce(figs.path(), &out);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("training diverged at step") && e.contains("learning rate"),
        "{e}"
    );
    assert!(!out.join("controls").exists(), "a table was written");
    assert!(!out.join("CLAIMS.md").exists());
}

#[test]
fn a_refused_run_leaves_no_folder_behind() {
    let figs = figures_dir(r#"["harmful", "benign"]"#);
    std::fs::write(figs.path().join("profiles.toml"), "[smoke]\nseeds = 1\n").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("results");
    let o = reproduce(figs.path(), &out);
    assert!(!o.status.success());
    assert!(!out.exists(), "{} was left behind", out.display());
}

#[test]
fn a_diverging_stage_config_exits_non_zero_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // A datasets folder of its own: one small corpus of the reference composition.
    let datasets = dir.join("datasets");
    std::fs::create_dir_all(datasets.join("compositions")).unwrap();
    std::fs::copy(
        root().join("datasets/compositions/reference.toml"),
        datasets.join("compositions/reference.toml"),
    )
    .unwrap();
    let catalog = "seed = 7\n\n[[pretrain]]\nname = \"pretrain-tiny\"\ncomposition = \"reference\"\ndocuments = 50\n";
    std::fs::write(datasets.join("datasets.toml"), catalog).unwrap();
    let o = xtask(&["datasets", "--dir", datasets.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let demo = std::fs::read_to_string(root().join("configs/demo/pretrain.toml")).unwrap();
    let config = demo
        .replace("lr = 2e-3", "lr = 1e30")
        .replace("\"pretrain-reference\"", "\"pretrain-tiny\"")
        .replace("documents = 20000", "documents = 50")
        .replace("warmup_steps = 100", "warmup_steps = 1");
    assert!(config.contains("lr = 1e30") && config.contains("documents = 50"));
    let out = dir.join("base");
    let path = dir.join("diverge.toml");
    std::fs::write(&path, rewrite_io(&config, &datasets, &out)).unwrap();
    let o = xtask(&["job", path.to_str().unwrap()]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(e.contains("training diverged at step"), "{e}");
    assert!(!out.exists());
}

/// `config` with its `[io]` folders set to `datasets` and `out`.
fn rewrite_io(config: &str, datasets: &Path, out: &Path) -> String {
    config
        .lines()
        .map(|l| {
            if l.starts_with("out = ") {
                format!("out = {:?}", out.display().to_string())
            } else if l.starts_with("datasets_dir = ") {
                format!("datasets_dir = {:?}", datasets.display().to_string())
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
