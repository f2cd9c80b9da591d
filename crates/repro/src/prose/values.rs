//! What an entry's `values` ask of a table: one column of one row (`value`), a statistic over rows
//! (`min value`, `max value`, `mean value`, `pooled value`: weighted by `n`), a least-squares fit
//! over rows (`slope by similarity`, `slope_low`/`slope_high` (its 95% interval), `r2`), or a string
//! column whose numbers are printed as they are (`per_seed`, or `per_seed #2` for its second). Each
//! may narrow the entry's rows further: `value where examples=500; metric=coherent`. `A minus B` is
//! the difference of two (split where ` minus ` starts another item, so a `where` value such as an
//! effect's name may hold the word). `-` stands for a number of the entry's text that is not from the
//! table (a selector such as "at 0%"): a fact entry must account for it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use emsl_analysis::{Measurement, Table, Var};

/// One expected number, with how it was found (for the message when the prose disagrees).
pub struct Expected {
    pub value: f64,
    pub what: String,
}

/// The results tables an entry names, each read once.
pub struct Tables<'a> {
    /// The project root: a table's name starts with its results folder (`results/`, `results-v1/`).
    root: &'a Path,
    cache: BTreeMap<String, Table>,
}

impl<'a> Tables<'a> {
    pub fn new(root: &'a Path) -> Tables<'a> {
        Tables {
            root,
            cache: BTreeMap::new(),
        }
    }

    fn get(&mut self, name: &str) -> Result<&Table> {
        if !self.cache.contains_key(name) {
            let path = self.root.join(name);
            let t = emsl_analysis::table::read(&path).with_context(|| format!("reading {name}"))?;
            self.cache.insert(name.to_owned(), t);
        }
        Ok(&self.cache[name])
    }

    /// The numbers `item` gives from `table`'s rows matching `filter` and the item's own `where`,
    /// scaled by `scale` (default: 100 for `value`, `ci_low`, `ci_high`, their statistics; else 1).
    pub fn expected(
        &mut self,
        table: &str,
        filter: &[(String, String)],
        item: &str,
        scale: Option<f64>,
    ) -> Result<Vec<Expected>> {
        if let Some((a, b)) = split_minus(item) {
            let (a, b) = (
                self.expected(table, filter, a, scale)?,
                self.expected(table, filter, b, scale)?,
            );
            let ([a], [b]) = (&a[..], &b[..]) else {
                bail!("'{item}': each side of 'minus' must give one number")
            };
            return Ok(vec![Expected {
                value: a.value - b.value,
                what: format!("{} minus {}", a.what, b.what),
            }]);
        }
        if item == "-" {
            return Ok(vec![Expected {
                value: f64::NAN,
                what: String::new(),
            }]);
        }
        let (head, narrow) = match item.split_once(" where ") {
            Some((h, w)) => (h, parse_where(w)?),
            None => (item, Vec::new()),
        };
        let filter: Vec<(String, String)> = filter.iter().cloned().chain(narrow).collect();
        let mut words: Vec<&str> = head.split_whitespace().collect();
        // `per_seed #2`: only the second number of a string column.
        let nth: Option<usize> = match words.last() {
            Some(w) if w.starts_with('#') => {
                let k = w[1..]
                    .parse()
                    .with_context(|| format!("'{w}' in '{item}'"))?;
                words.pop();
                Some(k)
            }
            _ => None,
        };
        let rows: Vec<&Measurement> = self
            .get(table)?
            .rows
            .iter()
            .filter(|m| filter.iter().all(|(k, v)| matches(m, k, v)))
            .collect();
        let shown: Vec<String> = filter.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        let rows_are = format!("{table} ({}", shown.join(", "));
        if rows.is_empty() {
            bail!("{rows_are}) has no row");
        }
        let rate = |c: &str| matches!(c, "value" | "ci_low" | "ci_high");
        let (value, column) = match words.as_slice() {
            [c] if rows.len() > 1 => bail!(
                "{rows_are}) has {} rows; narrow the entry's `where` or name a statistic (min, max, \
                 mean, pooled) for '{c}'",
                rows.len()
            ),
            [c] if !rate(c) && !matches!(*c, "n" | "seeds") => {
                let Some(Var::Str(s)) = rows[0].var(c) else {
                    bail!("{rows_are}) has no string column '{c}'")
                };
                let mut nums = super::scan::numbers(s);
                if let Some(k) = nth {
                    if k == 0 || k > nums.len() {
                        bail!("{rows_are}) column {c} '{s}' has no number #{k}");
                    }
                    nums = vec![nums.swap_remove(k - 1)];
                }
                let what = |i: usize| format!("{rows_are}; number {} of {c} '{s}')", nth.unwrap_or(i + 1));
                return Ok((nums.iter().enumerate())
                    .map(|(i, n)| Expected {
                        value: n.value,
                        what: what(i),
                    })
                    .collect());
            }
            [c] => (column(rows[0], c)?, *c),
            [stat @ ("min" | "max" | "mean" | "pooled"), c] => {
                let xs = rows.iter().map(|m| column(m, c)).collect::<Result<Vec<_>>>()?;
                let ns: Vec<f64> = rows.iter().map(|m| m.est.n as f64).collect();
                let v = match *stat {
                    "min" => xs.iter().copied().fold(f64::INFINITY, f64::min),
                    "max" => xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                    "mean" => xs.iter().sum::<f64>() / xs.len() as f64,
                    _ => xs.iter().zip(&ns).map(|(x, n)| x * n).sum::<f64>() / ns.iter().sum::<f64>(),
                };
                (v, *c)
            }
            [fit @ ("slope" | "slope_low" | "slope_high" | "r2"), "by", x] => {
                let xs: Vec<f64> = rows.iter().map(|m| m.num(x)).collect();
                let ys: Vec<f64> = rows.iter().map(|m| m.est.value).collect();
                let f = emsl_analysis::stats::regression(&xs, &ys);
                let v = match *fit {
                    "slope" => f.slope,
                    "slope_low" => f.slope_ci.0,
                    "slope_high" => f.slope_ci.1,
                    _ => f.r2,
                };
                (v, "fit")
            }
            _ => bail!(
                "'{item}' is not a value: write COLUMN, min|max|mean|pooled COLUMN or \
                 slope|slope_low|slope_high|r2 by COLUMN, then optionally 'where k=v; k=v'"
            ),
        };
        let scale = scale.unwrap_or(if rate(column) { 100.0 } else { 1.0 });
        Ok(vec![Expected {
            value: value * scale,
            what: format!("{rows_are}; {head} x {scale})"),
        }])
    }
}

fn column(m: &Measurement, c: &str) -> Result<f64> {
    Ok(match c {
        "value" => m.est.value,
        "ci_low" => m.est.ci_low,
        "ci_high" => m.est.ci_high,
        "n" => m.est.n as f64,
        "seeds" => f64::from(m.est.seeds),
        _ => match m.var(c) {
            Some(Var::Num(x)) => *x,
            _ => bail!("no numeric column '{c}'"),
        },
    })
}

/// Whether row `m` has `v` in column `k` (`metric` or an independent variable; numbers compare as
/// numbers, so `examples=500` matches 500.0).
fn matches(m: &Measurement, k: &str, v: &str) -> bool {
    match (k, m.var(k)) {
        ("metric", _) => m.metric == v,
        (_, Some(Var::Str(s))) => s == v,
        (_, Some(Var::Num(x))) => v.parse::<f64>().is_ok_and(|y| y == *x),
        (_, None) => false,
    }
}

fn parse_where(w: &str) -> Result<Vec<(String, String)>> {
    w.split(';')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) => Ok((k.trim().to_owned(), v.trim().to_owned())),
            None => bail!("'{kv}' in a `where` is not 'column=value'"),
        })
        .collect()
}

