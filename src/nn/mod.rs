//! Neural-network core: tensors on ndarray, layers with hand-written backward passes, losses,
//! and the sequential model built from a config.
//!
//! Activations are channels-last (`[batch, height, width, channels]`, as Keras), so that a
//! convolution is one matrix multiply over the whole batch with no transposes.

mod activation;
mod avgpool;
mod batch_norm;
mod build;
mod conv2d;
mod conv_direct;
mod conv_geometry;
mod dense;
mod dense_narrow;
mod dropout;
mod flatten;
pub mod init;
mod layer;
pub mod loss;
pub mod matmul;
mod maxpool;
mod model;
mod shard;
mod simd;
pub mod summary;
pub mod tensor;
mod winograd;

#[cfg(test)]
pub(crate) mod gradcheck;

pub use activation::ActivationLayer;
pub use conv_geometry::ConvGeometry;
pub use conv2d::Conv2d;
pub use dense::Dense;
pub use layer::{Context, GradParts, Layer, LayerKind, Param};
pub use maxpool::MaxPool2d;
pub use model::Sequential;
pub(crate) use model::combine_eval;
pub use shard::Shard;
pub(crate) use summary::summary_rows;
pub use summary::{LayerRow, summary_table};
