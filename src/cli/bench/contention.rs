//! How much of the machine was not ours during a measurement: CPU time stolen by the
//! hypervisor for other virtual machines, and CPU time used by other processes, from the
//! counters in `/proc/stat` (machine-wide) and `/proc/self/stat` (this process, all threads).
//! Both files count in the same clock ticks.

/// The counters at one moment, in clock ticks summed over all CPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CpuTimes {
    /// All time: user, nice, system, idle, iowait, irq, softirq and steal.
    total: u64,
    /// Time spent running anything in this machine (user, nice, system, irq, softirq).
    busy: u64,
    /// Time the hypervisor gave to others while this machine wanted to run.
    steal: u64,
    /// This process's user and system time.
    own: u64,
}

/// Fractions of the machine's CPU time (all cores) during an interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Contention {
    /// Stolen by the hypervisor.
    pub(crate) steal: f64,
    /// Used by other processes of this machine.
    pub(crate) others: f64,
}

/// Above this fraction of stolen or foreign CPU time, a measurement is flagged.
pub(crate) const WARN_FRACTION: f64 = 0.10;

/// Fewest clock ticks (over all CPUs) an interval needs for its fractions to mean anything:
/// the counters advance in ticks (usually 1/100 s), so a shorter interval is mostly rounding.
const MIN_TICKS: u64 = 50;

impl CpuTimes {
    /// The counters now; `None` where `/proc` is not available or not understood.
    pub(crate) fn now() -> Option<CpuTimes> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let own = crate::procfs::read_small(std::path::Path::new("/proc/self/stat"))?;
        CpuTimes::parse(&stat, &own)
    }

    /// From the texts of `/proc/stat` and `/proc/self/stat`.
    fn parse(stat: &str, self_stat: &str) -> Option<CpuTimes> {
        let line = stat.lines().find(|l| l.starts_with("cpu "))?;
        let v: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal [guest guest_nice: already in user]
        let &[user, nice, system, idle, iowait, irq, softirq, steal, ..] = &v[..] else {
            return None;
        };
        let (_, own) = crate::procfs::stat_cpu_ticks(self_stat)?;
        let busy = user + nice + system + irq + softirq;
        Some(CpuTimes {
            total: busy + idle + iowait + steal,
            busy,
            steal,
            own,
        })
    }

    /// What others took between `self` (earlier) and `later`; `None` when the interval is
    /// too short to tell (under `MIN_TICKS`).
    pub(crate) fn until(&self, later: &CpuTimes) -> Option<Contention> {
        let total = later
            .total
            .checked_sub(self.total)
            .filter(|&t| t >= MIN_TICKS)? as f64;
        let steal = later.steal.saturating_sub(self.steal) as f64;
        let busy = later.busy.saturating_sub(self.busy);
        let own = later.own.saturating_sub(self.own);
        Some(Contention {
            steal: steal / total,
            others: busy.saturating_sub(own) as f64 / total,
        })
    }
}

impl Contention {
    /// A warning naming what exceeded `WARN_FRACTION` during `what`, if anything did.
    pub(crate) fn warning(&self, what: &str) -> Option<String> {
        let mut parts = Vec::new();
        if self.steal > WARN_FRACTION {
            parts.push(format!(
                "{:.0}% of the CPU time was stolen by the hypervisor",
                100.0 * self.steal
            ));
        }
        if self.others > WARN_FRACTION {
            parts.push(format!(
                "other processes used {:.0}% of the CPU time",
                100.0 * self.others
            ));
        }
        (!parts.is_empty()).then(|| {
            format!(
                "warning: during {what}, {}: these numbers are lower than the machine can do; measure again when it is quiet",
                parts.join(" and ")
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(cpu: &str, utime: u64, stime: u64) -> CpuTimes {
        let stat = format!("{cpu}\ncpu0 1 2 3 4 5 6 7 8 0 0\nintr 5 6\n");
        let own = format!(
            "4242 (a (b) c) R 1 1 1 0 -1 4194304 102 0 0 0 {utime} {stime} 0 0 20 0 3 0 19 3133440 388"
        );
        CpuTimes::parse(&stat, &own).unwrap()
    }

    #[test]
    fn steal_and_other_processes_are_fractions_of_all_cpu_time() {
        // 1000 ticks pass: 500 busy of which this process 300, 300 idle, 200 stolen.
        let a = times("cpu  100 0 50 1000 0 0 0 10 7 0", 40, 10);
        let b = times("cpu  500 0 150 1300 0 0 0 210 9 0", 290, 60);
        let c = a.until(&b).unwrap();
        assert!((c.steal - 0.2).abs() < 1e-12, "{c:?}");
        assert!((c.others - 0.2).abs() < 1e-12, "{c:?}");
        let w = c.warning("training").unwrap();
        assert!(w.contains("20% of the CPU time was stolen"), "{w}");
        assert!(w.contains("other processes used 20%"), "{w}");
        assert_eq!(a.until(&a), None, "no time passed");
        let soon = times("cpu  110 0 50 1020 0 0 0 10 7 0", 40, 10);
        assert_eq!(a.until(&soon), None, "30 ticks are too few to tell");
    }

    #[test]
    fn a_quiet_machine_gives_no_warning() {
        let quiet = Contention {
            steal: 0.02,
            others: WARN_FRACTION,
        };
        assert_eq!(quiet.warning("training"), None);
        let busy = Contention {
            steal: 0.0,
            others: 0.5,
        };
        assert!(
            busy.warning("inference")
                .unwrap()
                .starts_with("warning: during inference, other processes used 50%")
        );
    }

    #[test]
    fn unreadable_counters_are_none() {
        assert_eq!(CpuTimes::parse("cpu  1 2 3\n", "1 (x) R 1"), None);
        assert_eq!(CpuTimes::parse("intr 1\n", "1 (x) R 1"), None);
    }

    #[test]
    fn this_machine_has_the_counters() {
        // Linux only; CI runs there.
        if cfg!(target_os = "linux") {
            assert!(CpuTimes::now().is_some());
        }
    }
}
