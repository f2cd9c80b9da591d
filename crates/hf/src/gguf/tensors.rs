//! A GGUF file's tensors by their Hugging Face names: each name llama.cpp gives a Llama or Qwen2
//! weight (`gguf-py/gguf/tensor_mapping.py`), its shape checked against the metadata's sizes and its
//! type against the ones the importer dequantizes, all before any data is read; then each read,
//! dequantized by candle, and for Llama's q and k projections put back in Hugging Face's row order.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek};

use anyhow::{bail, Context, Result};
use candle_core::quantized::gguf_file::TensorInfo;
use candle_core::quantized::GgmlDType;
use candle_core::{DType, Device, Tensor};

use crate::config::Family;
use crate::gguf::meta::Sizes;

/// The types llama.cpp's common files use, each dequantized by candle and tested
/// (`crates/hf/tests/gguf/`). Others (Q5_0, Q5_1, Q2_K, Q3_K, Q5_K, BF16, the I-quants) are refused
/// naming the tensor rather than trusted untested.
pub const TYPES: &[GgmlDType] = &[
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q8_0,
    GgmlDType::Q4K,
    GgmlDType::Q6K,
    GgmlDType::F16,
    GgmlDType::F32,
];

/// llama.cpp's name of a tensor type (`ggml_type_name`), as a user sees it in file names.
pub fn type_name(t: GgmlDType) -> &'static str {
    match t {
        GgmlDType::F32 => "F32",
        GgmlDType::F16 => "F16",
        GgmlDType::BF16 => "BF16",
        GgmlDType::Q4_0 => "Q4_0",
        GgmlDType::Q4_1 => "Q4_1",
        GgmlDType::Q5_0 => "Q5_0",
        GgmlDType::Q5_1 => "Q5_1",
        GgmlDType::Q8_0 => "Q8_0",
        GgmlDType::Q8_1 => "Q8_1",
        GgmlDType::Q2K => "Q2_K",
        GgmlDType::Q3K => "Q3_K",
        GgmlDType::Q4K => "Q4_K",
        GgmlDType::Q5K => "Q5_K",
        GgmlDType::Q6K => "Q6_K",
        GgmlDType::Q8K => "Q8_K",
    }
}

/// One tensor to import.
#[derive(Debug, Clone)]
pub struct Planned {
    pub gguf: String,
    pub hf: String,
    /// For Llama's q and k projections, the heads whose rows llama.cpp interleaved.
    pub unpermute_heads: Option<usize>,
}

/// Each GGUF name the forward reads, its Hugging Face name and its shape (rows, columns) as
/// Hugging Face stores it (candle reverses GGUF's dimensions into this order).
fn expected(family: Family, s: &Sizes, vocab: usize) -> Vec<(String, String, Vec<usize>)> {
    let (c, f) = (s.hidden, s.intermediate);
    let (q, kv) = (s.heads * s.head_dim, s.kv_heads * s.head_dim);
    let mut out = vec![
        (
            "token_embd.weight".into(),
            "model.embed_tokens.weight".into(),
            vec![vocab, c],
        ),
        (
            "output_norm.weight".into(),
            "model.norm.weight".into(),
            vec![c],
        ),
        (
            "output.weight".into(),
            "lm_head.weight".into(),
            vec![vocab, c],
        ),
    ];
    for i in 0..s.layers {
        let mut add = |gguf: &str, hf: &str, shape: Vec<usize>| {
            out.push((
                format!("blk.{i}.{gguf}"),
                format!("model.layers.{i}.{hf}"),
                shape,
            ));
        };
        add("attn_norm.weight", "input_layernorm.weight", vec![c]);
        add(
            "ffn_norm.weight",
            "post_attention_layernorm.weight",
            vec![c],
        );
        add("attn_q.weight", "self_attn.q_proj.weight", vec![q, c]);
        add("attn_k.weight", "self_attn.k_proj.weight", vec![kv, c]);
        add("attn_v.weight", "self_attn.v_proj.weight", vec![kv, c]);
        add("attn_output.weight", "self_attn.o_proj.weight", vec![c, q]);
        add("ffn_gate.weight", "mlp.gate_proj.weight", vec![f, c]);
        add("ffn_up.weight", "mlp.up_proj.weight", vec![f, c]);
        add("ffn_down.weight", "mlp.down_proj.weight", vec![c, f]);
        if family == Family::Qwen2 {
            add("attn_q.bias", "self_attn.q_proj.bias", vec![q]);
            add("attn_k.bias", "self_attn.k_proj.bias", vec![kv]);
            add("attn_v.bias", "self_attn.v_proj.bias", vec![kv]);
        }
    }
    out
}

