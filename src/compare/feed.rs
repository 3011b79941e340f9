//! Follows the run directories of a comparison: what each job appended to `metrics.jsonl`
//! since the last look (read incrementally, no-follow, in bounded steps, as `watch` reads one
//! run), its `summary.json` once it has ended, and whether a job holds its lock. Nothing is
//! ever written into the runs.

use std::path::PathBuf;
use std::sync::mpsc::SyncSender;
use std::time::Duration;

use super::curves::RunCurves;
use crate::rundir::metrics::{Record, Tail};
use crate::rundir::{RunDir, Summary};

/// Most bytes of one run's `metrics.jsonl` read in one look.
const POLL_BYTES: u64 = 1 << 20;

/// What a look found for run `.0`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Update {
    Record(usize, Record),
    /// `metrics.jsonl` was replaced (a resume rewrote it): its records start over.
    Reset(usize),
    Summary(usize, Summary),
    Locked(usize, Option<bool>),
    /// The run directory disappeared (true) or came back (false).
    Gone(usize, bool),
    /// A new run directory appeared in a folder being followed (a sweep's next run): it is
    /// the next run.
    Added(PathBuf),
}

impl Update {
    /// Applies the update to the curves of its run.
    pub(crate) fn apply(self, runs: &mut Vec<RunCurves>) {
        let index = match &self {
            Update::Record(i, _)
            | Update::Reset(i)
            | Update::Summary(i, _)
            | Update::Locked(i, _)
            | Update::Gone(i, _) => *i,
            Update::Added(_) => {
                runs.push(RunCurves::default());
                return;
            }
        };
        let Some(run) = runs.get_mut(index) else {
            return;
        };
        match self {
            Update::Record(_, r) => run.apply(&r),
            Update::Reset(_) => run.reset(),
            Update::Summary(_, s) => run.summary = Some(s),
            Update::Locked(_, l) => run.locked = l,
            Update::Gone(_, g) => run.gone = g,
            Update::Added(_) => {}
        }
    }
}

struct RunFeed {
    dir: RunDir,
    metrics: Tail,
    summary: Option<Summary>,
    locked: Option<Option<bool>>,
    gone: bool,
}

impl RunFeed {
    fn new(dir: &std::path::Path) -> RunFeed {
        let dir = RunDir::new(dir);
        RunFeed {
            metrics: Tail::new(&dir.metrics()),
            dir,
            summary: None,
            locked: None,
            gone: false,
        }
    }
}

/// Looks between two searches of the folders named for new run directories.
const RESCAN: u64 = 4;

/// The runs of a comparison, as last seen.
pub(crate) struct Feed {
    runs: Vec<RunFeed>,
    /// Folders searched again for new runs every [`RESCAN`] looks.
    roots: Vec<PathBuf>,
    looks: u64,
    /// The last look stopped at a run's byte budget: more is there to read now.
    pub(crate) more: bool,
}

impl Feed {
    pub(crate) fn new(dirs: &[PathBuf]) -> Feed {
        Feed {
            runs: dirs.iter().map(|d| RunFeed::new(d)).collect(),
            roots: Vec::new(),
            looks: 0,
            more: false,
        }
    }

    /// Also follows the folders `roots` (the arguments that named the runs): a run directory
    /// that appears in one later (a sweep's next run) joins the comparison, up to
    /// [`super::MAX_RUNS`].
    pub(crate) fn following(mut self, roots: &[PathBuf]) -> Feed {
        self.roots = roots.to_vec();
        self
    }

    /// What changed since the last look.
    pub(crate) fn poll(&mut self) -> Vec<Update> {
        let mut out = Vec::new();
        self.more = false;
        self.looks += 1;
        if self.looks.is_multiple_of(RESCAN) {
            for dir in self.roots.iter().flat_map(|r| crate::runs::find(r)) {
                let known = self.runs.iter().any(|r| r.dir.path() == dir);
                if !known && self.runs.len() < super::MAX_RUNS {
                    self.runs.push(RunFeed::new(&dir));
                    out.push(Update::Added(dir));
                }
            }
        }
        for (i, run) in self.runs.iter_mut().enumerate() {
            let gone = !run.dir.path().is_dir();
            if gone != run.gone {
                run.gone = gone;
                out.push(Update::Gone(i, gone));
            }
            if gone {
                continue;
            }
            let mut records = Vec::new();
            let polled = run.metrics.poll(POLL_BYTES, |r| records.push(r));
            self.more |= polled.more;
            if polled.restarted {
                out.push(Update::Reset(i));
            }
            out.extend(records.into_iter().map(|r| Update::Record(i, r)));
            if let Some(summary) = run.dir.read_summary()
                && run.summary.as_ref() != Some(&summary)
            {
                run.summary = Some(summary.clone());
                out.push(Update::Summary(i, summary));
            }
            let locked = run.dir.locked();
            if run.locked != Some(locked) {
                run.locked = Some(locked);
                out.push(Update::Locked(i, locked));
            }
        }
        out
    }

