//! The dashboard: watch and steer a training run in the terminal.
//!
//! Three sources feed one channel: key presses (an input thread), training events (a pump
//! thread) and signals (flags checked by the loop). The loop records every training event in
//! the run directory, updates the `App` (its run view from events, its UI state from keys),
//! and redraws at most ten times a second, only when something changed. The training thread
//! never waits for it.

pub mod app;
pub mod keys;
pub mod ui;
pub mod view;
pub mod widgets;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyEventKind};

use crate::error::{Error, Result};
use crate::record::Recorder;
use crate::remote::inbox::{self, Inbox, Incoming};
use crate::signals::Signals;
use crate::train::{Command, TrainEvent};
use app::App;
use keys::handle_key;

/// Least time between two frames.
const FRAME: Duration = Duration::from_millis(100);
/// How long the loop sleeps when nothing happens (it still notices signals).
const IDLE: Duration = Duration::from_millis(500);

enum AppEvent {
    Input(Event),
    Train(TrainEvent),
    /// The training thread has ended (its event channel closed).
    TrainDone,
    /// The terminal is gone (seen by the input thread).
    HangUp,
}

/// How often the input thread looks for resizes when no key arrives.
const TICK: Duration = Duration::from_millis(100);

#[derive(PartialEq)]
enum Terminal {
    Gone,
    Alive,
}

