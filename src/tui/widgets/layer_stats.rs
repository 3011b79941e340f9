//! The per-layer statistics overlay (key `w`): for each trainable layer its weight and
//! gradient norms, the update-to-weight ratio, the dead-ReLU fraction, and the weight and
//! gradient histograms as sparklines.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::style::{Color, Modifier, Style as CellStyle};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

use super::pane;
use crate::train::layer_stats::{Histogram, LayerStats};
use crate::tui::app::App;

/// Eight levels, empty bins blank.
const UNICODE_LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
const ASCII_LEVELS: [char; 8] = ['.', ',', ':', '-', '=', '+', '*', '#'];

/// A histogram as one character per bin, scaled to its fullest bin.
pub(crate) fn sparkline(h: &Histogram, ascii: bool) -> String {
    let levels = if ascii { ASCII_LEVELS } else { UNICODE_LEVELS };
    let max = h.counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    h.counts
        .iter()
        .map(|&c| {
            if c == 0 {
                ' '
            } else {
                let i = ((c as f64 / max) * 8.0).ceil() as usize;
                levels[i.clamp(1, 8) - 1]
            }
        })
        .collect()
}

/// Three significant figures, in scientific notation outside [0.01, 1000).
fn num(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if (0.01..1000.0).contains(&v.abs()) {
        format!("{v:.3}")
    } else {
        format!("{v:.2e}")
    }
}

fn row(s: &LayerStats, ascii: bool, ranges: bool) -> String {
    let dead = s
        .dead_relu
        .map_or("-".into(), |d| format!("{:.1}%", 100.0 * d));
    let hist = |h: &Histogram| {
        let mut t = sparkline(h, ascii);
        if ranges {
            t.push_str(&format!(" {:>9} {:>9}", num(h.lo as f64), num(h.hi as f64)));
        }
        t
    };
    let name: String = s.name.chars().take(8).collect();
    format!(
        "{name:<8} {:>8} {:>8} {:>8} {dead:>6}  {}  {}",
        num(s.weight_norm),
        num(s.grad_norm),
        num(s.update_ratio),
        hist(&s.weights),
        hist(&s.grads)
    )
}

