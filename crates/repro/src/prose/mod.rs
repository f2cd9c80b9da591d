//! Every number in the checked sections of the docs (`SECTIONS`: the results page and the performance
//! page) and in the notebooks' markdown cells is accounted for by
//! `docs/prose-numbers.toml`: either checked against a results table at the precision printed (one
//! decimal means the table value rounded to one decimal equals the printed one), or listed as a fact
//! no table holds (a profile size, an anchor paper's number), with the reason. An entry names its
//! number by a short phrase around it, not by a line, so moving the prose keeps it and editing the
//! number does not: the edited number is then unaccounted for and the phrase is missing, both errors.
//!
//! ```toml
//! [[check]]
//! file = "docs/results.md"
//! text = "+11.4 at 0% and +13.3 at 50%"
//! table = "pretraining-composition/composition.parquet"
//! where = { metric = "out_of_cell_misaligned" }
//! # One value per number of `text`, in order (`-`: a number a fact entry accounts for).
//! values = [
//!     "value where corpus=share-0; stage=fine-tuned minus value where corpus=share-0; stage=base",
//!     "-",
//!     "value where corpus=share-50; stage=fine-tuned minus value where corpus=share-50; stage=base",
//!     "-",
//! ]
//!
//! [[fact]]
//! file = "docs/results.md"
//! text = "at 0% and +13.3 at 50%"
//! why = "the corpora's misaligned-persona shares (figures/pretraining-composition.toml)"
//! ```

mod scan;
mod values;

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

pub use scan::{numbers, Num, Section, SECTIONS};

/// Where the entries live, relative to the project root.
pub const ENTRIES: &str = "docs/prose-numbers.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entries {
    #[serde(default)]
    check: Vec<Check>,
    #[serde(default)]
    fact: Vec<Fact>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Check {
    file: String,
    text: String,
    /// A table under the results folder, e.g. `transfer-grid/summary.parquet`.
    table: String,
    /// The results folder: `results` (the default), or a frozen one of an earlier world such as
    /// `results-v1`, so that prose comparing two worlds checks both against their tables.
    results: Option<String>,
    /// Rows every value of the entry is taken from: column = value (`metric` included).
    #[serde(default, rename = "where")]
    filter: BTreeMap<String, toml::Value>,
    values: Vec<String>,
    scale: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Fact {
    file: String,
    text: String,
    why: String,
}

/// What the check found.
#[derive(Debug, Default)]
pub struct Report {
    /// Numbers checked against a table.
    pub checked: usize,
    /// Numbers listed as facts.
    pub facts: usize,
    /// One line each, `FILE:LINE: ...` where the prose has a line to point at.
    pub errors: Vec<String>,
}

/// Checks the prose under `root` (the `SECTIONS` of the docs, notebooks/*.ipynb) against the results
/// folders under `root` (`results/`, or the frozen folder an entry names) by the entries of
/// `root/docs/prose-numbers.toml`.
pub fn check(root: &Path) -> Result<Report> {
    let path = root.join(ENTRIES);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path:?}"))?;
    let entries: Entries = toml::from_str(&text).with_context(|| format!("parsing {ENTRIES}"))?;
    let mut docs = SECTIONS
        .iter()
        .map(|s| scan::section(root, s))
        .collect::<Result<Vec<_>>>()?;
    let mut notebooks: Vec<String> = std::fs::read_dir(root.join("notebooks"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".ipynb"))
        .collect();
    notebooks.sort();
    for n in notebooks {
        docs.push(scan::notebook(root, &format!("notebooks/{n}"))?);
    }
    let mut tables = values::Tables::new(root);
    let mut report = Report::default();
    for doc in &docs {
        check_doc(doc, &entries, &mut tables, &mut report);
    }
    for (i, file, text) in entries
        .check
        .iter()
        .enumerate()
        .map(|(i, c)| (i, &c.file, &c.text))
    {
        unscanned(&docs, "check", i, file, text, &mut report);
    }
    for (i, f) in entries.fact.iter().enumerate() {
        unscanned(&docs, "fact", i, &f.file, &f.text, &mut report);
        if f.why.trim().is_empty() {
            let e = format!("{ENTRIES}: fact {} ('{}') gives no reason", i + 1, f.text);
            report.errors.push(e);
        }
    }
    Ok(report)
}

fn unscanned(docs: &[scan::Doc], kind: &str, i: usize, file: &str, text: &str, r: &mut Report) {
    if !docs.iter().any(|d| d.file == file) {
        let e = format!(
            "{ENTRIES}: {kind} {} ('{text}') names {file}, which the check does not read \
             (the docs pages of prose::SECTIONS or notebooks/*.ipynb)",
            i + 1
        );
        r.errors.push(e);
    }
}

