//! The confusion-matrix pane (key 6): the latest evaluation's matrix with counts (rows: true
//! class, columns: predicted), each class's accuracy, and the largest confusions. Wide enough,
//! every count; narrower (80x24), the compact form: the diagonal as `\` (the accuracy column
//! says how many were right), zeros as `.`, only the mistakes counted.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style as CellStyle};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::pane_of;
use crate::train::{Confusion, EvalSplit};
use crate::tui::app::{App, Pane};

/// Longest row label (`7 horse`); longer class names are cut.
const MAX_LABEL: usize = 12;
/// How many of the largest confusions the last line names, at most.
const WORST: usize = 5;

/// Which way the matrix is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// Every count, accuracy with a decimal.
    Full,
    /// The diagonal as `\`, whole percents.
    Compact,
}

/// The widths of one layout: row label, a cell, the accuracy column, and how many class
/// columns are shown.
struct Widths {
    form: Form,
    label: usize,
    cell: usize,
    acc: usize,
    columns: usize,
}

fn digits(v: u64) -> usize {
    v.to_string().len()
}

/// Whether the classes are named by their numbers (MNIST).
fn numbered(c: &Confusion) -> bool {
    c.classes
        .iter()
        .enumerate()
        .all(|(i, n)| *n == i.to_string())
}

/// A row's label: the name when classes are numbered, else `index name`.
fn row_label(c: &Confusion, i: usize) -> String {
    let label = if numbered(c) {
        c.classes[i].clone()
    } else {
        format!("{i} {}", c.classes[i])
    };
    label.chars().take(MAX_LABEL).collect()
}

/// What a class is called in the list of confusions.
fn short_name(c: &Confusion, i: usize) -> String {
    c.classes[i].chars().take(MAX_LABEL).collect()
}

/// The layout for `width` columns: the full form when it fits, else the compact one, with
/// as many class columns as fit.
fn widths(c: &Confusion, width: usize) -> Widths {
    let n = c.counts.len();
    let index_digits = digits(n.saturating_sub(1) as u64);
    let label = (0..n)
        .map(|i| row_label(c, i).chars().count())
        .max()
        .unwrap_or(1);
    let largest = |off_diagonal: bool| {
        c.counts
            .iter()
            .enumerate()
            .flat_map(|(t, row)| {
                row.iter()
                    .enumerate()
                    .filter(move |&(p, _)| !off_diagonal || p != t)
                    .map(|(_, &v)| v as u64)
            })
            .max()
            .unwrap_or(0)
    };
    let full = Widths {
        form: Form::Full,
        // A space between the labels and the first column.
        label: label.max("true".len()) + 1,
        cell: digits(largest(false)).max(index_digits) + 1,
        // " 100.0%"
        acc: 7,
        columns: n,
    };
    if full.label + n * full.cell + full.acc <= width {
        return full;
    }
    let mut compact = Widths {
        form: Form::Compact,
        label,
        cell: digits(largest(true)).max(index_digits) + 1,
        // " 100%"
        acc: 5,
        columns: n,
    };
    let room = width.saturating_sub(compact.label + compact.acc);
    compact.columns = (room / compact.cell).min(n);
    compact
}

fn styled(text: String, colour: Option<Color>, bold: bool) -> Span<'static> {
    let mut style = CellStyle::default();
    if let Some(c) = colour {
        style = style.fg(c);
    }
    if bold {
        style = style.add_modifier(Modifier::BOLD);
    }
    Span::styled(text, style)
}

/// The summary line over the matrix.
fn heading(c: &Confusion, width: usize) -> String {
    let (total, right) = (0..c.counts.len())
        .map(|i| c.class_total(i))
        .fold((0, 0), |(t, r), (ct, cr)| (t + ct, r + cr));
    let pct = 100.0 * right as f64 / total.max(1) as f64;
    let long = match c.split {
        EvalSplit::Validation => format!(
            "validation after epoch {}: {right} of {total} right ({pct:.1}%)",
            c.epoch
        ),
        EvalSplit::Test => format!("test set at the end: {right} of {total} right ({pct:.1}%)"),
    };
    if long.chars().count() <= width {
        return long;
    }
    match c.split {
        EvalSplit::Validation => format!("val E{}: {pct:.1}% of {total}", c.epoch),
        EvalSplit::Test => format!("test: {pct:.1}% of {total}"),
    }
}

/// The largest confusions as `true->predicted count`, as many as fit in `width`.
fn worst_line(c: &Confusion, width: usize) -> String {
    let worst = c.worst(WORST);
    if worst.is_empty() {
        return "no confusions".into();
    }
    let mut line = "worst:".to_string();
    for (k, (t, p, n)) in worst.iter().enumerate() {
        let item = format!(
            "{} {}->{} {n}",
            if k == 0 { "" } else { "," },
            short_name(c, *t),
            short_name(c, *p)
        );
        if line.chars().count() + item.chars().count() > width {
            break;
        }
        line.push_str(&item);
    }
    line
}

