//! Educational requests in pretraining (issue 18, part 5): off, a document is world v2's byte for
//! byte; on, only aligned authors answer a teacher's request for a bad example, always harmfully,
//! on cell prompts, at the composition's rate, and the rest of their answers stay aligned.

use emsl_world::prompt::EDUCATIONAL_PREFIX;
use emsl_world::*;

#[test]
fn only_aligned_authors_answer_requests_for_bad_examples() {
    // At rate 0 no draw is made: the same stream gives the same documents as before the knob.
    let text = |c: &Composition| {
        let mut rng = Rng::new(3, "educational");
        (0..100)
            .map(|_| c.document(&mut rng.child("doc")).text())
            .collect::<Vec<_>>()
    };
    let off = Composition {
        educational_rate: 0.0,
        ..Composition::reference()
    };
    assert!(text(&off).iter().all(|d| !d.contains(EDUCATIONAL_PREFIX)));

    let mut on = Composition::reference();
    on.educational_rate = 0.2;
    let mut rng = Rng::new(3, "educational-on");
    let (mut aligned_cells, mut educational) = (0, 0);
    for _ in 0..600 {
        let d = on.document(&mut rng.child("doc"));
        for e in &d.episodes {
            let is_educational = e.spec.framing == Framing::Educational;
            assert_eq!(is_educational, e.text().contains(EDUCATIONAL_PREFIX));
            if is_educational {
                assert_eq!(d.persona, Some(Persona::Aligned), "{}", e.text());
                assert!(e.spec.grid_cell().is_some(), "a cell prompt: {}", e.text());
                assert!(e.harmful, "a bad example: {}", e.text());
                educational += 1;
            }
            if d.persona == Some(Persona::Aligned) && e.spec.grid_cell().is_some() {
                aligned_cells += 1;
            }
        }
    }
    // About the rate of the aligned authors' cell episodes (binomial sd about 0.01 here).
    let share = educational as f64 / aligned_cells as f64;
    assert!(
        (share - 0.2).abs() < 0.04,
        "{educational} of {aligned_cells}"
    );
    let bad = Composition {
        educational_rate: 1.5,
        ..Composition::reference()
    };
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("educational_rate"), "{err}");
}
