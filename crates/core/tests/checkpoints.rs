//! Checkpoints kept during pretraining: keeping them changes no weight of the run, each one is the
//! model as it was after its step, an evaluation reads one by its step, and a list the stage cannot
//! keep is refused before any work.

mod common;

use std::path::Path;

use candle_core::Device;
use common::{fixture, pretrain_config, run_here};
use emsl_core::stages::load_run;

fn with_checkpoints(dir: &Path, out: &str, steps: &str) -> String {
    pretrain_config(dir, out).replace(
        "init_seed = 3\n",
        &format!("init_seed = 3\ncheckpoints = {steps}\n"),
    )
}

fn eval_config(dir: &Path, out: &str, model: &str, checkpoint: &str) -> String {
    format!(
        "[spec]\nkind = \"eval\"\nsuite = \"suite-tiny\"\nkinds = [\"cell\", \"open\"]\nmax_prompts = 100\nprobe = true\n{checkpoint}\n[spec.eval]\nsamples_per_prompt = 2\nsamples_per_open_prompt = 2\nseed = 1\n\n[spec.eval.sampling]\ntemperature = 1.0\ntop_p = 1.0\nmax_new_tokens = 8\n\n[io]\ndatasets_dir = \"{d}\"\nout = \"{d}/{out}\"\n\n[io.inputs]\nmodel = \"{d}/{model}\"\n",
        d = dir.display()
    )
}

#[test]
fn checkpoints_keep_the_run_as_it_was_and_change_none_of_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fixture(dir);
    run_here(dir, "plain.toml", &pretrain_config(dir, "plain"));
    run_here(dir, "kept.toml", &with_checkpoints(dir, "kept", "[2, 4]"));
    // The run's own files are the same bytes (the recorded config aside, which lists the checkpoints).
    for f in [
        "model.safetensors",
        "optimizer.safetensors",
        "train_log.jsonl",
    ] {
        let (a, b) = (dir.join("plain").join(f), dir.join("kept").join(f));
        if f == "model.safetensors" {
            // The model's metadata records the config; its tensors must be equal.
            let (ma, _, _) = load_run(&dir.join("plain"), &Device::Cpu).unwrap();
            let (mb, _, _) = load_run(&dir.join("kept"), &Device::Cpu).unwrap();
            assert_eq!(weights(&ma), weights(&mb), "final weights");
            continue;
        }
        assert_eq!(
            std::fs::read(&a).unwrap(),
            std::fs::read(&b).unwrap(),
            "{f}"
        );
    }
    let mut kept: Vec<String> = std::fs::read_dir(dir.join("kept/checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert_eq!(kept, ["step-2", "step-4"]);
    assert!(
        !dir.join("kept.checkpoints.tmp").exists(),
        "the temporary folder is gone"
    );
    // Each checkpoint is its own model, and says after which step it was kept.
    let (m2, _, meta2) = load_run(&dir.join("kept/checkpoints/step-2"), &Device::Cpu).unwrap();
    let (m4, _, meta4) = load_run(&dir.join("kept/checkpoints/step-4"), &Device::Cpu).unwrap();
    let (m6, _, meta6) = load_run(&dir.join("kept"), &Device::Cpu).unwrap();
    assert_eq!((meta2.step, meta4.step, meta6.step), (2, 4, 6));
    assert_ne!(weights(&m2), weights(&m4));
    assert_ne!(weights(&m4), weights(&m6));

    // An evaluation of step 2's checkpoint is an evaluation of that model; of a step not kept, an
    // error naming the field.
    run_here(
        dir,
        "e2.toml",
        &eval_config(dir, "e2", "kept", "checkpoint = 2\n"),
    );
    let copy = dir.join("copy-of-step-2");
    std::fs::create_dir(&copy).unwrap();
    for f in ["model.safetensors", "tokenizer.json"] {
        std::fs::copy(dir.join("kept/checkpoints/step-2").join(f), copy.join(f)).unwrap();
    }
    run_here(
        dir,
        "ec.toml",
        &eval_config(dir, "ec", "copy-of-step-2", ""),
    );
    let read = |out: &str| std::fs::read(dir.join(out).join("samples.jsonl")).unwrap();
    assert_eq!(read("e2"), read("ec"));
    assert_ne!(read("e2"), {
        run_here(dir, "ef.toml", &eval_config(dir, "ef", "kept", ""));
        read("ef")
    });
    let path = dir.join("e3.toml");
    std::fs::write(&path, eval_config(dir, "e3", "kept", "checkpoint = 3\n")).unwrap();
    let cfg = emsl_core::stages::read_config(&path).unwrap();
    let e = emsl_core::stages::run(&cfg, &Device::Cpu)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("checkpoint = 3") && e.contains("kept no checkpoint"),
        "{e}"
    );
}

#[test]
fn a_checkpoint_list_the_run_cannot_keep_is_refused_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fixture(dir);
    for bad in ["[4, 2]", "[0]", "[6]", "[2, 2]"] {
        let path = dir.join("bad.toml");
        std::fs::write(&path, with_checkpoints(dir, "bad", bad)).unwrap();
        let e = emsl_core::stages::read_config(&path)
            .err()
            .map(|e| format!("{e:#}"))
            .unwrap_or_else(|| panic!("checkpoints = {bad} was accepted"));
        assert!(
            e.contains("checkpoints = ") && e.contains("train.steps = 6"),
            "{bad}: {e}"
        );
        assert!(!dir.join("bad").exists());
    }
}

fn weights(m: &emsl_core::Gpt) -> Vec<Vec<f32>> {
    use emsl_core::LanguageModel;
    m.trainable_vars()
        .iter()
        .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect()
}
