//! The analysis jobs, run in the reproduce process: a figure's tables, its plot (drawn from the tables
//! alone, by the figure's `plot`) and SHA256SUMS, and the claims table. Every file is written
//! atomically.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{bail, Result};

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
            let dir = s.out.join(figure);
            std::fs::create_dir_all(&dir)?;
            let meta = metadata(s.profile, graph, job, figure, *figure_version);
            let mut files = Vec::new();
            for (name, rows) in &tables {
                let file = format!("{name}.parquet");
                emsl_analysis::table::write(&dir.join(&file), rows, &meta)?;
                files.push(file);
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
            files.extend(["plot.svg".to_owned(), "plot.png".to_owned()]);
            // Files of an older version of the figure would be reported as extra by verify.
            for e in std::fs::read_dir(&dir)? {
                let name = e?.file_name().to_string_lossy().into_owned();
                if !files.contains(&name) && name != "SHA256SUMS" {
                    std::fs::remove_file(dir.join(&name))?;
                }
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
