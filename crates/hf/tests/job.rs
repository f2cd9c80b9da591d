//! `emsl-hf job CONFIG`: a stage config runs the same computation as the command line (the same bytes),
//! names a model as `{ family, path }` and refuses a folder of another family before writing anything,
//! and every shipped example under configs/own-model/ parses.

mod common;

use std::path::Path;

use common::{emsl_hf, finetune, finetune_config, long_checkpoint, write_set};
use emsl_hf::stage::{read_stage_config, HfStageSpec};
use emsl_hf::Family;

#[test]
fn the_job_computes_what_the_command_computes() {
    let model = long_checkpoint(Family::Qwen2);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("set.jsonl");
    write_set(&data);
    let by_job = work.path().join("by-job");
    let config = work.path().join("finetune.toml");
    std::fs::write(
        &config,
        finetune_config("qwen2", model.path(), &data, &by_job),
    )
    .unwrap();
    let (ok, err) = emsl_hf(&["job", config.to_str().unwrap()]);
    assert!(ok, "{err}");

    let by_command = work.path().join("by-command");
    let (ok, err) = finetune(
        model.path(),
        &data,
        &by_command,
        &["--lora-rank", "1", "--lora-modules", "q_proj,v_proj"],
    );
    assert!(ok, "{err}");
    let sums = |dir: &Path| std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    assert_eq!(sums(&by_job), sums(&by_command));
    assert!(sums(&by_job).contains("adapter_model.safetensors"));
    assert!(emsl_io::check_sha256sums(&by_job).unwrap().is_empty());
}

#[test]
fn a_model_of_another_family_is_refused_naming_the_field_and_nothing_is_written() {
    let model = long_checkpoint(Family::Qwen2);
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("set.jsonl");
    write_set(&data);
    let out = work.path().join("out");
    let config = work.path().join("finetune.toml");
    std::fs::write(&config, finetune_config("llama", model.path(), &data, &out)).unwrap();
    let (ok, err) = emsl_hf(&["job", config.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        err.contains("[spec.model]")
            && err.contains("family = \"llama\"")
            && err.contains("model_type \"qwen2\""),
        "{err}"
    );
    assert!(!out.exists());

    // An unknown field is named with the file.
    let text = finetune_config("qwen2", model.path(), &data, &out).replace("epochs", "epoch");
    std::fs::write(&config, text).unwrap();
    let (ok, err) = emsl_hf(&["job", config.to_str().unwrap()]);
    assert!(
        !ok && err.contains("finetune.toml") && err.contains("epoch"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn every_shipped_example_parses_and_names_its_kind() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/own-model");
    let mut kinds = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let cfg = read_stage_config(&path).unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(
            path.file_stem().unwrap().to_str().unwrap(),
            cfg.spec.kind(),
            "{}",
            path.display()
        );
        if let HfStageSpec::Em(em) = &cfg.spec {
            // Betley et al.'s open-models settings.
            let lora = em.finetune.lora.as_ref().unwrap();
            assert_eq!((lora.rank, lora.alpha, lora.use_rslora), (32, 64.0, true));
            assert_eq!(
                (em.finetune.batch_size, em.finetune.grad_accumulation),
                (2, 8)
            );
            assert_eq!(em.answers.samples_per_question, 100);
        }
        kinds.push(cfg.spec.kind());
    }
    kinds.sort();
    assert_eq!(kinds, ["distil", "em", "finetune", "judge"]);
}

/// `job --plan` runs nothing: it prints the spec with each input named instead of pathed, the spec
/// with absolute paths (relative ones from the working directory), and every file of each input.
#[test]
fn the_plan_names_inputs_resolves_paths_and_lists_files() {
    let model = long_checkpoint(Family::Qwen2);
    let work = tempfile::tempdir().unwrap();
    write_set(&work.path().join("set.jsonl"));
    let out = work.path().join("never");
    let text = finetune_config("qwen2", model.path(), Path::new("set.jsonl"), &out);
    std::fs::write(work.path().join("ft.toml"), text).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_emsl-hf"))
        .current_dir(work.path())
        .args(["job", "--plan", "ft.toml"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(plan["kind"], "finetune");
    assert_eq!(plan["spec"]["model"]["path"], "<model>");
    assert_eq!(plan["spec"]["data"], "<data>");
    let data = work.path().join("set.jsonl");
    assert_eq!(plan["resolved"]["data"], data.to_str().unwrap());
    assert_eq!(
        plan["resolved"]["model"]["path"],
        model.path().to_str().unwrap()
    );
    assert_eq!(plan["inputs"]["data"][0]["name"], "");
    let names: Vec<&str> = plan["inputs"]["model"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    let want = [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ];
    assert_eq!(names, want);
    assert!(!out.exists(), "a plan writes nothing");
}
