//! Data: IDX files, the bundled MNIST subset, train/validation/test splits and batches.

mod batches;
mod dataset;
pub mod digit;
pub mod idx;

pub use batches::{epoch_order, fill_batch};
pub use dataset::{DataSource, Dataset, Split};
