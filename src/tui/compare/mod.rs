//! `watch RUN1 RUN2 ...` / `watch SWEEP_DIR`: several runs' curves overlaid, one colour and
//! one letter each, with their table. The state is the runs' labels and curves (from
//! [`crate::compare`]'s feed) and a little UI state; [`draw`] is a pure function of it.
//! Keys: 1-3 (or Tab) select a pane, `z` zooms it, `?` helps, `q` leaves; the runs go on.

pub(crate) mod draw;

use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use crossterm::event::{self, Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::Style;
use crate::compare::RunLabel;
use crate::compare::curves::RunCurves;
use crate::compare::feed::Update;
use crate::error::{Error, Result};

/// A pane of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pane {
    Loss,
    Accuracy,
    Runs,
}

impl Pane {
    pub(crate) const ALL: [Pane; 3] = [Pane::Loss, Pane::Accuracy, Pane::Runs];

    pub(crate) fn key(self) -> char {
        match self {
            Pane::Loss => '1',
            Pane::Accuracy => '2',
            Pane::Runs => '3',
        }
    }
}

/// The comparison's state: the runs as read, and what the person is doing.
#[derive(Debug)]
pub(crate) struct CompareApp {
    /// The run directories, in the order of their letters (labels are read from them again
    /// when a run joins).
    pub(crate) dirs: Vec<std::path::PathBuf>,
    pub(crate) labels: Vec<RunLabel>,
    pub(crate) runs: Vec<RunCurves>,
    pub(crate) style: Style,
    pub(crate) pane: Pane,
    pub(crate) zoomed: bool,
    pub(crate) help: bool,
    /// One line about the terminal (it falls back to ASCII), shown in the footer.
    pub(crate) notice: Option<String>,
    dirty: bool,
}

impl CompareApp {
    pub(crate) fn new(labels: Vec<RunLabel>, style: Style) -> CompareApp {
        CompareApp {
            dirs: Vec::new(),
            runs: vec![RunCurves::default(); labels.len()],
            labels,
            style,
            pane: Pane::Loss,
            zoomed: false,
            help: false,
            notice: None,
            dirty: true,
        }
    }

    /// Takes in what the feed found.
    pub(crate) fn update(&mut self, updates: Vec<Update>) {
        for u in updates {
            if let Update::Added(dir) = &u {
                // Who differs in what may change with a new run.
                self.dirs.push(dir.clone());
                self.labels = crate::compare::labels(&self.dirs);
            }
            u.apply(&mut self.runs);
        }
        self.dirty = true;
    }

    /// Handles a key; false when it asks to leave.
    pub(crate) fn key(&mut self, key: KeyEvent) -> bool {
        self.dirty = true;
        let ctrl_c =
            key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c');
        if ctrl_c || key.code == KeyCode::Char('q') {
            return false;
        }
        if self.help {
            // Any key closes the help.
            self.help = false;
            return true;
        }
        match key.code {
            KeyCode::Char('?') => self.help = true,
            KeyCode::Char('z') => self.zoomed = !self.zoomed,
            KeyCode::Esc => self.zoomed = false,
            KeyCode::Tab => {
                let i = Pane::ALL.iter().position(|&p| p == self.pane).unwrap_or(0);
                self.pane = Pane::ALL[(i + 1) % Pane::ALL.len()];
            }
            KeyCode::Char(c) => {
                if let Some(&p) = Pane::ALL.iter().find(|p| p.key() == c) {
                    self.pane = p;
                }
            }
            _ => {}
        }
        true
    }
}

/// What the front end's signal handling says between two frames (the dashboard does not own
/// the signals: the command line hands it this question).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Halt {
    /// Go on.
    Go,
    /// Leave as on `q` (SIGINT, SIGTERM).
    Stop,
    /// The terminal hung up (SIGHUP): leave without drawing again.
    Gone,
}

/// Least time between two frames.
const FRAME: Duration = Duration::from_millis(100);

/// Shows the comparison until the person leaves (q, Ctrl-C), a signal asks to stop, or the
/// terminal goes away.
pub(crate) fn run(
    mut app: CompareApp,
    updates: Receiver<Vec<Update>>,
    halt: impl Fn() -> Halt,
) -> Result<()> {
    let mut terminal =
        ratatui::try_init().map_err(|e| Error::terminal("set up the dashboard", e))?;
    let mut last_draw: Option<Instant> = None;
    let mut gone = false;
    'run: loop {
        while let Ok(found) = updates.try_recv() {
            app.update(found);
        }
        match halt() {
            Halt::Go => {}
            Halt::Stop => break,
            Halt::Gone => {
                gone = true;
                break;
            }
        }
        if app.dirty && last_draw.is_none_or(|t| t.elapsed() >= FRAME) {
            if let Err(e) = terminal.draw(|f| draw::draw(f, &app)) {
                ratatui::restore();
                return Err(Error::terminal("draw", e));
            }
            app.dirty = false;
            last_draw = Some(Instant::now());
        }
        if super::terminal_input(FRAME) == super::Terminal::Gone {
            gone = true;
            break;
        }
        while let Ok(true) = event::poll(Duration::ZERO) {
            match event::read() {
                Ok(Event::Key(key)) if key.kind == KeyEventKind::Press => {
                    if !app.key(key) {
                        break 'run;
                    }
                }
                Ok(_) => app.dirty = true,
                Err(_) => {
                    gone = true;
                    break 'run;
                }
            }
        }
    }
    if gone {
        // A terminal that is gone is not written to again.
        std::mem::forget(terminal);
    } else {
        ratatui::restore();
    }
    Ok(())
}
