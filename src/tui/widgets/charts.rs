//! Loss and accuracy charts.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Style as CellStyle};
use ratatui::symbols::Marker;
use ratatui::text::Line;
use ratatui::text::Span;
use ratatui::widgets::{Axis, Chart, Dataset, GraphType, Paragraph, Sparkline};

use super::{bare_pane, pane, pane_of};
use crate::lr::fmt_lr;
use crate::tui::app::{App, Pane};

/// One series: its name in the legend, points, colour, and whether it is a dense line (else
/// points). Each series also has its own marker, so that they are told apart without colour.
struct Series<'a> {
    name: &'a str,
    points: &'a [(f64, f64)],
    color: Color,
    dense: bool,
    /// The point marker (sparse series); dense ones are lines.
    glyph: char,
}

/// The mark of a training and a validation point in one cell.
fn both_glyph(ascii: bool) -> char {
    if ascii { '#' } else { '⊗' }
}

/// The mark drawn where the learning rate changed.
const LR_MARK: char = '┊';

impl Series<'_> {
    fn marker(&self, ascii: bool) -> Marker {
        match (ascii, self.dense) {
            (true, true) => Marker::Custom('.'),
            (false, true) => Marker::Braille,
            (_, false) => Marker::Custom(self.glyph),
        }
    }

    /// What stands for the series in the legend.
    fn legend_glyph(&self, ascii: bool) -> char {
        match (ascii, self.dense) {
            (true, true) => '.',
            (false, true) => '⠤',
            (_, false) => self.glyph,
        }
    }
}

/// `0.0283` as `.0283`: four decimals, no leading zero (values below 10).
fn short(v: f64) -> String {
    let s = format!("{v:.4}");
    s.strip_prefix("0.").map_or(s.clone(), |r| format!(".{r}"))
}

/// The legend, for the pane's title: each series' marker, name (with `names`) and latest
/// value, and the learning-rate mark when the rate changed.
fn legend_spans(app: &App, series: &[Series], lr_marks: bool, names: bool) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    for s in series.iter().filter(|s| !s.points.is_empty()) {
        let style = if app.style.color {
            CellStyle::default().fg(s.color)
        } else {
            CellStyle::default()
        };
        let latest = short(s.points.last().map_or(0.0, |p| p.1));
        let glyph = s.legend_glyph(app.style.ascii);
        let text = if names {
            format!("{glyph}{} {latest} ", s.name)
        } else {
            format!("{glyph}{latest} ")
        };
        spans.push(Span::styled(text, style));
    }
    if lr_marks {
        spans.push(Span::raw(format!("{LR_MARK}lr ")));
    }
    spans
}

/// The y range of a chart: `floor` is always shown and bounds it below (0 for losses); `ceiling`
/// only bounds it above (1 for accuracies).
struct YLimits {
    floor: Option<f64>,
    ceiling: Option<f64>,
    /// A log scale (`y`, the loss chart): values are drawn as their logarithm, and values
    /// of zero or less are left out.
    log: bool,
}

/// How many epochs the charts show back from the newest point after `x` ("last N epochs").
pub(crate) const RECENT_EPOCHS: usize = 10;

/// The epochs shown: the run so far, or after `x` the last [`RECENT_EPOCHS`] up to where the
/// run is now (the same window for every chart, so that they line up). The run so far ends
/// at the next multiple of [`RECENT_EPOCHS`] epochs ahead of it (the whole run when it is
/// that short), so that a long run's first epochs are not a sliver at the left of an axis
/// drawn to its last epoch.
fn x_window(app: &App) -> (f64, f64) {
    let epochs = app.run.epochs.max(1);
    let now = app.run.epoch.max(1) as f64 - 1.0 + app.run.epoch_progress();
    let ahead = (now.floor() as usize + 1).next_multiple_of(RECENT_EPOCHS);
    let whole = (0.0, ahead.min(epochs) as f64);
    if !app.ui.recent_epochs {
        return whole;
    }
    let n = RECENT_EPOCHS as f64;
    if now <= n {
        (0.0, n.min(whole.1))
    } else {
        (now - n, now)
    }
}

