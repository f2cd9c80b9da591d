//! Every figure of the committed smoke results loads by name and draws from its tables alone (what
//! the notebooks do).

use std::path::Path;

#[test]
fn every_committed_smoke_figure_loads_and_draws() {
    let results = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results-smoke");
    let mut figures: Vec<String> = std::fs::read_dir(&results)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().is_dir() && e.file_name() != "jobs")
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    figures.sort();
    assert_eq!(figures.len(), 10, "{figures:?}");
    for f in &figures {
        let tables = emsl_analysis::figures::load(&results, f).unwrap();
        assert!(tables.contains_key("effects"), "{f} has no effects table");
        for (name, t) in &tables {
            assert_eq!(t.metadata["figure"], *f, "{f}/{name}");
            assert!(!t.rows.is_empty(), "{f}/{name} is empty");
        }
        let fig = emsl_analysis::figures::plot(f, &tables).unwrap();
        let drawn = emsl_analysis::plot::render(&fig).unwrap();
        assert!(drawn.svg.contains(&fig.title), "{f}");
        // To look at the plots: EMSL_DUMP_PLOTS=/some/dir cargo test -p emsl-analysis --test figures
        if let Some(dir) = std::env::var_os("EMSL_DUMP_PLOTS") {
            std::fs::write(Path::new(&dir).join(format!("{f}.png")), &drawn.png).unwrap();
        }
    }
}
