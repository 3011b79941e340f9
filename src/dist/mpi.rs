//! MPI (cargo feature `mpi`): the ranks are those of `MPI_COMM_WORLD`, started by `srun` or
//! `mpirun`. Gathers only (`MPI_Iallgather` of the sizes, waited for by polling and napping, then
//! `MPI_Allgatherv`); every sum is ours, in a fixed order.
//!
//! A rank that dies or hangs must not leave the others waiting for ever in a gather: a
//! watchdog thread ends the whole job (`MPI_Abort`) when this rank has waited in one gather
//! longer than the limit, and a panic anywhere aborts the job too.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mpi::Threading;
use mpi::datatype::PartitionMut;
use mpi::environment::Universe;
use mpi::topology::SimpleCommunicator;
use mpi::traits::*;

use super::Collective;

/// The exit code of a job ended by the watchdog.
const WATCHDOG_EXIT: i32 = 75;
/// The exit code of a job ended by a panic.
const PANIC_EXIT: i32 = 70;

/// MPI for this process: dropping it ends MPI (`MPI_Finalize`), so the caller holds it until
/// the run is over.
pub(crate) struct Runtime {
    _universe: Universe,
    rank: usize,
    ranks: usize,
    watch: Arc<Watch>,
}

/// When this rank entered the gather it is waiting in.
struct Watch {
    started: Instant,
    /// Milliseconds since `started` at which the current gather began, plus one; 0 when none.
    waiting_since: AtomicU64,
    /// Whether a gather has completed: before that, ranks may still be loading their data.
    armed: AtomicBool,
    /// Gathers of a training step's gradients (the large ones): how many, their nanoseconds
    /// (waiting for slower ranks included) and words.
    steps: AtomicU64,
    step_nanos: AtomicU64,
    step_words: AtomicU64,
}

/// The watchdog's limit for the first gather, in times its limit for the others.
const FIRST_GATHER_FACTOR: u32 = 15;

/// How long a gather waits for the other ranks by spinning, before it naps between looks.
const SPIN: Duration = Duration::from_micros(500);
/// A nap between two looks at a gather that is not done.
const NAP: Duration = Duration::from_millis(1);

/// Gathers of at least this many words are counted as a training step's.
const STEP_WORDS: usize = 4096;

impl Watch {
    fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64 + 1
    }
}

/// Starts MPI. `Err` says why it cannot be used (to be reported by the caller).
pub(crate) fn init(limit: Duration) -> Result<Runtime, String> {
    let (universe, threading) = mpi::initialize_with_threading(Threading::Multiple)
        .ok_or_else(|| "MPI was started twice".to_string())?;
    // The trainer thread alone calls MPI; the watchdog only aborts.
    if threading < Threading::Serialized {
        return Err(format!(
            "the MPI library offers only {threading:?} threading; cnn-tui needs MPI_THREAD_SERIALIZED"
        ));
    }
    let world = universe.world();
    let (rank, ranks) = (world.rank() as usize, world.size() as usize);
    let watch = Arc::new(Watch {
        started: Instant::now(),
        waiting_since: AtomicU64::new(0),
        armed: AtomicBool::new(false),
        steps: AtomicU64::new(0),
        step_nanos: AtomicU64::new(0),
        step_words: AtomicU64::new(0),
    });
    if ranks > 1 {
        abort_on_panic(rank);
        start_watchdog(rank, Arc::clone(&watch), limit);
    }
    Ok(Runtime {
        _universe: universe,
        rank,
        ranks,
        watch,
    })
}

impl Runtime {
    pub(crate) fn rank(&self) -> usize {
        self.rank
    }

    pub(crate) fn ranks(&self) -> usize {
        self.ranks
    }

    /// The time the training steps' gathers took, for the log.
    pub(crate) fn summary(&self) -> Option<String> {
        let w = &self.watch;
        let steps = w.steps.load(Ordering::Acquire);
        (steps > 0).then(|| {
            let ms = w.step_nanos.load(Ordering::Acquire) as f64 / 1e6 / steps as f64;
            let mb = w.step_words.load(Ordering::Acquire) as f64 * 4.0 / 1e6 / steps as f64;
            format!(
                "MPI: {} ranks; gathering a step's gradients took {ms:.3} ms on average ({mb:.2} MB gathered per step from all ranks, over {steps} steps; waits for slower ranks included)",
                self.ranks
            )
        })
    }

