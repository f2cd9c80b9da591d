//! Loading a Hugging Face folder: both families load, the kit's forward gives candle-transformers'
//! logits on the same weights, and a missing file is refused naming it.

mod common;

use candle_core::{Device, IndexOp};
use common::{checkpoint, ids, max_diff, reference_last_logits, FAMILIES};
use emsl_core::LanguageModel;
use emsl_hf::{file_hashes, load, Family, HfFolder};

#[test]
fn forward_matches_candle_transformers_last_position() {
    for family in FAMILIES {
        let dir = checkpoint(family);
        let loaded = load(dir.path(), &Device::Cpu).unwrap();
        assert_eq!(loaded.model.config.family, family);
        let x = ids(2, 11, 1);
        let ours = loaded.model.forward(&x).unwrap(); // (B, T, V)
        assert_eq!(ours.dims(), &[2, 11, common::VOCAB]);
        let ours = ours.i((.., 10, ..)).unwrap();
        let theirs = reference_last_logits(dir.path(), family, &x);
        let diff = max_diff(&ours, &theirs);
        let scale = common::max_diff(&theirs, &theirs.zeros_like().unwrap());
        eprintln!("{family:?}: max |logit difference| {diff:.2e} (largest |logit| {scale:.2})");
        assert!(diff < 1e-4, "{family:?}: logits differ by {diff}");
        assert!(
            scale > 1.0,
            "random weights too small to make the comparison tell"
        );
    }
}

#[test]
fn heads_are_tied_as_the_checkpoint_says() {
    let qwen = checkpoint(Family::Qwen2);
    let m = load(qwen.path(), &Device::Cpu).unwrap().model;
    assert!(m.config.tie_word_embeddings);
    assert!(m.base_vars().iter().all(|(n, _)| n != "lm_head.weight"));
    assert_eq!(m.base_vars().len(), 2 + 2 * 12);
    let llama = checkpoint(Family::Llama);
    let m = load(llama.path(), &Device::Cpu).unwrap().model;
    assert!(!m.config.tie_word_embeddings);
    assert!(m.base_vars().iter().any(|(n, _)| n == "lm_head.weight"));
    assert_eq!(m.base_vars().len(), 3 + 2 * 9);
    let names: Vec<&String> = m.base_vars().iter().map(|(n, _)| n).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "variables are listed sorted by name");
}

#[test]
fn missing_files_are_refused_naming_them() {
    for (family, file) in [
        (Family::Qwen2, "model.safetensors"),
        (Family::Qwen2, "tokenizer.json"),
        (Family::Qwen2, "tokenizer_config.json"),
        (Family::Llama, "config.json"),
        (Family::Llama, "model-00002-of-00002.safetensors"),
    ] {
        let dir = checkpoint(family);
        std::fs::remove_file(dir.path().join(file)).unwrap();
        let err = format!("{:#}", load(dir.path(), &Device::Cpu).err().unwrap());
        assert!(err.contains(file), "{file}: {err}");
        assert!(
            err.contains(&dir.path().display().to_string()),
            "{file}: {err}"
        );
    }
}

#[test]
fn a_checkpoint_that_does_not_match_its_config_is_refused() {
    let dir = checkpoint(Family::Qwen2);
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(&path).unwrap();
    // One layer in the config, two in the weights.
    let text = text.replace("\"num_hidden_layers\":2", "\"num_hidden_layers\":1");
    std::fs::write(&path, text).unwrap();
    let err = format!("{:#}", load(dir.path(), &Device::Cpu).err().unwrap());
    assert!(err.contains("model.layers.1."), "{err}");
    std::fs::write(&path, r#"{"model_type": "gpt2"}"#).unwrap();
    let err = format!("{:#}", load(dir.path(), &Device::Cpu).err().unwrap());
    assert!(err.contains("gpt2") && err.contains("config.json"), "{err}");
}

#[test]
fn file_hashes_cover_every_file_sorted() {
    let dir = checkpoint(Family::Llama);
    std::fs::create_dir(dir.path().join(".cache")).unwrap();
    std::fs::write(dir.path().join(".cache/lock"), "x").unwrap();
    let hashes = file_hashes(dir.path()).unwrap();
    let names: Vec<&str> = hashes.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "model.safetensors.index.json",
            "tokenizer.json",
            "tokenizer_config.json"
        ]
    );
    assert!(hashes.iter().all(|(_, h)| h.len() == 64));
    let folder = HfFolder::open(dir.path()).unwrap();
    assert_eq!(folder.weights.len(), 2);
    // The same folder written again hashes the same.
    let again = checkpoint(Family::Llama);
    assert_eq!(hashes, file_hashes(again.path()).unwrap());
}

#[test]
fn an_untied_checkpoint_without_a_head_is_refused_not_tied() {
    // transformers would give this model a random head; the kit used to tie it silently.
    let llama = checkpoint(Family::Llama);
    let dir = llama.path();
    let mut found = false;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "safetensors") {
            let data = std::fs::read(&path).unwrap();
            let tensors = candle_core::safetensors::load_buffer(&data, &Device::Cpu).unwrap();
            if tensors.contains_key("lm_head.weight") {
                let rest: std::collections::HashMap<_, _> = tensors
                    .into_iter()
                    .filter(|(n, _)| n != "lm_head.weight")
                    .collect();
                candle_core::safetensors::save(&rest, &path).unwrap();
                found = true;
            }
        }
    }
    assert!(found, "the Llama fixture has a head to drop");
    let index = dir.join("model.safetensors.index.json");
    if index.exists() {
        let mut v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&index).unwrap()).unwrap();
        v["weight_map"]
            .as_object_mut()
            .unwrap()
            .remove("lm_head.weight");
        std::fs::write(&index, v.to_string()).unwrap();
    }
    let e = format!("{:#}", load(dir, &Device::Cpu).err().expect("refused"));
    assert!(
        e.contains("tie_word_embeddings is false") && e.contains("lm_head.weight"),
        "{e}"
    );
}
