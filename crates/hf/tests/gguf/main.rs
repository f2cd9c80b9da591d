//! `emsl-hf import-gguf` on tiny GGUF files the tests write as llama.cpp converts a checkpoint
//! (`write.rs`): every tensor type the importer takes dequantizes to candle's values in Hugging
//! Face's row order, the folder loads in the kit as the checkpoint's own config, the tokenizer cuts
//! text as each pre-tokenizer does (no space put before the text), the chat template comes along,
//! and a file the importer does not compute is refused by name, leaving no folder behind.

#[path = "../common/mod.rs"]
mod common;
mod write;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Value;
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};
use emsl_hf::gguf::{import, WeightDtype};
use emsl_hf::{ChatTemplate, DecoderConfig, Family, Message};
use write::{expected, hf_config, hf_weights, id, metadata, write_gguf};

/// Each of the seven types on some Llama tensor, as llama.cpp's mixes put them (an 8-bit
/// embedding, K-quants on the attention, 4-bit legacy types on the MLP, f32 norms).
fn llama_types(name: &str) -> GgmlDType {
    match name.rsplit('.').nth(1).unwrap_or(name) {
        "token_embd" => GgmlDType::Q8_0,
        "output" => GgmlDType::Q6K,
        "attn_q" => GgmlDType::Q4K,
        "attn_k" => GgmlDType::Q4_1,
        "attn_v" => GgmlDType::Q6K,
        "attn_output" => GgmlDType::F16,
        "ffn_gate" => GgmlDType::Q4_0,
        "ffn_up" => GgmlDType::Q4_1,
        "ffn_down" => GgmlDType::Q8_0,
        _ => GgmlDType::F32,
    }
}

fn qwen2_types(name: &str) -> GgmlDType {
    match name.rsplit('.').nth(1).unwrap_or(name) {
        "attn_q" | "attn_k" | "attn_v" if name.ends_with(".bias") => GgmlDType::F32,
        "attn_q" | "attn_k" => GgmlDType::Q8_0,
        "ffn_gate" | "ffn_up" | "ffn_down" | "attn_v" | "attn_output" => GgmlDType::Q4K,
        "token_embd" => GgmlDType::Q4_0,
        _ => GgmlDType::F32,
    }
}

/// A GGUF file of `family` written into `dir`, with its metadata and weights.
struct Written {
    path: PathBuf,
    weights: Vec<(String, Tensor)>,
}

fn written(
    dir: &Path,
    family: Family,
    tied: bool,
    meta: &[(String, Value)],
    types: fn(&str) -> GgmlDType,
) -> Written {
    let path = dir.join("model.gguf");
    let weights = hf_weights(family, tied, 3);
    write_gguf(&path, family, meta, &weights, types);
    Written { path, weights }
}

fn assert_weights_equal(dir: &Path, want: &HashMap<String, Tensor>) {
    let got = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut names: Vec<&String> = got.keys().collect();
    names.sort();
    let mut want_names: Vec<&String> = want.keys().collect();
    want_names.sort();
    assert_eq!(names, want_names);
    for (name, w) in want {
        let g = got[name].to_dtype(DType::F32).unwrap();
        let (g, w) = (g.flatten_all().unwrap(), w.flatten_all().unwrap());
        let (g, w): (Vec<f32>, Vec<f32>) = (g.to_vec1().unwrap(), w.to_vec1().unwrap());
        assert!(
            g == w,
            "{name}: the imported weight is not candle's dequantized value"
        );
    }
}

/// The ids the imported tokenizer gives `text`, without special tokens added.
fn encode(dir: &Path, text: &str) -> Vec<u32> {
    let tok = tokenizers::Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    tok.encode(text, false).unwrap().get_ids().to_vec()
}

/// Every byte of `text` as its own token (GPT-2's alphabet spells each byte as one character).
fn bytes(text: &str) -> Vec<u32> {
    text.bytes()
        .map(|b| id(&byte_char(b).to_string()))
        .collect()
}

/// GPT-2's `bytes_to_unicode`: printable bytes stand for themselves, the others are shifted past 255.
fn byte_char(b: u8) -> char {
    let printable = |b: u8| (b'!'..=b'~').contains(&b) || (0xA1..=0xAC).contains(&b) || b >= 0xAE;
    if printable(b) {
        return char::from(b);
    }
    let shift = (0..b).filter(|x| !printable(*x)).count() as u32;
    char::from_u32(256 + shift).unwrap()
}

