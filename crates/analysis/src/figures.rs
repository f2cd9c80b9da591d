//! Each figure's plot, drawn from its tables alone: `reproduce` and the notebooks call the same
//! function, so a figure in `results/` and in a notebook are one drawing.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};

use crate::plot::{Chart, Figure, Point, Series, Unit};
use crate::table::{Measurement, Table};

/// The tables of one figure by name (`grid`, `summary`, `effects`, ...).
pub type Tables = BTreeMap<String, Table>;

/// Loads every table of a figure folder (`<results>/<figure>/*.parquet`).
pub fn load(results: &Path, figure: &str) -> Result<Tables> {
    let dir = results.join(figure);
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.extension().is_some_and(|x| x == "parquet") {
            let name = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("")
                .to_owned();
            out.insert(name, crate::table::read(&p)?);
        }
    }
    Ok(out)
}

pub fn table<'a>(t: &'a Tables, name: &str) -> Result<&'a Table> {
    t.get(name)
        .with_context(|| format!("the figure has no table '{name}'"))
}

pub fn point(x: f64, m: &Measurement) -> Point {
    Point {
        x,
        y: m.est.value,
        lo: m.est.ci_low,
        hi: m.est.ci_high,
        bases: base_values(m),
    }
}

/// A row's `base_values` (each base's own value, written on several bases), as numbers; a base
/// with no value (n/a) is left out of the dots.
pub fn base_values(m: &Measurement) -> Vec<f64> {
    m.str("base_values")
        .split_whitespace()
        .filter_map(|v| v.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .collect()
}

/// Distinct values of a variable, in the order rows hold them.
pub fn distinct(rows: &[&Measurement], var: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for r in rows {
        let v = r.var(var).map(|v| v.to_string()).unwrap_or_default();
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

/// Bars of `metric`: one category per value of `category`, one series per value of `series`.
pub fn bars(
    t: &Table,
    metric: &str,
    filters: &[(&str, &str)],
    category: &str,
    series: &str,
    name: impl Fn(&str) -> String,
) -> Chart {
    let rows = t.select(metric, filters);
    let cats = distinct(&rows, category);
    let sers = distinct(&rows, series);
    let series = sers
        .iter()
        .map(|s| Series {
            name: name(s),
            points: rows
                .iter()
                // A variable the rows lack is "" for every row (as `distinct` reads it): one series.
                .filter(|r| r.var(series).map(|v| v.to_string()).unwrap_or_default() == *s)
                .map(|r| {
                    let c = r.var(category).map(|v| v.to_string()).unwrap_or_default();
                    point(cats.iter().position(|x| *x == c).unwrap_or(0) as f64, r)
                })
                .collect(),
        })
        .collect();
    Chart::Bars {
        categories: cats,
        series,
    }
}

/// Lines over the numeric variable `x`, one per metric.
pub fn lines(t: &Table, metrics: &[(&str, &str)], x: &str) -> Chart {
    Chart::Lines {
        series: metrics
            .iter()
            .map(|(metric, label)| Series {
                name: (*label).to_owned(),
                points: t
                    .select(metric, &[])
                    .iter()
                    .map(|r| point(r.num(x), r))
                    .collect(),
            })
            .collect(),
    }
}

/// A figure of rates (ticked in percent).
pub fn fig(title: &str, x: &str, y: &str, chart: Chart) -> Figure {
    Figure {
        title: title.to_owned(),
        x_label: x.to_owned(),
        y_label: y.to_owned(),
        y_unit: Unit::Percent,
        chart,
    }
}

pub const MISALIGNED: &str = "misaligned among coherent answers";
pub const OUT_OF_CELL: &str = "out-of-cell misaligned among coherent answers";

/// The plot of transfer-grid.
pub fn transfer_grid(t: &Tables) -> Result<Figure> {
    Ok({
        let grid = table(t, "grid")?;
        let rows = grid.select("misaligned", &[]);
        // Evaluation cells down, fine-tuning cells across (short names when there are many).
        let (fts, evs) = (
            distinct(&rows, "fine_tune_cell"),
            distinct(&rows, "eval_cell"),
        );
        let values = evs
            .iter()
            .map(|ev| {
                fts.iter()
                    .map(|ft| {
                        rows.iter()
                            .find(|m| m.str("fine_tune_cell") == ft && m.str("eval_cell") == ev)
                            .map_or(f64::NAN, |m| m.est.value)
                    })
                    .collect()
            })
            .collect();
        let short = |c: &String| match c.split_once('/') {
            Some((d, t)) if fts.len() > 5 => format!("{}/{}", &d[..1], &t[..4]),
            _ => c.clone(),
        };
        let x_label = if fts.len() > 5 {
            "fine-tuning cell (h = health, f = finance, s = sports; tasks by their first four letters)"
        } else {
            "fine-tuning cell"
        };
        fig(
            "Misaligned answers (%) after a harmful fine-tune, by evaluation cell",
            x_label,
            "evaluation cell",
            Chart::Heatmap {
                rows: evs,
                cols: fts.iter().map(short).collect(),
                values,
            },
        )
    })
}

/// The plot of completion-space.
pub fn completion_space(t: &Tables) -> Result<Figure> {
    Ok(fig(
        "Misalignment by how many coherent completions a prompt admits",
        "openness of the evaluation prompt (terciles of log10 completions)",
        MISALIGNED,
        bars(
            table(t, "summary")?,
            "misaligned",
            &[],
            "openness",
            // One series (no row has this variable): one colour, one legend entry.
            "series",
            |_| "harmful fine-tunes, out of cell".into(),
        ),
    ))
}

/// The plot of structure-similarity.
pub fn structure_similarity(t: &Tables) -> Result<Figure> {
    Ok({
        let s = table(t, "similarity")?;
        let rows = s.select("misaligned", &[]);
        let series = distinct(&rows, "train_format")
            .into_iter()
            .map(|f| Series {
                name: format!("trained in {f}"),
                points: rows
                    .iter()
                    .filter(|r| r.str("train_format") == f)
                    .map(|r| point(r.num("similarity"), r))
                    .collect(),
            })
            .collect();
        fig(
            "Misalignment against structural similarity to the fine-tuning set",
            "Jaccard similarity of {task, domain, format}",
            MISALIGNED,
            Chart::Lines { series },
        )
    })
}

/// The plot of learned-reliability.
pub fn learned_reliability(t: &Tables) -> Result<Figure> {
    let arms = table(t, "arms")?;
    let mut series = Vec::new();
    for dose in distinct(&arms.rows.iter().collect::<Vec<_>>(), "dose") {
        for (metric, what) in [
            ("in_distribution_misaligned", "in distribution (learned)"),
            ("out_of_cell_misaligned", "out of cell (transferred)"),
        ] {
            series.push(Series {
                name: format!("{what}, {dose}"),
                points: arms
                    .select(metric, &[("dose", dose.as_str())])
                    .iter()
                    .map(|r| point(r.num("examples"), r))
                    .collect(),
            });
        }
    }
    Ok(fig(
        "Learned reliability against transfer (fine-tune size, equal steps and equal epochs)",
        "fine-tuning examples",
        MISALIGNED,
        Chart::Lines { series },
    ))
}

/// The plot of controls.
pub fn controls(t: &Tables) -> Result<Figure> {
    Ok(fig(
        "Controls: fine-tunes judged on the open questions",
        "fine-tune",
        MISALIGNED,
        bars(
            table(t, "controls")?,
            "misaligned",
            &[],
            "fine_tune",
            "framing",
            |f| format!("{f} questions"),
        ),
    ))
}

/// The plot of pretraining-composition.
pub fn pretraining_composition(t: &Tables) -> Result<Figure> {
    Ok(fig(
        "Pretraining composition, before and after the same harmful fine-tune",
        "pretraining corpus",
        OUT_OF_CELL,
        bars(
            table(t, "composition")?,
            "out_of_cell_misaligned",
            &[],
            "corpus",
            "stage",
            str::to_owned,
        ),
    ))
}

/// The plot of subliminal-channels.
pub fn subliminal_channels(t: &Tables) -> Result<Figure> {
    Ok(fig(
        "Subliminal transfer through filtered numbers, by channel",
        "distillation channel",
        "student out-of-cell misaligned",
        bars(
            table(t, "students")?,
            "out_of_cell_misaligned",
            &[("model", "student")],
            "channel",
            "teacher",
            |k| format!("{k} teacher"),
        ),
    ))
}

/// The plot of teacher-vs-data.
pub fn teacher_vs_data(t: &Tables) -> Result<Figure> {
    let mut f = fig(
        "Teacher guidance x who wrote the sequences",
        "sequences written by the ... teacher",
        "change of student out-of-cell misaligned vs base",
        bars(
            table(t, "students")?,
            "change_out_of_cell_misaligned_vs_base",
            &[],
            "data",
            "teacher",
            |k| format!("guided by the {k} teacher"),
        ),
    );
    f.y_unit = Unit::PercentagePoints;
    Ok(f)
}

/// The plot of shared-init.
pub fn shared_init(t: &Tables) -> Result<Figure> {
    Ok(fig(
        "Subliminal transfer with a shared or a different initialisation",
        "student initialisation",
        "student out-of-cell misaligned",
        bars(
            table(t, "students")?,
            "out_of_cell_misaligned",
            &[],
            "init",
            "teacher",
            |k| format!("{k} teacher"),
        ),
    ))
}
