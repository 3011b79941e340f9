//! Signals a run reacts to, as flags the front ends poll between events.
//!
//! SIGTERM, SIGINT and SIGUSR1 (what Slurm sends before a time limit with `--signal`) ask the
//! run to save a checkpoint and stop. SIGHUP means the terminal went away: the dashboard stops
//! drawing, training goes on; a headless run ignores it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

use crate::error::{Error, Result};

pub(crate) struct Signals {
    interrupt: Arc<AtomicUsize>,
    hangup: Arc<AtomicBool>,
}

impl Signals {
    pub(crate) fn register() -> Result<Signals> {
        let interrupt = Arc::new(AtomicUsize::new(0));
        let hangup = Arc::new(AtomicBool::new(false));
        let fail = |e| Error::system("install a signal handler", e);
        for sig in [SIGTERM, SIGINT, SIGUSR1] {
            signal_hook::flag::register_usize(sig, Arc::clone(&interrupt), sig as usize)
                .map_err(fail)?;
        }
        signal_hook::flag::register(SIGHUP, Arc::clone(&hangup)).map_err(fail)?;
        Ok(Signals { interrupt, hangup })
    }

    /// Flags no signal sets: for tests that host a run without taking the process's
    /// signals.
    #[cfg(test)]
    pub(crate) fn none() -> Signals {
        Signals {
            interrupt: Arc::new(AtomicUsize::new(0)),
            hangup: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The name of an interrupting signal received since the last call.
    pub(crate) fn take_interrupt(&self) -> Option<&'static str> {
        match self.interrupt.swap(0, Ordering::Relaxed) as i32 {
            0 => None,
            SIGTERM => Some("SIGTERM"),
            SIGINT => Some("SIGINT"),
            SIGUSR1 => Some("SIGUSR1"),
            _ => Some("signal"),
        }
    }

    /// Whether SIGHUP arrived since the last call.
    pub(crate) fn take_hangup(&self) -> bool {
        self.hangup.swap(false, Ordering::Relaxed)
    }
}
