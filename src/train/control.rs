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
    /// A command from outside the process (a command file): applied like the inner command,
    /// and acknowledged with a `CommandApplied` event carrying `id`.
    Remote {
        id: String,
        command: Box<Command>,
    },
}

impl Command {
    /// How a command reads in logs and acknowledgements, e.g. `lr 0.01`.
    pub fn describe(&self) -> String {
        match self {
            Command::Pause => "pause".into(),
            Command::Resume => "resume".into(),
            Command::SetLr(lr) => format!("lr {}", crate::config::fmt_lr(*lr)),
            Command::ScaleLr(f) => format!("lr-scale {f}"),
            Command::SaveCheckpoint => "save".into(),
            Command::Stop => "stop".into(),
            Command::Interrupt(cause) => format!("interrupt ({cause})"),
            Command::RestoreLastGood => "restore".into(),
            Command::Unattended => "unattended".into(),
            Command::Inspect { conv_layer, probe } => {
                format!("inspect conv layer {conv_layer}, probe {probe}")
            }
            Command::Remote { command, .. } => command.describe(),
        }
    }
}
