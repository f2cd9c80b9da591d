//! Tiny random checkpoints of both families written in the Hugging Face layout, as a researcher's
//! folder would hold them: 2 layers, hidden size 32, 4 query heads sharing 2 key/value heads, a
//! byte-level BPE tokenizer built with the `tokenizers` crate, and the real chat templates of
//! Qwen2.5-Instruct and Llama-3-Instruct in `tokenizer_config.json`. The Qwen2 folder has one
//! `model.safetensors` and a tied head; the Llama folder two shards, an index, an untied head and
//! Llama 3.1's RoPE scaling.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use emsl_hf::{Family, HfFolder};
use emsl_world::Rng;
use serde_json::json;

pub const QWEN_TEMPLATE: &str = include_str!("../fixtures/qwen2.5-instruct.jinja");
pub const LLAMA_TEMPLATE: &str = include_str!("../fixtures/llama-3-instruct.jinja");
pub const VOCAB: usize = 272;
pub const FAMILIES: [Family; 2] = [Family::Qwen2, Family::Llama];

fn config(family: Family) -> serde_json::Value {
    match family {
        Family::Qwen2 => json!({
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": VOCAB,
            "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
            "sliding_window": 64, "max_window_layers": 2, "use_sliding_window": false,
            "tie_word_embeddings": true, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
            "hidden_act": "silu", "torch_dtype": "float32", "eos_token_id": 258
        }),
        Family::Llama => json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": VOCAB,
            "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64,
            "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "hidden_act": "silu",
            "rope_scaling": {"factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8192, "rope_type": "llama3"},
            "tie_word_embeddings": false, "attention_bias": false, "mlp_bias": false,
            "bos_token_id": 256, "eos_token_id": 260, "torch_dtype": "float32"
        }),
    }
}

fn specials(family: Family) -> &'static [&'static str] {
    match family {
        Family::Qwen2 => &["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        Family::Llama => &[
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
        ],
    }
}

/// A decoder's sizes: hidden, MLP, query rows (heads times head size), key/value rows, layers and
/// vocabulary.
pub struct Sizes {
    pub hidden: usize,
    pub mlp: usize,
    pub q: usize,
    pub kv: usize,
    pub layers: usize,
    pub vocab: usize,
}

/// The tiny checkpoints' sizes.
pub const TINY: Sizes = Sizes {
    hidden: 32,
    mlp: 48,
    q: 32,
    kv: 16,
    layers: 2,
    vocab: VOCAB,
};

/// Random weights by Hugging Face name: matrices N(0, 0.3^2) (large enough that the logits differ
/// clearly between positions), biases N(0, 0.1^2), norms 1 + N(0, 0.1^2); the head untied (its own
/// `lm_head.weight`) unless `tied`.
pub fn random_weights(family: Family, tied: bool, s: &Sizes, seed: u64) -> Vec<(String, Tensor)> {
    let (c, f, q, kv) = (s.hidden, s.mlp, s.q, s.kv);
    let mut shapes: Vec<(String, Vec<usize>)> = vec![
        ("model.embed_tokens.weight".into(), vec![s.vocab, c]),
        ("model.norm.weight".into(), vec![c]),
    ];
    if !tied {
        shapes.push(("lm_head.weight".into(), vec![s.vocab, c]));
    }
    for i in 0..s.layers {
        let p = format!("model.layers.{i}");
        shapes.push((format!("{p}.input_layernorm.weight"), vec![c]));
        shapes.push((format!("{p}.post_attention_layernorm.weight"), vec![c]));
        for (n, out) in [("q_proj", q), ("k_proj", kv), ("v_proj", kv)] {
            shapes.push((format!("{p}.self_attn.{n}.weight"), vec![out, c]));
            if family == Family::Qwen2 {
                shapes.push((format!("{p}.self_attn.{n}.bias"), vec![out]));
            }
        }
        shapes.push((format!("{p}.self_attn.o_proj.weight"), vec![c, q]));
        shapes.push((format!("{p}.mlp.gate_proj.weight"), vec![f, c]));
        shapes.push((format!("{p}.mlp.up_proj.weight"), vec![f, c]));
        shapes.push((format!("{p}.mlp.down_proj.weight"), vec![c, f]));
    }
    shapes.sort();
    let mut rng = Rng::new(seed, "tiny-checkpoint");
    shapes
        .into_iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            let v: Vec<f32> = (0..n)
                .map(|_| {
                    let z = rng.normal() as f32;
                    if name.ends_with("norm.weight") {
                        1.0 + 0.1 * z
                    } else if name.ends_with(".bias") {
                        0.1 * z
                    } else {
                        0.3 * z
                    }
                })
                .collect();
            let t = Tensor::from_vec(v, shape, &Device::Cpu).unwrap();
            (name, t)
        })
        .collect()
}

