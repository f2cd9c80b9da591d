//! Plots drawn from measurement tables with plotters: grouped bars, heat maps and lines, each with its
//! 95% intervals, rendered to SVG and PNG. Text uses the DejaVu Sans font shipped with this crate, so
//! the bitmaps are the same on every machine (no system font lookup).

use std::sync::Once;

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use plotters::style::{register_font, FontStyle};

const FONT: &[u8] = include_bytes!("../fonts/DejaVuSans.ttf");
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

/// A chart with its title and axis labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
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

fn y_max(series: &[Series]) -> f64 {
    let m = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.hi.max(p.y)))
        .filter(|v| v.is_finite())
        .fold(0.0f64, f64::max);
    if m <= 0.0 {
        1.0
    } else {
        (m * 1.1).min(if m <= 1.0 { 1.0 } else { m * 1.1 })
    }
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, fig: &Figure) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing '{}': {e:?}", fig.title);
    root.fill(&WHITE).map_err(err)?;
    match &fig.chart {
        Chart::Bars { categories, series } => {
            let n = categories.len().max(1) as f64;
            let mut chart = ChartBuilder::on(&root)
                .caption(&fig.title, ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(60)
                .y_label_area_size(60)
                .build_cartesian_2d(-0.5..n - 0.5, 0.0..y_max(series))
                .map_err(err)?;
            let label = |x: &f64| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    categories.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            };
            chart
                .configure_mesh()
                .disable_x_mesh()
                .x_labels(categories.len().max(1))
                .x_label_formatter(&label)
                .x_desc(&fig.x_label)
                .y_desc(&fig.y_label)
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(err)?;
            let width = 0.8 / series.len().max(1) as f64;
            for (s, ser) in series.iter().enumerate() {
                let colour = PALETTE[s % PALETTE.len()];
                let offset = -0.4 + width * (s as f64 + 0.5);
                chart
                    .draw_series(ser.points.iter().map(|p| {
                        let x = p.x + offset;
                        Rectangle::new(
                            [(x - width / 2.0, 0.0), (x + width / 2.0, p.y)],
                            colour.filled(),
                        )
                    }))
                    .map_err(err)?
                    .label(&ser.name)
                    .legend(move |(x, y)| {
                        Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled())
                    });
                chart
                    .draw_series(ser.points.iter().map(|p| {
                        ErrorBar::new_vertical(p.x + offset, p.lo, p.y, p.hi, BLACK.filled(), 6)
                    }))
                    .map_err(err)?;
            }
            if series.len() > 1 {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .label_font(("sans-serif", 13))
                    .draw()
                    .map_err(err)?;
            }
        }
        Chart::Heatmap { rows, cols, values } => {
            let (nr, nc) = (rows.len().max(1) as f64, cols.len().max(1) as f64);
            let mut chart = ChartBuilder::on(&root)
                .caption(&fig.title, ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(60)
                .y_label_area_size(150)
                .build_cartesian_2d(-0.5..nc - 0.5, -0.5..nr - 0.5)
                .map_err(err)?;
            let pick = |names: &[String], x: f64| {
                let i = x.round();
                if (x - i).abs() < 1e-6 && i >= 0.0 {
                    names.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            };
            chart
                .configure_mesh()
                .disable_mesh()
                .x_labels(cols.len().max(1))
                .y_labels(rows.len().max(1))
                .x_label_formatter(&|x| pick(cols, *x))
                .y_label_formatter(&|y| pick(rows, *y))
                .x_label_style(("sans-serif", 11))
                .y_label_style(("sans-serif", 11))
                .x_desc(&fig.x_label)
                .y_desc(&fig.y_label)
                .draw()
                .map_err(err)?;
            let cells = values
                .iter()
                .enumerate()
                .flat_map(|(r, row)| row.iter().enumerate().map(move |(c, v)| (r, c, *v)));
            chart
                .draw_series(cells.map(|(r, c, v)| {
                    let t = if v.is_finite() {
                        v.clamp(0.0, 1.0)
                    } else {
                        0.0
                    };
                    // White (0) to dark red (1).
                    let shade = RGBColor(
                        255 - (80.0 * t) as u8,
                        255 - (235.0 * t) as u8,
                        255 - (235.0 * t) as u8,
                    );
                    Rectangle::new(
                        [
                            (c as f64 - 0.5, r as f64 - 0.5),
                            (c as f64 + 0.5, r as f64 + 0.5),
                        ],
                        shade.filled(),
                    )
                }))
                .map_err(err)?;
            let labels = values
                .iter()
                .enumerate()
                .flat_map(|(r, row)| row.iter().enumerate().map(move |(c, v)| (r, c, *v)));
            chart
                .draw_series(labels.filter(|(_, _, v)| v.is_finite()).map(|(r, c, v)| {
                    Text::new(
                        format!("{:.0}", 100.0 * v),
                        (c as f64, r as f64),
                        ("sans-serif", 11)
                            .into_font()
                            .color(&if v > 0.6 { WHITE } else { BLACK })
                            .pos(Pos::new(HPos::Center, VPos::Center)),
                    )
                }))
                .map_err(err)?;
        }
        Chart::Lines { series } => {
            let xs = series.iter().flat_map(|s| s.points.iter().map(|p| p.x));
            let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(x), b.max(x))
            });
            let (lo, hi) = if lo.is_finite() && hi > lo {
                (lo, hi)
            } else {
                (0.0, 1.0)
            };
            let pad = (hi - lo) * 0.05;
            let mut chart = ChartBuilder::on(&root)
                .caption(&fig.title, ("sans-serif", 22))
                .margin(12)
                .x_label_area_size(50)
                .y_label_area_size(60)
                .build_cartesian_2d(lo - pad..hi + pad, 0.0..y_max(series))
                .map_err(err)?;
            chart
                .configure_mesh()
                .x_desc(&fig.x_label)
                .y_desc(&fig.y_label)
                .label_style(("sans-serif", 13))
                .draw()
                .map_err(err)?;
            for (s, ser) in series.iter().enumerate() {
                let colour = PALETTE[s % PALETTE.len()];
                chart
                    .draw_series(LineSeries::new(
                        ser.points.iter().map(|p| (p.x, p.y)),
                        colour.stroke_width(2),
                    ))
                    .map_err(err)?
                    .label(&ser.name)
                    .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colour));
                chart
                    .draw_series(
                        ser.points.iter().map(|p| {
                            ErrorBar::new_vertical(p.x, p.lo, p.y, p.hi, colour.filled(), 6)
                        }),
                    )
                    .map_err(err)?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 13))
                .draw()
                .map_err(err)?;
        }
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
                chart,
            };
            let (a, b) = (render(&fig).unwrap(), render(&fig).unwrap());
            assert!(a.svg.contains("<svg") && a.svg.contains("test"));
            assert_eq!(&a.png[1..4], b"PNG");
            assert_eq!((a.svg, a.png), (b.svg, b.png));
        }
    }
}
