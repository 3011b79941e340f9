//! Layout of the dashboard: a pure function of the app state.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout};

use super::app::{App, Mode, Pane};
use super::widgets::{ascii, charts, confusion, inspect, layer_stats, overlays, panels, resources};

/// Below this the dashboard shows a "terminal too small" message.
pub(crate) const MIN_SIZE: (u16, u16) = (60, 20);

/// Below this height or width the dashboard uses its compact layout: the charts on the left
/// and one of filters or maps (the selected one, maps by default) on the right, at a size
/// where a digit is recognisable.
pub(crate) const COMPACT_BELOW: (u16, u16) = (100, 30);

pub(crate) fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    if area.width < MIN_SIZE.0 || area.height < MIN_SIZE.1 {
        overlays::draw_too_small(frame, MIN_SIZE);
    } else if app.ui.zoomed {
        let [status, body, footer] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(1),
        ])
        .areas(area);
        panels::draw_status(frame, status, app);
        match app.ui.pane {
            Pane::Loss => {
                let [loss, lr] =
                    Layout::vertical([Constraint::Fill(1), Constraint::Length(6)]).areas(body);
                charts::draw_loss(frame, loss, app);
                charts::draw_lr(frame, lr, app);
            }
            Pane::Accuracy => charts::draw_accuracy(frame, body, app),
            Pane::Filters => inspect::draw_filters_zoomed(frame, body, app),
            Pane::Maps => inspect::draw_feature_maps_zoomed(frame, body, app),
            Pane::Log => panels::draw_log(frame, body, app),
            Pane::Confusion => confusion::draw(frame, body, app),
        }
        panels::draw_footer(frame, footer, app);
        draw_overlay(frame, body, app);
    } else {
        let compact = area.width < COMPACT_BELOW.0 || area.height < COMPACT_BELOW.1;
        let log_height = if area.height >= 36 { 8 } else { 5 };
        let [status, progress, body, log, footer] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Length(1),
            Constraint::Fill(1),
            Constraint::Length(log_height),
            Constraint::Length(1),
        ])
        .areas(area);
        let [left, right] = if compact {
            Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(body)
        } else {
            Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(body)
        };
        let [loss, lr, accuracy] = Layout::vertical([
            Constraint::Fill(3),
            Constraint::Length(if compact { 3 } else { 4 }),
            Constraint::Fill(2),
        ])
        .areas(left);
        panels::draw_status(frame, status, app);
        panels::draw_progress(frame, progress, app);
        charts::draw_loss(frame, loss, app);
        charts::draw_lr(frame, lr, app);
        charts::draw_accuracy(frame, accuracy, app);
        if compact {
            match app.ui.pane {
                Pane::Filters => inspect::draw_filters(frame, right, app),
                Pane::Confusion => confusion::draw(frame, right, app),
                _ => inspect::draw_feature_maps(frame, right, app),
            }
        } else {
            let [filters, maps] =
                Layout::vertical([Constraint::Percentage(45), Constraint::Percentage(55)])
                    .areas(right);
            inspect::draw_filters(frame, filters, app);
            // Key 6 puts the confusion matrix in the maps' place; key 4 brings them back.
            if app.ui.pane == Pane::Confusion {
                confusion::draw(frame, maps, app);
            } else {
                inspect::draw_feature_maps(frame, maps, app);
            }
        }
        panels::draw_log(frame, log, app);
        panels::draw_footer(frame, footer, app);
        draw_overlay(frame, body, app);
    }
    if app.style.ascii {
        ascii::asciify(frame.buffer_mut());
    }
}

