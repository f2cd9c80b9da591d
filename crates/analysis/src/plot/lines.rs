//! Lines over a numeric x, each point with its 95% interval and, on several bases, one dot per base.

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

use super::{finish, tick_step, y_range, Figure, Series, PALETTE};

pub(super) fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure,
    series: &[Series],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing '{}': {e:?}", fig.title);
    let xs: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.x))
        .collect();
    let (x_lo, x_hi) = xs
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
            (a.min(*x), b.max(*x))
        });
    let (x_lo, x_hi) = if x_lo.is_finite() && x_hi > x_lo {
        (x_lo, x_hi)
    } else {
        (0.0, 1.0)
    };
    // Steps and example counts are whole numbers: tick them so ("10", not "10.0").
    let whole = xs.iter().all(|x| x.fract() == 0.0);
    let pad = (x_hi - x_lo) * 0.05;
    let (lo, hi) = y_range(series, series.len());
    let step = tick_step((lo, hi), 10);
    let mut chart = ChartBuilder::on(root)
        .caption(&fig.title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(x_lo - pad..x_hi + pad, lo..hi)
        .map_err(err)?;
    let x_label = |x: &f64| {
        if whole {
            if x.fract() == 0.0 {
                format!("{x:.0}")
            } else {
                String::new()
            }
        } else {
            format!("{x}")
        }
    };
    chart
        .configure_mesh()
        .x_label_formatter(&x_label)
        .y_labels(10)
        .y_label_formatter(&|v| fig.y_unit.tick(*v, step))
        .x_desc(&fig.x_label)
        .y_desc(&fig.y_label)
        .label_style(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    for (s, ser) in series.iter().enumerate() {
        let colour = PALETTE[s % PALETTE.len()];
        let drawn = ser.points.iter().filter(|p| p.y.is_finite());
        chart
            .draw_series(LineSeries::new(
                drawn.clone().map(|p| (p.x, p.y)),
                colour.stroke_width(2),
            ))
            .map_err(err)?
            .label(&ser.name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 14, y)], colour));
        chart
            .draw_series(
                drawn
                    .filter(|p| p.lo.is_finite() && p.hi.is_finite())
                    .map(|p| ErrorBar::new_vertical(p.x, p.lo, p.y, p.hi, colour.filled(), 6)),
            )
            .map_err(err)?;
        // One hollow dot per base at each point (the unit of the interval is the base).
        chart
            .draw_series(ser.points.iter().flat_map(|p| {
                p.bases
                    .iter()
                    .map(move |v| Circle::new((p.x, *v), 3, colour.stroke_width(1)))
            }))
            .map_err(err)?;
    }
    finish(root, &mut chart, series, true, &fig.title)
}
