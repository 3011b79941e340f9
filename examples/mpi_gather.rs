//! The time one training step's gradient exchange takes over MPI, without the training: the
//! same two gathers as `cnn-tui train` on N ranks (the sizes, then `MPI_Allgatherv` of each
//! rank's words), timed after a barrier so that no rank waits for a slower one.
//!
//! ```sh
//! cargo build --release --features mpi --example mpi_gather
//! mpirun -n 2 --bind-to none target/release/examples/mpi_gather 790000 200
//! ```
//! WORDS: the 32-bit words gathered per step from all ranks together (the run log's
//! "MB gathered per step" times 250 000); REPEATS: how many steps to time.

use std::time::Instant;

use mpi::datatype::PartitionMut;
use mpi::traits::*;

fn main() {
    let mut args = std::env::args().skip(1);
    let words: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(790_000);
    let repeats: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(200);
    let universe = mpi::initialize().expect("MPI starts once");
    let world = universe.world();
    let (rank, ranks) = (world.rank() as usize, world.size() as usize);
    // Rank r sends its share of the words, as a rank does its chunks' parts.
    let share = |r: usize| (r + 1) * words / ranks - r * words / ranks;
    let local = vec![rank as u32; share(rank)];
    let mut times = Vec::with_capacity(repeats);
    for i in 0..repeats + 10 {
        world.barrier();
        let start = Instant::now();
        let mut sizes = vec![0u64; ranks];
        world.all_gather_into(&(local.len() as u64), &mut sizes[..]);
        let counts: Vec<i32> = sizes.iter().map(|&s| s as i32).collect();
        let displs: Vec<i32> = counts
            .iter()
            .scan(0, |at, &c| {
                let d = *at;
                *at += c;
                Some(d)
            })
            .collect();
        let mut all = vec![0u32; sizes.iter().sum::<u64>() as usize];
        let mut parts = PartitionMut::new(&mut all[..], &counts[..], &displs[..]);
        world.all_gather_varcount_into(&local[..], &mut parts);
        if i >= 10 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    if rank == 0 {
        println!(
            "{ranks} ranks, {words} words ({:.2} MB) per step: median {:.3} ms, min {:.3} ms, p90 {:.3} ms over {repeats} steps",
            words as f64 * 4.0 / 1e6,
            times[times.len() / 2],
            times[0],
            times[times.len() * 9 / 10]
        );
    }
}
