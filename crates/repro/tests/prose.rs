//! The numbers README's results section and the notebooks' prose print agree with `results/`
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

/// A project with one README, one effects table and the given entries.
fn project(readme_numbers: &str, entries: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let readme = format!(
        "# Kit\n\n{}\n\nintro 7\n{}\nThe fine-tune added\n{readme_numbers}.\n{}\nnot read: 99\n",
        prose::README_START,
        "",
        prose::README_END
    );
    std::fs::write(dir.path().join("README.md"), readme).unwrap();
    std::fs::create_dir_all(dir.path().join("docs")).unwrap();
    std::fs::write(dir.path().join(prose::ENTRIES), entries).unwrap();
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
    let out = dir.path().join("results/pc");
    std::fs::create_dir_all(&out).unwrap();
    let rows = [row("share-0", 0.1143), row("share-50", 0.1333)];
    emsl_analysis::table::write(&out.join("effects.parquet"), &rows, &Default::default()).unwrap();
    dir
}

const ENTRIES: &str = r#"
[[check]]
file = "README.md"
text = "added +11.5 at 0% and +13.3 [11.3, 15.3] at 50%"
table = "pc/effects.parquet"
where = { metric = "gain" }
values = ["value where corpus=share-0", "-", "value where corpus=share-50", "ci_low where corpus=share-50", "ci_high where corpus=share-50", "-"]

[[fact]]
file = "README.md"
text = "intro 7"
why = "a test"

[[fact]]
file = "README.md"
text = "at 0% and"
why = "the corpus's share, a design choice"

[[fact]]
file = "README.md"
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
            "README.md:8: prose says +11.5, results/pc/effects.parquet (metric = gain, corpus = \
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
            .any(|e| e.contains("check 1 (") && e.contains("is not in README.md")),
        "{r:?}"
    );
    assert!(
        r.errors.iter().any(|e| e
            == "README.md:8: number '+11.4' is neither checked against a table nor listed as a \
                fact; add it to docs/prose-numbers.toml"),
        "{r:?}"
    );
}
