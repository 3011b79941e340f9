//! `cnn-tui evaluate`: test loss, accuracy, per-class accuracy and the confusion matrix.

use serde_json::json;

use super::args::EvaluateArgs;
use super::exit;
use crate::data::{DataSource, Dataset};
use crate::error::{Error, Result};
use crate::nn::Context;
use crate::nn::tensor::data as data_of;
use crate::weights;

pub fn run(args: EvaluateArgs) -> Result<u8> {
    let saved = weights::load(&args.weights)?;
    let (config, mut model) = (saved.config, saved.model);
    weights::check_finite(&args.weights, &model)?;
    let source = DataSource::resolve(args.data.as_ref(), &config);
    let data = Dataset::load(&source, &config.data, 0.0)?;
    if data.image_shape != model.input_shape() || data.classes > model.output_size() {
        return Err(Error::weights(
            &args.weights,
            format!(
                "model expects {:?} images and {} classes, the data has {:?} and {}",
                model.input_shape(),
                model.output_size(),
                data.image_shape,
                data.classes
            ),
        ));
    }
    let (stats, predictions) = model.evaluate(&data.test);
    let classes = model.output_size();
    let mut confusion = vec![vec![0usize; classes]; classes];
    for (&truth, &pred) in data.test.labels.iter().zip(&predictions) {
        confusion[truth as usize][pred as usize] += 1;
    }
    let per_class: Vec<f64> = confusion
        .iter()
        .enumerate()
        .map(|(c, row)| row[c] as f64 / row.iter().sum::<usize>().max(1) as f64)
        .collect();
    let accuracy = stats.correct as f64 / stats.samples.max(1) as f64;
    if args.json {
        let n = args.logits.min(data.test.len());
        let indices: Vec<u32> = (0..n as u32).collect();
        model.load_batch(&data.test, &indices);
        let logits = model.forward(&Context::inference());
        let logits: Vec<&[f32]> = data_of(logits).chunks(classes).collect();
        let v = json!({
            "logits": logits,
            "weights": args.weights,
            "data": source.to_string(),
            "samples": stats.samples,
            "test_loss": stats.loss,
            "test_accuracy": accuracy,
            "per_class_accuracy": per_class,
            "confusion_matrix": confusion,
        });
        println!("{v}");
        return Ok(exit::OK);
    }
    println!("weights: {}", args.weights.display());
    println!("data: {source} ({} test samples)", stats.samples);
    println!(
        "test loss: {:.4}  test accuracy: {:.4}",
        stats.loss, accuracy
    );
    println!();
    println!("per-class accuracy:");
    for (c, a) in per_class.iter().enumerate() {
        println!("  {c}: {a:.4}");
    }
    println!();
    println!("confusion matrix (rows: true class, columns: predicted):");
    print!("     ");
    for c in 0..classes {
        print!("{c:>6}");
    }
    println!();
    for (c, row) in confusion.iter().enumerate() {
        print!("{c:>4} ");
        for v in row {
            print!("{v:>6}");
        }
        println!();
    }
    Ok(exit::OK)
}
