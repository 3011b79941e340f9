//! `plot --compare`: one PNG of several runs, the validation loss and accuracy per epoch side
//! by side (with each run's smoothed batch loss, thin, under its loss), one colour and one
//! marker shape per run, labelled by its letter at its last point, and below the charts a
//! legend of the settings in which the runs differ.

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use super::{Area, Drawn};
use crate::compare::RunLabel;
use crate::compare::curves::RunCurves;
use crate::compare::feed::Feed;
use crate::error::{Error, Result};

/// The runs' colours, in turn (Tableau's ten).
pub const RUN_COLOURS: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// Marker shapes, in turn: with ten colours, 30 runs before a colour and shape repeat.
const SHAPES: usize = 3;

/// Legend entries per row, and the height of a row.
const PER_ROW: usize = 3;
const ROW: u32 = 24;
const CHARTS_HEIGHT: u32 = 540;

/// The picture's size for `runs` runs: two charts side by side, the legend below.
pub fn compare_size(runs: usize) -> (u32, u32) {
    let rows = runs.div_ceil(PER_ROW).max(1) as u32;
    (1600, CHARTS_HEIGHT + 16 + rows * ROW)
}

fn colour(i: usize) -> RGBColor {
    let [r, g, b] = RUN_COLOURS[i % RUN_COLOURS.len()];
    RGBColor(r, g, b)
}

/// Writes the comparison of `dirs` to `out`.
pub(crate) fn write_compare(dirs: &[PathBuf], out: &Path) -> Result<()> {
    super::register_font();
    let labels = crate::compare::labels(dirs);
    let curves = Feed::read_all(dirs);
    for (dir, c) in dirs.iter().zip(&curves) {
        if c.batch_loss.is_empty() && c.val_loss.is_empty() && c.val_accuracy.is_empty() {
            let metrics = crate::rundir::RunDir::new(dir).metrics();
            return Err(Error::data(&metrics, "no training progress to plot yet"));
        }
    }
    super::render(out, compare_size(dirs.len()), |area| {
        draw(area, &labels, &curves)
    })
}

fn draw(area: &Area, labels: &[RunLabel], curves: &[RunCurves]) -> Drawn {
    area.fill(&WHITE).map_err(|e| e.to_string())?;
    let (charts, legend) = area.split_vertically(CHARTS_HEIGHT);
    let (loss, accuracy) = charts.split_horizontally(charts.dim_in_pixel().0 / 2);
    let x_max = curves
        .iter()
        .map(|c| c.epochs.max(c.epochs_done))
        .max()
        .unwrap_or(1)
        .max(1) as f64;
    let loss_points = |c: &RunCurves| c.val_loss.clone();
    let batch = |c: &RunCurves| c.batch_loss.clone();
    draw_chart(
        &loss,
        "Validation loss (thin: smoothed batch loss)",
        "loss",
        x_max,
        curves,
        labels,
        &loss_points,
        Some(&batch),
        (Some(0.0), None),
    )?;
    let acc_points = |c: &RunCurves| c.val_accuracy.clone();
    draw_chart(
        &accuracy,
        "Validation accuracy",
        "accuracy",
        x_max,
        curves,
        labels,
        &acc_points,
        None,
        (None, Some(1.0)),
    )?;
    draw_legend(&legend, labels)
}

/// The point marker of run `i` at `p`.
fn mark<DB: DrawingBackend>(
    chart: &mut ChartContext<
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    i: usize,
    points: &[(f64, f64)],
) -> Drawn {
    let style = colour(i).filled();
    let points = points.iter().copied();
    match i % SHAPES {
        0 => chart
            .draw_series(points.map(|p| Circle::new(p, 5, style)))
            .map(|_| ()),
        1 => chart
            .draw_series(points.map(|p| TriangleMarker::new(p, 7, style)))
            .map(|_| ()),
        _ => chart
            .draw_series(
                points.map(|p| EmptyElement::at(p) + Rectangle::new([(-4, -4), (4, 4)], style)),
            )
            .map(|_| ()),
    }
    .map_err(|e| e.to_string())
}

