//! Resuming a checkpoint with the settings of this invocation: each change is applied, or
//! refused with the reason (the policy is in the README, "Resuming").
//!
//! - The model, `training.seed` and `training.validation_split` cannot change: the weights
//!   or the epoch's sample order would no longer be the checkpoint's.
//! - `training.batch_size` may change when the samples done in the epoch in progress are a
//!   whole number of new batches; training then goes on at that exact sample.
//! - The optimizer is rebuilt from the new settings and keeps the saved state that fits it
//!   (see [`Loaded::optimizer`]). An asked-for learning rate replaces the live one; otherwise
//!   the live rate goes on where the checkpoint left it (schedules and commands included).
//! - Everything else (epochs, schedule, early stopping, checkpoints, logging) simply applies.
//!
//! Whatever is accepted is the config that runs, and so the one the next checkpoint embeds.

use std::path::PathBuf;

use toml::Value;

use super::checkpoint::Loaded;
use super::trainer::Resume;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::lr::fmt_lr;

/// Settings a resumed run cannot change, and why.
const FIXED: [(&str, &str); 3] = [
    (
        "model.",
        "the model cannot change when resuming a checkpoint",
    ),
    (
        "training.seed",
        "cannot change when resuming: the epoch's sample order and the dropout masks depend on it",
    ),
    (
        "training.validation_split",
        "cannot change when resuming: it decides which samples are trained on",
    ),
];

/// Plans the resume of `loaded` (read from `from`) under `config`, the config asked for now.
/// `lr_asked` says whether this invocation named a learning rate (`--lr`, `--set
/// optimizer.lr`), which then replaces the live one even when the config's value is the same.
pub(crate) fn plan(
    loaded: Loaded,
    from: PathBuf,
    config: &Config,
    lr_asked: bool,
) -> Result<Resume> {
    let origin = |key: &str| format!("{key} (resuming {})", from.display());
    let changed = changes(&loaded.config, config);
    if config.model != loaded.config.model {
        return Err(Error::config(
            origin("model"),
            "the model cannot change when resuming a checkpoint",
        ));
    }
    for (key, _, _) in &changed {
        if let Some((_, why)) = FIXED.iter().find(|(k, _)| key.starts_with(k)) {
            return Err(Error::config(origin(key), *why));
        }
    }
    let mut notes: Vec<String> = changed
        .iter()
        .map(|(k, old, new)| format!("resumed with {k} = {new} (the checkpoint had {old})"))
        .collect();
    let mut state = loaded.state.clone();

    let (old_batch, new_batch) = (
        loaded.config.training.batch_size,
        config.training.batch_size,
    );
    if old_batch != new_batch && state.batches_done > 0 {
        let samples = state.batches_done * old_batch;
        if !samples.is_multiple_of(new_batch) {
            return Err(Error::config(
                origin("training.batch_size"),
                format!(
                    "cannot resume with batch size {new_batch}: the checkpoint stopped {samples} samples into epoch {} ({} batches of {old_batch}), which is not a whole number of batches of {new_batch}; use a batch size that divides {samples}, or a checkpoint from an epoch's end",
                    state.epoch, state.batches_done
                ),
            ));
        }
        state.batches_done = samples / new_batch;
        notes.push(format!(
            "batch size {old_batch} -> {new_batch}: epoch {} goes on after sample {samples}, at batch {}",
            state.epoch,
            state.batches_done + 1
        ));
    }

    let optimizer = loaded
        .optimizer(&config.optimizer)
        .map_err(|e| Error::weights(&from, e))?;
    if config.optimizer != loaded.config.optimizer {
        let kept = if optimizer.state().is_empty() {
            "its state starts from zero"
        } else {
            "it keeps the saved state"
        };
        notes.push(format!(
            "optimizer {} -> {}: {kept}",
            loaded.config.optimizer.label(),
            config.optimizer.label()
        ));
    }
    let asked = config.optimizer.lr();
    let per_step = config
        .training
        .schedule
        .clone()
        .is_some_and(|s| crate::optim::Schedule::new(s).per_step());
    if per_step && (lr_asked || asked != loaded.config.optimizer.lr()) {
        // A per-step schedule sets every step's rate from optimizer.lr: that is what changes.
        notes.push(format!(
            "the schedule's optimizer.lr {} -> {} as asked (a scale set by hand is dropped)",
            fmt_lr(loaded.config.optimizer.lr()),
            fmt_lr(asked)
        ));
        state.lr_scale = None;
    } else if (lr_asked || asked != loaded.config.optimizer.lr()) && asked != state.lr {
        notes.push(format!(
            "learning rate {} -> {} as asked",
            fmt_lr(state.lr),
            fmt_lr(asked)
        ));
        state.lr = asked;
    }
    if config.training.schedule != loaded.config.training.schedule {
        // A plateau's count of stalled epochs means nothing to another schedule.
        state.schedule = None;
    }
    if config.training.early_stopping != loaded.config.training.early_stopping
        && config.training.early_stopping.is_none()
    {
        state.early_stopping = None;
    }
    Ok(Resume {
        model: loaded.model,
        optimizer,
        state,
        from,
        notes,
    })
}

/// (key, checkpoint's value, new value) for every setting that differs, keys dotted as for
/// `--set`; tables nested inside arrays (the model's layers) compare as a whole.
fn changes(old: &Config, new: &Config) -> Vec<(String, String, String)> {
    let table = |c: &Config| Value::try_from(c).expect("a Config always serializes");
    let mut out = Vec::new();
    diff("", &table(old), &table(new), &mut out);
    out
}

fn diff(prefix: &str, old: &Value, new: &Value, out: &mut Vec<(String, String, String)>) {
    let show = |v: Option<&Value>| v.map_or("(unset)".to_string(), |v| v.to_string());
    match (old, new) {
        (Value::Table(a), Value::Table(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let key = format!("{prefix}{k}");
                match (a.get(k), b.get(k)) {
                    (Some(x), Some(y)) => diff(&format!("{key}."), x, y, out),
                    (x, y) => out.push((key, show(x), show(y))),
                }
            }
        }
        (a, b) if a != b => out.push((
            prefix.trim_end_matches('.').to_string(),
            show(Some(a)),
            show(Some(b)),
        )),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_CONFIG, parse_config};

    #[test]
    fn changes_name_each_setting_with_both_values() {
        let old = parse_config(DEFAULT_CONFIG, "d", &[]).unwrap();
        let new = parse_config(
            DEFAULT_CONFIG,
            "d",
            &["optimizer.lr=0.5".into(), "training.epochs=9".into()],
        )
        .unwrap();
        assert_eq!(
            changes(&old, &new),
            [
                (
                    "optimizer.lr".to_string(),
                    "0.05".to_string(),
                    "0.5".to_string()
                ),
                ("training.epochs".into(), "300".into(), "9".into()),
            ]
        );
        assert!(changes(&old, &old).is_empty());
    }
}