/// Waits up to `timeout` for input on stdin (the dashboard's terminal).
fn terminal_input(timeout: Duration) -> Terminal {
    let mut fd = libc::pollfd {
        fd: 0,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: `fd` is one valid pollfd for the duration of the call.
    let n = unsafe { libc::poll(&mut fd, 1, timeout.as_millis() as libc::c_int) };
    let interrupted =
        n < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted;
    if (n < 0 && !interrupted) || fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
    {
        Terminal::Gone
    } else {
        Terminal::Alive
    }
}

/// Leaves the alternate screen and raw mode when dropped, unless disarmed.
struct RestoreOnDrop {
    armed: bool,
}

impl Drop for RestoreOnDrop {
    fn drop(&mut self) {
        if self.armed {
            ratatui::restore();
        }
    }
}

/// How the dashboard ended.
pub enum Outcome {
    /// The run ended (finished, stopped, diverged or failed) and the user left, or the
    /// terminal hung up and the run was followed to its end. When watching: the user left.
    Ended {
        /// Writing the run directory failed at some point (the run went on).
        record_error: Option<Error>,
    },
    /// The user aborted (second Ctrl-C or q after an abort request) before the run ended.
    Aborted,
}

/// Where the dashboard's events come from and its commands go.
pub struct Session<'a> {
    pub events: mpsc::Receiver<TrainEvent>,
    pub commands: mpsc::Sender<Command>,
    /// A run in this process: every event is recorded in its run directory, and commands
    /// dropped into its commands folder (by `ctl`, `watch`) are forwarded. `None` when
    /// watching a run through its directory.
    pub local: Option<(&'a mut Recorder, Inbox)>,
}

/// Runs the dashboard until the run has ended and the user leaves (or aborts, or, when
/// watching, leaves).
pub fn run(session: Session, mut app: App, signals: &Signals) -> Result<Outcome> {
    let mut terminal =
        ratatui::try_init().map_err(|e| Error::terminal("set up the dashboard", e))?;
    // Restores the terminal on every way out of this function, errors included (panics are
    // covered by the hook `try_init` installed).
    let mut restore = RestoreOnDrop { armed: true };
    let (tx, rx) = mpsc::channel::<AppEvent>();
    let input_stop = Arc::new(AtomicBool::new(false));
    {
        let (tx, stop) = (tx.clone(), Arc::clone(&input_stop));
        std::thread::Builder::new()
            .name("tui-input".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    // Wait on the terminal ourselves: on a hung-up terminal crossterm's poll
                    // would spin, and we want to notice the hang-up even without SIGHUP.
                    if terminal_input(TICK) == Terminal::Gone {
                        let _ = tx.send(AppEvent::HangUp);
                        return;
                    }
                    // Keys that arrived, and resizes (which come by signal, not input).
                    while let Ok(true) = event::poll(Duration::ZERO) {
                        let Ok(ev) = event::read() else {
                            let _ = tx.send(AppEvent::HangUp);
                            return;
                        };
                        if tx.send(AppEvent::Input(ev)).is_err() {
                            return;
                        }
                    }
                }
            })
            .map_err(|e| Error::system("start the input thread", e))?;
    }
    let Session {
        commands,
        events,
        mut local,
    } = session;
    std::thread::Builder::new()
        .name("tui-train-pump".into())
        .spawn(move || {
            for ev in events {
                if tx.send(AppEvent::Train(ev)).is_err() {
                    return;
                }
            }
            let _ = tx.send(AppEvent::TrainDone);
        })
        .map_err(|e| Error::system("start the event pump thread", e))?;

    let send = |c: Command| {
        let _ = commands.send(c);
    };
    let watching = app.info.watching;
    let mut last_draw: Option<Instant> = None;
    let mut train_done = false;
    let mut detached = false;
    let mut hung_up = false;
    let mut aborted = false;
    let mut leave = false;
    let mut record_error: Option<Error> = None;
    loop {
        let wait = if app.ui.dirty && !detached {
            last_draw.map_or(Duration::ZERO, |t| FRAME.saturating_sub(t.elapsed()))
        } else if local.is_some() {
            inbox::POLL_EVERY
        } else {
            IDLE
        };
        let first = match rx.recv_timeout(wait) {
            Ok(ev) => Some(ev),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        for ev in first
            .into_iter()
            .chain(std::iter::from_fn(|| rx.try_recv().ok()))
        {
            match ev {
                AppEvent::Train(ev) => {
                    if let Some((recorder, _)) = local.as_mut()
                        && let Err(e) = recorder.record(&ev)
                    {
                        app.push_log(format!("cannot write the run directory: {e}"));
                        record_error.get_or_insert(e);
                    }
                    app.on_train_event(&ev);
                }
                AppEvent::TrainDone => train_done = true,
                AppEvent::HangUp => hung_up = true,
                AppEvent::Input(Event::Key(key)) if key.kind == KeyEventKind::Press => {
                    let out = handle_key(&mut app, key);
                    out.commands.into_iter().for_each(send);
                    // Leaving after the run has ended is a normal quit, not an abort; a watcher
                    // just leaves, the run is not its to end.
                    if out.abort && watching {
                        leave = true;
                    } else if out.abort && (train_done || app.run.state.is_over()) {
                        app.ui.quitting = true;
                    } else {
                        aborted |= out.abort;
                    }
                }
                AppEvent::Input(_) => app.ui.dirty = true, // resize and the like: redraw
            }
        }
        if let Some((recorder, inbox)) = local.as_mut() {
            for incoming in inbox.poll() {
                match incoming {
                    Incoming::Command(c) => send(c),
                    Incoming::Refused { file, reason } => {
                        let line = recorder.command_refused(&file, &reason);
                        app.push_log(line);
                    }
                }
            }
        }
        if let Some(name) = signals.take_interrupt() {
            app.ui.quitting = true;
            if watching {
                break;
            }
            app.push_log(format!(
                "{name} received: saving a checkpoint and stopping after this batch"
            ));
            send(Command::Interrupt(name.to_string()));
        }
        if (signals.take_hangup() || hung_up) && !detached {
            // The terminal is gone: stop drawing, keep training and recording, leave at the end.
            detached = true;
            app.ui.quitting = true;
            input_stop.store(true, Ordering::Relaxed);
            if watching {
                break;
            }
            send(Command::Unattended);
            if let Some((recorder, _)) = local.as_mut() {
                let _ =
                    recorder.log_line("terminal hung up: training continues without the dashboard");
            }
        }
        if aborted || leave || (train_done && app.ui.quitting) {
            break;
        }
        let frame_due = last_draw.is_none_or(|t| t.elapsed() >= FRAME);
        if app.ui.dirty && !detached && frame_due {
            terminal
                .draw(|f| ui::draw(f, &app))
                .map_err(|e| Error::terminal("draw", e))?;
            app.ui.dirty = false;
            last_draw = Some(Instant::now());
        }
    }
    input_stop.store(true, Ordering::Relaxed);
    // A hung-up terminal is not written to again.
    restore.armed = !detached;
    drop(restore);
    if detached {
        // Its drop would try to show the cursor on a terminal that is gone.
        std::mem::forget(terminal);
    }
    if !detached {
        let mut out = std::io::stdout();
        for line in app.exit_summary() {
            let _ = writeln!(out, "{line}");
        }
    }
    if aborted {
        return Ok(Outcome::Aborted);
    }
    Ok(Outcome::Ended { record_error })
}
