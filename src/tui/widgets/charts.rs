//! Loss and accuracy charts.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style as CellStyle};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, LegendPosition, Paragraph};

use super::pane;
use crate::tui::app::App;

/// (name, points, colour, dense marker?) of one series.
struct Series<'a> {
    name: &'a str,
    points: &'a [(f64, f64)],
    color: Color,
    dense: bool,
}

/// The y range of a chart: `floor` is always shown and bounds it below (0 for losses); `ceiling`
/// only bounds it above (1 for accuracies).
struct YLimits {
    floor: Option<f64>,
    ceiling: Option<f64>,
}

fn draw_chart(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    title: &str,
    series: &[Series],
    limits: YLimits,
) {
    let block = pane(title, app.style);
    // The range follows the latest 90% of the run, so the first steep drop of the loss does
    // not squash the rest of the curve against the axis.
    let x_end = series
        .iter()
        .flat_map(|s| s.points.last())
        .map(|p| p.0)
        .fold(0.0, f64::max);
    let all = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|p| p.0 >= 0.1 * x_end);
    let (mut lo, mut hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    if !lo.is_finite() {
        let inner = block.inner(area);
        frame.render_widget(block, area);
        frame.render_widget(Paragraph::new("waiting for the first batches..."), inner);
        return;
    }
    if let Some(f) = limits.floor {
        lo = lo.min(f);
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (
        (lo - pad).max(limits.floor.unwrap_or(f64::NEG_INFINITY)),
        (hi + pad).min(limits.ceiling.unwrap_or(f64::INFINITY)),
    );
    let x_max = (app.run.epochs.max(1)) as f64;
    let datasets: Vec<Dataset> = series
        .iter()
        .filter(|s| !s.points.is_empty())
        .map(|s| {
            let marker = match (app.style.ascii, s.dense) {
                (true, true) => Marker::Custom('.'),
                (true, false) => Marker::Custom('*'),
                (false, true) => Marker::Braille,
                (false, false) => Marker::Dot,
            };
            let style = if app.style.color {
                CellStyle::default().fg(s.color)
            } else {
                CellStyle::default()
            };
            Dataset::default()
                .name(s.name)
                .marker(marker)
                .graph_type(if s.dense {
                    GraphType::Line
                } else {
                    GraphType::Scatter
                })
                .style(style)
                .data(s.points)
        })
        .collect();
    let fmt = |v: f64| {
        if hi < 10.0 {
            format!("{v:.3}")
        } else {
            format!("{v:.1}")
        }
    };
    let chart = Chart::new(datasets)
        .block(block)
        .legend_position(Some(LegendPosition::TopRight))
        .hidden_legend_constraints((
            ratatui::layout::Constraint::Percentage(60),
            ratatui::layout::Constraint::Percentage(60),
        ))
        .x_axis(Axis::default().bounds([0.0, x_max]).labels(vec![
            Line::from("0"),
            Line::from(format!("{} epochs", app.run.epochs)),
        ]))
        .y_axis(
            Axis::default()
                .bounds([lo, hi])
                .labels(vec![Line::from(fmt(lo)), Line::from(fmt(hi))]),
        );
    frame.render_widget(chart, area);
}

pub(crate) fn draw_loss(frame: &mut Frame, area: Rect, app: &App) {
    let series = [
        Series {
            name: "batch loss (smoothed)",
            points: &app.run.batch_loss,
            color: Color::Cyan,
            dense: true,
        },
        Series {
            name: "val loss",
            points: &app.run.val_loss,
            color: Color::Yellow,
            dense: false,
        },
    ];
    let limits = YLimits {
        floor: Some(0.0),
        ceiling: None,
    };
    draw_chart(frame, area, app, "loss", &series, limits);
}

pub(crate) fn draw_accuracy(frame: &mut Frame, area: Rect, app: &App) {
    let series = [
        Series {
            name: "train acc",
            points: &app.run.train_accuracy,
            color: Color::Green,
            dense: false,
        },
        Series {
            name: "val acc",
            points: &app.run.val_accuracy,
            color: Color::Magenta,
            dense: false,
        },
    ];
    if app.run.train_accuracy.is_empty() {
        let block = pane("accuracy", app.style);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let text = match app.run.smoothed_accuracy {
            Some(a) => format!("batch accuracy (smoothed): {a:.4}\nper-epoch points after epoch 1"),
            None => "waiting for the first epoch...".into(),
        };
        frame.render_widget(Paragraph::new(text), inner);
        return;
    }
    // Padding the range must not label the axis with an accuracy above 1.
    let limits = YLimits {
        floor: None,
        ceiling: Some(1.0),
    };
    draw_chart(frame, area, app, "accuracy", &series, limits);
}
