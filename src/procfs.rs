//! What this process's `/proc` files say: a process's or thread's CPU time (`stat`) and its
//! memory (`status`), for `bench` (contention, peak RSS) and the dashboard's resources overlay.

use std::io::Read;
use std::path::Path;

/// The text of a small `/proc` file (at most 64 KiB; `None` where it cannot be read).
pub(crate) fn read_small(path: &Path) -> Option<String> {
    let mut text = String::new();
    std::fs::File::open(path)
        .ok()?
        .take(64 << 10)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// A process's or thread's name (`comm`) and its CPU time so far in clock ticks (user +
/// system), from the line of `/proc/PID/stat` or `/proc/PID/task/TID/stat`. The name is in
/// parentheses and may itself hold spaces and parentheses: the fields are counted from the
/// last `)`.
pub(crate) fn stat_cpu_ticks(line: &str) -> Option<(String, u64)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let name = line.get(open + 1..close)?.to_string();
    // After the name: state (field 3), ... utime (14), stime (15).
    let rest: Vec<&str> = line.get(close + 1..)?.split_whitespace().collect();
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    Some((name, utime + stime))
}

/// A `kB` field of `/proc/PID/status` (`VmRSS:`, `VmHWM:`), in kB.
pub(crate) fn status_kb(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with(field))?;
    let mut words = line[field.len()..].split_whitespace();
    let kb: u64 = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_the_name_and_cpu_ticks() {
        let line = "4242 (cnn-train) R 4200 4200 31 34816 4200 4194368 1201 0 0 0 1500 37 0 0 20 0 \
                    5 0 8123 1029177344 26010 18446744073709551615";
        assert_eq!(stat_cpu_ticks(line), Some(("cnn-train".into(), 1537)));
        // A name with a space and a parenthesis.
        let odd = "7 (a) b) S 1 1 1 0 -1 0 0 0 0 0 3 4 0 0 20 0 1 0 1 1 1 1";
        assert_eq!(stat_cpu_ticks(odd), Some(("a) b".into(), 7)));
        assert_eq!(stat_cpu_ticks("7 (short) S 1 2"), None);
        assert_eq!(stat_cpu_ticks("garbage"), None);
        let status = "Name:\tcnn-tui\nVmPeak:\t  200000 kB\nVmRSS:\t   12345 kB\nThreads:\t3\n";
        assert_eq!(status_kb(status, "VmRSS:"), Some(12345));
        assert_eq!(status_kb(status, "VmPeak:"), Some(200000));
        assert_eq!(status_kb("VmRSS: lots\n", "VmRSS:"), None);
        // This very process reads.
        let me = read_small(Path::new("/proc/self/stat")).unwrap();
        assert!(stat_cpu_ticks(&me).is_some(), "{me}");
    }
}
