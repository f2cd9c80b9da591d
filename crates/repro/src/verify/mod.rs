//! What `cargo xtask verify` checks: recomputes every checksum (datasets against
//! their manifest; results against each figure's SHA256SUMS and the lock) and compares every metric
//! with the reference results: "same bytes", "within tolerance" (the two 95% intervals overlap) or
//! "out of tolerance". Values without an interval (one deterministic measurement) are within tolerance
//! when they agree to 1e-3 relative. Exits non-zero on any failure.

use std::collections::BTreeSet;
use std::path::Path;

use anyhow::{Context, Result};
use emsl_analysis::stats::Estimate;
use emsl_analysis::table;

mod nan;

use crate::lock::{Lock, LOCK_FILE};
use crate::store::files_under;

/// What verify found, in the order it found it.
#[derive(Default)]
pub struct Report {
    /// Every line to print: `FAIL  ...`, `note  ...` and the summaries.
    pub lines: Vec<String>,
    pub failures: Vec<String>,
    pub same: usize,
    /// Tables whose every value is bit-identical, with other metadata (identities, code versions).
    pub same_values: usize,
    pub within: usize,
}

impl Report {
    fn fail(&mut self, s: String) {
        self.lines.push(format!("FAIL  {s}"));
        self.failures.push(s);
    }
    fn note(&mut self, s: String) {
        self.lines.push(format!("note  {s}"));
    }
    fn say(&mut self, s: String) {
        self.lines.push(s);
    }
}

fn check_datasets(dir: &Path, r: &mut Report) -> Result<()> {
    let m = emsl_io::Manifest::load(&dir.join("manifest.toml"))?;
    let (mut ok, mut absent) = (0, 0);
    for name in m.names() {
        let e = m.get(&name).expect("listed");
        let path = dir.join(&e.file);
        if !path.exists() && !e.committed {
            absent += 1;
            continue;
        }
        match emsl_io::verify_entry(dir, e) {
            Ok(_) => ok += 1,
            Err(err) => r.fail(format!("dataset {name} ({}): {err}", path.display())),
        }
    }
    r.say(format!("datasets: {ok} match datasets/manifest.toml"));
    if absent > 0 {
        r.note(format!("{absent} uncommitted datasets are not generated here (`cargo xtask datasets` makes them)"));
    }
    Ok(())
}

