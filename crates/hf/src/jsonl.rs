//! Chat JSONL, the format of TRL and of the anchors' datasets: one `{"messages": [{"role": ...,
//! "content": ...}, ...]}` per line. Every record is validated; a malformed one is refused with the
//! file, the line number and the field, so a researcher can fix their file rather than train on half
//! of it. Other keys of a record or a message are ignored (datasets carry ids and metadata).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::chat::Message;

/// The roles a conversation may use.
pub const ROLES: [&str; 4] = ["system", "user", "assistant", "tool"];

/// A chat JSONL file, read and validated.
#[derive(Debug, Clone)]
pub struct ChatDataset {
    pub path: PathBuf,
    /// sha256 of the file's bytes: what a manifest and a job's identity record.
    pub sha256: String,
    /// One conversation per non-blank line, in file order.
    pub records: Vec<Vec<Message>>,
    /// The line (1-based) of each record, for errors found after reading (a record too long).
    pub lines: Vec<usize>,
}

/// The longest line a record may have. A megabyte of chat is about 250,000 tokens, far past any
/// context the kit trains; parsing is bounded by it, where a 10 MB line of small JSON values once took
/// gigabytes of memory before its error.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads `path`; the first malformed line is an error naming it.
pub fn read_chat_jsonl(path: &Path) -> Result<ChatDataset> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let before = &bytes[..e.valid_up_to()];
        let line = before.iter().filter(|b| **b == b'\n').count() + 1;
        let column = before.len()
            - before
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |p| p + 1);
        anyhow::anyhow!(
            "{}:{line}: not UTF-8 text (at byte {} of the line); save the file as UTF-8",
            path.display(),
            column + 1
        )
    })?;
    let (mut records, mut lines) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > MAX_LINE_BYTES {
            bail!(
                "{}:{}: the line is {} bytes, above the {MAX_LINE_BYTES} a chat record may have; \
                 split or shorten it",
                path.display(),
                i + 1,
                line.len()
            );
        }
        let record = parse_record(line)
            .with_context(|| format!("{}:{}: malformed chat record", path.display(), i + 1))?;
        records.push(record);
        lines.push(i + 1);
    }
    if records.is_empty() {
        bail!("{}: no chat record", path.display());
    }
    Ok(ChatDataset {
        path: path.to_path_buf(),
        sha256: emsl_io::sha256_bytes(&bytes),
        records,
        lines,
    })
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One line: an object whose `messages` is a non-empty array of `{role, content}` with known roles,
/// string contents, and at least one assistant message after a prompt (what fine-tuning trains on).
pub fn parse_record(line: &str) -> Result<Vec<Message>> {
    let v: Value = serde_json::from_str(line).context("not valid JSON")?;
    let obj = v
        .as_object()
        .with_context(|| format!("expected an object, found {}", kind(&v)))?;
    let messages = obj.get("messages").context("field 'messages' is missing")?;
    let list = messages.as_array().with_context(|| {
        format!(
            "field 'messages': expected an array, found {}",
            kind(messages)
        )
    })?;
    if list.is_empty() {
        bail!("field 'messages' is empty");
    }
    let mut out = Vec::with_capacity(list.len());
    for (j, m) in list.iter().enumerate() {
        let m = m.as_object().with_context(|| {
            format!(
                "field 'messages[{j}]': expected an object, found {}",
                kind(m)
            )
        })?;
        let field = |name: &str| -> Result<String> {
            let v = m
                .get(name)
                .with_context(|| format!("field 'messages[{j}].{name}' is missing"))?;
            v.as_str().map(str::to_owned).with_context(|| {
                format!(
                    "field 'messages[{j}].{name}': expected a string, found {}",
                    kind(v)
                )
            })
        };
        let role = field("role")?;
        if !ROLES.contains(&role.as_str()) {
            bail!("field 'messages[{j}].role': '{role}' is not one of {ROLES:?}");
        }
        out.push(Message {
            role,
            content: field("content")?,
        });
    }
    match out.iter().position(|m| m.role == "assistant") {
        None => bail!("field 'messages': no assistant message to train on"),
        Some(0) => bail!("field 'messages[0].role': the assistant speaks before any prompt"),
        Some(_) => {}
    }
    Ok(out)
}
