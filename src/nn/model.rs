//! The sequential model: layers built from the config with shape inference, and the buffers
//! that carry a batch through them (allocated once, reused for every batch of that size).

use ndarray::IxDyn;
use rayon::prelude::*;

use super::activation::{ActivationLayer, softmax_rows};
use super::avgpool::AvgPool2d;
use super::batch_norm::BatchNorm;
use super::build::{Builder, ParamBudget, size_check};
use super::conv2d::Conv2d;
use super::dense::Dense;
use super::dense_narrow::BytesDense;
use super::dropout::Dropout;
use super::flatten::Flatten;
use super::layer::{Context, GradParts, Layer, LayerKind, Param};
use super::loss::{self, BatchStats, argmax};
use super::maxpool::MaxPool2d;
use super::shard::Shard;
use super::tensor::{Tensor, data, data_mut, empty, ensure_shape, shape_for_writing};
use crate::config::{Activation, LayerSpec, LossKind, ModelConfig};
use crate::data::{EpochAugment, Normalization, Split, fill_batch};
use crate::error::{Error, Result};

/// Bytes of the largest activation of an evaluation batch: the batch is as many samples as
/// fit (so that each layer's output is still in cache for the next), between `EVAL_MIN` and
/// `EVAL_MAX`. Conv models get 32 samples (measured fastest for mnist-convnet on two cores:
/// 16% more samples/s than 128); flat, dense-heavy models get hundreds, so that their matrix
/// products are large.
const EVAL_BYTES: usize = 1 << 20;
const EVAL_MIN: usize = 32;
const EVAL_MAX: usize = 1024;

pub struct Sequential {
    layers: Vec<Box<dyn Layer>>,
    input_shape: [usize; 3],
    loss: LossKind,
    label_smoothing: f32,
    /// Evaluation averages the logits of each image and its horizontal flip.
    test_time_flip: bool,
    /// Layers that produce the loss's input: all, or all but a final softmax that the
    /// cross-entropy loss applies itself.
    logit_layers: usize,
    /// `acts[0]` is the input batch, `acts[i + 1]` the output of layer `i`.
    acts: Vec<Tensor>,
    /// `grads[top]` is the loss gradient with respect to the logits `acts[top]`; below it,
    /// `grads[i + 1]` holds the output gradient of a layer `i` whose parameter gradients a
    /// data-parallel run computes from rows (`GradParts::Rows`), kept for `pack_grad_parts`.
    grads: Vec<Tensor>,
    /// The gradients between the layers, in turns: layer `i` writes its input gradient into
    /// `work[i % 2]` and reads its output gradient from the other, so that the backward pass
    /// takes two buffers the size of the largest activation instead of one per layer.
    work: [Tensor; 2],
    labels: Vec<u8>,
    /// Layers an inference pass skips because they are folded into the layer before
    /// (a batch normalisation and its ReLU into their convolution, during `evaluate`).
    folded: Vec<bool>,
    /// How input bytes become values (per-channel normalisation, saved with the weights).
    normalization: Normalization,
}

pub(crate) use super::build::{MAX_ELEMENTS, MAX_PARAMS};

/// The layer a config entry builds (none for a bare activation), and the activation layer
/// to put after it.
type Built = (Option<Box<dyn Layer>>, Option<Activation>);

/// Mirrors one image row of `w` pixels of `c` channels left to right, in place.
fn flip_row(row: &mut [f32], w: usize, c: usize) {
    for q in 0..w / 2 {
        let (left, right) = row.split_at_mut((w - 1 - q) * c);
        left[q * c..(q + 1) * c].swap_with_slice(&mut right[..c]);
    }
}

/// Builds one config entry: each layer type reads its own fields.
fn build_layer(b: &mut Builder, spec: &LayerSpec) -> Result<Built> {
    Ok(match *spec {
        LayerSpec::Conv2d(ref spec) => {
            let (conv, activation) = Conv2d::build(b, spec)?;
            (Some(Box::new(conv)), activation)
        }
        LayerSpec::Maxpool2d { pool_size, stride } => (
            Some(Box::new(MaxPool2d::build(b, pool_size, stride)?)),
            None,
        ),
        LayerSpec::AvgPool2d { pool_size, stride } => (
            Some(Box::new(AvgPool2d::build(b, pool_size, stride)?)),
            None,
        ),
        LayerSpec::GlobalAvgPool => (Some(Box::new(AvgPool2d::build_global(b)?)), None),
        LayerSpec::BatchNorm {
            momentum,
            epsilon,
            activation,
        } => {
            let (bn, activation) = BatchNorm::build(b, momentum, epsilon, activation)?;
            (Some(Box::new(bn)), activation)
        }
        LayerSpec::Flatten => (Some(Box::new(Flatten::build(b))), None),
        LayerSpec::Dense {
            units,
            activation,
            init,
        } => (Some(Box::new(Dense::build(b, units, init)?)), activation),
        LayerSpec::Dropout { rate } => (Some(Box::new(Dropout::build(b, rate))), None),
        LayerSpec::Relu => (None, Some(Activation::Relu)),
        LayerSpec::Sigmoid => (None, Some(Activation::Sigmoid)),
        LayerSpec::Tanh => (None, Some(Activation::Tanh)),
        LayerSpec::Softmax => (None, Some(Activation::Softmax)),
    })
}

