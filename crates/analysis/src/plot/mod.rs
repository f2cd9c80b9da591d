//! Plots drawn from measurement tables with plotters: grouped bars, heat maps and lines, each with its
//! 95% intervals, rendered to SVG and PNG. Text uses the DejaVu Sans font shipped with this crate, so
//! the bitmaps are the same on every machine (no system font lookup).
//!
//! What a reader can trust at a glance: the value axis includes every value and every interval
//! (negative ones too), rates are ticked in percent (differences in percentage points), a legend sits
//! in headroom above the data instead of on it, heat maps carry their colour scale, whole-number axes
//! tick as whole numbers, and a chart with nothing to draw says so.

mod bars;
mod heatmap;
mod lines;

use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

const FONT: &[u8] = include_bytes!("../../fonts/DejaVuSans.ttf");
const SIZE: (u32, u32) = (960, 600);

fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if register_font("sans-serif", FontStyle::Normal, FONT).is_err() {
            panic!("the bundled DejaVu Sans font does not parse");
        }
    });
}

/// One bar or point with its interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub lo: f64,
    pub hi: f64,
    /// Each pretrained base's own value, drawn as a dot beside the estimate (empty on one base).
    pub bases: Vec<f64>,
}

/// A named series of points.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<Point>,
}

/// What a figure draws.
#[derive(Debug, Clone, PartialEq)]
pub enum Chart {
    /// Bars per category (x = category index), one bar per series.
    Bars {
        categories: Vec<String>,
        series: Vec<Series>,
    },
    /// Cells coloured by value in [0, 1]: `values[row][col]`.
    Heatmap {
        rows: Vec<String>,
        cols: Vec<String>,
        values: Vec<Vec<f64>>,
    },
    /// Lines over a numeric x.
    Lines { series: Vec<Series> },
}

/// What the values of a chart are (heat-map cells and the value axis of bars and lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Rates in [0, 1], ticked as percent.
    Percent,
    /// Differences of rates, ticked in percentage points.
    PercentagePoints,
}

impl Unit {
    /// A tick label for `v` on an axis whose ticks are `step` apart.
    fn tick(self, v: f64, step: f64) -> String {
        let decimals = if 100.0 * step >= 1.0 { 0 } else { 1 };
        let pp = 100.0 * v;
        match self {
            // Above 100% is the legend's headroom, not a rate.
            Unit::Percent if v > 1.0 + 1e-9 => String::new(),
            Unit::Percent => format!("{pp:.decimals$}%"),
            Unit::PercentagePoints if pp.abs() < 1e-9 => "0 pp".to_owned(),
            Unit::PercentagePoints => format!("{pp:+.decimals$} pp"),
        }
    }
}

/// A chart with its title and axis labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub y_unit: Unit,
    pub chart: Chart,
}

/// A rendered figure.
pub struct Rendered {
    pub svg: String,
    pub png: Vec<u8>,
}

const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(127, 127, 127),
];

/// The value axis: from the lowest to the highest value or interval bound (0 always included), with
/// `legend_rows` rows of headroom above the data for the legend.
fn y_range(series: &[Series], legend_rows: usize) -> (f64, f64) {
    let finite = series
        .iter()
        .flat_map(|s| {
            s.points
                .iter()
                .flat_map(|p| [p.y, p.lo, p.hi].into_iter().chain(p.bases.iter().copied()))
        })
        .filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((0.0f64, 0.0f64), |(a, b), v| (a.min(v), b.max(v)));
    let span = if hi > lo { hi - lo } else { 1.0 };
    let below = if lo < 0.0 { 0.05 * span } else { 0.0 };
    let above = span * (0.08 + 0.07 * legend_rows as f64);
    (lo - below, lo.max(hi).max(lo + span) + above)
}

/// The distance between value-axis ticks plotters draws for about `count` ticks over `range`.
fn tick_step(range: (f64, f64), count: usize) -> f64 {
    let raw = (range.1 - range.0) / count.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag)
}

