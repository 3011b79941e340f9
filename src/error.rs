//! The library's error type: every failure a user can meet, each with a message that names
//! the file or setting at fault and says what is wrong, on one line.

use std::path::{Path, PathBuf};

/// Every error the library reports. `Display` is one line meant for the user.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A data file is missing, unreadable, truncated or not in IDX format.
    #[error("{}: {message}", path.display())]
    Data { path: PathBuf, message: String },
    /// A configuration file or override is malformed or describes an impossible model.
    #[error("{origin}: {message}")]
    Config { origin: String, message: String },
    /// A command-line value that clap cannot check by itself (an index past a grid, an
    /// unknown column): bad usage, exit code 2 like clap's own errors.
    #[error("{option}: {message}")]
    Usage { option: String, message: String },
    /// A weights or checkpoint file cannot be read or does not fit the model.
    #[error("{}: {message}", path.display())]
    Weights { path: PathBuf, message: String },
    /// A file or directory could not be written or read; `action` says what was tried.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The terminal could not be set up or drawn on.
    #[error("terminal: cannot {action}: {source}")]
    Terminal {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// The operating system refused a thread or a signal handler; `action` says which.
    #[error("cannot {action}: {source}")]
    System {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },
    /// A thread of ours panicked: a bug.
    #[error("the {thread} thread panicked (this is a bug; please report it)")]
    Panicked { thread: &'static str },
    /// Training produced a non-finite loss.
    #[error(
        "loss became {value} at epoch {epoch}, batch {batch}: training diverged; try a lower learning rate (for example --lr {})", crate::lr::fmt_lr(*suggested_lr)
    )]
    Diverged {
        value: f32,
        epoch: usize,
        batch: usize,
        suggested_lr: f64,
    },
}

/// The library's result type.
pub(crate) type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn data(path: &Path, message: impl Into<String>) -> Self {
        Error::Data {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    pub(crate) fn config(origin: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            origin: origin.into(),
            message: message.into(),
        }
    }

    pub(crate) fn usage(option: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Usage {
            option: option.into(),
            message: message.into(),
        }
    }

    pub(crate) fn weights(path: &Path, message: impl Into<String>) -> Self {
        Error::Weights {
            path: path.to_path_buf(),
            message: message.into(),
        }
    }

    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    pub(crate) fn terminal(action: &'static str, source: std::io::Error) -> Self {
        Error::Terminal { action, source }
    }

    pub(crate) fn system(action: &'static str, source: std::io::Error) -> Self {
        Error::System { action, source }
    }

    /// Names the config file (or the weights file it is embedded in) in errors about its
    /// contents, which name only the setting (`optimizer.lr`, `model.layers[2]`).
    pub fn in_config(self, file: &str) -> Self {
        match self {
            Error::Config { origin, message }
                if [
                    "name",
                    "data.",
                    "model.",
                    "optimizer.",
                    "training.",
                    "checkpoint.",
                ]
                .iter()
                .any(|p| origin.starts_with(p)) =>
            {
                Error::config(format!("{file}: {origin}"), message)
            }
            other => other,
        }
    }
}
