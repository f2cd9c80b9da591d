//! RoPE's frequencies from either generation of `config.json`. transformers 4 writes `rope_theta` and
//! `rope_scaling` (null, or an object with `rope_type`, once `type`, and the scaling's own keys) at the
//! top level; transformers 5 writes one `rope_parameters` object holding `rope_theta`, `rope_type` and
//! the same scaling keys, and no top-level `rope_theta`. The kit computes the types `default` and
//! `llama3` (Llama 3.1 and 3.2's scaling) from either key, and refuses any other type and any key of
//! these objects it does not read.

use std::f64::consts::PI;

use anyhow::{bail, Result};
use serde_json::{Map, Value};

use crate::config::default_inv_freq;
use crate::config_fields::get;

/// transformers' documented base when a config gives none: transformers 4's `LlamaConfig` and
/// `Qwen2Config` document `rope_theta` as "defaults to 10000.0", and transformers 5 fills a missing
/// `rope_parameters["rope_theta"]` from `default_theta = 10_000.0` (its `RotaryEmbeddingConfigMixin`).
/// Llama 2's published configs carry no `rope_theta` and rely on it. The kit follows it only when
/// neither generation's key is present: a base present under either key is always the one read.
pub const TRANSFORMERS_DEFAULT_THETA: f64 = 10_000.0;

/// Llama 3.1's scaling parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Llama3Scaling {
    pub factor: f64,
    pub low_freq_factor: f64,
    pub high_freq_factor: f64,
    pub original_max_position_embeddings: f64,
}

/// How the default frequencies are rescaled.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    None,
    Llama3(Llama3Scaling),
}

/// RoPE as a config describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    pub theta: f64,
    pub scaling: RopeScaling,
}

impl Rope {
    /// Reads `rope_theta`, `rope_scaling` and `rope_parameters`; where both generations' keys are
    /// present they must agree.
    pub fn from_config(raw: &Map<String, Value>) -> Result<Self> {
        Ok(Rope {
            theta: theta(raw)?,
            scaling: scaling(raw)?,
        })
    }

    /// The angular frequency of each pair of dimensions, scaling applied.
    pub fn inv_freq(&self, head_dim: usize) -> Vec<f64> {
        let freq = default_inv_freq(self.theta, head_dim);
        match &self.scaling {
            RopeScaling::None => freq,
            RopeScaling::Llama3(s) => llama3_scaling(&freq, s),
        }
    }
}