/// Whether no point of any series has a value.
fn nothing_to_draw(series: &[Series]) -> bool {
    series
        .iter()
        .all(|s| s.points.iter().all(|p| !p.y.is_finite()))
}

/// Says in the middle of the plotting area why a chart is empty.
fn say_empty<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>, what: &str) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (w, h) = root.dim_in_pixel();
    root.draw(&Text::new(
        what.to_owned(),
        (w as i32 / 2, h as i32 / 2),
        ("sans-serif", 20)
            .into_font()
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(|e| anyhow!("drawing '{what}': {e:?}"))
}

/// The end of a bars or lines chart: its legend (in the headroom `y_range` left for it, upper right)
/// and, when no point has a value, the note that says why the chart is empty.
fn finish<'a, DB: DrawingBackend + 'a>(
    root: &DrawingArea<DB, Shift>,
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    series: &[Series],
    legend: bool,
    title: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    if legend {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .label_font(("sans-serif", 13))
            .draw()
            .map_err(|e| anyhow!("drawing '{title}': {e:?}"))?;
    }
    if nothing_to_draw(series) {
        say_empty(root, EMPTY)?;
    }
    Ok(())
}

/// What an empty chart says: every rate of the figure was measured on no coherent answers.
const EMPTY: &str = "no coherent answers: nothing to draw";

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, fig: &Figure) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing '{}': {e:?}", fig.title);
    root.fill(&WHITE).map_err(err)?;
    match &fig.chart {
        Chart::Bars { categories, series } => bars::draw(&root, fig, categories, series)?,
        Chart::Heatmap { rows, cols, values } => heatmap::draw(&root, fig, rows, cols, values)?,
        Chart::Lines { series } => lines::draw(&root, fig, series)?,
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Renders a figure to SVG and PNG (the same drawing code for both).
pub fn render(fig: &Figure) -> Result<Rendered> {
    register();
    let mut svg = String::new();
    draw(
        SVGBackend::with_string(&mut svg, SIZE).into_drawing_area(),
        fig,
    )?;
    let (w, h) = SIZE;
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    draw(
        BitMapBackend::with_buffer(&mut rgb, SIZE).into_drawing_area(),
        fig,
    )?;
    let mut png_bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut png_bytes, w, h);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        let mut writer = enc.write_header()?;
        writer.write_image_data(&rgb)?;
    }
    Ok(Rendered {
        svg,
        png: png_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(x: f64, y: f64) -> Point {
        Point {
            x,
            y,
            lo: y * 0.8,
            hi: y * 1.2,
            bases: vec![y * 0.9, y * 1.1],
        }
    }

    #[test]
    fn every_chart_renders_the_same_bytes_twice() {
        let series = vec![
            Series {
                name: "harmful".into(),
                points: vec![point(0.0, 0.3), point(1.0, 0.1)],
            },
            Series {
                name: "benign".into(),
                points: vec![point(0.0, 0.05), point(1.0, 0.04)],
            },
        ];
        let charts = [
            Chart::Bars {
                categories: vec!["same task".into(), "same domain".into()],
                series: series.clone(),
            },
            Chart::Heatmap {
                rows: vec!["a".into(), "b".into()],
                cols: vec!["x".into(), "y".into()],
                values: vec![vec![0.1, 0.9], vec![0.5, f64::NAN]],
            },
            Chart::Lines { series },
        ];
        for chart in charts {
            let fig = Figure {
                title: "test".into(),
                x_label: "x".into(),
                y_label: "misaligned".into(),
                y_unit: Unit::Percent,
                chart,
            };
            let (a, b) = (render(&fig).unwrap(), render(&fig).unwrap());
            assert!(a.svg.contains("<svg") && a.svg.contains("test"));
            assert_eq!(&a.png[1..4], b"PNG");
            assert_eq!((a.svg, a.png), (b.svg, b.png));
        }
    }
}
