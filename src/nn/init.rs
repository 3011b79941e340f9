//! Seeded weight initialisers.

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::Init;

/// Fills `w` for a layer with the given fans, from a generator fixed by `seed`.
pub(crate) fn init_weights(w: &mut [f32], init: Init, fan_in: usize, fan_out: usize, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    match init {
        Init::GlorotUniform => {
            let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
            w.iter_mut()
                .for_each(|v| *v = rng.random_range(-limit..limit) as f32);
        }
        Init::HeNormal => {
            let std = (2.0 / fan_in as f64).sqrt();
            w.iter_mut()
                .for_each(|v| *v = (standard_normal(&mut rng) * std) as f32);
        }
        Init::TruncatedNormal => {
            w.iter_mut().for_each(|v| {
                let z = loop {
                    let z = standard_normal(&mut rng);
                    if z.abs() <= 2.0 {
                        break z;
                    }
                };
                *v = (z * 0.1) as f32;
            });
        }
    }
}

/// One standard normal sample (Box-Muller).
fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>(); // in (0, 1]
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(init: Init, fan_in: usize, fan_out: usize) -> (f64, f64, f64) {
        let mut w = vec![0.0f32; 20000];
        init_weights(&mut w, init, fan_in, fan_out, 1);
        let n = w.len() as f64;
        let mean = w.iter().map(|&v| v as f64).sum::<f64>() / n;
        let var = w.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
        let max = w.iter().map(|v| v.abs() as f64).fold(0.0, f64::max);
        (mean, var.sqrt(), max)
    }

    #[test]
    fn initialisers_have_their_documented_spread() {
        let (mean, std, max) = stats(Init::GlorotUniform, 100, 200);
        let limit = (6.0f64 / 300.0).sqrt();
        assert!(mean.abs() < 0.01 && max <= limit && (std - limit / 3f64.sqrt()).abs() < 0.005);
        let (_, std, _) = stats(Init::HeNormal, 50, 10);
        assert!((std - 0.2).abs() < 0.01, "{std}");
        let (_, _, max) = stats(Init::TruncatedNormal, 1, 1);
        assert!(max <= 0.2 + 1e-6);
    }

    #[test]
    fn same_seed_same_weights() {
        let mut a = vec![0.0; 10];
        let mut b = vec![0.0; 10];
        init_weights(&mut a, Init::HeNormal, 3, 3, 9);
        init_weights(&mut b, Init::HeNormal, 3, 3, 9);
        assert_eq!(a, b);
    }
}
