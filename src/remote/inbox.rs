//! The running job's side of the commands folder: look for command files at most a few times
//! a second, take each once (it is removed), refuse files not owned by the job's user or
//! written before the job started, and keep a heartbeat so that others can tell the job is
//! alive.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rustix::fs::FileType;

use crate::fs;
use crate::rundir::commands::{CommandFile, MAX_BYTES};
use crate::rundir::{COMMANDS, HEARTBEAT, Heartbeat, RunDir};
use crate::train::Command;

/// Least time between two looks into the commands folder.
pub(crate) const POLL_EVERY: Duration = Duration::from_millis(250);
/// How often the heartbeat file is rewritten.
pub(crate) const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// What was found in the commands folder.
#[derive(Debug, PartialEq)]
pub(crate) enum Incoming {
    /// A command to apply, wrapped so that the trainer acknowledges it with its id.
    Command(Command),
    /// A file that was not applied, and why (for the log).
    Refused { file: PathBuf, reason: String },
}

pub(crate) struct Inbox {
    run_dir: RunDir,
    run: fs::Dir,
    uid: u32,
    /// When the job started (before it loaded its data), in milliseconds since the epoch by
    /// its clock.
    started_ms: u64,
    /// What the first look found: only these can be stale.
    first_look: Option<HashSet<String>>,
    /// Things that are not command files, reported once and left alone.
    reported: HashSet<String>,
    last_poll: Option<Instant>,
    last_heartbeat: Option<Instant>,
    beats: u64,
}

impl Inbox {
    /// The inbox of the run directory `run`, opened when the job started: commands are read
    /// from it and the heartbeat written into it, whatever is renamed into its place.
    pub(crate) fn new(run: fs::Dir) -> Inbox {
        Inbox {
            run_dir: RunDir::new(run.path()),
            run,
            uid: rustix::process::geteuid().as_raw(),
            started_ms: super::started_ms(),
            first_look: None,
            reported: HashSet::new(),
            last_poll: None,
            last_heartbeat: None,
            beats: 0,
        }
    }

    /// Takes the commands that arrived since the last look, oldest first; does nothing when
    /// the last look was less than [`POLL_EVERY`] ago.
    pub(crate) fn poll(&mut self) -> Vec<Incoming> {
        if self.last_poll.is_some_and(|t| t.elapsed() < POLL_EVERY) {
            return Vec::new();
        }
        self.last_poll = Some(Instant::now());
        self.beat();
        let opened = self.run.open_dir(COMMANDS);
        let (dir, names) = match opened.and_then(|d| Ok((d.names()?, d))) {
            Ok((names, dir)) => (dir, names),
            Err(e) => {
                return self
                    .once(
                        COMMANDS,
                        format!("cannot be read ({e}): no commands arrive"),
                    )
                    .into_iter()
                    .collect();
            }
        };
        let first = self.first_look.is_none();
        if first {
            self.first_look = Some(names.iter().cloned().collect());
        }
        names
            .into_iter()
            .filter(|n| !(n.starts_with('.') && n.contains(".tmp-")))
            .filter_map(|n| self.take(&dir, &n))
            .collect()
    }

    /// A refusal reported only the first time.
    fn once(&mut self, name: &str, reason: String) -> Option<Incoming> {
        self.reported
            .insert(name.to_string())
            .then(|| Incoming::Refused {
                file: self.run_dir.commands().join(name),
                reason,
            })
    }

