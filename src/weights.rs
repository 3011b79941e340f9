//! Weights files in safetensors format, readable from Python (`safetensors.numpy.load_file`)
//! and PyTorch. Tensors are named like `conv1.weight`; conv kernels are `[kh, kw, in, out]`
//! and dense weights `[in, out]` (Keras' layout). The header's metadata holds the resolved
//! config, so a file is enough to rebuild its model.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::config::{Config, parse_config};
use crate::error::{Error, Result};
use crate::nn::Sequential;
use crate::nn::tensor::{Tensor, data_mut};

const FORMAT: &str = "cnn-tui-weights";
const FORMAT_VERSION: &str = "1";

/// Where in training a weights file was written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WeightsInfo {
    pub epoch: usize,
    pub step: u64,
    pub lr: f64,
}

/// Writes the model's parameters (and `extra` named tensors, e.g. optimizer state) atomically:
/// a temporary file in the same directory, fsync, rename, fsync of the directory.
pub fn save(
    path: &Path,
    model: &Sequential,
    config: &Config,
    info: &WeightsInfo,
    extra: &[(String, &Tensor)],
) -> Result<()> {
    let params = model.params();
    let owned: Vec<(String, Vec<u8>, Vec<usize>)> = params
        .iter()
        .map(|p| (p.name.clone(), &p.value))
        .chain(extra.iter().map(|(n, t)| (n.clone(), *t)))
        .map(|(name, t)| {
            let bytes = t.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, bytes, t.shape().to_vec())
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
    let metadata = HashMap::from([
        ("format".to_string(), FORMAT.to_string()),
        ("format_version".to_string(), FORMAT_VERSION.to_string()),
        ("config".to_string(), config.to_toml()),
        ("epoch".to_string(), info.epoch.to_string()),
        ("step".to_string(), info.step.to_string()),
        ("lr".to_string(), info.lr.to_string()),
        ("input_shape".to_string(), join(&model.input_shape())),
        ("classes".to_string(), model.output_size().to_string()),
    ]);
    let bytes = safetensors::serialize(views, Some(metadata))
        .map_err(|e| Error::weights(path, format!("cannot encode: {e}")))?;
    write_atomically(path, &bytes)
}

fn join(dims: &[usize]) -> String {
    dims.iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// Replaces `path` with `bytes` so that a crash at any moment leaves the old or the new file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp: PathBuf = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, "cannot write", e)
    })
}

/// Reads a weights file, rebuilds its model from the embedded config and loads every
/// parameter, checking names, dtypes and shapes.
pub fn load(path: &Path) -> Result<(Config, Sequential, WeightsInfo)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, "cannot read", e))?;
    let (_, header) = SafeTensors::read_metadata(&bytes)
        .map_err(|e| Error::weights(path, format!("not a readable safetensors file ({e})")))?;
    let meta = header.metadata().clone().unwrap_or_default();
    if meta.get("format").map(String::as_str) != Some(FORMAT) {
        return Err(Error::weights(
            path,
            "safetensors file was not written by cnn-tui (no model config in its metadata)",
        ));
    }
    let config_text = meta
        .get("config")
        .ok_or_else(|| Error::weights(path, "metadata has no config"))?;
    let config = parse_config(
        config_text,
        &format!("{} (embedded config)", path.display()),
        &[],
    )?;
    let get = |k: &str| {
        meta.get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let info = WeightsInfo {
        epoch: get("epoch") as usize,
        step: get("step") as u64,
        lr: get("lr"),
    };
    let input_shape = parse_dims(meta.get("input_shape"))
        .and_then(|d| <[usize; 3]>::try_from(d).ok())
        .ok_or_else(|| {
            Error::weights(path, "metadata input_shape is missing or not three sizes")
        })?;
    let classes = parse_dims(meta.get("classes"))
        .and_then(|d| d.first().copied())
        .ok_or_else(|| Error::weights(path, "metadata classes is missing"))?;
    let tensors = SafeTensors::deserialize(&bytes)
        .map_err(|e| Error::weights(path, format!("not a readable safetensors file ({e})")))?;
    let mut model = Sequential::build(&config.model, input_shape, classes, config.training.seed)?;
    load_params(&mut model, &tensors, path)?;
    Ok((config, model, info))
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
pub fn load_params(model: &mut Sequential, tensors: &SafeTensors, path: &Path) -> Result<()> {
    for p in model.params_mut() {
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