/// The words an item can start with: a column or a statistic over one.
const HEADS: &[&str] = &[
    "value",
    "ci_low",
    "ci_high",
    "n",
    "seeds",
    "per_seed",
    "min",
    "max",
    "mean",
    "pooled",
    "slope",
    "slope_low",
    "slope_high",
    "r2",
];

/// `A minus B` split at the first ` minus ` that starts another item, so that a `where` value may
/// itself hold the word (`effect=misaligned teacher minus aligned control`).
fn split_minus(item: &str) -> Option<(&str, &str)> {
    item.match_indices(" minus ").find_map(|(at, m)| {
        let rest = &item[at + m.len()..];
        let head = rest.split_whitespace().next()?;
        HEADS.contains(&head).then(|| (&item[..at], rest))
    })
}

#[cfg(test)]
mod tests {
    use super::split_minus;

    #[test]
    fn minus_splits_only_before_another_item() {
        assert_eq!(
            split_minus("value where k=2 minus value where k=0"),
            Some(("value where k=2", "value where k=0"))
        );
        let effect = "value where effect=sft student: misaligned teacher minus aligned control";
        assert_eq!(split_minus(effect), None);
        assert_eq!(
            split_minus("value where effect=a minus b minus ci_low where effect=c minus d"),
            Some((
                "value where effect=a minus b",
                "ci_low where effect=c minus d"
            ))
        );
    }
}
