//! `cnn-tui evaluate`: test loss, accuracy, per-class accuracy and the confusion matrix.

use serde_json::json;

use super::args::EvaluateArgs;
use super::exit;
use crate::data::{DataSource, Dataset};
use crate::error::{Error, Result};
use crate::nn::Context;
use crate::nn::tensor::data as data_of;
use crate::train::{Confusion, EvalSplit};
use crate::weights;

pub(crate) fn run(args: EvaluateArgs) -> Result<u8> {
    let saved = weights::load(&args.weights)?;
    let names = saved.class_names();
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
    // The names stored with the weights; the data's when the weights have none.
    let names = if names.iter().enumerate().all(|(i, n)| *n == i.to_string()) {
        let mut from_data = data.class_names.clone();
        from_data.extend((from_data.len()..classes).map(|c| c.to_string()));
        from_data
    } else {
        names
    };
    let confusion = Confusion::count(
        EvalSplit::Test,
        (0, 0),
        &names,
        &data.test.labels,
        &predictions,
    );
    let per_class: Vec<f64> = (0..confusion.counts.len())
        .map(|c| {
            let (total, right) = confusion.class_total(c);
            right as f64 / total.max(1) as f64
        })
        .collect();
    let confusion = confusion.counts;
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
            "classes": names,
            "per_class_accuracy": per_class,
            "per_class": names.iter().zip(&per_class).zip(&confusion).map(|((n, a), row)| json!({
                "class": n, "accuracy": a, "samples": row.iter().sum::<u32>(),
            })).collect::<Vec<_>>(),
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
    for (name, a) in names.iter().zip(&per_class) {
        println!("  {name}: {a:.4}");
    }
    println!();
    println!("confusion matrix (rows: true class, columns: predicted):");
    let numbered = names.iter().enumerate().all(|(i, n)| *n == i.to_string());
    if !numbered {
        let legend: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("{i} {n}"))
            .collect();
        println!("classes: {}", legend.join(", "));
    }
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
