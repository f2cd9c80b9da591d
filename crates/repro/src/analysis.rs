//! The analysis jobs, run in the reproduce process: a figure's tables, its plot (drawn from the tables
//! alone, by the figure's `plot`) and SHA256SUMS, and the claims table. Every file is written
//! atomically.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::figures::{self, Inputs};
use crate::graph::{Graph, Job, Task};
use crate::store::job_folder;

/// Every dataset a job depends on, directly or through its inputs, with its sha256.
fn upstream_datasets(graph: &Graph, job: &Job) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut seen = BTreeSet::new();
    let mut stack = vec![job.key.clone()];
    while let Some(k) = stack.pop() {
        if !seen.insert(k.clone()) {
            continue;
        }
        let j = graph.get(&k);
        for d in j.task.datasets() {
            if let Some(h) = graph.dataset_hash(&d) {
                out.insert(d, h.clone());
            }
        }
        stack.extend(j.task.deps());
    }
    out
}

/// The key-value metadata of every table of a figure.
fn metadata(
    profile: &str,
    graph: &Graph,
    job: &Job,
    figure: &str,
    version: u32,
) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "schema_version".to_owned(),
            emsl_analysis::table::SCHEMA_VERSION.to_owned(),
        ),
        ("figure".to_owned(), figure.to_owned()),
        ("figure_version".to_owned(), version.to_string()),
        ("profile".to_owned(), profile.to_owned()),
        ("config_hash".to_owned(), job.identity.clone()),
        (
            "dataset_hashes".to_owned(),
            serde_json::to_string(&upstream_datasets(graph, job)).expect("a map serialises"),
        ),
        (
            "code_version".to_owned(),
            graph.code_version(job).to_owned(),
        ),
    ])
}

/// Where an analysis job reads and writes: the project (its datasets), the results folder, the profile.
pub struct Place<'a> {
    pub root: &'a std::path::Path,
    pub out: &'a std::path::Path,
    pub profile: &'a str,
}

pub fn run(s: &Place, graph: &Graph, job: &Job) -> Result<Vec<String>> {
    match &job.task {
        Task::Figure {
            figure,
            figure_version,
            params,
            inputs,
        } => {
            let roles = inputs
                .iter()
                .map(|(r, k)| (r.clone(), job_folder(s.out, k)))
                .collect();
            let inputs = Inputs::new(roles, s.root.join("datasets"));
            let fig = figures::get(figure)?;
            let tables = fig.tables(params, &inputs)?;
            every_row_per_base(figure, &inputs, &tables)?;
            let dir = s.out.join(figure);
            let mut files: Vec<String> =
                tables.iter().map(|(n, _)| format!("{n}.parquet")).collect();
            files.extend(["plot.svg".to_owned(), "plot.png".to_owned()]);
            // Before anything is written: a file the kit did not write stops the job.
            let stale = kit_files_to_replace(&dir, &files)?;
            std::fs::create_dir_all(&dir)?;
            let meta = metadata(s.profile, graph, job, figure, *figure_version);
            for (name, rows) in &tables {
                let file = format!("{name}.parquet");
                emsl_analysis::table::write(&dir.join(&file), rows, &meta)?;
            }
            // The plot is drawn from the tables alone, by the function the notebooks call.
            let loaded = tables
                .iter()
                .map(|(name, rows)| {
                    let t = emsl_analysis::Table {
                        rows: rows.clone(),
                        metadata: meta.clone(),
                    };
                    (name.clone(), t)
                })
                .collect();
            let plot = fig.plot(&loaded)?;
            let drawn = emsl_analysis::plot::render(&plot)?;
            emsl_io::write_atomic(&dir.join("plot.svg"), drawn.svg.as_bytes())?;
            emsl_io::write_atomic(&dir.join("plot.png"), &drawn.png)?;
            // Files of an older version of the figure would be reported as extra by verify.
            for name in stale {
                std::fs::remove_file(dir.join(&name))
                    .with_context(|| format!("removing {}", dir.join(&name).display()))?;
            }
            files.sort();
            let refs: Vec<&str> = files.iter().map(String::as_str).collect();
            emsl_io::write_sha256sums(&dir, &refs)?;
            files.push("SHA256SUMS".to_owned());
            Ok(files.into_iter().map(|f| format!("{figure}/{f}")).collect())
        }
        Task::Claims {
            claims,
            figures,
            previous,
            ..
        } => {
            let previous = previous
                .as_ref()
                .map(|p| (p.label.as_str(), s.root.join(&p.results)));
            let text = crate::claims::render(s.out, figures, claims, s.profile, previous)?;
            emsl_io::write_atomic(&s.out.join("CLAIMS.md"), text.as_bytes())?;
            Ok(vec!["CLAIMS.md".to_owned()])
        }
        _ => bail!("{} is not an analysis job", job.key),
    }
}

