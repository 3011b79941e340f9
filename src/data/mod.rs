//! Data: IDX files, CIFAR-10 binary batches, folders of PNG/JPEG pictures (with a decoded
//! cache), the bundled MNIST subset, train/validation/test splits and batches.

pub(crate) mod augment;
mod batches;
mod cache;
mod cifar_binary;
mod dataset;
mod decode;
pub mod digit;
mod folder;
pub mod idx;
mod pictures;
mod progress;

pub(crate) use augment::{EpochAugment, Normalization, unit_fraction_fma};
pub(crate) use batches::{epoch_order, fill_batch};
pub use dataset::{DataSource, Dataset, LoadReport, Split};
pub(crate) use decode::picture_for_model;
