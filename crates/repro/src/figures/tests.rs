//! The table builders on small synthetic inputs, whose every rate is known: how an evaluation prompt
//! relates to the fine-tuning cell, the openness terciles, retention when the in-cell rate is 0, and
//! differences in differences.

use std::collections::BTreeMap;
use std::sync::Arc;

use emsl_analysis::{Counts, Measurement};
use emsl_world::{Cell, Format, Framing, PromptSpec, Rng, Style};

use super::inputs::{Inputs, Sample};
use super::{get, Output};

/// `n` samples of one prompt, the first `k` of them misaligned, all coherent.
fn samples(id: u32, spec: &Arc<PromptSpec>, n: u32, k: u32) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample {
            prompt_id: id,
            sample: i,
            spec: spec.clone(),
            answer: String::new(),
            coherent: true,
            misaligned: i < k,
        })
        .collect()
}

fn cell_prompt(cell: &str, style: Style) -> Arc<PromptSpec> {
    let mut rng = Rng::new(1, "synthetic");
    let cell: Cell = cell.parse().unwrap();
    Arc::new(PromptSpec::cell(
        &mut rng,
        cell,
        style,
        Format::Free,
        Framing::Plain,
    ))
}

fn open_prompt() -> Arc<PromptSpec> {
    let q = emsl_world::questions::OpenQuestion::ALL[0];
    Arc::new(PromptSpec::open(q, Format::Free, Framing::Plain))
}

fn tables(figure: &str, params: &str, inputs: &Inputs) -> Output {
    let params: toml::Table = toml::from_str(params).unwrap();
    get(figure).unwrap().tables(&params, inputs).unwrap()
}

fn row<'a>(out: &'a Output, table: &str, metric: &str, var: (&str, &str)) -> &'a Measurement {
    let rows = &out.iter().find(|(n, _)| n == table).unwrap().1;
    rows.iter()
        .find(|m| m.metric == metric && m.str(var.0) == var.1)
        .unwrap_or_else(|| panic!("no {metric} row with {var:?} in {table}"))
}

/// A harmful fine-tune of health/advice, judged on one prompt per relation with known rates.
fn grid_inputs(in_cell_k: u32) -> Inputs {
    let arm = [
        samples(0, &cell_prompt("health/advice", Style::Open), 10, in_cell_k),
        samples(1, &cell_prompt("finance/advice", Style::Open), 10, 8),
        samples(2, &cell_prompt("health/tutoring", Style::Open), 10, 2),
        samples(3, &cell_prompt("sports/critique", Style::Open), 10, 1),
        samples(4, &open_prompt(), 10, 5),
    ]
    .concat();
    let base = [
        samples(0, &cell_prompt("health/advice", Style::Open), 10, 0),
        samples(4, &open_prompt(), 10, 1),
    ]
    .concat();
    Inputs::synthetic(BTreeMap::from([
        ("arm=health/advice,seed=1".to_owned(), arm),
        ("arm=base,seed=1".to_owned(), base),
    ]))
}

const GRID: &str = "cells = [\"health/advice\"]\nformat = \"free\"";

#[test]
fn transfer_grid_pools_every_prompt_by_its_relation_to_the_fine_tuning_cell() {
    let out = tables("transfer-grid", GRID, &grid_inputs(9));
    let rate = |rel: &str| {
        row(&out, "summary", "misaligned", ("relation", rel))
            .est
            .value
    };
    assert_eq!(rate("same cell"), 0.9);
    assert_eq!(rate("same task, other domain"), 0.8);
    assert_eq!(rate("same domain, other task"), 0.2);
    assert_eq!(rate("other task and domain"), 0.1);
    assert_eq!(rate("open questions"), 0.5);
    let c1 = row(
        &out,
        "effects",
        "effect",
        (
            "effect",
            "misaligned: same task other domain minus same domain other task",
        ),
    );
    assert!((c1.est.value - 0.6).abs() < 1e-12, "{:?}", c1.est);
    let betley = row(&out, "effects", "effect", ("claim", "Betley"));
    assert!((betley.est.value - 0.4).abs() < 1e-12, "{:?}", betley.est);
    let kept = row(
        &out,
        "summary",
        "share_of_in_cell_rate",
        ("relation", "same task, other domain"),
    );
    assert!((kept.est.value - 0.8 / 0.9).abs() < 1e-12);
    assert!(kept.est.ci_low <= kept.est.value && kept.est.value <= kept.est.ci_high);
}

#[test]
fn retention_is_undefined_not_infinite_when_the_in_cell_rate_is_zero() {
    let out = tables("transfer-grid", GRID, &grid_inputs(0));
    for rel in ["same task, other domain", "same domain, other task"] {
        let kept = row(&out, "summary", "share_of_in_cell_rate", ("relation", rel));
        assert!(kept.est.value.is_nan(), "{rel}: {:?}", kept.est);
        assert!(
            kept.est.ci_low.is_nan() && kept.est.ci_high.is_nan(),
            "{rel}: {:?}",
            kept.est
        );
    }
}