/// On several bases every row must say what each base gave: an estimate over bases with each base's
/// value (`base_values`, or an effect's `per_base`), a row of one base (`base`), or a statistic across
/// bases (metric `descriptive`). A row with none of them pooled the bases' seeds as if they were one
/// base's, which would make an interval over seeds pass for one over bases: refused, naming it.
fn every_row_per_base(figure: &str, inputs: &Inputs, tables: &figures::Output) -> Result<()> {
    let bases: BTreeSet<String> = inputs
        .find(&[])
        .into_iter()
        .filter_map(|(m, _)| m.get("base").cloned())
        .collect();
    if bases.len() < 2 {
        return Ok(());
    }
    for (name, rows) in tables {
        for (i, r) in rows.iter().enumerate() {
            let per_base = ["base_values", "per_base", "base"]
                .iter()
                .any(|v| r.var(v).is_some());
            if !per_base && r.metric != "descriptive" {
                bail!(
                    "{figure}: table {name}, row {i} (metric {}, {:?}) has no per-base values on \
                     {} bases: its builder pooled the bases (build it with rows::mean_row or \
                     rows::rate_row)",
                    r.metric,
                    r.vars,
                    bases.len()
                );
            }
        }
    }
    Ok(())
}

/// The files of figure folder `dir` that the kit wrote and that a job writing `writes` no longer
/// writes: those its SHA256SUMS lists (an older version of the figure) and the temporary files of an
/// atomic write a killed run left (`.<name>.<random>.tmp`). Any other file or folder is not the kit's:
/// it is an error naming each, before anything is written, for the kit never deletes what it did not
/// write, and verify would fail on a file that SHA256SUMS does not list.
fn kit_files_to_replace(dir: &Path, writes: &[String]) -> Result<Vec<String>> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    let listed = emsl_io::listed_in_sha256sums(dir)?;
    let mut stale = Vec::new();
    let mut foreign = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let name = e.file_name().to_string_lossy().into_owned();
        let is_file = e.file_type()?.is_file();
        let atomic_leftover = name.starts_with('.') && name.ends_with(".tmp");
        if !is_file {
            foreign.push(format!("{name}/"));
        } else if writes.contains(&name) || name == emsl_io::SHA256SUMS {
            continue;
        } else if listed.contains(&name) || atomic_leftover {
            stale.push(name);
        } else {
            foreign.push(name);
        }
    }
    if !foreign.is_empty() {
        foreign.sort();
        let results = dir.parent().unwrap_or(dir);
        bail!(
            "{} holds {} that the kit did not write ({}): a figure folder holds only the kit's \
             files, and the kit deletes nothing it did not write. Move {} out of it (to the top \
             level of {}, to a hidden folder there such as {}/.notes, or out of the results \
             folder), then run again.",
            dir.display(),
            if foreign.len() == 1 {
                "a file"
            } else {
                "files"
            },
            foreign.join(", "),
            if foreign.len() == 1 { "it" } else { "them" },
            results.display(),
            results.display(),
        );
    }
    stale.sort();
    Ok(stale)
}

#[cfg(test)]
mod tests {
    use super::kit_files_to_replace;

    #[test]
    fn a_figure_folder_keeps_what_the_kit_did_not_write() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("controls");
        let writes = vec!["effects.parquet".to_owned(), "plot.svg".to_owned()];
        // No folder yet: nothing to replace.
        assert!(kit_files_to_replace(&dir, &writes).unwrap().is_empty());
        std::fs::create_dir_all(&dir).unwrap();
        for f in ["effects.parquet", "old-table.parquet", ".plot.svg.a1b2.tmp"] {
            std::fs::write(dir.join(f), f).unwrap();
        }
        emsl_io::write_sha256sums(&dir, &["effects.parquet", "old-table.parquet"]).unwrap();
        // An older version's table (listed in SHA256SUMS) and a killed write's temporary file are
        // the kit's: they go.
        let stale = kit_files_to_replace(&dir, &writes).unwrap();
        assert_eq!(stale, [".plot.svg.a1b2.tmp", "old-table.parquet"]);

        // A user's notes and a folder are not: the job stops, naming both, and nothing is removed.
        std::fs::write(dir.join("NOTES.txt"), "mine").unwrap();
        std::fs::create_dir(dir.join("drafts")).unwrap();
        let e = format!("{:#}", kit_files_to_replace(&dir, &writes).unwrap_err());
        assert!(
            e.contains("NOTES.txt") && e.contains("drafts/") && e.contains("Move them"),
            "{e}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("NOTES.txt")).unwrap(),
            "mine"
        );
    }
}
