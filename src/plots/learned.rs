//! Pictures of the trained model itself: its filters, the feature maps of a few test digits,
//! the confusion matrix and the most confidently wrong test digits. They need the run's
//! weights (final, or the latest checkpoint) and its test set.

use std::path::{Path, PathBuf};

use super::confusion::{MOST_WRONG_GRID, Mistake};
use super::filters::ProbeMaps;
use crate::data::{DataSource, Dataset, Split};
use crate::error::{Error, Result};
use crate::nn::Sequential;
use crate::nn::loss::argmax;
use crate::nn::tensor::data as values_of;
use crate::train::checkpoint::latest;
use crate::train::{FilterImage, RgbImage};
use crate::train::{conv_layer_indices, shown_layer};
use crate::weights;

/// Test digits whose feature maps are drawn.
pub(crate) const PROBES: usize = 4;

/// Test samples run through the model at a time: few, so that the activation buffers stay
/// small (at 256, mnist-convnet's held 45 MB more than at 32 while the plots were drawn).
const BATCH: usize = 32;

/// The weights to draw: the final ones, or the latest checkpoint of an unfinished run.
pub(crate) fn weights_of(run_dir: &Path) -> Result<PathBuf> {
    let last = run_dir.join("model.safetensors");
    if last.is_file() {
        return Ok(last);
    }
    latest(run_dir).ok_or_else(|| {
        Error::data(
            run_dir,
            "no model.safetensors and no checkpoint to draw from",
        )
    })
}

/// What the pictures of a trained model show.
pub(crate) struct Learned {
    pub(crate) model: Sequential,
    pub(crate) test: Split,
    pub(crate) image_shape: [usize; 3],
    /// `confusion[truth][predicted]` over the test set.
    pub(crate) confusion: Vec<Vec<usize>>,
    /// Wrong test predictions, most confident first.
    pub(crate) mistakes: Vec<Mistake>,
    pub(crate) wrong: usize,
    /// One name per model output: the weights' names, else the data's.
    pub(crate) class_names: Vec<String>,
}

/// Loads the run's weights and test set (the run's data directory unless `data` is given)
/// and runs the test set through the model.
pub(crate) fn examine(run_dir: &Path, data: Option<&DataSource>) -> Result<Learned> {
    let weights = weights_of(run_dir)?;
    let saved = weights::load(&weights)?;
    let source = data
        .cloned()
        .unwrap_or_else(|| DataSource::resolve(None, &saved.config));
    if let (None, DataSource::Dir(dir)) = (data, &source)
        && !dir.is_dir()
    {
        return Err(Error::data(
            dir,
            "the run's data directory is not here (a run copied from another machine?): give --data",
        ));
    }
    let dataset = Dataset::load(&source, &saved.config.data, 0.0)?;
    let stored_names = saved.class_names();
    let mut model = saved.model;
    if dataset.image_shape != model.input_shape() || dataset.classes > model.output_size() {
        return Err(Error::weights(
            &weights,
            format!(
                "model takes {:?} images and {} classes; {source} has {:?} and {}",
                model.input_shape(),
                model.output_size(),
                dataset.image_shape,
                dataset.classes
            ),
        ));
    }
    let classes = model.output_size();
    let mut confusion = vec![vec![0usize; classes]; classes];
    let mut mistakes = Vec::new();
    let test = dataset.test;
    let indices: Vec<u32> = (0..test.len() as u32).collect();
    for chunk in indices.chunks(BATCH) {
        model.load_batch(&test, chunk);
        let probabilities = model.probabilities();
        for (&i, p) in chunk
            .iter()
            .zip(values_of(&probabilities).chunks_exact(classes))
        {
            let (truth, predicted) = (test.labels[i as usize] as usize, argmax(p));
            confusion[truth][predicted] += 1;
            if truth != predicted {
                mistakes.push((i as usize, truth, predicted, p[predicted]));
            }
        }
    }
    let wrong = mistakes.len();
    mistakes.sort_by(|a, b| b.3.total_cmp(&a.3).then(a.0.cmp(&b.0)));
    let shown = MOST_WRONG_GRID.0 * MOST_WRONG_GRID.1;
    let mistakes = mistakes
        .into_iter()
        .take(shown)
        .map(|(index, truth, predicted, confidence)| Mistake {
            index,
            truth,
            predicted,
            confidence,
            digit: digit(&test, dataset.image_shape, index),
            colour: colour(&test, dataset.image_shape, index),
        })
        .collect();
    let numbered = stored_names
        .iter()
        .enumerate()
        .all(|(i, n)| *n == i.to_string());
    let class_names = if numbered {
        let mut names = dataset.class_names.clone();
        names.extend((names.len()..classes).map(|c| c.to_string()));
        names
    } else {
        stored_names
    };
    Ok(Learned {
        model,
        test,
        image_shape: dataset.image_shape,
        confusion,
        mistakes,
        wrong,
        class_names,
    })
}

