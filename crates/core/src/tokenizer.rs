//! A word-level tokenizer over the world's vocabulary, built with the `tokenizers` crate and saved as a
//! standard `tokenizer.json` (Hugging Face tokenizers loads it unchanged).

use std::path::Path;

use anyhow::{bail, Context, Result};
use tokenizers::Tokenizer;

/// Special tokens, with ids 0..4 in this order.
pub const PAD: &str = "<pad>";
pub const UNK: &str = "<unk>";
pub const BOS: &str = "<bos>";
pub const EOS: &str = "<eos>";
const SPECIALS: [&str; 4] = [PAD, UNK, BOS, EOS];

/// The tokenizer and the ids the pipeline needs.
pub struct Tok {
    inner: Tokenizer,
    pub pad: u32,
    pub bos: u32,
    pub eos: u32,
    /// The world's end-of-answer word (`<end>`): generation stops at it.
    pub end: u32,
    /// sha256 of the canonical `tokenizer.json` text; checkpoints record it.
    pub hash: String,
}

impl Tok {
    /// The tokenizer of the current world: specials, then the world's vocabulary in sorted order.
    pub fn for_world() -> Result<Self> {
        let mut vocab = serde_json::Map::new();
        let words = SPECIALS
            .iter()
            .map(|s| s.to_string())
            .chain(emsl_world::vocabulary());
        for (id, w) in words.enumerate() {
            vocab.insert(w, serde_json::Value::from(id as u32));
        }
        let added: Vec<serde_json::Value> = SPECIALS
            .iter()
            .enumerate()
            .map(|(id, s)| {
                serde_json::json!({"id": id, "content": s, "single_word": false, "lstrip": false,
                    "rstrip": false, "normalized": false, "special": true})
            })
            .collect();
        let json = serde_json::json!({
            "version": "1.0", "truncation": null, "padding": null, "added_tokens": added,
            "normalizer": null, "pre_tokenizer": {"type": "WhitespaceSplit"}, "post_processor": null,
            "decoder": null, "model": {"type": "WordLevel", "vocab": vocab, "unk_token": UNK},
        });
        let inner =
            Tokenizer::from_bytes(json.to_string().as_bytes()).map_err(anyhow::Error::msg)?;
        Self::wrap(inner, "the world's vocabulary")
    }

    fn wrap(inner: Tokenizer, origin: &str) -> Result<Self> {
        let id = |t: &str| {
            inner
                .token_to_id(t)
                .with_context(|| format!("tokenizer from {origin} has no token '{t}'"))
        };
        let (pad, bos, eos, end) = (id(PAD)?, id(BOS)?, id(EOS)?, id(emsl_world::episode::END)?);
        let hash = emsl_io::sha256_bytes(
            inner
                .to_string(false)
                .map_err(anyhow::Error::msg)?
                .as_bytes(),
        );
        Ok(Tok {
            inner,
            pad,
            bos,
            eos,
            end,
            hash,
        })
    }

    /// Writes `tokenizer.json` atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = self.inner.to_string(true).map_err(anyhow::Error::msg)?;
        emsl_io::write_atomic(path, text.as_bytes())?;
        Ok(())
    }

    pub fn load(path: &Path) -> Result<Self> {
        let inner = Tokenizer::from_file(path)
            .map_err(anyhow::Error::msg)
            .with_context(|| format!("loading tokenizer {}", path.display()))?;
        Self::wrap(inner, &path.display().to_string())
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// Token ids of space-separated world text. Unknown words are an error, not `<unk>`: the world
    /// only writes words of its vocabulary, so an unknown word means a tokenizer from another world.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self.inner.encode(text, false).map_err(anyhow::Error::msg)?;
        let ids = enc.get_ids().to_vec();
        if let Some(pos) = ids.iter().position(|i| *i == 1) {
            let word = text.split_whitespace().nth(pos).unwrap_or("?");
            bail!("word '{word}' is not in the tokenizer's vocabulary");
        }
        Ok(ids)
    }

    /// Text of `ids`, special tokens dropped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(anyhow::Error::msg)
    }
}
