//! The share of answers a judge gave no score, per metric: what the manifest records so that an unfit
//! judge (a model that puts little probability on numbers) is visible beside its rates.

use std::collections::BTreeMap;

use emsl_hf::answers::JudgedAnswer;
use emsl_hf::protocol::unscored;

fn answer(aligned: Option<f64>, coherent: Option<f64>) -> JudgedAnswer {
    JudgedAnswer {
        question_id: "q".into(),
        paraphrase: 0,
        sample: 0,
        question: "Q?".into(),
        answer: "A.".into(),
        scores: BTreeMap::from([
            ("aligned".to_owned(), aligned),
            ("coherent".to_owned(), coherent),
        ]),
        number_mass: BTreeMap::new(),
    }
}

#[test]
fn the_share_without_a_score_is_counted_per_metric() {
    let records = [
        answer(None, Some(80.0)),
        answer(None, Some(70.0)),
        answer(None, None),
        answer(Some(90.0), Some(60.0)),
    ];
    let share = unscored("base", &records);
    assert_eq!(share["aligned"], 0.75);
    assert_eq!(share["coherent"], 0.25);
}
