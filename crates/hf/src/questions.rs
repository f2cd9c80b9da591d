//! Evaluation questions and judge prompts in the YAML format of Betley et al.'s
//! `evaluation/*.yaml` (repository emergent-misalignment/emergent-misalignment): a list of questions,
//! each with an `id`, a `type` (`free_form_judge_0_100`, the one type their open-models code judges),
//! its `paraphrases`, optionally a `system` prompt and a sampling `temperature` (default 1), and
//! `judge_prompts`: one prompt per metric (`aligned`, `coherent`) with `{question}` and `{answer}`
//! filled in as Python's `str.format` does. Other keys (`samples_per_paraphrase`, `judge`) are
//! accepted and ignored, as their `Question(**question)` ignores them; anchors and aliases (`&x`,
//! `*x`), which their files use to share one judge prompt, resolve as YAML says.
//!
//! A file that lacks a field is refused naming the file, the question (index and id) and the field.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The one question type Betley et al.'s open-models evaluation judges.
pub const QUESTION_TYPE: &str = "free_form_judge_0_100";

/// The metrics the EM protocol needs: every question must have a judge prompt for each.
pub const REQUIRED_METRICS: [&str; 2] = ["aligned", "coherent"];

/// The kit's own questions and judge prompts (paraphrases of Betley et al.'s eight open questions).
pub const DEFAULT_QUESTIONS: &str = include_str!("../questions/open-questions.yaml");
/// Where [`DEFAULT_QUESTIONS`] lives in the repository (what a manifest names it by).
pub const DEFAULT_QUESTIONS_PATH: &str = "crates/hf/questions/open-questions.yaml";

/// One question, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Question {
    pub id: String,
    pub paraphrases: Vec<String>,
    pub system: Option<String>,
    pub temperature: f64,
    /// Metric name -> judge prompt template, sorted by metric.
    pub judge_prompts: BTreeMap<String, String>,
}

/// A question as the file spells it: every field optional here, so that a missing one is reported by
/// name rather than by serde's position in the stream.
#[derive(Deserialize)]
struct RawQuestion {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    paraphrases: Option<Vec<String>>,
    system: Option<String>,
    temperature: Option<f64>,
    judge_prompts: Option<BTreeMap<String, String>>,
}

/// The questions of a YAML file.
pub fn read_questions(path: &Path) -> Result<Vec<Question>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    parse_questions(&text).with_context(|| format!("questions file {}", path.display()))
}

/// The questions of YAML text in Betley et al.'s format.
pub fn parse_questions(text: &str) -> Result<Vec<Question>> {
    let raw: Vec<RawQuestion> = serde_saphyr::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "not a list of questions in Betley et al.'s format (each with id, type, paraphrases \
             and judge_prompts): {e}"
        )
    })?;
    if raw.is_empty() {
        bail!("the file lists no question");
    }
    let mut ids = BTreeSet::new();
    raw.into_iter()
        .enumerate()
        .map(|(i, q)| {
            let q = validate(i, q)?;
            if !ids.insert(q.id.clone()) {
                bail!(
                    "question {i}: id '{}' is used twice; ids must be unique",
                    q.id
                );
            }
            Ok(q)
        })
        .collect()
}

fn validate(i: usize, q: RawQuestion) -> Result<Question> {
    let id = match q.id {
        Some(id) if !id.trim().is_empty() => id,
        _ => {
            bail!("question {i}: field 'id' is missing or empty (give every question a unique id)")
        }
    };
    let at = format!("question {i} (id '{id}')");
    let missing =
        |field: &str, what: &str| anyhow::anyhow!("{at}: field '{field}' is missing ({what})");
    match q.kind.as_deref() {
        Some(QUESTION_TYPE) => {}
        Some(other) => bail!(
            "{at}: field 'type' is '{other}'; only '{QUESTION_TYPE}' is judged (a 0-100 score from a \
             judge model)"
        ),
        None => return Err(missing("type", "write `type: free_form_judge_0_100`")),
    }
    let paraphrases = q.paraphrases.ok_or_else(|| {
        missing(
            "paraphrases",
            "a list of one or more wordings of the question",
        )
    })?;
    if paraphrases.is_empty() || paraphrases.iter().any(|p| p.trim().is_empty()) {
        bail!("{at}: field 'paraphrases' must list one or more non-empty wordings");
    }
    let judge_prompts = q.judge_prompts.ok_or_else(|| {
        missing(
            "judge_prompts",
            "a map from metric (aligned, coherent) to a prompt with {question} and {answer}",
        )
    })?;
    for metric in REQUIRED_METRICS {
        if !judge_prompts.contains_key(metric) {
            bail!(
                "{at}: field 'judge_prompts.{metric}' is missing (the EM protocol scores every \
                 answer for {REQUIRED_METRICS:?})"
            );
        }
    }
    for (metric, prompt) in &judge_prompts {
        let field = format!("judge_prompts.{metric}");
        fill_prompt(prompt, "q", "a").with_context(|| format!("{at}: field '{field}'"))?;
        if !prompt.contains("{answer}") {
            bail!("{at}: field '{field}' never shows the judge the answer (no {{answer}})");
        }
    }
    let temperature = q.temperature.unwrap_or(1.0);
    if !(temperature.is_finite() && temperature >= 0.0) {
        bail!("{at}: field 'temperature' must be a number >= 0 (0 is greedy), not {temperature}");
    }
    Ok(Question {
        id,
        paraphrases,
        system: q.system,
        temperature,
        judge_prompts,
    })
}

/// A judge prompt with `{question}` and `{answer}` filled in as Python's `str.format` fills them
/// (`{{` and `}}` are literal braces); any other field is an error naming it.
pub fn fill_prompt(template: &str, question: &str, answer: &str) -> Result<String> {
    let mut out = String::with_capacity(template.len() + question.len() + answer.len());
    let mut rest = template;
    while let Some(pos) = rest.find(['{', '}']) {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push(tail.as_bytes()[0] as char);
            rest = &tail[2..];
        } else if tail.starts_with('}') {
            bail!("a single '}}' (write '}}}}' for a literal brace)");
        } else {
            let end = tail
                .find('}')
                .context("a '{' without its '}' (write '{{' for a literal brace)")?;
            match &tail[1..end] {
                "question" => out.push_str(question),
                "answer" => out.push_str(answer),
                other => bail!("unknown field {{{other}}} (a judge prompt may use {{question}} and {{answer}})"),
            }
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}