    /// Reads and removes one command file; `None` when it vanished meanwhile or was reported.
    fn take(&mut self, dir: &fs::Dir, name: &str) -> Option<Incoming> {
        let (kind, uid, size) = dir.stat(name).ok()?;
        if kind != FileType::RegularFile {
            return self.once(name, format!("a {kind:?}, not a command file: left alone"));
        }
        if !name.ends_with(".json") {
            return self.once(name, "not a command file (not *.json): left alone".into());
        }
        let file = dir.join(name);
        let refuse = |reason: String| {
            let _ = dir.remove(name);
            Some(Incoming::Refused {
                file: file.clone(),
                reason,
            })
        };
        if uid != self.uid {
            return refuse(format!(
                "owned by uid {uid}, not by this run's user (uid {}): ignored",
                self.uid
            ));
        }
        if size > MAX_BYTES {
            return refuse(format!("{size} bytes, too big for a command: ignored"));
        }
        let bytes = match dir.read(name, MAX_BYTES) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => return refuse(format!("{e}")),
        };
        let _ = dir.remove(name);
        let parsed = CommandFile::parse(&bytes);
        match parsed {
            Ok(f) if f.created_ms < self.started_ms && self.was_there_at_start(name) => refuse(
                "written before this job started (left by an interrupted ctl?): ignored".into(),
            ),
            Ok(f) => Some(Incoming::Command(Command::Remote {
                id: f.id,
                steer: f.command,
            })),
            Err(reason) => Some(Incoming::Refused { file, reason }),
        }
    }

    fn was_there_at_start(&self, name: &str) -> bool {
        self.first_look.as_ref().is_some_and(|f| f.contains(name))
    }

    /// Rewrites the heartbeat file when it is due: which host and process runs the job, and
    /// a count that changes with every beat.
    fn beat(&mut self) {
        if self
            .last_heartbeat
            .is_some_and(|t| t.elapsed() < HEARTBEAT_EVERY)
        {
            return;
        }
        self.last_heartbeat = Some(Instant::now());
        self.beats += 1;
        let beat = Heartbeat {
            host: super::host_name(),
            pid: std::process::id(),
            time: super::unix_time(),
            beat: self.beats,
        };
        let text = serde_json::to_vec(&beat).expect("heartbeats serialize");
        // A heartbeat that cannot be written only makes `runs` less sure; never fatal.
        let _ = self.run.replace(HEARTBEAT, &text, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rundir::commands::send;
    use crate::train::Steer;
    use std::path::Path;

    fn inbox_in(dir: &Path) -> Inbox {
        std::fs::create_dir(dir.join(COMMANDS)).unwrap();
        Inbox::new(fs::Dir::open(dir).unwrap())
    }

    #[test]
    fn commands_are_taken_once_in_order_and_acknowledgeable() {
        let dir = tempfile::tempdir().unwrap();
        let mut inbox = inbox_in(dir.path());
        let (a, _) = send(dir.path(), Steer::Lr { value: 0.01 }).unwrap();
        let (b, _) = send(dir.path(), Steer::Pause).unwrap();
        let got = inbox.poll();
        assert_eq!(
            got,
            vec![
                Incoming::Command(Command::Remote {
                    id: a.id,
                    steer: Steer::Lr { value: 0.01 }
                }),
                Incoming::Command(Command::Remote {
                    id: b.id,
                    steer: Steer::Pause
                }),
            ]
        );
        // Taken: the folder is empty, and a poll right away does not even look.
        assert_eq!(
            std::fs::read_dir(dir.path().join(COMMANDS))
                .unwrap()
                .count(),
            0
        );
        assert!(inbox.poll().is_empty());
        assert!(RunDir::new(dir.path()).read_heartbeat().is_some());
    }

    #[test]
    fn junk_is_reported_once_and_stale_commands_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let cmds = dir.path().join(COMMANDS);
        std::fs::create_dir(&cmds).unwrap();
        // Left behind by a ctl killed before this job started.
        let mut stale = CommandFile::new(Steer::Stop);
        stale.created_ms -= 60_000;
        std::fs::write(
            cmds.join(stale.file_name()),
            serde_json::to_vec(&stale).unwrap(),
        )
        .unwrap();
        let mut inbox = Inbox::new(fs::Dir::open(dir.path()).unwrap());
        std::fs::write(cmds.join("junk.json"), b"{not json").unwrap();
        std::fs::write(cmds.join("big.json"), vec![b' '; 10_000]).unwrap();
        std::fs::create_dir(cmds.join("a-dir.json")).unwrap();
        std::os::unix::fs::symlink("/dev/zero", cmds.join("zero.json")).unwrap();
        // A temporary file being written is not looked at.
        std::fs::write(cmds.join(".x.json.tmp-1"), b"{").unwrap();
        let got = inbox.poll();
        let reasons: Vec<String> = got
            .iter()
            .map(|g| match g {
                Incoming::Refused { reason, .. } => reason.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(reasons.len(), 5, "{reasons:?}");
        assert!(
            reasons
                .iter()
                .any(|r| r.contains("before this job started"))
        );
        assert_eq!(
            reasons.iter().filter(|r| r.contains("left alone")).count(),
            2
        );
        inbox.last_poll = None;
        assert!(inbox.poll().is_empty(), "junk is reported once");
        let mut left: Vec<_> = std::fs::read_dir(&cmds)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [".x.json.tmp-1", "a-dir.json", "zero.json"]);
    }
}
