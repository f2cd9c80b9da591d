//! A heat map: cells coloured by a rate from white (0%) to dark red (100%), each labelled with its
//! value, and the colour scale beside it.

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{say_empty, Figure, EMPTY};

/// The colour of a rate in [0, 1]: white to dark red; no value is light grey.
fn shade(v: f64) -> RGBColor {
    if !v.is_finite() {
        return RGBColor(225, 225, 225);
    }
    let t = v.clamp(0.0, 1.0);
    RGBColor(
        255 - (80.0 * t) as u8,
        255 - (235.0 * t) as u8,
        255 - (235.0 * t) as u8,
    )
}

/// Width in pixels of the colour scale on the right.
const SCALE: u32 = 110;

pub(super) fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    fig: &Figure,
    rows: &[String],
    cols: &[String],
    values: &[Vec<f64>],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing '{}': {e:?}", fig.title);
    let (w, _) = root.dim_in_pixel();
    let (main, scale) = root.split_horizontally(w - SCALE);
    let (nr, nc) = (rows.len().max(1) as f64, cols.len().max(1) as f64);
    let mut chart = ChartBuilder::on(&main)
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
    let cells = || {
        values
            .iter()
            .enumerate()
            .flat_map(|(r, row)| row.iter().enumerate().map(move |(c, v)| (r, c, *v)))
    };
    chart
        .draw_series(cells().map(|(r, c, v)| {
            let (x, y) = (c as f64, r as f64);
            Rectangle::new([(x - 0.5, y - 0.5), (x + 0.5, y + 0.5)], shade(v).filled())
        }))
        .map_err(err)?;
    chart
        .draw_series(cells().map(|(r, c, v)| {
            let text = if v.is_finite() {
                format!("{:.0}", 100.0 * v)
            } else {
                "n/a".to_owned()
            };
            Text::new(
                text,
                (c as f64, r as f64),
                ("sans-serif", 11)
                    .into_font()
                    .color(&if v > 0.6 { WHITE } else { BLACK })
                    .pos(Pos::new(HPos::Center, VPos::Center)),
            )
        }))
        .map_err(err)?;
    // The colour scale: 0% at the bottom, 100% at the top, with n/a below it.
    let (_, h) = scale.dim_in_pixel();
    let (top, bottom, left) = (60i32, h as i32 - 110, 20i32);
    let steps = 50;
    for i in 0..steps {
        let v = i as f64 / (steps - 1) as f64;
        let y = bottom - ((bottom - top) as f64 * v) as i32;
        let dy = ((bottom - top) / steps).max(1) + 1;
        scale
            .draw(&Rectangle::new(
                [(left, y - dy), (left + 24, y)],
                shade(v).filled(),
            ))
            .map_err(err)?;
    }
    let font = ("sans-serif", 12).into_font();
    for (v, label) in [(0.0, "0%"), (0.5, "50%"), (1.0, "100%")] {
        let y = bottom - ((bottom - top) as f64 * v) as i32;
        scale
            .draw(&Text::new(label, (left + 30, y - 6), font.clone()))
            .map_err(err)?;
    }
    scale
        .draw(&Rectangle::new(
            [(left, bottom + 16), (left + 24, bottom + 30)],
            shade(f64::NAN).filled(),
        ))
        .map_err(err)?;
    scale
        .draw(&Text::new("n/a", (left + 30, bottom + 17), font.clone()))
        .map_err(err)?;
    scale
        .draw(&Text::new("misaligned", (left - 8, top - 30), font))
        .map_err(err)?;
    if values.iter().flatten().all(|v| !v.is_finite()) {
        say_empty(&main, EMPTY)?;
    }
    Ok(())
}