    /// A handle on the ranks for the training thread.
    pub(crate) fn world(&self) -> World {
        World {
            rank: self.rank,
            ranks: self.ranks,
            watch: Arc::clone(&self.watch),
        }
    }
}

/// Ends every rank of the job (`MPI_Abort`).
pub(crate) fn abort(code: i32) -> ! {
    SimpleCommunicator::world().abort(code)
}

/// A panic on any thread of any rank ends the whole job at once, after the usual message:
/// otherwise the other ranks would wait for this one in their next gather.
fn abort_on_panic(rank: usize) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        previous(info);
        eprintln!("rank {rank}: panicked: ending every rank of the job (MPI_Abort)");
        SimpleCommunicator::world().abort(PANIC_EXIT);
    }));
}

fn start_watchdog(rank: usize, watch: Arc<Watch>, limit: Duration) {
    let spawned = std::thread::Builder::new()
        .name("mpi-watchdog".into())
        .spawn(move || {
            loop {
                std::thread::sleep(Duration::from_millis(500));
                let since = watch.waiting_since.load(Ordering::Acquire);
                if since == 0 {
                    continue;
                }
                // Before the first gather the ranks may still be loading their data, at
                // different speeds: a longer limit there.
                let limit = match watch.armed.load(Ordering::Acquire) {
                    true => limit,
                    false => limit * FIRST_GATHER_FACTOR,
                };
                let waited = Duration::from_millis(watch.now().saturating_sub(since));
                if waited > limit {
                    eprintln!(
                        "rank {rank}: waited {:.0} s for the other ranks (one died or hangs): ending every rank of the job (MPI_Abort); the last checkpoint is intact",
                        waited.as_secs_f64()
                    );
                    SimpleCommunicator::world().abort(WATCHDOG_EXIT);
                }
            }
        });
    if let Err(e) = spawned {
        eprintln!("rank {rank}: no watchdog thread ({e}): a hung rank will not end the job");
    }
}

/// The ranks of `MPI_COMM_WORLD`, for the training thread.
pub(crate) struct World {
    rank: usize,
    ranks: usize,
    watch: Arc<Watch>,
}

impl Collective for World {
    fn rank(&self) -> usize {
        self.rank
    }

    fn ranks(&self) -> usize {
        self.ranks
    }

    fn all_gather(&self, local: &[u32]) -> Vec<Vec<u32>> {
        let world = SimpleCommunicator::world();
        let started = Instant::now();
        self.watch
            .waiting_since
            .store(self.watch.now(), Ordering::Release);
        // The sizes first, waited for by polling: a rank that waits long for the others (a
        // paused run, a slower rank) sleeps instead of spinning in MPI's progress loop.
        let mut sizes = vec![0u64; self.ranks];
        let mine = local.len() as u64;
        mpi::request::scope(|scope| {
            let mut request = world.immediate_all_gather_into(scope, &mine, &mut sizes[..]);
            loop {
                match request.test() {
                    Ok(_) => break,
                    Err(r) => request = r,
                }
                if started.elapsed() < SPIN {
                    std::hint::spin_loop();
                } else {
                    std::thread::sleep(NAP);
                }
            }
        });
        let total: u64 = sizes.iter().sum();
        assert!(
            total <= i32::MAX as u64,
            "a gather of {total} words is more than MPI counts allow"
        );
        let counts: Vec<i32> = sizes.iter().map(|&s| s as i32).collect();
        let displs: Vec<i32> = counts
            .iter()
            .scan(0, |at, &c| {
                let d = *at;
                *at += c;
                Some(d)
            })
            .collect();
        let mut all = vec![0u32; total as usize];
        {
            let mut parts = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
            world.all_gather_varcount_into(local, &mut parts);
        }
        self.watch.waiting_since.store(0, Ordering::Release);
        self.watch.armed.store(true, Ordering::Release);
        if total as usize >= STEP_WORDS {
            let w = &self.watch;
            w.steps.fetch_add(1, Ordering::AcqRel);
            w.step_nanos
                .fetch_add(started.elapsed().as_nanos() as u64, Ordering::AcqRel);
            w.step_words.fetch_add(total, Ordering::AcqRel);
        }
        let mut rest = &all[..];
        sizes
            .iter()
            .map(|&s| {
                let (mine, next) = rest.split_at(s as usize);
                rest = next;
                mine.to_vec()
            })
            .collect()
    }
}