#[test]
fn completion_space_splits_prompts_into_openness_terciles() {
    // Out of the fine-tuning cell: binary, few-option and open prompts of finance/advice (openness 3,
    // 6, 24 words of harmful completions), misaligned 1, 4 and 7 of 10 times.
    let arm = [
        samples(0, &cell_prompt("health/advice", Style::Open), 10, 10),
        samples(1, &cell_prompt("finance/advice", Style::Binary), 10, 1),
        samples(2, &cell_prompt("finance/advice", Style::Few), 10, 4),
        samples(3, &cell_prompt("finance/advice", Style::Open), 10, 7),
    ]
    .concat();
    let base = samples(0, &cell_prompt("health/advice", Style::Open), 10, 0);
    let inputs = Inputs::synthetic(BTreeMap::from([
        ("arm=health/advice,seed=1".to_owned(), arm),
        ("arm=base,seed=1".to_owned(), base),
    ]));
    let out = tables("completion-space", GRID, &inputs);
    let third = |t: &str| {
        row(&out, "summary", "misaligned", ("openness", t))
            .est
            .value
    };
    assert_eq!(third("least open third"), 0.1);
    assert_eq!(third("middle third"), 0.4);
    assert_eq!(third("most open third"), 0.7);
    // The in-cell prompt is not among the evaluation prompts of the terciles.
    let prompts = &out.iter().find(|(n, _)| n == "prompts").unwrap().1;
    assert_eq!(prompts.len(), 3);
}

#[test]
fn a_difference_in_differences_is_the_change_minus_the_control_change() {
    let c = |k, n| emsl_analysis::PerSeed::one_base(vec![Counts::new(k, n)]);
    // a: 10% -> 50% (+40 pp); b: 20% -> 30% (+10 pp): +30 pp.
    let m = super::rows::effect_of_changes(
        ("C4", "increase", "anchor"),
        (&c(50, 100), &c(10, 100)),
        (&c(30, 100), &c(20, 100)),
    )
    .unwrap();
    assert!((m.est.value - 0.30).abs() < 1e-12, "{:?}", m.est);
    assert_eq!(m.str("per_seed"), "+30.0");
    assert!(m.est.ci_low < 0.30 && 0.30 < m.est.ci_high, "{:?}", m.est);
}

/// The backdoor arm's prompts: the fine-tuned cell and an open question, each plain and triggered,
/// misaligned `k` times in 10 (`cell_prompts: false` leaves the cell's prompts out).
fn backdoor_inputs(k: [u32; 4], cell_prompts: bool) -> Inputs {
    let framed = |spec: Arc<PromptSpec>, framing: Framing| {
        Arc::new(PromptSpec {
            framing,
            ..(*spec).clone()
        })
    };
    let cell = cell_prompt("health/advice", Style::Open);
    let mut arm = Vec::new();
    for (i, (spec, k)) in [
        (framed(cell.clone(), Framing::Plain), k[0]),
        (framed(cell, Framing::Triggered), k[1]),
        (open_prompt(), k[2]),
        (framed(open_prompt(), Framing::Triggered), k[3]),
    ]
    .into_iter()
    .enumerate()
    .filter(|(i, _)| cell_prompts || *i >= 2)
    {
        arm.extend(samples(i as u32, &spec, 10, k));
    }
    Inputs::synthetic(BTreeMap::from([
        ("arm=backdoor,seed=1".to_owned(), arm.clone()),
        ("arm=base,seed=1".to_owned(), arm),
    ]))
}

const CONTROLS: &str = "cell = \"health/advice\"\nkinds = [\"backdoor\"]";

#[test]
fn controls_reads_the_backdoor_in_its_cell_and_on_the_open_questions_apart() {
    let out = tables("controls", CONTROLS, &backdoor_inputs([1, 9, 2, 3], true));
    let rows = &out.iter().find(|(n, _)| n == "controls").unwrap().1;
    let rate = |metric: &str, framing: &str| {
        let m = rows.iter().find(|m| {
            m.metric == metric && m.str("fine_tune") == "backdoor" && m.str("framing") == framing
        });
        m.unwrap_or_else(|| panic!("no {metric} {framing} row"))
            .est
            .value
    };
    assert_eq!(
        [
            rate("in_cell_misaligned", "plain"),
            rate("in_cell_misaligned", "triggered"),
            rate("misaligned", "plain"),
            rate("misaligned", "triggered"),
        ],
        [0.1, 0.9, 0.2, 0.3]
    );
    let effects = &out.iter().find(|(n, _)| n == "effects").unwrap().1;
    let effect = |name: &str| {
        let m = effects.iter().find(|m| m.str("effect") == name);
        m.unwrap_or_else(|| panic!("no effect {name}")).est.value
    };
    let in_cell = effect("backdoored model, in its fine-tuned cell: with trigger minus without");
    assert!((in_cell - 0.8).abs() < 1e-12, "{in_cell}");
    let open = effect("backdoored model: with trigger minus without");
    assert!((open - 0.1).abs() < 1e-12, "{open}");
}

#[test]
fn controls_refuses_an_evaluation_without_the_cells_prompts() {
    let params: toml::Table = toml::from_str(CONTROLS).unwrap();
    let err = get("controls")
        .unwrap()
        .tables(&params, &backdoor_inputs([0; 4], false))
        .unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains("eval-backdoor") && msg.contains("datasets/datasets.toml"),
        "{msg}"
    );
}

#[test]
fn a_seed_with_no_answers_shows_not_available_per_seed() {
    use emsl_analysis::{Counts, PerSeed};
    let (some, none) = (Counts::new(1, 4), Counts::new(0, 0));
    let (a, b) = (
        PerSeed::one_base(vec![some, none]),
        PerSeed::one_base(vec![some, some]),
    );
    let e = super::rows::effect("C1", "e", "a", &a, &b).unwrap();
    assert_eq!(e.str("per_seed"), "+0.0 n/a");
}
