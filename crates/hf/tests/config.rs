//! Reading `config.json` as transformers 4 and 5 write it: every generation of a family's config
//! gives the same model (the same logits on the same weights), and a field the kit does not know, or
//! a value it does not compute, is refused naming the file and the field.
//!
//! The fixtures under `fixtures/config/` are the configs transformers 4.45.2, 4.57.1 and 5.25.0 wrote
//! (`save_pretrained`) for the tests' tiny models: Qwen2 with a tied head, Llama with Llama 3.1's RoPE
//! scaling. 4.45 writes `torch_dtype`, 4.57 `dtype` and Qwen2's `layer_types`, 5.25 `rope_parameters`
//! and no top-level `rope_theta`.

mod common;

use std::path::Path;

use candle_core::Device;
use common::{checkpoint, ids, max_diff};
use emsl_core::LanguageModel;
use emsl_hf::config::default_inv_freq;
use emsl_hf::{load, DecoderConfig, Family};
use serde_json::{json, Value};

const GENERATIONS: [&str; 3] = ["4.45", "4.57", "5.25"];

fn fixture(family: Family, version: &str) -> Value {
    let path = format!(
        "{}/tests/fixtures/config/{}-transformers-{version}.json",
        env!("CARGO_MANIFEST_DIR"),
        family.name()
    );
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn write_config(dir: &Path, cfg: &Value) {
    std::fs::write(dir.join("config.json"), cfg.to_string()).unwrap();
}

/// The logits of the folder's model on fixed ids.
fn logits(dir: &Path) -> candle_core::Tensor {
    let model = load(dir, &Device::Cpu).unwrap().model;
    model.forward(&ids(2, 11, 1)).unwrap()
}

/// The error of reading `cfg` as the folder's config.json, with its context.
fn refusal(cfg: &Value) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_config(dir.path(), cfg);
    let path = dir.path().join("config.json");
    let err = format!("{:#}", DecoderConfig::from_file(&path).unwrap_err());
    assert!(err.contains(&path.display().to_string()), "{err}");
    eprintln!("{err}");
    err
}

#[test]
fn every_transformers_generation_gives_the_same_logits() {
    for family in common::FAMILIES {
        let dir = checkpoint(family);
        // The tests' own config (transformers 4 keys, hand-written): the reference.
        let reference = logits(dir.path());
        for version in GENERATIONS {
            let cfg = fixture(family, version);
            if version == "5.25" {
                assert!(cfg.get("rope_theta").is_none() && cfg.get("rope_parameters").is_some());
            }
            write_config(dir.path(), &cfg);
            let diff = max_diff(&logits(dir.path()), &reference);
            assert_eq!(diff, 0.0, "{family:?} {version}: logits differ by {diff}");
        }
        // The wrong base (candle-transformers' default, which the kit used to take when the v5 key
        // was ignored) moves the logits clearly: the test above can tell the bases apart.
        let mut wrong = fixture(family, "5.25");
        let theta = if family == Family::Llama { 1e4 } else { 1e6 };
        wrong["rope_parameters"]["rope_theta"] = json!(theta);
        write_config(dir.path(), &wrong);
        let diff = max_diff(&logits(dir.path()), &reference);
        eprintln!("{family:?}: base {theta} moves the logits by up to {diff:.3}");
        assert!(
            diff > 1e-2,
            "{family:?}: another base moved the logits by {diff} only"
        );
    }
}

#[test]
fn llama3_scaling_reads_the_same_from_either_key_as_transformers_computes_it() {
    let v4 = DecoderConfig::from_json(&fixture(Family::Llama, "4.57").to_string()).unwrap();
    let v5 = DecoderConfig::from_json(&fixture(Family::Llama, "5.25").to_string()).unwrap();
    assert_eq!(v4.inv_freq, v5.inv_freq);
    // head_dim 8, theta 5e5: wavelengths 2pi/f of about 6, 167, 4443 and 118,000 against
    // original / high = 2048 and original / low = 8192 (factor 32): the first two are kept, the
    // last is slowed by the factor, the third is interpolated with smooth = (8192 / wavelength - 1) / 3.
    let plain = default_inv_freq(5e5, 8);
    let f = &v5.inv_freq;
    assert_eq!(f[..2], plain[..2]);
    assert!((f[3] - plain[3] / 32.0).abs() < 1e-18);
    let smooth = (8192.0 * plain[2] / (2.0 * std::f64::consts::PI) - 1.0) / 3.0;
    assert!((0.28..0.29).contains(&smooth), "{smooth}");
    let expected = (1.0 - smooth) * plain[2] / 32.0 + smooth * plain[2];
    assert!((f[2] - expected).abs() < 1e-15, "{} vs {expected}", f[2]);
}

