//! Shuffled epoch orders and batch assembly (bytes to [0,1] floats, per batch).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::Split;
use super::augment::{EpochAugment, Normalization, fill_sample};

/// The order in which an epoch visits `len` samples: a permutation fixed by `(seed, epoch)`,
/// so that a run (or a resumed run) sees the same order every time.
pub(crate) fn epoch_order(len: usize, seed: u64, epoch: usize) -> Vec<u32> {
    let mut order: Vec<u32> = (0..len as u32).collect();
    let mut rng =
        ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    order
}

/// Samples converted per parallel task in `fill_batch`.
const FILL_CHUNK: usize = 32;

/// How many samples ahead `fill_batch` asks for the bytes of: a shuffled batch reads samples
/// from all over the training set (47 MB for MNIST, more than the cache), so each would
/// otherwise wait for memory.
const PREFETCH_AHEAD: usize = 2;

/// Asks the CPU to bring `bytes` into the cache (a hint; no effect on results).
#[inline(always)]
fn prefetch(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    for line in bytes.chunks(64) {
        // SAFETY: a prefetch reads nothing architecturally; the pointer is in bounds.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                line.as_ptr().cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Writes the samples `indices` of `split` (pictures of `shape`) into `images` (scaled to
/// [0,1], normalised by `norm`, and augmented when `augment` is given) and `labels`,
/// converting chunks of samples in parallel (each value is computed the same way whatever
/// the thread count). `images` must hold `indices.len() * sample_len` values.
pub(crate) fn fill_batch(
    split: &Split,
    indices: &[u32],
    images: &mut [f32],
    labels: &mut Vec<u8>,
    shape: [usize; 3],
    norm: &Normalization,
    augment: Option<&EpochAugment>,
) {
    let sample_len = split.images.len() / split.len().max(1);
    debug_assert_eq!(images.len(), indices.len() * sample_len);
    labels.clear();
    labels.extend(indices.iter().map(|&i| split.labels[i as usize]));
    if sample_len == 0 {
        return;
    }
    images
        .par_chunks_mut(FILL_CHUNK * sample_len)
        .zip(indices.par_chunks(FILL_CHUNK))
        .for_each(|(images, indices)| {
            for (k, (dst, &i)) in images.chunks_exact_mut(sample_len).zip(indices).enumerate() {
                if let Some(&ahead) = indices.get(k + PREFETCH_AHEAD) {
                    prefetch(&split.images[ahead as usize * sample_len..][..sample_len]);
                }
                let src = &split.images[i as usize * sample_len..][..sample_len];
                fill_sample(src, dst, shape, norm, augment.map(|a| (a, i)));
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_are_permutations_fixed_by_seed_and_epoch() {
        let a = epoch_order(1000, 7, 0);
        assert_eq!(a, epoch_order(1000, 7, 0));
        assert_ne!(a, epoch_order(1000, 7, 1));
        assert_ne!(a, epoch_order(1000, 8, 0));
        let mut sorted = a.clone();
        sorted.sort();
        assert_eq!(sorted, (0..1000).collect::<Vec<u32>>());
    }

    #[test]
    fn batches_scale_bytes_to_unit_range() {
        let split = Split {
            images: vec![0, 255, 51, 102],
            labels: vec![3, 4],
        };
        let mut x = vec![0.0; 4];
        let mut y = Vec::new();
        let norm = Normalization::identity(1);
        fill_batch(&split, &[1, 0], &mut x, &mut y, [2, 1, 1], &norm, None);
        assert_eq!(x, vec![0.2, 0.4, 0.0, 1.0]);
        assert_eq!(y, vec![4, 3]);
    }
}
