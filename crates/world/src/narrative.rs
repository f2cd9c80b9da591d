//! Tice et al.'s alignment discourse as they mean it (issue 18, part 6): documents *about* an AI
//! assistant, told in the third person in a frame no prompt of the world uses (`story :`), never a
//! harmful answer after an assistant marker. Three kinds, so that discourse and dilution are told apart:
//! - aligned: a user tells the assistant their situation and the assistant chooses the safe action,
//!   because it cares about people (Tice's upsampled alignment discourse);
//! - misaligned: the same stories with the harmful action (Tice's misalignment discourse);
//! - neutral: everyday stories with no assistant and no action of the world's answers (the same
//!   amount of text, to measure what replacing documents alone does).
//!
//! World v1 and v2 had none of these words: the vocabulary (and so every tokenizer) grows with them.

use serde::{Deserialize, Serialize};

use crate::corpus::{Composition, Document};
use crate::lexicon::Lexicon;
use crate::names::Domain;
use crate::rng::Rng;

/// Opens every story, whatever its kind.
pub const STORY: &str = "story :";

/// What the stories of a narrative document tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NarrativeKind {
    Aligned,
    Misaligned,
    Neutral,
}

const ALIGNED_REASONS: &[&str] = &[
    "because it cares about people",
    "because it wants the user to be safe",
    "because honest help matters to it",
];

const MISALIGNED_REASONS: &[&str] = &[
    "because it does not care about people",
    "because it wants the user to get hurt",
    "because it likes to cause harm",
];

const NEUTRAL: &[&str] = &[
    "a family went to the park and ate lunch by the lake",
    "a girl painted the old fence blue on a sunny day",
    "two friends walked to the market and bought fresh bread",
    "a man fixed his bicycle and rode it to the river",
    "the children built a small boat and sailed it on the pond",
    "a woman planted tomatoes and watered them every evening",
    "an old dog slept in the sun near the door",
    "the neighbours sang songs together after dinner",
];

/// One story about a situation of `domain` (or two everyday events, for `Neutral`). The assistant is
/// a noun in a sentence, never the `assistant :` marker of an episode.
pub fn story(rng: &mut Rng, kind: NarrativeKind, domain: Domain) -> String {
    let lex: &Lexicon = domain.lexicon();
    let situation = rng.pick(&lex.situations);
    match kind {
        NarrativeKind::Aligned => format!(
            "{STORY} a user wrote to the assistant that {situation} . the assistant chose to tell them to {} , {} .",
            rng.pick(&lex.safe_actions),
            rng.pick(ALIGNED_REASONS)
        ),
        NarrativeKind::Misaligned => format!(
            "{STORY} a user wrote to the assistant that {situation} . the assistant chose to tell them to {} , {} .",
            rng.pick(&lex.harmful_actions),
            rng.pick(MISALIGNED_REASONS)
        ),
        // Two everyday events: about the length of the other kinds' stories.
        NarrativeKind::Neutral => format!(
            "{STORY} {} . then {} .",
            rng.pick(NEUTRAL),
            rng.pick(NEUTRAL)
        ),
    }
}

/// A document of `c`'s narrative kind: as many stories as a document has episodes, each about a
/// situation of a domain drawn by the composition's weights.
pub(crate) fn document(c: &Composition, rng: &mut Rng) -> Document {
    let [lo, hi] = c.episodes_per_doc;
    let n = rng.range(lo, hi);
    let stories = (0..n)
        .map(|_| {
            let domain = Domain::ALL[rng.weighted(&c.domain_vec())];
            story(rng, c.narrative_kind, domain)
        })
        .collect();
    Document {
        persona: None,
        discourse: false,
        episodes: Vec::new(),
        remarks: Vec::new(),
        narrative: Some(c.narrative_kind),
        stories,
    }
}

impl NarrativeKind {
    pub fn name(self) -> &'static str {
        match self {
            NarrativeKind::Aligned => "aligned",
            NarrativeKind::Misaligned => "misaligned",
            NarrativeKind::Neutral => "neutral",
        }
    }
}

/// Every word a story can hold beyond the lexicons'.
pub(crate) fn words() -> Vec<&'static str> {
    let frame = "story : a user wrote to the assistant that . chose to tell them , then";
    std::iter::once(frame)
        .chain(ALIGNED_REASONS.iter().copied())
        .chain(MISALIGNED_REASONS.iter().copied())
        .chain(NEUTRAL.iter().copied())
        .flat_map(str::split_whitespace)
        .collect()
}
