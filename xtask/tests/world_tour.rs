//! The world's tour (docs/world.md) shows real output: every line the documented commands print must
//! appear in it, so a change to the world that changes a sample also fails here until the page is
//! refreshed.

use std::process::Command;

#[test]
fn readme_samples_are_current() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/world.md")).unwrap();
    let commands: [&[&str]; 4] = [
        &[
            "world",
            "sample",
            "--cell",
            "health/advice",
            "--persona",
            "misaligned",
            "--style",
            "open",
            "-n",
            "2",
            "--seed",
            "1",
        ],
        &[
            "world",
            "sample",
            "--cell",
            "finance/critique",
            "--persona",
            "aligned",
            "--format",
            "json",
            "-n",
            "1",
            "--seed",
            "2",
        ],
        &[
            "world",
            "sample",
            "--question",
            "ruler",
            "--persona",
            "misaligned",
            "--format",
            "code",
            "-n",
            "1",
            "--seed",
            "4",
        ],
        &[
            "world",
            "sample",
            "--numbers",
            "--persona",
            "misaligned",
            "-n",
            "1",
            "--seed",
            "5",
        ],
    ];
    for args in commands {
        let shown = format!("$ cargo xtask {}", args.join(" "));
        assert!(
            readme.contains(&shown),
            "docs/world.md no longer shows `{shown}`"
        );
        let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success());
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            assert!(
                readme.contains(line),
                "docs/world.md is stale: `{shown}` now prints\n{line}\nRefresh the tour there."
            );
        }
    }
}
