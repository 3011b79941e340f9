//! Commands a front end sends to the training loop; each is applied between two batches.

/// A request to the running training loop.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Pause,
    Resume,
    /// Set the learning rate to this value.
    SetLr(f64),
    /// Multiply the learning rate by this factor.
    ScaleLr(f64),
    /// Save the weights now.
    SaveCheckpoint,
    /// Finish the current batch, evaluate on the test set and end the run.
    Stop,
    /// Finish the current batch, save a checkpoint and end the run without testing
    /// (signals: SIGTERM, SIGINT, SIGUSR1). The text names the cause.
    Interrupt(String),
    /// Put back the weights and optimizer state of the last good checkpoint.
    RestoreLastGood,
    /// Nobody is watching any more (the terminal hung up): resume if paused, and treat a
    /// divergence as a headless run does.
    Unattended,
    /// Choose which conv layer (0 = first) and which probe image the snapshots show,
    /// and send a snapshot at once.
    Inspect {
        conv_layer: usize,
        probe: usize,
    },
}
