//! Every field of a `config.json` accounted for: read into the model's config, known not to change
//! the logits, or allowed only with the values the kit's forward computes. A field on none of these
//! lists is refused, because a field the kit skips may be one that changes the model: transformers 5
//! moved `rope_theta` into `rope_parameters`, and a reader that knew only the old key computed another
//! model without a word (issue 40: logits off by up to 15).
//!
//! A `null` value counts as absent, as transformers takes `None` for its default.

use anyhow::{bail, Result};
use serde_json::{Map, Value};

use crate::config::Family;

/// What the kit does with one field of `config.json`.
pub enum Field {
    /// Read into the model's config, by the family's reader or by `rope.rs`.
    Read,
    /// Known not to change the logits; the tables say why.
    Inert,
    /// Allowed only with a value the kit's forward computes, which `computes` names; `fix` says
    /// what to do about another value.
    Only {
        computes: &'static str,
        accepts: fn(&Value) -> bool,
        fix: &'static str,
    },
}

/// A field allowed only with the values `accepts` takes, which describe the weights: another value
/// has no fix short of another forward.
pub const fn only(computes: &'static str, accepts: fn(&Value) -> bool) -> Field {
    Field::Only {
        computes,
        accepts,
        fix: NO_FIX,
    }
}

/// The fix for a value that describes the weights: there is none short of another forward.
pub const NO_FIX: &str = "the weights were trained with this value, so editing the field would \
                          describe another model: the kit cannot compute this one";

/// A family's fields by name.
pub type FieldTable = &'static [(&'static str, Field)];

pub fn is_false(v: &Value) -> bool {
    v.as_bool() == Some(false)
}

fn is_zero(v: &Value) -> bool {
    v.as_f64() == Some(0.0)
}

fn is_silu(v: &Value) -> bool {
    v.as_str() == Some("silu")
}

fn never(_: &Value) -> bool {
    false
}

/// The fields both families share.
pub const COMMON: FieldTable = &[
    ("model_type", Field::Read),
    // Checked by the family's reader to be its causal language model.
    ("architectures", Field::Read),
    ("vocab_size", Field::Read),
    ("hidden_size", Field::Read),
    ("intermediate_size", Field::Read),
    ("num_hidden_layers", Field::Read),
    ("num_attention_heads", Field::Read),
    ("num_key_value_heads", Field::Read),
    ("head_dim", Field::Read),
    ("max_position_embeddings", Field::Read),
    ("rms_norm_eps", Field::Read),
    ("tie_word_embeddings", Field::Read),
    // RoPE in transformers 4's keys and in transformers 5's (`rope.rs`).
    ("rope_theta", Field::Read),
    ("rope_scaling", Field::Read),
    ("rope_parameters", Field::Read),
    // Which version wrote the file and where the model came from.
    ("transformers_version", Field::Inert),
    ("_name_or_path", Field::Inert),
    // The precision the weights were saved in (transformers 4 and 5 name it differently): the kit
    // converts every weight to its own precision on load.
    ("torch_dtype", Field::Inert),
    ("dtype", Field::Inert),
    // Token ids for generation and padding; the forward does not read them, and the kit takes its
    // special tokens from the tokenizer's files.
    ("bos_token_id", Field::Inert),
    ("eos_token_id", Field::Inert),
    ("pad_token_id", Field::Inert),
    // Whether transformers keeps a KV cache: speed, not the logits.
    ("use_cache", Field::Inert),
    // The spread of freshly initialised weights: a checkpoint's weights are read, not drawn.
    ("initializer_range", Field::Inert),
    ("hidden_act", only("SwiGLU with SiLU (\"silu\")", is_silu)),
    // Dropout on attention probabilities changes nothing at inference, but transformers applies it
    // when training and the kit's forward has none, so a fine-tune would differ.
    (
        "attention_dropout",
        Field::Only {
            computes: "attention without dropout (0.0)",
            accepts: is_zero,
            fix: "setting it to 0.0 keeps the model (dropout acts only in training) but \
                  fine-tunes without the dropout it was configured with",
        },
    ),
    (
        "quantization_config",
        Field::Only {
            computes: "unquantised weights",
            accepts: never,
            fix: "dequantise the checkpoint to float32 or bfloat16 safetensors and drop this \
                  field",
        },
    ),
];

/// Every entry of transformers 5's `layer_types` is a full-attention layer.
pub fn all_full_attention(v: &Value) -> bool {
    v.as_array()
        .is_some_and(|l| l.iter().all(|t| t.as_str() == Some("full_attention")))
}

/// Refuses the first field of `raw` that is on neither `COMMON` nor the family's table, or that has
/// a value the kit does not compute. Errors name the field and the fix; the caller adds the file.
pub fn check_fields(raw: &Map<String, Value>, family: Family, own: FieldTable) -> Result<()> {
    for (key, value) in raw {
        if value.is_null() {
            continue;
        }
        let field = COMMON.iter().chain(own).find(|(name, _)| name == key);
        match field {
            None => bail!(
                "field '{key}' is not one the kit knows for a {} model: it may change what the \
                 model computes, so the kit refuses it rather than ignore it. If the model's \
                 transformers code (modeling_{}.py) does not read it, delete it from config.json; \
                 otherwise the kit cannot compute this model",
                family.name(),
                family.name()
            ),
            Some((
                _,
                Field::Only {
                    computes,
                    accepts,
                    fix,
                },
            )) if !accepts(value) => {
                bail!("field '{key}' = {value}: the kit's forward computes only {computes}; {fix}")
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// The non-null value of `key`, if any.
pub fn get<'a>(raw: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    raw.get(key).filter(|v| !v.is_null())
}

/// A size the config must give: transformers writes every one of them, and the kit does not guess.
pub fn required_usize(raw: &Map<String, Value>, key: &str) -> Result<usize> {
    match get(raw, key) {
        None => bail!("field '{key}' is missing (transformers writes it in every config; add it)"),
        Some(v) => match v.as_u64() {
            Some(n) => Ok(n as usize),
            None => bail!("field '{key}' = {v} is not a whole number"),
        },
    }
}

/// A positive number the config must give.
pub fn required_positive(raw: &Map<String, Value>, key: &str) -> Result<f64> {
    match get(raw, key) {
        None => bail!("field '{key}' is missing (transformers writes it in every config; add it)"),
        Some(v) => match v.as_f64() {
            Some(x) if x > 0.0 && x.is_finite() => Ok(x),
            _ => bail!("field '{key}' = {v} is not a positive number"),
        },
    }
}

/// A yes/no field, `default` when absent.
pub fn bool_or(raw: &Map<String, Value>, key: &str, default: bool) -> Result<bool> {
    match get(raw, key) {
        None => Ok(default),
        Some(v) => match v.as_bool() {
            Some(b) => Ok(b),
            None => bail!("field '{key}' = {v} is not true or false"),
        },
    }
}
