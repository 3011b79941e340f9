//! What happens to a picture between its bytes and the model's input: scaling to [0, 1],
//! optional per-channel normalisation, and for training batches the augmentations of
//! `[data.augment]` (random crop after padding, horizontal flip, cutout), all done while the
//! batch is filled, with no copy in between.
//!
//! An augmentation is a function of (seed, epoch, sample index) alone, as dropout masks are
//! of (seed, step): the same sample in the same epoch is always transformed the same way,
//! whichever batch or thread it lands in, so a resumed run stays bit-identical.

use crate::config::{AugmentConfig, Normalize, PadMode};

/// SplitMix64's finalizer: a well-mixed 64-bit hash of a counter (augmentation's and
/// dropout's draws, keyed by seed and sample).
#[inline(always)]
pub(crate) fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Per-channel `x = (byte / 255 - mean) / std`; mean 0 and std 1 leave bytes / 255.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Normalization {
    pub(crate) mean: Vec<f32>,
    pub(crate) std: Vec<f32>,
}

impl Normalization {
    /// No normalisation for `channels` channels.
    pub(crate) fn identity(channels: usize) -> Normalization {
        Normalization {
            mean: vec![0.0; channels],
            std: vec![1.0; channels],
        }
    }

    /// `per_channel` from the training split's bytes, or none; `channels` per pixel.
    pub(crate) fn for_config(kind: Normalize, images: &[u8], channels: usize) -> Normalization {
        match kind {
            Normalize::None => Normalization::identity(channels),
            Normalize::PerChannel => Normalization::of_images(images, channels),
        }
    }

    pub(crate) fn is_identity(&self) -> bool {
        self.mean.iter().all(|&m| m == 0.0) && self.std.iter().all(|&s| s == 1.0)
    }

    /// Mean and standard deviation of each channel over all pixels of `images` (bytes,
    /// channels last), as values in [0, 1]. Sums in u64: exact, so the same on any machine.
    pub(crate) fn of_images(images: &[u8], channels: usize) -> Normalization {
        let mut sum = vec![0u64; channels];
        let mut sq = vec![0u64; channels];
        for px in images.chunks_exact(channels) {
            for (ch, &v) in px.iter().enumerate() {
                sum[ch] += v as u64;
                sq[ch] += (v as u64) * (v as u64);
            }
        }
        let n = (images.len() / channels.max(1)).max(1) as f64;
        let (mean, std) = (0..channels)
            .map(|ch| {
                let m = sum[ch] as f64 / n / 255.0;
                let var = (sq[ch] as f64 / n / 65025.0 - m * m).max(0.0);
                (m as f32, (var.sqrt() as f32).max(1e-3))
            })
            .unzip();
        Normalization { mean, std }
    }

    /// The value of byte `b` in channel `ch`.
    #[inline(always)]
    pub(crate) fn value(&self, b: u8, ch: usize) -> f32 {
        (b as f32 / 255.0 - self.mean[ch]) / self.std[ch]
    }

    /// Applies the normalisation to values already scaled to [0, 1] (pictures for `predict`).
    pub(crate) fn apply(&self, values: &mut [f32]) {
        if self.is_identity() {
            return;
        }
        let c = self.mean.len();
        for px in values.chunks_exact_mut(c) {
            for (ch, v) in px.iter_mut().enumerate() {
                *v = (*v - self.mean[ch]) / self.std[ch];
            }
        }
    }
}

/// The augmentations of one epoch: the config and a key from (seed, epoch).
#[derive(Debug, Clone, Copy)]
pub(crate) struct EpochAugment<'a> {
    pub(crate) config: &'a AugmentConfig,
    key: u64,
}

impl<'a> EpochAugment<'a> {
    /// `None` when the config asks for nothing.
    pub(crate) fn new(
        config: &'a AugmentConfig,
        seed: u64,
        epoch: usize,
    ) -> Option<EpochAugment<'a>> {
        config.is_active().then(|| EpochAugment {
            config,
            key: splitmix64(seed ^ splitmix64(epoch as u64 ^ 0xA076_1D64_78BD_642F)),
        })
    }

    /// The crop offsets (0 to 2 * padding), flip and cutout centre of sample `index`.
    fn draw(&self, index: u32, [h, w]: [usize; 2]) -> Draw {
        let r = splitmix64(self.key ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let r2 = splitmix64(r);
        let span = 2 * self.config.crop_padding as u64 + 1;
        Draw {
            dy: ((r & 0xFFFF) % span) as usize,
            dx: (((r >> 16) & 0xFFFF) % span) as usize,
            flip: self.config.flip && (r >> 63) == 1,
            cy: ((r2 & 0xFFFF_FFFF) % h as u64) as usize,
            cx: ((r2 >> 32) % w as u64) as usize,
        }
    }
}

struct Draw {
    dy: usize,
    dx: usize,
    flip: bool,
    cy: usize,
    cx: usize,
}

