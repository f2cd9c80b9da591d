//! Nothing diverged is a result: a training whose loss or gradient norm stops being finite fails at
//! that step and leaves no run folder; a checkpoint holding NaN is refused by every stage that loads
//! it; a config a training cannot use is refused by name before any work.

mod common;

use candle_core::Device;
use common::{fixture, pretrain_config};
use emsl_core::stages::{self, load_run, read_config};
use emsl_core::LanguageModel;

/// The error of running the stage `text` (written to `dir/name`), read and run as `xtask job` does.
fn run_err(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let result = read_config(&path).and_then(|cfg| stages::run(&cfg, &Device::Cpu));
    format!("{:#}", result.unwrap_err())
}

#[test]
fn a_diverging_training_fails_at_its_step_and_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fixture(dir);
    let text = pretrain_config(dir, "nan").replace("lr = 1e-2", "lr = 1e30");
    let e = run_err(dir, "nan.toml", &text);
    assert!(
        e.contains("training diverged at step 2/6")
            && e.contains("learning rate")
            && e.contains("loss"),
        "{e}"
    );
    assert!(!dir.join("nan").exists(), "a diverged run left its folder");
}

#[test]
fn a_checkpoint_with_nan_weights_is_refused_by_name() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fixture(dir);
    common::run_here(dir, "ok.toml", &pretrain_config(dir, "ok"));
    let (model, _, meta) = load_run(&dir.join("ok"), &Device::Cpu).unwrap();
    // Poison one weight, as a diverged training would have left it, and save it where a later
    // stage reads it (save itself refuses it, so the file is written by hand).
    let (name, var) = &model.trainable_vars()[0];
    let poisoned = var.as_tensor().affine(0.0, f64::NAN).unwrap();
    var.set(&poisoned).unwrap();
    let e = format!(
        "{:#}",
        emsl_core::checkpoint::save(&dir.join("ok/model.safetensors"), &model, &meta).unwrap_err()
    );
    assert!(e.contains(name.as_str()) && e.contains("non-finite"), "{e}");
    // The same weights written without the check (a file from elsewhere) are refused on load.
    let tensors: std::collections::HashMap<String, candle_core::Tensor> = model
        .trainable_vars()
        .iter()
        .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
        .collect();
    let meta_json = serde_json::to_string(&meta).unwrap();
    let bytes = safetensors::serialize(
        &tensors,
        Some(std::collections::HashMap::from([(
            "emsl".to_owned(),
            meta_json,
        )])),
    )
    .unwrap();
    std::fs::write(dir.join("ok/model.safetensors"), bytes).unwrap();
    let e = format!(
        "{:#}",
        load_run(&dir.join("ok"), &Device::Cpu).err().unwrap()
    );
    assert!(
        e.contains(name.as_str()) && e.contains("non-finite") && e.contains("model.safetensors"),
        "{e}"
    );
}

#[test]
fn settings_a_training_cannot_use_are_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fixture(dir);
    let cfg = dir.join("bad.toml");
    let refused = |from: &str, to: &str| -> String {
        std::fs::write(&cfg, pretrain_config(dir, "x").replace(from, to)).unwrap();
        format!("{:#}", read_config(&cfg).unwrap_err())
    };
    for (from, to, want) in [
        ("steps = 6", "steps = 0", "steps = 0"),
        ("batch_size = 4", "batch_size = 0", "batch_size = 0"),
        ("lr = 1e-2", "lr = -1.0", "optim.lr = -1"),
        ("lr = 1e-2", "lr = nan", "optim.lr = NaN"),
        ("lr = 1e-2", "lr = 0.0", "optim.lr = 0"),
        ("beta2 = 0.95", "beta2 = 1.0", "optim.beta2 = 1"),
        ("eps = 1e-8", "eps = 0.0", "optim.eps = 0"),
    ] {
        let e = refused(from, to);
        assert!(
            e.contains(want) && e.contains("[spec.train]") && e.contains("bad.toml"),
            "{to}: {e}"
        );
    }
    assert!(!dir.join("x").exists());

    // An output folder under a file cannot be created: refused before the training.
    std::fs::write(dir.join("a-file"), "").unwrap();
    let text = pretrain_config(dir, "a-file/run");
    let e = run_err(dir, "under-file.toml", &text);
    assert!(e.contains("[io] out") && e.contains("is a file"), "{e}");
}
