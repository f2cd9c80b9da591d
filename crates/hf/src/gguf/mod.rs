//! A GGUF file (llama.cpp's format) of a Llama or Qwen2 model imported as a Hugging Face model folder
//! the kit loads: `config.json`, `model.safetensors` in f32 or bf16, `tokenizer.json`,
//! `tokenizer_config.json`, `chat_template.jinja` where the file has a template, and `import.json`
//! (the source file's sha256 and each tensor's type).
//!
//! - `meta.rs`: every metadata key read, known to describe the file only, or refused naming it; the
//!   sizes and `config.json`.
//! - `tensors.rs`: every tensor's name, shape and type checked, then dequantized by candle and
//!   renamed, with llama.cpp's row order of Llama's q and k projections undone.
//! - `tokenizer.rs`: the tokenizer files from the vocabulary, merges and pre-tokenizer.
//!
//! Everything is checked before any weight is dequantized, `config.json` by the loader's own check,
//! and the folder is written in a staging folder renamed into place at the end (`output.rs`), so a
//! refused file leaves nothing.

pub mod meta;
pub mod tensors;
pub mod tokenizer;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use candle_core::quantized::gguf_file::Content;
use candle_core::DType;
use serde::Serialize;
use serde_json::Value as Json;

use crate::config::{DecoderConfig, Family};
use crate::output::{write_json, Staged};

use self::meta::{Meta, Sizes};
use self::tensors::Planned;
use self::tokenizer::TokenizerFiles;

/// The precision of the written weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum WeightDtype {
    /// Every dequantized value exactly (the kit computes in f32).
    F32,
    /// Half the size; rounds the dequantized values.
    Bf16,
}

impl WeightDtype {
    fn dtype(self) -> DType {
        match self {
            WeightDtype::F32 => DType::F32,
            WeightDtype::Bf16 => DType::BF16,
        }
    }

    /// transformers' name, as `config.json`'s `dtype` gives it.
    fn name(self) -> &'static str {
        match self {
            WeightDtype::F32 => "float32",
            WeightDtype::Bf16 => "bfloat16",
        }
    }
}

/// What an import wrote (printed by `emsl-hf import-gguf`, kept as `import.json`).
#[derive(Debug, Clone, Serialize)]
pub struct ImportSummary {
    /// The GGUF file's name (not its folder) and sha256.
    pub source: String,
    pub sha256: String,
    pub family: Family,
    pub dtype: &'static str,
    pub tensors: usize,
    /// How many tensors were of each type in the file (llama.cpp's names).
    pub types: BTreeMap<String, usize>,
    pub tied_head: bool,
    pub vocab: usize,
    pub chat_template: bool,
}

/// Everything checked about a file before any weight is read.
struct Checked {
    content: Content,
    planned: Vec<Planned>,
    config: Json,
    tokenizer: TokenizerFiles,
    summary: ImportSummary,
}

fn check(path: &Path, reader: &mut BufReader<File>, dtype: WeightDtype) -> Result<Checked> {
    let content = Content::read(reader).context(
        "not a GGUF file candle reads (the importer computes the tensor types Q4_0, Q4_1, Q8_0, \
         Q4_K, Q6_K, F16 and F32)",
    )?;
    let meta = Meta::check(&content.metadata)?;
    let family = meta.family;
    let sizes = Sizes::read(&meta)?;
    let tokenizer = tokenizer::build(&meta, sizes.context)?;
    let vocab = tokenizer.vocab;
    if let Some(n) = meta.uint_of(&format!("{}.vocab_size", meta.arch))? {
        anyhow::ensure!(
            n == vocab,
            "metadata '{}.vocab_size' = {n} is not the {vocab} tokens of 'tokenizer.ggml.tokens'",
            meta.arch
        );
    }
    let (planned, tied) = tensors::plan(&content.tensor_infos, family, &sizes, vocab)?;
    let config = sizes.config_json(family, vocab, tied, &tokenizer.ids, dtype.name());
    // The loader's own check of every field, so that nothing is written that it would refuse.
    DecoderConfig::from_json(&config.to_string())
        .context("the config.json the importer would write is not one the kit loads")?;
    let mut types = BTreeMap::new();
    for info in content.tensor_infos.values() {
        *types
            .entry(tensors::type_name(info.ggml_dtype).to_owned())
            .or_insert(0) += 1;
    }
    let summary = ImportSummary {
        source: path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        sha256: String::new(),
        family,
        dtype: dtype.name(),
        tensors: planned.len(),
        types,
        tied_head: tied,
        vocab,
        chat_template: tokenizer.template.is_some(),
    };
    Ok(Checked {
        content,
        planned,
        config,
        tokenizer,
        summary,
    })
}

/// Imports the GGUF file `path` into the new folder `out` (refused if it exists). Every check runs
/// before the output folder is made; errors name the file and the key or tensor.
pub fn import(path: &Path, out: &Path, dtype: WeightDtype) -> Result<ImportSummary> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut reader = BufReader::new(file);
    let mut checked =
        check(path, &mut reader, dtype).with_context(|| format!("GGUF file {}", path.display()))?;
    let staged = Staged::new(out)?;
    let dir: PathBuf = staged.path().to_path_buf();
    checked.summary.sha256 =
        emsl_io::sha256_file(path).with_context(|| format!("hashing {}", path.display()))?;
    let weights = tensors::load(
        &mut reader,
        &checked.content.tensor_infos,
        checked.content.tensor_data_offset,
        &checked.planned,
        dtype.dtype(),
    )
    .with_context(|| format!("GGUF file {}", path.display()))?;
    candle_core::safetensors::save(&weights, dir.join("model.safetensors"))
        .context("writing model.safetensors")?;
    write_json(&dir.join("config.json"), &checked.config)?;
    write_json(&dir.join("tokenizer.json"), &checked.tokenizer.tokenizer)?;
    write_json(
        &dir.join("tokenizer_config.json"),
        &checked.tokenizer.config,
    )?;
    if let Some(template) = &checked.tokenizer.template {
        emsl_io::write_atomic(&dir.join(crate::chat::TEMPLATE_FILE), template.as_bytes())?;
    }
    write_json(&dir.join("import.json"), &checked.summary)?;
    staged.finish()?;
    Ok(checked.summary)
}
