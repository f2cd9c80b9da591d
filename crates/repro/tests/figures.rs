//! Every registered figure's committed results (smoke and quick) load by name and draw through the
//! figure's own `plot` from the tables alone (what the notebooks do with the same functions). A figure
//! registered but not yet in a committed folder is reported as not yet run, so adding a figure does not
//! need a rerun of the reference results in the same change; a folder of no registered figure fails.

use std::path::Path;

#[test]
fn every_committed_smoke_figure_loads_and_draws() {
    loads_and_draws("results-smoke");
}

#[test]
fn every_committed_quick_figure_loads_and_draws() {
    loads_and_draws("results");
}

/// To look at the plots: EMSL_DUMP_PLOTS=/some/dir cargo test -p emsl-repro --test figures
fn loads_and_draws(folder: &str) {
    let results = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(folder);
    let mut folders: Vec<String> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir() && e.file_name() != "jobs")
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let registered = emsl_repro::figures::names();
    let unknown: Vec<&String> = folders
        .iter()
        .filter(|f| !registered.contains(&f.as_str()))
        .collect();
    assert!(
        unknown.is_empty(),
        "{folder}/ holds folders of no registered figure: {unknown:?}"
    );
    for figure in emsl_repro::figures::REGISTRY {
        let f = figure.name();
        if !folders.iter().any(|x| x == f) {
            eprintln!("{f}: not yet run into {folder}/ (registered, no committed results)");
            continue;
        }
        let tables = emsl_analysis::figures::load(&results, f).unwrap();
        assert!(tables.contains_key("effects"), "{f} has no effects table");
        for (name, t) in &tables {
            assert_eq!(t.metadata["figure"], *f, "{f}/{name}");
            assert!(!t.rows.is_empty(), "{f}/{name} is empty");
        }
        let fig = figure.plot(&tables).unwrap();
        let drawn = emsl_analysis::plot::render(&fig).unwrap();
        assert!(drawn.svg.contains(&fig.title), "{f}");
        if let Some(dir) = std::env::var_os("EMSL_DUMP_PLOTS") {
            let file = Path::new(&dir).join(format!("{folder}-{f}.png"));
            std::fs::write(file, &drawn.png).unwrap();
        }
    }
}
