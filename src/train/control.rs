//! Commands a front end sends to the training loop; each is applied between two batches.

use serde::{Deserialize, Serialize};

use crate::dist::Collective;

/// A request to the running training loop. Serialized only to pass it between the ranks of a
/// data-parallel run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Command {
    /// Steering from a front end in this process (the dashboard's keys).
    Steer(Steer),
    /// Steering from outside the process (a command file): applied like [`Command::Steer`],
    /// and acknowledged with a `CommandApplied` event carrying `id`.
    Remote { id: String, steer: Steer },
    /// Finish the current batch, save a checkpoint and end the run without testing
    /// (signals: SIGTERM, SIGINT, SIGUSR1). The text names the cause.
    Interrupt(String),
    /// Nobody is watching any more (the terminal hung up): resume if paused, and treat a
    /// divergence as a headless run does.
    Unattended,
}

/// How a person steers a run, from the dashboard's keys, `watch` or `ctl`: the same enum is
/// `ctl`'s subcommands and the command-file format (`{"lr":{"value":0.01}}`, `"pause"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, clap::Subcommand)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum Steer {
    /// Pause before the next batch.
    Pause,
    /// Resume a paused run.
    Resume,
    /// Set the learning rate.
    Lr {
        #[arg(value_parser = learning_rate)]
        value: f64,
    },
    /// Multiply the learning rate by a factor (0.5 halves it).
    LrScale {
        #[arg(value_parser = positive_number)]
        factor: f64,
    },
    /// Save a checkpoint now.
    Save,
    /// Stop after this batch, test the model and finish the run.
    Stop,
    /// Put back the weights and optimizer state of the last good checkpoint (after a
    /// divergence).
    Restore,
    /// Choose which conv layer (0 = first) and which probe image the snapshots show.
    Inspect {
        #[arg(long, default_value_t = 0)]
        layer: usize,
        #[arg(long, default_value_t = 0)]
        probe: usize,
    },
}

fn learning_rate(s: &str) -> Result<f64, String> {
    let v = s
        .parse::<f64>()
        .map_err(|_| format!("'{s}' is not a number"))?;
    crate::lr::check_lr(v).map_err(|why| format!("the learning rate {why}"))
}

fn positive_number(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("'{s}' must be a positive number")),
    }
}

impl Steer {
    /// The command, checked: numbers must be positive and finite.
    pub(crate) fn checked(self) -> Result<Steer, String> {
        match self {
            Steer::Lr { value } => crate::lr::check_lr(value)
                .map(|value| Steer::Lr { value })
                .map_err(|why| format!("lr: the learning rate {why}")),
            Steer::LrScale { factor } if !(factor.is_finite() && factor > 0.0) => {
                Err("lr-scale needs a positive factor".into())
            }
            s => Ok(s),
        }
    }

    /// How a command reads in logs and acknowledgements, e.g. `lr 0.01`.
    pub(crate) fn describe(&self) -> String {
        match self {
            Steer::Pause => "pause".into(),
            Steer::Resume => "resume".into(),
            Steer::Lr { value } => format!("lr {}", crate::lr::fmt_lr(*value)),
            Steer::LrScale { factor } => format!("lr-scale {factor}"),
            Steer::Save => "save".into(),
            Steer::Stop => "stop".into(),
            Steer::Restore => "restore".into(),
            Steer::Inspect { layer, probe } => {
                format!("inspect conv layer {layer}, probe {probe}")
            }
        }
    }
}

impl From<Steer> for Command {
    fn from(steer: Steer) -> Command {
        Command::Steer(steer)
    }
}

impl Command {
    /// How a command reads in logs and acknowledgements.
    pub(crate) fn describe(&self) -> String {
        match self {
            Command::Steer(s) | Command::Remote { steer: s, .. } => s.describe(),
            Command::Interrupt(cause) => format!("interrupt ({cause})"),
            Command::Unattended => "unattended".into(),
        }
    }
}

/// Every rank's `local` commands, in rank order, on every rank (serialized as JSON bytes).
pub(crate) fn exchange_commands(comm: &dyn Collective, local: &[Command]) -> Vec<Command> {
    let words = if local.is_empty() {
        Vec::new()
    } else {
        to_words(&serde_json::to_vec(local).expect("commands serialize"))
    };
    comm.all_gather(&words)
        .iter()
        .filter(|w| !w.is_empty())
        .flat_map(|w| {
            // Only our own bytes come back; anything else is a bug worth stopping for.
            serde_json::from_slice::<Vec<Command>>(&from_words(w))
                .expect("commands from another rank")
        })
        .collect()
}

/// Bytes as words: the length, then the bytes four to a word.
fn to_words(bytes: &[u8]) -> Vec<u32> {
    let mut words = vec![bytes.len() as u32];
    words.extend(bytes.chunks(4).map(|c| {
        let mut b = [0u8; 4];
        b[..c.len()].copy_from_slice(c);
        u32::from_le_bytes(b)
    }));
    words
}

fn from_words(words: &[u32]) -> Vec<u8> {
    let len = words[0] as usize;
    let mut bytes: Vec<u8> = words[1..].iter().flat_map(|w| w.to_le_bytes()).collect();
    bytes.truncate(len);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dist::Sim;

    #[test]
    fn every_rank_gets_all_commands_in_rank_order() {
        let sent = [
            vec![
                Command::Remote {
                    id: "a1".into(),
                    steer: Steer::Lr {
                        value: 0.013333333333666667,
                    },
                },
                Command::Steer(Steer::Pause),
            ],
            vec![],
            vec![Command::Interrupt("SIGTERM".into())],
        ];
        let expected: Vec<Command> = sent.concat();
        std::thread::scope(|s| {
            let handles: Vec<_> = Sim::group(3)
                .into_iter()
                .zip(&sent)
                .map(|(comm, local)| s.spawn(move || exchange_commands(&comm, local)))
                .collect();
            for h in handles {
                assert_eq!(h.join().unwrap(), expected);
            }
        });
    }
}