/// Index `i - pad` into `0..n` after padding: `None` for zero padding outside, mirrored
/// (without repeating the edge, as numpy's and torchvision's `reflect`) otherwise.
#[inline(always)]
fn source(i: usize, pad: usize, n: usize, mode: PadMode) -> Option<usize> {
    let i = i as isize - pad as isize;
    let n = n as isize;
    if (0..n).contains(&i) {
        return Some(i as usize);
    }
    match mode {
        PadMode::Zero => None,
        PadMode::Reflect => {
            let r = if i < 0 { -i } else { 2 * (n - 1) - i };
            Some(r.clamp(0, n - 1) as usize)
        }
    }
}

/// `1 / 255` in f32.
const INV_255: f32 = 1.0 / 255.0;

/// `byte / 255` rounded exactly as the division: the product with `1 / 255` and one
/// correction by a fused multiply-add (the test checks all 256 bytes). Three vector
/// operations per 16 bytes with AVX-512 instead of a division.
#[inline(always)]
pub(crate) fn unit_fraction_fma(b: u8) -> f32 {
    let x = b as f32;
    let q = x * INV_255;
    let r = (-q).mul_add(255.0, x);
    r.mul_add(INV_255, q)
}

/// `dst[i] = src[i] / 255` (as the division rounds), with AVX-512 or AVX2 and FMA where the
/// CPU has them (`unit_fraction_fma`: the same bits), by division otherwise.
pub(crate) fn unit_fractions(src: &[u8], dst: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx512f")]
        fn avx512(src: &[u8], dst: &mut [f32]) {
            dst.iter_mut()
                .zip(src)
                .for_each(|(d, &s)| *d = unit_fraction_fma(s));
        }
        #[target_feature(enable = "avx2,fma")]
        fn avx2(src: &[u8], dst: &mut [f32]) {
            dst.iter_mut()
                .zip(src)
                .for_each(|(d, &s)| *d = unit_fraction_fma(s));
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU supports the features `avx512` was compiled for.
            return unsafe { avx512(src, dst) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the CPU supports the features `avx2` was compiled for.
            return unsafe { avx2(src, dst) };
        }
    }
    // Without FMA instructions `mul_add` would be a library call: divide.
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s as f32 / 255.0;
    }
}

