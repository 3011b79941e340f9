//! `cnn-tui bench`: training steps and inference timed on the config's model with real data.

use std::time::Instant;

use serde_json::json;

use super::args::BenchArgs;
use super::{LoadedConfig, exit, load_config, threads};
use crate::data::{DataSource, Dataset, epoch_order};
use crate::error::{Error, Result};
use crate::nn::{Context, Sequential};
use crate::optim;

/// Steps run before timing starts.
const WARMUP: usize = 5;

pub fn run(args: BenchArgs) -> Result<u8> {
    let start = Instant::now();
    let LoadedConfig {
        config,
        name,
        origin,
    } = load_config(args.config.config.as_deref(), &args.config.set)?;
    let threads = threads(args.threads)?;
    if args.batches == 0 {
        return Err(Error::config("--batches", "must be at least 1"));
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
    let order = epoch_order(data.train.len(), t.seed, 1);
    let mut batches = order.chunks_exact(t.batch_size).cycle();
    let mut first_batch_seconds = 0.0;
    let mut step_ms = Vec::with_capacity(args.batches);
    let (train_seconds, infer_seconds) = pool.install(|| {
        for step in 0..WARMUP + args.batches {
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
            if step >= WARMUP {
                step_ms.push(t0.elapsed().as_secs_f64() * 1e3);
            }
        }
        let train_seconds = step_ms.iter().sum::<f64>() / 1e3;
        let t0 = Instant::now();
        model.evaluate(&data.test);
        (train_seconds, t0.elapsed().as_secs_f64())
    });
    step_ms.sort_by(f64::total_cmp);
    let train_sps = (args.batches * t.batch_size) as f64 / train_seconds;
    let infer_sps = data.test.len() as f64 / infer_seconds;
    let train_flops = 3 * model.forward_flops();
    let gflops = train_sps * train_flops as f64 / 1e9;
    let peak_rss_mb = peak_rss_mb();
    let median = step_ms[step_ms.len() / 2];
    let (min, max) = (step_ms[0], step_ms[step_ms.len() - 1]);
    if args.json {
        let v = json!({
            "config": name,
            "batch_size": t.batch_size,
            "batches": args.batches,
            "train_samples_per_second": train_sps,
            "step_ms_median": median,
            "step_ms_min": min,
            "step_ms_max": max,
            "infer_samples_per_second": infer_sps,
            "gflops": gflops,
            "train_mflop_per_sample": train_flops as f64 / 1e6,
            "peak_rss_mb": peak_rss_mb,
            "threads": threads,
            "seconds_to_first_batch": first_batch_seconds,
        });
        println!("{v}");
        return Ok(exit::OK);
    }
    println!(
        "{name}: batch {}, {} timed steps after {WARMUP} warm-up, {threads} threads, data: {source}",
        t.batch_size, args.batches
    );
    println!(
        "train: {train_sps:.0} samples/s, step {median:.2} ms median ({min:.2} min, {max:.2} max)"
    );
    println!(
        "inference: {infer_sps:.0} samples/s over {} test images",
        data.test.len()
    );
    println!(
        "arithmetic: {:.2} MFLOP per training sample, {gflops:.1} GFLOP/s",
        train_flops as f64 / 1e6
    );
    println!(
        "peak RSS: {peak_rss_mb:.1} MB; first batch done {first_batch_seconds:.3} s after start"
    );
    Ok(exit::OK)
}

/// The process's peak resident set size (VmHWM), in MB; 0 where /proc is not available.
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
