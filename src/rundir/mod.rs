//! The run directory: its layout, its formats and the rules that keep it the job's own.
//!
//! ```text
//! RUN_DIR/            0700, created in one step; a fresh run needs it new or empty
//!   lock              flock-ed for the life of the job; holds "pid host"
//!   config.toml       the resolved config
//!   metrics.jsonl     one [`metrics::Record`] per line
//!   train.log         the same, as text
//!   summary.json      [`Summary`], once the run has ended
//!   heartbeat.json    [`Heartbeat`], rewritten every few seconds while the job runs
//!   snapshot.json     the dashboard's filters and feature maps, for `watch`
//!   model.safetensors final weights
//!   commands/         [`commands::CommandFile`]s dropped by `ctl` and `watch`
//!   checkpoints/      ckpt-<step>.safetensors, best.safetensors, last
//!   plots/            PNG pictures
//! ```
//!
//! Everything in it is treated as written by someone else: no symbolic link is followed,
//! only regular files of bounded size are read ([`fs`]).

pub mod commands;
use crate::fs;
pub mod metrics;

use std::io::{Seek, Write};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::train::{FailureKind, RunSummary, StopReason};

pub(crate) const CONFIG: &str = "config.toml";
pub(crate) const METRICS: &str = "metrics.jsonl";
pub(crate) const LOG: &str = "train.log";
pub(crate) const SUMMARY: &str = "summary.json";
pub(crate) const HEARTBEAT: &str = "heartbeat.json";
pub(crate) const SNAPSHOT: &str = "snapshot.json";
pub(crate) const WEIGHTS: &str = "model.safetensors";
pub(crate) const LOCK: &str = "lock";
pub(crate) const COMMANDS: &str = "commands";
pub(crate) const CHECKPOINTS: &str = "checkpoints";
pub(crate) const PLOTS: &str = "plots";

/// Largest config, summary or heartbeat read from a run directory.
pub(crate) const MAX_SMALL_FILE: u64 = 1 << 20;
/// Largest snapshot read.
pub(crate) const MAX_SNAPSHOT: u64 = 64 << 20;

/// The paths of a run directory. Reading through it is safe for anyone's directory; writing
/// is for the job that holds it ([`JobDir`]).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunDir {
    root: PathBuf,
}

impl RunDir {
    pub(crate) fn new(root: &Path) -> RunDir {
        RunDir {
            root: root.to_path_buf(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.root
    }

    pub(crate) fn file(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.file(CONFIG)
    }

    pub(crate) fn metrics(&self) -> PathBuf {
        self.file(METRICS)
    }

    pub(crate) fn summary(&self) -> PathBuf {
        self.file(SUMMARY)
    }

    pub(crate) fn heartbeat(&self) -> PathBuf {
        self.file(HEARTBEAT)
    }

    pub(crate) fn snapshot(&self) -> PathBuf {
        self.file(SNAPSHOT)
    }

    pub(crate) fn weights(&self) -> PathBuf {
        self.file(WEIGHTS)
    }

    pub(crate) fn commands(&self) -> PathBuf {
        self.file(COMMANDS)
    }

    pub(crate) fn plots(&self) -> PathBuf {
        self.file(PLOTS)
    }

    /// The run's config file as text (capped, regular file only).
    pub(crate) fn read_config_text(&self) -> std::io::Result<String> {
        let bytes = fs::read(&self.config(), MAX_SMALL_FILE)?;
        String::from_utf8(bytes)
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8"))
    }

    /// `summary.json`, when the run has ended and it reads.
    pub(crate) fn read_summary(&self) -> Option<Summary> {
        serde_json::from_slice(&fs::read(&self.summary(), MAX_SMALL_FILE).ok()?).ok()
    }

    /// `heartbeat.json`, when there is one and it reads.
    pub(crate) fn read_heartbeat(&self) -> Option<Heartbeat> {
        serde_json::from_slice(&fs::read(&self.heartbeat(), MAX_SMALL_FILE).ok()?).ok()
    }

    /// Whether a job holds the run directory's lock now (`None`: no lock file, or it cannot
    /// be tested). Clock-free, unlike heartbeats; see [`JobDir::lock`] for shared
    /// filesystems.
    pub(crate) fn locked(&self) -> Option<bool> {
        let file = fs::open_read(&self.file(LOCK), MAX_SMALL_FILE).ok()?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared) {
            Ok(()) => {
                let _ = rustix::fs::flock(&file, rustix::fs::FlockOperation::Unlock);
                Some(false)
            }
            Err(rustix::io::Errno::WOULDBLOCK) => Some(true),
            Err(_) => None,
        }
    }
}

/// How a run ended, as `summary.json` and `runs` say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    Finished,
    Interrupted,
    Diverged,
    Failed,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Finished => "finished",
            Status::Interrupted => "interrupted",
            Status::Diverged => "diverged",
            Status::Failed => "failed",
        }
    }
}

