//! Weights files in safetensors format, readable from Python (`safetensors.numpy.load_file`)
//! and PyTorch. Tensors are named like `conv1.weight`; conv kernels are `[kh, kw, in, out]`
//! and dense weights `[in, out]` (Keras' layout). The header's metadata holds the resolved
//! config, so a file is enough to rebuild its model. Checkpoints add optimizer tensors
//! (`optim.conv1.weight.m`) and training state in the same file.

use std::collections::HashMap;
use std::path::Path;

use ndarray::IxDyn;
use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::config::{Config, Normalize, parse_config};
use crate::data::Normalization;
use crate::error::{Error, Result};
use crate::nn::Sequential;
use crate::nn::tensor::{Tensor, data_mut};

const FORMAT: &str = "cnn-tui-weights";
pub(crate) const FORMAT_VERSION: &str = "1";
/// Names of tensors that are not model parameters start with this.
pub(crate) const OPTIM_PREFIX: &str = "optim.";

/// A weights file read back: the rebuilt model and what else the file held.
pub struct Saved {
    pub(crate) config: Config,
    pub(crate) model: Sequential,
    pub(crate) metadata: HashMap<String, String>,
    /// Tensors beyond the model's parameters (optimizer state), by name.
    pub(crate) extra: HashMap<String, Tensor>,
}

/// The metadata key of the class names (a JSON list of strings).
pub(crate) const CLASS_NAMES: &str = "class_names";

/// The metadata keys of the per-channel input normalisation (JSON lists of numbers), present
/// when `data.normalize` asks for one: `evaluate` and `predict` apply the same.
pub const INPUT_MEAN: &str = "input_mean";
pub const INPUT_STD: &str = "input_std";

fn floats_text(v: &[f32]) -> String {
    serde_json::to_string(v).expect("numbers serialize")
}

/// The normalisation a file's metadata holds, checked against its channels and its config.
fn read_normalization(
    path: &Path,
    metadata: &HashMap<String, String>,
    config: &Config,
    channels: usize,
) -> Result<Normalization> {
    let list = |key: &str| -> Result<Option<Vec<f32>>> {
        let Some(text) = metadata.get(key) else {
            return Ok(None);
        };
        match serde_json::from_str::<Vec<f32>>(text) {
            Ok(v) if v.len() == channels && v.iter().all(|x| x.is_finite()) => Ok(Some(v)),
            _ => Err(Error::weights(
                path,
                format!("metadata {key} is not {channels} finite numbers: {text}"),
            )),
        }
    };
    match (list(INPUT_MEAN)?, list(INPUT_STD)?) {
        (Some(mean), Some(std)) if std.iter().all(|&s| s > 0.0) => Ok(Normalization { mean, std }),
        (None, None) if config.data.normalize == Normalize::None => {
            Ok(Normalization::identity(channels))
        }
        _ => Err(Error::weights(
            path,
            "data.normalize is per_channel but the metadata lacks a valid input_mean and input_std",
        )),
    }
}

/// Class names as stored in metadata.
pub(crate) fn class_names_text(names: &[String]) -> String {
    serde_json::to_string(names).expect("strings serialize")
}

impl Saved {
    /// The class names stored with the weights; the class numbers for a file without them
    /// (or with a list that does not match the model's outputs).
    pub(crate) fn class_names(&self) -> Vec<String> {
        let outputs = self.model.output_size();
        self.metadata
            .get(CLASS_NAMES)
            .and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
            .filter(|names| names.len() <= outputs && !names.is_empty())
            .map(|mut names| {
                names.extend((names.len()..outputs).map(|c| c.to_string()));
                names
            })
            .unwrap_or_else(|| (0..outputs).map(|c| c.to_string()).collect())
    }
}

