//! Adapters as PEFT 0.21 and 0.22 write them load into the kit: `target_modules` as short names
//! (PEFT's way) or full ones (the kit's), the modules taken from the tensor names; and every key of
//! PEFT's `LoraConfig` that the kit does not compute is refused naming it.
//!
//! The fixtures under `fixtures/peft/` are `adapter_config.json` as PEFT 0.21.2's `save_pretrained`
//! writes it (every field of its `LoraConfig` and `PeftConfig`, keys sorted), for
//! `LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])` and for an rsLoRA adapter of
//! rank 2 and alpha 16 on every linear layer, and as PEFT 0.22.0 writes the first (one key more,
//! `astra_config`). PEFT's tensor names are the kit's own.

mod common;

use std::path::Path;

use candle_core::{Device, Tensor};
use common::{checkpoint, ids, max_diff};
use emsl_core::LanguageModel;
use emsl_hf::{load, load_peft, save_peft, Family, HfLoraConfig, HfModel};
use serde_json::{json, Value};

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/fixtures/peft/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A model of `family` with adapters on `modules` whose `B` is random, so that they change the
/// logits, saved by the kit into `dir`.
fn adapted(family: Family, cfg: &HfLoraConfig, dir: &Path) -> HfModel {
    let base = checkpoint(family);
    let mut m = load(base.path(), &Device::Cpu).unwrap().model;
    m.attach_lora(cfg).unwrap();
    for (_, a) in m.adapters() {
        let b = Tensor::randn(0f32, 0.5, a.b.dims(), &Device::Cpu).unwrap();
        a.b.set(&b).unwrap();
    }
    save_peft(dir, &m, cfg).unwrap();
    m
}

fn lora(rank: usize, alpha: f64, use_rslora: bool, modules: &[&str]) -> HfLoraConfig {
    HfLoraConfig {
        rank,
        alpha,
        use_rslora,
        modules: modules.iter().map(|m| m.to_string()).collect(),
        seed: 3,
    }
}

/// The logits of a fresh `family` model with the adapters of `dir`.
fn logits_with_adapter(family: Family, dir: &Path) -> Tensor {
    let base = checkpoint(family);
    let mut m = load(base.path(), &Device::Cpu).unwrap().model;
    m.attach_adapters(load_peft(dir, &Device::Cpu).unwrap().adapters)
        .unwrap();
    m.forward(&ids(2, 9, 4)).unwrap()
}

fn write_config(dir: &Path, cfg: &Value) {
    std::fs::write(dir.join("adapter_config.json"), cfg.to_string()).unwrap();
}

#[test]
fn peft_short_target_modules_load_to_the_same_logits() {
    let dir = tempfile::tempdir().unwrap();
    let m = adapted(
        Family::Qwen2,
        &lora(4, 8.0, false, &["q_proj", "v_proj"]),
        dir.path(),
    );
    let expected = m.forward(&ids(2, 9, 4)).unwrap();
    let base = checkpoint(Family::Qwen2);
    let plain = load(base.path(), &Device::Cpu).unwrap().model;
    assert!(max_diff(&expected, &plain.forward(&ids(2, 9, 4)).unwrap()) > 1e-2);
    // The kit's own config (full names) and PEFT's (short names) give the same adapter.
    let ours = logits_with_adapter(Family::Qwen2, dir.path());
    assert_eq!(max_diff(&ours, &expected), 0.0);
    for name in ["peft-0.21-short-names.json", "peft-0.22-short-names.json"] {
        let peft = fixture(name);
        assert_eq!(peft["target_modules"], json!(["v_proj", "q_proj"]));
        write_config(dir.path(), &peft);
        let read = load_peft(dir.path(), &Device::Cpu).unwrap();
        assert_eq!((read.rank, read.alpha, read.use_rslora), (4, 8.0, false));
        let modules: Vec<&str> = read.adapters.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(
            modules,
            [
                "model.layers.0.self_attn.q_proj",
                "model.layers.0.self_attn.v_proj",
                "model.layers.1.self_attn.q_proj",
                "model.layers.1.self_attn.v_proj"
            ]
        );
        assert!(read.adapters.iter().all(|(_, a)| a.scale == 2.0));
        let theirs = logits_with_adapter(Family::Qwen2, dir.path());
        assert_eq!(max_diff(&theirs, &expected), 0.0, "{name}");
    }
}

