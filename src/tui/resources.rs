//! What this process uses, for the resources overlay (key `c`): CPU per thread (from
//! `/proc/self/task/*/stat`, as the change between two looks), resident memory
//! (`/proc/self/status`), the host name, and under Slurm the job id and the time left before
//! the walltime (`squeue -h -j ID -o %L`, at most every 30 s, given 2 s to answer). Sampled on
//! a thread of its own, never on the dashboard's.

use std::collections::HashMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::procfs::{read_small, stat_cpu_ticks, status_kb};

/// How often the sampler looks.
pub(crate) const EVERY: Duration = Duration::from_secs(1);
/// How often squeue is asked, at most.
const SQUEUE_EVERY: Duration = Duration::from_secs(30);
/// How long squeue may take before it is killed.
const SQUEUE_TIMEOUT: Duration = Duration::from_secs(2);

/// One thread's CPU use over the last interval.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ThreadCpu {
    pub(crate) tid: u32,
    pub(crate) name: String,
    /// Fraction of one core (1.0 = a core busy the whole interval).
    pub(crate) cpu: f64,
}

/// Time left before a Slurm job's walltime, as squeue's `%L` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TimeLeft {
    Seconds(u64),
    /// No time limit.
    Unlimited,
    /// squeue said `INVALID` or `NOT_SET` (the job is no longer running, or has no limit set).
    Unknown,
}

/// The Slurm job this process runs in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SlurmJob {
    pub(crate) id: String,
    /// `None` until squeue answered (never, when there is no squeue).
    pub(crate) time_left: Option<TimeLeft>,
}

/// One look at this process.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Resources {
    pub(crate) host: String,
    pub(crate) pid: u32,
    /// By thread id; empty on the first look (no interval yet) or without /proc.
    pub(crate) threads: Vec<ThreadCpu>,
    pub(crate) rss_bytes: Option<u64>,
    pub(crate) slurm: Option<SlurmJob>,
}

/// squeue's `%L`: `days-hours:minutes:seconds`, `hours:minutes:seconds`, `minutes:seconds`,
/// `UNLIMITED`, `INVALID` or `NOT_SET`. Anything else (an error message) is `None`.
pub(crate) fn parse_time_left(text: &str) -> Option<TimeLeft> {
    let text = text.trim();
    match text {
        "UNLIMITED" => return Some(TimeLeft::Unlimited),
        "INVALID" | "NOT_SET" => return Some(TimeLeft::Unknown),
        _ => {}
    }
    let (days, clock) = match text.split_once('-') {
        Some((d, c)) => (d.parse::<u64>().ok()?, c),
        None => (0, text),
    };
    let parts: Vec<u64> = clock
        .split(':')
        .map(|p| {
            (!p.is_empty() && p.len() <= 2 && p.bytes().all(|b| b.is_ascii_digit()))
                .then(|| p.parse().ok())
                .flatten()
        })
        .collect::<Option<_>>()?;
    let (h, m, s) = match parts[..] {
        [m, s] if days == 0 => (0, m, s),
        [h, m, s] => (h, m, s),
        _ => return None,
    };
    (m < 60 && s < 60).then_some(TimeLeft::Seconds(((days * 24 + h) * 60 + m) * 60 + s))
}

/// `1-02:03:04`, `2:03:04`, `3:04`: squeue's own form.
pub(crate) fn fmt_time_left(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h) {
        (0, 0) => format!("{m}:{s:02}"),
        (0, _) => format!("{h}:{m:02}:{s:02}"),
        _ => format!("{d}-{h:02}:{m:02}:{s:02}"),
    }
}

/// Runs squeue for `job` with a deadline; `Err(())` when there is no squeue to run (do not
/// ask again), `Ok(None)` when it failed, took too long or said something else.
fn ask_squeue(job: &str) -> Result<Option<TimeLeft>, ()> {
    let mut child = match Command::new("squeue")
        .args(["-h", "-j", job, "-o", "%L"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(c) => c,
        Err(_) => return Err(()),
    };
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < SQUEUE_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(50))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(None);
            }
        }
    }
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        // One short line; a longer answer is not a time.
        let _ = (&mut stdout).take(256).read_to_string(&mut out);
    }
    Ok(out.lines().next().and_then(parse_time_left))
}

/// Keeps what the last look found, to take differences.
pub(crate) struct Sampler {
    ticks_per_second: f64,
    last: Option<(Instant, HashMap<u32, u64>)>,
    slurm: Option<SlurmJob>,
    squeue_at: Option<Instant>,
    squeue_missing: bool,
}

