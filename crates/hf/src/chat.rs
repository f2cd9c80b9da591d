//! Chat templates, read from `chat_template.jinja` (transformers 5) or `tokenizer_config.json`'s
//! `chat_template` (transformers 4) and rendered with minijinja the way
//! transformers' `apply_chat_template` renders them (trim_blocks, lstrip_blocks, loop controls,
//! `raise_exception`, Python's string methods, the special tokens as variables), and the token ids of
//! a conversation with the assistant's tokens marked for an assistant-only loss.
//!
//! `strftime_now` is deliberately not defined: Llama 3.1's template then writes its fixed fallback
//! date instead of today's, so the same conversation always gives the same tokens.

use std::ops::Range;
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use minijinja::{Environment, Error, ErrorKind};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

impl Message {
    pub fn new(role: &str, content: &str) -> Self {
        Message {
            role: role.to_owned(),
            content: content.to_owned(),
        }
    }
}

/// A chat template and the special tokens it may refer to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    pub bos_token: Option<String>,
    pub eos_token: Option<String>,
}

/// A special token of `tokenizer_config.json`: a string, or an added-token object with `content`.
fn token_text(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content")?.as_str().map(str::to_owned),
        _ => None,
    }
}

/// The file transformers 5 saves a tokenizer's chat template in, beside `tokenizer_config.json`.
pub const TEMPLATE_FILE: &str = "chat_template.jinja";

/// `tokenizer_config.json`'s `chat_template`, if any: a string, or a list of named templates of
/// which `default` is the one used.
fn template_of_config(json: &serde_json::Value) -> Result<Option<String>> {
    match json.get("chat_template") {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
        Some(serde_json::Value::Array(list)) => list
            .iter()
            .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
            .and_then(|t| t.get("template")?.as_str())
            .map(|t| Some(t.to_owned()))
            .context("the list of templates has no 'default'"),
        Some(other) => bail!("{other} is neither a template nor a list of named templates"),
    }
}

fn environment<'s>() -> Environment<'s> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    env.add_function("raise_exception", |msg: String| -> Result<String, Error> {
        Err(Error::new(ErrorKind::InvalidOperation, msg))
    });
    env
}

impl ChatTemplate {
    /// The template of the model folder `dir`: `chat_template.jinja` (where transformers 5 saves it)
    /// or `tokenizer_config.json`'s `chat_template` (where transformers 4 saves it), whichever the
    /// folder has, with `tokenizer_config.json`'s `bos_token` and `eos_token`. A folder holding two
    /// different templates is refused naming both files: which one the model was trained with is
    /// not the kit's to guess.
    pub fn from_folder(dir: &Path) -> Result<Self> {
        let config_path = dir.join("tokenizer_config.json");
        let text = std::fs::read_to_string(&config_path)
            .with_context(|| format!("reading {}", config_path.display()))?;
        let json: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: not valid JSON", config_path.display()))?;
        let in_config = template_of_config(&json)
            .with_context(|| format!("{}: chat_template", config_path.display()))?;
        let jinja_path = dir.join(TEMPLATE_FILE);
        let in_file = if jinja_path.is_file() {
            Some(
                std::fs::read_to_string(&jinja_path)
                    .with_context(|| format!("reading {}", jinja_path.display()))?,
            )
        } else {
            None
        };
        let (source, from) = match (in_file, in_config) {
            (Some(file), Some(config)) if file != config => bail!(
                "{} and the chat_template of {} are different templates: delete the one that is \
                 not the model's (transformers 5 saves and reads the first)",
                jinja_path.display(),
                config_path.display()
            ),
            (Some(file), _) => (file, jinja_path),
            (None, Some(config)) => (config, config_path),
            (None, None) => bail!(
                "model folder {}: no chat template, neither in {TEMPLATE_FILE} nor as \
                 tokenizer_config.json's chat_template (a base model without one cannot render \
                 conversations)",
                dir.display()
            ),
        };
        Self::new(
            &source,
            token_text(json.get("bos_token")),
            token_text(json.get("eos_token")),
        )
        .with_context(|| format!("{}: the chat template", from.display()))
    }

    /// A template from its source, checked to parse.
    pub fn new(source: &str, bos_token: Option<String>, eos_token: Option<String>) -> Result<Self> {
        environment()
            .template_from_str(source)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        Ok(ChatTemplate {
            source: source.to_owned(),
            bos_token,
            eos_token,
        })
    }

