//! The layer interface: forward into a caller-owned output, backward from the output gradient.

use super::tensor::Tensor;
use crate::config::Activation;

/// A trainable tensor and its gradient, named as in checkpoints (`conv1.weight`).
#[derive(Debug, Clone)]
pub struct Param {
    pub(crate) name: String,
    pub(crate) value: Tensor,
    pub(crate) grad: Tensor,
}

impl Param {
    pub(crate) fn new(name: String, value: Tensor) -> Param {
        let grad = Tensor::zeros(value.raw_dim());
        Param { name, value, grad }
    }
}

/// What a forward pass needs to know besides its input.
#[derive(Debug, Clone, Copy)]
pub struct Context {
    /// Training (dropout active) or inference.
    pub train: bool,
    /// The run's seed and the global step: dropout masks are a function of both, so a
    /// resumed run draws the same masks.
    pub seed: u64,
    pub step: u64,
}

impl Context {
    pub(crate) fn inference() -> Context {
        Context {
            train: false,
            seed: 0,
            step: 0,
        }
    }
}

/// What a layer is, for code that treats some kinds apart (the snapshot's feature maps,
/// batch normalisation folded into its convolution) and for the summary's type column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    Conv2d,
    MaxPool2d,
    AvgPool2d,
    GlobalAvgPool,
    Flatten,
    Dense,
    Dropout,
    BatchNorm,
    Activation(Activation),
}

impl LayerKind {
    /// The type as Keras' summary names it, e.g. `Conv2D`.
    pub(crate) fn label(self) -> &'static str {
        match self {
            LayerKind::Conv2d => "Conv2D",
            LayerKind::MaxPool2d => "MaxPool2D",
            LayerKind::AvgPool2d => "AveragePooling2D",
            LayerKind::GlobalAvgPool => "GlobalAveragePooling2D",
            LayerKind::Flatten => "Flatten",
            LayerKind::Dense => "Dense",
            LayerKind::Dropout => "Dropout",
            LayerKind::BatchNorm => "BatchNormalization",
            LayerKind::Activation(Activation::Relu) => "ReLU",
            LayerKind::Activation(Activation::Sigmoid) => "Sigmoid",
            LayerKind::Activation(Activation::Tanh) => "Tanh",
            LayerKind::Activation(Activation::Softmax) => "Softmax",
        }
    }

    /// An element-wise activation (not softmax, which works on a whole sample).
    pub(crate) fn is_elementwise_activation(self) -> bool {
        matches!(
            self,
            LayerKind::Activation(Activation::Relu | Activation::Sigmoid | Activation::Tanh)
        )
    }
}

/// How a layer's parameter gradients are put together when a batch is split across ranks
/// (`dist`): each rank runs its share of the batch's fixed gradient chunks, then every rank
/// builds the whole batch's gradients from all ranks' parts in the same order, so that they
/// are bit-identical to one process's. Layers without parameters have no parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GradParts {
    /// No parameters.
    None,
    /// Per-chunk partial sums of `part_len` values (the last backward's local chunks, from
    /// `chunk_partials`), summed in chunk order by `reduce_chunk_partials`.
    Chunks { part_len: usize },
    /// The gradients are a function of the whole batch's input rows and output-gradient rows
    /// (`param_grads_from_rows`).
    Rows,
}

/// A layer of a sequential model.
///
/// For data-parallel training (`dist`) a layer's output for a sample must not depend on the
/// other samples of the batch, and its parameter gradients must be described by `grad_parts`.
///
/// # Shapes
/// Inputs and outputs are `[batch, ...per-sample shape]`, channels last.
pub trait Layer: Send {
    /// The unique name within the model, e.g. `conv1`.
    fn name(&self) -> &str;
    /// What the layer is (`kind().label()` is the summary's type, e.g. `Conv2D`).
    fn kind(&self) -> LayerKind;
    /// The per-sample output shape.
    fn output_shape(&self) -> &[usize];
    /// Computes `y` from `x`, shaping `y` as needed (reusing its allocation).
    fn forward(&mut self, x: &Tensor, y: &mut Tensor, ctx: &Context);
    /// From `dy` (gradient of the loss with respect to `y`), sets the parameter gradients
    /// and, when `dx` is given, the gradient with respect to `x`.
    fn backward(&mut self, x: &Tensor, y: &Tensor, dy: &Tensor, dx: Option<&mut Tensor>);
    fn params(&self) -> Vec<&Param> {
        Vec::new()
    }
    fn params_mut(&mut self) -> Vec<&mut Param> {
        Vec::new()
    }
    /// Tensors saved and restored with the parameters but not trained (batch
    /// normalisation's running statistics); their `grad` is unused.
    fn buffers(&self) -> Vec<&Param> {
        Vec::new()
    }
    /// The parameters, then the buffers, to load or restore.
    fn tensors_mut(&mut self) -> Vec<&mut Param> {
        self.params_mut()
    }
    /// For a layer that is `y = scale · x + shift` per channel at inference (batch
    /// normalisation), that scale and shift.
    fn inference_affine(&self) -> Option<(Vec<f32>, Vec<f32>)> {
        None
    }
    /// Takes a following per-channel `scale · y + shift` (and, with `relu`, a ReLU after it)
    /// into this layer's weights for inference passes, until `unfold`; false when this layer
    /// cannot (it is not a convolution, or it already applies an activation).
    fn fold_affine(&mut self, _scale: &[f32], _shift: &[f32], _relu: bool) -> bool {
        false
    }
    /// Restores the weights from before `fold_affine`, bit for bit, and ends a
    /// `pool_into_output`.
    fn unfold(&mut self) {}
    /// Whether the layer is a 2x2 max pool of stride 2 (a convolution can compute it).
    fn is_max_pool_2x2(&self) -> bool {
        false
    }
    /// Takes a following 2x2 max pool of stride 2 into this layer for inference passes, until
    /// `unfold`: its output is then the pooled one; false when this layer cannot.
    fn pool_into_output(&mut self) -> bool {
        false
    }
    /// Floating-point operations of one sample's forward pass (a multiply-add counts 2).
    /// Whether the layer applies a ReLU to its own output (a convolution does, in place).
    fn fused_relu(&self) -> bool {
        false
    }
    fn forward_flops(&self) -> u64 {
        0
    }
    /// Whether the layer passes its input on unchanged at inference (dropout, flatten: the
    /// next layer reads the same values in the same order), so that an inference pass skips
    /// it instead of copying.
    fn identity_at_inference(&self) -> bool {
        false
    }
    /// Where this rank's share of a split batch lies in the whole batch: the gradient chunks'
    /// size in samples (0: derived from the batch, as for one process) and the first sample's
    /// index (dropout draws its masks by the sample's place in the whole batch).
    fn set_shard(&mut self, _per_chunk: usize, _first_sample: usize) {}
    /// How this layer's parameter gradients are assembled over ranks.
    fn grad_parts(&self) -> GradParts {
        GradParts::None
    }
    /// `GradParts::Chunks`: the local chunks' partials of the last backward, chunk after chunk.
    fn chunk_partials(&self, _chunks: usize) -> &[f32] {
        &[]
    }
    /// `GradParts::Chunks`: sets the parameter gradients from all `chunks` chunks' partials of
    /// the whole batch, summed in chunk order exactly as `backward` sums its own.
    fn reduce_chunk_partials(&mut self, _all: &[f32], _chunks: usize) {}
    /// `GradParts::Rows`: sets the parameter gradients from the whole batch's input `x` and
    /// output gradient `dy`, exactly as `backward` does.
    fn param_grads_from_rows(&mut self, _x: &Tensor, _dy: &Tensor) {}
}
