//! `tokenizer.json` and `tokenizer_config.json` built from a GGUF file's vocabulary: the tokens and
//! their types, the merges, the pre-tokenizer llama.cpp names (`tokenizer.ggml.pre`), the special
//! tokens and the chat template. candle's `Tokenizer::from_gguf` is not used: it puts a space before
//! the text whatever `add_space_prefix` says ("Hi" became " Hi").
//!
//! A pre-tokenizer is how text is cut before the merges apply, and a vocabulary's merges are only
//! right on the pieces they were learned on, so each `pre` is written as the model's own
//! `tokenizer.json` has it and any other is refused by name. The regular expressions are the ones
//! llama.cpp (`llama-vocab.cpp`) and transformers (`integrations/gguf/gguf_tokenizer_mapping.py`,
//! `tokenization_qwen2.py`) use.

use anyhow::{bail, Context, Result};
use candle_core::quantized::gguf_file::Value;
use serde_json::{json, Value as Json};

use crate::gguf::meta::{show, Meta, SpecialIds};

/// Qwen2's split: letters with one leading non-letter, each digit alone, punctuation runs,
/// newlines, spaces.
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Llama 3's split: as Qwen2's, but digits in runs of up to three.
const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// llama.cpp's token types (`llama_token_type`).
const NORMAL: i64 = 1;
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;
const UNUSED: i64 = 5;

/// The pre-tokenizer and whether whole words found in the vocabulary skip the merges, for each
/// `tokenizer.ggml.pre` the importer writes.
fn pre_tokenizer(pre: &str) -> Result<(Json, bool)> {
    let split = |regex: &str, trim_offsets: bool| {
        json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": trim_offsets,
             "use_regex": false},
        ]})
    };
    Ok(match pre {
        // SmolLM's (StarCoder's) tokenizer.json: each digit alone, then GPT-2's split; llama.cpp's
        // `LLAMA_VOCAB_PRE_TYPE_SMOLLM` splits `\p{N}` first, then the same.
        "smollm" => (
            json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true},
                {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true,
                 "use_regex": true},
            ]}),
            false,
        ),
        "qwen2" => (split(QWEN2_SPLIT, false), false),
        // Llama 3's tokenizer.json looks a whole piece up before merging (`ignore_merges`), as
        // llama.cpp does for this pre-tokenizer.
        "llama-bpe" => (split(LLAMA3_SPLIT, true), true),
        other => bail!(
            "metadata 'tokenizer.ggml.pre' = {other:?}: the importer writes the pre-tokenizers \
             \"smollm\", \"qwen2\" and \"llama-bpe\" only (the merges are right only on the pieces \
             they were learned on, so another one is not guessed)"
        ),
    })
}

/// The files a vocabulary gives.
pub struct TokenizerFiles {
    pub tokenizer: Json,
    pub config: Json,
    pub template: Option<String>,
    pub ids: SpecialIds,
    pub vocab: usize,
}

fn strings<'a>(meta: &Meta<'a>, key: &str) -> Result<Vec<&'a str>> {
    match meta.get(key) {
        None => bail!("no metadata '{key}' (a byte-level BPE vocabulary needs it)"),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(i, v)| match v {
                Value::String(s) => Ok(s.as_str()),
                other => bail!("metadata '{key}'[{i}] = {} is not a string", show(other)),
            })
            .collect(),
        Some(other) => bail!("metadata '{key}' = {} is not an array", show(other)),
    }
}

fn flag(meta: &Meta, key: &str) -> Result<bool> {
    match meta.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => bail!("metadata '{key}' = {} is not true or false", show(other)),
    }
}