#[test]
fn peft_rslora_on_every_linear_layer_is_scaled_by_alpha_over_root_r() {
    let dir = tempfile::tempdir().unwrap();
    let m = adapted(
        Family::Llama,
        &lora(2, 16.0, true, &["all-linear"]),
        dir.path(),
    );
    let expected = m.forward(&ids(2, 9, 4)).unwrap();
    write_config(dir.path(), &fixture("peft-0.21-rslora-all-linear.json"));
    let read = load_peft(dir.path(), &Device::Cpu).unwrap();
    assert_eq!(read.adapters.len(), 2 * 7);
    let root = 16.0 / 2f64.sqrt();
    assert!(read
        .adapters
        .iter()
        .all(|(_, a)| (a.scale - root).abs() < 1e-12));
    let diff = max_diff(&logits_with_adapter(Family::Llama, dir.path()), &expected);
    assert_eq!(diff, 0.0);
}

/// The error of loading the adapter of `dir` with `cfg` as its config.
fn refusal(dir: &Path, cfg: &Value) -> String {
    write_config(dir, cfg);
    let err = format!("{:#}", load_peft(dir, &Device::Cpu).err().unwrap());
    eprintln!("{err}");
    err
}

#[test]
fn what_the_kit_does_not_compute_is_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    adapted(
        Family::Qwen2,
        &lora(4, 8.0, false, &["q_proj", "v_proj"]),
        dir.path(),
    );
    let cases = [
        ("use_dora", json!(true)),
        ("rank_pattern", json!({"q_proj": 8})),
        ("alpha_pattern", json!({"v_proj": 32})),
        ("modules_to_save", json!(["lm_head"])),
        ("layers_to_transform", json!([0])),
        ("bias", json!("all")),
        ("fan_in_fan_out", json!(true)),
        ("init_lora_weights", json!("pissa")),
        ("astra_config", json!({"cache_file": null})),
        ("peft_type", json!("IA3")),
        ("a_key_from_a_later_peft", json!(1)),
    ];
    let path = dir.path().join("adapter_config.json").display().to_string();
    for (key, value) in cases {
        let mut cfg = fixture("peft-0.21-short-names.json");
        cfg[key] = value;
        let err = refusal(dir.path(), &cfg);
        assert!(err.contains(&format!("key '{key}'")), "{key}: {err}");
        assert!(err.contains(&path), "{key}: {err}");
    }
}

#[test]
fn tensors_and_target_modules_must_agree() {
    let dir = tempfile::tempdir().unwrap();
    adapted(
        Family::Qwen2,
        &lora(4, 8.0, false, &["q_proj", "v_proj"]),
        dir.path(),
    );
    // A target with no tensors, and a module with tensors but no target.
    let mut cfg = fixture("peft-0.21-short-names.json");
    cfg["target_modules"] = json!(["q_proj", "v_proj", "k_proj"]);
    assert!(refusal(dir.path(), &cfg).contains("target_modules names 'k_proj'"));
    cfg["target_modules"] = json!(["q_proj"]);
    let err = refusal(dir.path(), &cfg);
    assert!(
        err.contains("module 'model.layers.0.self_attn.v_proj'"),
        "{err}"
    );
    // A rank that is not the tensors'.
    let mut cfg = fixture("peft-0.21-short-names.json");
    cfg["r"] = json!(8);
    assert!(refusal(dir.path(), &cfg).contains("with r = 8"));
    // A tensor that is not a LoRA matrix (DoRA's magnitude vector).
    let path = dir.path().join("adapter_model.safetensors");
    let mut tensors = candle_core::safetensors::load(&path, &Device::Cpu).unwrap();
    let name = "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector";
    tensors.insert(
        name.into(),
        Tensor::ones(32, candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&tensors, &path).unwrap();
    let err = refusal(dir.path(), &fixture("peft-0.21-short-names.json"));
    assert!(
        err.contains(name) && err.contains("adapter_model.safetensors"),
        "{err}"
    );
}
