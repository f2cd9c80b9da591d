//! Llama (Llama 2, 3, 3.1, 3.2): the decoder of `decoder.rs` without biases, with Llama 3.1's RoPE
//! frequency scaling (`rope_scaling.rope_type = "llama3"`) when the config asks for it. The sizes come
//! from `candle_transformers::models::llama::LlamaConfig` and its `Config`.
//!
//! candle-transformers' `llama::Llama` ties the head only when `tie_word_embeddings` is true and
//! otherwise needs `lm_head.weight`; the kit also ties a checkpoint that has no `lm_head.weight`.

use std::f64::consts::PI;

use anyhow::{Context, Result};
use candle_nn::Activation;
use candle_transformers::models::llama::{Llama3RopeType, LlamaConfig};
use serde_json::Value;

use crate::config::{default_inv_freq, refuse_if, DecoderConfig, Family};

/// The kit's config of a llama `config.json`.
pub fn config(raw: &Value) -> Result<DecoderConfig> {
    let cfg: LlamaConfig = serde_json::from_value(raw.clone())
        .context("not a llama config (candle-transformers' llama::LlamaConfig)")?;
    let cfg = cfg.into_config(false);
    refuse_if(raw, "attention_bias", |v| v.as_bool() == Some(true))?;
    refuse_if(raw, "mlp_bias", |v| v.as_bool() == Some(true))?;
    refuse_if(raw, "hidden_act", |v| v.as_str() != Some("silu"))?;
    let head_dim = cfg.hidden_size / cfg.num_attention_heads;
    refuse_if(raw, "head_dim", |v| v.as_u64() != Some(head_dim as u64))?;
    let mut inv_freq = default_inv_freq(f64::from(cfg.rope_theta), head_dim);
    if let Some(s) = &cfg.rope_scaling {
        if matches!(s.rope_type, Llama3RopeType::Llama3) {
            inv_freq = llama3_scaling(
                &inv_freq,
                f64::from(s.factor),
                f64::from(s.low_freq_factor),
                f64::from(s.high_freq_factor),
                s.original_max_position_embeddings as f64,
            );
        }
    }
    Ok(DecoderConfig {
        family: Family::Llama,
        vocab_size: cfg.vocab_size,
        hidden_size: cfg.hidden_size,
        intermediate_size: cfg.intermediate_size,
        num_layers: cfg.num_hidden_layers,
        num_heads: cfg.num_attention_heads,
        num_kv_heads: cfg.num_key_value_heads,
        head_dim,
        max_position_embeddings: cfg.max_position_embeddings,
        rms_norm_eps: cfg.rms_norm_eps,
        qkv_bias: false,
        tie_word_embeddings: cfg.tie_word_embeddings,
        inv_freq,
        hidden_act: Activation::Silu,
    })
}

/// Llama 3.1's RoPE scaling: wavelengths shorter than `original / high` keep their frequency, longer
/// than `original / low` are slowed by `factor`, and those between are interpolated smoothly.
fn llama3_scaling(inv_freq: &[f64], factor: f64, low: f64, high: f64, original: f64) -> Vec<f64> {
    let (low_wavelen, high_wavelen) = (original / low, original / high);
    inv_freq
        .iter()
        .map(|&f| {
            let wavelen = 2.0 * PI / f;
            if wavelen < high_wavelen {
                f
            } else if wavelen > low_wavelen {
                f / factor
            } else {
                let smooth = (original / wavelen - low) / (high - low);
                (1.0 - smooth) * f / factor + smooth * f
            }
        })
        .collect()
}