/// Checks every tensor of the file: its name one the forward reads, its shape the one the sizes
/// give, its type one of [`TYPES`]; and that every tensor the forward reads is there (the head
/// only when untied: llama.cpp leaves `output.weight` out of a tied checkpoint). Returns the plan
/// sorted by Hugging Face name and whether the head is tied.
pub fn plan(
    infos: &HashMap<String, TensorInfo>,
    family: Family,
    sizes: &Sizes,
    vocab: usize,
) -> Result<(Vec<Planned>, bool)> {
    let wanted: BTreeMap<String, (String, Vec<usize>)> = expected(family, sizes, vocab)
        .into_iter()
        .map(|(g, h, shape)| (g, (h, shape)))
        .collect();
    let mut names: Vec<&String> = infos.keys().collect();
    names.sort();
    for name in names {
        let info = &infos[name];
        let Some((_, shape)) = wanted.get(name) else {
            if name == "rope_freqs.weight" {
                bail!(
                    "tensor 'rope_freqs.weight': llama.cpp stores Llama 3.1's scaled RoPE \
                     frequencies there, and the importer computes unscaled RoPE only"
                );
            }
            bail!(
                "tensor '{name}' is not one a {} model of the kit reads (a bias, an extra norm, \
                 experts, or another architecture's weight): the importer refuses it rather than \
                 drop it",
                family.name()
            );
        };
        if info.shape.dims() != shape.as_slice() {
            bail!(
                "tensor '{name}' has shape {:?} where the metadata's sizes give {shape:?}",
                info.shape.dims()
            );
        }
        if !TYPES.contains(&info.ggml_dtype) {
            bail!(
                "tensor '{name}' is {}: the importer dequantizes {} only (requantize the file \
                 with llama.cpp's llama-quantize to one of them, or convert from the original \
                 checkpoint)",
                type_name(info.ggml_dtype),
                TYPES
                    .iter()
                    .map(|t| type_name(*t))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    let tied = !infos.contains_key("output.weight");
    if let Some(missing) = wanted
        .keys()
        .find(|g| !infos.contains_key(*g) && *g != "output.weight")
    {
        bail!(
            "no tensor '{missing}', which a {} model of {} layers reads",
            family.name(),
            sizes.layers
        );
    }
    let mut planned: Vec<Planned> = wanted
        .into_iter()
        .filter(|(g, _)| infos.contains_key(g))
        .map(|(gguf, (hf, _))| {
            // llama.cpp's converter interleaves the rows of each head of Llama's q and k
            // projections (`LlamaModel.permute`) because its Llama graph rotates adjacent pairs;
            // Qwen2's graph rotates halves (NEOX), as Hugging Face's does, so its rows are as
            // trained.
            let unpermute_heads = match (family, gguf.rsplit('.').nth(1)) {
                (Family::Llama, Some("attn_q")) => Some(sizes.heads),
                (Family::Llama, Some("attn_k")) => Some(sizes.kv_heads),
                _ => None,
            };
            Planned {
                gguf,
                hf,
                unpermute_heads,
            }
        })
        .collect();
    planned.sort_by(|a, b| a.hf.cmp(&b.hf));
    Ok((planned, tied))
}

/// Undoes llama.cpp's `permute(weights, n_head, n_head_kv)`: within each head, rows written as
/// pairs (row `i` of the first half beside row `i` of the second) go back to the two halves.
/// transformers' `LlamaTensorProcessor._reverse_permute_weights` computes the same.
pub fn unpermute(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    if heads == 0 || !rows.is_multiple_of(2 * heads) {
        bail!("{rows} rows cannot be split into {heads} heads of pairs");
    }
    let half = rows / heads / 2;
    Ok(w.reshape((heads, half, 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

/// Reads, dequantizes and puts in Hugging Face's order every planned tensor, as `dtype`.
pub fn load<R: Read + Seek>(
    reader: &mut R,
    infos: &HashMap<String, TensorInfo>,
    data_offset: u64,
    planned: &[Planned],
    dtype: DType,
) -> Result<HashMap<String, Tensor>> {
    let device = Device::Cpu;
    let mut out = HashMap::new();
    for p in planned {
        let q = infos[&p.gguf]
            .read(reader, data_offset, &device)
            .with_context(|| format!("reading tensor '{}'", p.gguf))?;
        let mut t = q
            .dequantize(&device)
            .with_context(|| format!("dequantizing tensor '{}'", p.gguf))?;
        if let Some(heads) = p.unpermute_heads {
            t = unpermute(&t, heads).with_context(|| format!("tensor '{}'", p.gguf))?;
        }
        out.insert(p.hf.clone(), t.to_dtype(dtype)?);
    }
    Ok(out)
}
