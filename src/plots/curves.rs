//! Loss and accuracy curves, with the learning-rate changes made by hand marked.

use std::path::Path;

use plotters::prelude::*;

use super::Area;
use crate::config::fmt_lr;
use crate::error::{Error, Result};
use crate::rundir::metrics::{Record, Tail, parse_all};
use crate::train::LrSource;

/// Weight of a new point in the smoothed batch loss.
const SMOOTHING: f64 = 0.1;

/// One epoch's numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EpochPoint {
    pub(crate) epoch: f64,
    pub(crate) loss: f64,
    pub(crate) accuracy: f64,
    pub(crate) val_loss: Option<f64>,
    pub(crate) val_accuracy: Option<f64>,
}

/// What the curves need from `metrics.jsonl`. x values are in epochs.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Metrics {
    /// (epoch, smoothed batch loss).
    pub(crate) batch_loss: Vec<(f64, f64)>,
    pub(crate) epochs: Vec<EpochPoint>,
    /// (epoch, from, to) of learning-rate changes made by hand.
    pub(crate) lr_changes: Vec<(f64, f64, f64)>,
}

/// Reads `metrics.jsonl`, streamed; lines that are not records (a writer killed mid-line)
/// are skipped.
pub(crate) fn read_metrics(path: &Path) -> Result<Metrics> {
    crate::fs::open_read(path, u64::MAX).map_err(|e| Error::io(path, "cannot read", e))?;
    let mut points = Points::default();
    Tail::read_all(path, |r| points.add(r));
    points.finish(path)
}

/// Parses the text of `metrics.jsonl`; `path` only names it in error messages.
pub fn parse_metrics(path: &Path, bytes: &[u8]) -> Result<Metrics> {
    let mut points = Points::default();
    parse_all(bytes, |r| points.add(r));
    points.finish(path)
}

/// What the curves need, gathered a record at a time; x values in steps until the steps per
/// epoch are known (from the first epoch record).
#[derive(Default)]
struct Points {
    per_epoch: Option<f64>,
    smoothed: Option<f64>,
    batch_loss: Vec<(f64, f64)>,
    epochs: Vec<EpochPoint>,
    lr_changes: Vec<(f64, f64, f64)>,
}

impl Points {
    fn add(&mut self, record: Record) {
        match record {
            Record::Batch { step, loss, .. } => {
                let loss = f64::from(loss);
                let s = self.smoothed.map_or(loss, |s| s + SMOOTHING * (loss - s));
                self.smoothed = Some(s);
                self.batch_loss.push((step as f64, s));
            }
            Record::Epoch(m) => {
                if self.per_epoch.is_none() && m.step > 0 {
                    self.per_epoch = Some(m.step as f64);
                }
                self.epochs.push(EpochPoint {
                    epoch: m.epoch as f64,
                    loss: m.loss,
                    accuracy: m.accuracy,
                    val_loss: m.val_loss,
                    val_accuracy: m.val_accuracy,
                });
            }
            Record::LrChange {
                step,
                from,
                to,
                source: LrSource::Command,
                ..
            } => self.lr_changes.push((step as f64, from, to)),
            _ => {}
        }
    }

    fn finish(self, path: &Path) -> Result<Metrics> {
        if self.batch_loss.is_empty() && self.epochs.is_empty() {
            return Err(Error::data(path, "no training progress to plot yet"));
        }
        let per_epoch = self.per_epoch.unwrap_or(1.0);
        let mut m = Metrics {
            batch_loss: self.batch_loss,
            epochs: self.epochs,
            lr_changes: self.lr_changes,
        };
        m.batch_loss.iter_mut().for_each(|p| p.0 /= per_epoch);
        m.lr_changes.iter_mut().for_each(|p| p.0 /= per_epoch);
        Ok(m)
    }
}

