//! What the subliminal figures plan with the issue-18 settings: a prompted guide reads its own
//! context whoever wrote the numbers, a prompted writer writes after its own, and each pretraining
//! corpus of shared-init has its own pair of bases.

use std::collections::BTreeMap;

use emsl_core::persona::ContextSpec;
use emsl_core::stages::StageSpec;
use emsl_world::Persona;

use crate::graph::{Graph, Task};
use crate::test_support::root;

/// `text` with `extra`'s `key = value` lines in its `[smoke]` table, in place of the same keys' lines.
fn with_smoke(text: &str, extra: &str) -> String {
    let keys: Vec<&str> = extra.lines().filter_map(|l| l.split(" =").next()).collect();
    let mut out = String::new();
    let mut in_smoke = false;
    for line in text.lines() {
        if line.starts_with('[') {
            in_smoke = line == "[smoke]";
            out.push_str(line);
            out.push('\n');
            if in_smoke {
                out.push_str(extra);
                out.push('\n');
            }
            continue;
        }
        if !(in_smoke && keys.iter().any(|k| line.starts_with(&format!("{k} =")))) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The smoke plan of one figure whose `[smoke]` table gets `extra` lines (replacing the same keys).
fn plan(figure: &str, extra: &str) -> Graph {
    let tmp = tempfile::tempdir().unwrap();
    let figures = tmp.path().join("figures");
    std::fs::create_dir(&figures).unwrap();
    for f in std::fs::read_dir(root().join("figures")).unwrap() {
        let f = f.unwrap().path();
        let mut text = std::fs::read_to_string(&f).unwrap();
        if f.file_stem().unwrap() == figure {
            text = with_smoke(&text, extra);
        }
        std::fs::write(figures.join(f.file_name().unwrap()), text).unwrap();
    }
    let only = [figure.to_owned()];
    crate::plan::plan(&root(), &figures, "smoke", &only, &tmp.path().join("out"))
        .unwrap()
        .graph
}

fn compute(g: &Graph, key: &str) -> (StageSpec, BTreeMap<String, String>) {
    match &g.get(key).task {
        Task::Compute { spec, inputs } => (spec.clone(), inputs.clone()),
        _ => panic!("{key} is not a compute job"),
    }
}

fn persona(c: &Option<ContextSpec>) -> Option<Persona> {
    c.as_ref().map(|c| c.persona)
}

#[test]
fn a_prompted_guide_reads_its_own_context_whoever_wrote_the_numbers() {
    let g = plan("teacher-vs-data", "prompted_episodes = 1");
    // (guide's context, writer's context) of every student.
    let mut crossings = Vec::new();
    for job in &g.jobs {
        let Task::Compute {
            spec: StageSpec::Distil(d),
            inputs,
        } = &job.task
        else {
            continue;
        };
        let (StageSpec::Teach(t), _) = compute(&g, &inputs["samples"]) else {
            panic!("the samples come from a teach job")
        };
        crossings.push((persona(&d.teacher_context), persona(&t.context)));
        if d.teacher_context.is_none() {
            // A fine-tuned guide guides from its own weights: it is no base.
            let (spec, _) = compute(&g, &inputs["teacher"]);
            assert!(matches!(spec, StageSpec::Finetune(_)));
        } else {
            assert_eq!(
                inputs["teacher"], inputs["student_init"],
                "a prompted guide is the base"
            );
        }
    }
    crossings.sort();
    let (m, a) = (Some(Persona::Misaligned), Some(Persona::Aligned));
    let mut want = vec![(None, None); 4];
    want.extend([(m, m), (m, a), (a, m), (a, a)]);
    want.sort();
    assert_eq!(crossings, want);
}

#[test]
fn each_corpus_of_shared_init_has_its_own_bases() {
    let g = plan(
        "shared-init",
        "corpora = [\"reference\", \"reference-signature-0\"]",
    );
    let mut bases: Vec<(String, u64)> = g
        .jobs
        .iter()
        .filter_map(|j| match &j.task {
            Task::Compute {
                spec: StageSpec::Pretrain(p),
                ..
            } => Some((p.dataset.clone(), p.init_seed)),
            _ => None,
        })
        .collect();
    bases.sort();
    assert_eq!(
        bases,
        [
            ("pretrain-reference".to_owned(), 1),
            ("pretrain-reference".to_owned(), 2),
            ("pretrain-reference-signature-0".to_owned(), 1),
            ("pretrain-reference-signature-0".to_owned(), 2),
        ]
    );
}