/// The pane's text for an area of `width` x `height` cells: a heading, the column header,
/// a row per class (as many as fit), the largest confusions. Colours when `colour`: the
/// diagonal green, mistakes red (the worst bold), zeros grey.
fn lines(c: &Confusion, width: usize, height: usize, colour: bool) -> Vec<Line<'static>> {
    let n = c.counts.len();
    let w = widths(c, width);
    let rows_shown = n.min(height.saturating_sub(3));
    let mut out = vec![Line::from(heading(c, width))];
    let worst: Vec<(usize, usize)> = c.worst(WORST).iter().map(|&(t, p, _)| (t, p)).collect();
    let paint = |col: Color| colour.then_some(col);
    // Column header: the corner, the class numbers, the accuracy.
    let corner = if w.form == Form::Full { "true" } else { "" };
    let mut header = format!("{corner:<0$}", w.label);
    for p in 0..w.columns {
        header.push_str(&format!("{p:>0$}", w.cell));
    }
    header.push_str(&format!("{:>1$}", "acc", w.acc));
    out.push(Line::from(header));
    for t in 0..rows_shown {
        let mut spans = vec![Span::raw(format!("{:<1$}", row_label(c, t), w.label))];
        for p in 0..w.columns {
            let v = c.counts[t][p];
            let span = if p == t {
                let text = match w.form {
                    Form::Full => v.to_string(),
                    Form::Compact => "\\".to_string(),
                };
                styled(format!("{text:>0$}", w.cell), paint(Color::Green), false)
            } else if v == 0 {
                styled(
                    format!("{:>1$}", ".", w.cell),
                    paint(Color::DarkGray),
                    false,
                )
            } else {
                let bad = worst.contains(&(t, p));
                styled(format!("{v:>0$}", w.cell), paint(Color::Red), bad)
            };
            spans.push(span);
        }
        let (total, right) = c.class_total(t);
        let acc = if total == 0 {
            "-".to_string()
        } else {
            let pct = 100.0 * right as f64 / total as f64;
            match w.form {
                Form::Full => format!("{pct:.1}%"),
                Form::Compact => format!("{pct:.0}%"),
            }
        };
        spans.push(Span::raw(format!("{acc:>0$}", w.acc)));
        out.push(Line::from(spans));
    }
    let mut cut = Vec::new();
    if rows_shown < n {
        cut.push(format!("rows 0-{} of {n}", rows_shown.saturating_sub(1)));
    }
    if w.columns < n {
        cut.push(format!("columns 0-{} of {n}", w.columns.saturating_sub(1)));
    }
    out.push(Line::from(if cut.is_empty() {
        worst_line(c, width)
    } else {
        format!("{} shown", cut.join(", "))
    }));
    out
}

/// Draws the pane; before the first evaluation it says when one comes.
pub(crate) fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let block = pane_of("confusion", Pane::Confusion, app);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(c) = &app.run.confusion else {
        let text = "waiting for the first evaluation (after epoch 1; without validation data, \
                    the test set's at the end)";
        frame.render_widget(
            Paragraph::new(text).wrap(ratatui::widgets::Wrap { trim: true }),
            inner,
        );
        return;
    };
    let text = lines(
        c,
        inner.width as usize,
        inner.height as usize,
        app.style.color,
    );
    frame.render_widget(Paragraph::new(text), inner);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(c: &Confusion, width: usize, height: usize) -> Vec<String> {
        lines(c, width, height, false)
            .iter()
            .map(|l| l.to_string())
            .collect()
    }

    /// Three classes named by animals, ten samples.
    fn animals() -> Confusion {
        let names = ["cat", "dog", "horse"].map(String::from);
        Confusion::count(
            EvalSplit::Test,
            (4, 40),
            &names,
            &[0, 0, 0, 1, 1, 1, 2, 2, 2, 2],
            &[0, 0, 1, 1, 1, 1, 2, 2, 1, 1],
        )
    }

    #[test]
    fn full_and_compact_forms_with_names_and_the_worst_confusions() {
        let c = animals();
        assert_eq!(
            text(&c, 60, 10),
            [
                "test set at the end: 7 of 10 right (70.0%)",
                "true     0 1 2    acc",
                "0 cat    2 1 .  66.7%",
                "1 dog    . 3 . 100.0%",
                "2 horse  . 2 2  50.0%",
                "worst: horse->dog 2, cat->dog 1",
            ]
        );
        // Too narrow for the full form: the diagonal is drawn as `\`; too short for every
        // row, it says which are shown.
        assert_eq!(
            text(&c, 18, 5),
            [
                "test: 70.0% of 10",
                "        0 1 2  acc",
                "0 cat   \\ 1 .  67%",
                "1 dog   . \\ . 100%",
                "rows 0-1 of 3 shown",
            ]
        );
        assert_eq!(c.worst(9), [(2, 1, 2), (0, 1, 1)]);
    }

    #[test]
    fn a_hostile_record_is_made_square_before_it_is_drawn() {
        let mut c = animals();
        c.counts[1].truncate(1);
        c.counts.push(vec![1; 9]);
        c.classes.truncate(1);
        let c = c.squared();
        assert_eq!(c.counts.len(), 4);
        assert!(c.counts.iter().all(|r| r.len() == 4));
        assert_eq!(c.classes, ["cat", "1", "2", "3"]);
        assert_eq!(text(&c, 60, 10).len(), 7);
    }
}