pub(super) fn range(values: impl Iterator<Item = f64>, floor: Option<f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let lo = floor.map_or(lo, |f| lo.min(f));
    // No points, or none finite: any range will do, but it must be a proper one.
    if !(lo.is_finite() && hi.is_finite() && hi >= lo) {
        return (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.05).max(1e-3);
    (lo - pad, hi + pad)
}

/// Where the labels of lines at pixel columns `lines` (each with its label's width) go: the
/// label's left edge relative to its line (right of it, or left of it where it would run past
/// `right`) and its row from the top, the first row where it overlaps no label before it.
fn place_labels(lines: &[(i32, i32)], right: i32) -> Vec<(i32, usize)> {
    const GAP: i32 = 4;
    let mut row_ends: Vec<i32> = Vec::new();
    lines
        .iter()
        .map(|&(x, width)| {
            let start = if x + GAP + width > right {
                x - GAP - width
            } else {
                x + GAP
            };
            let row = row_ends
                .iter()
                .position(|&end| end + GAP < start)
                .unwrap_or(row_ends.len());
            if row == row_ends.len() {
                row_ends.push(0);
            }
            row_ends[row] = start + width;
            (start - x, row)
        })
        .collect()
}

/// Vertical lines at the hand-made learning-rate changes, each labelled beside its line (not
/// across it), the labels stacked in rows where they would overprint.
fn draw_lr_changes<DB: DrawingBackend>(
    chart: &mut ChartContext<
        DB,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
    m: &Metrics,
    (lo, hi): (f64, f64),
) -> std::result::Result<(), String> {
    const ROW: i32 = 18;
    let style = RGBColor(200, 60, 0);
    let font = ("sans-serif", 14).into_font().color(&style);
    let labels: Vec<String> = m
        .lr_changes
        .iter()
        .map(|&(_, from, to)| format!("lr {} -> {}", fmt_lr(from), fmt_lr(to)))
        .collect();
    let area = chart.plotting_area();
    let right = area.get_pixel_range().0.end;
    let lines: Vec<(i32, i32)> = m
        .lr_changes
        .iter()
        .zip(&labels)
        .map(|(&(x, _, _), label)| {
            let width = area
                .estimate_text_size(label, &font)
                .map_or(7 * label.len() as i32, |(w, _)| w as i32);
            (chart.backend_coord(&(x, hi)).0, width)
        })
        .collect();
    for &(x, _, _) in &m.lr_changes {
        chart
            .draw_series(LineSeries::new([(x, lo), (x, hi)], style.stroke_width(1)))
            .map_err(|e| e.to_string())?;
    }
    // On white, over the lines: a later change's line never crosses an earlier label.
    for (((&(x, _, _), label), (dx, row)), &(_, width)) in m
        .lr_changes
        .iter()
        .zip(&labels)
        .zip(place_labels(&lines, right))
        .zip(&lines)
    {
        let top = 4 + ROW * row as i32;
        chart
            .draw_series([EmptyElement::at((x, hi))
                + Rectangle::new(
                    [(dx - 2, top - 1), (dx + width + 2, top + ROW - 3)],
                    WHITE.filled(),
                )
                + Text::new(label.clone(), (dx, top), font.clone())])
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// A chart of values per epoch.
pub(super) type Chart<'a, 'b> = ChartContext<
    'a,
    BitMapBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// A white chart with its caption, axes from 0 to `x_max` epochs and `lo..hi`, and a mesh;
/// `margin_right` pixels free right of the plot (16 elsewhere).
pub(super) fn axes<'a, 'b>(
    area: &'a Area<'b>,
    caption: &str,
    y_desc: &str,
    x_max: f64,
    (lo, hi): (f64, f64),
    margin_right: u32,
) -> std::result::Result<Chart<'a, 'b>, String> {
    area.fill(&WHITE).map_err(|e| e.to_string())?;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 24))
        .margin(16)
        .margin_right(margin_right)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, lo..hi)
        .map_err(|e| e.to_string())?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

/// One point per epoch, joined, in the legend as `label`; nothing when there are no points.
fn epoch_series(
    chart: &mut Chart,
    points: Vec<(f64, f64)>,
    colour: RGBColor,
    label: &str,
) -> std::result::Result<(), String> {
    if points.is_empty() {
        return Ok(());
    }
    chart
        .draw_series(LineSeries::new(points, colour.stroke_width(2)).point_size(4))
        .map_err(|e| e.to_string())?
        .label(label)
        .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
    Ok(())
}

/// The lr-change marks and the legend at `position`.
fn finish<'a, 'b: 'a>(
    chart: &mut Chart<'a, 'b>,
    m: &Metrics,
    y_range: (f64, f64),
    position: SeriesLabelPosition,
) -> std::result::Result<(), String> {
    draw_lr_changes(chart, m, y_range)?;
    chart
        .configure_series_labels()
        .position(position)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())
}

