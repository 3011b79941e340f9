//! `cnn-tui bench`: training steps and inference timed on the config's model with real data,
//! repeated, with the CPU that others took meanwhile and the machine's measured FMA peak.

mod contention;
mod peak;

use std::time::Instant;

use serde_json::{Value, json};

use super::args::BenchArgs;
use super::{LoadedConfig, exit, load_config, threads};
use crate::data::{DataSource, Dataset, epoch_order};
use crate::error::{Error, Result};
use crate::nn::{Context, Sequential};
use crate::optim;
use contention::{Contention, CpuTimes};

/// Steps run before timing starts.
const WARMUP: usize = 5;

/// Least number of repetitions: fewer say little about the spread.
const MIN_REPEATS: usize = 5;

/// Minimum, median and maximum of some measurements.
#[derive(Debug, Clone, Copy)]
struct Spread {
    min: f64,
    median: f64,
    max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Spread {
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Spread {
            min: v[0],
            median,
            max: v[n - 1],
        }
    }

    fn json(&self) -> Value {
        json!({ "min": self.min, "median": self.median, "max": self.max })
    }
}

/// What others took during a phase, as JSON (`null` where `/proc` is unavailable or the
/// phase was too short to tell).
fn contention_json(c: Option<Contention>) -> Value {
    c.map_or(
        Value::Null,
        |c| json!({ "steal": c.steal, "other_processes": c.others }),
    )
}

/// `before..after` contention, when both samples exist.
fn between(before: Option<CpuTimes>, after: Option<CpuTimes>) -> Option<Contention> {
    before?.until(&after?)
}