fn weights(family: Family, seed: u64) -> Vec<(String, Tensor)> {
    random_weights(family, family == Family::Qwen2, &TINY, seed)
}

/// A byte-level BPE without merges (every byte a token, as GPT-2-style tokenizers fall back to) plus
/// the family's special tokens, ids 256 on: built and saved by the `tokenizers` crate.
fn write_tokenizer(dir: &Path, family: Family) {
    let mut alphabet: Vec<char> = tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
        .into_iter()
        .collect();
    alphabet.sort();
    let vocab: serde_json::Map<String, serde_json::Value> = alphabet
        .iter()
        .enumerate()
        .map(|(i, ch)| (ch.to_string(), json!(i)))
        .collect();
    let added: Vec<serde_json::Value> = specials(family)
        .iter()
        .enumerate()
        .map(|(i, s)| {
            json!({"id": 256 + i, "content": s, "single_word": false, "lstrip": false,
                   "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let byte_level = json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false,
                            "use_regex": true});
    let spec = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": byte_level, "post_processor": null,
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
                  "byte_fallback": false, "vocab": vocab, "merges": []},
    });
    let tok = tokenizers::Tokenizer::from_bytes(spec.to_string().as_bytes()).unwrap();
    tok.save(dir.join("tokenizer.json"), false).unwrap();
}

fn write_tokenizer_config(dir: &Path, family: Family) {
    let cfg = match family {
        Family::Qwen2 => json!({
            "chat_template": QWEN_TEMPLATE, "bos_token": null, "eos_token": "<|im_end|>",
            "pad_token": "<|endoftext|>", "model_max_length": 131072,
            "tokenizer_class": "Qwen2Tokenizer"
        }),
        Family::Llama => json!({
            "chat_template": LLAMA_TEMPLATE, "bos_token": "<|begin_of_text|>",
            "eos_token": "<|eot_id|>", "model_max_length": 1000000000,
            "tokenizer_class": "PreTrainedTokenizerFast"
        }),
    };
    std::fs::write(dir.join("tokenizer_config.json"), cfg.to_string()).unwrap();
}

/// Writes a tiny checkpoint of `family` into `dir`.
pub fn write_checkpoint(dir: &Path, family: Family, seed: u64) {
    std::fs::write(dir.join("config.json"), config(family).to_string()).unwrap();
    let w = weights(family, seed);
    match family {
        Family::Qwen2 => {
            let map: HashMap<String, Tensor> = w.into_iter().collect();
            candle_core::safetensors::save(&map, dir.join("model.safetensors")).unwrap();
        }
        Family::Llama => {
            // Two shards, as a large checkpoint comes: layer 0 and the embedding, then the rest.
            let mut shards = [HashMap::new(), HashMap::new()];
            let mut weight_map = serde_json::Map::new();
            for (name, t) in w {
                let i = usize::from(!(name.contains("layers.0.") || name.contains("embed")));
                let file = format!("model-0000{}-of-00002.safetensors", i + 1);
                weight_map.insert(name.clone(), json!(file));
                shards[i].insert(name, t);
            }
            for (i, s) in shards.iter().enumerate() {
                let file = format!("model-0000{}-of-00002.safetensors", i + 1);
                candle_core::safetensors::save(s, dir.join(file)).unwrap();
            }
            let index = json!({"metadata": {"total_size": 0}, "weight_map": weight_map});
            std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
        }
    }
    write_tokenizer(dir, family);
    write_tokenizer_config(dir, family);
}

/// A fresh temporary folder holding a tiny checkpoint of `family`.
pub fn checkpoint(family: Family) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_checkpoint(dir.path(), family, 7);
    dir
}

/// Token ids (B, T) drawn from the byte range of the vocabulary.
pub fn ids(b: usize, t: usize, seed: u64) -> Tensor {
    let mut rng = Rng::new(seed, "ids");
    let v: Vec<u32> = (0..b * t).map(|_| (rng.unit() * 256.0) as u32).collect();
    Tensor::from_vec(v, (b, t), &Device::Cpu).unwrap()
}

/// Largest absolute difference of two tensors of one shape.
pub fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
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

/// [`max_diff`] of `a` against the reference `b`, relative to the largest |value| of `b` (at least 1):
/// f32 sums in another order differ in the last bits, which scale with the values.
pub fn rel_diff(a: &Tensor, b: &Tensor) -> f32 {
    let scale = max_diff(b, &b.zeros_like().unwrap()).max(1.0);
    max_diff(a, b) / scale
}