#[test]
fn a_llama_file_of_every_type_imports_as_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let meta = metadata(Family::Llama, "smollm");
    let file = written(dir.path(), Family::Llama, false, &meta, llama_types);
    let out = dir.path().join("imported");
    let summary = import(&file.path, &out, WeightDtype::F32).unwrap();
    assert_eq!(summary.types.len(), 7, "{:?}", summary.types);
    assert!(!summary.tied_head);

    // Weights: candle's dequantization, q and k rows back in Hugging Face's order.
    assert_weights_equal(&out, &expected(&file.weights, llama_types));
    // The folder loads in the kit, with the config of the checkpoint it came from.
    let loaded = emsl_hf::load(&out, &Device::Cpu).unwrap();
    let want = DecoderConfig::from_json(&hf_config(Family::Llama, false).to_string()).unwrap();
    assert_eq!(loaded.model.config, want);
    // The chat template comes along with the special tokens it names.
    let text = loaded
        .template
        .render(&[Message::new("user", "Hi")], true)
        .unwrap();
    assert_eq!(
        text,
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(loaded.template.eos_token.as_deref(), Some("<|im_end|>"));
}

#[test]
fn a_qwen2_file_keeps_its_rows_and_biases() {
    let dir = tempfile::tempdir().unwrap();
    let meta = metadata(Family::Qwen2, "qwen2");
    let file = written(dir.path(), Family::Qwen2, true, &meta, qwen2_types);
    let out = dir.path().join("imported");
    let summary = import(&file.path, &out, WeightDtype::F32).unwrap();
    assert!(summary.tied_head);
    assert_weights_equal(&out, &expected(&file.weights, qwen2_types));
    let folder = emsl_hf::HfFolder::open(&out).unwrap();
    let want = DecoderConfig::from_json(&hf_config(Family::Qwen2, true).to_string()).unwrap();
    assert_eq!(folder.config().unwrap(), want);
    ChatTemplate::from_folder(&out).unwrap();
}

#[test]
fn bf16_weights_are_the_dequantized_values_rounded() {
    let dir = tempfile::tempdir().unwrap();
    let meta = metadata(Family::Llama, "smollm");
    let file = written(dir.path(), Family::Llama, true, &meta, llama_types);
    let out = dir.path().join("imported");
    import(&file.path, &out, WeightDtype::Bf16).unwrap();
    let got = candle_core::safetensors::load(out.join("model.safetensors"), &Device::Cpu).unwrap();
    let want = expected(&file.weights, llama_types);
    for (name, w) in &want {
        assert_eq!(got[name].dtype(), DType::BF16, "{name}");
        let w = w
            .to_dtype(DType::BF16)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let g = got[name].to_dtype(DType::F32).unwrap();
        let diff: f32 = (g - w)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert_eq!(diff, 0.0, "{name}");
    }
    emsl_hf::load(&out, &Device::Cpu).unwrap();
}

#[test]
fn each_pre_tokenizer_cuts_text_as_the_model_was_trained() {
    let dir = tempfile::tempdir().unwrap();
    let mut folders = HashMap::new();
    for (family, pre) in [
        (Family::Llama, "smollm"),
        (Family::Qwen2, "qwen2"),
        (Family::Llama, "llama-bpe"),
    ] {
        let sub = dir.path().join(pre);
        std::fs::create_dir(&sub).unwrap();
        let file = written(&sub, family, true, &metadata(family, pre), qwen2_types);
        let out = sub.join("imported");
        import(&file.path, &out, WeightDtype::F32).unwrap();
        folders.insert(pre, out);
    }
    for out in folders.values() {
        // No space is put before the text (candle's own GGUF tokenizer adds one).
        assert_eq!(encode(out, "Hi"), vec![id("Hi")]);
        assert_eq!(encode(out, " the"), vec![id("Ġth"), id("e")]);
        // Control tokens are matched whole.
        assert_eq!(
            encode(out, "<|im_start|>Hi<|im_end|>"),
            vec![id("<|im_start|>"), id("Hi"), id("<|im_end|>")]
        );
        // Text outside ASCII falls to its UTF-8 bytes.
        assert_eq!(encode(out, "é→"), bytes("é→"));
    }
    // SmolLM and Qwen2 cut every digit apart, so "12" is never merged; Llama 3 cuts runs of three.
    assert_eq!(encode(&folders["smollm"], "12345"), bytes("12345"));
    assert_eq!(encode(&folders["qwen2"], "12345"), bytes("12345"));
    let mut llama3 = vec![id("12")];
    llama3.extend(bytes("345"));
    assert_eq!(encode(&folders["llama-bpe"], "12345"), llama3);
}

