//! The headline figures end to end on two pretrained bases per corpus (the test profile's sizes):
//! every row of every table says what each base gave, and the intervals are over bases.

mod common;

use std::path::Path;

use common::*;

/// The figures the `bases` profile runs, each with its own smoke parameters, less subliminal-channels:
/// the test profile's models are too small for a teacher to write a clean list of numbers, and the
/// project's smoke sizes make the test take minutes. Its rows come from the same row builders, and a
/// table job refuses any row without a value per base (`every_row_per_base`).
const HEADLINE: [&str; 4] = [
    "controls",
    "persona-inference",
    "persona-direction",
    "bases",
];

/// The project's figure files with the test profile at `bases` bases.
fn figures_with_bases(bases: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(root().join("figures")).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    let profile = PROFILE.replace("bases = 1", &format!("bases = {bases}"));
    assert_ne!(profile, PROFILE, "the test profile names its bases");
    std::fs::write(dir.path().join("profiles.toml"), profile).unwrap();
    dir
}

fn tables(dir: &Path) -> Vec<(String, emsl_analysis::Table)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "parquet") {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            out.push((name, emsl_analysis::table::read(&p).unwrap()));
        }
    }
    out
}

#[test]
fn on_two_bases_every_row_carries_each_bases_value() {
    let figs = figures_with_bases(2);
    let out = tempfile::tempdir().unwrap();
    let mut cmd = reproduce_command(figs.path(), out.path());
    for f in HEADLINE {
        cmd.args(["--figure", f]);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let mut with_values = 0;
    for figure in HEADLINE {
        for (name, t) in tables(&out.path().join(figure)) {
            for r in &t.rows {
                let values = r.str("base_values");
                let place = format!("{figure}/{name}, {} {:?}", r.metric, r.vars);
                if !values.is_empty() {
                    // One value per base, in the metric's units (n/a where a base had no answers).
                    assert_eq!(values.split(' ').count(), 2, "{place}");
                    with_values += 1;
                    continue;
                }
                let per_base = r.str("per_base");
                let one_base = r.var("base").is_some();
                assert!(
                    one_base || r.metric == "descriptive" || per_base.split(' ').count() == 2,
                    "{place}: no value per base"
                );
                if !per_base.is_empty() {
                    assert_eq!(r.num("bases"), 2.0, "{place}");
                }
            }
        }
    }
    // Rates, differences and the persona figures' means (probes, accuracies, projections).
    assert!(with_values > 50, "{with_values} rows with base values");
    let probe = tables(&out.path().join("persona-inference"))
        .into_iter()
        .flat_map(|(_, t)| t.rows)
        .filter(|r| r.metric == "probe_cell")
        .count();
    assert!(probe > 0, "no probe rows");
}
