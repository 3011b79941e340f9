//! Keys: one table for the footer and help overlay, and the mapping from key to action.
//! Ctrl-S and Ctrl-Q are never bound (terminal flow control).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::app::{App, Mode, Pane};

/// Lines a PgUp or PgDn scrolls the log.
const LOG_PAGE: isize = 4;
use crate::train::{Command, Steer};

/// (keys, what they do), in the order the help shows them.
pub(crate) const BINDINGS: &[(&str, &str)] = &[
    ("space/p", "pause or resume (before the next batch)"),
    ("+ / -", "multiply / divide the learning rate by the factor"),
    ("l", "type an exact learning rate"),
    ("s", "save a checkpoint now"),
    ("r", "restore the last good weights (while paused)"),
    ("tab/arrows", "choose the conv layer shown"),
    ("n / N", "next / previous probe image"),
    (
        "1-6",
        "select a pane: loss, accuracy, filters, maps, log, confusion",
    ),
    ("z", "zoom the selected pane (z or esc returns)"),
    ("arrows", "when zoomed on filters or maps: select one, page"),
    ("f", "filters on one scale for the layer / each its own"),
    ("y", "loss axis: log scale / linear"),
    ("x", "loss and accuracy: last 10 epochs / whole run"),
    ("pgup/pgdn", "scroll the log (end: back to the newest)"),
    ("m", "model summary and hyperparameters"),
    (
        "w",
        "per-layer weights, gradients, update ratios, dead ReLUs",
    ),
    (
        "c",
        "resources: CPU per thread, memory, samples/s, host, Slurm",
    ),
    ("?", "this help"),
    (
        "q",
        "quit (asks first while training; in watch: leave, the run goes on)",
    ),
    ("ctrl-c", "stop gracefully; twice aborts"),
];

/// The short footer line.
pub(crate) const FOOTER: &str =
    "p pause +/- lr l set lr s save tab layer n probe z zoom m model ? help q quit";

/// The footer while paused: resuming, and restoring, are what one may want now.
pub(crate) const PAUSED_FOOTER: &str =
    "p resume +/-/l lr s save r restore tab layer n probe z zoom ? help q quit";

/// What a key press asks of the loop.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct KeyOutcome {
    pub(crate) commands: Vec<Command>,
    /// Leave at once, without waiting for the run to end (second Ctrl-C).
    pub(crate) abort: bool,
}

impl KeyOutcome {
    fn command(c: Command) -> KeyOutcome {
        KeyOutcome {
            commands: vec![c],
            abort: false,
        }
    }
}

pub(crate) fn handle_key(app: &mut App, key: KeyEvent) -> KeyOutcome {
    app.ui.dirty = true;
    // A hint lasts until the next key.
    app.ui.hint = None;
    let ctrl_c = key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL);
    // Watching: q and ctrl-c leave at once, the run goes on.
    if app.info.watching
        && matches!(app.ui.mode, Mode::Normal | Mode::QuitConfirm)
        && (ctrl_c || key.code == KeyCode::Char('q'))
    {
        return KeyOutcome {
            commands: vec![],
            abort: true,
        };
    }
    if ctrl_c {
        app.ui.interrupts += 1;
        if app.ui.interrupts >= 2 || app.run.state.is_over() {
            return KeyOutcome {
                commands: vec![],
                abort: true,
            };
        }
        app.ui.quitting = true;
        app.push_log("stopping after this batch (ctrl-c again to abort)".into());
        return KeyOutcome::command(Command::Steer(Steer::Stop));
    }
    match app.ui.mode.clone() {
        Mode::Help | Mode::Model | Mode::LayerStats | Mode::Resources => {
            app.ui.mode = Mode::Normal;
            KeyOutcome::default()
        }
        Mode::LrInput { mut text, .. } => match key.code {
            KeyCode::Esc => {
                app.ui.mode = Mode::Normal;
                KeyOutcome::default()
            }
            KeyCode::Enter => match App::parse_lr(&text) {
                Ok(lr) => {
                    app.ui.mode = Mode::Normal;
                    KeyOutcome::command(Command::Steer(Steer::Lr { value: lr }))
                }
                Err(e) => {
                    // The error quotes what was typed; the field is empty for the next try.
                    app.ui.mode = Mode::LrInput {
                        text: String::new(),
                        error: Some(e),
                    };
                    KeyOutcome::default()
                }
            },
            KeyCode::Backspace => {
                text.pop();
                app.ui.mode = Mode::LrInput { text, error: None };
                KeyOutcome::default()
            }
            KeyCode::Char(c) if (c.is_ascii_digit() || ".eE-+".contains(c)) && text.len() < 24 => {
                text.push(c);
                app.ui.mode = Mode::LrInput { text, error: None };
                KeyOutcome::default()
            }
            _ => KeyOutcome::default(),
        },
        Mode::QuitConfirm => match key.code {
            KeyCode::Char('s') => {
                app.ui.quitting = true;
                KeyOutcome {
                    commands: vec![Command::Steer(Steer::Save), Command::Steer(Steer::Stop)],
                    abort: false,
                }
            }
            KeyCode::Char('q') | KeyCode::Char('y') => {
                app.ui.quitting = true;
                KeyOutcome::command(Command::Steer(Steer::Stop))
            }
            _ => {
                app.ui.mode = Mode::Normal;
                KeyOutcome::default()
            }
        },
        Mode::Normal => normal_key(app, key),
    }
}

