//! Data-parallel training: the same run on several ranks (processes, usually MPI under Slurm),
//! bit-identical to one process for any number of ranks.
//!
//! A batch is already cut into a fixed number of gradient chunks whatever the thread count
//! (`nn::Shard`). Each rank computes a run of whole chunks; then every rank gathers all
//! ranks' parts (per-chunk partial sums, or a layer's rows) and puts them together in chunk
//! and sample order, exactly as one process sums its own chunks. No reduction is left to the
//! communication library, whose sums have no fixed order: only gathers, which copy.
//!
//! A [`Collective`] is the group of ranks: [`Local`] is one process, [`Sim`] runs N ranks as
//! threads of one process (the tests), and `mpi::World` (cargo feature `mpi`) is MPI.

mod launch;
#[cfg(feature = "mpi")]
mod mpi;
mod sim;

use crate::data::{EpochAugment, Split};
use crate::nn::loss::BatchStats;
use crate::nn::{Context, Sequential, Shard, combine_eval};

pub(crate) use launch::Ranks;
pub use sim::Sim;

/// The ranks of a run, and the one collective operation training needs.
pub trait Collective: Send {
    /// This process's rank, from 0.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn ranks(&self) -> usize;
    /// Every rank's `local` words, in rank order (each rank may give a different number).
    /// All ranks must call it together.
    fn all_gather(&self, local: &[u32]) -> Vec<Vec<u32>>;
}

/// One process: rank 0 of 1.
pub struct Local;

impl Collective for Local {
    fn rank(&self) -> usize {
        0
    }

    fn ranks(&self) -> usize {
        1
    }

    fn all_gather(&self, local: &[u32]) -> Vec<Vec<u32>> {
        vec![local.to_vec()]
    }
}

/// The forward and backward pass of the batch `indices` of `split` over all ranks: afterwards
/// every rank's parameter gradients, and the returned stats, are bit for bit those of one
/// process running the whole batch.
pub(crate) fn forward_backward(
    model: &mut Sequential,
    comm: &dyn Collective,
    split: &Split,
    indices: &[u32],
    augment: Option<&EpochAugment>,
    ctx: &Context,
) -> BatchStats {
    if comm.ranks() == 1 {
        model.load_train_batch(split, indices, augment);
        return model.forward_backward(ctx);
    }
    let shards = Shard::all(indices.len(), comm.ranks());
    let mine = &shards[comm.rank()];
    let mut terms = Vec::new();
    let correct = if mine.samples().is_empty() {
        0
    } else {
        model.load_train_batch(split, &indices[mine.samples()], augment);
        model.forward_backward_shard(ctx, mine, &mut terms)
    };
    // Words: the number correct, the loss terms (f64 as two words), the gradient parts.
    let mut words = vec![correct as u32, terms.len() as u32];
    for t in &terms {
        let b = t.to_bits();
        words.extend([b as u32, (b >> 32) as u32]);
    }
    model.pack_grad_parts(mine, &mut words);
    let all = comm.all_gather(&words);
    let (mut correct, mut terms) = (0usize, Vec::with_capacity(indices.len()));
    let mut parts = Vec::with_capacity(all.len());
    for w in &all {
        correct += w[0] as usize;
        let n = w[1] as usize;
        let pairs = &w[2..2 + 2 * n];
        terms.extend(
            pairs
                .chunks_exact(2)
                .map(|p| f64::from_bits(p[0] as u64 | (p[1] as u64) << 32)),
        );
        parts.push(&w[2 + 2 * n..]);
    }
    model.grads_from_parts(&shards, &parts);
    BatchStats {
        loss: model.loss_of_terms(&terms, indices.len()),
        correct,
        samples: indices.len(),
    }
}

/// Loss and accuracy over `split`, and each sample's predicted class, its evaluation pieces
/// shared among the ranks: the same on every rank as one process's `Sequential::evaluate`.
pub(crate) fn evaluate(
    model: &mut Sequential,
    comm: &dyn Collective,
    split: &Split,
) -> (BatchStats, Vec<u8>) {
    if comm.ranks() == 1 {
        return model.evaluate(split);
    }
    let (rank, ranks) = (comm.rank(), comm.ranks());
    let pieces = model.eval_pieces(split);
    let mine = rank * pieces / ranks..(rank + 1) * pieces / ranks;
    let mut predictions = Vec::new();
    let stats = model.evaluate_pieces(split, mine, Some(&mut predictions));
    // Words: the number of pieces, three words per piece, then one per prediction.
    let mut words = vec![stats.len() as u32];
    words.extend(
        stats
            .iter()
            .flat_map(|s| [s.loss.to_bits(), s.correct as u32, s.samples as u32]),
    );
    words.extend(predictions.iter().map(|&p| p as u32));
    let (mut all, mut predictions) = (Vec::new(), Vec::with_capacity(split.len()));
    for w in comm.all_gather(&words) {
        let n = w[0] as usize;
        all.extend(w[1..1 + 3 * n].chunks_exact(3).map(|s| BatchStats {
            loss: f32::from_bits(s[0]),
            correct: s[1] as usize,
            samples: s[2] as usize,
        }));
        predictions.extend(w[1 + 3 * n..].iter().map(|&p| p as u8));
    }
    (combine_eval(&all), predictions)
}

#[cfg(test)]
mod tests;
