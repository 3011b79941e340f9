//! Steering and watching a run through its run directory, for a run started elsewhere (a batch
//! job on a compute node) and a person on another node (the login node). Shared filesystems
//! (NFS, Lustre, GPFS) carry no change notifications between nodes, so everything here polls.
//!
//! - `commands/`: one small JSON file per command, written atomically by `ctl` or `watch`,
//!   read, applied once and removed by the running job ([`inbox`]).
//! - `metrics.jsonl`: what the job did, acknowledgements included; read incrementally by
//!   `watch` and `ctl` ([`tail`], [`replay`]).
//! - `snapshot.json`: the selected layer's filters and the probe's feature maps, replaced
//!   atomically every few seconds.
//! - `heartbeat.json`: rewritten every few seconds while the job runs.

pub mod command_file;
pub mod feed;
pub mod inbox;
pub mod replay;
pub mod tail;

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The folder commands are dropped into.
pub fn commands_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("commands")
}

pub fn snapshot_path(run_dir: &Path) -> PathBuf {
    run_dir.join("snapshot.json")
}

pub fn heartbeat_path(run_dir: &Path) -> PathBuf {
    run_dir.join("heartbeat.json")
}

/// Makes `dir` (and its parents) and restricts it to its owner (0700): only the run's owner
/// may read its commands folder or drop commands into it.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, "cannot create", e))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| Error::io(dir, "cannot make owner-only (chmod 700)", e))
}

/// Seconds since the Unix epoch.
pub fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// This machine's host name (for heartbeats: which node the job runs on).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
