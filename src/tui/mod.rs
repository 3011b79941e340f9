//! The dashboard: watch and steer a training run in the terminal.
//!
//! It serves a run in this process (hosted by [`crate::host`]: the run directory, command
//! files, SIGTERM and SIGHUP are the host's business) and a run watched through its run
//! directory alike: events in, commands out. Two sources feed one channel: key presses (an
//! input thread) and the run's events (a pump thread). The loop updates the `App` (its run view
//! from events, its UI state from keys) and redraws at most ten times a second, only when
//! something changed. The run never waits for it.

pub mod app;
pub mod compare;
pub mod keys;
pub mod resources;
pub mod term;
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
use crate::train::{Command, TrainEvent};
use app::App;
use keys::handle_key;

/// Least time between two frames.
const FRAME: Duration = Duration::from_millis(100);
/// How long the loop sleeps when nothing happens.
const IDLE: Duration = Duration::from_millis(500);

enum AppEvent {
    Input(Event),
    Train(TrainEvent),
    /// The run's events have ended (their channel closed).
    TrainDone,
    /// The terminal is gone (seen by the input thread).
    HangUp,
    /// A look at this process's resources (the sampler thread).
    Resources(Box<resources::Resources>),
}

/// How often the input thread looks for resizes when no key arrives.
const TICK: Duration = Duration::from_millis(100);

#[derive(PartialEq)]
pub(crate) enum Terminal {
    Gone,
    Alive,
}

/// Waits up to `timeout` for input on stdin (the dashboard's terminal).
pub(crate) fn terminal_input(timeout: Duration) -> Terminal {
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
pub(crate) enum Outcome {
    /// The run ended (finished, stopped, diverged or failed) and the user left, or the
    /// terminal hung up and the run was followed to its end. When watching: the user left.
    Ended,
    /// The user aborted (second Ctrl-C or q after an abort request) before the run ended.
    Aborted,
}

/// Where the dashboard's events come from and its commands go: the host of a run in this
/// process, or `watch`'s feed from a run directory.
pub(crate) struct Session {
    pub(crate) events: mpsc::Receiver<TrainEvent>,
    pub(crate) commands: mpsc::Sender<Command>,
}

/// Runs the dashboard until the run has ended and the user leaves (or aborts, or, when
/// watching, leaves).
pub(crate) fn run(session: Session, mut app: App) -> Result<Outcome> {
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
    // This process's resources, a look a second (not in watch: the run is elsewhere).
    if !app.info.watching {
        let (tx, stop) = (tx.clone(), Arc::clone(&input_stop));
        let job = std::env::var("SLURM_JOB_ID").ok();
        std::thread::Builder::new()
            .name("tui-resources".into())
            .spawn(move || {
                let mut sampler = resources::Sampler::new(job);
                while !stop.load(Ordering::Relaxed) {
                    if tx
                        .send(AppEvent::Resources(Box::new(sampler.sample())))
                        .is_err()
                    {
                        return;
                    }
                    std::thread::sleep(resources::EVERY);
                }
            })
            .map_err(|e| Error::system("start the resources thread", e))?;
    }
    let Session { commands, events } = session;
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

    let mut rate_tick = Instant::now();
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
    loop {
        let wait = if app.ui.dirty && !detached {
            last_draw.map_or(Duration::ZERO, |t| FRAME.saturating_sub(t.elapsed()))
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
                    app.on_train_event(&ev);
                    match ev {
                        // The run saves a checkpoint and stops (its host saw to it); a
                        // watcher leaves at once.
                        TrainEvent::Interrupt { .. } => {
                            app.ui.quitting = true;
                            leave |= watching;
                        }
                        TrainEvent::HangUp => hung_up = true,
                        _ => {}
                    }
                }
                AppEvent::TrainDone => train_done = true,
                AppEvent::Resources(r) => app.on_resources(*r),
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
        if hung_up && !detached && !leave {
            // The terminal is gone: stop drawing, leave when the run has ended (its host keeps
            // it going).
            detached = true;
            app.ui.quitting = true;
            input_stop.store(true, Ordering::Relaxed);
            if watching {
                break;
            }
            send(Command::Unattended);
        }
        if rate_tick.elapsed() >= resources::EVERY {
            rate_tick = Instant::now();
            app.tick_rate();
        }
        let ended = train_done || app.run.state.is_over();
        if aborted || leave || (ended && app.ui.quitting) {
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
    Ok(Outcome::Ended)
}

/// What `draw` puts on a `w` x `h` screen (ratatui's `TestBackend`), for the widgets' tests.
#[cfg(test)]
pub(crate) fn drawn(
    w: u16,
    h: u16,
    draw: impl FnOnce(&mut ratatui::Frame),
) -> ratatui::buffer::Buffer {
    let mut terminal = ratatui::Terminal::new(ratatui::backend::TestBackend::new(w, h)).unwrap();
    terminal.draw(draw).unwrap();
    terminal.backend().buffer().clone()
}

/// The rows of `buf` as text, one symbol per cell.
#[cfg(test)]
pub(crate) fn rows_of(buf: &ratatui::buffer::Buffer) -> Vec<String> {
    let area = buf.area;
    (area.top()..area.bottom())
        .map(|y| {
            (area.left()..area.right())
                .map(|x| buf[(x, y)].symbol())
                .collect()
        })
        .collect()
}
