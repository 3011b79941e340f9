//! The machine's fused multiply-add peak, measured: independent chains of vector FMAs on every
//! worker thread at once, with the widest instructions the CPU has (AVX-512, AVX2+FMA, or
//! scalar `mul_add`). It is the compute roof a model's achieved GFLOP/s is set against.

use std::hint::black_box;
use std::time::Instant;

/// Independent accumulators: more than FMA latency times FMA ports on current x86 cores
/// (4 cycles x 2 ports), so the chains never wait on each other.
const CHAINS: usize = 12;

/// Seconds each thread runs the kernel per trial; the best of `TRIALS` counts. Many short
/// trials: on a busy machine some of them run undisturbed (3 trials of 20 ms measured 195 to
/// 478 GFLOP/s on this project's 2-core Zen 5 machine under load; the best is the roof).
const TRIAL_SECONDS: f64 = 0.005;
const TRIALS: usize = 12;

/// The measured peak.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peak {
    pub(crate) gflops: f64,
    /// The instructions that reached it: `avx512`, `avx2` or `scalar`.
    pub(crate) isa: &'static str,
    pub(crate) threads: usize,
}

/// One kernel: runs `iters` rounds of `CHAINS` vector FMAs, returns a value that depends on
/// all of them (so nothing is optimised away).
type Kernel = fn(u64) -> f32;

/// `CHAINS` accumulators of 16 lanes in zmm registers (written with intrinsics: from plain
/// arrays the compiler kept them in memory).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn avx512(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc: [__m512; CHAINS] = std::array::from_fn(|c| _mm512_set1_ps(c as f32 * 1e-3));
    let (m, b) = (
        _mm512_set1_ps(black_box(0.999_999f32)),
        _mm512_set1_ps(black_box(1e-7f32)),
    );
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm512_fmadd_ps(*a, m, b);
        }
    }
    acc.iter().map(|&a| _mm512_reduce_add_ps(a)).sum()
}

/// `CHAINS` accumulators of 8 lanes in ymm registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn avx2(iters: u64) -> f32 {
    use std::arch::x86_64::*;
    let mut acc: [__m256; CHAINS] = std::array::from_fn(|c| _mm256_set1_ps(c as f32 * 1e-3));
    let (m, b) = (
        _mm256_set1_ps(black_box(0.999_999f32)),
        _mm256_set1_ps(black_box(1e-7f32)),
    );
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = _mm256_fmadd_ps(*a, m, b);
        }
    }
    let mut lanes = [0.0f32; 8];
    acc.iter()
        .map(|&a| {
            // SAFETY: `lanes` holds 8 floats, what an unaligned 256-bit store writes.
            unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), a) };
            lanes.iter().sum::<f32>()
        })
        .sum()
}

/// `CHAINS` scalar accumulators, for CPUs without the vector instructions above.
fn scalar(iters: u64) -> f32 {
    let mut acc: [f32; CHAINS] = std::array::from_fn(|c| c as f32 * 1e-3);
    let (m, b) = (black_box(0.999_999f32), black_box(1e-7f32));
    for _ in 0..iters {
        for a in acc.iter_mut() {
            *a = a.mul_add(m, b);
        }
    }
    acc.iter().sum()
}

/// The kernels this CPU can run, widest first, with their name and FLOPs per round.
fn kernels() -> Vec<(&'static str, Kernel, u64)> {
    let mut list: Vec<(&'static str, Kernel, u64)> = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: only called when the CPU has AVX-512F.
            list.push(("avx512", |n| unsafe { avx512(n) }, 2 * 16 * CHAINS as u64));
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: only called when the CPU has AVX2 and FMA.
            list.push(("avx2", |n| unsafe { avx2(n) }, 2 * 8 * CHAINS as u64));
        }
    }
    list.push(("scalar", scalar, 2 * CHAINS as u64));
    list
}

/// GFLOP/s of `kernel` on every thread of `pool` at once: the best of `TRIALS`, each the sum
/// of the threads' own rates.
fn measure_kernel(pool: &rayon::ThreadPool, kernel: Kernel, flops_per_round: u64) -> f64 {
    // Calibrate on one thread: rounds that take about TRIAL_SECONDS.
    let mut iters = 1u64 << 12;
    loop {
        let t = Instant::now();
        black_box(kernel(black_box(iters)));
        let s = t.elapsed().as_secs_f64();
        if s > TRIAL_SECONDS / 8.0 || iters > 1 << 40 {
            iters = ((iters as f64 * TRIAL_SECONDS / s.max(1e-9)) as u64).max(1);
            break;
        }
        iters *= 4;
    }
    (0..TRIALS)
        .map(|_| {
            pool.broadcast(|_| {
                let t = Instant::now();
                black_box(kernel(black_box(iters)));
                (iters * flops_per_round) as f64 / t.elapsed().as_secs_f64()
            })
            .iter()
            .sum::<f64>()
                / 1e9
        })
        .fold(0.0, f64::max)
}

/// The FMA peak of the threads of `pool`, over the instruction sets the CPU has (on some
/// CPUs AVX-512 runs at half width, so the widest is not always the fastest).
pub(crate) fn measure(pool: &rayon::ThreadPool) -> Peak {
    kernels()
        .into_iter()
        .take(2)
        .map(|(isa, kernel, flops)| Peak {
            gflops: measure_kernel(pool, kernel, flops),
            isa,
            threads: pool.current_num_threads(),
        })
        .max_by(|a, b| a.gflops.total_cmp(&b.gflops))
        .expect("the scalar kernel is always there")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_agree_and_the_peak_is_positive() {
        // Every kernel computes the same chains, so the same sum whatever its width.
        let per_lane: Vec<f32> = kernels()
            .iter()
            .map(|(_, k, flops)| k(100) / (*flops / (2 * CHAINS as u64)) as f32)
            .collect();
        for v in &per_lane {
            assert!(
                (v - per_lane[0]).abs() < 1e-4 * per_lane[0].abs(),
                "{per_lane:?}"
            );
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let peak = measure(&pool);
        assert!(peak.gflops > 0.1, "{peak:?}");
        assert_eq!(peak.threads, 1);
    }
}