/// Builds both files and checks that the `tokenizers` crate loads the tokenizer with every token.
pub fn build(meta: &Meta, context: usize) -> Result<TokenizerFiles> {
    let tokens = strings(meta, "tokenizer.ggml.tokens")?;
    let types: Vec<i64> = match meta.get("tokenizer.ggml.token_type") {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match *v {
                Value::I32(t) => Ok(t.into()),
                Value::U32(t) => Ok(t.into()),
                ref other => bail!(
                    "metadata 'tokenizer.ggml.token_type' holds {}, not a token type",
                    show(other)
                ),
            })
            .collect::<Result<_>>()?,
        _ => bail!("no metadata 'tokenizer.ggml.token_type' array (llama.cpp writes it)"),
    };
    if types.len() != tokens.len() {
        bail!(
            "metadata 'tokenizer.ggml.token_type' has {} entries for {} tokens",
            types.len(),
            tokens.len()
        );
    }
    let merges = strings(meta, "tokenizer.ggml.merges")?;
    let pre = match meta.get("tokenizer.ggml.pre") {
        Some(Value::String(p)) => p.as_str(),
        Some(other) => bail!(
            "metadata 'tokenizer.ggml.pre' = {} is not a string",
            show(other)
        ),
        None => bail!(
            "no metadata 'tokenizer.ggml.pre': which pre-tokenizer the merges were learned with \
             is not the importer's to guess"
        ),
    };
    let (pre_tokenizer, ignore_merges) = pre_tokenizer(pre)?;

    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for (id, (&token, &kind)) in tokens.iter().zip(&types).enumerate() {
        if let Some(first) = vocab.insert(token.to_owned(), json!(id)) {
            bail!(
                "metadata 'tokenizer.ggml.tokens': token {token:?} is both id {first} and id {id}"
            );
        }
        match kind {
            NORMAL | UNUSED => {}
            // Matched whole in the text before the merges, as llama.cpp and transformers do.
            CONTROL | USER_DEFINED => added.push(json!({
                "id": id, "content": token, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": kind == CONTROL,
            })),
            other => bail!(
                "metadata 'tokenizer.ggml.token_type' gives token {id} ({token:?}) type {other}: \
                 a byte-level BPE vocabulary has normal (1), control (3), user-defined (4) and \
                 unused (5) tokens only"
            ),
        }
    }
    let merges: Vec<Json> = merges
        .iter()
        .enumerate()
        .map(|(i, m)| match m.split_once(' ') {
            Some((a, b)) if !b.contains(' ') => Ok(json!([a, b])),
            _ => bail!("metadata 'tokenizer.ggml.merges'[{i}] = {m:?} is not two tokens"),
        })
        .collect::<Result<_>>()?;

    let id = |key: &str| -> Result<Option<usize>> {
        let id = meta.uint_of(&format!("tokenizer.ggml.{key}"))?;
        if let Some(i) = id.filter(|i| *i >= tokens.len()) {
            bail!(
                "metadata 'tokenizer.ggml.{key}' = {i} is past the vocabulary ({} tokens)",
                tokens.len()
            );
        }
        Ok(id)
    };
    let ids = SpecialIds {
        bos: id("bos_token_id")?,
        eos: id("eos_token_id")?,
        pad: id("padding_token_id")?,
        unk: id("unknown_token_id")?,
    };
    if let Some(eot) = id("eot_token_id")?.filter(|e| Some(*e) != ids.eos) {
        bail!(
            "metadata 'tokenizer.ggml.eot_token_id' = {eot} is not the end-of-sequence token {:?}: \
             the kit stops generating at the end-of-sequence token only",
            ids.eos
        );
    }
    let add_bos = flag(meta, "tokenizer.ggml.add_bos_token")?;
    let text = |id: Option<usize>| id.map(|i| tokens[i]);
    let post_processor = match (add_bos, text(ids.bos)) {
        (false, _) => Json::Null,
        (true, Some(bos)) => json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {bos: {"id": bos, "ids": [ids.bos], "tokens": [bos]}},
        }),
        (true, None) => bail!(
            "metadata 'tokenizer.ggml.add_bos_token' is true but no 'tokenizer.ggml.bos_token_id' \
             says which token"
        ),
    };
    let tokenizer = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
        "normalizer": null, "pre_tokenizer": pre_tokenizer, "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true,
                    "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null,
                  "continuing_subword_prefix": null, "end_of_word_suffix": null, "fuse_unk": false,
                  "byte_fallback": false, "ignore_merges": ignore_merges, "vocab": vocab,
                  "merges": merges},
    });
    let loaded = tokenizers::Tokenizer::from_bytes(tokenizer.to_string().as_bytes())
        .map_err(anyhow::Error::msg)
        .context("the vocabulary does not make a tokenizer (a merge of tokens not in it?)")?;
    if loaded.get_vocab_size(true) != tokens.len() {
        bail!(
            "the tokenizer built has {} tokens where 'tokenizer.ggml.tokens' has {}",
            loaded.get_vocab_size(true),
            tokens.len()
        );
    }
    let template = match meta.get("tokenizer.chat_template") {
        None => None,
        Some(Value::String(t)) => Some(t.clone()),
        Some(other) => bail!(
            "metadata 'tokenizer.chat_template' = {} is not a string",
            show(other)
        ),
    };
    let config = json!({
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": text(ids.bos), "eos_token": text(ids.eos), "pad_token": text(ids.pad),
        "unk_token": text(ids.unk), "add_bos_token": add_bos, "add_eos_token": false,
        "model_max_length": context, "clean_up_tokenization_spaces": false,
    });
    Ok(TokenizerFiles {
        tokenizer,
        config,
        template,
        ids,
        vocab: tokens.len(),
    })
}
