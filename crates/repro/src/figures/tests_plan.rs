//! What the subliminal figures plan with the issue-18 settings: a prompted guide reads its own
//! context whoever wrote the numbers, a prompted writer writes after its own, and each pretraining
//! corpus of shared-init has its own pair of bases.

use std::collections::BTreeMap;

use emsl_core::persona::ContextSpec;
use emsl_core::stages::StageSpec;
use emsl_world::Persona;

use crate::graph::{Graph, Task};
use crate::test_support::{edited_figures, root};

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
    plan_with_bases(figure, extra, 1).unwrap()
}

/// The smoke plan of one figure, as [`plan`], with `bases` bases per corpus.
fn plan_with_bases(figure: &str, extra: &str, bases: usize) -> anyhow::Result<Graph> {
    plan_on(figure, extra, bases, &crate::code_version::toolchain())
}

/// [`plan_with_bases`] as a machine with `toolchain` plans it.
fn plan_on(figure: &str, extra: &str, bases: usize, toolchain: &str) -> anyhow::Result<Graph> {
    let (tmp, figures) = edited_figures(|name, mut text| {
        if name == format!("{figure}.toml") {
            text = with_smoke(&text, extra);
        }
        if name == "profiles.toml" {
            let one = "[smoke.pretrain]\ndocuments = 2000\ninit_seed = 1\nbases = 1\n";
            assert!(
                text.contains(one),
                "the smoke profile's pretrain table moved"
            );
            text = text.replace(one, &one.replace("bases = 1", &format!("bases = {bases}")));
        }
        text
    });
    // Every figure at once for an empty name.
    let only: Vec<String> = [figure]
        .iter()
        .filter(|f| !f.is_empty())
        .map(|f| f.to_string())
        .collect();
    let out = tmp.path().join("out");
    Ok(
        crate::plan::plan_with_toolchain(&root(), &figures, ("smoke", &only), &out, toolchain)?
            .graph,
    )
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

/// The roles a figure job reads, by figure.
type RolesByFigure = BTreeMap<String, Vec<String>>;

/// (label, config) of every compute job of `g` (what it computes), and the roles of its figure jobs
/// by figure.
fn what_is_computed(g: &Graph) -> (Vec<(String, String)>, RolesByFigure) {
    let mut computed = Vec::new();
    let mut roles = RolesByFigure::new();
    for j in &g.jobs {
        match &j.task {
            Task::Compute { spec, .. } => {
                let spec = toml::Value::try_from(spec).unwrap();
                computed.push((j.label.clone(), toml::to_string(&spec).unwrap()));
            }
            Task::Figure { figure, inputs, .. } => {
                roles.insert(figure.clone(), inputs.keys().cloned().collect());
            }
            _ => {}
        }
    }
    computed.sort();
    (computed, roles)
}

#[test]
fn one_base_plans_what_the_committed_smoke_results_computed() {
    // results-smoke/ was run before bases existed: with `bases = 1` every compute job computes what
    // its lock entry says, under the same label, and every figure it ran reads the same roles. A
    // figure added since (the bases figure) reads only jobs other figures plan: no compute job more.
    // The plan is made as the machine that ran them made it (the lock's toolchain and CPU features are
    // part of every compute job's identity, and so of the labels that name a job's inputs).
    let lock = crate::lock::Lock::load(&root().join("results-smoke")).unwrap();
    let mut locked = Vec::new();
    let mut locked_roles = RolesByFigure::new();
    for e in lock.jobs.values() {
        match e.kind.as_str() {
            "figure" => {
                let figure = e.config["figure"].as_str().unwrap().to_owned();
                let roles = e.config["inputs"].as_table().unwrap().keys().cloned();
                locked_roles.insert(figure, roles.collect());
            }
            "claims" => {}
            _ => {
                let spec = toml::to_string(&e.config["spec"]).unwrap();
                locked.push((e.label.clone(), spec));
            }
        }
    }
    locked.sort();
    let (planned, planned_roles) = what_is_computed(&plan_on("", "", 1, &lock.toolchain).unwrap());
    assert_eq!(planned.len(), locked.len(), "jobs planned and locked");
    for (p, l) in planned.iter().zip(&locked) {
        assert_eq!(p, l);
    }
    for (figure, roles) in &locked_roles {
        assert_eq!(Some(roles), planned_roles.get(figure), "{figure}");
    }
}

#[test]
fn a_second_base_keeps_the_first_bases_jobs_and_nests_its_own_seeds() {
    let one = plan_with_bases("controls", "", 1).unwrap();
    let two = plan_with_bases("controls", "", 2).unwrap();
    let keys = |g: &Graph| -> Vec<String> {
        g.jobs
            .iter()
            .filter(|j| matches!(j.task, Task::Compute { .. }))
            .map(|j| j.key.clone())
            .collect()
    };
    let (k1, k2) = (keys(&one), keys(&two));
    assert_eq!(k2.len(), 2 * k1.len(), "every compute job once per base");
    assert!(
        k1.iter().all(|k| k2.contains(k)),
        "the first base's jobs are reused"
    );
    // Base 1 pretrains from init seed 2 and its fine-tunes and evaluations take seed 11 (the profile's
    // seed 1 shifted by ten): its own data order, not base 0's.
    let mut seeds: Vec<(&str, u64)> = two
        .jobs
        .iter()
        .filter_map(|j| match &j.task {
            Task::Compute {
                spec: StageSpec::Pretrain(p),
                ..
            } => Some(("pretrain", p.init_seed)),
            Task::Compute {
                spec: StageSpec::Finetune(f),
                ..
            } => Some(("finetune", f.train.seed)),
            _ => None,
        })
        .collect();
    seeds.sort();
    seeds.dedup();
    assert_eq!(
        seeds,
        [
            ("finetune", 1),
            ("finetune", 11),
            ("pretrain", 1),
            ("pretrain", 2)
        ]
    );
    let Task::Figure { inputs, .. } = &two.jobs.last().unwrap().task else {
        panic!("the figure job comes last")
    };
    let roles: Vec<&String> = inputs.keys().collect();
    assert_eq!(roles.len(), 2 * 5);
    assert!(roles
        .iter()
        .all(|r| r.starts_with("base=1,") || r.starts_with("base=2,")));
    assert!(
        inputs.contains_key("base=2,arm=harmful,seed=11"),
        "{roles:?}"
    );
}

#[test]
fn an_other_initialisation_that_is_a_bases_own_is_refused() {
    // Smoke: bases from init seeds 1 and 2; shared-init's other seed 2 would be base 1's own.
    let Err(e) = plan_with_bases("shared-init", "", 2) else {
        panic!("planned")
    };
    let msg = format!("{e:#}");
    assert!(
        msg.contains("other_init_seed = 2 overlaps the bases' init seeds 1-2")
            && msg.contains("at least 3"),
        "{msg}"
    );
    assert!(plan_with_bases("shared-init", "other_init_seed = 3", 2).is_ok());
}

#[test]
fn the_bases_profile_runs_the_headline_figures_on_eight_bases_per_corpus() {
    let figures = root().join("figures");
    let names: Vec<String> = crate::spec::load_figures(&figures, "bases")
        .unwrap()
        .into_iter()
        .map(|f| f.file.name)
        .collect();
    assert_eq!(
        names,
        [
            "bases",
            "controls",
            "persona-direction",
            "persona-inference",
            "subliminal-channels"
        ]
    );
    let tmp = tempfile::tempdir().unwrap();
    let g = crate::plan::plan(&root(), &figures, "bases", &[], &tmp.path().join("out"))
        .unwrap()
        .graph;
    let mut bases: Vec<(String, u64)> = Vec::new();
    let mut seeds = std::collections::BTreeSet::new();
    for j in &g.jobs {
        match &j.task {
            Task::Compute {
                spec: StageSpec::Pretrain(p),
                ..
            } => bases.push((p.dataset.clone(), p.init_seed)),
            Task::Compute {
                spec: StageSpec::Finetune(f),
                ..
            } => {
                seeds.insert(f.train.seed);
            }
            _ => {}
        }
    }
    bases.sort();
    let want: Vec<(String, u64)> = ["pretrain-independent", "pretrain-reference"]
        .iter()
        .flat_map(|c| (301..=308).map(move |s| (c.to_string(), s)))
        .collect();
    assert_eq!(bases, want);
    // Three seeds nested in each base: 311-313 on the first, 381-383 on the eighth.
    let want: std::collections::BTreeSet<u64> = (0..8)
        .flat_map(|b| (311..=313).map(move |s| s + 10 * b))
        .collect();
    assert_eq!(seeds, want);
}