fn normal_key(app: &mut App, key: KeyEvent) -> KeyOutcome {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return KeyOutcome::default();
    }
    let over = app.run.state.is_over();
    let zoomed_on_items = app.ui.zoomed && matches!(app.ui.pane, Pane::Filters | Pane::Maps);
    let command = match key.code {
        KeyCode::Char('z') => {
            app.ui.zoomed = !app.ui.zoomed;
            None
        }
        KeyCode::Esc if app.ui.zoomed => {
            app.ui.zoomed = false;
            None
        }
        KeyCode::Char(c) if Pane::ALL.iter().any(|p| p.key() == c) => {
            app.ui.pane = Pane::ALL
                .into_iter()
                .find(|p| p.key() == c)
                .unwrap_or(Pane::Maps);
            app.ui.item = 0;
            None
        }
        KeyCode::Char('f') => {
            app.ui.per_filter_scale = !app.ui.per_filter_scale;
            None
        }
        KeyCode::Char('y') => {
            app.ui.log_loss = !app.ui.log_loss;
            None
        }
        KeyCode::Char('x') => {
            app.ui.recent_epochs = !app.ui.recent_epochs;
            None
        }
        KeyCode::Right | KeyCode::Down if zoomed_on_items => {
            app.select_item(1);
            None
        }
        KeyCode::Left | KeyCode::Up if zoomed_on_items => {
            app.select_item(-1);
            None
        }
        KeyCode::PageUp => {
            app.scroll_log(LOG_PAGE);
            None
        }
        KeyCode::PageDown => {
            app.scroll_log(-LOG_PAGE);
            None
        }
        KeyCode::End => {
            app.ui.log_back = 0;
            None
        }
        KeyCode::Char(' ') | KeyCode::Char('p') => app.toggle_pause(),
        KeyCode::Char('+') | KeyCode::Char('=') if !over => Some(app.scale_lr(true)),
        KeyCode::Char('-') | KeyCode::Char('_') if !over => Some(app.scale_lr(false)),
        KeyCode::Char('s') if !over => Some(Command::Steer(Steer::Save)),
        KeyCode::Char('r') if app.run.is_paused() => Some(Command::Steer(Steer::Restore)),
        KeyCode::Char('r') => {
            app.ui.hint = Some(if over {
                "r does nothing: the run is over".into()
            } else {
                "r restores the last good weights only while paused: p pauses first".into()
            });
            None
        }
        KeyCode::Char('l') if !over => {
            app.ui.mode = Mode::LrInput {
                text: String::new(),
                error: None,
            };
            None
        }
        KeyCode::Tab | KeyCode::Right | KeyCode::Down => Some(app.select_layer(1)),
        KeyCode::BackTab | KeyCode::Left | KeyCode::Up => Some(app.select_layer(-1)),
        KeyCode::Char('n') => Some(app.select_probe(1)),
        KeyCode::Char('N') => Some(app.select_probe(-1)),
        KeyCode::Char('?') => {
            app.ui.mode = Mode::Help;
            None
        }
        KeyCode::Char('m') => {
            app.ui.mode = Mode::Model;
            None
        }
        KeyCode::Char('w') => {
            app.ui.mode = Mode::LayerStats;
            None
        }
        KeyCode::Char('c') => {
            app.ui.mode = Mode::Resources;
            None
        }
        // Esc only closes things (overlays, the zoom); q leaves.
        KeyCode::Char('q') if over => {
            return KeyOutcome {
                commands: vec![],
                abort: true,
            };
        }
        KeyCode::Char('q') => {
            app.ui.mode = Mode::QuitConfirm;
            None
        }
        _ => None,
    };
    KeyOutcome {
        commands: command.into_iter().collect(),
        abort: false,
    }
}

