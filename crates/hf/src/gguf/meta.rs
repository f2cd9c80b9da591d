//! A GGUF file's metadata, every key accounted for as `config_fields.rs` accounts for every field of a
//! `config.json`: read into the imported folder, known not to change what the model computes, or
//! allowed only with the value the importer computes. Any other key is refused naming it, because a
//! key skipped may be one that changes the model (a RoPE scaling, experts, a sliding window).
//!
//! Key names are llama.cpp's (`gguf-py/gguf/constants.py`): `general.*` describe the file,
//! `{arch}.*` the model's sizes, `tokenizer.*` the vocabulary.

use std::collections::HashMap;

use anyhow::{bail, Result};
use candle_core::quantized::gguf_file::Value;
use serde_json::{json, Value as Json};

use crate::config::Family;

/// What the importer does with one key of the model's namespace (`{arch}.` removed).
enum Key {
    /// Read into `config.json` (or checked against the tensors' shapes).
    Read,
    /// Allowed only with a value the kit's forward computes, which `computes` names.
    Only {
        computes: &'static str,
        accepts: fn(&Value) -> bool,
    },
}

/// The model's keys llama.cpp writes for a Llama or Qwen2 checkpoint (`convert_hf_to_gguf.py`'s
/// `set_gguf_parameters`).
const MODEL_KEYS: &[(&str, Key)] = &[
    ("context_length", Key::Read),
    ("embedding_length", Key::Read),
    ("block_count", Key::Read),
    ("feed_forward_length", Key::Read),
    ("attention.head_count", Key::Read),
    ("attention.head_count_kv", Key::Read),
    ("attention.layer_norm_rms_epsilon", Key::Read),
    ("rope.freq_base", Key::Read),
    // Checked against the head size: the kit rotates every dimension of a head.
    ("rope.dimension_count", Key::Read),
    ("attention.key_length", Key::Read),
    ("attention.value_length", Key::Read),
    // Checked against the vocabulary and the embedding's rows.
    ("vocab_size", Key::Read),
    (
        "rope.scaling.type",
        Key::Only {
            computes: "unscaled RoPE (\"none\")",
            accepts: is_none_string,
        },
    ),
    (
        "expert_count",
        Key::Only {
            computes: "a dense MLP (0 experts)",
            accepts: is_zero,
        },
    ),
    (
        "expert_used_count",
        Key::Only {
            computes: "a dense MLP (0 experts)",
            accepts: is_zero,
        },
    ),
];

/// The vocabulary's keys; `tokenizer.rs` reads them.
const TOKENIZER_KEYS: &[(&str, Key)] = &[
    (
        "tokenizer.ggml.model",
        Key::Only {
            computes: "a byte-level BPE vocabulary (\"gpt2\"; SentencePiece vocabularies, \
                       \"llama\", are not imported)",
            accepts: is_gpt2,
        },
    ),
    ("tokenizer.ggml.pre", Key::Read),
    ("tokenizer.ggml.tokens", Key::Read),
    ("tokenizer.ggml.token_type", Key::Read),
    ("tokenizer.ggml.merges", Key::Read),
    ("tokenizer.ggml.bos_token_id", Key::Read),
    ("tokenizer.ggml.eos_token_id", Key::Read),
    ("tokenizer.ggml.unknown_token_id", Key::Read),
    ("tokenizer.ggml.padding_token_id", Key::Read),
    // Checked to be the end-of-sequence token: the kit stops generating at that one only.
    ("tokenizer.ggml.eot_token_id", Key::Read),
    ("tokenizer.ggml.add_bos_token", Key::Read),
    (
        "tokenizer.ggml.add_eos_token",
        Key::Only {
            computes: "text encoded without an end-of-sequence token appended (false)",
            accepts: is_false,
        },
    ),
    // llama.cpp prepends a space to the text when this is true; candle's own GGUF tokenizer does so
    // even when it is false ("Hi" became " Hi"), which is why the importer builds its own.
    (
        "tokenizer.ggml.add_space_prefix",
        Key::Only {
            computes: "text encoded as it is, without a space put before it (false)",
            accepts: is_false,
        },
    ),
    ("tokenizer.chat_template", Key::Read),
];

fn is_none_string(v: &Value) -> bool {
    matches!(v, Value::String(s) if s == "none")
}

fn is_zero(v: &Value) -> bool {
    uint(v) == Some(0)
}

fn is_false(v: &Value) -> bool {
    matches!(v, Value::Bool(false))
}

