//! Steering and watching a run through its run directory, for a run started elsewhere (a batch
//! job on a compute node) and a person on another node (the login node). Shared filesystems
//! (NFS, Lustre, GPFS) carry no change notifications between nodes, so everything here polls.
//!
//! The files and their formats are [`crate::rundir`]'s; this is who reads and writes them:
//! - `commands/`: one small JSON file per command, written atomically by `ctl` or `watch`,
//!   read, applied once and removed by the running job ([`inbox`]).
//! - `metrics.jsonl`: what the job did, acknowledgements included; read incrementally by
//!   `watch` ([`feed`]) and `ctl`.
//! - `snapshot.json`: the selected layer's filters and the probe's feature maps, replaced
//!   atomically every few seconds.
//! - `heartbeat.json`: rewritten every few seconds while the job runs.

pub mod feed;
pub mod inbox;
pub mod view;

/// Seconds since the Unix epoch.
pub(crate) fn unix_time() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// When this process started its work, in milliseconds since the epoch (the first call
/// fixes it): command files written before then are stale.
pub(crate) fn started_ms() -> u64 {
    static STARTED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *STARTED.get_or_init(|| (unix_time() * 1000.0) as u64)
}

/// This machine's host name (for heartbeats: which node the job runs on).
pub(crate) fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}
