//! `cnn-tui ctl RUN_DIR ACTION`: drops a command file into a running job's commands folder and
//! waits for the job to acknowledge it in `metrics.jsonl`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::args::CtlArgs;
use super::exit;
use crate::config::fmt_lr;
use crate::error::{Error, Result};
use crate::fs::escape;
use crate::rundir::metrics::{Record, Tail};
use crate::rundir::{RunDir, commands};
use crate::train::Steer;

const POLL: Duration = Duration::from_millis(50);
/// How long to wait, after the acknowledgement, for the line that shows the effect.
const EFFECT_WAIT: Duration = Duration::from_secs(2);
/// Most bytes of new records read in one poll.
const POLL_BYTES: u64 = 1 << 20;

pub(crate) fn run(args: CtlArgs) -> Result<u8> {
    let run = RunDir::new(&args.run_dir);
    let dir = run.path();
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => return Err(Error::data(dir, "not a directory")),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(Error::data(dir, "permission denied"));
        }
        Err(_) => return Err(Error::data(dir, "run directory not found")),
    }
    if std::fs::symlink_metadata(run.summary()).is_ok() {
        let status = run
            .read_summary()
            .map_or("summary.json written", |s| s.status.as_str());
        return Err(Error::data(
            dir,
            format!("the run has ended ({status}): there is nothing to steer"),
        ));
    }
    // SIGINT and SIGTERM withdraw the command instead of leaving it for a later job.
    let interrupted = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&interrupted))
            .map_err(|e| Error::io(std::path::Path::new("signal handler"), "cannot install", e))?;
    }
    let command = args.action;
    // Only what is appended from now on matters.
    let mut tail = Tail::at_end(&run.metrics());
    // Liveness by whether the heartbeat changed while we waited, never by comparing clocks.
    let beat_before = run.read_heartbeat();
    let sent_at = Instant::now();
    let (file, path) = commands::send(dir, command.clone())?;
    let withdraw = || std::fs::remove_file(&path).is_ok();
    let deadline = sent_at + Duration::from_secs_f64(args.timeout);
    let mut acknowledged_at: Option<Instant> = None;
    loop {
        let mut records = Vec::new();
        tail.poll(POLL_BYTES, |r| records.push(r));
        for record in records {
            match record {
                Record::Command {
                    id,
                    command: what,
                    step,
                    epoch,
                    batch,
                } if id == file.id => {
                    acknowledged_at = Some(Instant::now());
                    println!(
                        "{}: applied at epoch {epoch}, after batch {batch} (step {step}); acknowledged {:.2} s after sending",
                        escape(&what),
                        sent_at.elapsed().as_secs_f64()
                    );
                }
                Record::CommandRefused {
                    file: refused,
                    reason,
                } if refused.ends_with(file.file_name()) => {
                    return Err(Error::data(
                        dir,
                        format!("the job refused the command: {}", escape(&reason)),
                    ));
                }
                r if acknowledged_at.is_some() => {
                    if let Some(effect) = effect_of(&command, &r) {
                        println!("{}", escape(&effect));
                        return Ok(exit::OK);
                    }
                }
                _ => {}
            }
        }
        if let Some(at) = acknowledged_at {
            if matches!(command, Steer::Stop) || at.elapsed() > EFFECT_WAIT {
                return Ok(exit::OK);
            }
        } else if interrupted.load(Ordering::Relaxed) {
            return Err(Error::data(
                dir,
                if withdraw() {
                    "interrupted: the command was withdrawn"
                } else {
                    "interrupted: the job had already taken the command"
                },
            ));
        } else if Instant::now() >= deadline {
            let withdrawn = withdraw();
            let life = match (&beat_before, run.read_heartbeat()) {
                (None, None) => "it has no heartbeat file".to_string(),
                (before, Some(now)) if before.as_ref() != Some(&now) => {
                    "its heartbeat changed meanwhile, so it lives but is busy or paused in a long step".into()
                }
                _ => format!(
                    "its heartbeat did not change in the {:.1} s waited",
                    sent_at.elapsed().as_secs_f64()
                ),
            };
            return Err(Error::data(
                dir,
                format!(
                    "no acknowledgement within {} s: is the job running? ({life}); {}",
                    args.timeout,
                    if withdrawn {
                        "the command was withdrawn"
                    } else {
                        "the job took the command but has not acknowledged it yet"
                    }
                ),
            ));
        }
        std::thread::sleep(POLL);
    }
}

/// The record that shows what the command did, as text.
fn effect_of(command: &Steer, record: &Record) -> Option<String> {
    match (command, record) {
        (Steer::Lr { .. } | Steer::LrScale { .. }, Record::LrChange { from, to, .. }) => Some(
            format!("learning rate {} -> {}", fmt_lr(*from), fmt_lr(*to)),
        ),
        (Steer::Save, Record::Checkpoint { path, .. }) => {
            Some(format!("checkpoint: {}", path.display()))
        }
        (Steer::Lr { .. } | Steer::LrScale { .. } | Steer::Save, Record::Message { message }) => {
            Some(message.clone())
        }
        (Steer::Pause, Record::Pause { step }) => Some(format!("paused at step {step}")),
        (Steer::Resume, Record::Resume { step }) => Some(format!("resumed at step {step}")),
        _ => None,
    }
}