impl Sequential {
    /// Back-propagates `grads[top]` down the layers, into each layer's parameter gradients,
    /// through the two `work` buffers; with `keep_rows`, the output gradients that
    /// `pack_grad_parts` needs are kept in `grads`. It stops at the lowest layer with
    /// parameters: no gradient is computed for its input (seed-logistic's dense layer has
    /// only a flatten below it).
    fn backward_layers(&mut self, top: usize, keep_rows: bool) {
        let Sequential {
            layers,
            acts,
            grads,
            work,
            ..
        } = self;
        let lowest = layers[..top]
            .iter()
            .position(|l| !l.params().is_empty())
            .unwrap_or(top);
        let (even, odd) = work.split_at_mut(1);
        let (even, odd) = (&mut even[0], &mut odd[0]);
        for i in (lowest..top).rev() {
            let (into, from) = if i % 2 == 0 {
                (&mut *even, &*odd)
            } else {
                (&mut *odd, &*even)
            };
            let dy = if i + 1 == top { &grads[top] } else { from };
            let dx = (i > lowest).then(|| {
                shape_for_writing(into, acts[i].shape());
                into
            });
            layers[i].backward(&acts[i], &acts[i + 1], dy, dx);
            if keep_rows && i + 1 < top && layers[i].grad_parts() == GradParts::Rows {
                let from = if i % 2 == 0 { &*odd } else { &*even };
                // A copy of the shape's values only: the buffer's vector may be longer.
                ensure_shape(&mut grads[i + 1], from.shape());
                data_mut(&mut grads[i + 1]).copy_from_slice(data(from));
            }
        }
    }

    /// Builds the model for images of `input_shape` (`[h, w, c]`) and `classes` outputs.
    /// An impossible stack is a config error naming the layer.
    pub fn build(
        spec: &ModelConfig,
        input_shape: [usize; 3],
        classes: usize,
        seed: u64,
    ) -> Result<Sequential> {
        let budget = ParamBudget {
            limit: MAX_PARAMS,
            file_values: false,
        };
        Self::build_within(spec, input_shape, classes, seed, budget)
    }

    /// Builds the model described in a weights file that holds `values` parameter values in
    /// all: a config that asks for more is refused before its layers allocate anything.
    pub(crate) fn build_for_file(
        spec: &ModelConfig,
        input_shape: [usize; 3],
        classes: usize,
        seed: u64,
        values: usize,
    ) -> Result<Sequential> {
        let budget = ParamBudget {
            limit: values,
            file_values: true,
        };
        Self::build_within(spec, input_shape, classes, seed, budget)
    }

