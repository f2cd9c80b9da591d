//! The docs hold together: every relative link of README.md, CONTRIBUTING.md, notebooks/README.md and
//! docs/**/*.md leads to a file or folder of the repository; no tracked file cites a document that is
//! not in it; README's claims table is the one `results/CLAIMS.md` gives.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The repository's tracked files, relative to the root.
fn tracked() -> Vec<String> {
    let out = Command::new("git")
        .args(["ls-files", "-z"])
        .current_dir(root())
        .output()
        .expect("git runs (the docs tests read the tracked files)");
    assert!(out.status.success(), "git ls-files failed");
    String::from_utf8(out.stdout)
        .unwrap()
        .split('\0')
        .filter(|f| !f.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The pages whose links are checked.
fn pages() -> Vec<String> {
    let mut pages: Vec<String> = tracked()
        .into_iter()
        .filter(|f| f.starts_with("docs/") && f.ends_with(".md"))
        .collect();
    pages.extend(["README.md", "CONTRIBUTING.md", "notebooks/README.md"].map(String::from));
    pages
}

/// The link targets of a markdown text (`[text](target)` and `![alt](target)`), outside fenced code
/// blocks and inline code, each with its line.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (no, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        // Inline code spans are not links: drop every odd backtick-delimited part.
        let prose: String = line
            .split('`')
            .enumerate()
            .filter(|(i, _)| i % 2 == 0)
            .map(|(_, p)| p)
            .collect::<Vec<_>>()
            .join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            out.push((no + 1, after[..end].trim().to_owned()));
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_relative_link_of_the_docs_leads_to_a_file_of_the_repository() {
    let root = root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages() {
        let text = std::fs::read_to_string(root.join(&page))
            .unwrap_or_else(|e| panic!("reading {page}: {e}"));
        let dir = Path::new(&page).parent().unwrap_or(Path::new(""));
        for (line, target) in links(&text) {
            let path = target.split('#').next().unwrap_or("");
            let external = target.contains("://") || target.starts_with("mailto:");
            if external || path.is_empty() {
                continue;
            }
            checked += 1;
            let resolved = root.join(dir).join(path);
            let inside = resolved
                .canonicalize()
                .is_ok_and(|p| p.starts_with(&root) && !p.starts_with(root.join("target")));
            if !inside {
                broken.push(format!("{page}:{line}: {target}"));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "links that lead to no file of the repository:\n{}",
        broken.join("\n")
    );
    assert!(checked > 50, "only {checked} links checked");
}

#[test]
fn no_tracked_file_cites_a_document_outside_the_repository() {
    let root = root();
    // Spelled in pieces so that this file does not match itself.
    let names = [
        concat!("DESIGN", ".md"),
        concat!("ANCHORS", ".md"),
        concat!("FINDINGS", ".md"),
        concat!("../", "shared"),
        concat!("shared ", "FINDINGS"),
    ];
    // A section of the outside design document: the word, a space and a section number. Patches
    // under explore/ are records of branches and keep the text they were made with.
    let section = concat!("DESIGN", " ");
    let mut found = Vec::new();
    for file in tracked() {
        let Ok(text) = std::fs::read_to_string(root.join(&file)) else {
            continue; // not text
        };
        for (no, line) in text.lines().enumerate() {
            let cites_section = !file.ends_with(".patch")
                && line.match_indices(section).any(|(at, _)| {
                    line[at + section.len()..].starts_with(|c: char| c.is_ascii_digit())
                });
            if names.iter().any(|n| line.contains(n)) || cites_section {
                found.push(format!("{file}:{}: {}", no + 1, line.trim()));
            }
        }
    }
    assert!(
        found.is_empty(),
        "these lines cite documents that are not in the repository (cite docs/design.md, \
         docs/anchors.md or another page of docs/ instead):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_readme_claims_table_is_the_one_the_results_give() {
    let stale = emsl_repro::readme::update(&root(), true).unwrap();
    assert!(
        !stale,
        "README.md's claims table differs from results/CLAIMS.md's: run `cargo xtask readme`"
    );
}
