//! Qwen2 (Qwen2 and Qwen2.5): the Llama decoder of `decoder.rs` with a bias on the q, k and v
//! projections (and none on o), and the head usually tied to the embedding (Qwen2.5-0.5B and 1.5B).
//!
//! Sliding-window attention is refused rather than computed: transformers applies it only with
//! `use_sliding_window` (false in every Qwen2.5 release) or, in transformers 5, where `layer_types`
//! names a sliding layer; candle-transformers' `qwen2::ModelForCausalLM` applies it always.

use anyhow::Result;
use serde_json::{Map, Value};

use crate::config::{read_decoder, DecoderConfig, Family};
use crate::config_fields::{all_full_attention, is_false, only, required_usize, Field, FieldTable};

/// Qwen2's own fields (transformers' `Qwen2Config`); those both families share are in
/// `config_fields::COMMON`.
pub const FIELDS: FieldTable = &[
    (
        "use_sliding_window",
        only("full attention in every layer (false)", is_false),
    ),
    // Read by transformers only for the layers that `use_sliding_window` (4) or `layer_types` (5)
    // make sliding, and both are checked to make none.
    ("sliding_window", Field::Inert),
    ("max_window_layers", Field::Inert),
    (
        "layer_types",
        only(
            "full attention in every layer (every entry \"full_attention\")",
            all_full_attention,
        ),
    ),
];

/// The kit's config of a qwen2 `config.json` whose fields are checked against [`FIELDS`].
pub fn config(raw: &Map<String, Value>) -> Result<DecoderConfig> {
    // Required: Qwen2Config's documented default (32) is no model's, and every export writes it.
    let num_kv_heads = required_usize(raw, "num_key_value_heads")?;
    read_decoder(raw, Family::Qwen2, num_kv_heads, true)
}
