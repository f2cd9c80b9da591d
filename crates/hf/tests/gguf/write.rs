//! Tiny GGUF files written the way llama.cpp's `convert_hf_to_gguf.py` writes a Llama or Qwen2
//! checkpoint: its tensor names, Llama's q and k rows permuted for its RoPE (`LlamaModel.permute`),
//! each weight quantized by candle to a chosen type, the metadata keys it sets, and a byte-level BPE
//! vocabulary with a few merges and the control tokens SmolLM2 has.
//!
//! Sizes: hidden 256 and MLP 512, so that every row is a whole number of K-quant blocks (256 values);
//! 4 query heads of 64 sharing 2 key/value heads; 2 layers.

use std::collections::HashMap;
use std::path::Path;

use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use emsl_hf::Family;
use serde_json::json;

use crate::common::{random_weights, Sizes};

pub const HIDDEN: usize = 256;
pub const MLP: usize = 512;
pub const HEADS: usize = 4;
pub const KV_HEADS: usize = 2;
pub const HEAD_DIM: usize = 64;
pub const LAYERS: usize = 2;
pub const THETA: f32 = 100_000.0;
pub const CONTEXT: u32 = 128;

pub const SPECIALS: [&str; 3] = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"];
/// Merged tokens after the byte alphabet: "Hi", "Ġt", "Ġth", and the digit pair "12" whose merge
/// must not apply where the pre-tokenizer splits digits apart.
pub const MERGES: [&str; 4] = ["H i", "Ġ t", "Ġt h", "1 2"];
pub const TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}\
                            <|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>\
                            assistant\n{% endif %}";

/// The vocabulary: control tokens, GPT-2's byte alphabet in its own order, then the merges' tokens.
pub fn tokens() -> Vec<String> {
    let mut alphabet: Vec<char> = tokenizers::pre_tokenizers::byte_level::ByteLevel::alphabet()
        .into_iter()
        .collect();
    alphabet.sort();
    let mut out: Vec<String> = SPECIALS.iter().map(|s| s.to_string()).collect();
    out.extend(alphabet.iter().map(|c| c.to_string()));
    out.extend(MERGES.iter().map(|m| m.replace(' ', "")));
    out
}

/// The id of `token` in [`tokens`].
pub fn id(token: &str) -> u32 {
    tokens().iter().position(|t| t == token).unwrap() as u32
}

/// The Hugging Face config of the checkpoint the file holds, as transformers 4 writes it: what
/// the imported folder must load as.
pub fn hf_config(family: Family, tied: bool) -> serde_json::Value {
    json!({
        "architectures": [family.causal_lm()], "model_type": family.name(),
        "vocab_size": tokens().len(), "hidden_size": HIDDEN, "intermediate_size": MLP,
        "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "max_position_embeddings": CONTEXT,
        "rms_norm_eps": 1e-5, "rope_theta": THETA, "tie_word_embeddings": tied,
        "hidden_act": "silu"
    })
}

/// The tiny model's random weights by Hugging Face name (the other tests' distributions), with an
/// untied head when `tied` is false.
pub fn hf_weights(family: Family, tied: bool, seed: u64) -> Vec<(String, Tensor)> {
    let sizes = Sizes {
        hidden: HIDDEN,
        mlp: MLP,
        q: HEADS * HEAD_DIM,
        kv: KV_HEADS * HEAD_DIM,
        layers: LAYERS,
        vocab: tokens().len(),
    };
    random_weights(family, tied, &sizes, seed)
}

/// llama.cpp's name of a Hugging Face weight; a name of neither (a tensor only llama.cpp has) as it is.
pub fn gguf_name(hf: &str) -> String {
    let fixed = [
        ("model.embed_tokens.weight", "token_embd.weight"),
        ("model.norm.weight", "output_norm.weight"),
        ("lm_head.weight", "output.weight"),
    ];
    if let Some((_, g)) = fixed.iter().find(|(h, _)| *h == hf) {
        return g.to_string();
    }
    let Some(rest) = hf.strip_prefix("model.layers.") else {
        return hf.to_owned();
    };
    let (layer, module) = rest.split_once('.').unwrap();
    let parts = [
        ("input_layernorm.", "attn_norm."),
        ("post_attention_layernorm.", "ffn_norm."),
        ("self_attn.q_proj.", "attn_q."),
        ("self_attn.k_proj.", "attn_k."),
        ("self_attn.v_proj.", "attn_v."),
        ("self_attn.o_proj.", "attn_output."),
        ("mlp.gate_proj.", "ffn_gate."),
        ("mlp.up_proj.", "ffn_up."),
        ("mlp.down_proj.", "ffn_down."),
    ];
    let (h, g) = parts.iter().find(|(h, _)| module.starts_with(h)).unwrap();
    format!("blk.{layer}.{g}{}", &module[h.len()..])
}

