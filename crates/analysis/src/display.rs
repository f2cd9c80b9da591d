//! Rich output in evcxr notebooks: a value with an `evcxr_display` method is shown as HTML or SVG
//! (evcxr's display protocol: the content between `EVCXR_BEGIN_CONTENT mime` and `EVCXR_END_CONTENT`
//! on stdout).

use crate::plot::{render, Figure};
use crate::table::{Table, Var};

/// An HTML table of strings. (No `Debug`: evcxr shows a value's `Debug` form instead of calling
/// `evcxr_display` when it has one.)
#[derive(Clone, PartialEq)]
pub struct Html {
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl Html {
    pub fn new(headers: &[&str], rows: Vec<Vec<String>>) -> Html {
        Html {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows,
        }
    }

    pub fn to_html(&self) -> String {
        let mut s = String::from("<table><thead><tr>");
        for h in &self.headers {
            s.push_str(&format!("<th>{}</th>", escape(h)));
        }
        s.push_str("</tr></thead><tbody>");
        for r in &self.rows {
            s.push_str("<tr>");
            for c in r {
                s.push_str(&format!("<td>{}</td>", escape(c)));
            }
            s.push_str("</tr>");
        }
        s.push_str("</tbody></table>");
        s
    }

    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT text/html\n{}\nEVCXR_END_CONTENT",
            self.to_html()
        );
    }
}

fn fmt_num(x: f64) -> String {
    if x.is_nan() {
        "n/a".to_owned()
    } else if x.fract() == 0.0 && x.abs() < 1e9 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

impl Table {
    /// The table for a notebook cell: variables, metric, value, interval, n, seeds.
    pub fn html(&self) -> Html {
        let mut headers: Vec<String> = self
            .rows
            .first()
            .map(|r| r.vars.iter().map(|(k, _)| k.clone()).collect())
            .unwrap_or_default();
        headers.extend(["metric", "value", "95% CI", "n", "seeds"].map(str::to_owned));
        let rows = self
            .rows
            .iter()
            .map(|m| {
                let mut r: Vec<String> = m
                    .vars
                    .iter()
                    .map(|(_, v)| match v {
                        Var::Str(s) => s.clone(),
                        Var::Num(x) => fmt_num(*x),
                    })
                    .collect();
                r.push(m.metric.clone());
                r.push(fmt_num(m.est.value));
                r.push(format!(
                    "[{}, {}]",
                    fmt_num(m.est.ci_low),
                    fmt_num(m.est.ci_high)
                ));
                r.push(m.est.n.to_string());
                r.push(m.est.seeds.to_string());
                r
            })
            .collect();
        Html { headers, rows }
    }
}

/// A figure's effects as CLAIMS.md shows them: each difference in percentage points with its interval,
/// the per-seed values, the number of bases, the anchor and the verdict of [`crate::verdict::verdict`]
/// (with what the interval alone gives where one base held it back).
pub fn effects(t: &Table) -> Html {
    let rows = t
        .rows
        .iter()
        .map(|m| {
            let value = if m.metric == "effect" {
                m.est.pp()
            } else {
                format!("{} ({})", fmt_num(m.est.value), m.metric)
            };
            vec![
                m.str("claim").to_owned(),
                m.str("effect").to_owned(),
                value,
                m.str("per_seed").to_owned(),
                m.est.n.to_string(),
                crate::verdict::bases(m).to_string(),
                m.str("anchor").to_owned(),
                crate::verdict::described(m),
            ]
        })
        .collect();
    Html::new(
        &[
            "claim", "effect", "kit", "per seed", "n", "bases", "anchor", "verdict",
        ],
        rows,
    )
}

/// A drawn plot shown inline (the same drawing as `results/<figure>/plot.svg`).
pub struct Svg(pub String);

impl Svg {
    pub fn evcxr_display(&self) {
        println!(
            "EVCXR_BEGIN_CONTENT image/svg+xml\n{}\nEVCXR_END_CONTENT",
            self.0
        );
    }
}

impl Figure {
    /// The plot as SVG for a notebook cell.
    pub fn svg(&self) -> anyhow::Result<Svg> {
        Ok(Svg(render(self)?.svg))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_escapes_and_keeps_the_shape() {
        let h = Html::new(&["a", "b"], vec![vec!["<x>".into(), "1 & 2".into()]]);
        assert_eq!(
            h.to_html(),
            "<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>&lt;x&gt;</td><td>1 &amp; 2</td></tr></tbody></table>"
        );
    }
}
