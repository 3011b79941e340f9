//! The resources overlay (key `c`): the host, the Slurm job and its time left, resident
//! memory, samples/s over the last two minutes, and CPU per thread. In `watch` the run is
//! elsewhere: what its heartbeat says (host, pid) and the samples/s of its records.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Clear, Paragraph};

use super::pane;
use super::panels::fmt_rate;
use crate::tui::app::App;
use crate::tui::resources::{TimeLeft, fmt_time_left};

const UNICODE_LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
const ASCII_LEVELS: [char; 8] = ['_', '.', ',', '-', '=', '+', '*', '#'];

/// The newest `width` values as a sparkline scaled to their largest; zeros blank.
fn sparkline(values: impl DoubleEndedIterator<Item = f64>, width: usize, ascii: bool) -> String {
    let levels = if ascii { ASCII_LEVELS } else { UNICODE_LEVELS };
    let mut newest: Vec<f64> = values.rev().take(width).collect();
    newest.reverse();
    let max = newest.iter().copied().fold(0.0, f64::max);
    newest
        .iter()
        .map(|&v| {
            if v <= 0.0 || max <= 0.0 {
                ' '
            } else {
                levels[((v / max * 8.0).ceil() as usize).clamp(1, 8) - 1]
            }
        })
        .collect()
}

/// A bar of `fraction` (of one core) over `width` cells, in eighths (ASCII: whole `#`).
fn bar(fraction: f64, width: usize, ascii: bool) -> String {
    let eighths = (fraction.clamp(0.0, 1.0) * (width * 8) as f64).round() as usize;
    let mut out = if ascii { "#" } else { "█" }.repeat(eighths / 8);
    if !ascii && !eighths.is_multiple_of(8) {
        out.push([' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'][eighths % 8]);
    }
    out
}

/// The samples/s line: the latest rate, the highest of the history, the sparkline.
fn rate_line(app: &App, width: usize) -> String {
    let history = &app.rate_history;
    let peak = history.iter().copied().fold(0.0, f64::max);
    let head = format!(
        "samples/s {} (peak {}, last {}s) ",
        fmt_rate(app.run.samples_per_second),
        fmt_rate(peak),
        history.len()
    );
    let room = width.saturating_sub(head.chars().count());
    format!(
        "{head}{}",
        sparkline(history.iter().copied(), room, app.style.ascii)
    )
}

/// The overlay's text for an area `width` x `height` (inside the border).
pub(crate) fn lines(app: &App, width: usize, height: usize) -> Vec<Line<'static>> {
    let ascii = app.style.ascii;
    let mut out: Vec<String> = Vec::new();
    if app.info.watching {
        out.push(match (&app.run.job_host, app.run.heartbeat) {
            (Some((host, pid)), Some((age, silent))) => format!(
                "job: host {host}, pid {pid} (heartbeat unchanged for {age:.0} s{})",
                if silent { ", SILENT" } else { "" }
            ),
            (Some((host, pid)), None) => format!("job: host {host}, pid {pid} (its heartbeat)"),
            (None, _) => "job: no heartbeat read yet (host and pid come from it)".into(),
        });
        out.push(rate_line(app, width));
        out.push(
            "CPU per thread and memory are measured only for a run in this process: the run \
             directory does not record them (top -H -p PID on the job's host shows them)"
                .into(),
        );
    } else if let Some(r) = &app.resources {
        out.push(format!("host {}, pid {}", r.host, r.pid));
        if let Some(job) = &r.slurm {
            out.push(match job.time_left {
                Some(TimeLeft::Seconds(s)) => format!(
                    "Slurm job {}: {} left before the walltime (squeue, every 30 s)",
                    job.id,
                    fmt_time_left(s)
                ),
                Some(TimeLeft::Unlimited) => format!("Slurm job {}: no time limit", job.id),
                Some(TimeLeft::Unknown) | None => format!("Slurm job {}", job.id),
            });
        }
        if let Some(rss) = r.rss_bytes {
            out.push(format!("memory: {:.1} MB resident", rss as f64 / 1e6));
        }
        out.push(rate_line(app, width));
        if r.threads.is_empty() {
            out.push("CPU per thread: measuring...".into());
        } else {
            let total: f64 = r.threads.iter().map(|t| t.cpu).sum();
            out.push(format!(
                "CPU per thread (100% = one core): {} threads, {total:.2} cores in all",
                r.threads.len()
            ));
            let room = height.saturating_sub(out.len());
            let shown = if r.threads.len() > room {
                room.saturating_sub(1)
            } else {
                r.threads.len()
            };
            // The busiest first when not all fit.
            let mut threads: Vec<_> = r.threads.iter().collect();
            if shown < threads.len() {
                threads.sort_by(|a, b| b.cpu.total_cmp(&a.cpu));
            }
            for t in threads.iter().take(shown) {
                let name: String = t.name.chars().take(15).collect();
                let head = format!("{:>7} {name:<15} {:>5.0}% ", t.tid, 100.0 * t.cpu);
                let room = width.saturating_sub(head.chars().count());
                out.push(format!("{head}{}", bar(t.cpu, room, ascii)));
            }
            if shown < r.threads.len() {
                out.push(format!("{} more threads", r.threads.len() - shown));
            }
        }
    } else {
        out.push("measuring...".into());
    }
    out.into_iter().map(Line::from).collect()
}

/// Draws the overlay over `area` (the dashboard's body).
pub(crate) fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let block = pane("resources (c closes)", app.style);
    let inner = block.inner(area);
    frame.render_widget(Clear, area);
    frame.render_widget(block, area);
    let text = lines(app, inner.width as usize, inner.height as usize);
    frame.render_widget(
        Paragraph::new(text).wrap(ratatui::widgets::Wrap { trim: false }),
        inner,
    );
}