fn draw_overlay(frame: &mut Frame, body: ratatui::layout::Rect, app: &App) {
    match app.ui.mode {
        Mode::Help => overlays::draw_help(frame, app),
        Mode::Model => overlays::draw_model(frame, app),
        Mode::LayerStats => layer_stats::draw(frame, body, app),
        Mode::Resources => resources::draw(frame, body, app),
        Mode::QuitConfirm => overlays::draw_quit_confirm(frame, app),
        Mode::Normal | Mode::LrInput { .. } => {}
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::nn::LayerRow;
    use crate::train::{EpochMetrics, FilterImage, Phase, Snapshot, TrainEvent};
    use crate::tui::app::{Palette, RunInfo, Style};

    fn image(h: usize, w: usize, f: impl Fn(usize) -> f32) -> FilterImage {
        FilterImage {
            height: h,
            width: w,
            values: (0..h * w).map(f).collect(),
        }
    }

    /// A dashboard after a synthetic start, 150 batches, one epoch and a snapshot.
    pub(super) fn demo(style: Style) -> App {
        let mut app = App::new(
            RunInfo {
                name: "demo".into(),
                run_dir: PathBuf::from("runs/demo"),
                hyperparameters: vec![("optimizer".into(), "sgd".into())],
                configured_lr: Some(0.01),
                lr_factor: 2.0,
                watching: false,
                resume_command: None,
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
                    paused_seconds: 0.0,
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

    pub(super) fn screen(app: &App, w: u16, h: u16) -> Vec<String> {
        crate::tui::rows_of(&crate::tui::drawn(w, h, |f| draw(f, app)))
    }

    pub(super) const PLAIN_ASCII: Style = Style {
        ascii: true,
        color: false,
        palette: Palette::Indexed,
    };
    pub(super) const UNICODE_COLOR: Style = Style {
        ascii: false,
        color: true,
        palette: Palette::Indexed,
    };

    /// The demo app with a colour model's snapshot: 8 RGB filters (pure red, green or blue
    /// weights by filter) and a red probe, with the names of CIFAR-10.
    fn colour_app(style: Style) -> App {
        let mut app = demo(style);
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
        crate::tui::drawn(w, h, |f| draw(f, app))
            .content()
            .iter()
            .filter(|c| c.symbol() == "▀")
            .flat_map(|c| [c.fg, c.bg])
            .collect()
    }

    #[test]
    fn rgb_filters_and_probe_show_in_colour_or_as_a_row_per_channel() {
        use ratatui::style::Color;
        let truecolor = Style {
            palette: Palette::Rgb,
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
        let mut app = demo(UNICODE_COLOR);
        let rows = screen(&app, 80, 24);
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
            "1 loss",
            "2 acc",
            "lr (log) 0.05",
            "[4 probe and feature maps]",
            "probe #3 label 7 -> 7 97%",
            "2 of 8 maps of conv1, z: all",
            "E1/4",
            "? help",
        ] {
            assert!(all.contains(needle), "missing {needle}:\n{all}");
        }
        assert!(all.contains('▀'), "maps drawn with half blocks");
        assert_eq!(rows[23].trim_end(), crate::tui::keys::FOOTER);
        // Key 3 puts the filters in the maps' place.
        app.ui.pane = Pane::Filters;
        let all = screen(&app, 80, 24).join("\n");
        assert!(all.contains("[3 filters conv1 (1/2) 5x5 x8]"), "{all}");
        assert!(
            all.contains("blue - red +, one scale for the layer (f)"),
            "{all}"
        );
        // A narrow status line loses the model's name and optimizer, not the rate.
        let rows = screen(&app, 60, 24);
        assert_eq!(
            rows[0].trim_end(),
            "TRAINING | epoch 2/4 | 15.8k samples/s | ETA 1s | lr 0.05"
        );
    }

    #[test]
    fn accuracy_axis_stops_at_one() {
        let mut app = demo(UNICODE_COLOR);
        app.on_train_event(&TrainEvent::EpochEnd(EpochMetrics {
            epoch: 2,
            step: 200,
            loss: 0.01,
            accuracy: 1.0,
            val_loss: Some(0.02),
            val_accuracy: Some(1.0),
            lr: 0.05,
            seconds: 0.5,
            paused_seconds: 0.0,
        }));
        let rows: Vec<Vec<char>> = screen(&app, 80, 24)
            .iter()
            .map(|r| r.chars().collect())
            .collect();
        // The accuracy pane: from its title row down to its bottom border, left of its edge.
        let text = |r: &[char]| r.iter().collect::<String>();
        let top = rows
            .iter()
            .position(|r| text(r).contains("┌ 2 acc"))
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
        let rows = screen(&demo(PLAIN_ASCII), 120, 40);
        let all = rows.join("\n");
        assert!(all.is_ascii(), "non-ASCII in --ascii mode:\n{all}");
        assert!(all.contains("+ 1 loss "));
        // Filter tiles are drawn with the ASCII ramp: the most positive weight is '@'.
        assert!(rows.iter().any(|r| r.contains("@@")), "{all}");
        // The log pane is eight rows high (six lines) at this height.
        let log_top = rows.iter().position(|r| r.starts_with("+ 5 log ")).unwrap();
        assert_eq!(rows.len() - 1 - log_top, 8);
    }

    #[test]
    fn too_small_terminal_says_so() {
        let rows = screen(&demo(UNICODE_COLOR), 50, 15);
        assert!(
            rows.join(" ")
                .contains("terminal too small: 50x15, need at least 60x20")
        );
    }

    #[test]
    fn overlays_show_help_model_and_quit_confirmation() {
        let mut a = demo(PLAIN_ASCII);
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

    /// A 28x28 seven: a bar across the top and a stroke down to the lower left.
    fn seven() -> FilterImage {
        image(28, 28, |i| {
            let (y, x) = ((i / 28) as i32, (i % 28) as i32);
            let bar = (5..9).contains(&y) && (6..23).contains(&x);
            let stroke_x = 22 - (y - 9) * 10 / 15;
            let stroke = (9..25).contains(&y) && (x - stroke_x).abs() <= 1;
            if bar || stroke { 1.0 } else { 0.0 }
        })
    }

    #[test]
    fn zoomed_maps_show_the_probe_as_text_art_and_page_through_maps() {
        let mut app = demo(PLAIN_ASCII);
        let s = app.run.snapshot.as_mut().unwrap();
        s.probe_image = seven();
        // Map k: a vertical edge at column 3k, values 0 to k.
        s.feature_maps = (0..8)
            .map(|k| {
                image(
                    24,
                    24,
                    move |i| if i % 24 >= 3 * k { k as f32 } else { 0.0 },
                )
            })
            .collect();
        app.ui.zoomed = true;
        app.ui.item = 6;
        let rows = screen(&app, 80, 24);
        let expected = [
            "demo | TRAINING | epoch 2/4 | 15.8k samples/s | ETA 1s | lr 0.05 sgd(m 0.9)     ",
            "+ [4 probe and feature maps] --------------------------------------------------+",
            "|probe #3 label 7 -> 7 97%, 1 2%, 9 1%                                         |",
            "|conv1 map 7/8: 0.000 to 6.000 | page 2/2, arrows move                         |",
            "|                                [#7]            #8                            |",
            "|                                           @@@             +@                 |",
            "|                                           @@@             +@                 |",
            "|       @@@@@@@@@@@@@@@@@@                  @@@             +@                 |",
            "|       @@@@@@@@@@@@@@@@@@                  @@@             +@                 |",
            "|                       @@@                 @@@             +@                 |",
            "|                     +@@+                  @@@             +@                 |",
            "|                     @@@                   @@@             +@                 |",
            "|                   +@@+                                                       |",
            "|                  +@@+                                                        |",
            "|                 @@@                                                          |",
            "|              +@@@+                                                           |",
            "|             +@@@+                                                            |",
            "|            +++                                                               |",
            "|                                                                              |",
            "|                                                                              |",
            "|                                                                              |",
            "|                                                                              |",
            "+------------------------------------------------------------------------------+",
            "p pause +/- lr l set lr s save tab layer n probe z zoom m model ? help q quit   ",
        ];
        assert_eq!(rows, expected, "\n{}", rows.join("\n"));
        // The first page, and the zoomed filters: each pixel two columns by one row.
        app.ui.item = 0;
        let rows = screen(&app, 80, 24);
        assert_eq!(
            rows[3],
            "|conv1 map 1/8: 0.000 to 0.000 | page 1/2, arrows move                         |"
        );
        assert_eq!(
            rows[4],
            "|                                [#1]            #2             #3             |"
        );
        app.ui.pane = Pane::Filters;
        app.ui.item = 7;
        let rows = screen(&app, 80, 24);
        assert_eq!(
            &rows[1..5],
            [
                "+ [3 filters conv1 (1/2) 5x5 x8] ----------------------------------------------+",
                "|filter 8/8: -42.000 to 42.000                                                 |",
                "| #1         #2         #3         #4         #5         #6         #7         |",
                "|@@@@%%%%%% %%######## ********** ++++++++++ ========== ---------- ..::::::::  |",
            ]
        );
        assert_eq!(
            rows[10],
            "|[#8]                                                                          |"
        );
        assert_eq!(
            rows[22],
            "+ light - dark +, one scale for the layer (f) ---------------------------------+"
        );
    }

    #[test]
    fn a_long_run_is_charted_up_to_where_it_is_not_to_its_last_epoch() {
        let mut app = demo(PLAIN_ASCII);
        app.run.epochs = 300;
        app.run.epoch = 28;
        let rows = screen(&app, 80, 24);
        // The axes end at epoch 30, the next ten ahead of the run, not at 300.
        assert_eq!(&rows[8][..36], "|     0                   30 epochs|");
        assert!(rows.iter().all(|r| !r.contains("300 epochs")), "{rows:#?}");
        app.run.epoch = 300;
        let rows = screen(&app, 80, 24);
        assert_eq!(&rows[8][..36], "|     0                  300 epochs|");
    }

    #[test]
    fn legends_sit_in_the_title_with_the_latest_values_and_rate_changes_are_marked() {
        let mut app = demo(PLAIN_ASCII);
        let rows = screen(&app, 80, 24);
        assert_eq!(&rows[2][..36], "+ 1 loss .batch .0194 xval .2000 --+");
        assert!(
            rows.iter()
                .any(|r| r.starts_with("+ 2 acc *train .9100 xval .9400 ---+"))
        );
        app.on_train_event(&TrainEvent::LrChanged {
            step: 150,
            epoch: 2,
            from: 0.05,
            to: 0.025,
            source: crate::train::LrSource::Command,
        });
        let rows = screen(&app, 120, 40);
        assert_eq!(
            &rows[2][..60],
            "+ 1 loss .batch .0194 xval .2000 |lr ----------------------+"
        );
        // The rate's change at step 150 (epoch 1.5): a dotted line across the plot, at the
        // column of x = 1.5 of 4 epochs.
        let plot: Vec<&str> = rows[3..14].iter().map(|r| &r[7..59]).collect();
        let col = plot.iter().filter_map(|r| r.find('|')).min().unwrap();
        assert_eq!(col, 19, "{plot:#?}");
        assert!(
            plot.iter().filter(|r| r.as_bytes()[col] == b'|').count() >= 8,
            "{plot:#?}"
        );
        // Nothing else than the axis labels and the data inside: the legend is not drawn there.
        assert!(
            plot.iter()
                .all(|r| !r.contains("batch") && !r.contains("val"))
        );
        assert!(
            rows.join("\n")
                .contains("lr (log) 0.05 to 0.025, now 0.025")
        );
        // At 80 columns the range gives way; the current rate stays whole.
        app.on_train_event(&TrainEvent::LrChanged {
            step: 160,
            epoch: 2,
            from: 0.025,
            to: 0.003125,
            source: crate::train::LrSource::Command,
        });
        let rows = screen(&app, 80, 24);
        assert!(
            rows.iter()
                .any(|r| r.starts_with("+ lr (log) now 0.003125 -----------+")),
            "{rows:#?}"
        );
    }

    #[test]
    fn epoch_lines_keep_the_validation_accuracy_at_80_columns() {
        let rows = screen(&demo(PLAIN_ASCII), 80, 24);
        assert_eq!(
            rows[20],
            "|E1/4 0.5s loss .3000 acc .9100 vloss .2000 vacc .9400 lr .05                  |"
        );
        // Wide enough, the full Keras line.
        let rows = screen(&demo(PLAIN_ASCII), 120, 40);
        assert!(rows.iter().any(|r| r.starts_with(
            "|Epoch 1/4 - 0.5s - loss: 0.3000 - accuracy: 0.9100 - val_loss: 0.2000 - val_accuracy: 0.9400 - lr: 0.05 "
        )));
    }

    /// A validation set of 100 digits a class after epoch 3, with a few mistakes: 4 taken
    /// for 9 eleven times, 7 for 2 four times, 5 for 3 three times, 8 for 3 once.
    pub(super) fn digits_confusion() -> crate::train::Confusion {
        let mut labels = Vec::new();
        let mut predictions = Vec::new();
        let mistakes = [(4u8, 9u8, 11), (7, 2, 4), (5, 3, 3), (8, 3, 1)];
        for class in 0..10u8 {
            for k in 0..100 {
                labels.push(class);
                let wrong = mistakes
                    .iter()
                    .find(|m| m.0 == class && k < m.2)
                    .map(|m| m.1);
                predictions.push(wrong.unwrap_or(class));
            }
        }
        let names: Vec<String> = (0..10).map(|c| c.to_string()).collect();
        crate::train::Confusion::count(
            crate::train::EvalSplit::Validation,
            (3, 300),
            &names,
            &labels,
            &predictions,
        )
    }

    #[test]
    fn the_confusion_pane_at_80_columns_compact_and_zoomed() {
        let mut app = demo(PLAIN_ASCII);
        app.ui.pane = Pane::Confusion;
        let rows = screen(&app, 80, 24);
        assert!(
            rows.join("\n").contains("waiting for the first evaluation"),
            "{rows:#?}"
        );
        app.on_train_event(&TrainEvent::Confusion(Box::new(digits_confusion())));
        // Compact, in the maps' place: mistakes counted, the diagonal as `\`.
        let rows = screen(&app, 80, 24);
        let pane: Vec<&str> = rows[2..18].iter().map(|r| &r[36..]).collect();
        assert_eq!(
            pane,
            [
                "+ [6 confusion] ---------------------------+",
                "|val E3: 98.1% of 1000                     |",
                "|   0  1  2  3  4  5  6  7  8  9  acc      |",
                "|0  \\  .  .  .  .  .  .  .  .  . 100%      |",
                "|1  .  \\  .  .  .  .  .  .  .  . 100%      |",
                "|2  .  .  \\  .  .  .  .  .  .  . 100%      |",
                "|3  .  .  .  \\  .  .  .  .  .  . 100%      |",
                "|4  .  .  .  .  \\  .  .  .  . 11  89%      |",
                "|5  .  .  .  3  .  \\  .  .  .  .  97%      |",
                "|6  .  .  .  .  .  .  \\  .  .  . 100%      |",
                "|7  .  .  4  .  .  .  .  \\  .  .  96%      |",
                "|8  .  .  .  1  .  .  .  .  \\  .  99%      |",
                "|9  .  .  .  .  .  .  .  .  .  \\ 100%      |",
                "|worst: 4->9 11, 7->2 4, 5->3 3, 8->3 1    |",
                "|                                          |",
                "+------------------------------------------+",
            ],
            "\n{}",
            rows.join("\n")
        );
        // Zoomed (z): every count.
        app.ui.zoomed = true;
        let rows = screen(&app, 80, 24);
        assert_eq!(
            &rows[1..16],
            [
                "+ [6 confusion] ---------------------------------------------------------------+",
                "|validation after epoch 3: 981 of 1000 right (98.1%)                           |",
                "|true    0   1   2   3   4   5   6   7   8   9    acc                          |",
                "|0     100   .   .   .   .   .   .   .   .   . 100.0%                          |",
                "|1       . 100   .   .   .   .   .   .   .   . 100.0%                          |",
                "|2       .   . 100   .   .   .   .   .   .   . 100.0%                          |",
                "|3       .   .   . 100   .   .   .   .   .   . 100.0%                          |",
                "|4       .   .   .   .  89   .   .   .   .  11  89.0%                          |",
                "|5       .   .   .   3   .  97   .   .   .   .  97.0%                          |",
                "|6       .   .   .   .   .   . 100   .   .   . 100.0%                          |",
                "|7       .   .   4   .   .   .   .  96   .   .  96.0%                          |",
                "|8       .   .   .   1   .   .   .   .  99   .  99.0%                          |",
                "|9       .   .   .   .   .   .   .   .   . 100 100.0%                          |",
                "|worst: 4->9 11, 7->2 4, 5->3 3, 8->3 1                                        |",
                "|                                                                              |",
            ],
            "\n{}",
            rows.join("\n")
        );
        // Wide, not zoomed: the full form under the filters.
        app.ui.zoomed = false;
        let rows = screen(&app, 120, 40);
        assert_eq!(
            &rows[15][60..],
            "+ [6 confusion] -------------------------------------------+"
        );
        assert_eq!(
            &rows[22][60..],
            "|4       .   .   .   .  89   .   .   .   .  11  89.0%      |"
        );
    }

    /// A run of 30 epochs of 10 batches, 25 done: the loss falls from 2.3 to about 0.01.
    fn long_run(style: Style) -> App {
        let mut app = demo(style);
        app.on_train_event(&TrainEvent::Reset);
        app.on_train_event(&TrainEvent::Started {
            epochs: 30,
            batches_per_epoch: 10,
            train_samples: 320,
            validation_samples: 32,
            test_samples: 100,
            lr: 0.05,
            optimizer: "sgd".into(),
            layers: Vec::new(),
            params: 100,
            threads: 2,
        });
        for step in 1..=250u64 {
            let (epoch, batch) = (1 + (step as usize - 1) / 10, 1 + (step as usize - 1) % 10);
            let loss = 2.3 * (-(step as f32) / 50.0).exp();
            app.on_train_event(&TrainEvent::Batch {
                epoch,
                batch,
                step,
                loss,
                accuracy: 1.0 - loss / 2.5,
                lr: 0.05,
                samples_per_second: 1000.0,
            });
            if batch == 10 {
                app.on_train_event(&TrainEvent::EpochEnd(EpochMetrics {
                    epoch,
                    step,
                    loss: loss as f64,
                    accuracy: 1.0 - loss as f64 / 2.5,
                    val_loss: Some(loss as f64 * 1.5),
                    val_accuracy: Some(1.0 - loss as f64 / 2.0),
                    lr: 0.05,
                    seconds: 0.5,
                    paused_seconds: 0.0,
                }));
            }
        }
        app
    }

    #[test]
    fn chart_keys_put_the_loss_on_a_log_scale_and_show_the_last_epochs() {
        let mut app = long_run(PLAIN_ASCII);
        let press = |app: &mut App, k: char| {
            crate::tui::keys::handle_key(
                app,
                crossterm::event::KeyEvent::new(
                    crossterm::event::KeyCode::Char(k),
                    crossterm::event::KeyModifiers::NONE,
                ),
            );
        };
        let left = |rows: &[String], r: usize| rows[r][..36].to_string();
        let rows = screen(&app, 80, 24);
        assert_eq!(left(&rows, 2), "+ 1 loss .batch .0251 xval .0232 --+");
        // Linear, the last fifteen epochs lie flat on the axis.
        assert_eq!(left(&rows, 6), "|0.000|           xxxxxxxxxxxxx    |");
        // y: the loss on a log scale, said in the title; the axis down to the smallest loss.
        press(&mut app, 'y');
        let rows = screen(&app, 80, 24);
        assert_eq!(
            rows[2..9].iter().map(|r| &r[..36]).collect::<Vec<_>>(),
            [
                "+ 1 loss (log) ..0251 x.0232 ------+",
                "|2.359|..xxxx                      |",
                "|     |     xxxxxxxxx              |",
                "|     |             .xxxxxxx       |",
                "|0.019|                    .xxx    |",
                "|     +----------------------------|",
                "|     0                   30 epochs|",
            ]
        );
        // x: the last 10 epochs (15 to 25) on both charts, said in their titles.
        press(&mut app, 'x');
        let rows = screen(&app, 80, 24);
        assert_eq!(left(&rows, 2), "+ 1 loss (log) last10 ..0251 x.0232+");
        assert_eq!(left(&rows, 8), "|    15                    epoch 25|");
        // Training and validation points in one cell: one mark for both (#, ⊗ in Unicode).
        assert_eq!(left(&rows, 13), "+ 2 acc last10 *.9938 x.9923 #both +");
        assert_eq!(left(&rows, 16), "|    15                    epoch 25|");
        // Wider, the long forms and the series' names.
        let rows = screen(&app, 120, 40);
        assert_eq!(
            &rows[2][..60],
            "+ 1 loss (log) last 10 epochs .batch .0251 xval .0232 -----+"
        );
        assert!(
            rows.iter()
                .any(|r| r
                    .starts_with("+ 2 accuracy last 10 epochs *train .9938 xval .9923 #both -+")),
            "{rows:#?}"
        );
        // Both keys again: back to the linear whole run.
        press(&mut app, 'y');
        press(&mut app, 'x');
        assert_eq!(screen(&app, 80, 24), screen(&long_run(PLAIN_ASCII), 80, 24));
    }

    #[test]
    fn the_resources_overlay_from_a_fixed_state_here_and_in_watch() {
        use crate::tui::resources::{Resources, SlurmJob, ThreadCpu, TimeLeft};
        let mut app = demo(PLAIN_ASCII);
        app.ui.mode = Mode::Resources;
        let thread = |tid, name: &str, cpu| ThreadCpu {
            tid,
            name: name.into(),
            cpu,
        };
        app.on_resources(Resources {
            host: "node042".into(),
            pid: 4200,
            threads: vec![
                thread(4200, "cnn-tui", 0.02),
                thread(4201, "cnn-train", 0.98),
                thread(4202, "rayon-1", 0.5),
            ],
            rss_bytes: Some(123_456_789),
            slurm: Some(SlurmJob {
                id: "778".into(),
                time_left: Some(TimeLeft::Seconds(93784)),
            }),
        });
        for rate in [15000.0, 15800.0, 0.0, 7900.0] {
            app.run.samples_per_second = rate;
            app.tick_rate();
        }
        let rows = screen(&app, 80, 24);
        assert_eq!(
            &rows[2..11],
            [
                "+ resources (c closes) --------------------------------------------------------+",
                "|host node042, pid 4200                                                        |",
                "|Slurm job 778: 1-02:03:04 left before the walltime (squeue, every 30 s)       |",
                "|memory: 123.5 MB resident                                                     |",
                "|samples/s 7.9k (peak 15.8k, last 4s) ## -                                     |",
                "|CPU per thread (100% = one core): 3 threads, 1.50 cores in all                |",
                "|   4200 cnn-tui             2% #                                              |",
                "|   4201 cnn-train          98% ############################################## |",
                "|   4202 rayon-1            50% #######################                        |",
            ],
            "\n{}",
            rows.join("\n")
        );
        // Not all threads fit: the busiest, and how many more.
        let lines: Vec<String> = resources::lines(&app, 78, 7)
            .iter()
            .map(|l| l.to_string())
            .collect();
        assert_eq!(
            &lines[5..],
            [
                "   4201 cnn-train          98% ##############################################",
                "2 more threads",
            ]
        );
        app.info.watching = true;
        app.on_train_event(&TrainEvent::JobHost {
            host: "node042".into(),
            pid: 4200,
        });
        app.on_train_event(&TrainEvent::Heartbeat {
            unchanged_seconds: 3.0,
            silent: false,
        });
        let rows = screen(&app, 80, 24);
        assert_eq!(
            &rows[2..8],
            [
                "+ resources (c closes) --------------------------------------------------------+",
                "|job: host node042, pid 4200 (heartbeat unchanged for 3 s)                     |",
                "|samples/s 7.9k (peak 15.8k, last 4s) ## -                                     |",
                "|CPU per thread and memory are measured only for a run in this process: the run|",
                "|directory does not record them (top -H -p PID on the job's host shows them)   |",
                "|                                                                              |",
            ],
            "\n{}",
            rows.join("\n")
        );
    }

    #[test]
    fn the_log_scrolls_back_with_a_marker_and_stays_put_as_lines_arrive() {
        let mut app = demo(PLAIN_ASCII);
        for k in 0..10 {
            app.push_log(format!("line {k}"));
        }
        app.scroll_log(4);
        let rows = screen(&app, 80, 24);
        assert_eq!(
            &rows[19..23],
            [
                "|line 3                                                                        |",
                "|line 4                                                                        |",
                "|line 5                                                                        |",
                "+ v 4 newer lines below: pgdn, end --------------------------------------------+",
            ]
        );
        app.push_log("line 10".into());
        assert_eq!(screen(&app, 80, 24)[21], rows[21]);
        app.scroll_log(-100);
        assert_eq!(
            screen(&app, 80, 24)[21],
            "|line 10                                                                       |"
        );
    }
}

#[cfg(test)]
mod term_tests {
    use ratatui::style::Color;

    use super::tests::{demo, screen};
    use super::*;
    use crate::tui::app::Palette;
    use crate::tui::term::detect;

    /// The dashboard as TERM=linux sees it.
    fn linux() -> App {
        let env = |name: &str| match name {
            "TERM" => Some("linux".to_string()),
            "LANG" => Some("en_US.UTF-8".to_string()),
            _ => None,
        };
        let (style, notice) = detect(env, false, false);
        // Said once, as the newest line of the log here (at the start of a real run, its
        // first).
        demo(style).with_notice(notice)
    }

    #[test]
    fn term_linux_gets_ascii_16_colours_and_one_line_saying_so() {
        let app = linux();
        assert_eq!(
            (app.style.ascii, app.style.palette),
            (true, Palette::Ansi16)
        );
        let rows = screen(&app, 80, 24);
        let expected = [
            "demo | TRAINING | epoch 2/4 | 15.8k samples/s | ETA 1s | lr 0.05 sgd(m 0.9)     ",
            "[#########################-------------------------] batch 50/100 (50%) step 150",
            "+ 1 loss .batch .0194 xval .2000 --++ [4 probe and feature maps] --------------+",
            "|1.298| .                          ||probe #3 label 7 -> 7 97%, 1 2%, 9 1%     |",
            "|     | ..                         ||@%%#**++=--:. ..:--=++**#%  .::-=++*#%@   |",
            "|     |  ...                       ||@%%#**++=--:. ..:--=++**#%  .::-=++*#%@   |",
            "|0.000|    ...x...                 ||@%%#**++=--:. ..:--=++**#%  .::-=++*#%@   |",
            "|     +----------------------------||@%%#**++=--:. ..:--=++**#%  .::-=++*#%@   |",
            "|     0                    4 epochs||@%%#**++=--:. ..:--=++**#%  .::-=++*#%@   |",
            "+----------------------------------+|@%%#**++=--:. ..:--=++**#%  .::-=++*#%@   |",
            "+ lr (log) 0.05 -------------------+|@%%#**++=--:. ..:--=++**#%                |",
            "|-------------                     ||@%%#**++=--:. ..:--=++**#%  .::-=++*#%@   |",
            "+----------------------------------+|@%%#**++=--:. ..:--=++**#%  .::-=++*#%@   |",
            "+ 2 acc *train .9100 xval .9400 ---+|@%%#**++=--:. ..:--=++**#%  .::-=++*#%@   |",
            "|0.941|       #                    ||@%%#**++=--:. ..:--=++**#%  .::-=++*#%@   |",
            "|     +----------------------------||@%%#**++=--:. ..:--=++**#%  .::-=++*#%@   |",
            "|     0                    4 epochs||@%%#**++=--:. ..:--=++**#%  .::-=++*#%@   |",
            "+----------------------------------++ 2 of 8 maps of conv1, z: all ------------+",
            "+ 5 log -----------------------------------------------------------------------+",
            "|training on 6400 samples, validating on 640, testing on 1000; 5386 parameters;|",
            "|E1/4 0.5s loss .3000 acc .9100 vloss .2000 vacc .9400 lr .05                  |",
            "|TERM=linux: ASCII characters and 16 colours (--unicode forces Unicode)        |",
            "+------------------------------------------------------------------------------+",
            "p pause +/- lr l set lr s save tab layer n probe z zoom m model ? help q quit   ",
        ];
        assert_eq!(rows, expected);
        // Every colour on screen is one of the 16 (the probe and maps are tinted shades).
        let buf = crate::tui::drawn(80, 24, |f| draw(f, &app));
        let colours: Vec<Color> = buf.content().iter().flat_map(|c| [c.fg, c.bg]).collect();
        assert!(
            colours.contains(&Color::White),
            "the probe's brightest shade"
        );
        assert!(
            colours
                .iter()
                .all(|c| !matches!(c, Color::Indexed(_) | Color::Rgb(..))),
            "{colours:?}"
        );
    }

    #[test]
    fn unicode_forces_unicode_on_term_linux() {
        let env = |name: &str| (name == "TERM").then(|| "linux".to_string());
        let (style, notice) = detect(env, false, true);
        let rows = screen(&demo(style).with_notice(notice), 120, 40);
        let all = rows.join("\n");
        assert!(!all.is_ascii(), "{all}");
        assert!(
            all.contains("TERM=linux: Unicode (--unicode) and 16 colours"),
            "{all}"
        );
    }
}