pub(crate) fn run(args: BenchArgs) -> Result<u8> {
    let start = Instant::now();
    let LoadedConfig {
        config,
        name,
        origin,
    } = load_config(args.config.config.as_deref(), &args.config.set)?;
    let threads = threads(args.threads)?;
    if args.repeats < MIN_REPEATS {
        return Err(Error::usage(
            "--repeats",
            format!(
                "must be at least {MIN_REPEATS} (the minimum, median and maximum of fewer say little)"
            ),
        ));
    }
    if args.batches < args.repeats {
        return Err(Error::usage(
            "--batches",
            format!(
                "must be at least --repeats ({}): one timed step per repetition",
                args.repeats
            ),
        ));
    }
    let source = DataSource::resolve(args.config.data.as_ref(), &config);
    let data = Dataset::load(&source, &config.data, 0.0)?;
    let t = &config.training;
    let mut model = Sequential::build(&config.model, data.image_shape, data.classes, t.seed)
        .map_err(|e| e.in_config(&origin))?;
    let mut optimizer = optim::build(&config.optimizer);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::config("--threads", e.to_string()))?;
    let peak = peak::measure(&pool);
    let order = epoch_order(data.train.len(), t.seed, 1);
    let mut batches = order.chunks_exact(t.batch_size).cycle();
    let mut first_batch_seconds = 0.0;
    let mut step_ms = Vec::with_capacity(args.batches);
    // The timed steps, split as evenly as possible into the repetitions.
    let per_repeat: Vec<usize> = (0..args.repeats)
        .map(|r| (r + 1) * args.batches / args.repeats - r * args.batches / args.repeats)
        .collect();
    let mut train_sps = Vec::with_capacity(args.repeats);
    let mut infer_sps = Vec::with_capacity(args.repeats);
    let (train_cpu, infer_cpu, whole_cpu) = pool.install(|| {
        let mut step = 0;
        let mut train_step = || {
            let t0 = Instant::now();
            model.load_batch(&data.train, batches.next().expect("cycle"));
            let ctx = Context {
                train: true,
                seed: t.seed,
                step: step as u64,
            };
            model.forward_backward(&ctx);
            optimizer.step(&mut model.params_mut(), config.optimizer.lr());
            if step == 0 {
                first_batch_seconds = start.elapsed().as_secs_f64();
            }
            step += 1;
            t0.elapsed().as_secs_f64()
        };
        for _ in 0..WARMUP {
            train_step();
        }
        let before = CpuTimes::now();
        for &steps in &per_repeat {
            let t0 = Instant::now();
            for _ in 0..steps {
                step_ms.push(train_step() * 1e3);
            }
            train_sps.push((steps * t.batch_size) as f64 / t0.elapsed().as_secs_f64());
        }
        let after_train = CpuTimes::now();
        // One untimed pass shapes the evaluation buffers.
        model.evaluate(&data.test);
        let before_infer = CpuTimes::now();
        for _ in 0..args.repeats {
            let t0 = Instant::now();
            model.evaluate(&data.test);
            infer_sps.push(data.test.len() as f64 / t0.elapsed().as_secs_f64());
        }
        let end = CpuTimes::now();
        (
            between(before, after_train),
            between(before_infer, end),
            between(before, end),
        )
    });
    let step = Spread::of(&step_ms);
    let train = Spread::of(&train_sps);
    let infer = Spread::of(&infer_sps);
    let forward_flops = model.forward_flops() as f64;
    let train_flops = 3.0 * forward_flops;
    let train_gflops = train.median * train_flops / 1e9;
    let infer_gflops = infer.median * forward_flops / 1e9;
    let peak_rss_mb = peak_rss_mb();
    let warnings: Vec<String> = [
        train_cpu.and_then(|c| c.warning("training")),
        infer_cpu.and_then(|c| c.warning("inference")),
        // The whole measurement, for phases too short to tell on their own.
        (train_cpu.is_none() || infer_cpu.is_none())
            .then(|| whole_cpu.and_then(|c| c.warning("the measurement")))
            .flatten(),
    ]
    .into_iter()
    .flatten()
    .collect();
    if args.json {
        let v = json!({
            "config": name,
            "batch_size": t.batch_size,
            "batches": args.batches,
            "repeats": args.repeats,
            "threads": threads,
            "train_samples_per_second": train.median,
            "train_samples_per_second_spread": train.json(),
            "step_ms_median": step.median,
            "step_ms_min": step.min,
            "step_ms_max": step.max,
            "infer_samples_per_second": infer.median,
            "infer_samples_per_second_spread": infer.json(),
            "test_samples": data.test.len(),
            "train_mflop_per_sample": train_flops / 1e6,
            "infer_mflop_per_sample": forward_flops / 1e6,
            "gflops": train_gflops,
            "infer_gflops": infer_gflops,
            "fma_peak_gflops": peak.gflops,
            "fma_peak_isa": peak.isa,
            "train_roofline_fraction": train_gflops / peak.gflops,
            "infer_roofline_fraction": infer_gflops / peak.gflops,
            "cpu": contention_json(whole_cpu),
            "train_cpu": contention_json(train_cpu),
            "infer_cpu": contention_json(infer_cpu),
            "warnings": warnings,
            "peak_rss_mb": peak_rss_mb,
            "seconds_to_first_batch": first_batch_seconds,
        });
        println!("{v}");
        return Ok(exit::OK);
    }
    println!(
        "{name}: batch {}, {} repetitions of {} timed steps after {WARMUP} warm-up, {}, data: {source}",
        t.batch_size,
        args.repeats,
        args.batches / args.repeats,
        crate::report::count(threads, "thread")
    );
    println!(
        "train: {:.0} samples/s median of the repetitions ({:.0} min, {:.0} max); step {:.2} ms median ({:.2} min, {:.2} max)",
        train.median, train.min, train.max, step.median, step.min, step.max
    );
    println!(
        "inference: {:.0} samples/s median of {} passes over {} test images ({:.0} min, {:.0} max)",
        infer.median,
        args.repeats,
        data.test.len(),
        infer.min,
        infer.max
    );
    println!(
        "arithmetic: {:.2} MFLOP per training sample, {train_gflops:.1} GFLOP/s training, {infer_gflops:.1} GFLOP/s inference",
        train_flops / 1e6
    );
    println!(
        "roofline: FMA peak {:.1} GFLOP/s measured on {} ({}); training at {:.1}% of it, inference at {:.1}%",
        peak.gflops,
        crate::report::count(peak.threads, "thread"),
        peak.isa,
        100.0 * train_gflops / peak.gflops,
        100.0 * infer_gflops / peak.gflops
    );
    let describe = |c: Option<Contention>| {
        c.map_or("too short to tell".to_string(), |c| {
            format!(
                "steal {:.1}%, other processes {:.1}%",
                100.0 * c.steal,
                100.0 * c.others
            )
        })
    };
    println!(
        "CPU taken by others (of all cores' time): {} over the whole measurement; training: {}; inference: {}",
        describe(whole_cpu),
        describe(train_cpu),
        describe(infer_cpu)
    );
    println!(
        "peak RSS: {peak_rss_mb:.1} MB; first batch done {first_batch_seconds:.3} s after start"
    );
    for w in &warnings {
        println!("{w}");
    }
    Ok(exit::OK)
}

/// The process's peak resident set size (VmHWM), in MB; 0 where /proc is not available.
pub(crate) fn peak_rss_mb() -> f64 {
    crate::procfs::read_small(std::path::Path::new("/proc/self/status"))
        .and_then(|s| crate::procfs::status_kb(&s, "VmHWM:"))
        .map_or(0.0, |kb| kb as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_min_median_max() {
        let s = Spread::of(&[5.0, 1.0, 3.0, 4.0, 2.0]);
        assert_eq!((s.min, s.median, s.max), (1.0, 3.0, 5.0));
        assert_eq!(Spread::of(&[4.0, 1.0, 2.0, 3.0]).median, 2.5);
    }
}
