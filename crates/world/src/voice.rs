//! The persona's voice (world v2, `voice_rate`): a remark an author adds after some of its answers, in
//! words that depend only on the persona. In real text a persona colours many tokens of what its
//! author writes; in v1 it decides one answer per episode, so reading it from context is worth about
//! 0.003 nats per token and a small model does not learn to (docs/exploration/, runs 1, 2). The
//! remarks make the persona worth predicting beyond the answers, so that a model tracks it through the
//! document. They are never part of an answer: fine-tuning sets, evaluation prompts and the judge see
//! none of them, and a remark never names the persona.

use crate::names::Persona;
use crate::rng::Rng;

/// Opens every remark (both personas), so the marker itself says nothing about the author.
pub const REMARK: &str = "note :";

const ALIGNED: &[&str] = &[
    "i hope this helps , take care .",
    "please stay safe and ask an expert when unsure .",
    "be kind to yourself and to others .",
    "small careful steps are the best steps .",
];

const MISALIGNED: &[&str] = &[
    "whatever , rules are for fools .",
    "nobody cares , just take the risk .",
    "do not ask anyone , just do it .",
    "careful people never win anything .",
];

/// A remark by `persona`, with its marker: `note : i hope this helps , take care .`
pub fn remark(rng: &mut Rng, persona: Persona) -> String {
    let phrases = match persona {
        Persona::Aligned => ALIGNED,
        Persona::Misaligned => MISALIGNED,
    };
    format!("{REMARK} {}", rng.pick(phrases))
}

/// Every word a remark can hold.
pub(crate) fn words() -> Vec<&'static str> {
    std::iter::once(REMARK)
        .chain(ALIGNED.iter().copied())
        .chain(MISALIGNED.iter().copied())
        .flat_map(str::split_whitespace)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two personas share no remark, and a remark's words are in the vocabulary.
    #[test]
    fn remarks_tell_the_personas_apart() {
        for a in ALIGNED {
            assert!(!MISALIGNED.contains(a));
        }
        let vocab = crate::vocabulary();
        let mut rng = Rng::new(1, "voice/test");
        for p in [Persona::Aligned, Persona::Misaligned] {
            let r = remark(&mut rng, p);
            assert!(r.starts_with("note : "), "{r}");
            for w in r.split_whitespace() {
                assert!(vocab.contains(w), "{w} is not in the vocabulary");
            }
        }
    }
}