/// Draws the overlay over `area` (the dashboard's body).
pub(crate) fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let title = match &app.run.layer_stats {
        Some((step, _)) => format!("layer statistics at step {step} (w closes)"),
        None => "layer statistics (w closes)".into(),
    };
    let block = pane(&title, app.style);
    let inner = block.inner(area);
    frame.render_widget(Clear, area);
    frame.render_widget(block, area);
    let Some((_, layers)) = &app.run.layer_stats else {
        frame.render_widget(
            Paragraph::new(
                "no statistics yet: they are taken every training.log_every_batches steps",
            ),
            inner,
        );
        return;
    };
    let ascii = app.style.ascii;
    // The histograms' ranges when there is room for them (two more 20-column fields: 118 in all).
    let ranges = inner.width >= 118;
    let (wh, gh) = if ranges {
        (
            "weights            min       max",
            "gradients          min       max",
        )
    } else {
        ("weights         ", "gradients       ")
    };
    let header = format!(
        "{:<8} {:>8} {:>8} {:>8} {:>6}  {wh}  {gh}",
        "layer", "|w|", "|grad|", "upd/|w|", "dead"
    );
    let bold = CellStyle::default().add_modifier(Modifier::BOLD);
    let mut lines = vec![Line::from(Span::styled(header, bold))];
    for s in layers {
        let text = row(s, ascii, ranges);
        // A ratio far from 1e-3 or many dead units: the reasons a run stalls, marked.
        let worrying = s.update_ratio > 1e-1
            || (s.update_ratio > 0.0 && s.update_ratio < 1e-5)
            || s.dead_relu.is_some_and(|d| d > 0.5);
        let style = match (worrying, app.style.color) {
            (true, true) => CellStyle::default().fg(Color::Yellow),
            (true, false) => bold,
            _ => CellStyle::default(),
        };
        lines.push(Line::from(Span::styled(text, style)));
    }
    lines.push(Line::from(""));
    for note in [
        "|w| |grad|: L2 norms of the weight (kernel or matrix) and its batch gradient",
        "upd/|w|: optimizer step over |w|; near 1e-3 is healthy, far off is marked",
        "dead: ReLU units of the layer that were zero for every sample of the batch",
        "histograms: 16 bins from the minimum to the maximum",
    ] {
        lines.push(Line::from(note));
    }
    frame.render_widget(Paragraph::new(lines), inner);
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::train::layer_stats::BINS;
    use crate::tui::app::{Palette, RunInfo, Style};

    fn hist(lo: f32, hi: f32, peak: usize) -> Histogram {
        Histogram {
            lo,
            hi,
            counts: (0..BINS)
                .map(|i| (BINS - i.abs_diff(peak).min(BINS)) as u32 * 10)
                .map(|c| if c < 100 { 0 } else { c })
                .collect(),
        }
    }

    fn app(ascii: bool) -> App {
        let mut app = App::new(
            RunInfo::default(),
            Style {
                ascii,
                color: false,
                palette: Palette::Indexed,
            },
        );
        app.run.layer_stats = Some((
            150,
            vec![
                LayerStats {
                    name: "conv1".into(),
                    weight_norm: 2.345,
                    grad_norm: 0.0456,
                    update_ratio: 0.00123,
                    weights: hist(-0.6, 0.7, 8),
                    grads: hist(-0.01, 0.02, 7),
                    dead_relu: Some(0.125),
                },
                LayerStats {
                    name: "dense1".into(),
                    weight_norm: 11.0,
                    grad_norm: 1.5e-6,
                    update_ratio: 2.0e-7,
                    weights: hist(-0.3, 0.3, 3),
                    grads: hist(-1e-6, 1e-6, 12),
                    dead_relu: None,
                },
            ],
        ));
        app
    }

    fn screen(app: &App, w: u16, h: u16) -> Vec<String> {
        crate::tui::rows_of(&crate::tui::drawn(w, h, |f| draw(f, f.area(), app)))
    }

    #[test]
    fn the_overlay_lists_each_layer_with_its_numbers_and_histograms_at_80_columns() {
        assert_eq!(
            screen(&app(false), 80, 11),
            [
                "┌ layer statistics at step 150 (w closes) ─────────────────────────────────────┐",
                "│layer         |w|   |grad|  upd/|w|   dead  weights           gradients       │",
                "│conv1       2.345    0.046  1.23e-3  12.5%    ▅▆▆▇▇███▇▇▆▆▅    ▅▆▆▇▇███▇▇▆▆▅  │",
                "│dense1     11.000  1.50e-6  2.00e-7      -  ▇▇███▇▇▆▆▅              ▅▆▆▇▇███▇▇│",
                "│                                                                              │",
                "│|w| |grad|: L2 norms of the weight (kernel or matrix) and its batch gradient  │",
                "│upd/|w|: optimizer step over |w|; near 1e-3 is healthy, far off is marked     │",
                "│dead: ReLU units of the layer that were zero for every sample of the batch    │",
                "│histograms: 16 bins from the minimum to the maximum                           │",
                "│                                                                              │",
                "└──────────────────────────────────────────────────────────────────────────────┘",
            ]
        );
    }

    #[test]
    fn sparklines_have_an_ascii_form_and_wide_terminals_get_the_ranges() {
        let s = app(true);
        let h = &s.run.layer_stats.as_ref().unwrap().1[0].weights;
        assert_eq!(sparkline(h, true), "  =++**###**++= ");
        let wide = screen(&app(false), 120, 5);
        assert_eq!(
            wide[1].trim_end_matches(['│', ' ']),
            "│layer         |w|   |grad|  upd/|w|   dead  weights            min       max  gradients          min       max"
        );
        assert!(
            wide[2].contains("▆▆▅     -0.600     0.700   ▅▆▆"),
            "{}",
            wide[2]
        );
        let empty = App::new(RunInfo::default(), s.style);
        assert!(
            screen(&empty, 80, 4)[1].contains("no statistics yet"),
            "{:?}",
            screen(&empty, 80, 4)
        );
    }
}
