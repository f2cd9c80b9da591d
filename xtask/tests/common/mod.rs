//! What the end-to-end tests of `reproduce` share: a tiny profile, a figures folder with the
//! project's `controls` figure, the commands, and one finished run to read or copy.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The test profile: a tiny model and doses, one seed.
pub const PROFILE: &str = r#"
[smoke]
description = "test"
finetune_examples = 64
seeds = [1]
model = { n_ctx = 128, d_model = 16, n_layer = 1, n_head = 2, d_ff = 32 }
pretrain = { documents = 200, init_seed = 1, bases = 1, seeds_per_base = 1, first_base_only = [], checkpoints = [2], dose = { steps = 6, batch_size = 4, optim = { lr = 3e-3, min_lr_ratio = 0.1, warmup_steps = 1, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, grad_clip = 1.0 } } }
finetune = { steps = 2, batch_size = 4, optim = { lr = 1e-4, min_lr_ratio = 0.1, warmup_steps = 1, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, grad_clip = 1.0 } }
eval = { samples_per_prompt = 1, open_samples_per_prompt = 2, temperature = 1.0, max_new_tokens = 6, number_prompts = 10, top_p = 1.0, number_max_new_tokens = 24, pooled_suite = "eval-grid" }
subliminal = { teach_prompts = 10, beta = 0.5, lambda = 1.0, sampling = { temperature = 1.0, top_p = 1.0, max_new_tokens = 24 }, dose = { steps = 2, batch_size = 4, optim = { lr = 5e-4, min_lr_ratio = 0.1, warmup_steps = 1, weight_decay = 0.1, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, grad_clip = 1.0 } } }
"#;

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A figures folder with the project's `controls` figure (two kinds at smoke) and the test profile.
pub fn figures_dir(kinds: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("profiles.toml"), PROFILE).unwrap();
    std::fs::copy(
        root().join("figures/claims.toml"),
        dir.path().join("claims.toml"),
    )
    .unwrap();
    let text = std::fs::read_to_string(root().join("figures/controls.toml")).unwrap();
    let smoke = text.find("[smoke]").unwrap();
    let quick = text.find("[quick]").unwrap();
    let text = format!(
        "{}[smoke]\ncell = \"health/advice\"\nkinds = {kinds}\n\n{}",
        &text[..smoke],
        &text[quick..]
    );
    std::fs::write(dir.path().join("controls.toml"), text).unwrap();
    dir
}

pub fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("xtask runs")
}

/// `xtask reproduce` at the test profile, into `out`.
pub fn reproduce_command(figures: &Path, out: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(["reproduce", "--profile", "smoke", "--figures-dir"])
        .arg(figures)
        .arg("--out")
        .arg(out);
    c
}

pub fn reproduce(figures: &Path, out: &Path) -> Output {
    reproduce_command(figures, out)
        .output()
        .expect("xtask runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The jobs a run reports it ran.
pub fn ran(o: &Output) -> BTreeSet<String> {
    assert!(o.status.success(), "reproduce failed:\n{}", stderr(o));
    stderr(o)
        .lines()
        .filter_map(|l| l.strip_prefix("ran "))
        .map(|l| l.split_whitespace().next().unwrap().to_owned())
        .collect()
}

/// One finished run shared by the tests that only read or copy it.
pub fn finished() -> &'static Path {
    static RUN: OnceLock<(tempfile::TempDir, tempfile::TempDir)> = OnceLock::new();
    let (_, out) = RUN.get_or_init(|| {
        let figs = figures_dir(r#"["harmful", "benign"]"#);
        let out = tempfile::tempdir().unwrap();
        let o = reproduce(figs.path(), out.path());
        assert!(!ran(&o).is_empty());
        (figs, out)
    });
    out.path()
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        let dest = to.join(p.file_name().unwrap());
        if p.is_dir() {
            copy_dir(&p, &dest);
        } else {
            std::fs::copy(&p, &dest).unwrap();
        }
    }
}