pub(super) fn draw_loss(area: &Area, m: &Metrics) -> std::result::Result<(), String> {
    let x_max = m
        .batch_loss
        .iter()
        .map(|p| p.0)
        .chain(m.epochs.iter().map(|e| e.epoch))
        .fold(1.0, f64::max);
    let ys = m.batch_loss.iter().map(|p| p.1).chain(
        m.epochs
            .iter()
            .flat_map(|e| [Some(e.loss), e.val_loss])
            .flatten(),
    );
    let (lo, hi) = range(ys, Some(0.0));
    let y_range = (lo.max(0.0), hi);
    let mut chart = axes(area, "Loss", "loss", x_max, y_range, 16)?;
    chart
        .draw_series(LineSeries::new(
            m.batch_loss.iter().copied(),
            BLUE.mix(0.6).stroke_width(1),
        ))
        .map_err(|e| e.to_string())?
        .label("batch loss (smoothed)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
    let train = m.epochs.iter().map(|e| (e.epoch, e.loss)).collect();
    epoch_series(&mut chart, train, BLUE, "training loss (epoch)")?;
    let val = m
        .epochs
        .iter()
        .filter_map(|e| Some((e.epoch, e.val_loss?)))
        .collect();
    epoch_series(&mut chart, val, RED, "validation loss")?;
    finish(&mut chart, m, y_range, SeriesLabelPosition::UpperRight)
}

pub(super) fn draw_accuracy(area: &Area, m: &Metrics) -> std::result::Result<(), String> {
    let x_max = m.epochs.iter().map(|e| e.epoch).fold(1.0, f64::max);
    let (lo, hi) = range(
        m.epochs
            .iter()
            .flat_map(|e| [Some(e.accuracy), e.val_accuracy])
            .flatten(),
        None,
    );
    let y_range = (lo.max(0.0), hi.min(1.0).max(lo + 1e-3));
    let mut chart = axes(area, "Accuracy", "accuracy", x_max, y_range, 16)?;
    let train = m.epochs.iter().map(|e| (e.epoch, e.accuracy)).collect();
    epoch_series(&mut chart, train, BLUE, "training")?;
    let val = m
        .epochs
        .iter()
        .filter_map(|e| Some((e.epoch, e.val_accuracy?)))
        .collect();
    epoch_series(&mut chart, val, RED, "validation")?;
    finish(&mut chart, m, y_range, SeriesLabelPosition::LowerRight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_never_empty_or_infinite() {
        assert_eq!(range(std::iter::empty(), Some(0.0)), (0.0, 1.0));
        assert_eq!(range([f64::NAN].into_iter(), None), (0.0, 1.0));
        let (lo, hi) = range([0.5, 0.7].into_iter(), None);
        assert!(lo < 0.5 && hi > 0.7);
    }

    #[test]
    fn a_run_without_progress_is_not_plotted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(
            &path,
            "{\"type\":\"failed\",\"error\":\"loss became NaN\"}\n",
        )
        .unwrap();
        let e = read_metrics(&path).unwrap_err().to_string();
        assert!(e.ends_with("no training progress to plot yet"), "{e}");
    }

    #[test]
    fn lr_labels_sit_beside_their_lines_and_never_overlap() {
        // Three changes close together, one near the right edge (at 1000).
        let placed = place_labels(&[(100, 80), (150, 80), (300, 80), (980, 80)], 1000);
        // The second would overprint the first: a row down; the last turns left of its line.
        assert_eq!(placed, vec![(4, 0), (4, 1), (4, 0), (-84, 0)]);
    }

    #[test]
    fn reads_metrics_and_skips_a_torn_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"type":"batch","epoch":1,"batch":50,"step":50,"loss":1.0,"accuracy":0.5,"lr":0.1}"#, "\n",
                r#"{"type":"lr_change","step":60,"epoch":1,"from":0.1,"to":0.05,"source":"command"}"#, "\n",
                r#"{"type":"lr_change","step":70,"epoch":1,"from":0.05,"to":0.025,"source":"schedule"}"#, "\n",
                r#"{"type":"epoch","epoch":1,"step":100,"loss":0.5,"accuracy":0.9,"val_loss":0.4,"val_accuracy":0.92,"lr":0.1,"seconds":1.0}"#, "\n",
                r#"{"type":"batch","step":150,"loss":0.2"#,
            ),
        )
        .unwrap();
        let m = read_metrics(&path).unwrap();
        assert_eq!(m.batch_loss, vec![(0.5, 1.0)]);
        assert_eq!(
            m.epochs,
            vec![EpochPoint {
                epoch: 1.0,
                loss: 0.5,
                accuracy: 0.9,
                val_loss: Some(0.4),
                val_accuracy: Some(0.92)
            }]
        );
        assert_eq!(
            m.lr_changes,
            vec![(0.6, 0.1, 0.05)],
            "only changes made by hand"
        );
    }
}
