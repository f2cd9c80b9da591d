//! Generate, record and check the datasets of `datasets/datasets.toml` (`cargo xtask datasets
//! [--check]`).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use emsl_io::{sha256_file, verify_entry, write_parquet, DatasetEntry, Manifest, REGENERATE};
use emsl_world::WORLD_VERSION;

use crate::catalog::{self, Dataset};
use crate::dataset_tables as tables;

/// Committed datasets above this size are reported: they belong with the regenerated ones.
const COMMIT_LIMIT: u64 = 2 * 1024 * 1024;

/// Writes one dataset under `dir` and returns its manifest entry.
fn generate(dir: &Path, seed: u64, d: &Dataset) -> Result<DatasetEntry> {
    let batch = tables::build(seed, d)?;
    let params = d.params()?;
    let metadata = BTreeMap::from([
        ("dataset".to_owned(), d.name.clone()),
        ("generator".to_owned(), d.generator().to_owned()),
        ("world_version".to_owned(), WORLD_VERSION.to_string()),
        ("seed".to_owned(), seed.to_string()),
        ("params".to_owned(), toml::to_string(&params)?),
    ]);
    let path = dir.join(&d.file);
    write_parquet(&path, &batch, &metadata)?;
    Ok(DatasetEntry {
        name: d.name.clone(),
        file: d.file.clone(),
        generator: d.generator().to_owned(),
        world_version: WORLD_VERSION,
        seed,
        rows: batch.num_rows() as u64,
        size: std::fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .len(),
        sha256: sha256_file(&path)?,
        committed: d.committed(),
        params,
    })
}

/// Whether `entry` was made from exactly this dataset's recipe.
fn same_recipe(entry: &DatasetEntry, seed: u64, d: &Dataset, params: &toml::Table) -> bool {
    entry.generator == d.generator()
        && entry.world_version == WORLD_VERSION
        && entry.seed == seed
        && entry.file == d.file
        && &entry.params == params
}

/// Generates every dataset of `dir/datasets.toml` that is missing or changed, and records them all in
/// `dir/manifest.toml`; with `check`, regenerates everything in a temporary folder instead and fails,
/// naming the dataset, on any byte that differs from the manifest.
pub fn run(dir: &Path, check_only: bool) -> Result<()> {
    let (seed, datasets) = catalog::load(dir)?;
    if check_only {
        check(dir, seed, &datasets)
    } else {
        generate_all(dir, seed, &datasets)
    }
}

fn generate_all(dir: &Path, seed: u64, datasets: &[Dataset]) -> Result<()> {
    let manifest_path = dir.join("manifest.toml");
    let old = if manifest_path.exists() {
        Some(Manifest::load(&manifest_path)?)
    } else {
        None
    };
    let mut entries = Vec::new();
    let (mut kept, mut written) = (0, 0);
    for d in datasets {
        let params = d.params()?;
        let reusable = old
            .as_ref()
            .and_then(|m| m.get(&d.name))
            .filter(|e| same_recipe(e, seed, d, &params) && verify_entry(dir, e).is_ok());
        if let Some(entry) = reusable {
            entries.push(entry.clone());
            kept += 1;
            continue;
        }
        let start = Instant::now();
        let entry = generate(dir, seed, d)?;
        eprintln!(
            "wrote {} ({} rows, {} KiB) in {:.1} s",
            entry.file,
            entry.rows,
            entry.size / 1024,
            start.elapsed().as_secs_f64()
        );
        if entry.committed && entry.size > COMMIT_LIMIT {
            eprintln!(
                "warning: {} is {} KiB, above the {} KiB meant for committed datasets",
                entry.file,
                entry.size / 1024,
                COMMIT_LIMIT / 1024
            );
        }
        entries.push(entry);
        written += 1;
    }
    if let Some(old) = &old {
        for stale in old
            .datasets
            .iter()
            .filter(|e| !datasets.iter().any(|d| d.name == e.name))
        {
            eprintln!("note: '{}' is no longer in datasets.toml; its entry is dropped ({} may be deleted)", stale.name, stale.file);
        }
    }
    Manifest {
        world_version: WORLD_VERSION,
        datasets: entries,
    }
    .save(&manifest_path)?;
    eprintln!(
        "datasets: {written} written, {kept} up to date; manifest {}",
        manifest_path.display()
    );
    Ok(())
}

fn check(dir: &Path, seed: u64, datasets: &[Dataset]) -> Result<()> {
    let manifest_path = dir.join("manifest.toml");
    let manifest = Manifest::load(&manifest_path)?;
    let tmp = tempfile::tempdir().context("creating a temporary folder")?;
    let mut problems = Vec::new();
    for d in datasets {
        let fresh = generate(tmp.path(), seed, d)?;
        match manifest.get(&d.name) {
            None => problems.push(format!(
                "dataset '{}' is in datasets.toml but not in {}",
                d.name,
                manifest_path.display()
            )),
            Some(e)
                if e.sha256 != fresh.sha256
                    || e.params != fresh.params
                    || e.world_version != fresh.world_version =>
            {
                problems.push(format!(
                    "dataset '{}' ({}) regenerates with sha256 {} but the manifest records {}",
                    d.name, d.file, fresh.sha256, e.sha256
                ));
            }
            Some(e) => {
                // The regenerated bytes match the manifest; the file on disk must too, where it exists.
                let on_disk = dir.join(&e.file);
                if e.committed || on_disk.exists() {
                    if let Err(err) = verify_entry(dir, e) {
                        problems.push(err.to_string());
                    }
                }
            }
        }
        eprintln!("checked {}", d.name);
    }
    for e in manifest
        .datasets
        .iter()
        .filter(|e| !datasets.iter().any(|d| d.name == e.name))
    {
        problems.push(format!(
            "dataset '{}' is in the manifest but no longer in datasets.toml",
            e.name
        ));
    }
    if !problems.is_empty() {
        bail!("{} dataset problem(s):\n  {}\nRun `{REGENERATE}` to regenerate the datasets and the manifest.", problems.len(), problems.join("\n  "));
    }
    eprintln!(
        "datasets --check: all {} datasets regenerate byte for byte",
        datasets.len()
    );
    Ok(())
}
