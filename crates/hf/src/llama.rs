//! Llama (Llama 2, 3, 3.1, 3.2, and SmolLM2): the decoder of `decoder.rs` without biases, with Llama
//! 3.1's RoPE frequency scaling (`rope_type = "llama3"`, in `rope.rs`) when the config asks for it.
//!
//! As candle-transformers' `llama::Llama` and transformers, the head is the token embedding only when
//! `tie_word_embeddings` is true; otherwise the checkpoint must hold `lm_head.weight` (`model.rs`
//! refuses one without it, where transformers would use a random head).

use anyhow::Result;
use serde_json::{Map, Value};

use crate::config::{read_decoder, DecoderConfig, Family};
use crate::config_fields::{get, is_false, only, required_usize, Field, FieldTable};

/// Llama's own fields (transformers' `LlamaConfig`, and what published Llama checkpoints' exports
/// add); those both families share are in `config_fields::COMMON`.
pub const FIELDS: FieldTable = &[
    (
        "attention_bias",
        only("attention projections without bias (false)", is_false),
    ),
    ("mlp_bias", only("an MLP without bias (false)", is_false)),
    // transformers 4 split each linear layer into `pretraining_tp` slices and summed their
    // products: the same sum in another order (later versions ignore the field).
    ("pretraining_tp", Field::Inert),
    // nanotron's export (SmolLM2's configs) marks its files with `is_llama_config`, and
    // transformers.js keeps its runtime settings in `transformers.js_config`; transformers' forward
    // reads neither.
    ("is_llama_config", Field::Inert),
    ("transformers.js_config", Field::Inert),
    // Also nanotron's: RoPE on interleaved pairs. transformers never reads it and rotates halves,
    // so only `false` describes the model transformers (and the kit) computes.
    (
        "rope_interleaved",
        only(
            "RoPE on rotated halves, as transformers does (false)",
            is_false,
        ),
    ),
];

/// The kit's config of a llama `config.json` whose fields are checked against [`FIELDS`].
pub fn config(raw: &Map<String, Value>) -> Result<DecoderConfig> {
    // Absent in Llama 1's configs (no grouped-query attention); transformers documents the default
    // as num_attention_heads, in both generations.
    let num_kv_heads = match get(raw, "num_key_value_heads") {
        Some(_) => required_usize(raw, "num_key_value_heads")?,
        None => required_usize(raw, "num_attention_heads")?,
    };
    read_decoder(raw, Family::Llama, num_kv_heads, false)
}