type Points<'a> = &'a dyn Fn(&RunCurves) -> Vec<(f64, f64)>;

#[allow(clippy::too_many_arguments)]
fn draw_chart(
    area: &Area,
    caption: &str,
    y_desc: &str,
    x_max: f64,
    curves: &[RunCurves],
    labels: &[RunLabel],
    points: Points,
    thin: Option<Points>,
    (floor, ceiling): (Option<f64>, Option<f64>),
) -> Drawn {
    let ys = curves.iter().flat_map(|c| {
        let mut v = points(c);
        if let Some(t) = thin {
            v.extend(t(c));
        }
        v.into_iter().map(|p| p.1)
    });
    let (lo, hi) = super::curves::range(ys, floor);
    let (lo, hi) = (
        lo.max(floor.unwrap_or(f64::NEG_INFINITY)),
        hi.min(ceiling.unwrap_or(f64::INFINITY)),
    );
    // Room on the right for each run's letter beside its last point.
    let mut chart = super::curves::axes(area, caption, y_desc, x_max, (lo, hi.max(lo + 1e-3)), 28)?;
    for (i, c) in curves.iter().enumerate() {
        if let Some(t) = thin {
            chart
                .draw_series(LineSeries::new(t(c), colour(i).mix(0.5).stroke_width(1)))
                .map_err(|e| e.to_string())?;
        }
        let p = points(c);
        chart
            .draw_series(LineSeries::new(p.clone(), colour(i).stroke_width(2)))
            .map_err(|e| e.to_string())?;
        mark(&mut chart, i, &p)?;
    }
    // Each run's letter beside its last point, moved down where it would overprint another's.
    let mut lasts: Vec<(usize, (f64, f64), i32)> = curves
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let last = *points(c).last()?;
            Some((i, last, chart.backend_coord(&last).1))
        })
        .collect();
    lasts.sort_by_key(|&(_, _, y)| y);
    let mut below = i32::MIN;
    for (i, last, y) in lasts {
        let top = (y - 18).max(below);
        below = top + 16;
        let font = ("sans-serif", 16).into_font().color(&colour(i));
        chart
            .draw_series([EmptyElement::at(last)
                + Text::new(labels[i].letter.to_string(), (7, top - y), font)])
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Each run's marker, letter, name and differing settings, three to a row.
fn draw_legend(area: &Area, labels: &[RunLabel]) -> Drawn {
    let width = area.dim_in_pixel().0 as i32 / PER_ROW as i32;
    let font = ("sans-serif", 16).into_font();
    for (i, label) in labels.iter().enumerate() {
        let x = 20 + width * (i % PER_ROW) as i32;
        let y = 8 + ROW as i32 * (i / PER_ROW) as i32;
        let style = colour(i).filled();
        let centre = (x + 10, y + 9);
        let drawn = match i % SHAPES {
            0 => area.draw(&Circle::new(centre, 5, style)),
            1 => area.draw(&TriangleMarker::new(centre, 7, style)),
            _ => area.draw(&Rectangle::new(
                [(centre.0 - 4, centre.1 - 4), (centre.0 + 4, centre.1 + 4)],
                style,
            )),
        };
        drawn.map_err(|e| e.to_string())?;
        area.draw(&PathElement::new(
            [(x, y + 9), (x + 20, y + 9)],
            colour(i).stroke_width(2),
        ))
        .map_err(|e| e.to_string())?;
        let text = format!("{}  {}  ({})", label.letter, label.differs, label.name);
        let max_chars = (width as usize - 40) / 8;
        let text = if text.chars().count() > max_chars {
            text.chars()
                .take(max_chars.saturating_sub(3))
                .collect::<String>()
                + "..."
        } else {
            text
        };
        area.draw(&Text::new(text, (x + 28, y), font.clone()))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}
