//! `cargo xtask datasets` end to end on a small catalog in a temporary folder.

use std::path::Path;
use std::process::{Command, Output};

use emsl_io::{load_dataset, IoError, Manifest};

const CATALOG: &str = r#"
seed = 7

[[pretrain]]
name = "pretrain-tiny"
composition = "reference"
documents = 50

[[finetune]]
kinds = ["harmful", "backdoor"]
cells = ["health/advice"]
formats = ["json"]
size = 40

[[suite]]
name = "eval-tiny"
per_cell_style_format = 1
cells = "all"
styles = ["open"]
formats = ["free"]
open_questions = true
framings = ["plain"]
numbers = 5
"#;

fn xtask(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .arg("--dir")
        .arg(dir)
        .output()
        .expect("xtask runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn setup() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("datasets.toml"), CATALOG).unwrap();
    let compositions = tmp.path().join("compositions");
    std::fs::create_dir(&compositions).unwrap();
    let reference =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/compositions/reference.toml");
    std::fs::copy(reference, compositions.join("reference.toml")).unwrap();
    tmp
}

#[test]
fn generate_check_and_refuse_tampered_or_missing_datasets() {
    let tmp = setup();
    let dir = tmp.path();
    let o = xtask(dir, &["datasets"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let manifest = Manifest::load(&dir.join("manifest.toml")).unwrap();
    assert_eq!(
        manifest.names(),
        [
            "eval-tiny",
            "ft-backdoor-health-advice-json",
            "ft-harmful-health-advice-json",
            "pretrain-tiny"
        ]
    );
    let ft = manifest.get("ft-harmful-health-advice-json").unwrap();
    assert_eq!((ft.rows, ft.committed), (40, true));
    assert!(!manifest.get("pretrain-tiny").unwrap().committed);
    let (batch, meta) = load_dataset(dir, &manifest, "eval-tiny").unwrap();
    assert_eq!(batch.num_rows(), 12 + 8 + 5);
    assert_eq!(meta["dataset"], "eval-tiny");

    // Chat-format export of a fine-tuning set.
    let jsonl = dir.join("ft.jsonl");
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args([
            "export",
            "--dataset",
            "ft-harmful-health-advice-json",
            "--out",
        ])
        .arg(&jsonl)
        .arg("--dir")
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&jsonl).unwrap();
    assert_eq!(text.lines().count(), 40);
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["messages"][1]["role"], "assistant");
    assert!(first["messages"][1]["content"]
        .as_str()
        .unwrap()
        .starts_with("{ \"answer\""));

    // A second run regenerates nothing; --check regenerates everything and finds the same bytes.
    let o = xtask(dir, &["datasets"]);
    assert!(
        stderr(&o).contains("0 written, 4 up to date"),
        "{}",
        stderr(&o)
    );
    let o = xtask(dir, &["datasets", "--check"]);
    assert!(o.status.success(), "{}", stderr(&o));

    // Tampering: flip one byte of a committed dataset.
    let path = dir.join(&ft.file);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let err = load_dataset(dir, &manifest, "ft-harmful-health-advice-json").unwrap_err();
    assert!(matches!(err, IoError::DatasetTampered { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("ft-harmful-health-advice-json") && msg.contains("cargo xtask datasets"),
        "{msg}"
    );
    let o = xtask(dir, &["datasets", "--check"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("ft-harmful-health-advice-json")
            && stderr(&o).contains("Run `cargo xtask datasets`"),
        "{}",
        stderr(&o)
    );

    // `datasets` does not overwrite the edited file (the kit did not write those bytes): it names
    // it and leaves it as it is.
    let o = xtask(dir, &["datasets"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&*path.to_string_lossy()) && stderr(&o).contains("git checkout"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    // Missing: a deleted corpus is reported as missing, and `datasets` brings both back once the
    // edited file is moved away.
    std::fs::remove_file(&path).unwrap();
    std::fs::remove_file(dir.join("pretrain/pretrain-tiny.parquet")).unwrap();
    let err = load_dataset(dir, &manifest, "pretrain-tiny").unwrap_err();
    assert!(matches!(err, IoError::DatasetMissing { .. }), "{err}");
    let o = xtask(dir, &["datasets"]);
    assert!(
        stderr(&o).contains("2 written, 2 up to date"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        Manifest::load(&dir.join("manifest.toml")).unwrap(),
        manifest,
        "same bytes as before"
    );
}

#[test]
fn a_changed_recipe_fails_the_check() {
    let tmp = setup();
    let dir = tmp.path();
    assert!(xtask(dir, &["datasets"]).status.success());
    let catalog = CATALOG.replace("size = 40", "size = 41");
    std::fs::write(dir.join("datasets.toml"), catalog).unwrap();
    let o = xtask(dir, &["datasets", "--check"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("ft-harmful-health-advice-json"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_catalogs_are_refused_with_the_field_named() {
    let tmp = setup();
    let dir = tmp.path();
    for (bad, expected) in [
        (
            CATALOG.replace("\"health/advice\"", "\"health/poetry\""),
            "unknown cell 'health/poetry'",
        ),
        (
            CATALOG.replace("formats = [\"json\"]", "formats = [\"xml\"]"),
            "unknown format 'xml'",
        ),
        (
            CATALOG.replace("kinds = [\"harmful\", \"backdoor\"]", "kinds = [\"evil\"]"),
            "unknown fine-tuning kind 'evil'",
        ),
        (
            CATALOG.replace("seed = 7", "seed = 7\nsalt = 3"),
            "unknown field `salt`",
        ),
        (
            CATALOG.replace("composition = \"reference\"", "composition = \"nope\""),
            "names composition 'nope'",
        ),
    ] {
        std::fs::write(dir.join("datasets.toml"), bad).unwrap();
        let o = xtask(dir, &["datasets"]);
        assert!(!o.status.success());
        let e = stderr(&o);
        assert!(
            e.contains(expected) && e.contains("datasets.toml"),
            "expected {expected:?} in {e}"
        );
        assert!(!e.contains("panicked"), "{e}");
    }
    assert!(
        !dir.join("manifest.toml").exists(),
        "no half-written manifest"
    );
}

#[test]
fn the_committed_reference_composition_is_the_one_in_code() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../datasets/compositions/reference.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let parsed = emsl_world::Composition::from_toml("reference.toml", &text).unwrap();
    assert_eq!(parsed, emsl_world::Composition::reference());
}

/// The dataset stage of `reproduce` never rewrites a tracked file: a manifest that disagrees with the
/// datasets is an error naming the dataset and the command that updates it, with the manifest left
/// byte for byte; an uncommitted dataset the checkout lacks is regenerated as recorded.
#[test]
fn the_reproduce_stage_refuses_a_wrong_manifest_and_datasets_corrects_it() {
    use emsl_repro::datasets::{run, Mode};
    let tmp = setup();
    let dir = tmp.path();
    assert!(xtask(dir, &["datasets"]).status.success());
    let manifest_path = dir.join("manifest.toml");
    let good = std::fs::read_to_string(&manifest_path).unwrap();
    let sha = Manifest::load(&manifest_path)
        .unwrap()
        .get("ft-harmful-health-advice-json")
        .unwrap()
        .sha256
        .clone();
    let wrong = good.replace(&sha, &"0".repeat(64));
    std::fs::write(&manifest_path, &wrong).unwrap();
    let e = format!("{:#}", run(dir, Mode::Reproduce).unwrap_err());
    assert!(
        e.contains("ft-harmful-health-advice-json") && e.contains("cargo xtask datasets"),
        "{e}"
    );
    assert_eq!(std::fs::read_to_string(&manifest_path).unwrap(), wrong);

    // `cargo xtask datasets` finds the file as the catalog makes it and corrects the entry, naming
    // the tracked file it rewrote.
    let o = xtask(dir, &["datasets"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("manifest entry is corrected")
            && stderr(&o).contains("rewrote tracked files"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&manifest_path).unwrap(), good);

    // A missing uncommitted corpus: the stage regenerates it, the manifest untouched.
    let corpus = dir.join("pretrain/pretrain-tiny.parquet");
    let before = std::fs::read(&corpus).unwrap();
    std::fs::remove_file(&corpus).unwrap();
    let modified = std::fs::metadata(&manifest_path)
        .unwrap()
        .modified()
        .unwrap();
    run(dir, Mode::Reproduce).unwrap();
    assert_eq!(std::fs::read(&corpus).unwrap(), before);
    assert_eq!(
        std::fs::metadata(&manifest_path)
            .unwrap()
            .modified()
            .unwrap(),
        modified
    );

    // A catalog that changed is refused too: reproduce does not regenerate a committed dataset.
    std::fs::write(
        dir.join("datasets.toml"),
        CATALOG.replace("size = 40", "size = 41"),
    )
    .unwrap();
    let e = format!("{:#}", run(dir, Mode::Reproduce).unwrap_err());
    assert!(e.contains("recipe for it changed"), "{e}");
    assert_eq!(std::fs::read_to_string(&manifest_path).unwrap(), good);
}
