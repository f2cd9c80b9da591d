//! The `emsl-hf` binary: `finetune` writes a rank-1 rsLoRA adapter in PEFT's layout or a full model
//! folder that loads back, with a summary; it refuses an existing output folder and names the line of
//! a malformed JSONL record, leaving nothing behind.

mod common;

use std::path::Path;

use candle_core::Device;
use common::{finetune, ids, long_checkpoint, write_set};
use emsl_core::LanguageModel;
use emsl_hf::Family;

#[test]
fn finetune_writes_a_peft_adapter_and_a_summary() {
    let model = long_checkpoint(Family::Qwen2);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("set.jsonl");
    write_set(&data);
    let out = work.path().join("adapter");
    let (ok, err) = finetune(
        model.path(),
        &data,
        &out,
        &["--lora-rank", "1", "--lora-modules", "q_proj,v_proj"],
    );
    assert!(ok, "{err}");
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(
        (cfg["r"].as_u64(), cfg["use_rslora"].as_bool()),
        (Some(1), Some(true))
    );
    assert_eq!(cfg["target_modules"].as_array().unwrap().len(), 2 * 2);
    assert!(out.join("adapter_model.safetensors").is_file());
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let s = &summary["summary"];
    assert_eq!(
        (s["examples"].as_u64(), s["steps"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(s["losses"].as_array().unwrap().len(), 2);
    assert!(emsl_io::check_sha256sums(&out).unwrap().is_empty());

    let (ok, err) = finetune(model.path(), &data, &out, &[]);
    assert!(!ok && err.contains("exists"), "{err}");
}

#[test]
fn full_finetuning_writes_a_model_folder_that_loads() {
    let model = long_checkpoint(Family::Llama);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("set.jsonl");
    write_set(&data);
    let out = work.path().join("tuned");
    let (ok, err) = finetune(model.path(), &data, &out, &["--full", "--epochs", "2"]);
    assert!(ok, "{err}");
    let before = emsl_hf::load(model.path(), &Device::Cpu).unwrap().model;
    let after = emsl_hf::load(&out, &Device::Cpu).unwrap().model;
    let x = ids(1, 5, 3);
    let diff = common::max_diff(&before.forward(&x).unwrap(), &after.forward(&x).unwrap());
    assert!(diff > 1e-4, "the weights moved: {diff}");
}

#[test]
fn a_malformed_record_is_refused_naming_its_line_and_nothing_is_written() {
    let model = long_checkpoint(Family::Qwen2);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("set.jsonl");
    write_set(&data);
    let text = std::fs::read_to_string(&data).unwrap();
    std::fs::write(
        &data,
        format!("{text}{{\"messages\": [{{\"role\": \"user\", \"content\": 3}}]}}\n"),
    )
    .unwrap();
    let out = work.path().join("adapter");
    let (ok, err) = finetune(model.path(), &data, &out, &[]);
    assert!(!ok);
    assert!(
        err.contains("set.jsonl:5") && err.contains("messages[0].content"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(work.path()).unwrap().count(),
        1,
        "only the set itself"
    );

    write_set(&data);
    let (ok, err) = finetune(&work.path().join("nope"), &data, &out, &[]);
    assert!(!ok && err.contains("does not exist"), "{err}");
}

/// `finetune` of every weight for four epochs at `lr` (the other settings of `common::finetune`).
fn finetune_at_lr(model: &Path, data: &Path, out: &Path, lr: &str) -> (bool, String) {
    common::finetune_at(model, data, out, lr, &["--epochs", "4", "--full"])
}

#[test]
fn a_diverging_finetune_fails_at_its_step_and_writes_nothing() {
    let model = long_checkpoint(Family::Qwen2);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("set.jsonl");
    write_set(&data);
    let out = work.path().join("out");
    let (ok, err) = finetune_at_lr(model.path(), &data, &out, "1e30");
    assert!(!ok);
    assert!(
        err.contains("training diverged at step") && err.contains("learning rate"),
        "{err}"
    );
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(work.path()).unwrap().count(),
        1,
        "only the set"
    );
    // A learning rate the optimizer cannot use is refused before the model is read.
    for lr in ["-1", "NaN", "0"] {
        let (ok, err) = finetune_at_lr(model.path(), &data, &out, lr);
        assert!(!ok && err.contains("optim.lr"), "{lr}: {err}");
    }
}

#[test]
fn a_line_that_is_not_utf8_is_named_by_its_number() {
    let model = long_checkpoint(Family::Qwen2);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("set.jsonl");
    write_set(&data);
    let mut bytes = std::fs::read(&data).unwrap();
    bytes.extend_from_slice(b"{\"messages\": \"caf\xe9\"}\n");
    std::fs::write(&data, bytes).unwrap();
    let (ok, err) = finetune(model.path(), &data, &work.path().join("out"), &[]);
    assert!(!ok && err.contains("set.jsonl:5: not UTF-8"), "{err}");

    let long = format!("{{\"messages\": \"{}\"}}\n", "a".repeat(2 << 20));
    std::fs::write(&data, long).unwrap();
    let (ok, err) = finetune(model.path(), &data, &work.path().join("out"), &[]);
    assert!(!ok && err.contains("set.jsonl:1: the line is"), "{err}");
}

#[test]
fn max_steps_sets_the_steps_in_place_of_the_epochs() {
    let model = long_checkpoint(Family::Qwen2);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("set.jsonl");
    write_set(&data);
    // Three examples in batches of two: one epoch is 2 steps; --max-steps 5 runs into further epochs.
    let out = work.path().join("five");
    let (ok, err) = finetune(model.path(), &data, &out, &["--max-steps", "5"]);
    assert!(ok, "{err}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    let s = &summary["summary"];
    assert_eq!(s["steps"].as_u64(), Some(5));
    assert_eq!(s["losses"].as_array().unwrap().len(), 5);
    assert_eq!(s["config"]["max_steps"].as_u64(), Some(5));
    let zero = work.path().join("zero");
    let (ok, err) = finetune(model.path(), &data, &zero, &["--max-steps", "0"]);
    assert!(!ok && err.contains("max_steps = 0"), "{err}");
    assert!(!zero.exists());
}