/// Test sample `index` as an image in [0, 1] (channels averaged).
fn digit(split: &Split, shape: [usize; 3], index: usize) -> FilterImage {
    let len = shape.iter().product::<usize>();
    let pixels: Vec<f32> = split.images[index * len..(index + 1) * len]
        .iter()
        .map(|&b| b as f32 / 255.0)
        .collect();
    FilterImage::channel_mean(&pixels, shape)
}

/// Test sample `index` in colour, when the data has three channels.
fn colour(split: &Split, shape: [usize; 3], index: usize) -> Option<RgbImage> {
    let [h, w, c] = shape;
    let len = h * w * c;
    (c == 3).then(|| RgbImage {
        height: h,
        width: w,
        values: split.images[index * len..(index + 1) * len]
            .iter()
            .map(|&b| b as f32 / 255.0)
            .collect(),
    })
}

impl Learned {
    /// Each conv layer's name and weights `[kh, kw, in, out]`.
    pub(crate) fn conv_weights(&self) -> Vec<(String, [usize; 4], Vec<f32>)> {
        let layers = self.model.layers();
        conv_layer_indices(&self.model)
            .into_iter()
            .filter_map(|li| {
                let l = &layers[li];
                let w = &l.params()[0].value;
                let &[kh, kw, cin, f] = w.shape() else {
                    return None;
                };
                Some((
                    l.name().to_string(),
                    [kh, kw, cin, f],
                    values_of(w).to_vec(),
                ))
            })
            .collect()
    }

    /// For each conv layer: its name and the feature maps of the probe digits (the first test
    /// digits of different classes), after the activation that follows the layer if any.
    pub(crate) fn feature_maps(&mut self) -> Vec<(String, Vec<ProbeMaps>)> {
        let mut probes: Vec<usize> = Vec::new();
        for (i, &label) in self.test.labels.iter().enumerate() {
            if probes.len() == PROBES {
                break;
            }
            if probes.iter().all(|&p| self.test.labels[p] != label) {
                probes.push(i);
            }
        }
        let indices: Vec<u32> = probes.iter().map(|&i| i as u32).collect();
        self.model.load_batch(&self.test, &indices);
        let probabilities = self.model.probabilities();
        let classes = self.model.output_size();
        let predicted: Vec<usize> = values_of(&probabilities)
            .chunks_exact(classes)
            .map(argmax)
            .collect();
        let mut out = Vec::new();
        for li in conv_layer_indices(&self.model) {
            let maps = self.model.layer_output(shown_layer(&self.model, li));
            let &[_, mh, mw, mc] = maps.shape() else {
                continue;
            };
            let values = values_of(maps);
            let per = mh * mw * mc;
            let probe_maps = probes
                .iter()
                .enumerate()
                .map(|(k, &index)| ProbeMaps {
                    caption: format!(
                        "#{index} {}\nsaid {}",
                        self.class_names[self.test.labels[index] as usize],
                        self.class_names[predicted[k]]
                    ),
                    digit: digit(&self.test, self.image_shape, index),
                    colour: colour(&self.test, self.image_shape, index),
                    maps: FilterImage::channels(&values[k * per..], [mh, mw, mc]),
                })
                .collect();
            out.push((self.model.layers()[li].name().to_string(), probe_maps));
        }
        out
    }
}