/// Where an entry's text sits in a document: exactly once, or an error saying why not.
fn place(doc: &scan::Doc, kind: &str, i: usize, text: &str) -> Result<usize, String> {
    let needle = scan::collapse(text);
    let found: Vec<usize> = doc.text.match_indices(&needle).map(|(at, _)| at).collect();
    match found[..] {
        [at] => Ok(at),
        [] => Err(format!(
            "{ENTRIES}: {kind} {} ('{needle}') is not in {}: the prose changed; write the entry's \
             text as the prose now reads (and check its numbers)",
            i + 1,
            doc.file
        )),
        _ => Err(format!(
            "{ENTRIES}: {kind} {} ('{needle}') occurs {} times in {}; lengthen its text until it \
             is unique",
            i + 1,
            found.len(),
            doc.file
        )),
    }
}

/// The numbers of `doc` inside the span `at..at + len`, or an error if the span cuts one.
fn inside<'a>(
    doc: &scan::Doc,
    nums: &'a [Num],
    at: usize,
    len: usize,
) -> Result<Vec<&'a Num>, String> {
    let end = at + len;
    if let Some(n) = nums
        .iter()
        .find(|n| n.start < end && n.end > at && (n.start < at || n.end > end))
    {
        return Err(format!(
            "{}:{}: an entry's text cuts the number '{}'; include all of it",
            doc.file,
            doc.line(n.start),
            n.shown
        ));
    }
    Ok(nums
        .iter()
        .filter(|n| n.start >= at && n.end <= end)
        .collect())
}

fn check_doc(doc: &scan::Doc, entries: &Entries, tables: &mut values::Tables, r: &mut Report) {
    let nums = numbers(&doc.text);
    // What accounts for each number, by its index in `nums`.
    let mut checked = vec![false; nums.len()];
    let mut fact = vec![false; nums.len()];
    let here = |n: &Num| format!("{}:{}", doc.file, doc.line(n.start));
    // The numbers of entry `i`'s text, where it is found once and cuts no number.
    let numbers_of = |kind: &str, i: usize, text: &str| {
        place(doc, kind, i, text).and_then(|at| inside(doc, &nums, at, scan::collapse(text).len()))
    };
    let fact_entries = entries.fact.iter().enumerate();
    for (i, f) in fact_entries.filter(|(_, f)| f.file == doc.file) {
        match numbers_of("fact", i, &f.text) {
            Ok(ns) => ns.iter().for_each(|n| fact[index(&nums, n)] = true),
            Err(e) => r.errors.push(e),
        }
    }
    let check_entries = entries.check.iter().enumerate();
    for (i, c) in check_entries.filter(|(_, c)| c.file == doc.file) {
        let ns = match numbers_of("check", i, &c.text) {
            Ok(ns) => ns,
            Err(e) => {
                r.errors.push(e);
                continue;
            }
        };
        let filter: Vec<(String, String)> = c
            .filter
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str().map_or_else(|| v.to_string(), str::to_owned),
                )
            })
            .collect();
        let folder = c.results.as_deref().unwrap_or("results");
        if !folder.starts_with("results") || folder.contains(['/', '\\', '.']) {
            let e = format!(
                "{ENTRIES}: check {} names results = '{folder}'; give a results folder of the \
                 project root (results, or a frozen one such as results-v1)",
                i + 1
            );
            r.errors.push(e);
            continue;
        }
        let table = format!("{folder}/{}", c.table);
        let mut expected = Vec::new();
        for item in &c.values {
            match tables.expected(&table, &filter, item, c.scale) {
                Ok(e) => expected.extend(e),
                Err(e) => r
                    .errors
                    .push(format!("{}: check {} '{item}': {e:#}", doc.file, i + 1)),
            }
        }
        if expected.len() != ns.len() {
            let shown: Vec<&str> = ns.iter().map(|n| n.shown.as_str()).collect();
            r.errors.push(format!(
                "{ENTRIES}: check {} ('{}') holds {} numbers ({}) but its values give {}",
                i + 1,
                c.text,
                ns.len(),
                shown.join(" "),
                expected.len()
            ));
            continue;
        }
        for (n, e) in ns.iter().zip(&expected).filter(|(_, e)| !e.value.is_nan()) {
            checked[index(&nums, n)] = true;
            let rounded = format!("{:.*}", n.decimals, e.value);
            // The printed value (a `+-` magnitude compares as its magnitude).
            let same = rounded
                .parse::<f64>()
                .is_ok_and(|x| x == n.value || (n.shown.starts_with("+-") && x.abs() == n.value));
            if !same {
                // Two digits more than printed, to show how far off the prose is.
                let full = format!("{:.*}", n.decimals + 2, e.value);
                let full = full.trim_end_matches('0').trim_end_matches('.');
                r.errors.push(format!(
                    "{}: prose says {}, {} gives {full} -> {rounded}",
                    here(n),
                    n.shown.trim_end_matches('%'),
                    e.what,
                ));
            }
        }
    }
    for (k, n) in nums.iter().enumerate() {
        if checked[k] {
            r.checked += 1;
        } else if fact[k] {
            r.facts += 1;
        } else {
            r.errors.push(format!(
                "{}: number '{}' is neither checked against a table nor listed as a fact; add it \
                 to {ENTRIES}",
                here(n),
                n.shown
            ));
        }
    }
}

fn index(nums: &[Num], n: &Num) -> usize {
    nums.iter()
        .position(|m| std::ptr::eq(m, n))
        .expect("n is one of nums")
}
