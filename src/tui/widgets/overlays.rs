//! Pop-ups over the dashboard: help, model summary, quit confirmation, terminal too small.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph, Wrap};

use super::pane;
use crate::lr::fmt_lr;
use crate::nn::summary::{grouped, shape_text};
use crate::tui::app::App;
use crate::tui::keys::BINDINGS;

/// A rectangle of at most `w` x `h` centred in `area`.
pub(crate) fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let (w, h) = (w.min(area.width), h.min(area.height));
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

fn popup(frame: &mut Frame, app: &App, title: &str, lines: Vec<Line>) {
    let w = lines
        .iter()
        .map(|l| l.width() as u16)
        .max()
        .unwrap_or(20)
        .max(title.len() as u16 + 4)
        + 4;
    let area = centered(frame.area(), w, lines.len() as u16 + 2);
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            .block(pane(title, app.style))
            .wrap(Wrap { trim: false }),
        area,
    );
}

pub(crate) fn draw_help(frame: &mut Frame, app: &App) {
    let mut lines: Vec<Line> = BINDINGS
        .iter()
        .map(|(k, what)| Line::from(format!("{k:<11} {what}")))
        .collect();
    lines.push(Line::from(""));
    lines.push(Line::from(format!(
        "+/- factor: {}   any key closes",
        app.info.lr_factor
    )));
    popup(frame, app, "keys", lines);
}

pub(crate) fn draw_model(frame: &mut Frame, app: &App) {
    let mut lines = vec![Line::from(format!(
        "{:<20}{:<20}{:>9}",
        "layer", "output", "params"
    ))];
    for r in &app.run.layers {
        lines.push(Line::from(format!(
            "{:<20}{:<20}{:>9}",
            format!("{} ({})", r.name, r.kind),
            shape_text(&r.output_shape),
            grouped(r.params as u64)
        )));
    }
    lines.push(Line::from(format!(
        "total parameters: {}",
        grouped(app.run.params as u64)
    )));
    lines.push(Line::from(""));
    // The live rate (from events) first, beside the configured one it started from.
    let configured = match app.info.configured_lr {
        Some(c) if fmt_lr(c) == fmt_lr(app.run.lr) => " (as configured)".to_string(),
        Some(c) => format!(" (configured {})", fmt_lr(c)),
        None => String::new(),
    };
    lines.push(Line::from(format!(
        "learning rate: {}{configured}",
        fmt_lr(app.run.lr)
    )));
    for (k, v) in &app.info.hyperparameters {
        lines.push(Line::from(format!("{k}: {v}")));
    }
    popup(frame, app, "model", lines);
}

pub(crate) fn draw_quit_confirm(frame: &mut Frame, app: &App) {
    let lines = vec![
        Line::from("Training is still running."),
        Line::from(""),
        Line::from("s  save a checkpoint and quit"),
        Line::from("q  quit (weights and summary are still written)"),
        Line::from("c  cancel"),
    ];
    popup(frame, app, "quit?", lines);
}

pub(crate) fn draw_too_small(frame: &mut Frame, min: (u16, u16)) {
    let area = frame.area();
    let text = format!(
        "terminal too small: {}x{}, need at least {}x{} (training goes on; q quits)",
        area.width, area.height, min.0, min.1
    );
    frame.render_widget(Paragraph::new(text).wrap(Wrap { trim: true }), area);
}
