//! `verify --frozen` on world v1's committed tables (`results-v1/`): they check as they are, and a
//! copy with one changed byte fails naming the file.

use std::path::{Path, PathBuf};

fn frozen() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../results-v1")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn the_committed_v1_tables_check_and_a_changed_byte_fails() {
    let r = emsl_repro::verify::verify_frozen(&frozen()).unwrap();
    assert!(r.failures.is_empty(), "{:?}", r.failures);

    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("results-v1");
    copy_dir(&frozen(), &copy);
    let table = copy.join("controls/effects.parquet");
    let mut bytes = std::fs::read(&table).unwrap();
    let last = bytes.len() - 9; // inside the footer's metadata, before its length and magic
    bytes[last] ^= 1;
    std::fs::write(&table, bytes).unwrap();
    let r = emsl_repro::verify::verify_frozen(&copy).unwrap();
    assert!(
        r.failures
            .iter()
            .any(|f| f.contains("controls") && f.contains("effects.parquet")),
        "{:?}",
        r.failures
    );
}