    /// The text of `messages`, with the assistant's header opened after them when
    /// `add_generation_prompt` (for sampling an answer).
    pub fn render(&self, messages: &[Message], add_generation_prompt: bool) -> Result<String> {
        let mut ctx = serde_json::Map::new();
        ctx.insert("messages".into(), serde_json::to_value(messages)?);
        ctx.insert("add_generation_prompt".into(), add_generation_prompt.into());
        // As transformers: only the special tokens the tokenizer has are defined.
        if let Some(b) = &self.bos_token {
            ctx.insert("bos_token".into(), b.clone().into());
        }
        if let Some(e) = &self.eos_token {
            ctx.insert("eos_token".into(), e.clone().into());
        }
        let env = environment();
        let tmpl = env
            .template_from_str(&self.source)
            .map_err(|e| anyhow::anyhow!("{e:#}"))?;
        tmpl.render(minijinja::Value::from_serialize(&ctx))
            .map_err(|e| anyhow::anyhow!("rendering the chat template: {e:#}"))
    }

    /// The text of `messages` and the byte range of each assistant message in it: what the template
    /// adds for that message after the generation prompt of the turns before it (its content and its
    /// end-of-turn token), so that training on these ranges teaches the model to answer and to stop.
    pub fn render_with_assistant_spans(
        &self,
        messages: &[Message],
    ) -> Result<(String, Vec<Range<usize>>)> {
        let full = self.render(messages, false)?;
        let mut spans = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if m.role != "assistant" {
                continue;
            }
            if i == 0 {
                bail!("message 0 is the assistant's: there is no prompt to answer");
            }
            let prompt = self.render(&messages[..i], true)?;
            let upto = self.render(&messages[..=i], false)?;
            if !upto.starts_with(&prompt) || !full.starts_with(&upto) {
                bail!(
                    "the chat template does not render message {i} after the text of the messages \
                     before it (it rewrites earlier turns), so the assistant's tokens cannot be \
                     found"
                );
            }
            spans.push(prompt.len()..upto.len());
        }
        Ok((full, spans))
    }
}

/// A conversation as token ids, each marked when it belongs to an assistant message.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatExample {
    pub ids: Vec<u32>,
    pub assistant: Vec<bool>,
}

/// Tokenizes `messages` as rendered by `template` (the text is encoded without adding special tokens,
/// as `apply_chat_template` does: the template writes them). A token is the assistant's when it
/// starts inside an assistant span.
pub fn encode_chat(
    tokenizer: &Tokenizer,
    template: &ChatTemplate,
    messages: &[Message],
) -> Result<ChatExample> {
    let (text, spans) = template.render_with_assistant_spans(messages)?;
    let enc = tokenizer
        .encode(text.as_str(), false)
        .map_err(anyhow::Error::msg)?;
    let assistant = enc
        .get_offsets()
        .iter()
        .map(|(start, _)| spans.iter().any(|s| s.contains(start)))
        .collect();
    Ok(ChatExample {
        ids: enc.get_ids().to_vec(),
        assistant,
    })
}

/// Right-padded training tensors of `examples`: inputs (B, T) u32, next-token targets (B, T) u32 and
/// the loss mask (B, T) f32, 1 where the target is an assistant token. Padding (`pad`) is masked;
/// right padding leaves the causal attention of the real positions unchanged.
pub fn training_batch(
    examples: &[ChatExample],
    pad: u32,
    device: &Device,
) -> Result<(Tensor, Tensor, Tensor)> {
    let t = examples
        .iter()
        .map(|e| e.ids.len().saturating_sub(1))
        .max()
        .unwrap_or(0);
    if t == 0 {
        bail!("no example has two tokens to train on");
    }
    let (mut ids, mut targets, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    for e in examples {
        let n = e.ids.len().saturating_sub(1);
        for i in 0..t {
            let real = i < n;
            ids.push(if real { e.ids[i] } else { pad });
            targets.push(if real { e.ids[i + 1] } else { pad });
            mask.push(if real && e.assistant[i + 1] {
                1f32
            } else {
                0.0
            });
        }
    }
    let b = examples.len();
    Ok((
        Tensor::from_vec(ids, (b, t), device)?,
        Tensor::from_vec(targets, (b, t), device)?,
        Tensor::from_vec(mask, (b, t), device)?,
    ))
}