/// Writes one sample: `src` bytes `[h, w, c]` into `dst`, normalised, and augmented when
/// `augment` is given (sample `index`).
pub(crate) fn fill_sample(
    src: &[u8],
    dst: &mut [f32],
    shape: [usize; 3],
    norm: &Normalization,
    augment: Option<(&EpochAugment, u32)>,
) {
    let [h, w, c] = shape;
    let Some((aug, index)) = augment else {
        if norm.is_identity() {
            unit_fractions(src, dst);
        } else {
            for (dp, sp) in dst.chunks_exact_mut(c).zip(src.chunks_exact(c)) {
                for ch in 0..c {
                    dp[ch] = norm.value(sp[ch], ch);
                }
            }
        }
        return;
    };
    let cfg = aug.config;
    let d = aug.draw(index, [h, w]);
    let pad = cfg.crop_padding;
    for r in 0..h {
        let sr = source(r + d.dy, pad, h, cfg.padding_mode);
        for q in 0..w {
            let q0 = if d.flip { w - 1 - q } else { q };
            let out = &mut dst[(r * w + q) * c..][..c];
            match (sr, source(q0 + d.dx, pad, w, cfg.padding_mode)) {
                (Some(sr), Some(sq)) => {
                    let px = &src[(sr * w + sq) * c..][..c];
                    for ch in 0..c {
                        out[ch] = norm.value(px[ch], ch);
                    }
                }
                _ => {
                    for (ch, o) in out.iter_mut().enumerate() {
                        *o = norm.value(0, ch);
                    }
                }
            }
        }
    }
    let s = cfg.cutout;
    if s > 0 {
        let (r0, q0) = (d.cy.saturating_sub(s / 2), d.cx.saturating_sub(s / 2));
        let (r1, q1) = ((d.cy + s.div_ceil(2)).min(h), (d.cx + s.div_ceil(2)).min(w));
        for r in r0..r1 {
            dst[(r * w + q0) * c..(r * w + q1) * c].fill(0.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_fractions_round_as_the_division() {
        let bytes: Vec<u8> = (0..=255).collect();
        let mut fast = vec![0.0; 256];
        unit_fractions(&bytes, &mut fast);
        for b in 0..=255u8 {
            let want = (b as f32 / 255.0).to_bits();
            assert_eq!(unit_fraction_fma(b).to_bits(), want, "byte {b}");
            assert_eq!(fast[b as usize].to_bits(), want, "byte {b}");
        }
    }

    fn config(crop_padding: usize, mode: PadMode, flip: bool, cutout: usize) -> AugmentConfig {
        AugmentConfig {
            crop_padding,
            padding_mode: mode,
            flip,
            cutout,
        }
    }

    /// A 4x4 one-channel image with bytes 1..=16.
    fn image() -> Vec<u8> {
        (1..=16).collect()
    }

    fn fill(cfg: &AugmentConfig, seed: u64, epoch: usize, index: u32) -> Vec<f32> {
        let aug = EpochAugment::new(cfg, seed, epoch).unwrap();
        let mut out = vec![0.0; 16];
        let norm = Normalization::identity(1);
        fill_sample(&image(), &mut out, [4, 4, 1], &norm, Some((&aug, index)));
        out.iter().map(|v| (v * 255.0).round()).collect()
    }

    #[test]
    fn crops_flips_and_cutouts_are_fixed_by_seed_epoch_and_sample() {
        let cfg = config(2, PadMode::Zero, true, 2);
        let a = fill(&cfg, 1, 1, 5);
        assert_eq!(a, fill(&cfg, 1, 1, 5));
        let differ = |f: &dyn Fn(u64) -> Vec<f32>| (0..20).any(|k| f(k) != a);
        assert!(differ(&|k| fill(&cfg, 1 + k, 1, 5)), "seed");
        assert!(differ(&|k| fill(&cfg, 1, 2 + k as usize, 5)), "epoch");
        assert!(differ(&|k| fill(&cfg, 1, 1, 6 + k as u32)), "sample");
    }

    /// Every crop is a shifted window of the padded image, and flips mirror it: each output
    /// row is a window of a source row (or zeros), in order or reversed.
    #[test]
    fn every_output_is_a_padded_crop_possibly_mirrored() {
        let img: Vec<f32> = image().iter().map(|&b| b as f32).collect();
        for (mode, pad_value) in [(PadMode::Zero, None), (PadMode::Reflect, Some(()))] {
            let cfg = config(1, mode, true, 0);
            let mut seen_flip = false;
            let mut offsets = std::collections::HashSet::new();
            for index in 0..200 {
                let out = fill(&cfg, 9, 1, index);
                // Find (dy, dx, flip) that reproduce `out` from the padded image.
                let mut found = false;
                for dy in 0..3 {
                    for dx in 0..3 {
                        for flip in [false, true] {
                            let expect: Vec<f32> = (0..16)
                                .map(|k| {
                                    let (r, q) = (k / 4, k % 4);
                                    let q = if flip { 3 - q } else { q };
                                    match (source(r + dy, 1, 4, mode), source(q + dx, 1, 4, mode)) {
                                        (Some(r), Some(q)) => img[r * 4 + q],
                                        _ => 0.0,
                                    }
                                })
                                .collect();
                            if expect == out {
                                found = true;
                                seen_flip |= flip && dx != 1;
                                offsets.insert((dy, dx));
                            }
                        }
                    }
                }
                assert!(found, "{mode:?} sample {index}: {out:?}");
                if pad_value.is_some() {
                    assert!(!out.contains(&0.0), "reflect padding never pads with zeros");
                }
            }
            assert!(seen_flip, "{mode:?}: some samples are flipped");
            assert_eq!(offsets.len(), 9, "{mode:?}: every offset occurs");
        }
        assert_eq!(source(0, 2, 4, PadMode::Reflect), Some(2));
        assert_eq!(source(1, 2, 4, PadMode::Reflect), Some(1));
        assert_eq!(source(6, 2, 4, PadMode::Reflect), Some(2));
        assert_eq!(source(0, 2, 4, PadMode::Zero), None);
    }

    #[test]
    fn cutout_zeroes_a_square_of_its_side_or_its_clipped_part() {
        let cfg = config(0, PadMode::Zero, false, 2);
        for index in 0..50 {
            let out = fill(&cfg, 3, 1, index);
            let zeros = out.iter().filter(|&&v| v == 0.0).count();
            assert!((1..=4).contains(&zeros), "{out:?}");
            // The rest is the image unchanged.
            for (v, b) in out.iter().zip(image()) {
                assert!(*v == 0.0 || *v == b as f32);
            }
        }
    }

    #[test]
    fn per_channel_statistics_and_normalised_values() {
        // Two pixels of two channels: channel 0 bytes 0 and 255, channel 1 51 and 51.
        let n = Normalization::of_images(&[0, 51, 255, 51], 2);
        assert_eq!(n.mean, vec![0.5, 0.2]);
        assert_eq!(n.std[0], 0.5);
        assert_eq!(n.std[1], 1e-3, "a constant channel is not divided by zero");
        let mut out = vec![0.0; 4];
        fill_sample(&[0, 51, 255, 51], &mut out, [1, 2, 2], &n, None);
        assert_eq!(out, vec![-1.0, 0.0, 1.0, 0.0]);
        let mut values = vec![1.0, 0.2];
        n.apply(&mut values);
        assert_eq!(values, vec![1.0, 0.0]);
    }
}
