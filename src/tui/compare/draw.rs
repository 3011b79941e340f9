//! Drawing the comparison: the loss and accuracy charts with every run overlaid (validation
//! points marked by the run's letter, lines in its colour), the runs' table (which is the
//! legend: letter, name, the settings it differs in, its numbers) and a footer. Legends sit in
//! pane titles, never over the data.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style as CellStyle};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Chart, Clear, Dataset, GraphType, Paragraph};

use super::{CompareApp, Pane};
use crate::compare::curves::RunCurves;
use crate::tui::widgets::bare_pane;
use crate::tui::widgets::overlays::centered;

/// The runs' colours, in turn (all among the 16 ANSI colours).
const COLOURS: [Color; 6] = [
    Color::Cyan,
    Color::Yellow,
    Color::Magenta,
    Color::Green,
    Color::LightRed,
    Color::LightBlue,
];

/// Run `i`'s colour.
pub(crate) fn colour(i: usize) -> Color {
    COLOURS[i % COLOURS.len()]
}

fn run_style(app: &CompareApp, i: usize) -> CellStyle {
    if app.style.color {
        CellStyle::default().fg(colour(i))
    } else {
        CellStyle::default()
    }
}

/// `0.0283` as `.0283`; four decimals (one for values of 10 and more).
fn short(v: f64) -> String {
    if v.abs() >= 10.0 {
        return format!("{v:.1}");
    }
    let s = format!("{v:.4}");
    s.strip_prefix("0.").map_or(s.clone(), |r| format!(".{r}"))
}

fn percent(v: Option<f64>) -> String {
    v.map_or("-".into(), |a| format!("{:.2}%", 100.0 * a))
}

pub(crate) fn draw(frame: &mut Frame, app: &CompareApp) {
    let [body, footer] =
        Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(frame.area());
    if app.zoomed {
        draw_pane(frame, body, app, app.pane);
    } else {
        // The table as tall as its rows, but leaving the charts at least 10 rows.
        let rows = app.labels.len() as u16 + 3;
        let table = rows
            .min(body.height.saturating_sub(10))
            .max(4.min(body.height));
        let [charts, runs] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(table)]).areas(body);
        let [loss, accuracy] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(charts);
        draw_pane(frame, loss, app, Pane::Loss);
        draw_pane(frame, accuracy, app, Pane::Accuracy);
        draw_pane(frame, runs, app, Pane::Runs);
    }
    frame.render_widget(Paragraph::new(footer_line(app, footer.width)), footer);
    if app.help {
        draw_help(frame, app);
    }
    if app.style.ascii {
        crate::tui::widgets::ascii::asciify(frame.buffer_mut());
    }
}

fn draw_pane(frame: &mut Frame, area: Rect, app: &CompareApp, pane: Pane) {
    match pane {
        Pane::Loss => draw_chart(frame, area, app, &LOSS),
        Pane::Accuracy => draw_chart(frame, area, app, &ACCURACY),
        Pane::Runs => draw_table(frame, area, app),
    }
}

/// The pane's name in its title: `1 loss`, `[1 loss]` when selected.
fn head(app: &CompareApp, pane: Pane, name: &str) -> String {
    if app.pane == pane {
        format!(" [{} {name}] ", pane.key())
    } else {
        format!(" {} {name} ", pane.key())
    }
}

/// One of a run's curves.
type Curve = fn(&RunCurves) -> &[(f64, f64)];

/// What a chart shows of each run.
struct ChartKind {
    pane: Pane,
    name: &'static str,
    /// Per-epoch validation points, marked with the run's letter.
    points: Curve,
    /// A line under them in the run's colour (with colour only): the smoothed batch loss
    /// (`None`: the points joined).
    line: Option<Curve>,
    floor: Option<f64>,
    ceiling: Option<f64>,
}

const LOSS: ChartKind = ChartKind {
    pane: Pane::Loss,
    name: "val loss",
    points: |r| &r.val_loss,
    line: Some(|r| &r.batch_loss),
    floor: Some(0.0),
    ceiling: None,
};

const ACCURACY: ChartKind = ChartKind {
    pane: Pane::Accuracy,
    name: "val acc",
    points: |r| &r.val_accuracy,
    line: None,
    floor: None,
    ceiling: Some(1.0),
};

