//! `cnn-tui predict`: a trained model on pictures of digits (or an image of an IDX file).

use std::path::Path;

use serde_json::json;

use super::args::PredictArgs;
use super::exit;
use crate::data::digit::{SIDE, digit_from_picture};
use crate::data::idx::read_idx_file;
use crate::error::{Error, Result};
use crate::nn::Sequential;
use crate::nn::loss::top_k;
use crate::nn::tensor::data;
use crate::train::FilterImage;
use crate::tui::app::Style;
use crate::tui::widgets::grid::{Scale, grid_lines};
use crate::weights;

pub fn run(args: PredictArgs) -> Result<u8> {
    if args.inputs.is_empty() && args.idx.is_none() {
        return Err(Error::config(
            "predict",
            "give image files, or --idx FILE --index I",
        ));
    }
    let mut model = weights::load(&args.weights)?.model;
    weights::check_finite(&args.weights, &model)?;
    if model.input_shape() != [SIDE, SIDE, 1] {
        return Err(Error::weights(
            &args.weights,
            format!(
                "predict needs a model of 28x28 grayscale digits; this one takes {:?}",
                model.input_shape()
            ),
        ));
    }
    let mut inputs: Vec<(String, Vec<f32>)> = Vec::new();
    if let Some(idx) = &args.idx {
        let index = args.index.expect("clap requires --index with --idx");
        inputs.push((format!("{}#{index}", idx.display()), idx_image(idx, index)?));
    }
    for path in &args.inputs {
        inputs.push((path.display().to_string(), picture(path)?));
    }
    let mut results = Vec::new();
    for (name, image) in &inputs {
        let top3 = classify(&mut model, image);
        if args.json {
            results.push(json!({
                "input": name,
                "prediction": top3[0].0,
                "top3": top3.iter().map(|(c, p)| json!({"class": c, "probability": p})).collect::<Vec<_>>(),
            }));
        } else {
            println!("{name}");
            print!("{}", ascii_art(image));
            let rest: Vec<String> = top3[1..]
                .iter()
                .map(|(c, p)| format!("{c} {:.1}%", p * 100.0))
                .collect();
            println!(
                "prediction: {} ({:.1}%), then {}\n",
                top3[0].0,
                top3[0].1 * 100.0,
                rest.join(", ")
            );
        }
    }
    if args.json {
        println!("{}", serde_json::Value::Array(results));
    }
    Ok(exit::OK)
}

/// A PNG or JPEG picture of one digit, made MNIST-like.
fn picture(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "cannot read", e))?;
    digit_from_picture(&bytes).map_err(|e| Error::data(path, e))
}

/// Image `index` of an IDX images file, as it is (already MNIST-style).
fn idx_image(path: &Path, index: usize) -> Result<Vec<f32>> {
    let arr = read_idx_file(path)?;
    if arr.dims.len() != 3 || arr.dims[1] != SIDE || arr.dims[2] != SIDE {
        return Err(Error::data(
            path,
            format!("expected 28x28 images, found dimensions {:?}", arr.dims),
        ));
    }
    if index >= arr.dims[0] {
        return Err(Error::data(
            path,
            format!("has {} images; index {index} is past the end", arr.dims[0]),
        ));
    }
    Ok(arr.data[index * SIDE * SIDE..(index + 1) * SIDE * SIDE]
        .iter()
        .map(|&v| v as f32 / 255.0)
        .collect())
}

/// The three most probable classes with their probabilities.
fn classify(model: &mut Sequential, image: &[f32]) -> Vec<(usize, f32)> {
    model.set_input(image);
    top_k(data(&model.probabilities()), 3)
}

/// The 28x28 image as the model sees it, two characters per pixel.
pub fn ascii_art(image: &[f32]) -> String {
    let img = FilterImage {
        height: SIDE,
        width: SIDE,
        values: image.to_vec(),
    };
    let style = Style {
        ascii: true,
        color: false,
    };
    let lines = grid_lines(&img, Scale::Gray, style, 2 * SIDE as u16, SIDE as u16);
    lines
        .iter()
        .map(|l| {
            l.spans
                .iter()
                .map(|s| s.content.as_ref())
                .collect::<String>()
                + "\n"
        })
        .collect()
}