fn is_gpt2(v: &Value) -> bool {
    matches!(v, Value::String(s) if s == "gpt2")
}

/// A whole number of any of GGUF's integer types, if it is one and not negative.
pub fn uint(v: &Value) -> Option<u64> {
    match *v {
        Value::U8(x) => Some(x.into()),
        Value::U16(x) => Some(x.into()),
        Value::U32(x) => Some(x.into()),
        Value::U64(x) => Some(x),
        Value::I8(x) => u64::try_from(x).ok(),
        Value::I16(x) => u64::try_from(x).ok(),
        Value::I32(x) => u64::try_from(x).ok(),
        Value::I64(x) => u64::try_from(x).ok(),
        _ => None,
    }
}

/// A float as `config.json` would have written it. GGUF stores f32, and the shortest decimal that
/// reads back as that f32 is the value the checkpoint's own config gave (1e-05, not
/// 9.999999747378752e-06).
fn float(v: &Value) -> Option<f64> {
    match *v {
        Value::F32(x) => format!("{x}").parse().ok(),
        Value::F64(x) => Some(x),
        _ => None,
    }
}

/// A short description of a value for an error message (arrays by their length).
pub fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Array(a) => format!("an array of {} values", a.len()),
        Value::Bool(b) => b.to_string(),
        other => uint(other)
            .map(|n| n.to_string())
            .or_else(|| float(other).map(|x| x.to_string()))
            .unwrap_or_else(|| format!("{other:?}")),
    }
}

/// The metadata of one file, with the errors' wording in one place.
pub struct Meta<'a> {
    pub map: &'a HashMap<String, Value>,
    pub family: Family,
    /// llama.cpp's name of the architecture, the model keys' prefix.
    pub arch: &'static str,
}

impl<'a> Meta<'a> {
    /// Reads `general.architecture` and checks every key against the tables.
    pub fn check(map: &'a HashMap<String, Value>) -> Result<Self> {
        let family = match map.get("general.architecture") {
            Some(Value::String(a)) if a == "llama" => Family::Llama,
            Some(Value::String(a)) if a == "qwen2" => Family::Qwen2,
            Some(other) => bail!(
                "metadata 'general.architecture' = {}: the importer computes the architectures \
                 \"llama\" and \"qwen2\" only",
                show(other)
            ),
            None => bail!("no metadata 'general.architecture' (not a model file of llama.cpp's)"),
        };
        let arch = family.name();
        let meta = Meta { map, family, arch };
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for key in keys {
            meta.check_key(key)?;
        }
        Ok(meta)
    }

    fn check_key(&self, key: &str) -> Result<()> {
        // `general.*` names and describes the file (name, licence, authors, sources, the label of
        // its quantisation); llama.cpp computes nothing from it but the architecture, read above,
        // and the data's alignment, which candle's reader applies.
        if key.starts_with("general.") {
            return Ok(());
        }
        let entry = match key
            .strip_prefix(self.arch)
            .and_then(|k| k.strip_prefix('.'))
        {
            Some(own) => MODEL_KEYS.iter().find(|(name, _)| *name == own),
            None => TOKENIZER_KEYS.iter().find(|(name, _)| *name == key),
        };
        match entry {
            None => bail!(
                "metadata '{key}' = {} is not a key the importer knows for a {} model: it may \
                 change what the model computes, so the importer refuses it rather than ignore it. \
                 If llama.cpp's {} graph does not read it, write a copy without it (gguf-py's \
                 `gguf-new-metadata IN.gguf OUT.gguf --remove-metadata {key}`) and import that",
                show(&self.map[key]),
                self.arch,
                self.arch
            ),
            Some((_, Key::Only { computes, accepts })) if !accepts(&self.map[key]) => bail!(
                "metadata '{key}' = {}: the importer computes only {computes}",
                show(&self.map[key])
            ),
            Some(_) => Ok(()),
        }
    }

    pub fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    /// `{arch}.name` as a whole number, required.
    pub fn model_uint(&self, name: &str) -> Result<usize> {
        let key = format!("{}.{name}", self.arch);
        self.uint_of(&key)?.ok_or_else(|| {
            anyhow::anyhow!("no metadata '{key}' (llama.cpp writes it for every model)")
        })
    }