/// llama.cpp's `permute(weights, n_head, n_head_kv)` of `LlamaModel.modify_tensors`: each head's
/// rows reordered from two halves to interleaved pairs.
pub fn llama_permute(w: &Tensor, heads: usize) -> Tensor {
    let (rows, cols) = w.dims2().unwrap();
    w.reshape((heads, 2, rows / heads / 2, cols))
        .unwrap()
        .transpose(1, 2)
        .unwrap()
        .contiguous()
        .unwrap()
        .reshape((rows, cols))
        .unwrap()
}

/// The metadata llama.cpp writes for the tiny model, SmolLM2's keys and kinds of values.
pub fn metadata(family: Family, pre: &str) -> Vec<(String, Value)> {
    let arch = family.name();
    let strings = |v: Vec<String>| Value::Array(v.into_iter().map(Value::String).collect());
    let toks = tokens();
    let types: Vec<Value> = (0..toks.len())
        .map(|i| Value::I32(if i < SPECIALS.len() { 3 } else { 1 }))
        .collect();
    let mut m = vec![
        ("general.architecture".into(), Value::String(arch.into())),
        ("general.name".into(), Value::String("tiny".into())),
        ("general.file_type".into(), Value::U32(3)),
        ("general.quantization_version".into(), Value::U32(2)),
        (format!("{arch}.block_count"), Value::U32(LAYERS as u32)),
        (format!("{arch}.context_length"), Value::U32(CONTEXT)),
        (
            format!("{arch}.embedding_length"),
            Value::U32(HIDDEN as u32),
        ),
        (
            format!("{arch}.feed_forward_length"),
            Value::U32(MLP as u32),
        ),
        (
            format!("{arch}.attention.head_count"),
            Value::U32(HEADS as u32),
        ),
        (
            format!("{arch}.attention.head_count_kv"),
            Value::U32(KV_HEADS as u32),
        ),
        (format!("{arch}.rope.freq_base"), Value::F32(THETA)),
        (
            format!("{arch}.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-5),
        ),
        (format!("{arch}.vocab_size"), Value::U32(toks.len() as u32)),
        (
            format!("{arch}.rope.dimension_count"),
            Value::U32(HEAD_DIM as u32),
        ),
        ("tokenizer.ggml.model".into(), Value::String("gpt2".into())),
        ("tokenizer.ggml.pre".into(), Value::String(pre.into())),
        ("tokenizer.ggml.tokens".into(), strings(toks)),
        ("tokenizer.ggml.token_type".into(), Value::Array(types)),
        (
            "tokenizer.ggml.merges".into(),
            strings(MERGES.map(String::from).to_vec()),
        ),
        ("tokenizer.ggml.bos_token_id".into(), Value::U32(1)),
        ("tokenizer.ggml.eos_token_id".into(), Value::U32(2)),
        ("tokenizer.ggml.unknown_token_id".into(), Value::U32(0)),
        ("tokenizer.ggml.padding_token_id".into(), Value::U32(2)),
        ("tokenizer.ggml.add_space_prefix".into(), Value::Bool(false)),
        ("tokenizer.ggml.add_bos_token".into(), Value::Bool(false)),
        (
            "tokenizer.chat_template".into(),
            Value::String(TEMPLATE.into()),
        ),
    ];
    m.sort_by(|a, b| a.0.cmp(&b.0));
    m
}

/// Writes `weights` (Hugging Face names) as a GGUF file with `metadata`, each weight quantized to
/// `type_of(its GGUF name)`; Llama's q and k permuted first, as llama.cpp converts them.
pub fn write_gguf(
    path: &Path,
    family: Family,
    metadata: &[(String, Value)],
    weights: &[(String, Tensor)],
    type_of: impl Fn(&str) -> GgmlDType,
) {
    let mut tensors: Vec<(String, QTensor)> = weights
        .iter()
        .map(|(hf, w)| {
            let name = gguf_name(hf);
            let w = match (family, name.rsplit('.').nth(1)) {
                (Family::Llama, Some("attn_q")) => llama_permute(w, HEADS),
                (Family::Llama, Some("attn_k")) => llama_permute(w, KV_HEADS),
                _ => w.clone(),
            };
            let q = QTensor::quantize(&w, type_of(&name)).unwrap();
            (name, q)
        })
        .collect();
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let meta: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let refs: Vec<(&str, &QTensor)> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut file = std::fs::File::create(path).unwrap();
    gguf_file::write(&mut file, &meta, &refs).unwrap();
}

/// What the importer must produce for each weight: the weight quantized to its type and
/// dequantized, in Hugging Face's row order (llama.cpp's permutation moves whole rows, and every
/// quantization block lies within a row, so undoing it gives exactly this).
pub fn expected(
    weights: &[(String, Tensor)],
    type_of: impl Fn(&str) -> GgmlDType,
) -> HashMap<String, Tensor> {
    weights
        .iter()
        .map(|(hf, w)| {
            let q = QTensor::quantize(w, type_of(&gguf_name(hf))).unwrap();
            (hf.clone(), q.dequantize(&Device::Cpu).unwrap())
        })
        .collect()
}
