//! Status line, epoch progress bar, log pane and footer.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style as CellStyle};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

use super::pane_of;
use crate::config::fmt_lr;
use crate::tui::app::{App, Mode, Pane, RunState};
use crate::tui::keys::{FOOTER, PAUSED_FOOTER, WATCH_FOOTER, WATCH_PAUSED_FOOTER};

/// `1h02m`, `3m20s`, `45s`.
pub(crate) fn fmt_duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

/// `950`, `15.8k`.
pub(crate) fn fmt_rate(per_second: f64) -> String {
    if per_second >= 1000.0 {
        format!("{:.1}k", per_second / 1000.0)
    } else {
        format!("{per_second:.0}")
    }
}

/// A text progress bar `[####----]` of `width` cells.
pub(crate) fn progress_bar(ratio: f64, width: usize, ascii: bool) -> String {
    let inner = width.saturating_sub(2);
    let filled = ((ratio.clamp(0.0, 1.0) * inner as f64).round() as usize).min(inner);
    let (on, off) = if ascii { ('#', '-') } else { ('█', '░') };
    format!(
        "[{}{}]",
        on.to_string().repeat(filled),
        off.to_string().repeat(inner - filled)
    )
}

pub(crate) fn draw_status(frame: &mut Frame, area: Rect, app: &App) {
    let state_style = match (app.style.color, app.run.state) {
        (false, _) => CellStyle::default().add_modifier(Modifier::BOLD),
        (true, RunState::Running(crate::train::Phase::Paused)) => CellStyle::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::BOLD),
        (true, RunState::Diverged | RunState::DivergedPaused | RunState::Failed) => {
            CellStyle::default()
                .fg(Color::Red)
                .add_modifier(Modifier::BOLD)
        }
        (true, RunState::Finished(_)) => CellStyle::default()
            .fg(Color::Green)
            .add_modifier(Modifier::BOLD),
        (true, _) => CellStyle::default()
            .fg(Color::Cyan)
            .add_modifier(Modifier::BOLD),
    };
    // Paused, the ETA is unknown: the pause may last any time.
    let eta = match app.run.eta_seconds() {
        Some(s) if !app.run.is_paused() => format!("ETA {}", fmt_duration(s)),
        _ => "ETA --".into(),
    };
    // Watching a job that has not ended: its heartbeat's age, and SILENT once it stopped.
    let beat = app
        .run
        .heartbeat
        .filter(|_| app.info.watching && !app.run.state.is_over());
    let (state, state_style, beat) = match beat {
        Some((age, true)) => (
            format!("SILENT {}", fmt_duration(age)),
            if app.style.color {
                CellStyle::default()
                    .fg(Color::Red)
                    .add_modifier(Modifier::BOLD)
            } else {
                CellStyle::default().add_modifier(Modifier::BOLD | Modifier::REVERSED)
            },
            String::new(),
        ),
        Some((age, false)) => (
            app.run.state.label().to_uppercase(),
            state_style,
            format!(" | beat {} ago", fmt_duration(age)),
        ),
        None => (
            app.run.state.label().to_uppercase(),
            state_style,
            String::new(),
        ),
    };
    let name = if app.info.watching {
        format!("watch {}", app.info.name)
    } else {
        app.info.name.clone()
    };
    let facts = format!(
        "{beat} | epoch {}/{} | {} samples/s | {eta} | lr {}",
        app.run.epoch,
        app.run.epochs,
        fmt_rate(app.run.samples_per_second),
        fmt_lr(app.run.lr),
    );
    let optimizer = format!(" {}", app.run.optimizer.replace("momentum ", "m "));
    // What goes first when the line is too long: the optimizer, then the model's name.
    let width = area.width as usize;
    let full = name.len() + 3 + state.len() + facts.len();
    let mut spans = Vec::new();
    // A watcher keeps the word "watch" when the run's name has no room.
    let name = match (full <= width, app.info.watching) {
        (true, _) => Some(name),
        (false, true) if full - app.info.name.len() - 1 <= width => Some("watch".to_string()),
        (false, _) => None,
    };
    if let Some(name) = name {
        spans.push(Span::styled(
            name,
            CellStyle::default().add_modifier(Modifier::BOLD),
        ));
        spans.push(Span::raw(" | "));
    }
    spans.push(Span::styled(state, state_style));
    spans.push(Span::raw(facts));
    if full + optimizer.len() <= width {
        spans.push(Span::raw(optimizer));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub(crate) fn draw_progress(frame: &mut Frame, area: Rect, app: &App) {
    let label = format!(
        " batch {}/{} ({:.0}%) step {}",
        app.run.batch,
        app.run.batches_per_epoch,
        app.run.epoch_progress() * 100.0,
        app.run.step
    );
    let width = (area.width as usize).saturating_sub(label.len()).max(4);
    let bar = progress_bar(app.run.epoch_progress(), width, app.style.ascii);
    frame.render_widget(Paragraph::new(format!("{bar}{label}")), area);
}

/// Keras' epoch line made to fit `width`: `E3/20 0.5s loss .0042 acc .9996 val .1057 .9712`
/// keeps the validation accuracy when the full line would be cut.
pub(crate) fn fit_epoch_line(line: &str, width: usize) -> String {
    if line.chars().count() <= width || !line.starts_with("Epoch ") {
        return line.to_string();
    }
    let mut parts = line.split(" - ");
    let epoch = parts.next().unwrap_or("").trim_start_matches("Epoch ");
    let mut out = format!("E{epoch}");
    for part in parts {
        let short = match part.split_once(": ") {
            Some((key, value)) => {
                let key = match key {
                    "loss" => "loss",
                    "accuracy" => "acc",
                    "val_loss" => "vloss",
                    "val_accuracy" => "vacc",
                    k => k,
                };
                format!(
                    "{key} {}",
                    value
                        .strip_prefix("0.")
                        .map_or(value.to_string(), |v| format!(".{v}"))
                )
            }
            None => part.to_string(),
        };
        out.push(' ');
        out.push_str(&short);
    }
    out
}

pub(crate) fn draw_log(frame: &mut Frame, area: Rect, app: &App) {
    let back = app.ui.log_back.min(app.run.log.len().saturating_sub(1));
    let mut block = pane_of("log", Pane::Log, app);
    if back > 0 {
        block = block.title_bottom(Line::from(format!(
            " {} {back} newer lines below: pgdn, end ",
            if app.style.ascii { "v" } else { "▼" }
        )));
    }
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let n = inner.height as usize;
    let end = app.run.log.len() - back;
    let lines: Vec<Line> = app
        .run
        .log
        .iter()
        .take(end)
        .skip(end.saturating_sub(n))
        .map(|l| Line::from(fit_epoch_line(l, inner.width as usize)))
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}

pub(crate) fn draw_footer(frame: &mut Frame, area: Rect, app: &App) {
    let text = match &app.ui.mode {
        Mode::LrInput { text, error } => {
            // The error first: at 80 columns the key help is what gets cut.
            let error = error.as_ref().map_or(String::new(), |e| format!("  ! {e}"));
            format!(
                "new learning rate (now {}): {text}_{error}  enter apply, esc cancel",
                fmt_lr(app.run.lr)
            )
        }
        _ if app.ui.hint.is_some() => app.ui.hint.clone().unwrap_or_default(),
        _ if app.run.state.is_over() => "run over: q quit  m model  ? help".to_string(),
        _ if app.run.state == RunState::DivergedPaused => {
            "DIVERGED: r restore last good weights  - lower lr  space resume  q quit".to_string()
        }
        _ => match (app.info.watching, app.run.is_paused()) {
            (false, false) => FOOTER,
            (false, true) => PAUSED_FOOTER,
            (true, false) => WATCH_FOOTER,
            (true, true) => WATCH_PAUSED_FOOTER,
        }
        .to_string(),
    };
    let style = if app.style.color {
        CellStyle::default().add_modifier(Modifier::REVERSED)
    } else {
        CellStyle::default()
    };
    frame.render_widget(Paragraph::new(text).style(style), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_bars() {
        assert_eq!(fmt_duration(45.2), "45s");
        assert_eq!(fmt_duration(200.0), "3m20s");
        assert_eq!(fmt_duration(3720.0), "1h02m");
        assert_eq!(progress_bar(0.5, 10, true), "[####----]");
        assert_eq!(progress_bar(1.0, 6, false), "[████]");
    }

    fn status_line(app: &App, width: u16) -> String {
        let buf = crate::tui::drawn(width, 1, |f| draw_status(f, f.area(), app));
        crate::tui::rows_of(&buf).remove(0)
    }

    #[test]
    fn watch_status_shows_the_heartbeat_age_and_silent_after_a_minute() {
        use crate::train::{Phase, TrainEvent};
        use crate::tui::app::{RunInfo, Style};
        let mut app = App::new(
            RunInfo {
                name: "job".into(),
                watching: true,
                resume_command: None,
                ..Default::default()
            },
            Style {
                ascii: true,
                color: false,
                palette: crate::tui::app::Palette::Indexed,
            },
        );
        app.on_train_event(&TrainEvent::Phase(Phase::Training));
        app.on_train_event(&TrainEvent::Heartbeat {
            unchanged_seconds: 3.0,
            silent: false,
        });
        assert_eq!(
            status_line(&app, 80),
            "watch job | TRAINING | beat 3s ago | epoch 0/0 | 0 samples/s | ETA -- | lr 0    "
        );
        app.on_train_event(&TrainEvent::Heartbeat {
            unchanged_seconds: 75.0,
            silent: true,
        });
        assert_eq!(
            status_line(&app, 80),
            "watch job | SILENT 1m15s | epoch 0/0 | 0 samples/s | ETA -- | lr 0              "
        );
        // A job that has ended has no heartbeat to speak of.
        app.run.state = RunState::Finished(crate::train::StopReason::Completed);
        assert!(status_line(&app, 80).starts_with("watch job | FINISHED | epoch"));
    }
}
