//! Snapshots of what a conv layer has learned: its filters and a probe image's feature maps.

use serde::{Deserialize, Serialize};

use crate::nn::loss::top_k;
use crate::nn::tensor::data;
use crate::nn::{LayerKind, Sequential};

/// A 2-D grid of values, row-major.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct FilterImage {
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) values: Vec<f32>,
}

/// A colour image: `height * width * 3` values in [0, 1], row-major, channels last (RGB).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RgbImage {
    pub(crate) height: usize,
    pub(crate) width: usize,
    pub(crate) values: Vec<f32>,
}

impl RgbImage {
    /// A filter's `[kh, kw, 3]` weights as a picture, scaled to [0, 1] by the filter's own
    /// minimum and maximum over all three channels (as the ConvNetJS CIFAR-10 demo draws them).
    pub(crate) fn filter(weights: &[f32], kh: usize, kw: usize) -> RgbImage {
        let lo = weights.iter().copied().fold(f32::INFINITY, f32::min);
        let hi = weights.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let span = hi - lo;
        RgbImage {
            height: kh,
            width: kw,
            values: weights
                .iter()
                .map(|v| if span > 0.0 { (v - lo) / span } else { 0.5 })
                .collect(),
        }
    }

    /// The `[r, g, b]` of pixel `(row, col)`.
    pub(crate) fn pixel(&self, row: usize, col: usize) -> [f32; 3] {
        let i = (row * self.width + col) * 3;
        [self.values[i], self.values[i + 1], self.values[i + 2]]
    }
}

/// The selected conv layer's filters and the probe's feature maps in that layer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub step: u64,
    /// Index among the model's conv layers, and the layer's name.
    pub conv_layer: usize,
    pub(crate) conv_layers: usize,
    pub layer_name: String,
    /// What a filter image shows when the layer has several input channels.
    pub(crate) channel_note: Option<String>,
    pub(crate) filters: Vec<FilterImage>,
    pub probe_index: usize,
    pub(crate) probe_label: u8,
    pub(crate) probe_image: FilterImage,
    /// After the layer's activation, when it has one.
    pub(crate) feature_maps: Vec<FilterImage>,
    /// The three most probable classes with their probabilities.
    pub(crate) top3: Vec<(usize, f32)>,
    /// The class names (empty in a snapshot from before names: the numbers stand in).
    #[serde(default)]
    pub(crate) class_names: Vec<String>,
    /// The filters in colour, when the layer reads an RGB input (the first conv layer of a
    /// colour model).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) colour_filters: Vec<RgbImage>,
    /// The probe in colour, for a colour model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) colour_probe: Option<RgbImage>,
}

impl Snapshot {
    /// The name of class `c`, or its number when the snapshot has no names.
    pub(crate) fn class_name(&self, c: usize) -> String {
        self.class_names
            .get(c)
            .cloned()
            .unwrap_or_else(|| c.to_string())
    }
}

impl FilterImage {
    /// An `[h, w, c]` image (channels last) as one grid: the mean over its channels.
    pub(crate) fn channel_mean(values: &[f32], [h, w, c]: [usize; 3]) -> FilterImage {
        FilterImage {
            height: h,
            width: w,
            values: values[..h * w * c]
                .chunks_exact(c)
                .map(|px| px.iter().sum::<f32>() / c as f32)
                .collect(),
        }
    }

    /// One grid per channel of an `[h, w, c]` output (channels last).
    pub(crate) fn channels(values: &[f32], [h, w, c]: [usize; 3]) -> Vec<FilterImage> {
        (0..c)
            .map(|ch| FilterImage {
                height: h,
                width: w,
                values: (0..h * w).map(|p| values[p * c + ch]).collect(),
            })
            .collect()
    }
}

/// The layer whose output shows conv layer `li`'s feature maps: the activation right after
/// it, if any, else the conv layer itself.
pub(crate) fn shown_layer(model: &Sequential, li: usize) -> usize {
    match model.layers().get(li + 1) {
        Some(next) if next.kind().is_elementwise_activation() => li + 1,
        _ => li,
    }
}

/// Indices (into the model's layers) of the conv layers.
pub(crate) fn conv_layer_indices(model: &Sequential) -> Vec<usize> {
    model
        .layers()
        .iter()
        .enumerate()
        .filter(|(_, l)| l.kind() == LayerKind::Conv2d)
        .map(|(i, _)| i)
        .collect()
}

/// Takes a snapshot, running the probe image (`[h, w, c]` in [0, 1]) through the model.
pub(crate) fn take(
    model: &mut Sequential,
    conv_layer: usize,
    probe: &[f32],
    probe_index: usize,
    probe_label: u8,
    class_names: &[String],
    step: u64,
) -> Option<Snapshot> {
    let convs = conv_layer_indices(model);
    let conv_layer = conv_layer.min(convs.len().checked_sub(1)?);
    let li = convs[conv_layer];
    let layer = &model.layers()[li];
    let weight = &layer.params()[0].value;
    let &[kh, kw, cin, f] = weight.shape() else {
        return None;
    };
    let w = data(weight);
    let filters = (0..f)
        .map(|fi| FilterImage {
            height: kh,
            width: kw,
            values: (0..kh * kw)
                .map(|p| (0..cin).map(|c| w[(p * cin + c) * f + fi]).sum::<f32>() / cin as f32)
                .collect(),
        })
        .collect();
    let colour_filters = if cin == 3 {
        (0..f)
            .map(|fi| {
                let weights: Vec<f32> = (0..kh * kw * 3).map(|i| w[i * f + fi]).collect();
                RgbImage::filter(&weights, kh, kw)
            })
            .collect()
    } else {
        Vec::new()
    };
    let channel_note = (cin > 1).then(|| format!("mean over {cin} input channels"));
    let layer_name = layer.name().to_string();
    let shown = shown_layer(model, li);
    model.set_input(probe);
    let probs = model.probabilities();
    let top3 = top_k(data(&probs), 3);
    let maps = model.layer_output(shown);
    let &[_, mh, mw, mc] = maps.shape() else {
        return None;
    };
    let feature_maps = FilterImage::channels(data(maps), [mh, mw, mc]);
    let probe_image = FilterImage::channel_mean(probe, model.input_shape());
    let [ph, pw, pc] = model.input_shape();
    let colour_probe = (pc == 3).then(|| RgbImage {
        height: ph,
        width: pw,
        values: probe[..ph * pw * 3].to_vec(),
    });
    Some(Snapshot {
        step,
        conv_layer,
        conv_layers: convs.len(),
        layer_name,
        channel_note,
        filters,
        probe_index,
        probe_label,
        probe_image,
        feature_maps,
        top3,
        class_names: class_names.to_vec(),
        colour_filters,
        colour_probe,
    })
}