    /// Every run's curves as they stand now (the whole history read).
    pub(crate) fn read_all(dirs: &[PathBuf]) -> Vec<RunCurves> {
        let mut feed = Feed::new(dirs);
        let mut curves = vec![RunCurves::default(); dirs.len()];
        loop {
            feed.poll().into_iter().for_each(|u| u.apply(&mut curves));
            if !feed.more {
                return curves;
            }
        }
    }
}

/// Follows the runs every `poll` on a thread of its own until the receiver goes away.
pub(crate) fn spawn(
    mut feed: Feed,
    poll: Duration,
    updates: SyncSender<Vec<Update>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("compare-feed".into())
        .spawn(move || {
            loop {
                let found = feed.poll();
                if !found.is_empty() && updates.send(found).is_err() {
                    return;
                }
                if !feed.more {
                    std::thread::sleep(poll);
                }
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appended_records_are_read_once_and_a_replaced_file_starts_over() {
        let root = tempfile::tempdir().unwrap();
        let run = root.path().join("r");
        std::fs::create_dir(&run).unwrap();
        let metrics = run.join("metrics.jsonl");
        let epoch = |n: usize, acc: f64| {
            format!(
                r#"{{"type":"epoch","epoch":{n},"step":{n},"loss":0.5,"accuracy":0.9,"val_loss":0.4,"val_accuracy":{acc},"lr":0.1,"seconds":1.0}}"#
            ) + "\n"
        };
        std::fs::write(&metrics, epoch(1, 0.5)).unwrap();
        let dirs = [run.clone()];
        let mut feed = Feed::new(&dirs);
        let mut curves = vec![RunCurves::default()];
        let first = feed.poll();
        assert!(first.contains(&Update::Locked(0, None)), "{first:?}");
        first.into_iter().for_each(|u| u.apply(&mut curves));
        assert_eq!(curves[0].val_accuracy, vec![(1.0, 0.5)]);
        assert!(feed.poll().is_empty(), "nothing new");
        std::fs::OpenOptions::new()
            .append(true)
            .open(&metrics)
            .unwrap()
            .write_all(epoch(2, 0.7).as_bytes())
            .unwrap();
        feed.poll().into_iter().for_each(|u| u.apply(&mut curves));
        assert_eq!(curves[0].val_accuracy, vec![(1.0, 0.5), (2.0, 0.7)]);
        // A resume replaces the file: the curve starts over from what it holds.
        let tmp = run.join("tmp");
        std::fs::write(&tmp, epoch(1, 0.6)).unwrap();
        std::fs::rename(&tmp, &metrics).unwrap();
        feed.poll().into_iter().for_each(|u| u.apply(&mut curves));
        assert_eq!(curves[0].val_accuracy, vec![(1.0, 0.6)]);
        // A metrics file swapped for a link is not read; a vanished run is said once.
        std::fs::remove_file(&metrics).unwrap();
        std::os::unix::fs::symlink(&tmp, &metrics).unwrap();
        std::fs::write(&tmp, epoch(1, 0.9)).unwrap();
        assert!(feed.poll().is_empty());
        std::fs::rename(&run, root.path().join("moved")).unwrap();
        assert_eq!(feed.poll(), vec![Update::Gone(0, true)]);
        assert!(feed.poll().is_empty());
        assert_eq!(
            Feed::read_all(&[root.path().join("moved")])[0].val_accuracy,
            vec![]
        );
    }
    use std::io::Write;

    #[test]
    fn a_sweeps_next_run_joins_when_its_directory_appears() {
        let root = tempfile::tempdir().unwrap();
        let run = |name: &str| {
            let d = root.path().join(name);
            std::fs::create_dir(&d).unwrap();
            std::fs::write(d.join("config.toml"), "").unwrap();
            d
        };
        let first = run("000");
        let mut feed = Feed::new(std::slice::from_ref(&first)).following(&[root.path().into()]);
        let mut curves = vec![RunCurves::default()];
        let second = run("001");
        let found: Vec<Update> = (0..RESCAN).flat_map(|_| feed.poll()).collect();
        assert!(found.contains(&Update::Added(second)), "{found:?}");
        assert!(
            found.contains(&Update::Locked(1, None)),
            "read at once: {found:?}"
        );
        assert_eq!(
            found
                .iter()
                .filter(|u| matches!(u, Update::Added(_)))
                .count(),
            1
        );
        found.into_iter().for_each(|u| u.apply(&mut curves));
        assert_eq!(curves.len(), 2);
        let again: Vec<Update> = (0..RESCAN).flat_map(|_| feed.poll()).collect();
        assert!(again.is_empty(), "{again:?}");
    }
}
