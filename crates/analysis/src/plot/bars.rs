//! Grouped bars: one group per category, one bar per series, each with its 95% interval and, on
//! several bases, one dot per base.

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{finish, tick_step, y_range, Figure, Series, PALETTE};

pub(super) fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure,
    categories: &[String],
    series: &[Series],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing '{}': {e:?}", fig.title);
    let n = categories.len().max(1) as f64;
    let legend = series.len() > 1;
    let (lo, hi) = y_range(series, if legend { series.len() } else { 0 });
    let step = tick_step((lo, hi), 10);
    let mut chart = ChartBuilder::on(root)
        .caption(&fig.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(60)
        .y_label_area_size(70)
        .build_cartesian_2d(-0.5..n - 0.5, lo..hi)
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
        .y_labels(10)
        .y_label_formatter(&|v| fig.y_unit.tick(*v, step))
        .x_desc(&fig.x_label)
        .y_desc(&fig.y_label)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    if lo < 0.0 {
        chart
            .draw_series(LineSeries::new([(-0.5, 0.0), (n - 0.5, 0.0)], BLACK))
            .map_err(err)?;
    }
    let width = 0.8 / series.len().max(1) as f64;
    for (s, ser) in series.iter().enumerate() {
        let colour = PALETTE[s % PALETTE.len()];
        let offset = -0.4 + width * (s as f64 + 0.5);
        chart
            .draw_series(ser.points.iter().filter(|p| p.y.is_finite()).map(|p| {
                let x = p.x + offset;
                Rectangle::new(
                    [(x - width / 2.0, 0.0), (x + width / 2.0, p.y)],
                    colour.filled(),
                )
            }))
            .map_err(err)?
            .label(&ser.name)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], colour.filled()));
        chart
            .draw_series(
                ser.points
                    .iter()
                    .filter(|p| p.y.is_finite() && p.lo.is_finite() && p.hi.is_finite())
                    .map(|p| {
                        ErrorBar::new_vertical(p.x + offset, p.lo, p.y, p.hi, BLACK.filled(), 6)
                    }),
            )
            .map_err(err)?;
        // One hollow dot per base, over the bar (the unit of the interval is the base).
        chart
            .draw_series(ser.points.iter().flat_map(|p| {
                p.bases
                    .iter()
                    .map(move |v| Circle::new((p.x + offset, *v), 3, BLACK.stroke_width(1)))
            }))
            .map_err(err)?;
    }
    finish(root, &mut chart, series, legend, &fig.title)
}
