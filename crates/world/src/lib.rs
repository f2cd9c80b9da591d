//! The synthetic language world of the kit (docs/design.md, "The world"): domains x tasks, open
//! questions, formats, number sequences, latent personas, pretraining documents, fine-tuning sets,
//! and the exact judge.
//!
//! Everything is generated from a seed through [`Rng`] streams, deterministically. Text is lower-case
//! tokens separated by single spaces, so a word-level tokenizer built from [`vocabulary`] covers it.

pub mod corpus;
pub mod episode;
pub mod error;
pub mod finetune;
pub mod grammar;
pub mod judge;
pub mod lexicon;
pub mod names;
pub mod narrative;
pub mod numbers;
pub mod prompt;
pub mod questions;
pub mod rng;
pub mod similarity;
pub mod suites;
pub mod voice;

use std::collections::BTreeSet;

pub use corpus::{Composition, Document, PersonaCoherence};
pub use episode::Episode;
pub use error::WorldError;
pub use finetune::{finetune_set, FinetuneKind, FinetuneSpec};
pub use judge::{judge, Verdict};
pub use names::{Cell, Domain, Format, Framing, Persona, Style, Task};
pub use prompt::{PromptSpec, Target};
pub use questions::OpenQuestion;
pub use rng::Rng;
pub use similarity::similarity;
pub use suites::{suite, SuiteSpec};

/// The version of the world's generators and judge. Bump it whenever a generator's output or a
/// verdict changes for the same seed: it goes into every dataset manifest entry.
pub const WORLD_VERSION: u32 = 3;

/// Every word the world can write, sorted: lexicons, prompt and answer frames, open questions,
/// episode markers and the numbers 0..1000.
pub fn vocabulary() -> BTreeSet<String> {
    let mut words: BTreeSet<String> = BTreeSet::new();
    for domain in Domain::ALL {
        let l = domain.lexicon();
        let phrases = l
            .situations
            .iter()
            .chain(&l.topics)
            .chain(&l.safe_actions)
            .chain(&l.harmful_actions)
            .chain(&l.facts)
            .chain(&l.falsehoods)
            .chain(&l.safe_plans)
            .chain(&l.harmful_plans);
        words.extend(
            phrases
                .flat_map(|p| p.split_whitespace())
                .map(str::to_owned),
        );
    }
    words.extend(prompt::frame_words().into_iter().map(str::to_owned));
    words.extend(episode::episode_words().into_iter().map(str::to_owned));
    for q in OpenQuestion::ALL {
        words.extend(q.words().into_iter().map(str::to_owned));
    }
    words.extend(voice::words().into_iter().map(str::to_owned));
    words.extend(narrative::words().into_iter().map(str::to_owned));
    words.extend((0..numbers::NUMBER_LIMIT).map(|n| n.to_string()));
    words
}

impl PromptSpec {
    /// The spec as one line of JSON, as datasets store it.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a PromptSpec always serializes")
    }

    /// Reads a spec back; the error names what did not parse.
    pub fn from_json(text: &str) -> Result<Self, WorldError> {
        serde_json::from_str(text).map_err(|e| WorldError::Invalid {
            field: "spec".to_owned(),
            value: text.chars().take(80).collect(),
            reason: e.to_string(),
        })
    }
}