/// What the title says of the chart's state: ` (log) last 10 epochs`, or shorter
/// ` (log) last10`.
fn state_note(app: &App, log: bool, short: bool) -> String {
    let mut note = String::new();
    if log {
        note.push_str(" (log)");
    }
    if app.ui.recent_epochs {
        note.push_str(&if short {
            format!(" last{RECENT_EPOCHS}")
        } else {
            format!(" last {RECENT_EPOCHS} epochs")
        });
    }
    note
}

/// An axis label of a log-scale value: three significant figures.
fn log_label(v: f64) -> String {
    if (0.01..100.0).contains(&v) {
        format!("{v:.3}")
    } else {
        format!("{v:.1e}")
    }
}

fn draw_chart(
    frame: &mut Frame,
    area: Rect,
    app: &App,
    (title, which): (&str, Pane),
    series: &[Series],
    limits: YLimits,
) {
    let lr_marks = app.run.lr_points.len() > 1;
    let selected = app.ui.pane == which;
    let head_of = |title: &str, note: &str| {
        if selected {
            format!(" [{} {title}{note}] ", which.key())
        } else {
            format!(" {} {title}{note} ", which.key())
        }
    };
    // Short of room, the title gives way in this order: the rate mark, the pane's long name
    // (accuracy: acc), the long form of the chart's state, the series' names.
    let short_title = title.replace("accuracy", "acc");
    let heads = [
        head_of(title, &state_note(app, limits.log, false)),
        head_of(&short_title, &state_note(app, limits.log, false)),
        head_of(&short_title, &state_note(app, limits.log, true)),
    ];
    let width = |spans: &[Span]| spans.iter().map(|s| s.width()).sum::<usize>();
    let fits = |head: &String, spans: &[Span]| head.len() + width(spans) + 2 <= area.width as usize;
    // `both`: the mark of a training and a validation point in one cell is in the legend.
    let make_block = |both: bool| {
        let with_both = |mut spans: Vec<Span<'static>>| {
            if both {
                spans.push(Span::raw(format!("{}both ", both_glyph(app.style.ascii))));
            }
            spans
        };
        // The names matter more than the word for the shared mark (its glyph is both marks).
        let named = [
            with_both(legend_spans(app, series, lr_marks, true)),
            with_both(legend_spans(app, series, false, true)),
            legend_spans(app, series, false, true),
        ];
        let unnamed = with_both(legend_spans(app, series, false, false));
        let (head, spans) = heads
            .iter()
            .flat_map(|h| named.iter().map(move |l| (h, l)))
            .chain(heads.iter().map(|h| (h, &unnamed)))
            .find(|(h, l)| fits(h, l))
            .unwrap_or((&heads[2], &unnamed));
        let mut title_spans = vec![Span::raw(head.clone())];
        title_spans.extend(spans.clone());
        bare_pane(app.style).title(Line::from(title_spans))
    };
    let x_end = series
        .iter()
        .flat_map(|s| s.points.last())
        .map(|p| p.0)
        .fold(0.0, f64::max);
    let (x_lo, x_hi) = x_window(app);
    // The points shown: those in the window, as their logarithm on a log scale.
    let mut shown: Vec<Vec<(f64, f64)>> = series
        .iter()
        .map(|s| {
            s.points
                .iter()
                .filter(|p| p.0 >= x_lo && p.0 <= x_hi)
                .filter(|p| !limits.log || p.1 > 0.0)
                .map(|&(x, y)| (x, if limits.log { y.log10() } else { y }))
                .collect()
        })
        .collect();
    // The range follows the latest 90% of the run (of the window), so the first steep drop of
    // the loss does not squash the rest of the curve against the axis.
    let all = shown
        .iter()
        .flatten()
        .filter(|p| p.0 >= x_lo + 0.1 * (x_end - x_lo));
    let (mut lo, mut hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.1), hi.max(p.1))
    });
    if !lo.is_finite() {
        let block = make_block(false);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        frame.render_widget(Paragraph::new("waiting for the first batches..."), inner);
        return;
    }
    // On a log scale the floor (0) is not shown: it is minus infinity.
    let (floor, ceiling) = if limits.log {
        (None, limits.ceiling.map(f64::log10))
    } else {
        (limits.floor, limits.ceiling)
    };
    if let Some(f) = floor {
        lo = lo.min(f);
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (
        (lo - pad).max(floor.unwrap_or(f64::NEG_INFINITY)),
        (hi + pad).min(ceiling.unwrap_or(f64::INFINITY)),
    );
    // Two point series (training and validation accuracy) whose points of an epoch fall in
    // one cell: one mark for both, so that neither hides the other without colour.
    let sparse: Vec<usize> = (0..series.len()).filter(|&i| !series[i].dense).collect();
    let mut both: Vec<(f64, f64)> = Vec::new();
    if let [i, j] = sparse[..] {
        let rows = area.height.saturating_sub(4).max(1) as f64;
        // The top edge (y = hi) is drawn in the top row.
        let row = |y: f64| (((y - lo) / (hi - lo) * rows).floor() as i64).min(rows as i64 - 1);
        let same: Vec<(f64, f64)> = shown[j]
            .iter()
            .filter(|q| shown[i].iter().any(|p| p.0 == q.0 && row(p.1) == row(q.1)))
            .copied()
            .collect();
        if !same.is_empty() {
            for k in [i, j] {
                shown[k].retain(|p| !same.iter().any(|q| q.0 == p.0));
            }
            both = same;
        }
    }
    let block = make_block(!both.is_empty());
    // The rate changes: dotted vertical lines, drawn first so the data stays on top.
    let marks: Vec<(f64, f64)> = app
        .run
        .lr_changes()
        .filter(|&x| x >= x_lo && x <= x_hi)
        .flat_map(|x| (0..=40).map(move |k| (x, lo + (hi - lo) * k as f64 / 40.0)))
        .collect();
    let mut datasets = vec![
        Dataset::default()
            .marker(Marker::Custom(LR_MARK))
            .graph_type(GraphType::Scatter)
            .style(if app.style.color {
                CellStyle::default().fg(Color::DarkGray)
            } else {
                CellStyle::default()
            })
            .data(&marks),
    ];
    datasets.extend(
        series
            .iter()
            .zip(&shown)
            .filter(|(_, p)| !p.is_empty())
            .map(|(s, points)| {
                let marker = s.marker(app.style.ascii);
                let style = if app.style.color {
                    CellStyle::default().fg(s.color)
                } else {
                    CellStyle::default()
                };
                Dataset::default()
                    .marker(marker)
                    .graph_type(if s.dense {
                        GraphType::Line
                    } else {
                        GraphType::Scatter
                    })
                    .style(style)
                    .data(points)
            }),
    );
    if !both.is_empty() {
        datasets.push(
            Dataset::default()
                .marker(Marker::Custom(both_glyph(app.style.ascii)))
                .graph_type(GraphType::Scatter)
                .data(&both),
        );
    }
    let fmt = |v: f64| {
        if limits.log {
            log_label(10f64.powf(v))
        } else if hi < 10.0 {
            format!("{v:.3}")
        } else {
            format!("{v:.1}")
        }
    };
    let x_labels = if app.ui.recent_epochs {
        vec![
            Line::from(format!("{x_lo:.0}")),
            Line::from(format!("epoch {x_hi:.0}")),
        ]
    } else {
        vec![
            Line::from("0"),
            Line::from(crate::report::count(x_hi as usize, "epoch")),
        ]
    };
    // The legend is in the title: nothing is drawn over the data.
    let chart = Chart::new(datasets)
        .block(block)
        .legend_position(None)
        .x_axis(Axis::default().bounds([x_lo, x_hi]).labels(x_labels))
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
            name: "batch",
            points: &app.run.batch_loss,
            color: Color::Cyan,
            dense: true,
            glyph: '.',
        },
        Series {
            name: "val",
            points: &app.run.val_loss,
            color: Color::Yellow,
            dense: false,
            glyph: '×',
        },
    ];
    let limits = YLimits {
        floor: Some(0.0),
        ceiling: None,
        log: app.ui.log_loss,
    };
    draw_chart(frame, area, app, ("loss", Pane::Loss), &series, limits);
}

