//! The notebooks' code runs in CI as crates/analysis/tests/notebook_<name>.rs, one file per notebook;
//! those files must be generated from the current notebooks.

use std::process::Command;

#[test]
fn the_notebook_code_test_is_generated_from_the_current_notebooks() {
    let o = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["notebooks", "--extract", "--check"])
        .output()
        .expect("xtask runs");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}