/// The chart's title: its name, then each run's letter and latest value in its colour, as
/// far as they fit in `width`.
fn chart_title(app: &CompareApp, kind: &ChartKind, width: usize) -> Line<'static> {
    let head = head(app, kind.pane, kind.name);
    let mut spans = vec![Span::raw(head.clone())];
    let mut used = head.len();
    let values: Vec<Span> = app
        .runs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let last = (kind.points)(r).last()?.1;
            let text = format!("{} {} ", app.labels[i].letter, short(last));
            Some(Span::styled(text, run_style(app, i)))
        })
        .collect();
    let all: usize = values.iter().map(|s| s.width()).sum();
    if used + all <= width {
        spans.extend(values);
        used += all;
    }
    // What the lines are, where there is room to say it.
    let note = "(lines: batch) ";
    if kind.line.is_some() && app.style.color && used + note.len() <= width {
        spans.push(Span::raw(note));
    }
    Line::from(spans)
}

fn draw_chart(frame: &mut Frame, area: Rect, app: &CompareApp, kind: &ChartKind) {
    let title = chart_title(app, kind, area.width.saturating_sub(2) as usize);
    let block = bare_pane(app.style).title(title);
    let lines = app.style.color;
    let x_max = app
        .runs
        .iter()
        .map(|r| r.epochs.max(r.epochs_done))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    // Runs' points at the same epoch would hide one another: each run's sit a column to the
    // left of the next run's, where the epochs are far enough apart for that.
    let n = app.runs.len();
    let column = x_max / (area.width.saturating_sub(8).max(1)) as f64;
    let dodge = if n as f64 * column < 1.0 { column } else { 0.0 };
    let points: Vec<Vec<(f64, f64)>> = app
        .runs
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let dx = (n - 1 - i) as f64 * dodge;
            (kind.points)(r)
                .iter()
                .map(|&(x, y)| ((x - dx).max(0.0), y))
                .collect()
        })
        .collect();
    let line = |i: usize| -> &[(f64, f64)] {
        match kind.line {
            Some(f) => f(&app.runs[i]),
            None => &points[i],
        }
    };
    // Only what is drawn sets the range; the first tenth of the run is left out of it, so a
    // steep first drop does not squash the rest against the axis.
    let drawn = |i: usize| -> Vec<(f64, f64)> {
        let mut v = points[i].clone();
        if lines {
            v.extend_from_slice(line(i));
        }
        v
    };
    let x_end = (0..n)
        .flat_map(|i| drawn(i).last().copied())
        .map(|p| p.0)
        .fold(0.0, f64::max);
    let (mut lo, mut hi) = (0..n)
        .flat_map(drawn)
        .filter(|p| p.0 >= 0.1 * x_end)
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
            (lo.min(p.1), hi.max(p.1))
        });
    if !lo.is_finite() {
        let inner = block.inner(area);
        frame.render_widget(block, area);
        let text = if lines || kind.pane == Pane::Accuracy {
            "waiting for the first epoch..."
        } else {
            "waiting for the first epoch... (batch loss: in colour only)"
        };
        frame.render_widget(Paragraph::new(text), inner);
        return;
    }
    if let Some(f) = kind.floor {
        lo = lo.min(f);
    }
    if hi - lo < 1e-9 {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    let (lo, hi) = (
        (lo - pad).max(kind.floor.unwrap_or(f64::NEG_INFINITY)),
        (hi + pad).min(kind.ceiling.unwrap_or(f64::INFINITY)),
    );
    let mut datasets = Vec::new();
    if lines {
        let marker = if app.style.ascii {
            Marker::Custom('.')
        } else {
            Marker::Braille
        };
        for i in 0..n {
            datasets.push(
                Dataset::default()
                    .marker(marker)
                    .graph_type(GraphType::Line)
                    .style(run_style(app, i))
                    .data(line(i)),
            );
        }
    }
    // The letters last: on top of every line.
    for (i, p) in points.iter().enumerate() {
        datasets.push(
            Dataset::default()
                .marker(Marker::Custom(app.labels[i].letter))
                .graph_type(GraphType::Scatter)
                .style(run_style(app, i).add_modifier(Modifier::BOLD))
                .data(p),
        );
    }
    let fmt = |v: f64| {
        if hi < 10.0 {
            format!("{v:.3}")
        } else {
            format!("{v:.1}")
        }
    };
    let epochs = x_max as usize;
    let chart = Chart::new(datasets)
        .block(block)
        .legend_position(None)
        .x_axis(Axis::default().bounds([0.0, x_max]).labels(vec![
            Line::from("0"),
            Line::from(crate::report::count(epochs, "epoch")),
        ]))
        .y_axis(
            Axis::default()
                .bounds([lo, hi])
                .labels(vec![Line::from(fmt(lo)), Line::from(fmt(hi))]),
        );
    frame.render_widget(chart, area);
}

