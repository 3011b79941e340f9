//! Layout of the dashboard: a pure function of the app state.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};

use super::app::{App, Mode};
use super::widgets::{ascii, charts, inspect, overlays, panels};

/// Below this the dashboard shows a "terminal too small" message.
pub(crate) const MIN_SIZE: (u16, u16) = (60, 20);

pub(crate) fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        overlays::draw_too_small(frame, MIN_SIZE);
    } else {
        let log_height = if area.height >= 36 { 8 } else { 5 };
        let [status, progress, body, log, footer] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(log_height),
            Constraint::Length(1),
        ])
        .areas(area);
        let [left, right] =
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
                .areas(body);
        let [loss, accuracy] =
            Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(left);
        let [filters, maps] =
            Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(right);
        panels::draw_status(frame, status, app);
        panels::draw_progress(frame, progress, app);
        charts::draw_loss(frame, loss, app);
        charts::draw_accuracy(frame, accuracy, app);
        inspect::draw_filters(frame, filters, app);
        inspect::draw_feature_maps(frame, maps, app);
        panels::draw_log(frame, log, app);
        panels::draw_footer(frame, footer, app);
        match app.ui.mode {
            Mode::Help => overlays::draw_help(frame, app),
            Mode::Model => overlays::draw_model(frame, app),
            Mode::QuitConfirm => overlays::draw_quit_confirm(frame, app),
            Mode::Normal | Mode::LrInput { .. } => {}
        }
    }
    if app.style.ascii {
        ascii::asciify(frame.buffer_mut());
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;
    use crate::nn::LayerRow;
    use crate::train::{EpochMetrics, FilterImage, Phase, Snapshot, TrainEvent};
    use crate::tui::app::{RunInfo, Style};

    fn image(h: usize, w: usize, f: impl Fn(usize) -> f32) -> FilterImage {
        FilterImage {
            height: h,
            width: w,
            values: (0..h * w).map(f).collect(),
        }
    }

    /// A dashboard after a synthetic start, 150 batches, one epoch and a snapshot.
    fn app(style: Style) -> App {
        let mut app = App::new(
            RunInfo {
                name: "demo".into(),
                run_dir: PathBuf::from("runs/demo"),
                hyperparameters: vec![("optimizer".into(), "sgd".into())],
                configured_lr: Some(0.01),
                lr_factor: 2.0,
                watching: false,
            },
            style,
        );
        let events = [
            TrainEvent::Started {
                epochs: 4,
                batches_per_epoch: 100,
                train_samples: 6400,
                validation_samples: 640,
                test_samples: 1000,
                lr: 0.05,
                optimizer: "sgd(momentum 0.9)".into(),
                layers: vec![LayerRow {
                    name: "conv1".into(),
                    kind: "Conv2D".into(),
                    output_shape: vec![24, 24, 8],
                    params: 208,
                }],
                params: 5386,
                threads: 2,
            },
            TrainEvent::Phase(Phase::Training),
        ];
        events.iter().for_each(|e| app.on_train_event(e));
        for step in 1..=150u64 {
            let (epoch, batch) = (1 + (step as usize - 1) / 100, 1 + (step as usize - 1) % 100);
            app.on_train_event(&TrainEvent::Batch {
                epoch,
                batch,
                step,
                loss: 2.3 / step as f32,
                accuracy: 0.5 + step as f32 / 400.0,
                lr: 0.05,
                samples_per_second: 15800.0,
            });
            if step == 100 {
                app.on_train_event(&TrainEvent::EpochEnd(EpochMetrics {
                    epoch: 1,
                    step,
                    loss: 0.3,
                    accuracy: 0.91,
                    val_loss: Some(0.2),
                    val_accuracy: Some(0.94),
                    lr: 0.05,
                    seconds: 0.5,
                }));
            }
        }
        app.on_train_event(&TrainEvent::Snapshot(Box::new(Snapshot {
            step: 150,
            conv_layer: 0,
            conv_layers: 2,
            layer_name: "conv1".into(),
            channel_note: None,
            filters: (0..8)
                .map(|k| image(5, 5, move |i| (i as f32 - 12.0) * (k as f32 - 3.5)))
                .collect(),
            probe_index: 3,
            probe_label: 7,
            probe_image: image(28, 28, |i| ((i % 28) as f32 - 14.0).abs()),
            feature_maps: (0..8).map(|_| image(24, 24, |i| (i % 24) as f32)).collect(),
            top3: vec![(7, 0.97), (1, 0.02), (9, 0.01)],
            class_names: (0..10).map(|c| c.to_string()).collect(),
            colour_filters: Vec::new(),
            colour_probe: None,
        })));
        app
    }

    fn screen(app: &App, w: u16, h: u16) -> Vec<String> {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
        terminal.draw(|f| draw(f, app)).unwrap();
        let buf = terminal.backend().buffer().clone();
        (0..h)
            .map(|y| {
                (0..w)
                    .map(|x| buf[(x, y)].symbol().to_string())
                    .collect::<String>()
            })
            .collect()
    }

    const PLAIN_ASCII: Style = Style {
        ascii: true,
        color: false,
        truecolor: false,
    };
    const UNICODE_COLOR: Style = Style {
        ascii: false,
        color: true,
        truecolor: false,
    };

    /// The demo app with a colour model's snapshot: 8 RGB filters (pure red, green or blue
    /// weights by filter) and a red probe, with the names of CIFAR-10.
    fn colour_app(style: Style) -> App {
        let mut app = app(style);
        let s = app.run.snapshot.as_mut().unwrap();
        s.colour_filters = (0..8)
            .map(|k| {
                let mut weights = vec![0.0f32; 3 * 3 * 3];
                for p in 0..9 {
                    weights[p * 3 + k % 3] = 1.0;
                }
                crate::train::RgbImage::filter(&weights, 3, 3)
            })
            .collect();
        s.colour_probe = Some(crate::train::RgbImage {
            height: 28,
            width: 28,
            values: [0.9, 0.1, 0.1].repeat(28 * 28),
        });
        s.class_names = [
            "airplane",
            "automobile",
            "bird",
            "cat",
            "deer",
            "dog",
            "frog",
            "horse",
            "ship",
            "truck",
        ]
        .map(String::from)
        .to_vec();
        app
    }

    /// The colours of the half blocks on screen.
    fn colours(app: &App, w: u16, h: u16) -> Vec<ratatui::style::Color> {
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
        terminal.draw(|f| draw(f, app)).unwrap();
        let buf = terminal.backend().buffer().clone();
        buf.content()
            .iter()
            .filter(|c| c.symbol() == "▀")
            .flat_map(|c| [c.fg, c.bg])
            .collect()
    }

    #[test]
    fn rgb_filters_and_probe_show_in_colour_or_as_a_row_per_channel() {
        use ratatui::style::Color;
        let truecolor = Style {
            truecolor: true,
            ..UNICODE_COLOR
        };
        let all = screen(&colour_app(truecolor), 120, 40).join("\n");
        assert!(all.contains("filters conv1 (1/2) 5x5 x8, RGB"), "{all}");
        assert!(all.contains("RGB weights in colour"), "{all}");
        assert!(
            all.contains("probe #3 label horse -> horse 97%, automobile 2%"),
            "{all}"
        );
        let seen = colours(&colour_app(truecolor), 120, 40);
        // Pure red, green and blue filters, and the red probe, in 24-bit colour.
        for c in [
            Color::Rgb(255, 0, 0),
            Color::Rgb(0, 255, 0),
            Color::Rgb(0, 0, 255),
            Color::Rgb(230, 26, 26),
        ] {
            assert!(seen.contains(&c), "{c:?} missing");
        }
        // Without COLORTERM: the 256-colour cube (pure red is 16 + 36 * 5).
        let seen = colours(&colour_app(UNICODE_COLOR), 120, 40);
        assert!(seen.contains(&Color::Indexed(196)));
        assert!(!seen.iter().any(|c| matches!(c, Color::Rgb(..))));
        // NO_COLOR and --ascii: a row of shaded tiles per channel, labelled R, G and B.
        let rows = screen(&colour_app(PLAIN_ASCII), 120, 40);
        let all = rows.join("\n");
        assert!(all.contains("a row per channel (R, G, B)"), "{all}");
        for channel in ["R", "G", "B"] {
            assert!(
                rows.iter()
                    .any(|r| r.contains(&format!("|{channel} "))
                        || r.contains(&format!("│{channel} "))),
                "no {channel} row:\n{all}"
            );
        }
        assert!(all.is_ascii(), "{all}");
    }

    #[test]
    fn compact_layout_at_80x24_shows_everything_important() {
        let rows = screen(&app(UNICODE_COLOR), 80, 24);
        assert_eq!(
            rows[0].trim_end(),
            "demo | TRAINING | epoch 2/4 | 15.8k samples/s | ETA 1s | lr 0.05 sgd(m 0.9)"
        );
        assert!(
            rows[1].contains("batch 50/100 (50%) step 150"),
            "{}",
            rows[1]
        );
        let all = rows.join("\n");
        for needle in [
            "loss",
            "accuracy",
            "filters conv1 (1/2) 5x5 x8",
            "probe #3 label 7 -> 7 97%",
            "Epoch 1/4",
            "? help",
        ] {
            assert!(all.contains(needle), "missing {needle}:\n{all}");
        }
        assert!(all.contains('▀'), "filters drawn with half blocks");
        assert_eq!(rows[23].trim_end(), crate::tui::keys::FOOTER);
    }

    #[test]
    fn accuracy_axis_stops_at_one() {
        let mut app = app(UNICODE_COLOR);
        app.on_train_event(&TrainEvent::EpochEnd(EpochMetrics {
            epoch: 2,
            step: 200,
            loss: 0.01,
            accuracy: 1.0,
            val_loss: Some(0.02),
            val_accuracy: Some(1.0),
            lr: 0.05,
            seconds: 0.5,
        }));
        let rows: Vec<Vec<char>> = screen(&app, 80, 24)
            .iter()
            .map(|r| r.chars().collect())
            .collect();
        // The accuracy pane: from its title row down to its bottom border, left of its edge.
        let text = |r: &[char]| r.iter().collect::<String>();
        let top = rows
            .iter()
            .position(|r| text(r).contains("┌ accuracy"))
            .expect("accuracy pane");
        let right = rows[top].iter().position(|&c| c == '┐').expect("pane edge");
        let labels: Vec<f64> = rows[top + 1..]
            .iter()
            .take_while(|r| r[0] != '└')
            // The y labels sit left of the axis line.
            .filter_map(|r| text(&r[1..right]).split('│').next()?.trim().parse().ok())
            .collect();
        assert!(labels.contains(&1.0), "{labels:?}");
        assert!(labels.iter().all(|&v| v <= 1.0), "{labels:?}");
    }

    #[test]
    fn larger_terminal_gets_larger_panes_and_ascii_stays_ascii() {
        let rows = screen(&app(PLAIN_ASCII), 120, 40);
        let all = rows.join("\n");
        assert!(all.is_ascii(), "non-ASCII in --ascii mode:\n{all}");
        assert!(all.contains("+ loss "));
        // Filter tiles are drawn with the ASCII ramp: the most positive weight is '@'.
        assert!(rows.iter().any(|r| r.contains("@@")), "{all}");
        // The log pane is eight rows high (six lines) at this height.
        let log_top = rows.iter().position(|r| r.starts_with("+ log ")).unwrap();
        assert_eq!(rows.len() - 1 - log_top, 8);
    }

    #[test]
    fn too_small_terminal_says_so() {
        let rows = screen(&app(UNICODE_COLOR), 50, 15);
        assert!(
            rows.join(" ")
                .contains("terminal too small: 50x15, need at least 60x20")
        );
    }

    #[test]
    fn overlays_show_help_model_and_quit_confirmation() {
        let mut a = app(PLAIN_ASCII);
        a.ui.mode = Mode::Help;
        assert!(
            screen(&a, 80, 24)
                .join("\n")
                .contains("type an exact learning rate")
        );
        a.ui.mode = Mode::Model;
        let model = screen(&a, 80, 24);
        let row = model
            .iter()
            .find(|r| r.contains("conv1 (Conv2D)"))
            .expect("layer row");
        assert!(
            row.contains("(None, 24, 24, 8)") && row.contains(" 208 "),
            "{row}"
        );
        a.on_train_event(&TrainEvent::LrChanged {
            step: 150,
            epoch: 2,
            from: 0.05,
            to: 0.025,
            source: crate::train::LrSource::Command,
        });
        let model = screen(&a, 80, 24).join("\n");
        assert!(
            model.contains("learning rate: 0.025 (configured 0.01)"),
            "the live rate beside the configured one:\n{model}"
        );
        a.info.configured_lr = Some(0.025);
        assert!(
            screen(&a, 80, 24)
                .join("\n")
                .contains("learning rate: 0.025 (as configured)")
        );
        a.ui.mode = Mode::QuitConfirm;
        assert!(
            screen(&a, 80, 24)
                .join("\n")
                .contains("s  save a checkpoint and quit")
        );
        a.ui.mode = Mode::LrInput {
            text: "0.1".into(),
            error: None,
        };
        assert!(screen(&a, 80, 24)[23].starts_with("new learning rate (now 0.025): 0.1_"));
    }
}