    fn build_within(
        spec: &ModelConfig,
        input_shape: [usize; 3],
        classes: usize,
        seed: u64,
        budget: ParamBudget,
    ) -> Result<Sequential> {
        size_check(
            "input",
            "the input image",
            input_shape
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d)),
            MAX_ELEMENTS,
        )?;
        let mut layers: Vec<Box<dyn Layer>> = Vec::new();
        let mut b = Builder::new(&input_shape, seed, budget);
        for (i, layer_spec) in spec.layers.iter().enumerate() {
            b.index = i;
            let (layer, activation) = build_layer(&mut b, layer_spec)?;
            if let Some(layer) = layer {
                b.shape = layer.output_shape().to_vec();
                layers.push(layer);
            }
            size_check(
                &b.at(),
                "its output",
                b.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)),
                MAX_ELEMENTS,
            )?;
            if let Some(act) = activation {
                layers.push(Box::new(ActivationLayer::build(&mut b, act)));
            }
        }
        let shape = b.shape;
        if shape != [classes] {
            return Err(Error::config(
                format!("model.layers[{}]", spec.layers.len() - 1),
                format!(
                    "the model outputs {shape:?} per sample but the data has {classes} classes; end with a flatten and a dense layer of {classes} units"
                ),
            ));
        }
        let fold_softmax = spec.loss == LossKind::SoftmaxCrossEntropy
            && layers
                .last()
                .is_some_and(|l| l.kind() == LayerKind::Activation(Activation::Softmax));
        let logit_layers = layers.len() - usize::from(fold_softmax);
        let n = layers.len();
        Ok(Sequential {
            layers,
            input_shape,
            loss: spec.loss,
            label_smoothing: spec.label_smoothing as f32,
            test_time_flip: spec.test_time_flip,
            logit_layers,
            acts: (0..=n).map(|_| empty()).collect(),
            grads: (0..=n).map(|_| empty()).collect(),
            work: [empty(), empty()],
            labels: Vec::new(),
            folded: vec![false; n],
            normalization: Normalization::identity(input_shape[2]),
        })
    }

    pub(crate) fn layers(&self) -> &[Box<dyn Layer>] {
        &self.layers
    }

    pub(crate) fn input_shape(&self) -> [usize; 3] {
        self.input_shape
    }

    /// Values per sample at the output (the number of classes).
    pub(crate) fn output_size(&self) -> usize {
        self.layers
            .last()
            .map_or(0, |l| l.output_shape().iter().product())
    }

    /// Fills the input buffer with the samples `indices` of `split`, normalised.
    pub(crate) fn load_batch(&mut self, split: &Split, indices: &[u32]) {
        self.load_train_batch(split, indices, None)
    }

    /// `load_batch` with a training batch's augmentations, applied while filling.
    pub(crate) fn load_train_batch(
        &mut self,
        split: &Split,
        indices: &[u32],
        augment: Option<&EpochAugment>,
    ) {
        let [h, w, c] = self.input_shape;
        ensure_shape(&mut self.acts[0], &[indices.len(), h, w, c]);
        fill_batch(
            split,
            indices,
            data_mut(&mut self.acts[0]),
            &mut self.labels,
            self.input_shape,
            &self.normalization,
            augment,
        );
    }

    /// Sets the input batch directly (`[batch, h, w, c]` values in [0, 1]); the model's
    /// normalisation is applied.
    pub(crate) fn set_input(&mut self, images: &[f32]) {
        let [h, w, c] = self.input_shape;
        let batch = images.len() / (h * w * c);
        ensure_shape(&mut self.acts[0], &[batch, h, w, c]);
        data_mut(&mut self.acts[0]).copy_from_slice(images);
        self.normalization.apply(data_mut(&mut self.acts[0]));
    }

    /// The input normalisation (identity unless `data.normalize` asks for one).
    pub(crate) fn normalization(&self) -> &Normalization {
        &self.normalization
    }

    /// Sets the input normalisation; one mean and std per input channel.
    pub(crate) fn set_normalization(&mut self, n: Normalization) {
        assert_eq!(n.mean.len(), self.input_shape[2], "one value per channel");
        self.normalization = n;
    }

    /// Runs the loaded batch through the layers up to the logits.
    pub(crate) fn forward(&mut self, ctx: &Context) -> &Tensor {
        for i in 0..self.logit_layers {
            let (ins, outs) = self.acts.split_at_mut(i + 1);
            self.layers[i].forward(&ins[i], &mut outs[0], ctx);
        }
        &self.acts[self.logit_layers]
    }

    /// One forward and backward pass on the loaded batch. Afterwards every parameter's
    /// `grad` holds the gradient of the batch's mean loss: this is the one place where a
    /// batch's gradients are complete (where a data-parallel run would all-reduce them).
    pub(crate) fn forward_backward(&mut self, ctx: &Context) -> BatchStats {
        self.forward(ctx);
        let top = self.logit_layers;
        let stats = loss::compute(
            self.loss,
            self.label_smoothing,
            &self.acts[top],
            &self.labels,
            Some(&mut self.grads[top]),
        );
        self.backward_layers(top, false);
        stats
    }

    /// The inference pass over the loaded batch, up to the logits: layers in inference mode
    /// (no dropout, no argmax records, no buffers kept for a backward pass), and layers that
    /// are the identity at inference skipped rather than copied. Returns the index into
    /// `acts` of the logits; the outputs of skipped layers are left stale, so
    /// `layer_output` is for `forward`, not for this.
    fn infer(&mut self) -> usize {
        let ctx = Context::inference();
        let mut current = 0;
        for i in 0..self.logit_layers {
            if self.layers[i].identity_at_inference() || self.folded[i] {
                continue;
            }
            let (ins, outs) = self.acts.split_at_mut(i + 1);
            self.layers[i].forward(&ins[current], &mut outs[0], &ctx);
            current = i + 1;
        }
        current
    }

    /// Folds each batch normalisation that follows a convolution (and a ReLU after it) into
    /// the convolution's weights, for inference passes until `unfold_batch_norms`: one
    /// convolution instead of three passes over its output.
    fn fold_batch_norms(&mut self) {
        for i in 0..self.logit_layers.saturating_sub(1) {
            if self.layers[i].kind() != LayerKind::Conv2d {
                continue;
            }
            let Some((scale, shift)) = self.layers[i + 1].inference_affine() else {
                continue;
            };
            // A ReLU the batch normalisation applies itself, or one in the next layer.
            let separate_relu = i + 2 < self.logit_layers
                && self.layers[i + 2].kind() == LayerKind::Activation(Activation::Relu);
            let relu = self.layers[i + 1].fused_relu() || separate_relu;
            if self.layers[i].fold_affine(&scale, &shift, relu) {
                self.folded[i + 1] = true;
                self.folded[i + 2] = separate_relu && !self.layers[i + 1].fused_relu();
            }
        }
    }

    /// Takes each 2x2 max pool (stride 2) that is the next layer an inference pass runs after
    /// a convolution into that convolution, for inference passes until `unfold_batch_norms`:
    /// the convolution writes its output pooled, in cache, instead of the whole output for the
    /// pool to read back. The same values as the two layers apart.
    fn fuse_max_pools(&mut self) {
        for i in 0..self.logit_layers {
            if self.folded[i] || self.layers[i].kind() != LayerKind::Conv2d {
                continue;
            }
            let next = (i + 1..self.logit_layers)
                .find(|&j| !self.folded[j] && !self.layers[j].identity_at_inference());
            if let Some(j) = next
                && self.layers[j].is_max_pool_2x2()
                && self.layers[i].pool_into_output()
            {
                self.folded[j] = true;
            }
        }
    }

    /// Restores the weights `fold_batch_norms` changed, bit for bit, and ends
    /// `fuse_max_pools`.
    fn unfold_batch_norms(&mut self) {
        for (layer, folded) in self.layers.iter_mut().zip(&mut self.folded) {
            layer.unfold();
            *folded = false;
        }
    }

    /// Samples per evaluation batch: as many as keep the largest activation (input included)
    /// within `EVAL_BYTES`, between `EVAL_MIN` and `EVAL_MAX`. Fixed by the model alone, so
    /// evaluation does not depend on the training batch size or the thread count.
    pub fn eval_batch(&self) -> usize {
        let largest = self
            .layers
            .iter()
            .map(|l| l.output_shape().iter().product::<usize>())
            .chain([self.input_shape.iter().product()])
            .max()
            .unwrap_or(1);
        (EVAL_BYTES / (4 * largest.max(1))).clamp(EVAL_MIN, EVAL_MAX)
    }

    /// Loss, accuracy and per-sample predictions over a whole split, through the inference
    /// pass, `eval_batch()` samples at a time (whatever the training batch size: no layer's
    /// output depends on the batch).
    pub(crate) fn evaluate(&mut self, split: &Split) -> (BatchStats, Vec<u8>) {
        let mut predictions = Vec::with_capacity(split.len());
        let pieces = self.eval_pieces(split);
        let parts = self.evaluate_pieces(split, 0..pieces, Some(&mut predictions));
        (combine_eval(&parts), predictions)
    }

    /// How many `eval_batch()` pieces `evaluate` cuts `split` into.
    pub fn eval_pieces(&self, split: &Split) -> usize {
        split.len().div_ceil(self.eval_batch())
    }

    /// The stats of the evaluation pieces `range` of `split` (a rank's share of an evaluation),
    /// to be put together in piece order by [`combine_eval`].
    pub(crate) fn evaluate_pieces(
        &mut self,
        split: &Split,
        range: std::ops::Range<usize>,
        mut predictions: Option<&mut Vec<u8>>,
    ) -> Vec<BatchStats> {
        let per = self.eval_batch();
        let samples = |piece: usize| piece * per..((piece + 1) * per).min(split.len());
        if let Some(dense) = self.bytes_dense() {
            let (loss, smoothing) = (self.loss, self.label_smoothing);
            let pieces: Vec<(BatchStats, Vec<u8>)> = range
                .into_par_iter()
                .map(|piece| dense.evaluate(split, samples(piece), loss, smoothing))
                .collect();
            if let Some(p) = predictions {
                pieces.iter().for_each(|(_, q)| p.extend_from_slice(q));
            }
            return pieces.into_iter().map(|(s, _)| s).collect();
        }
        let mut parts = Vec::with_capacity(range.len());
        self.fold_batch_norms();
        self.fuse_max_pools();
        for piece in range {
            let chunk: Vec<u32> = samples(piece).map(|i| i as u32).collect();
            self.load_batch(split, &chunk);
            let mut logits = self.infer();
            if self.test_time_flip {
                logits = self.average_with_flipped(logits);
            }
            let out = &self.acts[logits];
            let stats = loss::compute(self.loss, self.label_smoothing, out, &self.labels, None);
            if let Some(p) = predictions.as_deref_mut() {
                let classes = out.len() / chunk.len();
                p.extend(data(out).chunks_exact(classes).map(|r| argmax(r) as u8));
            }
            parts.push(stats);
        }
        self.unfold_batch_norms();
        parts
    }

    /// For a model whose logits are one dense layer of at most `dense_narrow::MAX_UNITS` units
    /// over the input (layers before it only pass the input on, as flatten does), that layer
    /// prepared to read the input bytes: evaluation's fast path. `None` otherwise, and with
    /// test-time flips.
    fn bytes_dense(&self) -> Option<BytesDense> {
        if self.test_time_flip {
            return None;
        }
        let (last, below) = self.layers[..self.logit_layers].split_last()?;
        if last.kind() != LayerKind::Dense || !below.iter().all(|l| l.identity_at_inference()) {
            return None;
        }
        let params = last.params();
        let [weight, bias] = params.as_slice() else {
            return None;
        };
        BytesDense::new(data(&weight.value), data(&bias.value), &self.normalization)
    }

    /// Test-time flips: after an inference pass whose logits are `acts[logits]`, mirrors the
    /// loaded images left to right, runs them through again and leaves the mean of both
    /// passes' logits in the returned place of `acts`.
    fn average_with_flipped(&mut self, logits: usize) -> usize {
        // A model whose inference pass skips every layer gives its input: nothing to average.
        if logits == 0 {
            return 0;
        }
        let first = std::mem::replace(&mut self.acts[logits], empty());
        let [_, w, c] = self.input_shape;
        data_mut(&mut self.acts[0])
            .par_chunks_mut(w * c)
            .for_each(|row| flip_row(row, w, c));
        let again = self.infer();
        data_mut(&mut self.acts[again])
            .iter_mut()
            .zip(data(&first))
            .for_each(|(b, a)| *b = (a + *b) * 0.5);
        if again != logits {
            self.acts[logits] = first;
        }
        again
    }

    /// One rank's share of a training batch split into the fixed gradient chunks: runs the
    /// loaded samples (those of `shard`) forward and backward, with the loss gradient scaled
    /// for the whole batch and dropout drawn by each sample's place in it. Appends the loss
    /// terms to `terms` and returns how many were correct. The gradients are complete only
    /// after `grads_from_parts` has put every rank's `pack_grad_parts` together.
    pub fn forward_backward_shard(
        &mut self,
        ctx: &Context,
        shard: &Shard,
        terms: &mut Vec<f64>,
    ) -> usize {
        if shard.samples().is_empty() {
            return 0;
        }
        let first = shard.samples().start;
        for l in &mut self.layers {
            l.set_shard(shard.per_chunk, first);
        }
        self.forward(ctx);
        let top = self.logit_layers;
        let correct = loss::compute_terms(
            self.loss,
            self.label_smoothing,
            &self.acts[top],
            &self.labels,
            Some(&mut self.grads[top]),
            shard.batch,
            terms,
        );
        self.backward_layers(top, true);
        for l in &mut self.layers {
            l.set_shard(0, 0);
        }
        correct
    }

    /// The batch's mean loss from all ranks' loss terms in sample order.
    pub fn loss_of_terms(&self, terms: &[f64], batch: usize) -> f32 {
        loss::mean_of_terms(self.loss, self.output_size(), terms, batch)
    }

    /// Whether every layer with parameters says how its gradients are put together over
    /// ranks; `Err` names the first that does not.
    pub fn check_grad_parts(&self) -> std::result::Result<(), String> {
        match self
            .layers
            .iter()
            .find(|l| !l.params().is_empty() && l.grad_parts() == GradParts::None)
        {
            Some(l) => Err(format!(
                "layer {} ({}) cannot be trained on more than one rank",
                l.name(),
                l.kind().label()
            )),
            None => Ok(()),
        }
    }

    /// Appends this rank's gradient parts after `forward_backward_shard` (as f32 bits): per
    /// layer with parameters, its local chunks' partials or its input and output-gradient rows.
    pub fn pack_grad_parts(&self, shard: &Shard, out: &mut Vec<u32>) {
        let samples = shard.samples().len();
        for (i, l) in self.layers.iter().enumerate().take(self.logit_layers) {
            match l.grad_parts() {
                GradParts::None => {}
                GradParts::Chunks { .. } if samples == 0 => {}
                GradParts::Chunks { .. } => out.extend(
                    l.chunk_partials(shard.local_chunks)
                        .iter()
                        .map(|v| v.to_bits()),
                ),
                GradParts::Rows if samples == 0 => {}
                GradParts::Rows => {
                    out.extend(data(&self.acts[i]).iter().map(|v| v.to_bits()));
                    out.extend(data(&self.grads[i + 1]).iter().map(|v| v.to_bits()));
                }
            }
        }
    }

    /// Sets every parameter gradient of the whole batch from all ranks' `pack_grad_parts`
    /// (`parts[r]` from the rank with `shards[r]`), put together in chunk and sample order:
    /// the same values as one process's `forward_backward` on the whole batch.
    pub fn grads_from_parts(&mut self, shards: &[Shard], parts: &[&[u32]]) {
        let mut at = vec![0usize; parts.len()];
        let batch = shards.first().map_or(0, |s| s.batch);
        let mut take = |r: usize, n: usize, into: &mut Vec<f32>| {
            into.extend(
                parts[r][at[r]..at[r] + n]
                    .iter()
                    .map(|&w| f32::from_bits(w)),
            );
            at[r] += n;
        };
        for i in 0..self.logit_layers {
            match self.layers[i].grad_parts() {
                GradParts::None => {}
                GradParts::Chunks { part_len } => {
                    let mut all = Vec::new();
                    let mut chunks = 0;
                    for (r, s) in shards.iter().enumerate() {
                        if !s.samples().is_empty() {
                            take(r, s.local_chunks * part_len, &mut all);
                            chunks += s.local_chunks;
                        }
                    }
                    self.layers[i].reduce_chunk_partials(&all, chunks);
                }
                GradParts::Rows => {
                    let in_shape: Vec<usize> = if i == 0 {
                        self.input_shape.to_vec()
                    } else {
                        self.layers[i - 1].output_shape().to_vec()
                    };
                    let out_shape = self.layers[i].output_shape().to_vec();
                    let (in_len, out_len) = (
                        in_shape.iter().product::<usize>(),
                        out_shape.iter().product::<usize>(),
                    );
                    let (mut x, mut dy) = (Vec::new(), Vec::new());
                    for (r, s) in shards.iter().enumerate() {
                        let n = s.samples().len();
                        if n > 0 {
                            take(r, n * in_len, &mut x);
                            take(r, n * out_len, &mut dy);
                        }
                    }
                    let shape = |per: &[usize]| {
                        let mut v = vec![batch];
                        v.extend_from_slice(per);
                        IxDyn(&v)
                    };
                    let x = Tensor::from_shape_vec(shape(&in_shape), x).expect("sized");
                    let dy = Tensor::from_shape_vec(shape(&out_shape), dy).expect("sized");
                    self.layers[i].param_grads_from_rows(&x, &dy);
                }
            }
        }
    }

    /// Class probabilities for the loaded batch (`[batch, classes]`).
    pub(crate) fn probabilities(&mut self) -> Tensor {
        let logits = self.forward(&Context::inference()).clone();
        if self.logit_layers < self.layers.len() || self.loss == LossKind::SoftmaxCrossEntropy {
            let classes = logits.shape()[1];
            let mut p = Tensor::zeros(IxDyn(logits.shape()));
            softmax_rows(data(&logits), data_mut(&mut p), classes);
            p
        } else {
            logits
        }
    }

    /// The output of layer `i` for the last batch run through `forward`.
    pub(crate) fn layer_output(&self, i: usize) -> &Tensor {
        &self.acts[i + 1]
    }

    pub(crate) fn params(&self) -> Vec<&Param> {
        self.layers.iter().flat_map(|l| l.params()).collect()
    }

    pub(crate) fn params_mut(&mut self) -> Vec<&mut Param> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.params_mut())
            .collect()
    }

    /// The parameters and the buffers (running statistics): everything a weights file holds.
    pub(crate) fn tensors(&self) -> Vec<&Param> {
        self.layers
            .iter()
            .flat_map(|l| l.params().into_iter().chain(l.buffers()))
            .collect()
    }

    pub(crate) fn tensors_mut(&mut self) -> Vec<&mut Param> {
        self.layers
            .iter_mut()
            .flat_map(|l| l.tensors_mut())
            .collect()
    }

    pub fn param_count(&self) -> usize {
        self.params().iter().map(|p| p.value.len()).sum()
    }

    /// FLOPs of one sample's forward pass.
    pub fn forward_flops(&self) -> u64 {
        self.layers.iter().map(|l| l.forward_flops()).sum()
    }

    /// Copies of all parameter and buffer values, to restore later (early stopping's best
    /// weights).
    pub(crate) fn snapshot_params(&self) -> Vec<Tensor> {
        self.tensors().iter().map(|p| p.value.clone()).collect()
    }

    pub(crate) fn restore_params(&mut self, values: &[Tensor]) {
        for (p, v) in self.tensors_mut().into_iter().zip(values) {
            p.value.assign(v);
        }
    }
}

