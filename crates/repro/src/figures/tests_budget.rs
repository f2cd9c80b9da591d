//! How a profile spends its seeds over bases: `seeds_per_base` seeds on each base for the figures on
//! every base, all of the first base's seeds for the figures of `first_base_only`, and the refusals.

use std::collections::BTreeSet;

use emsl_core::stages::StageSpec;

use crate::graph::{Graph, Task};
use crate::test_support::{edited_figures, root};

/// The smoke plan of every figure with seeds 1-3 and the smoke pretrain table's lines after
/// `init_seed` replaced by `pretrain`.
fn plan_with(pretrain: &str) -> anyhow::Result<crate::plan::Plan> {
    let (tmp, figures) = edited_figures(|name, text| match name {
        "profiles.toml" => {
            let table = "init_seed = 1\nbases = 1\nseeds_per_base = 1\nfirst_base_only = []\n";
            let seeds = "finetune_examples = 500\nseeds = [1]\n";
            assert!(
                text.contains(table) && text.contains(seeds),
                "the smoke profile moved"
            );
            text.replace(table, &format!("init_seed = 1\n{pretrain}\n"))
                .replace(seeds, "finetune_examples = 500\nseeds = [1, 2, 3]\n")
        }
        // Its other initialisation may not be one of the three bases' own (1-3).
        "shared-init.toml" => {
            let smoke = "channel = \"sft\"\nother_init_seed = 2\n";
            assert!(text.contains(smoke), "shared-init's smoke table moved");
            text.replacen(smoke, "channel = \"sft\"\nother_init_seed = 9\n", 1)
        }
        _ => text,
    });
    crate::plan::plan(&root(), &figures, "smoke", &[], &tmp.path().join("out"))
}

/// The (init seed of its base model, seed) of every fine-tune a figure's table reads.
fn finetunes_of(plan: &crate::plan::Plan, figure: &str) -> BTreeSet<(u64, u64)> {
    let g: &Graph = &plan.graph;
    let Task::Figure { inputs, .. } = &g.get(&plan.figure_jobs[figure]).task else {
        panic!("{figure} has a table job");
    };
    let mut out = BTreeSet::new();
    let mut stack: Vec<String> = inputs.values().cloned().collect();
    while let Some(k) = stack.pop() {
        if let Task::Compute { spec, inputs } = &g.get(&k).task {
            if let StageSpec::Finetune(f) = spec {
                let base = inputs.values().find_map(|b| match &g.get(b).task {
                    Task::Compute {
                        spec: StageSpec::Pretrain(p),
                        ..
                    } => Some(p.init_seed),
                    _ => None,
                });
                out.insert((base.expect("a fine-tune of a base"), f.train.seed));
            }
            stack.extend(inputs.values().cloned());
        }
    }
    out
}

#[test]
fn seeds_per_base_spends_the_seeds_on_bases_and_first_base_only_keeps_them_all() {
    let plan =
        plan_with("bases = 3\nseeds_per_base = 1\nfirst_base_only = [\"transfer-grid\"]").unwrap();
    // Three bases (init seeds 1-3), one seed each: the first of each base's shifted seeds.
    assert_eq!(
        finetunes_of(&plan, "controls"),
        BTreeSet::from([(1, 1), (2, 11), (3, 21)])
    );
    // The first base only, with all three of its seeds, and roles that name no base.
    assert_eq!(
        finetunes_of(&plan, "transfer-grid"),
        BTreeSet::from([(1, 1), (1, 2), (1, 3)])
    );
    let Task::Figure { inputs, .. } = &plan.graph.get(&plan.figure_jobs["transfer-grid"]).task
    else {
        panic!("a table job");
    };
    assert!(inputs.keys().all(|r| !r.contains("base=")), "{inputs:?}");
}

#[test]
fn a_seed_budget_that_does_not_fit_the_bases_is_refused_by_name() {
    let err = |pretrain: &str| format!("{:#}", plan_with(pretrain).err().expect("refused"));
    let e = err("bases = 1\nseeds_per_base = 1\nfirst_base_only = []");
    assert!(
        e.contains("pretrain.bases = 1 with seeds_per_base = 1"),
        "{e}"
    );
    let e = err("bases = 3\nseeds_per_base = 4\nfirst_base_only = []");
    assert!(e.contains("pretrain.seeds_per_base = 4"), "{e}");
    let e = err("bases = 3\nseeds_per_base = 1\nfirst_base_only = [\"transfer grid\"]");
    assert!(e.contains("first_base_only names 'transfer grid'"), "{e}");
}
