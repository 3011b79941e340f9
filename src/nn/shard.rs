//! A training batch cut into the fixed gradient chunks, and the run of chunks that one rank
//! of a data-parallel run computes (see `dist`).

use std::ops::Range;

/// Fixed number of batch chunks for weight gradients: partial sums are added in chunk order,
/// so results do not depend on the thread count (nor, in `dist`, on the number of ranks).
pub const GRAD_CHUNKS: usize = 8;

/// Samples per gradient chunk of a batch: `per_chunk` when a rank holds part of a split batch
/// (set by `set_shard`), otherwise the batch cut into `GRAD_CHUNKS`.
pub(crate) fn chunk_samples(per_chunk: usize, batch: usize) -> usize {
    if per_chunk > 0 {
        per_chunk
    } else {
        batch.div_ceil(GRAD_CHUNKS).max(1)
    }
}

/// Rank `rank` of `ranks`'s share of a batch of `batch` samples: whole gradient chunks, as
/// even a run of them as the ranks allow (ranks beyond the number of chunks get none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Samples in the whole batch.
    pub batch: usize,
    /// Samples per gradient chunk (the last one may have fewer).
    pub per_chunk: usize,
    /// This rank's first chunk and number of chunks.
    pub first_chunk: usize,
    pub local_chunks: usize,
}

impl Shard {
    pub fn new(batch: usize, rank: usize, ranks: usize) -> Shard {
        let per_chunk = chunk_samples(0, batch);
        let chunks = batch.div_ceil(per_chunk);
        let (first, end) = (rank * chunks / ranks, (rank + 1) * chunks / ranks);
        Shard {
            batch,
            per_chunk,
            first_chunk: first,
            local_chunks: end - first,
        }
    }

    /// Every rank's share, in rank order.
    pub fn all(batch: usize, ranks: usize) -> Vec<Shard> {
        (0..ranks).map(|r| Shard::new(batch, r, ranks)).collect()
    }

    /// This rank's samples: positions in the whole batch.
    pub fn samples(&self) -> Range<usize> {
        let start = (self.first_chunk * self.per_chunk).min(self.batch);
        let end = ((self.first_chunk + self.local_chunks) * self.per_chunk).min(self.batch);
        start..end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_batch_in_order() {
        for batch in [0, 1, 5, 8, 9, 100, 128, 129] {
            for ranks in 1..=10 {
                let shards = Shard::all(batch, ranks);
                let mut next = 0;
                for s in &shards {
                    assert_eq!(s.samples().start, next.min(batch), "{batch} on {ranks}");
                    next = s.samples().end;
                }
                assert_eq!(next, batch);
            }
        }
        // 128 samples: 8 chunks of 16; 3 ranks take 2, 3 and 3 chunks.
        let s = Shard::all(128, 3);
        assert_eq!(
            s.iter().map(|s| s.samples()).collect::<Vec<_>>(),
            [0..32, 32..80, 80..128]
        );
    }
}
