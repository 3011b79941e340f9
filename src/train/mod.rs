//! The training loop on its own thread: commands in, events out. It knows nothing of
//! terminals; the dashboard and the headless logger are consumers of the same events.

pub mod checkpoint;
mod control;
mod early_stopping;
mod events;
pub mod layer_stats;
pub mod resume;
mod snapshot;
mod trainer;

pub use control::{Command, Steer};
pub use events::{
    Confusion, EpochMetrics, EvalSplit, FailureKind, LrSource, Phase, RunSummary, StopReason,
    TrainEvent,
};
pub(crate) use snapshot::{
    FilterImage, RgbImage, Snapshot, conv_layer_indices, shown_layer, take as take_snapshot,
};
pub use trainer::{Resume, TrainHandle, TrainSetup, spawn, spawn_on};
