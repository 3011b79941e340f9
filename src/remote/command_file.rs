//! The command file format: `{"id": ..., "command": "lr", "value": 0.01}`, one per file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::train::Command;

/// Largest command file read; anything bigger is not one of ours.
pub const MAX_BYTES: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandFile {
    pub id: String,
    pub command: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<usize>,
}

impl CommandFile {
    /// The file for a command from a front end (`watch` keys, `ctl`); `None` for commands
    /// that only make sense inside the process.
    pub fn from_command(command: &Command) -> Option<CommandFile> {
        let (name, value, layer, probe) = match command {
            Command::Pause => ("pause", None, None, None),
            Command::Resume => ("resume", None, None, None),
            Command::SetLr(v) => ("lr", Some(*v), None, None),
            Command::ScaleLr(f) => ("lr-scale", Some(*f), None, None),
            Command::SaveCheckpoint => ("save", None, None, None),
            Command::Stop => ("stop", None, None, None),
            Command::RestoreLastGood => ("restore", None, None, None),
            Command::Inspect { conv_layer, probe } => {
                ("inspect", None, Some(*conv_layer), Some(*probe))
            }
            Command::Interrupt(_) | Command::Unattended | Command::Remote { .. } => return None,
        };
        Some(CommandFile {
            id: new_id(),
            command: name.into(),
            value,
            layer,
            probe,
        })
    }

    /// The command it asks for, checked.
    pub fn to_command(&self) -> std::result::Result<Command, String> {
        let value = |what: &str| {
            self.value
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| format!("{} needs a positive {what}", self.command))
        };
        Ok(match self.command.as_str() {
            "pause" => Command::Pause,
            "resume" => Command::Resume,
            "lr" => Command::SetLr(value("learning rate")?),
            "lr-scale" => Command::ScaleLr(value("factor")?),
            "save" => Command::SaveCheckpoint,
            "stop" => Command::Stop,
            "restore" => Command::RestoreLastGood,
            "inspect" => Command::Inspect {
                conv_layer: self.layer.unwrap_or(0),
                probe: self.probe.unwrap_or(0),
            },
            other => return Err(format!("unknown command `{other}`")),
        })
    }

    pub fn parse(bytes: &[u8]) -> std::result::Result<CommandFile, String> {
        let file: CommandFile =
            serde_json::from_slice(bytes).map_err(|e| format!("not a command file: {e}"))?;
        if file.id.is_empty()
            || file.id.len() > 64
            || !file
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err("bad command id".into());
        }
        Ok(file)
    }

    /// Writes the command into `commands_dir` atomically (a hidden temporary file renamed to
    /// `<id>.json`, which the job only then sees) and returns its path.
    pub fn send(&self, commands_dir: &Path) -> Result<PathBuf> {
        let path = commands_dir.join(format!("{}.json", self.id));
        let text = serde_json::to_vec(self).expect("command files serialize");
        crate::weights::write_atomically(&path, &text)?;
        Ok(path)
    }
}

/// Unique and in sending order: milliseconds since the epoch, process id, a counter.
fn new_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let ms = (super::unix_time() * 1000.0) as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{ms:014}-{}-{n}", std::process::id())
}

/// Sends `command` to the run in `run_dir`; errors when it has no commands folder.
pub fn send(run_dir: &Path, command: &Command) -> Result<CommandFile> {
    let dir = super::commands_dir(run_dir);
    if !dir.is_dir() {
        return Err(Error::data(
            run_dir,
            "no commands/ folder: not a run directory, or written by an older cnn-tui",
        ));
    }
    let file = CommandFile::from_command(command)
        .ok_or_else(|| Error::config("command", "cannot be sent to another process"))?;
    file.send(&dir)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_front_end_command_survives_the_file_round_trip() {
        for c in [
            Command::Pause,
            Command::Resume,
            Command::SetLr(0.01),
            Command::ScaleLr(0.5),
            Command::SaveCheckpoint,
            Command::Stop,
            Command::RestoreLastGood,
            Command::Inspect {
                conv_layer: 1,
                probe: 3,
            },
        ] {
            let file = CommandFile::from_command(&c).unwrap();
            let bytes = serde_json::to_vec(&file).unwrap();
            assert_eq!(CommandFile::parse(&bytes).unwrap().to_command(), Ok(c));
        }
        assert!(CommandFile::from_command(&Command::Unattended).is_none());
    }

    #[test]
    fn bad_command_files_are_refused_with_a_reason() {
        let bad = |s: &str| CommandFile::parse(s.as_bytes()).and_then(|f| f.to_command());
        assert_eq!(
            bad(r#"{"id":"1","command":"lr","value":-1}"#),
            Err("lr needs a positive learning rate".into())
        );
        assert_eq!(
            bad(r#"{"id":"1","command":"reboot"}"#),
            Err("unknown command `reboot`".into())
        );
        assert_eq!(
            bad(r#"{"id":"../x","command":"stop"}"#),
            Err("bad command id".into())
        );
        assert!(
            bad(r#"{"id":"1","command":"stop","evil":1}"#)
                .unwrap_err()
                .starts_with("not a command file")
        );
        assert!(bad("\u{0}\u{ff}").is_err());
        assert!(bad(r#"{"id":"1","command":"lr","value":1e999}"#).is_err());
    }
}
