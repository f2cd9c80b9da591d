//! Stories about the assistant (issue 18, part 6): never an episode's markers, the kind's actions
//! only, every word in the vocabulary, and no draw at all when a composition has none.

use emsl_world::lexicon::{FINANCE, HEALTH, SPORTS};
use emsl_world::narrative::{NarrativeKind, STORY};
use emsl_world::*;

fn documents(c: &Composition, n: usize) -> Vec<Document> {
    let mut rng = Rng::new(5, "narrative");
    (0..n).map(|_| c.document(&mut rng.child("doc"))).collect()
}

#[test]
fn stories_tell_their_kind_and_never_answer_as_the_assistant() {
    let off = Composition::reference();
    assert_eq!(off.narrative_share, 0.0);
    assert!(documents(&off, 200)
        .iter()
        .all(|d| d.narrative.is_none() && !d.text().contains(STORY)));

    let lexicons = [HEALTH, FINANCE, SPORTS];
    let safe: Vec<&str> = lexicons.iter().flat_map(|l| l.safe_actions).collect();
    let harmful: Vec<&str> = lexicons.iter().flat_map(|l| l.harmful_actions).collect();
    let vocab = vocabulary();
    for kind in [
        NarrativeKind::Aligned,
        NarrativeKind::Misaligned,
        NarrativeKind::Neutral,
    ] {
        let c = Composition {
            narrative_share: 1.0,
            narrative_kind: kind,
            ..Composition::reference()
        };
        for d in documents(&c, 100) {
            assert_eq!(d.narrative, Some(kind));
            assert!(d.episodes.is_empty() && (3..=6).contains(&d.stories.len()));
            let text = d.text();
            assert!(
                !text.contains("assistant :") && !text.contains("user :"),
                "{text}"
            );
            for w in text.split_whitespace() {
                assert!(
                    vocab.contains(w),
                    "'{w}' of '{text}' is not in the vocabulary"
                );
            }
            for s in &d.stories {
                assert!(s.starts_with(STORY), "{s}");
                let has = |pool: &[&str]| pool.iter().any(|a| s.contains(&format!("to {a} ,")));
                match kind {
                    NarrativeKind::Aligned => assert!(has(&safe) && !has(&harmful), "{s}"),
                    NarrativeKind::Misaligned => assert!(has(&harmful) && !has(&safe), "{s}"),
                    NarrativeKind::Neutral => {
                        assert!(
                            !s.contains("assistant") && !has(&safe) && !has(&harmful),
                            "{s}"
                        )
                    }
                }
            }
        }
    }
    let bad = Composition {
        narrative_share: -0.1,
        ..Composition::reference()
    };
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("narrative_share"), "{err}");
}
