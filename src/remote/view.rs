//! `watch`'s own pictures: the filters and feature maps of the layer and probe this viewer
//! chose, computed from the run's newest weights (the final ones, else the newest checkpoint)
//! and the run's data, or the bundled digits when the run's data is not on this machine.
//! Nothing is written into the run directory: the job never hears of the viewer's choice.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::config::Config;
use crate::data::{DataSource, Dataset, Split};
use crate::nn::Sequential;
use crate::rundir::RunDir;
use crate::train::checkpoint::latest;
use crate::train::{Snapshot, take_snapshot};
use crate::weights;

/// What a viewer chose to look at: a conv layer (index among the conv layers) and a probe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Selection {
    pub layer: usize,
    pub probe: usize,
}

/// The weights file that was read: its path and (modified, length), to notice a newer one.
type Stamp = (PathBuf, SystemTime, u64);

struct Weights {
    stamp: Stamp,
    model: Sequential,
    config: Config,
    step: u64,
    class_names: Vec<String>,
}

/// The probe images: the split the job takes its probes from (validation, else test).
struct Probes {
    split: Split,
    class_names: Vec<String>,
}

/// The run's newest weights and its probe images, loaded when first needed and the weights
/// again whenever a newer file appears.
pub(crate) struct LocalView {
    run_dir: RunDir,
    weights: Option<Weights>,
    probes: Option<Probes>,
    /// Said once: where the probes come from when not from the run's own data.
    pub(crate) note: Option<String>,
}

/// The newest weights of a run directory: `model.safetensors` once the run has finished,
/// else the newest checkpoint.
pub(crate) fn newest_weights(run_dir: &RunDir) -> Option<PathBuf> {
    let last = run_dir.weights();
    if std::fs::symlink_metadata(&last).is_ok_and(|m| m.is_file()) {
        return Some(last);
    }
    latest(run_dir.path())
}

fn stamp_of(path: &Path) -> Option<Stamp> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    Some((path.to_path_buf(), meta.modified().ok()?, meta.len()))
}

impl LocalView {
    pub(crate) fn new(run_dir: &Path) -> LocalView {
        LocalView {
            run_dir: RunDir::new(run_dir),
            weights: None,
            probes: None,
            note: None,
        }
    }

    /// The (path, time, length) of the weights the next snapshot would use, reading them
    /// again when a newer file has appeared. `Err` says why there is nothing to compute from.
    pub(crate) fn refresh(&mut self) -> Result<&Stamp, String> {
        let path = newest_weights(&self.run_dir)
            .ok_or("no weights yet (no model.safetensors and no checkpoint)")?;
        let stamp = stamp_of(&path).ok_or_else(|| format!("cannot read {}", path.display()))?;
        if self.weights.as_ref().map(|w| &w.stamp) != Some(&stamp) {
            let saved = weights::load(&path).map_err(|e| e.to_string())?;
            let step = saved
                .metadata
                .get("step")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let class_names = saved.class_names();
            self.weights = Some(Weights {
                stamp,
                step,
                class_names,
                config: saved.config,
                model: saved.model,
            });
        }
        Ok(&self.weights.as_ref().expect("just read").stamp)
    }

    /// The run's probe images: its own data when it is here, else the bundled digits (when
    /// they fit the model).
    fn probes(&mut self) -> Result<&Probes, String> {
        if self.probes.is_none() {
            let w = self.weights.as_ref().ok_or("no weights read")?;
            let mut source = DataSource::resolve(None, &w.config);
            if let DataSource::Dir(dir) = &source
                && !dir.is_dir()
            {
                self.note = Some(format!(
                    "the run's data ({}) is not on this machine: probes from the bundled MNIST digits",
                    crate::fs::escape(&dir.display().to_string())
                ));
                source = DataSource::Bundled;
            }
            let dataset =
                Dataset::load(&source, &w.config.data, w.config.training.validation_split)
                    .map_err(|e| e.to_string())?;
            if dataset.image_shape != w.model.input_shape() {
                return Err(format!(
                    "the model takes {:?} images and {source} has {:?}: no probe to show",
                    w.model.input_shape(),
                    dataset.image_shape
                ));
            }
            let (split, labels_of) = if dataset.validation.is_empty() {
                (dataset.test, "test")
            } else {
                (dataset.validation, "validation")
            };
            if split.is_empty() {
                return Err(format!("{source} has no {labels_of} images to probe with"));
            }
            self.probes = Some(Probes {
                split,
                class_names: dataset.class_names,
            });
        }
        Ok(self.probes.as_ref().expect("just loaded"))
    }

    /// The chosen layer's filters and the chosen probe's feature maps, from the newest
    /// weights ([`LocalView::refresh`] first).
    pub(crate) fn snapshot(&mut self, sel: Selection) -> Result<Snapshot, String> {
        self.refresh()?;
        self.probes()?;
        let (Some(w), Some(p)) = (self.weights.as_mut(), self.probes.as_ref()) else {
            unreachable!("both loaded above")
        };
        let probe = sel.probe % p.split.len();
        let per = p.split.images.len() / p.split.len();
        let image: Vec<f32> = p.split.images[probe * per..(probe + 1) * per]
            .iter()
            .map(|&v| v as f32 / 255.0)
            .collect();
        // The weights' names unless they are only numbers, then the data's.
        let numbered = w
            .class_names
            .iter()
            .enumerate()
            .all(|(i, n)| *n == i.to_string());
        let names = if numbered && p.class_names.len() == w.class_names.len() {
            &p.class_names
        } else {
            &w.class_names
        };
        take_snapshot(
            &mut w.model,
            sel.layer,
            &image,
            probe,
            p.split.labels[probe],
            names,
            w.step,
        )
        .ok_or_else(|| "the model has no conv layer to show".into())
    }
}
