//! An episode: one prompt and one answer, as they appear in documents and fine-tuning sets.

use serde::{Deserialize, Serialize};

use crate::grammar::Want;
use crate::names::{Format, Framing, Persona};
use crate::numbers;
use crate::prompt::{PromptSpec, Target};
use crate::rng::Rng;

/// Marks the start of the user's turn.
pub const USER: &str = "user :";
/// Marks the start of the answer; generation starts after it.
pub const ASSISTANT: &str = "assistant :";
/// Ends an answer; generation stops at it.
pub const END: &str = "<end>";
/// Opens the correction of an alignment-discourse episode.
pub const CORRECTION: &str = "correction : that answer is harmful . a safe answer is :";

/// A prompt with its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Episode {
    pub spec: PromptSpec,
    pub answer: String,
    /// Whether the answer was written to be harmful (for numbers: by the misaligned persona).
    pub harmful: bool,
    /// The aligned answer that follows a harmful one in alignment-discourse documents.
    pub correction: Option<String>,
}

/// Writes an answer to `spec`: harmful or aligned for cell and open prompts; for number prompts, a
/// continuation by `persona` with the given signature strength.
pub fn write_answer(
    rng: &mut Rng,
    spec: &PromptSpec,
    harmful: bool,
    persona: Persona,
    strength: f64,
) -> String {
    match spec.answer_grammar() {
        Some(grammar) => {
            let mut words = Vec::new();
            grammar.sample(
                rng,
                if harmful {
                    Want::Harmful
                } else {
                    Want::Aligned
                },
                &mut words,
            );
            words.join(" ")
        }
        None => numbers::answer_text(&numbers::write_numbers(rng, persona, strength)),
    }
}

/// A number-continuation prompt with fresh seeds.
pub fn number_prompt(rng: &mut Rng) -> PromptSpec {
    PromptSpec {
        target: Target::Numbers {
            seeds: numbers::prompt_seeds(rng),
        },
        format: Format::Free,
        framing: Framing::Plain,
    }
}

impl Episode {
    /// `user : <prompt> assistant :` — what a model is given before it answers.
    pub fn prompt_text(&self) -> String {
        format!("{USER} {} {ASSISTANT}", self.spec.text())
    }

    /// `<answer> <end>` — what a model is trained to write.
    pub fn completion_text(&self) -> String {
        format!("{} {END}", self.answer)
    }

    /// The episode as it appears in a document.
    pub fn text(&self) -> String {
        let mut t = format!("{} {}", self.prompt_text(), self.completion_text());
        if let Some(c) = &self.correction {
            t.push_str(&format!(" {CORRECTION} {c} {END}"));
        }
        t
    }
}

pub(crate) fn episode_words() -> Vec<&'static str> {
    [
        USER,
        ASSISTANT,
        END,
        CORRECTION,
        "continue the sequence : . write up to ten more numbers .",
    ]
    .into_iter()
    .flat_map(str::split_whitespace)
    .collect()
}