impl Sampler {
    pub(crate) fn new(slurm_job_id: Option<String>) -> Sampler {
        // SAFETY: sysconf reads a constant of the system; no memory is handed over.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        Sampler {
            ticks_per_second: if ticks > 0 { ticks as f64 } else { 100.0 },
            last: None,
            slurm: slurm_job_id
                .filter(|id| {
                    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                })
                .map(|id| SlurmJob {
                    id,
                    time_left: None,
                }),
            squeue_at: None,
            squeue_missing: false,
        }
    }

    /// Each thread's name and CPU ticks so far.
    fn thread_ticks() -> HashMap<u32, (String, u64)> {
        let mut out = HashMap::new();
        let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
            return out;
        };
        for entry in dir.flatten() {
            let Some(tid) = entry.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            if let Some(stat) =
                read_small(&entry.path().join("stat")).and_then(|s| stat_cpu_ticks(&s))
            {
                out.insert(tid, stat);
            }
        }
        out
    }

    /// One look: the threads' CPU since the last look, memory, and (every 30 s) squeue.
    pub(crate) fn sample(&mut self) -> Resources {
        let now = Instant::now();
        let ticks = Sampler::thread_ticks();
        let mut threads: Vec<ThreadCpu> = match &self.last {
            Some((then, before)) => {
                let secs = now.duration_since(*then).as_secs_f64().max(1e-3);
                ticks
                    .iter()
                    .map(|(&tid, (name, t))| ThreadCpu {
                        tid,
                        name: crate::fs::escape(name),
                        cpu: t.saturating_sub(before.get(&tid).copied().unwrap_or(*t)) as f64
                            / self.ticks_per_second
                            / secs,
                    })
                    .collect()
            }
            None => Vec::new(),
        };
        threads.sort_by_key(|t| t.tid);
        self.last = Some((now, ticks.into_iter().map(|(k, (_, t))| (k, t)).collect()));
        if let Some(job) = &mut self.slurm
            && !self.squeue_missing
            && self.squeue_at.is_none_or(|t| t.elapsed() >= SQUEUE_EVERY)
        {
            self.squeue_at = Some(Instant::now());
            match ask_squeue(&job.id) {
                Ok(left) => job.time_left = left,
                Err(()) => self.squeue_missing = true,
            }
        }
        Resources {
            host: crate::remote::host_name(),
            pid: std::process::id(),
            threads,
            rss_bytes: read_small(Path::new("/proc/self/status"))
                .and_then(|s| status_kb(&s, "VmRSS:"))
                .map(|kb| kb * 1024),
            slurm: self.slurm.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squeue_times_left_in_every_form() {
        let secs = |s| Some(TimeLeft::Seconds(s));
        assert_eq!(parse_time_left("1-02:03:04\n"), secs(93784));
        assert_eq!(parse_time_left("12:34"), secs(754));
        assert_eq!(parse_time_left("2:03:04"), secs(7384));
        assert_eq!(parse_time_left("0:00"), secs(0));
        assert_eq!(parse_time_left("UNLIMITED"), Some(TimeLeft::Unlimited));
        assert_eq!(parse_time_left("INVALID"), Some(TimeLeft::Unknown));
        assert_eq!(parse_time_left("NOT_SET"), Some(TimeLeft::Unknown));
        for bad in [
            "",
            "slurm_load_jobs error: Invalid job id specified",
            "1-12:34",
            "1:2:3:4",
            "12:99",
            "-1:00",
            "x-01:00:00",
        ] {
            assert_eq!(parse_time_left(bad), None, "{bad}");
        }
        for s in [93784, 754, 7384, 0] {
            assert_eq!(
                parse_time_left(&fmt_time_left(s)),
                secs(s),
                "{}",
                fmt_time_left(s)
            );
        }
        assert_eq!(fmt_time_left(93784), "1-02:03:04");
    }

    #[test]
    fn a_sampler_measures_this_process_and_never_waits_for_a_missing_squeue() {
        let mut s = Sampler::new(None);
        let first = s.sample();
        assert!(first.threads.is_empty(), "no interval yet");
        assert!(first.rss_bytes.unwrap() > 0);
        let busy = Instant::now();
        while busy.elapsed() < Duration::from_millis(50) {
            std::hint::black_box(0u64);
        }
        let second = s.sample();
        assert!(!second.threads.is_empty());
        assert_eq!(second.pid, std::process::id());
        // A job id that is not an id is not passed to squeue.
        assert_eq!(Sampler::new(Some("1; rm -rf /".into())).slurm, None);
    }
}