fn positive(v: &Value, name: &str) -> Result<f64> {
    match v.as_f64() {
        Some(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => bail!("field '{name}' = {v} is not a positive number"),
    }
}

fn theta(raw: &Map<String, Value>) -> Result<f64> {
    let top = get(raw, "rope_theta")
        .map(|v| positive(v, "rope_theta"))
        .transpose()?;
    let nested = match get(raw, "rope_parameters").and_then(Value::as_object) {
        Some(p) => get(p, "rope_theta")
            .map(|v| positive(v, "rope_parameters.rope_theta"))
            .transpose()?,
        None => None,
    };
    match (top, nested) {
        (Some(a), Some(b)) if a != b => bail!(
            "fields 'rope_theta' = {a} and 'rope_parameters.rope_theta' = {b} disagree \
             (transformers 4 reads the first, 5 the second): keep only the base the model was \
             trained with"
        ),
        (_, Some(b)) => Ok(b),
        (Some(a), None) => Ok(a),
        (None, None) => Ok(TRANSFORMERS_DEFAULT_THETA),
    }
}

fn scaling(raw: &Map<String, Value>) -> Result<RopeScaling> {
    let old = get(raw, "rope_scaling")
        .map(|v| parse_scaling("rope_scaling", v))
        .transpose()?;
    let new = get(raw, "rope_parameters")
        .map(|v| parse_scaling("rope_parameters", v))
        .transpose()?;
    match (old, new) {
        (Some(a), Some(b)) if a != b => bail!(
            "fields 'rope_scaling' = {} and 'rope_parameters' = {} describe different RoPE \
             scalings (transformers 4 reads the first, 5 the second): keep only the one the model \
             was trained with",
            raw["rope_scaling"],
            raw["rope_parameters"]
        ),
        (Some(s), _) | (None, Some(s)) => Ok(s),
        (None, None) => Ok(RopeScaling::None),
    }
}

/// The keys each RoPE type the kit computes may carry (`rope_theta` only in `rope_parameters`).
const DEFAULT_KEYS: &[&str] = &["rope_type", "type", "rope_theta"];
const LLAMA3_KEYS: &[&str] = &[
    "rope_type",
    "type",
    "rope_theta",
    "factor",
    "low_freq_factor",
    "high_freq_factor",
    "original_max_position_embeddings",
];

/// The scaling of `rope_scaling` or `rope_parameters` (named by `key`).
fn parse_scaling(key: &str, v: &Value) -> Result<RopeScaling> {
    let Some(obj) = v.as_object() else {
        bail!("field '{key}' = {v} is not an object");
    };
    // transformers reads the older name `type` when `rope_type` is absent; absent both, "default".
    let rope_type = match (get(obj, "rope_type"), get(obj, "type")) {
        (Some(a), Some(b)) if a != b => {
            bail!("fields '{key}.rope_type' = {a} and '{key}.type' = {b} disagree")
        }
        (Some(t), _) | (None, Some(t)) => match t.as_str() {
            Some(s) => s,
            None => bail!("field '{key}.rope_type' = {t} is not a string"),
        },
        (None, None) => "default",
    };
    let keys = match rope_type {
        "default" => DEFAULT_KEYS,
        "llama3" => LLAMA3_KEYS,
        other => bail!(
            "field '{key}.rope_type' = \"{other}\": the kit computes the RoPE types \"default\" \
             and \"llama3\" only, so this model (its scaled RoPE) cannot be loaded by the kit"
        ),
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !obj[*k].is_null() && !keys.contains(&k.as_str()))
    {
        bail!(
            "field '{key}.{k}' is not one the kit reads for RoPE type \"{rope_type}\": it may \
             change the frequencies, so the kit refuses it rather than ignore it"
        );
    }
    if rope_type == "default" {
        return Ok(RopeScaling::None);
    }
    let num = |k: &str| match get(obj, k) {
        Some(v) => positive(v, &format!("{key}.{k}")),
        None => bail!("field '{key}.{k}' is missing (RoPE type \"llama3\" needs it)"),
    };
    let s = Llama3Scaling {
        factor: num("factor")?,
        low_freq_factor: num("low_freq_factor")?,
        high_freq_factor: num("high_freq_factor")?,
        original_max_position_embeddings: num("original_max_position_embeddings")?,
    };
    if s.high_freq_factor <= s.low_freq_factor {
        bail!(
            "field '{key}.high_freq_factor' = {} must exceed '{key}.low_freq_factor' = {} (the \
             interpolation between them divides by their difference)",
            s.high_freq_factor,
            s.low_freq_factor
        );
    }
    Ok(RopeScaling::Llama3(s))
}

/// Llama 3.1's RoPE scaling, as transformers' `_compute_llama3_parameters`: wavelengths shorter than
/// `original / high` keep their frequency, longer than `original / low` are slowed by `factor`, and
/// those between are interpolated smoothly.
fn llama3_scaling(inv_freq: &[f64], s: &Llama3Scaling) -> Vec<f64> {
    let (low, high, original) = (
        s.low_freq_factor,
        s.high_freq_factor,
        s.original_max_position_embeddings,
    );
    let (low_wavelen, high_wavelen) = (original / low, original / high);
    inv_freq
        .iter()
        .map(|&f| {
            let wavelen = 2.0 * PI / f;
            if wavelen < high_wavelen {
                f
            } else if wavelen > low_wavelen {
                f / s.factor
            } else {
                let smooth = (original / wavelen - low) / (high - low);
                (1.0 - smooth) * f / s.factor + smooth * f
            }
        })
        .collect()
}