/// Cuts `text` to `width` characters, marking the cut.
fn fit(text: &str, width: usize, ascii: bool) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut s: String = text.chars().take(width - 1).collect();
    s.push(if ascii { '~' } else { '…' });
    s
}

/// The table's columns after the letter, name and differing settings.
const NUMBERS: [&str; 6] = ["epoch", "val loss", "val acc", "best val", "test", "status"];

/// Which of [`NUMBERS`] a narrow table leaves out, in turn (never the status).
const DROP_ORDER: [usize; 5] = [1, 2, 3, 0, 4];

fn numbers(r: &RunCurves) -> [String; 6] {
    [
        format!("{}/{}", r.epochs_done, r.epochs.max(r.epochs_done)),
        r.val_loss
            .last()
            .map_or("-".into(), |p| format!("{:.4}", p.1)),
        percent(r.val_accuracy.last().map(|p| p.1)),
        percent(r.best_val()),
        percent(r.test_accuracy()),
        if r.gone { "gone".into() } else { r.status() },
    ]
}

fn draw_table(frame: &mut Frame, area: Rect, app: &CompareApp) {
    let title = head(app, Pane::Runs, "table");
    let block = bare_pane(app.style).title(title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let cells: Vec<[String; 6]> = app.runs.iter().map(numbers).collect();
    let widths: Vec<usize> = (0..NUMBERS.len())
        .map(|c| {
            cells
                .iter()
                .map(|r| r[c].len())
                .chain([NUMBERS[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    // A text column's width: its longest entry or its heading.
    let text_w = |text: fn(&crate::compare::RunLabel) -> &str, heading: &str| {
        app.labels
            .iter()
            .map(|l| text(l).chars().count())
            .chain([heading.len()])
            .max()
            .unwrap_or(heading.len())
    };
    let (name_w, diff_w) = (
        text_w(|l| &l.name, "name"),
        text_w(|l| &l.differs, "differs"),
    );
    // The differing settings are the legend: short of room, numbers give way first (the
    // latest ones before the best and the test), then the name, to a few characters.
    let mut kept: Vec<usize> = (0..NUMBERS.len()).collect();
    let room = |kept: &[usize]| {
        let fixed: usize = 2 + kept.iter().map(|&c| widths[c] + 2).sum::<usize>();
        (inner.width as usize).saturating_sub(fixed + 2)
    };
    for drop in DROP_ORDER {
        if room(&kept) >= name_w.min(8) + diff_w {
            break;
        }
        kept.retain(|&c| c != drop);
    }
    let room = room(&kept);
    let (name_w, diff_w) = if name_w + diff_w <= room {
        (name_w, diff_w)
    } else {
        let name = name_w.min(8).min(room / 2).max(room.saturating_sub(diff_w));
        (name, room.saturating_sub(name))
    };
    let ascii = app.style.ascii;
    let row = |letter: Span<'static>, name: &str, diff: &str, nums: &[String]| {
        let mut spans = vec![letter, Span::raw(" ")];
        let mut text = format!(
            "{:<name_w$}  {:<diff_w$}",
            fit(name, name_w, ascii),
            fit(diff, diff_w, ascii)
        );
        for &c in &kept {
            let (n, w) = (&nums[c], widths[c]);
            text.push_str(&format!("  {n:<w$}"));
        }
        spans.push(Span::raw(text.trim_end().to_string()));
        Line::from(spans)
    };
    let header: Vec<String> = NUMBERS.iter().map(|s| s.to_string()).collect();
    let mut lines = vec![row(Span::raw(" "), "name", "differs", &header)];
    let shown = (inner.height as usize).saturating_sub(1);
    let more = app.labels.len().saturating_sub(shown);
    let shown = if more > 0 {
        shown.saturating_sub(1)
    } else {
        shown
    };
    for (i, label) in app.labels.iter().enumerate().take(shown) {
        let letter = Span::styled(
            label.letter.to_string(),
            run_style(app, i).add_modifier(Modifier::BOLD),
        );
        lines.push(row(letter, &label.name, &label.differs, &cells[i]));
    }
    if app.labels.len() > shown {
        lines.push(Line::from(format!(
            "  {} more: z zooms this table",
            app.labels.len() - shown
        )));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

/// Keys, and how many runs are in which state.
fn footer_line(app: &CompareApp, width: u16) -> Line<'static> {
    let keys = if app.zoomed {
        " q quit  z/Esc back  1-3 pane  ? help"
    } else {
        " q quit  1-3 pane  z zoom  ? help"
    };
    let mut states: Vec<(String, usize)> = Vec::new();
    for r in &app.runs {
        let s = if r.gone { "gone".into() } else { r.status() };
        match states.iter_mut().find(|(name, _)| *name == s) {
            Some((_, n)) => *n += 1,
            None => states.push((s, 1)),
        }
    }
    let states: Vec<String> = states.iter().map(|(s, n)| format!("{n} {s}")).collect();
    let mut text = format!(
        "{keys}   {}: {}",
        crate::report::count(app.runs.len(), "run"),
        states.join(", ")
    );
    if let Some(notice) = &app.notice
        && text.len() + 3 + notice.len() <= width as usize
    {
        text.push_str("   ");
        text.push_str(notice);
    }
    Line::from(fit(&text, width as usize, app.style.ascii))
}

fn draw_help(frame: &mut Frame, app: &CompareApp) {
    let lines: Vec<Line> = [
        "Each run has a letter and a colour (the table's first column):",
        "its letter marks its validation loss and accuracy at each epoch;",
        "in colour, lines show the smoothed batch loss (loss pane) and",
        "join the validation accuracies (accuracy pane).",
        "Titles give each run's latest value; the table, its numbers and",
        "the settings in which it differs from the others.",
        "",
        "1 2 3    select the loss, accuracy or table pane (Tab: next)",
        "z        zoom the selected pane (z or Esc returns)",
        "?        this help (any key closes it)",
        "q        quit (the runs go on)",
    ]
    .into_iter()
    .map(Line::from)
    .collect();
    let w = lines.iter().map(|l| l.width() as u16).max().unwrap_or(20) + 4;
    let area = centered(frame.area(), w, lines.len() as u16 + 2);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines).block(bare_pane(app.style).title(" keys ")),
        area,
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::RunLabel;
    use crate::compare::feed::Update;
    use crate::rundir::metrics::Record;
    use crate::tui::app::{Palette, Style};
    use crossterm::event::{KeyCode, KeyEvent};

    /// Three runs of a sweep: two finished, one still in its third epoch.
    fn sweep(style: Style) -> CompareApp {
        let labels = ["000-lr=0.1", "001-lr=0.03", "002-lr=0.01"]
            .iter()
            .enumerate()
            .map(|(i, name)| RunLabel {
                letter: crate::compare::letter(i),
                name: name.to_string(),
                differs: format!("lr={}", &name[7..]),
            })
            .collect();
        let mut app = CompareApp::new(labels, style);
        let start = r#"{"type":"start","epochs":3,"batches_per_epoch":100,"train_samples":3200,"validation_samples":100,"test_samples":100,"lr":0.1,"optimizer":"sgd","layers":[],"params":10,"threads":1}"#;
        let accuracies = [
            [0.92, 0.946, 0.904],
            [0.93, 0.953, 0.949],
            [0.91, 0.95, 0.959],
        ];
        for (run, acc) in accuracies.iter().enumerate() {
            let mut lines = vec![start.to_string()];
            let epochs = if run == 2 { 2 } else { 3 };
            for (e, a) in acc.iter().enumerate().take(epochs) {
                for b in [50, 100] {
                    let loss = 1.0 / (e as f64 + b as f64 / 100.0 + 0.5 * run as f64 + 1.0);
                    lines.push(format!(
                        r#"{{"type":"batch","epoch":{},"batch":{b},"step":{},"loss":{loss},"accuracy":0.5,"lr":0.1}}"#,
                        e + 1,
                        e * 100 + b
                    ));
                }
                lines.push(format!(
                    r#"{{"type":"epoch","epoch":{},"step":{},"loss":0.5,"accuracy":0.9,"val_loss":{},"val_accuracy":{a},"lr":0.1,"seconds":1.0}}"#,
                    e + 1,
                    (e + 1) * 100,
                    1.0 - a
                ));
            }
            let mut updates: Vec<Update> = lines
                .iter()
                .map(|l| Update::Record(run, Record::parse(l.as_bytes()).unwrap()))
                .collect();
            if run < 2 {
                let summary = format!(
                    r#"{{"status":"finished","stop_reason":"completed","test_loss":0.3,"test_accuracy":{},"best_val_accuracy":null,"best_val_loss":null,"epochs_completed":3,"steps":300,"train_seconds":1.0,"samples_per_second":1.0,"weights":null,"last_checkpoint":null}}"#,
                    acc[2] - 0.01
                );
                updates.push(Update::Summary(
                    run,
                    serde_json::from_str(&summary).unwrap(),
                ));
            }
            updates.push(Update::Locked(run, Some(run == 2)));
            app.update(updates);
        }
        app
    }

    fn render(app: &CompareApp, w: u16, h: u16) -> Vec<String> {
        crate::tui::rows_of(&crate::tui::drawn(w, h, |f| draw(f, app)))
    }

    const PLAIN: Style = Style {
        ascii: true,
        color: false,
        palette: Palette::Ansi16,
    };

    #[test]
    fn three_runs_at_80x24_in_ascii_without_colour() {
        let app = sweep(PLAIN);
        let screen = render(&app, 80, 24);
        let expected = [
            "+ [1 val loss] a .0960 b .0510 c .0500 ++ 2 val acc a .9040 b .9490 c .9500 ---+",
            "|0.101|                                ||0.955|                                |",
            "|     |          c                  a  ||     |                    bc        b |",
            "|     |        a                       ||     |                   a            |",
            "|     |                                ||     |                                |",
            "|     |         b                      ||     |                                |",
            "|     |                                ||     |                                |",
            "|     |                   abc        b ||     |         b                      |",
            "|     |                                ||     |                                |",
            "|     |                                ||     |        a                       |",
            "|     |                                ||     |                                |",
            "|     |                                ||     |          c                     |",
            "|     |                                ||     |                             a  |",
            "|0.000|                                ||0.902|                                |",
            "|     +--------------------------------||     +--------------------------------|",
            "|     0                        3 epochs||     0                        3 epochs|",
            "+--------------------------------------++--------------------------------------+",
            "+ 3 table ---------------------------------------------------------------------+",
            "|  name         differs  epoch  val loss  val acc  best val  test    status    |",
            "|a 000-lr=0.1   lr=0.1   3/3    0.0960    90.40%   94.60%    89.40%  finished  |",
            "|b 001-lr=0.03  lr=0.03  3/3    0.0510    94.90%   95.30%    93.90%  finished  |",
            "|c 002-lr=0.01  lr=0.01  2/3    0.0500    95.00%   95.00%    -       running   |",
            "+------------------------------------------------------------------------------+",
            " q quit  1-3 pane  z zoom  ? help   3 runs: 2 finished, 1 running               ",
        ];
        assert_eq!(screen, expected, "\n{}", screen.join("\n"));
    }

    #[test]
    fn each_run_keeps_its_colour_and_a_narrow_table_keeps_its_legend() {
        let style = Style {
            ascii: false,
            color: true,
            palette: Palette::Indexed,
        };
        let mut app = sweep(style);
        let buf = crate::tui::drawn(80, 24, |f| draw(f, &app));
        // The table's letters (column 1, rows 19 to 21) in the runs' colours, and the same
        // colours for their values in the loss pane's title.
        for (i, row) in (19..22).enumerate() {
            assert_eq!(
                buf[(1, row)].symbol(),
                crate::compare::letter(i).to_string()
            );
            assert_eq!(buf[(1, row)].fg, colour(i));
        }
        let title: String = (0..40).map(|x| buf[(x, 0)].symbol()).collect();
        let at = |text: &str| title.find(text).unwrap() as u16;
        assert_eq!(buf[(at("b .0510"), 0)].fg, colour(1));
        // Zoomed, the table has the whole screen; on a narrow one the latest values give way to
        // the names and settings.
        app.key(KeyEvent::from(KeyCode::Char('3')));
        app.key(KeyEvent::from(KeyCode::Char('z')));
        let screen = render(&app, 60, 8);
        assert_eq!(
            screen,
            [
                "┌ [3 table] ───────────────────────────────────────────────┐",
                "│  name         differs  epoch  best val  test    status   │",
                "│a 000-lr=0.1   lr=0.1   3/3    94.60%    89.40%  finished │",
                "│b 001-lr=0.03  lr=0.03  3/3    95.30%    93.90%  finished │",
                "│c 002-lr=0.01  lr=0.01  2/3    95.00%    -       running  │",
                "│                                                          │",
                "└──────────────────────────────────────────────────────────┘",
                " q quit  z/Esc back  1-3 pane  ? help   3 runs: 2 finished,…",
            ]
        );
    }
}
