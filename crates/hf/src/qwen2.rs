//! Qwen2 (Qwen2 and Qwen2.5): the Llama decoder of `decoder.rs` with a bias on the q, k and v
//! projections, RoPE without scaling, and the head usually tied to the embedding (Qwen2.5-0.5B and
//! 1.5B). The sizes come from `candle_transformers::models::qwen2::Config`.
//!
//! Where the kit's forward and candle-transformers' `qwen2::ModelForCausalLM` differ: candle applies
//! the sliding-window mask always, Hugging Face only with `use_sliding_window` (false in every
//! Qwen2.5 release), so the kit refuses `use_sliding_window = true` rather than guessing which layers
//! it covers; candle ties the head whenever `lm_head.weight` is absent and ignores
//! `tie_word_embeddings`, the kit ties when either says so (as Hugging Face does).

use anyhow::{Context, Result};
use candle_transformers::models::qwen2::Config;
use serde_json::{json, Value};

use crate::config::{default_inv_freq, refuse_if, DecoderConfig, Family};

/// Hugging Face's `Qwen2Config` defaults for the keys candle's struct requires but a `config.json`
/// may leave out (or set to null, as some exports do for `sliding_window`).
fn with_defaults(raw: &Value) -> Value {
    let mut v = raw.clone();
    let max_pos = raw
        .get("max_position_embeddings")
        .cloned()
        .unwrap_or(json!(32768));
    let defaults = [
        ("max_position_embeddings", max_pos.clone()),
        ("sliding_window", max_pos),
        ("max_window_layers", json!(28)),
        ("use_sliding_window", json!(false)),
        ("tie_word_embeddings", json!(false)),
        ("rope_theta", json!(10000.0)),
        ("rms_norm_eps", json!(1e-6)),
        ("hidden_act", json!("silu")),
    ];
    if let Some(map) = v.as_object_mut() {
        for (key, value) in defaults {
            if map.get(key).is_none_or(Value::is_null) {
                map.insert(key.to_owned(), value);
            }
        }
    }
    v
}

/// The kit's config of a qwen2 `config.json`.
pub fn config(raw: &Value) -> Result<DecoderConfig> {
    let cfg: Config = serde_json::from_value(with_defaults(raw))
        .context("not a qwen2 config (candle-transformers' qwen2::Config)")?;
    refuse_if(raw, "use_sliding_window", |v| v.as_bool() == Some(true))?;
    refuse_if(raw, "rope_scaling", |v| !v.is_null())?;
    let head_dim = cfg.hidden_size / cfg.num_attention_heads;
    refuse_if(raw, "head_dim", |v| v.as_u64() != Some(head_dim as u64))?;
    Ok(DecoderConfig {
        family: Family::Qwen2,
        vocab_size: cfg.vocab_size,
        hidden_size: cfg.hidden_size,
        intermediate_size: cfg.intermediate_size,
        num_layers: cfg.num_hidden_layers,
        num_heads: cfg.num_attention_heads,
        num_kv_heads: cfg.num_key_value_heads,
        head_dim,
        max_position_embeddings: cfg.max_position_embeddings,
        rms_norm_eps: cfg.rms_norm_eps,
        qkv_bias: true,
        tie_word_embeddings: cfg.tie_word_embeddings,
        inv_freq: default_inv_freq(cfg.rope_theta, head_dim),
        hidden_act: cfg.hidden_act,
    })
}
