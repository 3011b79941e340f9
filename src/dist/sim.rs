//! N ranks as threads of one process, for the tests: the same collective as MPI's, so that
//! plain `cargo test` checks the order in which gradients are put together.

use std::sync::{Arc, Barrier, Mutex};

use super::Collective;

/// One rank of an in-process group made by [`Sim::group`].
pub struct Sim {
    rank: usize,
    shared: Arc<Shared>,
}

struct Shared {
    slots: Mutex<Vec<Vec<u32>>>,
    barrier: Barrier,
}

impl Sim {
    /// `ranks` ranks, one for each thread that will run one.
    pub fn group(ranks: usize) -> Vec<Sim> {
        let shared = Arc::new(Shared {
            slots: Mutex::new(vec![Vec::new(); ranks]),
            barrier: Barrier::new(ranks),
        });
        (0..ranks)
            .map(|rank| Sim {
                rank,
                shared: Arc::clone(&shared),
            })
            .collect()
    }
}

impl Collective for Sim {
    fn rank(&self) -> usize {
        self.rank
    }

    fn ranks(&self) -> usize {
        self.shared.barrier_len()
    }

    fn all_gather(&self, local: &[u32]) -> Vec<Vec<u32>> {
        let lock = || self.shared.slots.lock().unwrap_or_else(|e| e.into_inner());
        lock()[self.rank] = local.to_vec();
        self.shared.barrier.wait();
        let all = lock().clone();
        // Nobody writes the next round's slot before everyone has read this one.
        self.shared.barrier.wait();
        all
    }
}

impl Shared {
    fn barrier_len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}