/// `summary.json`: how the run ended, and its numbers when it ended normally.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Summary {
    pub(crate) status: Status,
    #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
    pub(crate) run: Option<RunSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
    /// Where the data came from.
    #[serde(default)]
    pub(crate) data: String,
}

impl Summary {
    pub(crate) fn finished(run: &RunSummary, data: &str) -> Summary {
        Summary {
            status: match run.stop_reason {
                StopReason::Interrupted => Status::Interrupted,
                _ => Status::Finished,
            },
            run: Some(run.clone()),
            error: None,
            data: data.to_string(),
        }
    }

    pub(crate) fn failed(kind: FailureKind, message: &str, data: &str) -> Summary {
        Summary {
            status: match kind {
                FailureKind::Diverged => Status::Diverged,
                FailureKind::Error => Status::Failed,
            },
            run: None,
            error: Some(message.to_string()),
            data: data.to_string(),
        }
    }
}

/// `heartbeat.json`: which host and process runs the job. Readers judge liveness by whether
/// `beat` changes between their looks, never by comparing `time` with their own clock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Heartbeat {
    pub(crate) host: String,
    pub(crate) pid: u32,
    /// Seconds since the epoch by the job's clock (for people; not for liveness).
    pub(crate) time: f64,
    /// Counts up with every beat.
    #[serde(default)]
    pub(crate) beat: u64,
}

/// A run directory held by a running job: opened without following links, checked to be
/// the user's alone, and locked.
pub(crate) struct JobDir {
    paths: RunDir,
    dir: fs::Dir,
    _lock: std::fs::File,
    /// Said once when the lock could not be taken on this filesystem.
    pub(crate) lock_warning: Option<String>,
}

impl JobDir {
    /// Opens the run directory for a job, creating it owner-only in one step (parents
    /// included) when it does not exist; never changes the mode of one it did not create.
    /// It must be the user's alone ([`check_mode`]), and with `require_empty` (a fresh run)
    /// empty: what is there is named in the refusal.
    pub(crate) fn open(root: &Path, require_empty: bool) -> Result<JobDir> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(root)
            .map_err(|e| permission_or(root, e, "cannot create the run directory"))?;
        let dir = open_private(root)?;
        if require_empty {
            let names: Vec<String> = dir.names().map_err(|e| Error::io(root, "cannot list", e))?;
            if !names.is_empty() {
                let shown: Vec<String> = names.iter().take(5).map(|n| fs::escape(n)).collect();
                return Err(Error::data(
                    root,
                    format!(
                        "not empty ({}{}): a fresh run needs a new or empty directory; give --resume auto to continue the run in it, or another --run-dir",
                        shown.join(", "),
                        if names.len() > 5 { ", ..." } else { "" }
                    ),
                ));
            }
        }
        JobDir::hold(root, dir)
    }

    fn hold(root: &Path, dir: fs::Dir) -> Result<JobDir> {
        let (lock, lock_warning) = lock(&dir)?;
        for sub in [COMMANDS, CHECKPOINTS] {
            let d = dir
                .make_dir(sub)
                .map_err(|e| Error::io(&root.join(sub), "cannot create", e))?;
            check_mode(&d)?;
        }
        Ok(JobDir {
            paths: RunDir::new(root),
            dir,
            _lock: lock,
            lock_warning,
        })
    }

    pub(crate) fn paths(&self) -> &RunDir {
        &self.paths
    }

    pub(crate) fn path(&self) -> &Path {
        self.paths.path()
    }

    pub(crate) fn dir(&self) -> &fs::Dir {
        &self.dir
    }
}

/// Whether `--resume auto`, finding no checkpoint in `root`, may start the run over there:
/// only when what is there is what an unfinished run leaves before its first checkpoint
/// (a job killed while loading its data, say). Anything else (final weights, plots, a
/// finished run's summary, files of the user's own) would be lost, so it is named instead.
pub(crate) fn check_restartable(root: &Path) -> Result<()> {
    let dir = open_private(root)?;
    let names = dir.names().map_err(|e| Error::io(root, "cannot list", e))?;
    let restartable = [
        CONFIG,
        METRICS,
        LOG,
        LOCK,
        HEARTBEAT,
        SNAPSHOT,
        COMMANDS,
        CHECKPOINTS,
    ];
    let mut kept: Vec<String> = names
        .into_iter()
        .filter(|n| !restartable.contains(&n.as_str()) && !fs::is_temporary(n))
        .filter(|n| {
            // An interrupted or failed start's summary goes with it; a finished run's stays.
            n != SUMMARY
                || RunDir::new(root)
                    .read_summary()
                    .is_none_or(|s| s.status == Status::Finished)
        })
        .collect();
    match dir.open_dir(CHECKPOINTS) {
        Ok(checkpoints) => {
            let other = checkpoints.names().unwrap_or_default();
            if let Some(n) = other.iter().find(|n| !fs::is_temporary(n)) {
                kept.push(format!("{CHECKPOINTS}/{n}"));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&root.join(CHECKPOINTS), "cannot open", e)),
    }
    if kept.is_empty() {
        return Ok(());
    }
    kept.sort();
    let shown: Vec<String> = kept.iter().take(5).map(|n| fs::escape(n)).collect();
    Err(Error::data(
        root,
        format!(
            "--resume auto found no checkpoint to continue, and starting over here would lose {}{}: give another --run-dir, or move them away",
            shown.join(", "),
            if kept.len() > 5 { ", ..." } else { "" }
        ),
    ))
}