pub(crate) fn draw_accuracy(frame: &mut Frame, area: Rect, app: &App) {
    let series = [
        Series {
            name: "train",
            points: &app.run.train_accuracy,
            color: Color::Green,
            dense: false,
            glyph: '•',
        },
        Series {
            name: "val",
            points: &app.run.val_accuracy,
            color: Color::Magenta,
            dense: false,
            glyph: '×',
        },
    ];
    if app.run.train_accuracy.is_empty() {
        let block = pane_of("accuracy", Pane::Accuracy, app);
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
        log: false,
    };
    draw_chart(
        frame,
        area,
        app,
        ("accuracy", Pane::Accuracy),
        &series,
        limits,
    );
}

/// The learning rate over the run on a log scale, one column per slice of the epochs axis,
/// as bars (`area` is the whole pane, borders included).
pub(crate) fn draw_lr(frame: &mut Frame, area: Rect, app: &App) {
    let points = &app.run.lr_points;
    let (lo, hi) = points
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    let title = if points.is_empty() {
        "lr (log)".to_string()
    } else if fmt_lr(lo) == fmt_lr(hi) {
        format!("lr (log) {}", fmt_lr(app.run.lr))
    } else {
        let full = format!(
            "lr (log) {} to {}, now {}",
            fmt_lr(hi),
            fmt_lr(lo),
            fmt_lr(app.run.lr)
        );
        // Borders and the spaces around the title take 4 columns; the current rate is what
        // must not be cut (an 80-column pane showed `now 0.`).
        if full.chars().count() + 4 <= area.width as usize {
            full
        } else {
            format!("lr (log) now {}", fmt_lr(app.run.lr))
        }
    };
    let block = pane(&title, app.style);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    if points.is_empty() || inner.width == 0 || inner.height == 0 {
        return;
    }
    let levels = inner.height as u64 * 8;
    let (x_lo, x_hi) = x_window(app);
    let x_span = x_hi - x_lo;
    let now = app
        .run
        .batch_loss
        .last()
        .map_or(points[points.len() - 1].0, |p| p.0);
    let span = (hi.ln() - lo.ln()).max(1e-12);
    let data: Vec<u64> = (0..inner.width)
        .map(|c| {
            let x = x_lo + (c as f64 + 0.5) / inner.width as f64 * x_span;
            if x > now + 0.5 * x_span / inner.width as f64 || x < points[0].0 {
                return 0;
            }
            let lr = points
                .iter()
                .take_while(|p| p.0 <= x)
                .last()
                .map_or(points[0].1, |p| p.1);
            if fmt_lr(lo) == fmt_lr(hi) {
                // One rate so far: a bar half high.
                return levels / 2;
            }
            // Never 0 (empty): the lowest rate is still a bar.
            1 + ((lr.ln() - lo.ln()) / span * (levels - 1) as f64).round() as u64
        })
        .collect();
    let mut spark = Sparkline::default().data(&data).max(levels);
    if app.style.ascii {
        spark = spark.bar_set(ratatui::symbols::bar::Set {
            full: "#",
            seven_eighths: "#",
            three_quarters: "=",
            five_eighths: "=",
            half: "-",
            three_eighths: "-",
            one_quarter: "_",
            one_eighth: "_",
            empty: " ",
        });
    }
    if app.style.color {
        spark = spark.style(CellStyle::default().fg(Color::Blue));
    }
    frame.render_widget(spark, inner);
}
