//! `cnn-tui ctl RUN_DIR ACTION`: drops a command file into a running job's commands folder and
//! waits for the job to acknowledge it in `metrics.jsonl`.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::args::{CtlAction, CtlArgs};
use super::exit;
use crate::config::fmt_lr;
use crate::error::{Error, Result};
use crate::remote::command_file;
use crate::remote::feed::heartbeat_age;
use crate::remote::tail::Tail;
use crate::train::Command;

const POLL: Duration = Duration::from_millis(50);
/// How long to wait, after the acknowledgement, for the line that shows the effect.
const EFFECT_WAIT: Duration = Duration::from_secs(2);

pub fn run(args: CtlArgs) -> Result<u8> {
    let dir = &args.run_dir;
    if !dir.is_dir() {
        return Err(Error::data(dir, "run directory not found"));
    }
    if let Ok(text) = std::fs::read_to_string(dir.join("summary.json")) {
        let status: Value = serde_json::from_str(&text).unwrap_or_default();
        return Err(Error::data(
            dir,
            format!(
                "the run has ended ({}): there is nothing to steer",
                status["status"].as_str().unwrap_or("summary.json written")
            ),
        ));
    }
    let command = match args.action {
        CtlAction::Pause => Command::Pause,
        CtlAction::Resume => Command::Resume,
        CtlAction::Lr { value } => Command::SetLr(value),
        CtlAction::LrScale { factor } => Command::ScaleLr(factor),
        CtlAction::Save => Command::SaveCheckpoint,
        CtlAction::Stop => Command::Stop,
    };
    // Only what is appended from now on matters.
    let mut tail = Tail::new(&dir.join("metrics.jsonl"));
    tail.poll();
    let sent_at = Instant::now();
    let file = command_file::send(dir, &command)?;
    let deadline = sent_at + Duration::from_secs_f64(args.timeout.max(0.0));
    let mut acknowledged: Option<Value> = None;
    let mut acknowledged_at = sent_at;
    loop {
        for line in tail.poll().lines {
            match line["type"].as_str() {
                Some("command") if line["id"] == file.id.as_str() => {
                    acknowledged_at = Instant::now();
                    println!(
                        "{}: applied at epoch {}, after batch {} (step {}); acknowledged {:.2} s after sending",
                        line["command"].as_str().unwrap_or("?"),
                        line["epoch"],
                        line["batch"],
                        line["step"],
                        sent_at.elapsed().as_secs_f64()
                    );
                    acknowledged = Some(line);
                }
                Some("command_refused")
                    if line["file"]
                        .as_str()
                        .is_some_and(|f| f.contains(file.id.as_str())) =>
                {
                    return Err(Error::data(
                        dir,
                        format!(
                            "the job refused the command: {}",
                            line["reason"].as_str().unwrap_or("?")
                        ),
                    ));
                }
                _ if acknowledged.is_some() => {
                    if let Some(effect) = effect_of(&command, &line) {
                        println!("{effect}");
                        return Ok(exit::OK);
                    }
                }
                _ => {}
            }
        }
        if acknowledged.is_some() {
            let nothing_more =
                matches!(command, Command::Stop) || acknowledged_at.elapsed() > EFFECT_WAIT;
            if nothing_more {
                return Ok(exit::OK);
            }
        } else if Instant::now() >= deadline {
            let path = crate::remote::commands_dir(dir).join(format!("{}.json", file.id));
            let withdrawn = std::fs::remove_file(&path).is_ok();
            let life = heartbeat_age(dir).map_or("it has no heartbeat file".into(), |a| {
                format!("its last heartbeat was {a:.0} s ago")
            });
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

/// The line that shows what the command did, as text.
fn effect_of(command: &Command, line: &Value) -> Option<String> {
    match (command, line["type"].as_str()?) {
        (Command::SetLr(_) | Command::ScaleLr(_), "lr_change") => Some(format!(
            "learning rate {} -> {}",
            fmt_lr(line["from"].as_f64()?),
            fmt_lr(line["to"].as_f64()?)
        )),
        (Command::SetLr(_) | Command::ScaleLr(_), "message") => {
            Some(line["message"].as_str()?.to_string())
        }
        (Command::SaveCheckpoint, "checkpoint") => {
            Some(format!("checkpoint: {}", line["path"].as_str()?))
        }
        (Command::SaveCheckpoint, "message") => Some(line["message"].as_str()?.to_string()),
        (Command::Pause, "pause") => Some(format!("paused at step {}", line["step"])),
        (Command::Resume, "resume") => Some(format!("resumed at step {}", line["step"])),
        _ => None,
    }
}