/// Opens `root` (no link followed at its last component) and checks that only its owner,
/// this user, can change it.
pub(crate) fn open_private(root: &Path) -> Result<fs::Dir> {
    let dir = fs::Dir::open(root).map_err(|e| permission_or(root, e, "cannot open"))?;
    check_mode(&dir)?;
    Ok(dir)
}

fn permission_or(path: &Path, e: std::io::Error, action: &'static str) -> Error {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        Error::data(path, "permission denied")
    } else {
        Error::io(path, action, e)
    }
}

/// Like OpenSSH's StrictModes: the directory must belong to this user and not be writable by
/// group or others, or they could plant links and commands in it.
pub(crate) fn check_mode(dir: &fs::Dir) -> Result<()> {
    let (mode, uid) = dir
        .mode_and_owner()
        .map_err(|e| Error::io(dir.path(), "cannot inspect", e))?;
    let me = rustix::process::geteuid().as_raw();
    if uid != me {
        return Err(Error::data(
            dir.path(),
            format!(
                "permission denied: owned by uid {uid}, not by you (uid {me}); a run directory must be yours alone"
            ),
        ));
    }
    if mode & 0o022 != 0 {
        return Err(Error::data(
            dir.path(),
            format!(
                "permission denied: writable by group or others (mode {mode:04o}), so anyone could plant files in it; run `chmod 700 {}` if it is yours, or use another directory",
                dir.path().display()
            ),
        ));
    }
    Ok(())
}

/// Takes the run directory's lock for the life of the job, or says who holds it.
///
/// flock on NFS (Linux 2.6.12 and later) is turned into a whole-file POSIX lock held by the
/// server, so it works between nodes. On Lustre it works between nodes when the client
/// mounts with `-o flock`; with `-o localflock` only on one node; with `-o noflock` it fails.
/// A filesystem that cannot lock at all lets the job run with a warning: a second job on
/// the same directory is then not kept out.
fn lock(dir: &fs::Dir) -> Result<(std::fs::File, Option<String>)> {
    use rustix::fs::FlockOperation;
    let path = dir.join(LOCK);
    let mut file = dir
        .open_write_keep(LOCK)
        .map_err(|e| permission_or(&path, e, "cannot open"))?;
    // A few tries: `runs` takes a shared lock for a moment to see whether the job lives.
    let mut result = Err(rustix::io::Errno::WOULDBLOCK);
    for _ in 0..10 {
        result = rustix::fs::flock(&file, FlockOperation::NonBlockingLockExclusive);
        if result != Err(rustix::io::Errno::WOULDBLOCK) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let warning = match result {
        Ok(()) => None,
        Err(rustix::io::Errno::WOULDBLOCK) => {
            let holder = dir
                .read(LOCK, 4096)
                .map(|b| fs::escape(String::from_utf8_lossy(&b).trim()))
                .unwrap_or_default();
            return Err(Error::data(
                dir.path(),
                format!(
                    "in use by another job ({}): wait for it to end, or use another --run-dir",
                    if holder.is_empty() {
                        "holder unknown".to_string()
                    } else {
                        holder
                    }
                ),
            ));
        }
        Err(e) => Some(format!(
            "cannot lock {} ({e}): this filesystem does not support flock, so a second job in the same directory is not kept out",
            path.display()
        )),
    };
    let me = format!(
        "pid {} on host {}",
        std::process::id(),
        crate::remote::host_name()
    );
    let written = file
        .set_len(0)
        .and_then(|_| file.rewind())
        .and_then(|_| file.write_all(me.as_bytes()))
        .and_then(|_| file.flush());
    written.map_err(|e| Error::io(&path, "cannot write", e))?;
    Ok((file, warning))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_read_back_with_their_status_and_kind() {
        let s = Summary::failed(FailureKind::Diverged, "loss became NaN", "bundled");
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(
            text,
            r#"{"status":"diverged","error":"loss became NaN","data":"bundled"}"#
        );
        assert_eq!(serde_json::from_str::<Summary>(&text).unwrap(), s);
    }
}