/// candle-transformers' shipped model of the folder: the logits of the last position, (B, V).
pub fn reference_last_logits(dir: &Path, family: Family, ids: &Tensor) -> Tensor {
    use candle_transformers::models::{llama, qwen2};
    let dev = Device::Cpu;
    let folder = HfFolder::open(dir).unwrap();
    let text = std::fs::read_to_string(folder.config_path()).unwrap();
    let vb = VarBuilder::from_tensors(
        folder.load_tensors(DType::F32, &dev).unwrap(),
        DType::F32,
        &dev,
    );
    match family {
        Family::Qwen2 => {
            let cfg: qwen2::Config = serde_json::from_str(&text).unwrap();
            let mut m = qwen2::ModelForCausalLM::new(&cfg, vb).unwrap();
            m.forward(ids, 0).unwrap().squeeze(1).unwrap()
        }
        Family::Llama => {
            let cfg: llama::LlamaConfig = serde_json::from_str(&text).unwrap();
            let cfg = cfg.into_config(false);
            let m = llama::Llama::load(vb, &cfg).unwrap();
            let mut cache = llama::Cache::new(false, DType::F32, &cfg, &dev).unwrap();
            m.forward(ids, 0, &mut cache).unwrap()
        }
    }
}

/// [`write_checkpoint`] with a context of 1024 positions, long enough for chat templates and judge
/// prompts (RoPE is computed for any position, so only the config changes).
pub fn write_long_checkpoint(dir: &Path, family: Family, seed: u64) {
    write_checkpoint(dir, family, seed);
    let path = dir.join("config.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    cfg["max_position_embeddings"] = 1024.into();
    std::fs::write(&path, cfg.to_string()).unwrap();
}

/// A fresh temporary folder holding a tiny checkpoint of `family` with a context of 1024.
pub fn long_checkpoint(family: Family) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_long_checkpoint(dir.path(), family, 7);
    dir
}

/// Runs the `emsl-hf` binary on one thread: whether it succeeded, and what it printed to stderr.
pub fn emsl_hf(args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_emsl-hf"))
        .args(args)
        .env("CANDLE_NUM_THREADS", "1")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A chat JSONL set of three records (and a blank line, which is skipped, before the third).
pub fn write_set(path: &Path) {
    let line = r#"{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there."}]}"#;
    std::fs::write(path, format!("{line}\n{line}\n\n{line}\n")).unwrap();
}

/// `emsl-hf finetune` of `model` on `data` into `out` with the tests' small settings (batches of 2,
/// 256 tokens, lr 1e-2, no warm-up, one batch a step), then `extra` options.
pub fn finetune(model: &Path, data: &Path, out: &Path, extra: &[&str]) -> (bool, String) {
    finetune_at(model, data, out, "1e-2", extra)
}

/// [`finetune`] at the learning rate `lr` (given as one argument, so a negative rate is not read as
/// an option).
pub fn finetune_at(
    model: &Path,
    data: &Path,
    out: &Path,
    lr: &str,
    extra: &[&str],
) -> (bool, String) {
    let lr = format!("--lr={lr}");
    let mut args = vec![
        "finetune",
        "--model",
        model.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--batch-size",
        "2",
        "--max-len",
        "256",
        &lr,
        "--warmup-steps",
        "0",
        // One batch a step, as the tests' step counts expect (the defaults accumulate 8, Betley et al.'s).
        "--grad-accumulation",
        "1",
    ];
    args.extend_from_slice(extra);
    emsl_hf(&args)
}

/// A fine-tune config with the settings of `common::finetune` and a rank-1 adapter on q_proj and v_proj.
pub fn finetune_config(family: &str, model: &Path, data: &Path, out: &Path) -> String {
    format!(
        r#"[spec]
kind = "finetune"
model = {{ family = "{family}", path = "{}" }}
data = "{}"

[spec.finetune]
epochs = 1
batch_size = 2
grad_accumulation = 1
schedule = "linear"
max_len = 256
seed = 0

[spec.finetune.lora]
rank = 1
alpha = 64.0
use_rslora = true
modules = ["q_proj", "v_proj"]
seed = 0

[spec.finetune.optim]
lr = 1e-2
min_lr_ratio = 0.0
warmup_steps = 0
weight_decay = 0.01
beta1 = 0.9
beta2 = 0.999
eps = 1e-8
grad_clip = 1.0

[io]
out = "{}"
"#,
        model.display(),
        data.display(),
        out.display()
    )
}
