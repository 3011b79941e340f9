//! What loading prints on stderr: a progress bar redrawn in place in a terminal, one line per
//! phase otherwise (a batch job's log stays short).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// A counter the decoding threads bump, drawn by a helper thread while a phase runs.
pub(crate) struct Progress {
    done: AtomicUsize,
    total: usize,
    finished: AtomicBool,
}

impl Progress {
    pub(crate) fn tick(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

/// Whether loading messages are drawn as a bar (stderr is a terminal) or as lines.
fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

/// One line on stderr, prefixed `data: `.
pub(crate) fn say(line: &str) {
    eprintln!("data: {line}");
}

/// Runs `work` as the phase `what` over `total` items: a bar in a terminal, otherwise a line
/// before and a line after with the time taken.
pub(crate) fn phase<T>(what: &str, total: usize, work: impl FnOnce(&Progress) -> T) -> T {
    let progress = Progress {
        done: AtomicUsize::new(0),
        total,
        finished: AtomicBool::new(false),
    };
    let start = Instant::now();
    let bar = interactive();
    if !bar {
        say(&format!("{what}: {total} files..."));
    }
    let result = std::thread::scope(|s| {
        if bar {
            s.spawn(|| {
                while !progress.finished.load(Ordering::Relaxed) {
                    draw(what, &progress, start);
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        let result = work(&progress);
        progress.finished.store(true, Ordering::Relaxed);
        result
    });
    let seconds = start.elapsed().as_secs_f64();
    if bar {
        eprint!("\r\x1b[2K");
    }
    say(&format!("{what}: {total} files in {seconds:.1} s"));
    result
}

fn draw(what: &str, p: &Progress, start: Instant) {
    const WIDTH: usize = 30;
    let done = p.done.load(Ordering::Relaxed).min(p.total);
    let filled = (done * WIDTH).checked_div(p.total).unwrap_or(WIDTH);
    let mut err = std::io::stderr().lock();
    let _ = write!(
        err,
        "\r\x1b[2Kdata: {what} [{}{}] {done}/{} {:.1} s",
        "#".repeat(filled),
        " ".repeat(WIDTH - filled),
        p.total,
        start.elapsed().as_secs_f64()
    );
    let _ = err.flush();
}
