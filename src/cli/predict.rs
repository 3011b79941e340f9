//! `cnn-tui predict`: a trained model on pictures: digits made MNIST-like for a 28x28
//! grayscale model, any picture resized to the input of other models (colour ones too), or an
//! image of an IDX file.

use std::path::Path;

use serde_json::json;

use super::args::PredictArgs;
use super::exit;
use crate::data::digit::{SIDE, digit_from_picture};
use crate::data::idx::read_idx_file;
use crate::data::picture_for_model;
use crate::error::{Error, Result};
use crate::nn::Sequential;
use crate::nn::loss::top_k;
use crate::nn::tensor::data;
use crate::train::FilterImage;
use crate::tui::app::{Palette, Style};
use crate::tui::widgets::grid::{Scale, grid_lines};
use crate::weights;

/// The input of MNIST-style digit models, whose pictures get MNIST's preprocessing.
const DIGIT_SHAPE: [usize; 3] = [SIDE, SIDE, 1];
/// Widest ASCII art printed, in characters.
const ART_COLUMNS: usize = 64;

pub(crate) fn run(args: PredictArgs) -> Result<u8> {
    if args.inputs.is_empty() && args.idx.is_none() {
        return Err(Error::config(
            "predict",
            "give image files, or --idx FILE --index I",
        ));
    }
    let saved = weights::load(&args.weights)?;
    let names = saved.class_names();
    let mut model = saved.model;
    let shape = model.input_shape();
    weights::check_finite(&args.weights, &model)?;
    let mut inputs: Vec<(String, Vec<f32>)> = Vec::new();
    if let Some(idx) = &args.idx {
        if shape != DIGIT_SHAPE {
            return Err(Error::weights(
                &args.weights,
                format!(
                    "--idx needs a model of 28x28 grayscale digits; this one takes {shape:?}; give a picture instead"
                ),
            ));
        }
        let index = args.index.expect("clap requires --index with --idx");
        inputs.push((format!("{}#{index}", idx.display()), idx_image(idx, index)?));
    }
    for path in &args.inputs {
        inputs.push((path.display().to_string(), picture(path, shape)?));
    }
    let mut results = Vec::new();
    for (name, image) in &inputs {
        let top3 = classify(&mut model, image);
        if args.json {
            results.push(json!({
                "input": name,
                "prediction": top3[0].0,
                "label": names[top3[0].0],
                "top3": top3.iter().map(|(c, p)| json!({"class": c, "label": names[*c], "probability": p})).collect::<Vec<_>>(),
            }));
        } else {
            println!("{name}");
            print!("{}", ascii_art(image, shape));
            let rest: Vec<String> = top3[1..]
                .iter()
                .map(|(c, p)| format!("{} {:.1}%", names[*c], p * 100.0))
                .collect();
            println!(
                "prediction: {} ({:.1}%), then {}\n",
                names[top3[0].0],
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

/// A PNG or JPEG picture as the model's input: made MNIST-like for a digit model, otherwise
/// converted to its channels and resized to its height and width.
fn picture(path: &Path, shape: [usize; 3]) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "cannot read", e))?;
    if shape == DIGIT_SHAPE {
        digit_from_picture(&bytes).map_err(|e| Error::data(path, e))
    } else {
        picture_for_model(&bytes, shape).map_err(|e| Error::data(path, e))
    }
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

/// The image as the model sees it (the mean of its channels), two characters per pixel, at
/// most [`ART_COLUMNS`] wide.
pub(crate) fn ascii_art(image: &[f32], shape: [usize; 3]) -> String {
    let img = FilterImage::channel_mean(image, shape);
    let cols = (2 * shape[1]).min(ART_COLUMNS);
    let rows = (cols * shape[0]).div_ceil(2 * shape[1]).max(1);
    let style = Style {
        ascii: true,
        color: false,
        palette: Palette::Indexed,
    };
    let lines = grid_lines(&img, Scale::Gray, style, cols as u16, rows as u16);
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