/// The bytes of a weights file; `path` only names it in error messages.
pub(crate) fn encode(
    path: &Path,
    model: &Sequential,
    config: &Config,
    extra: &[(String, &Tensor)],
    metadata: &[(&str, String)],
) -> Result<Vec<u8>> {
    let params = model.tensors();
    let owned: Vec<(String, Vec<u8>, Vec<usize>)> = params
        .iter()
        .map(|p| (p.name.clone(), &p.value))
        .chain(extra.iter().map(|(n, t)| (n.clone(), *t)))
        .map(|(name, t)| {
            (
                name,
                t.iter().flat_map(|v| v.to_le_bytes()).collect(),
                t.shape().to_vec(),
            )
        })
        .collect();
    let views = owned
        .iter()
        .map(|(name, bytes, shape)| {
            TensorView::new(Dtype::F32, shape.clone(), bytes)
                .map(|v| (name.clone(), v))
                .map_err(|e| Error::weights(path, format!("cannot encode {name}: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let mut meta = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("config".to_string(), config.to_toml()),
        ("input_shape".to_string(), join(&model.input_shape())),
        ("classes".to_string(), model.output_size().to_string()),
    ]);
    let norm = model.normalization();
    if !norm.is_identity() {
        meta.insert(INPUT_MEAN.into(), floats_text(&norm.mean));
        meta.insert(INPUT_STD.into(), floats_text(&norm.std));
    }
    meta.extend(metadata.iter().map(|(k, v)| (k.to_string(), v.clone())));
    safetensors::serialize(views, Some(meta))
        .map_err(|e| Error::weights(path, format!("cannot encode: {e}")))
}

/// Largest weights or checkpoint file read.
pub(crate) const MAX_BYTES: u64 = 16 << 30;

/// The bytes of a weights or checkpoint file: a regular file (no link, FIFO or device) of at
/// most [`MAX_BYTES`].
pub(crate) fn read(path: &Path) -> Result<Vec<u8>> {
    crate::fs::read(path, MAX_BYTES).map_err(|e| Error::io(path, "cannot read", e))
}

fn join(dims: &[usize]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Reads a weights file, rebuilds its model from the embedded config and loads every
/// parameter, checking names, dtypes and shapes.
pub(crate) fn load(path: &Path) -> Result<Saved> {
    from_bytes(path, &read(path)?)
}

/// Refuses a model with NaN or infinite weights (a damaged file, or a run that diverged):
/// whatever it predicted would mean nothing.
pub(crate) fn check_finite(path: &Path, model: &Sequential) -> Result<()> {
    for p in model.tensors() {
        let bad = crate::nn::tensor::data(&p.value)
            .iter()
            .filter(|v| !v.is_finite())
            .count();
        if bad > 0 {
            return Err(Error::weights(
                path,
                format!(
                    "{} holds {bad} NaN or infinite values: these weights are broken (a diverged run?); use an earlier checkpoint",
                    p.name
                ),
            ));
        }
    }
    Ok(())
}

/// Parses the bytes of a weights file; `path` only names it in error messages.
pub fn from_bytes(path: &Path, bytes: &[u8]) -> Result<Saved> {
    let unreadable = |e: safetensors::SafeTensorError| {
        Error::weights(
            path,
            format!("not a readable safetensors file ({e}); truncated or not a weights file?"),
        )
    };
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(unreadable)?;
    let metadata = header.metadata().clone().unwrap_or_default();
    if metadata.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(Error::weights(
            path,
            "safetensors file was not written by cnn-tui (no model config in its metadata)",
        ));
    }
    let version = metadata.get("format_version").map_or("?", String::as_str);
    if version != FORMAT_VERSION {
        return Err(Error::weights(
            path,
            format!("format version {version}; this cnn-tui reads version {FORMAT_VERSION}"),
        ));
    }
    let config_text = metadata
        .get("config")
        .ok_or_else(|| Error::weights(path, "metadata has no config"))?;
    let origin = format!("{} (embedded config)", path.display());
    let config = parse_config(config_text, &origin, &[])?;
    let input_shape = parse_dims(metadata.get("input_shape"))
        .and_then(|d| <[usize; 3]>::try_from(d).ok())
        .ok_or_else(|| {
            Error::weights(path, "metadata input_shape is missing or not three sizes")
        })?;
    let classes = parse_dims(metadata.get("classes"))
        .and_then(|d| d.first().copied())
        .ok_or_else(|| Error::weights(path, "metadata classes is missing"))?;
    let tensors = SafeTensors::deserialize(bytes).map_err(unreadable)?;
    // The file's own tensors bound the model: a config asking for more is refused before
    // anything is allocated for it.
    let values: usize = tensors
        .tensors()
        .iter()
        .filter(|(name, _)| !name.starts_with(OPTIM_PREFIX))
        .map(|(_, t)| t.shape().iter().product::<usize>())
        .sum();
    let mut model = Sequential::build_for_file(
        &config.model,
        input_shape,
        classes,
        config.training.seed,
        values,
    )
    .map_err(|e| e.in_config(&origin))?;
    load_params(&mut model, &tensors, path)?;
    model.set_normalization(read_normalization(
        path,
        &metadata,
        &config,
        input_shape[2],
    )?);
    let params: Vec<String> = model.tensors().iter().map(|p| p.name.clone()).collect();
    let mut extra = HashMap::new();
    for (name, view) in tensors.tensors() {
        if params.contains(&name) {
            continue;
        }
        if !name.starts_with(OPTIM_PREFIX) {
            return Err(Error::weights(
                path,
                format!("has tensor {name}, which this model does not have"),
            ));
        }
        let values = f32s(path, &name, &view)?;
        let t = Tensor::from_shape_vec(IxDyn(view.shape()), values)
            .map_err(|_| Error::weights(path, format!("{name}: data does not match its shape")))?;
        extra.insert(name, t);
    }
    Ok(Saved {
        config,
        model,
        metadata,
        extra,
    })
}

fn parse_dims(text: Option<&String>) -> Option<Vec<usize>> {
    text?
        .split(',')
        .map(|d| d.trim().parse().ok().filter(|&d| d > 0))
        .collect()
}

fn f32s(path: &Path, name: &str, t: &TensorView) -> Result<Vec<f32>> {
    if t.dtype() != Dtype::F32 {
        return Err(Error::weights(
            path,
            format!("{name} has dtype {:?}, expected F32", t.dtype()),
        ));
    }
    Ok(t.data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

/// Copies every parameter of `model` from `tensors`, checking presence, dtype and shape.
fn load_params(model: &mut Sequential, tensors: &SafeTensors, path: &Path) -> Result<()> {
    for p in model.tensors_mut() {
        let t = tensors.tensor(&p.name).map_err(|_| {
            Error::weights(
                path,
                format!("has no tensor {} (a file from another model?)", p.name),
            )
        })?;
        if t.shape() != p.value.shape() {
            return Err(Error::weights(
                path,
                format!(
                    "{} has shape {:?} but the model needs {:?}",
                    p.name,
                    t.shape(),
                    p.value.shape()
                ),
            ));
        }
        let values = f32s(path, &p.name, &t)?;
        data_mut(&mut p.value).copy_from_slice(&values);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn save(
        path: &Path,
        model: &Sequential,
        config: &Config,
        extra: &[(String, &Tensor)],
        metadata: &[(&str, String)],
    ) -> Result<()> {
        let bytes = encode(path, model, config, extra, metadata)?;
        crate::fs::write_atomically(path, &bytes)
    }
    use crate::cli::load_config;

    fn model() -> (Config, Sequential) {
        let config = load_config(None, &[]).unwrap().config;
        let model = Sequential::build(&config.model, [28, 28, 1], 10, 3).unwrap();
        (config, model)
    }

    #[test]
    fn round_trip_keeps_every_value_and_extra_tensor() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let (config, model) = model();
        let extra = Tensor::from_elem(IxDyn(&[2]), 1.5);
        save(
            &path,
            &model,
            &config,
            &[("optim.x".into(), &extra)],
            &[("epoch", "4".into())],
        )
        .unwrap();
        let saved = load(&path).unwrap();
        assert_eq!(saved.config, config);
        for (a, b) in saved.model.params().iter().zip(model.params()) {
            assert_eq!(a.value, b.value, "{}", a.name);
        }
        assert_eq!(saved.extra["optim.x"], extra);
        assert_eq!(saved.metadata["epoch"], "4");
    }

    #[test]
    fn truncated_and_foreign_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let (config, model) = model();
        save(&path, &model, &config, &[], &[]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        let e = load(&path).err().unwrap().to_string();
        assert!(e.contains("not a readable safetensors file"), "{e}");
        // A file from another model: the shipped seed-conv config with these weights' names.
        let other = load_config(Some(Path::new("configs/seed-conv.toml")), &[])
            .unwrap()
            .config;
        let other_model = Sequential::build(&other.model, [28, 28, 1], 10, 3).unwrap();
        save(&path, &other_model, &config, &[], &[]).unwrap();
        let e = load(&path).err().unwrap().to_string();
        assert!(
            e.contains("has shape") || e.contains("has no tensor"),
            "{e}"
        );
    }

    #[test]
    fn an_embedded_config_is_checked_against_the_file_and_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let small = load_config(Some(Path::new("configs/seed-logistic.toml")), &[])
            .unwrap()
            .config;
        let model = Sequential::build(&small.model, [28, 28, 1], 10, 3).unwrap();
        // The file holds 7,850 values; its config claims a layer of 78 million.
        let mut big = small.clone();
        big.model.layers.insert(
            1,
            crate::config::LayerSpec::Dense {
                units: 100_000,
                activation: None,
                init: crate::config::Init::GlorotUniform,
            },
        );
        save(&path, &model, &big, &[], &[]).unwrap();
        let e = load(&path).err().unwrap().to_string();
        assert_eq!(
            e,
            format!(
                "{} (embedded config): model.layers[1]: the model's parameters would be at least 78500000 values, but the weights file holds 7850 (a config that does not match its tensors)",
                path.display()
            )
        );
        // A bad value in the embedded config names the file too.
        let mut bad = small.clone();
        bad.training.epochs = 0;
        let text = bad.to_toml();
        let e = crate::config::parse_config(&text, "w.safetensors (embedded config)", &[])
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "w.safetensors (embedded config): training.epochs: must be at least 1"
        );
    }

    #[test]
    fn non_finite_weights_are_refused() {
        let (_, mut model) = model();
        let path = Path::new("w.safetensors");
        assert!(check_finite(path, &model).is_ok());
        crate::nn::tensor::data_mut(&mut model.params_mut()[0].value)[3] = f32::NAN;
        let e = check_finite(path, &model).unwrap_err().to_string();
        assert!(
            e.starts_with("w.safetensors: conv1.weight holds 1 NaN or infinite values"),
            "{e}"
        );
    }
}