/// The stats of a whole evaluation from its pieces' stats in piece order (each piece's mean
/// loss weighted by its samples, summed in that order).
pub(crate) fn combine_eval(parts: &[BatchStats]) -> BatchStats {
    let mut total = BatchStats::default();
    let mut loss_sum = 0.0f64;
    for p in parts {
        loss_sum += p.loss as f64 * p.samples as f64;
        total.correct += p.correct;
        total.samples += p.samples;
    }
    total.loss = (loss_sum / total.samples.max(1) as f64) as f32;
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model_config(text: &str) -> ModelConfig {
        toml::from_str(text).unwrap()
    }

    /// Every conv path (direct, Winograd, patches), pooling, flatten, dropout and dense layers.
    const MODEL: &str = r#"
        layers = [
          { type = "conv2d", filters = 6, kernel_size = 3, activation = "relu" },
          { type = "conv2d", filters = 8, kernel_size = 3, activation = "relu" },
          { type = "conv2d", filters = 8, kernel_size = 5, padding = "same" },
          { type = "maxpool2d", pool_size = 2 },
          { type = "flatten" },
          { type = "dropout", rate = 0.5 },
          { type = "dense", units = 16, activation = "relu" },
          { type = "dense", units = 10, activation = "softmax" },
        ]
    "#;

    fn model() -> Sequential {
        Sequential::build(&model_config(MODEL), [12, 12, 1], 10, 5).unwrap()
    }

    /// With `test_time_flip`, evaluation scores the mean of the logits of each image and of
    /// its mirror image, as two plain passes over the images and the flipped images give.
    #[test]
    fn test_time_flip_averages_the_logits_of_the_image_and_its_mirror() {
        let mut plain = model();
        let mut spec = model_config(MODEL);
        spec.test_time_flip = true;
        let mut tta = Sequential::build(&spec, [12, 12, 1], 10, 5).unwrap();
        let data = Split::random(40, 144);
        let mut mirrored = data.clone();
        for row in mirrored.images.chunks_exact_mut(12) {
            row.reverse();
        }
        let indices: Vec<u32> = (0..40).collect();
        let logits = |m: &mut Sequential, s: &Split| {
            m.load_batch(s, &indices);
            m.forward(&Context::inference()).clone()
        };
        let (a, b) = (logits(&mut plain, &data), logits(&mut plain, &mirrored));
        assert_ne!(a, b, "the images are not symmetric");
        let mean = (&a + &b) * 0.5;
        let stats = loss::compute(
            plain.loss,
            plain.label_smoothing,
            &mean,
            &plain.labels,
            None,
        );
        let expected: Vec<u8> = data_of(&mean).map(|r| argmax(r) as u8).collect();
        let (eval, predictions) = tta.evaluate(&data);
        assert_eq!(predictions, expected);
        assert!(
            (eval.loss - stats.loss).abs() < 1e-6,
            "{} vs {}",
            eval.loss,
            stats.loss
        );
        let (unflipped, _) = plain.evaluate(&data);
        assert_ne!(eval.loss, unflipped.loss);
    }

    #[test]
    fn inference_pass_matches_the_full_forward_pass() {
        let mut m = model();
        let data = Split::random(40, 144);
        let indices: Vec<u32> = (0..40).collect();
        m.load_batch(&data, &indices);
        // The training forward computes the conv layers exactly as inference does.
        let train = Context {
            train: true,
            seed: 1,
            step: 3,
        };
        m.forward(&train);
        let convs: Vec<Tensor> = (0..3).map(|i| m.layer_output(i).clone()).collect();
        let full = m.forward(&Context::inference()).clone();
        let logits = m.infer();
        assert_eq!(m.acts[logits], full, "inference pass differs from forward");
        for (i, conv) in convs.iter().enumerate() {
            assert_eq!(m.layer_output(i), conv, "conv layer {i}");
        }
        // And evaluate's predictions and loss are those of the full forward pass.
        let stats = loss::compute(m.loss, m.label_smoothing, &full, &m.labels, None);
        let (eval, predictions) = m.evaluate(&data);
        let expected: Vec<u8> = data_of(&full).map(|r| argmax(r) as u8).collect();
        assert_eq!(predictions, expected);
        assert_eq!(eval.correct, stats.correct);
        assert!(
            (eval.loss - stats.loss).abs() < 1e-6,
            "{} {}",
            eval.loss,
            stats.loss
        );
    }

    /// Max pools after Winograd convolutions (4x4 tiles over a 10x10 output, 6x6 tiles over
    /// a 5x5 one, its pool rounding down, a dropout between) are computed by the convolutions
    /// in inference passes, with the same logits, bit for bit, as the layers apart.
    #[test]
    fn pools_fused_into_convolutions_give_the_same_logits() {
        let spec = model_config(
            r#"
            layers = [
              { type = "conv2d", filters = 6, kernel_size = 3, activation = "relu" },
              { type = "conv2d", filters = 8, kernel_size = 3, activation = "relu" },
              { type = "maxpool2d", pool_size = 2 },
              { type = "conv2d", filters = 9, kernel_size = 3, padding = "same" },
              { type = "dropout", rate = 0.5 },
              { type = "maxpool2d", pool_size = 2 },
              { type = "flatten" },
              { type = "dense", units = 10, activation = "softmax" },
            ]
        "#,
        );
        let mut m = Sequential::build(&spec, [14, 14, 1], 10, 5).unwrap();
        let data = Split::random(11, 196);
        let indices: Vec<u32> = (0..11).collect();
        m.load_batch(&data, &indices);
        let full = m.forward(&Context::inference()).clone();
        m.fuse_max_pools();
        let fused: Vec<usize> = (0..m.folded.len()).filter(|&i| m.folded[i]).collect();
        assert_eq!(fused, [2, 5], "both pools fused");
        let logits = m.infer();
        assert_eq!(m.acts[logits], full, "fused inference differs from forward");
        m.unfold_batch_norms();
        assert_eq!(m.forward(&Context::inference()), &full, "unfused again");
        let (eval, predictions) = m.evaluate(&data);
        let expected: Vec<u8> = data_of(&full).map(|r| argmax(r) as u8).collect();
        assert_eq!(predictions, expected);
        let stats = loss::compute(m.loss, m.label_smoothing, &full, &m.labels, None);
        assert_eq!(eval.loss.to_bits(), stats.loss.to_bits());
    }

    fn data_of(t: &Tensor) -> impl Iterator<Item = &[f32]> {
        data(t).chunks_exact(10)
    }

    /// `m.evaluate(data)` on a pool of `threads` threads.
    fn evaluate_on(threads: usize, m: &mut Sequential, data: &Split) -> (BatchStats, Vec<u8>) {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| m.evaluate(data))
    }

    #[test]
    fn evaluation_is_identical_for_any_thread_count() {
        let data = Split::random(1000, 144);
        let mut m = model();
        assert!(m.eval_batch() < 1000, "several evaluation batches");
        let (one, p1) = evaluate_on(1, &mut m, &data);
        for threads in [2, 3] {
            let (s, p) = evaluate_on(threads, &mut m, &data);
            assert_eq!(s.loss.to_bits(), one.loss.to_bits(), "{threads} threads");
            assert_eq!((s.correct, &p), (one.correct, &p1), "{threads} threads");
        }
    }

    /// A model whose logits are one dense layer over the input is evaluated straight from
    /// the bytes (`dense_narrow`): the same predictions and loss as the layers' own forward
    /// pass, plain and normalised, and the same bits for any thread count.
    #[test]
    fn logistic_evaluation_from_bytes_matches_the_forward_pass() {
        let spec = model_config(
            r#"layers = [{ type = "flatten" }, { type = "dropout", rate = 0.5 }, { type = "dense", units = 10 }]"#,
        );
        let data = Split::random(3000, 144);
        for normalized in [false, true] {
            let mut m = Sequential::build(&spec, [12, 12, 1], 10, 5).unwrap();
            if normalized {
                m.set_normalization(Normalization {
                    mean: vec![0.3],
                    std: vec![0.7],
                });
            }
            assert!(m.bytes_dense().is_some());
            assert!(m.eval_batch() < 3000, "several evaluation pieces");
            let indices: Vec<u32> = (0..3000).collect();
            m.load_batch(&data, &indices);
            let logits = m.forward(&Context::inference()).clone();
            let plain = loss::compute(m.loss, m.label_smoothing, &logits, &m.labels, None);
            let expected: Vec<u8> = data_of(&logits).map(|r| argmax(r) as u8).collect();
            let (eval, predictions) = evaluate_on(1, &mut m, &data);
            assert_eq!(predictions, expected, "normalized {normalized}");
            assert_eq!(eval.correct, plain.correct);
            assert!(
                (eval.loss - plain.loss).abs() < 1e-5,
                "{} vs {}",
                eval.loss,
                plain.loss
            );
            for threads in [2, 3] {
                let (s, p) = evaluate_on(threads, &mut m, &data);
                assert_eq!(s.loss.to_bits(), eval.loss.to_bits(), "{threads} threads");
                assert_eq!(p, predictions, "{threads} threads");
            }
        }
    }

    /// Batch normalisation after convolutions (folded at evaluation, with and without a ReLU
    /// after it), average and global pooling.
    const BN_MODEL: &str = r#"
        layers = [
          { type = "conv2d", filters = 6, kernel_size = 3, use_bias = false },
          { type = "batch_norm", activation = "relu" },
          { type = "conv2d", filters = 8, kernel_size = 3, padding = "same", use_bias = false },
          { type = "batch_norm", momentum = 0.5 },
          { type = "relu" },
          { type = "avg_pool2d", pool_size = 2 },
          { type = "conv2d", filters = 8, kernel_size = 3 },
          { type = "batch_norm" },
          { type = "global_avg_pool" },
          { type = "dense", units = 16 },
          { type = "batch_norm", activation = "relu" },
          { type = "dense", units = 10 },
        ]
    "#;

    #[test]
    fn folded_batch_norm_evaluates_as_the_unfolded_layers() {
        let mut m = Sequential::build(&model_config(BN_MODEL), [12, 12, 1], 10, 5).unwrap();
        let names: Vec<String> = m.tensors().iter().map(|p| p.name.clone()).collect();
        assert!(!names.contains(&"conv1.bias".to_string()), "{names:?}");
        for t in ["gamma", "beta", "moving_mean", "moving_variance"] {
            assert!(names.contains(&format!("bn1.{t}")), "{names:?}");
        }
        assert!(names.contains(&"conv3.bias".to_string()));
        let data = Split::random(64, 144);
        // A few training passes move the running statistics away from 0 and 1.
        for step in 0..3u32 {
            let indices: Vec<u32> = (step * 16..step * 16 + 32).collect();
            m.load_batch(&data, &indices);
            m.forward_backward(&Context {
                train: true,
                seed: 1,
                step: step as u64,
            });
        }
        let before = m.snapshot_params();
        let indices: Vec<u32> = (0..64).collect();
        m.load_batch(&data, &indices);
        let unfolded = m.forward(&Context::inference()).clone();
        let (_, predictions) = m.evaluate(&data);
        m.load_batch(&data, &indices);
        m.fold_batch_norms();
        // bn1 (with its own ReLU), bn2 and the relu layer after it, bn3.
        assert_eq!(m.folded.iter().filter(|f| **f).count(), 4, "{:?}", m.folded);
        let logits = m.infer();
        let folded = m.acts[logits].clone();
        m.unfold_batch_norms();
        let diff = data_of(&folded)
            .flatten()
            .zip(data_of(&unfolded).flatten())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "folded and unfolded logits differ by {diff}");
        let expected: Vec<u8> = data_of(&folded).map(|r| argmax(r) as u8).collect();
        assert_eq!(predictions, expected);
        assert_eq!(
            m.snapshot_params(),
            before,
            "evaluation restores the weights"
        );
    }

    #[test]
    fn evaluation_batches_are_large_for_flat_models_and_small_for_conv_models() {
        assert_eq!(model().eval_batch(), 436);
        let flat =
            model_config("layers = [{ type = \"flatten\" }, { type = \"dense\", units = 10 }]");
        let m = Sequential::build(&flat, [28, 28, 1], 10, 1).unwrap();
        assert_eq!(m.eval_batch(), (1 << 20) / (4 * 784));
    }
}
