//! The running job's side of the commands folder: look for command files at most a few times
//! a second, take each once (it is removed), refuse files not owned by the job's user, and
//! keep a heartbeat so that others can tell the job is alive.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::json;

use super::command_file::{CommandFile, MAX_BYTES};
use crate::train::Command;

/// Least time between two looks into the commands folder.
pub const POLL_EVERY: Duration = Duration::from_millis(250);
/// How often the heartbeat file is rewritten.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// What was found in the commands folder.
#[derive(Debug, PartialEq)]
pub enum Incoming {
    /// A command to apply, wrapped so that the trainer acknowledges it with its id.
    Command(Command),
    /// A file that was removed without being applied, and why (for the log).
    Refused { file: PathBuf, reason: String },
}

pub struct Inbox {
    run_dir: PathBuf,
    dir: PathBuf,
    uid: u32,
    last_poll: Option<Instant>,
    last_heartbeat: Option<Instant>,
}

impl Inbox {
    pub fn new(run_dir: &Path) -> Inbox {
        Inbox {
            run_dir: run_dir.to_path_buf(),
            dir: super::commands_dir(run_dir),
            // SAFETY: geteuid cannot fail and touches no memory.
            uid: unsafe { libc::geteuid() },
            last_poll: None,
            last_heartbeat: None,
        }
    }

    /// Takes the commands that arrived since the last look, oldest first; does nothing when
    /// the last look was less than [`POLL_EVERY`] ago.
    pub fn poll(&mut self) -> Vec<Incoming> {
        if self.last_poll.is_some_and(|t| t.elapsed() < POLL_EVERY) {
            return Vec::new();
        }
        self.last_poll = Some(Instant::now());
        self.beat();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.extension().is_some_and(|x| x == "json")
                    && !p
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        files.into_iter().filter_map(|f| self.take(f)).collect()
    }

    /// Reads and removes one file; `None` when it vanished meanwhile.
    fn take(&self, file: PathBuf) -> Option<Incoming> {
        let meta = std::fs::symlink_metadata(&file).ok()?;
        let refuse = |reason: String| {
            let _ = std::fs::remove_file(&file);
            Some(Incoming::Refused {
                file: file.clone(),
                reason,
            })
        };
        if meta.uid() != self.uid {
            return refuse(format!(
                "owned by uid {}, not by this run's user (uid {}): ignored",
                meta.uid(),
                self.uid
            ));
        }
        if !meta.file_type().is_file() {
            return refuse("not a regular file: ignored".into());
        }
        if meta.len() > MAX_BYTES {
            return refuse(format!(
                "{} bytes, too big for a command: ignored",
                meta.len()
            ));
        }
        let bytes = std::fs::read(&file).ok()?;
        let _ = std::fs::remove_file(&file);
        match CommandFile::parse(&bytes).and_then(|f| Ok((f.to_command()?, f.id))) {
            Ok((command, id)) => Some(Incoming::Command(Command::Remote {
                id,
                command: Box::new(command),
            })),
            Err(reason) => Some(Incoming::Refused { file, reason }),
        }
    }

    /// Rewrites the heartbeat file when it is due: which host and process runs the job, and
    /// when it last showed signs of life.
    fn beat(&mut self) {
        if self
            .last_heartbeat
            .is_some_and(|t| t.elapsed() < HEARTBEAT_EVERY)
        {
            return;
        }
        self.last_heartbeat = Some(Instant::now());
        let beat = json!({
            "host": super::host_name(),
            "pid": std::process::id(),
            "time": super::unix_time(),
        });
        // A heartbeat that cannot be written only makes `runs` less sure; never fatal.
        let _ = crate::weights::replace_file(
            &super::heartbeat_path(&self.run_dir),
            beat.to_string().as_bytes(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remote::command_file::send;

    fn inbox_in(dir: &Path) -> Inbox {
        crate::remote::create_private_dir(&crate::remote::commands_dir(dir)).unwrap();
        Inbox::new(dir)
    }

    #[test]
    fn commands_are_taken_once_in_order_and_acknowledgeable() {
        let dir = tempfile::tempdir().unwrap();
        let mut inbox = inbox_in(dir.path());
        let a = send(dir.path(), &Command::SetLr(0.01)).unwrap();
        let b = send(dir.path(), &Command::Pause).unwrap();
        let got = inbox.poll();
        assert_eq!(
            got,
            vec![
                Incoming::Command(Command::Remote {
                    id: a.id,
                    command: Box::new(Command::SetLr(0.01))
                }),
                Incoming::Command(Command::Remote {
                    id: b.id,
                    command: Box::new(Command::Pause)
                }),
            ]
        );
        // Taken: the folder is empty, and a poll right away does not even look.
        assert_eq!(
            std::fs::read_dir(commands_dir(dir.path())).unwrap().count(),
            0
        );
        assert!(inbox.poll().is_empty());
        assert!(crate::remote::heartbeat_path(dir.path()).is_file());
    }

    #[test]
    fn junk_and_half_written_files_are_refused_or_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut inbox = inbox_in(dir.path());
        let cmds = commands_dir(dir.path());
        std::fs::write(cmds.join("junk.json"), b"{not json").unwrap();
        std::fs::write(cmds.join("big.json"), vec![b' '; 10_000]).unwrap();
        // A temporary file being written is not looked at.
        std::fs::write(cmds.join(".x.json.tmp-1"), b"{").unwrap();
        let got = inbox.poll();
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got.iter().all(|g| matches!(g, Incoming::Refused { .. })));
        let left: Vec<_> = std::fs::read_dir(&cmds).unwrap().collect();
        assert_eq!(left.len(), 1);
    }

    use crate::remote::commands_dir;
}