#[test]
fn a_file_that_adds_its_bos_token_gets_a_tokenizer_that_adds_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut meta = metadata(Family::Llama, "llama-bpe");
    set(&mut meta, "tokenizer.ggml.add_bos_token", Value::Bool(true));
    let file = written(dir.path(), Family::Llama, true, &meta, llama_types);
    let out = dir.path().join("imported");
    import(&file.path, &out, WeightDtype::F32).unwrap();
    let tok = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let with = tok.encode("Hi", true).unwrap().get_ids().to_vec();
    assert_eq!(with, vec![id("<|im_start|>"), id("Hi")]);
    assert_eq!(encode(&out, "Hi"), vec![id("Hi")]);
    let cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("tokenizer_config.json")).unwrap())
            .unwrap();
    assert_eq!(cfg["add_bos_token"], true);
    assert_eq!(cfg["bos_token"], "<|im_start|>");
}

/// Imports a tiny Llama file after `edit` changed its metadata or `types` its tensor types, and
/// returns the error; checks that no folder (or staging folder) was left behind.
fn refused(
    edit: impl FnOnce(&mut Vec<(String, Value)>),
    types: fn(&str) -> GgmlDType,
    extra_tensor: Option<&str>,
) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut meta = metadata(Family::Llama, "smollm");
    edit(&mut meta);
    let path = dir.path().join("model.gguf");
    let mut weights = hf_weights(Family::Llama, true, 3);
    if let Some(name) = extra_tensor {
        let t = Tensor::ones(write::HEAD_DIM / 2, DType::F32, &Device::Cpu).unwrap();
        weights.push((name.to_owned(), t));
    }
    write_gguf(&path, Family::Llama, &meta, &weights, types);
    let out = dir.path().join("imported");
    let err = import(&path, &out, WeightDtype::F32).unwrap_err();
    let listing: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(listing, vec!["model.gguf".to_owned()], "left behind");
    format!("{err:#}")
}

fn set(meta: &mut Vec<(String, Value)>, key: &str, value: Value) {
    meta.retain(|(k, _)| k != key);
    meta.push((key.to_owned(), value));
}

#[test]
fn what_the_importer_does_not_compute_is_refused_by_name() {
    let cases: Vec<(String, &[&str])> = vec![
        (
            refused(
                |m| set(m, "general.architecture", Value::String("gemma".into())),
                llama_types,
                None,
            ),
            &["model.gguf", "'general.architecture'", "gemma"],
        ),
        (
            refused(
                |_| {},
                |n| {
                    if n.contains("ffn_up") {
                        GgmlDType::Q5_0
                    } else {
                        llama_types(n)
                    }
                },
                None,
            ),
            &["'blk.0.ffn_up.weight'", "Q5_0", "Q4_K"],
        ),
        (
            refused(
                |m| set(m, "llama.rope.scaling.factor", Value::F32(8.0)),
                llama_types,
                None,
            ),
            &["'llama.rope.scaling.factor'"],
        ),
        (
            refused(
                |m| set(m, "tokenizer.ggml.pre", Value::String("falcon".into())),
                llama_types,
                None,
            ),
            &["'tokenizer.ggml.pre'", "falcon"],
        ),
        (
            refused(
                |m| set(m, "tokenizer.ggml.add_space_prefix", Value::Bool(true)),
                llama_types,
                None,
            ),
            &["'tokenizer.ggml.add_space_prefix'"],
        ),
        (
            refused(
                |m| set(m, "tokenizer.ggml.model", Value::String("llama".into())),
                llama_types,
                None,
            ),
            &["'tokenizer.ggml.model'", "SentencePiece"],
        ),
        (
            refused(|_| {}, llama_types, Some("rope_freqs.weight")),
            &["'rope_freqs.weight'", "RoPE"],
        ),
        (
            refused(
                |m| set(m, "llama.block_count", Value::U32(3)),
                llama_types,
                None,
            ),
            &["no tensor 'blk.2."],
        ),
        (
            refused(
                |m| set(m, "tokenizer.ggml.eot_token_id", Value::U32(0)),
                llama_types,
                None,
            ),
            &["'tokenizer.ggml.eot_token_id'", "end-of-sequence"],
        ),
    ];
    for (err, needles) in cases {
        for needle in needles {
            assert!(err.contains(needle), "'{needle}' not in: {err}");
        }
    }
}

#[test]
fn the_command_refuses_an_existing_folder_and_prints_what_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let meta = metadata(Family::Llama, "smollm");
    let file = written(dir.path(), Family::Llama, true, &meta, llama_types);
    let out = dir.path().join("imported");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_emsl-hf"))
            .arg("import-gguf")
            .arg(&file.path)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap()
    };
    let first = run();
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&first.stdout).unwrap();
    assert_eq!(summary["family"], "llama");
    assert_eq!(summary["tensors"], 2 + 9 * write::LAYERS);
    let second = run();
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("exists"));
}
