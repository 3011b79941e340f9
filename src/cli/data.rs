//! `cnn-tui data`: what Keras prints as "Found 50000 files belonging to 10 classes", and more:
//! counts per class and split, the image shape, per-channel mean and std, skipped files, the
//! load time and whether the decoded cache was used.

use rayon::prelude::*;
use serde_json::json;

use super::args::DataArgs;
use super::{LoadedConfig, exit, load_config};
use crate::data::{DataSource, Dataset, Split};
use crate::error::Result;

pub(crate) fn run(args: DataArgs) -> Result<u8> {
    let LoadedConfig { config, .. } = load_config(args.config.config.as_deref(), &args.config.set)?;
    let source = DataSource::resolve(args.config.data.as_ref(), &config);
    let d = Dataset::load(&source, &config.data, config.training.validation_split)?;
    let [h, w, c] = d.image_shape;
    let (mean, std) = channel_stats(&d.train, c);
    let splits = [
        ("train", &d.train),
        ("validation", &d.validation),
        ("test", &d.test),
    ];
    let per_class: Vec<[usize; 3]> = (0..d.classes)
        .map(|k| splits.map(|(_, s)| s.labels.iter().filter(|&&l| l as usize == k).count()))
        .collect();
    let round = |v: &[f64]| {
        v.iter()
            .map(|x| (x * 1e4).round() / 1e4)
            .collect::<Vec<f64>>()
    };
    if args.json {
        let value = json!({
            "source": source.to_string(),
            "format": d.report.format,
            "classes": d.class_names,
            "train": d.train.len(),
            "validation": d.validation.len(),
            "test": d.test.len(),
            "per_class": d.class_names.iter().zip(&per_class).map(|(n, k)| json!({
                "class": n, "train": k[0], "validation": k[1], "test": k[2],
            })).collect::<Vec<_>>(),
            "image_shape": [h, w, c],
            "channel_mean": round(&mean),
            "channel_std": round(&std),
            "skipped": d.report.skipped,
            "left_out": d.report.bad.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
            "load_seconds": (d.report.seconds * 1000.0).round() / 1000.0,
            "cached": d.report.cache.is_some(),
        });
        println!("{value}");
        return Ok(exit::OK);
    }
    println!(
        "Found {} files belonging to {} classes in {} ({})",
        d.train.len() + d.validation.len() + d.test.len(),
        d.classes,
        source,
        d.report.format
    );
    let width = d
        .class_names
        .iter()
        .map(|n| n.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:width$}  {:>8}  {:>10}  {:>8}",
        "class", "train", "validation", "test"
    );
    for (name, k) in d.class_names.iter().zip(&per_class) {
        println!("{name:width$}  {:>8}  {:>10}  {:>8}", k[0], k[1], k[2]);
    }
    println!(
        "{:width$}  {:>8}  {:>10}  {:>8}",
        "total",
        d.train.len(),
        d.validation.len(),
        d.test.len()
    );
    println!("image shape: {h}x{w}x{c} (height, width, channels)");
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.4}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "per-channel mean [{}], std [{}] (training set, pixels scaled to [0, 1])",
        fmt(&mean),
        fmt(&std)
    );
    println!(
        "skipped {} non-picture files; left out {} pictures that failed to decode",
        d.report.skipped,
        d.report.bad.len()
    );
    println!(
        "loaded in {:.2} s{}",
        d.report.seconds,
        d.report.cache.as_ref().map_or(String::new(), |p| format!(
            " from the decoded cache {}",
            p.display()
        ))
    );
    Ok(exit::OK)
}

/// Mean and standard deviation of each channel over a split, with pixels in [0, 1].
fn channel_stats(split: &Split, channels: usize) -> (Vec<f64>, Vec<f64>) {
    const CHUNK: usize = 1 << 16;
    let chunk = CHUNK - CHUNK % channels;
    let (sum, sq, n) = split
        .images
        .par_chunks(chunk)
        .map(|px| {
            let mut sum = vec![0u64; channels];
            let mut sq = vec![0u64; channels];
            for (i, &v) in px.iter().enumerate() {
                let v = u64::from(v);
                sum[i % channels] += v;
                sq[i % channels] += v * v;
            }
            (sum, sq, px.len() / channels)
        })
        .reduce(
            || (vec![0; channels], vec![0; channels], 0),
            |mut a, b| {
                for k in 0..channels {
                    a.0[k] += b.0[k];
                    a.1[k] += b.1[k];
                }
                (a.0, a.1, a.2 + b.2)
            },
        );
    let n = n.max(1) as f64;
    let mean: Vec<f64> = sum.iter().map(|&s| s as f64 / n / 255.0).collect();
    let std = sq
        .iter()
        .zip(&mean)
        .map(|(&q, m)| (q as f64 / n / (255.0 * 255.0) - m * m).max(0.0).sqrt())
        .collect();
    (mean, std)
}