    /// `key` as a whole number, if present.
    pub fn uint_of(&self, key: &str) -> Result<Option<usize>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(v) => match uint(v) {
                Some(n) => Ok(Some(n as usize)),
                None => bail!("metadata '{key}' = {} is not a whole number", show(v)),
            },
        }
    }

    /// `{arch}.name` as a positive number, required.
    fn model_positive(&self, name: &str) -> Result<f64> {
        let key = format!("{}.{name}", self.arch);
        match self.map.get(&key) {
            None => bail!("no metadata '{key}' (llama.cpp writes it for every model)"),
            Some(v) => match float(v) {
                Some(x) if x > 0.0 && x.is_finite() => Ok(x),
                _ => bail!("metadata '{key}' = {} is not a positive number", show(v)),
            },
        }
    }

    /// `{arch}.name`, if present, must be `expected` (what the tensors or the sizes say).
    fn model_agrees(&self, name: &str, expected: usize, what: &str) -> Result<()> {
        let key = format!("{}.{name}", self.arch);
        if let Some(n) = self.uint_of(&key)? {
            if n != expected {
                bail!(
                    "metadata '{key}' = {n} is not {what} = {expected}, the only value the kit's \
                     forward computes"
                );
            }
        }
        Ok(())
    }
}

/// The sizes read from the metadata, before the tensors are checked against them.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizes {
    pub hidden: usize,
    pub intermediate: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    pub context: usize,
    pub rms_norm_eps: f64,
    pub rope_theta: f64,
}

impl Sizes {
    pub fn read(meta: &Meta) -> Result<Self> {
        let hidden = meta.model_uint("embedding_length")?;
        let heads = meta.model_uint("attention.head_count")?;
        if heads == 0 || !hidden.is_multiple_of(heads) {
            bail!(
                "metadata '{0}.embedding_length' = {hidden} is not a multiple of \
                 '{0}.attention.head_count' = {heads}",
                meta.arch
            );
        }
        let head_dim = hidden / heads;
        meta.model_agrees("rope.dimension_count", head_dim, "the head size")?;
        meta.model_agrees("attention.key_length", head_dim, "the head size")?;
        meta.model_agrees("attention.value_length", head_dim, "the head size")?;
        // llama.cpp writes no count of key/value heads when every head has its own.
        let kv_heads = meta
            .uint_of(&format!("{}.attention.head_count_kv", meta.arch))?
            .unwrap_or(heads);
        Ok(Sizes {
            hidden,
            intermediate: meta.model_uint("feed_forward_length")?,
            layers: meta.model_uint("block_count")?,
            heads,
            kv_heads,
            head_dim,
            context: meta.model_uint("context_length")?,
            rms_norm_eps: meta.model_positive("attention.layer_norm_rms_epsilon")?,
            rope_theta: meta.model_positive("rope.freq_base")?,
        })
    }

    /// `config.json` as transformers 5 writes it for this family, every field the loader reads and
    /// each fixed field at the value the GGUF architecture computes (llama.cpp's llama and qwen2
    /// graphs: SiLU-gated MLP, no dropout, Llama without biases, Qwen2 without a sliding window).
    pub fn config_json(
        &self,
        family: Family,
        vocab: usize,
        tied: bool,
        ids: &SpecialIds,
        dtype: &str,
    ) -> Json {
        let mut cfg = json!({
            "architectures": [family.causal_lm()],
            "model_type": family.name(),
            "vocab_size": vocab,
            "hidden_size": self.hidden,
            "intermediate_size": self.intermediate,
            "num_hidden_layers": self.layers,
            "num_attention_heads": self.heads,
            "num_key_value_heads": self.kv_heads,
            "head_dim": self.head_dim,
            "max_position_embeddings": self.context,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_parameters": {"rope_theta": self.rope_theta, "rope_type": "default"},
            "tie_word_embeddings": tied,
            "hidden_act": "silu",
            "attention_dropout": 0.0,
            "bos_token_id": ids.bos,
            "eos_token_id": ids.eos,
            "pad_token_id": ids.pad,
            "dtype": dtype,
            "use_cache": true,
        });
        let extra = match family {
            Family::Llama => json!({"attention_bias": false, "mlp_bias": false}),
            Family::Qwen2 => json!({
                "use_sliding_window": false,
                "layer_types": vec!["full_attention"; self.layers],
            }),
        };
        let (Json::Object(cfg_map), Json::Object(extra)) = (&mut cfg, extra) else {
            unreachable!("both are objects")
        };
        cfg_map.extend(extra);
        cfg
    }
}

/// The special tokens' ids the file names.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpecialIds {
    pub bos: Option<usize>,
    pub eos: Option<usize>,
    pub pad: Option<usize>,
    pub unk: Option<usize>,
}
