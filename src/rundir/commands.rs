//! The command file format: `{"id": ..., "created_ms": ..., "command": {"lr": {"value": 0.01}}}`,
//! one per file in `commands/`, named `<id>.json`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use serde::{Deserialize, Serialize};

use super::COMMANDS;
use crate::error::{Error, Result};
use crate::fs;
use crate::train::Steer;

/// Largest command file read; anything bigger is not one of ours.
pub(crate) const MAX_BYTES: u64 = 4096;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandFile {
    pub(crate) id: String,
    /// When it was written, in milliseconds since the epoch by the sender's clock: a file
    /// from before the job started is stale (left by a `ctl` that was killed).
    pub(crate) created_ms: u64,
    pub(crate) command: Steer,
}

impl CommandFile {
    pub(crate) fn new(command: Steer) -> CommandFile {
        CommandFile {
            id: new_id(),
            created_ms: (crate::remote::unix_time() * 1000.0) as u64,
            command,
        }
    }

    /// A command file's bytes, checked: its id and its command's numbers.
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
        Ok(CommandFile {
            command: file.command.checked()?,
            ..file
        })
    }

    /// The file's name in `commands/`.
    pub(crate) fn file_name(&self) -> String {
        format!("{}.json", self.id)
    }
}

/// Unique and in sending order: milliseconds since the epoch, process id, a counter.
fn new_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let ms = (crate::remote::unix_time() * 1000.0) as u64;
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{ms:014}-{}-{n}", std::process::id())
}

/// Sends `command` to the run in `run_dir`: written atomically into its commands folder (a
/// temporary file renamed to `<id>.json`, which the job only then sees). Returns the file
/// and its path.
pub(crate) fn send(run_dir: &Path, command: Steer) -> Result<(CommandFile, PathBuf)> {
    let run = fs::Dir::open(run_dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => Error::data(run_dir, "permission denied"),
        _ => Error::io(run_dir, "cannot open", e),
    })?;
    // A job takes commands only from its owner, in a directory nobody else can write.
    super::check_mode(&run)?;
    let dir = run.open_dir(COMMANDS).map_err(|e| match e.kind() {
        std::io::ErrorKind::PermissionDenied => Error::data(run_dir, "permission denied"),
        std::io::ErrorKind::NotFound => Error::data(
            run_dir,
            "no commands/ folder: not a run directory, or written by an older cnn-tui",
        ),
        _ => Error::io(&run_dir.join(COMMANDS), "cannot open", e),
    })?;
    let file = CommandFile::new(command);
    let text = serde_json::to_vec(&file).expect("command files serialize");
    let path = dir.join(&file.file_name());
    dir.replace(&file.file_name(), &text, false)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => Error::data(&path, "permission denied"),
            _ => Error::io(&path, "cannot write", e),
        })?;
    Ok((file, path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_survives_the_file_round_trip() {
        for c in [
            Steer::Pause,
            Steer::Resume,
            Steer::Lr { value: 0.01 },
            Steer::LrScale { factor: 0.5 },
            Steer::Save,
            Steer::Stop,
            Steer::Restore,
            Steer::Inspect { layer: 1, probe: 3 },
        ] {
            let file = CommandFile::new(c.clone());
            let bytes = serde_json::to_vec(&file).unwrap();
            assert_eq!(CommandFile::parse(&bytes).unwrap(), file);
        }
        let text = r#"{"id":"1","created_ms":5,"command":{"lr":{"value":0.5}}}"#;
        assert_eq!(
            CommandFile::parse(text.as_bytes()).unwrap().command,
            Steer::Lr { value: 0.5 }
        );
    }

    #[test]
    fn bad_command_files_are_refused_with_a_reason() {
        let bad = |s: &str| CommandFile::parse(s.as_bytes()).map(|f| f.command);
        assert_eq!(
            bad(r#"{"id":"1","created_ms":1,"command":{"lr":{"value":-1}}}"#),
            Err("lr: the learning rate must be positive, got -1".into())
        );
        assert!(
            bad(r#"{"id":"1","created_ms":1,"command":"reboot"}"#)
                .unwrap_err()
                .contains("unknown variant `reboot`")
        );
        assert_eq!(
            bad(r#"{"id":"../x","created_ms":1,"command":"stop"}"#),
            Err("bad command id".into())
        );
        assert!(
            bad(r#"{"id":"1","created_ms":1,"command":"stop","evil":1}"#)
                .unwrap_err()
                .starts_with("not a command file")
        );
        assert!(bad(r#"{"id":"1","command":"stop"}"#).is_err(), "no time");
        assert!(bad("\u{0}\u{ff}").is_err());
        assert!(bad(r#"{"id":"1","created_ms":1,"command":{"lr":{"value":1e999}}}"#).is_err());
    }
}
