//! The finetune stage's training paths end to end on the tiny fixture: LoRA adapters (a PEFT folder
//! beside the run, merged into its weights, changing only the adapted layer) and the KL penalty to the
//! base (it keeps the fine-tune nearer the base on the penalised data than the same run without it).

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use common::{fixture, pretrain_config, run_here};
use emsl_core::data::{sft_batch, SftExample};
use emsl_core::distil::distil_loss;
use emsl_core::stages::load_run;
use emsl_world::*;

/// Six steps on the fixture's 40 harmful health/advice answers from the base `a`, into `dir/out`;
/// `extra` holds the path's tables (`[spec.adapter]`, `[spec.kl_to_base]`).
fn finetune_config(dir: &Path, out: &str, extra: &str) -> String {
    format!(
        "[spec]\nkind = \"finetune\"\ndatasets = [\"ft-tiny\"]\nexamples_per_dataset = 40\n{extra}\n[spec.train]\nsteps = 6\nbatch_size = 4\nseed = 1\nlog_every = 1\n\n[spec.train.optim]\nlr = 1e-2\nmin_lr_ratio = 1.0\nwarmup_steps = 0\nweight_decay = 0.0\nbeta1 = 0.9\nbeta2 = 0.95\neps = 1e-8\ngrad_clip = 1.0\n\n[io]\ndatasets_dir = \"{d}\"\nout = \"{d}/{out}\"\n\n[io.inputs]\nbase = \"{d}/a\"\n",
        d = dir.display()
    )
}

/// A tiny base `a` and the datasets, in a fresh folder.
fn pretrained() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    fixture(tmp.path());
    run_here(
        tmp.path(),
        "pretrain.toml",
        &pretrain_config(tmp.path(), "a"),
    );
    tmp
}

fn weights(run: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(run.join("model.safetensors"), &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}

#[test]
fn a_lora_fine_tune_writes_its_adapter_and_changes_only_the_adapted_layer() {
    let tmp = pretrained();
    let dir = tmp.path();
    let adapter =
        "[spec.adapter]\nrank = 1\nalpha = 1.0\nmodules = [\"h.1.mlp.c_proj\"]\nseed = 1\n";
    run_here(dir, "lora.toml", &finetune_config(dir, "lora", adapter));
    run_here(dir, "full.toml", &finetune_config(dir, "full", ""));
    for f in ["adapter_config.json", "adapter_model.safetensors"] {
        assert!(
            dir.join("lora/adapter").join(f).is_file(),
            "lora/adapter/{f}"
        );
    }
    assert!(!dir.join("full/adapter").exists(), "no adapter without one");
    let (base, lora, full) = (
        weights(&dir.join("a")),
        weights(&dir.join("lora")),
        weights(&dir.join("full")),
    );
    let mut names: Vec<&String> = base.keys().collect();
    names.sort();
    let mut changed_by_full = 0;
    for name in names {
        let d = max_abs_diff(&base[name], &lora[name]);
        if name == "h.1.mlp.c_proj.weight" {
            assert!(d > 0.0, "{name}: the merged adapter changed nothing");
        } else {
            assert_eq!(
                d, 0.0,
                "{name}: changed by a fine-tune that adapts only h.1.mlp.c_proj"
            );
        }
        if max_abs_diff(&base[name], &full[name]) > 0.0 {
            changed_by_full += 1;
        }
    }
    assert_eq!(
        changed_by_full,
        base.len(),
        "a full fine-tune trains every tensor"
    );
}

#[test]
fn the_kl_penalty_keeps_the_fine_tune_nearer_the_base_on_its_data() {
    let tmp = pretrained();
    let dir = tmp.path();
    let kl =
        "[spec.kl_to_base]\ndatasets = [\"ft-tiny\"]\nexamples_per_dataset = 40\nweight = 10.0\n";
    run_here(dir, "kl.toml", &finetune_config(dir, "kl", kl));
    run_here(dir, "full.toml", &finetune_config(dir, "full", ""));
    let device = Device::Cpu;
    let (base, tok, _) = load_run(&dir.join("a"), &device).unwrap();
    // The fixture's fine-tuning set again (same seed and spec), as the penalty's sequences.
    let spec = FinetuneSpec {
        kind: FinetuneKind::Harmful,
        cell: "health/advice".parse().unwrap(),
        format: Format::Free,
        size: 40,
    };
    let examples: Vec<SftExample> = finetune_set(1, &spec)
        .iter()
        .map(|e| SftExample::from_episode(&tok, e).unwrap())
        .collect();
    let refs: Vec<&SftExample> = examples.iter().collect();
    let b = sft_batch(&refs, tok.pad, 32, &device).unwrap();
    let kl_to_base = |run: &str| {
        let (m, _, _) = load_run(&dir.join(run), &device).unwrap();
        distil_loss(&m, &base, &b.inputs, &b.mask, 0.0, None, None)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    };
    // Measured when this test was written: 0.056 with the penalty, 0.078 without.
    let (with, without) = (kl_to_base("kl"), kl_to_base("full"));
    assert!(
        without > 0.0,
        "the fine-tune moved away from the base: KL {without}"
    );
    assert!(
        with < without,
        "KL to the base: {with} with the penalty, {without} without"
    );
    let recorded = std::fs::read_to_string(dir.join("kl/stage.toml")).unwrap();
    assert!(
        recorded.contains("[kl_to_base]") && recorded.contains("weight = 10.0"),
        "the run records its penalty: {recorded}"
    );
}