#[test]
fn a_config_without_any_base_takes_transformers_documented_default() {
    for family in common::FAMILIES {
        let mut cfg = fixture(family, "5.25");
        let map = cfg.as_object_mut().unwrap();
        map.remove("rope_parameters");
        let read = DecoderConfig::from_json(&cfg.to_string()).unwrap();
        assert_eq!(read.inv_freq, default_inv_freq(10_000.0, 8), "{family:?}");
    }
}

#[test]
fn an_unknown_field_is_refused_naming_it_and_the_fix() {
    for family in common::FAMILIES {
        let mut cfg = fixture(family, "5.25");
        cfg["sliding_window_pattern"] = json!(2);
        let err = refusal(&cfg);
        assert!(
            err.contains("field 'sliding_window_pattern'") && err.contains("delete it"),
            "{err}"
        );
    }
}

#[test]
fn rope_types_the_kit_does_not_compute_are_refused_from_either_key() {
    let mut v5 = fixture(Family::Llama, "5.25");
    v5["rope_parameters"]["rope_type"] = json!("yarn");
    let err = refusal(&v5);
    assert!(
        err.contains("'rope_parameters.rope_type' = \"yarn\""),
        "{err}"
    );
    let mut v4 = fixture(Family::Qwen2, "4.45");
    v4["rope_scaling"] = json!({"type": "linear", "factor": 2.0});
    let err = refusal(&v4);
    assert!(
        err.contains("'rope_scaling.rope_type' = \"linear\""),
        "{err}"
    );
    // A key of the scaling object the kit does not read.
    let mut extra = fixture(Family::Llama, "4.57");
    extra["rope_scaling"]["attention_factor"] = json!(1.5);
    assert!(refusal(&extra).contains("'rope_scaling.attention_factor'"));
    // llama3 without one of its parameters.
    let mut missing = fixture(Family::Llama, "5.25");
    missing["rope_parameters"]
        .as_object_mut()
        .unwrap()
        .remove("low_freq_factor");
    assert!(refusal(&missing).contains("'rope_parameters.low_freq_factor' is missing"));
}

#[test]
fn the_two_generations_disagreeing_is_refused() {
    let mut cfg = fixture(Family::Qwen2, "5.25");
    cfg["rope_theta"] = json!(1e6);
    let err = refusal(&cfg);
    assert!(
        err.contains("'rope_theta' = 1000000") && err.contains("'rope_parameters.rope_theta'"),
        "{err}"
    );
    let mut cfg = fixture(Family::Llama, "5.25");
    cfg["rope_scaling"] = json!({"rope_type": "default"});
    let err = refusal(&cfg);
    assert!(
        err.contains("'rope_scaling' = {\"rope_type\":\"default\"} and 'rope_parameters'"),
        "{err}"
    );
}

#[test]
fn values_the_forward_does_not_compute_are_refused_naming_the_field() {
    let cases: [(Family, &str, Value); 9] = [
        (Family::Llama, "attention_bias", json!(true)),
        (Family::Llama, "mlp_bias", json!(true)),
        (Family::Llama, "rope_interleaved", json!(true)),
        (Family::Llama, "hidden_act", json!("gelu")),
        (Family::Qwen2, "use_sliding_window", json!(true)),
        (
            Family::Qwen2,
            "layer_types",
            json!(["full_attention", "sliding_attention"]),
        ),
        (Family::Qwen2, "attention_dropout", json!(0.1)),
        (
            Family::Qwen2,
            "quantization_config",
            json!({"quant_method": "gptq"}),
        ),
        (
            Family::Llama,
            "architectures",
            json!(["LlamaForSequenceClassification"]),
        ),
    ];
    for (family, field, value) in cases {
        let mut cfg = fixture(family, "5.25");
        cfg[field] = value;
        let err = refusal(&cfg);
        assert!(err.contains(&format!("field '{field}'")), "{field}: {err}");
    }
    let mut cfg = fixture(Family::Llama, "4.57");
    cfg["head_dim"] = json!(16);
    assert!(refusal(&cfg).contains("field 'head_dim' = 16"));
}

#[test]
fn a_missing_size_is_refused_and_llama_kv_heads_default_to_the_heads() {
    let mut cfg = fixture(Family::Qwen2, "4.57");
    cfg.as_object_mut().unwrap().remove("rms_norm_eps");
    assert!(refusal(&cfg).contains("field 'rms_norm_eps' is missing"));
    let mut cfg = fixture(Family::Qwen2, "4.57");
    cfg.as_object_mut().unwrap().remove("num_key_value_heads");
    assert!(refusal(&cfg).contains("field 'num_key_value_heads' is missing"));
    // Llama 1's configs have no num_key_value_heads: every head its own keys and values.
    let mut cfg = fixture(Family::Llama, "4.57");
    cfg.as_object_mut().unwrap().remove("num_key_value_heads");
    let read = DecoderConfig::from_json(&cfg.to_string()).unwrap();
    assert_eq!((read.num_heads, read.num_kv_heads), (4, 4));
}