/// The footer while watching a run started elsewhere.
pub(crate) const WATCH_FOOTER: &str =
    "p pause +/- lr l set lr s save tab layer n probe z zoom m model ? help q leave";

/// The footer while watching a paused run.
pub(crate) const WATCH_PAUSED_FOOTER: &str =
    "p resume +/-/l lr s save r restore tab layer n probe z zoom ? help q leave";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{Phase, TrainEvent};
    use crate::tui::app::{Palette, RunInfo, RunState, Style};

    fn key(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)
    }

    fn app() -> App {
        let mut app = App::new(
            RunInfo {
                lr_factor: 2.0,
                ..Default::default()
            },
            Style {
                ascii: true,
                color: false,
                palette: Palette::Indexed,
            },
        );
        app.on_train_event(&TrainEvent::Phase(Phase::Training));
        app
    }

    #[test]
    fn pause_lr_and_save_keys_send_commands() {
        let mut a = app();
        assert_eq!(
            handle_key(&mut a, key('p')).commands,
            vec![Command::Steer(Steer::Pause)]
        );
        a.run.state = RunState::Running(Phase::Paused);
        assert_eq!(
            handle_key(&mut a, key(' ')).commands,
            vec![Command::Steer(Steer::Resume)]
        );
        assert_eq!(
            handle_key(&mut a, key('+')).commands,
            vec![Command::Steer(Steer::LrScale { factor: 2.0 })]
        );
        assert_eq!(
            handle_key(&mut a, key('-')).commands,
            vec![Command::Steer(Steer::LrScale { factor: 0.5 })]
        );
        assert_eq!(
            handle_key(&mut a, key('s')).commands,
            vec![Command::Steer(Steer::Save)]
        );
    }

    #[test]
    fn typed_learning_rate_is_validated() {
        let mut a = app();
        handle_key(&mut a, key('l'));
        // Letters other than e are not even typed; "0.e" is typed but is no number.
        for c in "0.xe".chars() {
            handle_key(&mut a, key(c));
        }
        let enter = KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE);
        assert!(handle_key(&mut a, enter).commands.is_empty());
        // The error quotes what was typed, and the field is empty again.
        assert_eq!(
            a.ui.mode,
            Mode::LrInput {
                text: String::new(),
                error: Some("'0.e' is not a number".into())
            }
        );
        for c in "-1".chars() {
            handle_key(&mut a, key(c));
        }
        assert!(handle_key(&mut a, enter).commands.is_empty());
        assert!(
            matches!(&a.ui.mode, Mode::LrInput { text, error: Some(e) } if text.is_empty() && e.starts_with("'-1': the learning rate")),
            "{:?}",
            a.ui.mode
        );
        for c in "0.05".chars() {
            handle_key(&mut a, key(c));
        }
        assert_eq!(
            handle_key(&mut a, enter).commands,
            vec![Command::Steer(Steer::Lr { value: 0.05 })]
        );
        assert_eq!(a.ui.mode, Mode::Normal);
    }

    #[test]
    fn quit_asks_first_and_ctrl_c_twice_aborts() {
        let mut a = app();
        assert!(handle_key(&mut a, key('q')).commands.is_empty());
        assert_eq!(a.ui.mode, Mode::QuitConfirm);
        assert!(handle_key(&mut a, key('c')).commands.is_empty());
        assert_eq!(a.ui.mode, Mode::Normal);
        handle_key(&mut a, key('q'));
        let out = handle_key(&mut a, key('s'));
        assert_eq!(
            out.commands,
            vec![Command::Steer(Steer::Save), Command::Steer(Steer::Stop)]
        );
        assert!(a.ui.quitting);

        let mut a = app();
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(
            handle_key(&mut a, ctrl_c).commands,
            vec![Command::Steer(Steer::Stop)]
        );
        assert!(handle_key(&mut a, ctrl_c).abort);
        // Ctrl-S and Ctrl-Q do nothing (flow control).
        let mut a = app();
        let ctrl_s = KeyEvent::new(KeyCode::Char('s'), KeyModifiers::CONTROL);
        assert_eq!(handle_key(&mut a, ctrl_s), KeyOutcome::default());
    }

    #[test]
    fn r_says_why_it_does_nothing_and_esc_never_quits() {
        let mut a = app();
        assert!(handle_key(&mut a, key('r')).commands.is_empty());
        assert_eq!(
            a.ui.hint.as_deref(),
            Some("r restores the last good weights only while paused: p pauses first")
        );
        // The hint goes with the next key.
        handle_key(&mut a, key('1'));
        assert_eq!(a.ui.hint, None);
        a.run.state = RunState::Running(Phase::Paused);
        assert_eq!(
            handle_key(&mut a, key('r')).commands,
            vec![Command::Steer(Steer::Restore)]
        );
        // Finished: Esc closes the help, then does nothing; q leaves.
        let esc = KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE);
        a.run.state = RunState::Finished(crate::train::StopReason::Completed);
        handle_key(&mut a, key('?'));
        assert_eq!(handle_key(&mut a, esc), KeyOutcome::default());
        assert_eq!(a.ui.mode, Mode::Normal);
        assert_eq!(handle_key(&mut a, esc), KeyOutcome::default());
        assert!(handle_key(&mut a, key('q')).abort);
        // Watching, too, Esc only closes; q leaves.
        a.info.watching = true;
        a.run.state = RunState::Running(Phase::Training);
        assert_eq!(handle_key(&mut a, esc), KeyOutcome::default());
        assert!(handle_key(&mut a, key('q')).abort);
    }

    #[test]
    fn zoom_pane_selection_filter_scale_and_log_scroll() {
        let mut a = app();
        let esc = KeyEvent::new(KeyCode::Esc, KeyModifiers::NONE);
        let right = KeyEvent::new(KeyCode::Right, KeyModifiers::NONE);
        assert_eq!(a.ui.pane, Pane::Maps);
        handle_key(&mut a, key('z'));
        assert!(a.ui.zoomed);
        // Zoomed on the maps, the arrows choose a map (none yet: it stays at 0), not a layer.
        assert!(handle_key(&mut a, right).commands.is_empty());
        assert_eq!(a.ui.item, 0);
        handle_key(&mut a, key('3'));
        assert_eq!((a.ui.pane, a.ui.zoomed), (Pane::Filters, true));
        // Esc leaves the zoom, and only that: the run goes on.
        assert_eq!(handle_key(&mut a, esc), KeyOutcome::default());
        assert!(!a.ui.zoomed);
        assert_eq!(
            handle_key(&mut a, right).commands.len(),
            1,
            "a layer change"
        );
        handle_key(&mut a, key('f'));
        assert!(a.ui.per_filter_scale);
        for k in 0..20 {
            a.push_log(format!("{k}"));
        }
        handle_key(&mut a, KeyEvent::new(KeyCode::PageUp, KeyModifiers::NONE));
        assert_eq!(a.ui.log_back, LOG_PAGE as usize);
        handle_key(&mut a, KeyEvent::new(KeyCode::End, KeyModifiers::NONE));
        assert_eq!(a.ui.log_back, 0);
    }
}