/// The figure folders of a results folder, sorted (not the job cache, not hidden folders, not the
/// links `cargo xtask own-model` makes to its job folders, whose files the lock checks).
fn figure_folders(dir: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = entry?.path();
        let name = p
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_owned();
        let link = p.symlink_metadata()?.file_type().is_symlink();
        if p.is_dir() && !link && name != "jobs" && !name.starts_with('.') {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// Checksums of a results folder: every figure's SHA256SUMS, extra and missing files, the lock.
fn check_results(dir: &Path, r: &mut Report) -> Result<()> {
    let lock = Lock::load(dir)?;
    if !dir.join(LOCK_FILE).exists() {
        r.fail(format!("{}: no {LOCK_FILE}", dir.display()));
    }
    let figures = figure_folders(dir)?;
    let mut result_files = BTreeSet::new();
    for name in &figures {
        let p = dir.join(name);
        if !p.join("SHA256SUMS").exists() {
            r.fail(format!("{name}/SHA256SUMS is missing"));
            continue;
        }
        for m in emsl_io::check_sha256sums(&p)? {
            match m.actual {
                None => r.fail(format!(
                    "{name}/{} is missing (listed in SHA256SUMS)",
                    m.file
                )),
                Some(a) => r.fail(format!(
                    "{name}/{}: sha256 {a}, SHA256SUMS says {}",
                    m.file, m.expected
                )),
            }
        }
        let listed: BTreeSet<String> = emsl_io::listed_in_sha256sums(&p)?.into_iter().collect();
        for f in files_under(&p, &p)? {
            if f != "SHA256SUMS" && !listed.contains(&f) {
                r.fail(format!("{name}/{f} is an extra file (not in SHA256SUMS)"));
            }
            result_files.insert(format!("{name}/{f}"));
        }
    }
    if dir.join("CLAIMS.md").exists() {
        result_files.insert("CLAIMS.md".into());
    }
    let mut locked = BTreeSet::new();
    let mut cache_missing = 0;
    for (key, e) in &lock.jobs {
        for (rel, sha) in &e.outputs {
            let path = dir.join(rel);
            let is_cache = rel.starts_with("jobs/");
            if !is_cache {
                locked.insert(rel.clone());
            }
            match emsl_io::sha256_file(&path) {
                Ok(a) if &a == sha => {}
                Ok(a) => r.fail(format!(
                    "{rel} (job {key}): sha256 {a}, {LOCK_FILE} says {sha}"
                )),
                Err(_) if is_cache => cache_missing += 1,
                Err(_) => r.fail(format!("{rel} (job {key}) is missing")),
            }
        }
    }
    for f in result_files.difference(&locked) {
        r.fail(format!("{f} is not recorded in {LOCK_FILE}"));
    }
    if cache_missing > 0 {
        r.note(format!("{cache_missing} cached job files (models, samples under jobs/) are not here; rerun `cargo xtask reproduce` to check them"));
    }
    r.say(format!(
        "results: {} figures, {} result files checked against SHA256SUMS and {LOCK_FILE}",
        figures.len(),
        locked.len()
    ));
    Ok(())
}

/// Whether two estimates are the same numbers, bit for bit (any NaN equal to any NaN: a null cell
/// reads back as NaN, and an older table's NaN may have had another sign).
fn same_bits(x: &Estimate, y: &Estimate) -> bool {
    let f = |a: f64, b: f64| a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan());
    f(x.value, y.value)
        && f(x.ci_low, y.ci_low)
        && f(x.ci_high, y.ci_high)
        && x.n == y.n
        && x.seeds == y.seeds
}

/// Compares every table of the reference with the same table of the results.
fn compare(results: &Path, reference: &Path, r: &mut Report) -> Result<()> {
    for fig in figure_folders(reference)? {
        for f in files_under(&reference.join(&fig), &reference.join(&fig))? {
            if !f.ends_with(".parquet") {
                continue;
            }
            let (a, b) = (results.join(&fig).join(&f), reference.join(&fig).join(&f));
            if !a.exists() {
                r.fail(format!(
                    "{fig}/{f} is in the reference but not in the results"
                ));
                continue;
            }
            if std::fs::read(&a)? == std::fs::read(&b)? {
                r.same += 1;
                continue;
            }
            let (ta, tb) = match (table::read(&a), table::read(&b)) {
                (Ok(ta), Ok(tb)) => (ta, tb),
                (Err(e), _) | (_, Err(e)) => {
                    r.fail(format!("{fig}/{f}: {e:#}"));
                    continue;
                }
            };
            if ta.rows.len() != tb.rows.len() {
                r.fail(format!(
                    "{fig}/{f}: {} rows, the reference {}",
                    ta.rows.len(),
                    tb.rows.len()
                ));
                continue;
            }
            let mut out = 0;
            // Whether every row is the same numbers bit for bit (only the metadata differs).
            let mut same_values = true;
            for (x, y) in ta.rows.iter().zip(&tb.rows) {
                if identity(x) != identity(y) || x.metric != y.metric {
                    r.fail(format!(
                        "{fig}/{f}: row {:?} {} where the reference has {:?} {}",
                        x.vars, x.metric, y.vars, y.metric
                    ));
                    out += 1;
                    break;
                }
                same_values &= same_vars(x, y) && same_bits(&x.est, &y.est);
                if !within_tolerance(&x.est, &y.est) {
                    out += 1;
                    r.fail(format!(
                        "{fig}/{f}: {} {} = {:.4} [{:.4}, {:.4}], reference {:.4} [{:.4}, {:.4}] (differs by {:+.4}): out of tolerance",
                        x.metric,
                        x.vars.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "),
                        x.est.value, x.est.ci_low, x.est.ci_high, y.est.value, y.est.ci_low, y.est.ci_high,
                        x.est.value - y.est.value
                    ));
                }
            }
            if out == 0 && same_values {
                r.same_values += 1;
                r.say(format!(
                    "ok    {fig}/{f}: the same values (only the metadata differs)"
                ));
            } else if out == 0 {
                r.within += 1;
                r.say(format!(
                    "ok    {fig}/{f}: different bytes, every metric within tolerance"
                ));
            }
        }
    }
    Ok(())
}

/// The columns that say which measurement a row is: every variable but the per-seed values, which are
/// results (text) judged with the row's value.
/// Columns that describe a row's measurement rather than name it: each seed's and each base's own
/// value, the share of variance between bases and a p-value vary with the data as the estimate does.
const MEASURED_VARS: [&str; 5] = [
    "per_seed",
    "per_base",
    "base_values",
    "between_bases",
    "p_value",
];

fn identity(row: &emsl_analysis::Measurement) -> Vec<&(String, emsl_analysis::Var)> {
    row.vars
        .iter()
        .filter(|(k, _)| !MEASURED_VARS.contains(&k.as_str()))
        .collect()
}

/// The same variables bit for bit, a missing number (NaN) equal to another.
fn same_vars(x: &emsl_analysis::Measurement, y: &emsl_analysis::Measurement) -> bool {
    use emsl_analysis::Var;
    x.vars.len() == y.vars.len()
        && x.vars.iter().zip(&y.vars).all(|((k, a), (l, b))| {
            k == l
                && match (a, b) {
                    (Var::Num(a), Var::Num(b)) => {
                        a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
                    }
                    _ => a == b,
                }
        })
}

/// Relative tolerance for a value measured without an interval (a single deterministic number, such
/// as a log-probability of one model): floating-point results of another CPU or build differ in the
/// last bits, and an interval of zero width never overlaps another.
const POINT_TOLERANCE: f64 = 1e-3;

/// Two estimates agree: both missing, their 95% intervals overlap, or, where either has no interval,
/// their values agree to [`POINT_TOLERANCE`] (relative, at least absolute for values below 1).
fn within_tolerance(x: &Estimate, y: &Estimate) -> bool {
    if x.value.is_nan() && y.value.is_nan() {
        return true;
    }
    if x.overlaps(y) {
        return true;
    }
    let point = x.ci_low == x.ci_high || y.ci_low == y.ci_high;
    point && (x.value - y.value).abs() <= POINT_TOLERANCE * y.value.abs().max(1.0)
}

/// Checks the datasets under `datasets`, the results folder `results`, and, when there is one, compares
/// `results` with the reference results `reference`.
pub fn verify(datasets: &Path, results: &Path, reference: &Path) -> Result<Report> {
    let mut r = Report::default();
    check_datasets(datasets, &mut r)?;
    check_results(results, &mut r)?;
    nan::check_no_nan(results, &mut r)?;
    let own_only = figure_folders(results)?.is_empty()
        && Lock::load(results)?
            .jobs
            .keys()
            .any(|k| crate::own::is_own_job(k));
    if own_only {
        r.note(format!(
            "{} holds stages of your own model only (cargo xtask own-model): their files are checked \
             against {LOCK_FILE}, and there are no figure tables to compare",
            results.display()
        ));
    } else if reference.exists() {
        compare(results, reference, &mut r)?;
        let line = format!(
            "compared with {}: {} tables with the same bytes, {} with the same values, {} within tolerance",
            reference.display(),
            r.same,
            r.same_values,
            r.within
        );
        r.say(line);
    } else {
        r.note(format!("no reference results at {}", reference.display()));
    }
    Ok(r)
}

/// Checks a frozen results folder of an earlier world (`results-v1/`): its tables against each figure's
/// SHA256SUMS and the lock, without the datasets (they are the catalog of the commit that made it, which
/// its README names) and without a reference (it is its own).
pub fn verify_frozen(results: &Path) -> Result<Report> {
    let mut r = Report::default();
    check_results(results, &mut r)?;
    r.note(format!(
        "{} is frozen: its datasets are not this checkout's; its README names the commit that regenerates them",
        results.display()
    ));
    Ok(r)
}

#[cfg(test)]
mod tests;
