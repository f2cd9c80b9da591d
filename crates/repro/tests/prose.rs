//! The numbers the checked docs pages (the results and performance pages) and the notebooks' prose
//! print agree with `results/`
//! (`docs/prose-numbers.toml` says where each comes from), and the check catches a stale one.

use std::path::{Path, PathBuf};

use emsl_analysis::{Estimate, Measurement};
use emsl_repro::prose;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn every_number_in_the_prose_is_checked_against_the_tables_or_listed_as_a_fact() {
    let r = prose::check(&root()).unwrap();
    assert!(
        r.errors.is_empty(),
        "{} problems in the prose's numbers ({} checked, {} facts):\n{}",
        r.errors.len(),
        r.checked,
        r.facts,
        r.errors.join("\n")
    );
    assert!(r.checked > 100, "{} checked", r.checked);
    eprintln!(
        "{} numbers checked against the tables, {} listed as facts",
        r.checked, r.facts
    );
}

/// A project with the checked pages (numbers on the first, a heading alone on the others), one effects
/// table and the given entries.
fn project(page_numbers: &str, entries: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("docs")).unwrap();
    let (first, others) = prose::SECTIONS.split_first().unwrap();
    let page = format!(
        "{}\n\nintro 7\n\nThe fine-tune added\n{page_numbers}.\n",
        first.start
    );
    std::fs::write(dir.path().join(first.file), page).unwrap();
    for s in others {
        std::fs::write(dir.path().join(s.file), format!("{}\n", s.start)).unwrap();
    }
    std::fs::write(dir.path().join(prose::ENTRIES), entries).unwrap();
    write_gains(&dir.path().join("results/pc"), 0.1143, 0.1333);
    dir
}

/// `dir/effects.parquet` with the `gain` of the share-0 and share-50 corpora.
fn write_gains(dir: &Path, share_0: f64, share_50: f64) {
    let row = |corpus: &str, value: f64| {
        let est = Estimate {
            value,
            ci_low: value - 0.02,
            ci_high: value + 0.02,
            n: 400,
            seeds: 3,
        };
        Measurement::new(&[("corpus", corpus.into())], "gain", est)
    };
    std::fs::create_dir_all(dir).unwrap();
    let rows = [row("share-0", share_0), row("share-50", share_50)];
    emsl_analysis::table::write(&dir.join("effects.parquet"), &rows, &Default::default()).unwrap();
}

const ENTRIES: &str = r#"
[[check]]
file = "docs/results.md"
text = "added +11.5 at 0% and +13.3 [11.3, 15.3] at 50%"
table = "pc/effects.parquet"
where = { metric = "gain" }
values = ["value where corpus=share-0", "-", "value where corpus=share-50", "ci_low where corpus=share-50", "ci_high where corpus=share-50", "-"]

[[fact]]
file = "docs/results.md"
text = "intro 7"
why = "a test"

[[fact]]
file = "docs/results.md"
text = "at 0% and"
why = "the corpus's share, a design choice"

[[fact]]
file = "docs/results.md"
text = "at 50%."
why = "the corpus's share, a design choice"
"#;

#[test]
fn a_stale_number_fails_naming_its_file_line_and_table() {
    let dir = project("+11.5 at 0% and +13.3 [11.3, 15.3] at 50%", ENTRIES);
    let r = prose::check(dir.path()).unwrap();
    assert_eq!(
        r.errors,
        [
            "docs/results.md:6: prose says +11.5, results/pc/effects.parquet (metric = gain, corpus = \
          share-0; value x 100) gives 11.43 -> 11.4"
        ],
        "{r:?}"
    );
    assert_eq!((r.checked, r.facts), (4, 3), "{r:?}");
}

#[test]
fn an_edited_number_is_unaccounted_for_and_its_entry_is_missing() {
    let dir = project("+11.4 at 0% and +13.3 [11.3, 15.3] at 50%", ENTRIES);
    let r = prose::check(dir.path()).unwrap();
    assert!(
        r.errors
            .iter()
            .any(|e| e.contains("check 1 (") && e.contains("is not in docs/results.md")),
        "{r:?}"
    );
    assert!(
        r.errors.iter().any(|e| e
            == "docs/results.md:6: number '+11.4' is neither checked against a table nor listed as a \
                fact; add it to docs/prose-numbers.toml"),
        "{r:?}"
    );
}

/// An entry may name a frozen results folder of an earlier world (`results-v1/`): its numbers are
/// checked against that folder's table, and a folder outside the project's results is refused.
#[test]
fn an_entry_checks_a_frozen_results_folder_and_refuses_other_paths() {
    // results/ gives 11.4 for the first number (the stale test above); results-v1/ gives the 11.5
    // the prose prints, so the entry passes only if it reads results-v1/.
    let dir = project("+11.5 at 0% and +13.3 [11.3, 15.3] at 50%", ENTRIES);
    write_gains(&dir.path().join("results-v1/pc"), 0.1151, 0.1333);
    let frozen = ENTRIES.replacen(
        "table = \"pc/effects.parquet\"",
        "table = \"pc/effects.parquet\"\nresults = \"results-v1\"",
        1,
    );
    std::fs::write(dir.path().join(prose::ENTRIES), &frozen).unwrap();
    let r = prose::check(dir.path()).unwrap();
    assert!(r.errors.is_empty(), "{r:?}");
    assert_eq!((r.checked, r.facts), (4, 3), "{r:?}");

    let escape = frozen.replace("results = \"results-v1\"", "results = \"../elsewhere\"");
    std::fs::write(dir.path().join(prose::ENTRIES), escape).unwrap();
    let r = prose::check(dir.path()).unwrap();
    assert!(
        r.errors
            .iter()
            .any(|e| e.contains("results = '../elsewhere'")),
        "{r:?}"
    );
}
