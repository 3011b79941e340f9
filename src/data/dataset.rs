//! Datasets: four MNIST-layout IDX files, CIFAR-10 binary batches or a folder of pictures in a
//! directory, or the MNIST subset bundled in the binary.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::idx::{IdxArray, parse_idx, read_idx_file};
use super::{cifar_binary, folder, pictures};
use crate::config::DataConfig;
use crate::error::{Error, Result};

/// The four standard MNIST file stems (Fashion-MNIST uses the same names).
const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// The first 10,000 training images and all 10,000 test images of the official MNIST.
const BUNDLED: [(&str, &[u8]); 4] = [
    (
        TRAIN_IMAGES,
        include_bytes!("../../assets/train-images-idx3-ubyte.gz"),
    ),
    (
        TRAIN_LABELS,
        include_bytes!("../../assets/train-labels-idx1-ubyte.gz"),
    ),
    (
        TEST_IMAGES,
        include_bytes!("../../assets/t10k-images-idx3-ubyte.gz"),
    ),
    (
        TEST_LABELS,
        include_bytes!("../../assets/t10k-labels-idx1-ubyte.gz"),
    ),
];

/// Where a dataset comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataSource {
    /// The MNIST subset compiled into the binary.
    Bundled,
    /// A directory holding IDX files, CIFAR-10 binary batches or class folders of pictures.
    Dir(PathBuf),
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSource::Bundled => write!(f, "bundled MNIST subset (10k train, 10k test)"),
            DataSource::Dir(d) => write!(f, "{}", d.display()),
        }
    }
}

impl DataSource {
    /// `--data` wins over the config's `data.dir`; neither means the bundled subset.
    pub(crate) fn resolve(flag: Option<&PathBuf>, config: &crate::config::Config) -> DataSource {
        match flag.or(config.data.dir.as_ref()) {
            Some(dir) => DataSource::Dir(dir.clone()),
            None => DataSource::Bundled,
        }
    }
}

/// Images kept as bytes (scaled to [0,1] only when a batch is made) with their labels.
#[derive(Debug, Clone, Default)]
pub struct Split {
    /// `len * height * width * channels` bytes, sample-major, channels last.
    pub images: Vec<u8>,
    pub labels: Vec<u8>,
}

impl Split {
    pub(crate) fn len(&self) -> usize {
        self.labels.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// `n` images of `pixels` pseudo-random bytes (xorshift) with labels 0–9, for tests.
    #[cfg(test)]
    pub(crate) fn random(n: usize, pixels: usize) -> Split {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        Split {
            images: (0..n * pixels).map(|_| next() as u8).collect(),
            labels: (0..n).map(|_| (next() % 10) as u8).collect(),
        }
    }

    /// Splits off the last `count` samples (Keras' `validation_split` takes the tail).
    pub fn split_off_tail(&mut self, count: usize) -> Split {
        let keep = self.len() - count;
        let per = self.images.len() / self.len().max(1);
        Split {
            images: self.images.split_off(keep * per),
            labels: self.labels.split_off(keep),
        }
    }
}

/// A full dataset: training, validation (possibly empty) and test splits of equal image shape.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Per-sample image shape `[height, width, channels]`.
    pub(crate) image_shape: [usize; 3],
    pub(crate) classes: usize,
    /// One name per class: folder names, CIFAR-10's meta file, or "0".."9" for IDX data.
    pub(crate) class_names: Vec<String>,
    pub train: Split,
    pub validation: Split,
    pub(crate) test: Split,
    pub(crate) report: LoadReport,
}

/// What loading met, for `cnn-tui data`.
#[derive(Debug, Clone, Default)]
pub struct LoadReport {
    /// Which layout the directory has.
    pub(crate) format: String,
    pub(crate) seconds: f64,
    /// Where the decoded pixels came from, when a cache was used.
    pub(crate) cache: Option<PathBuf>,
    /// Files that are not pictures.
    pub(crate) skipped: usize,
    /// Pictures that failed to decode and were left out.
    pub(crate) bad: Vec<PathBuf>,
}

/// The layouts a data directory can have, for the error when it has none.
const LAYOUTS: &str = "the four MNIST IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]); CIFAR-10 binary batches (data_batch_1.bin ... data_batch_5.bin, test_batch.bin, batches.meta.txt); train/<class>/ and test/<class>/ folders of PNG or JPEG pictures (optionally val/<class>/); or <class>/ folders alone (data.test_split holds out the test set)";

/// What one format's reader gives.
struct Loaded {
    shape: [usize; 3],
    class_names: Vec<String>,
    train: Split,
    validation: Option<Split>,
    test: Split,
    report: LoadReport,
}

impl Dataset {
    /// Loads the dataset. Unless the data has its own validation set, the validation set is
    /// the tail `validation_split` of the training set (folders of pictures store it in a
    /// seeded shuffled order, so the tail mixes classes).
    pub fn load(source: &DataSource, data: &DataConfig, validation_split: f64) -> Result<Dataset> {
        if !(0.0..1.0).contains(&validation_split) {
            return Err(Error::config(
                "training.validation_split",
                format!("must be in [0, 1), got {validation_split}"),
            ));
        }
        let start = Instant::now();
        let mut loaded = match source {
            DataSource::Bundled => {
                only_for_pictures(data, "the bundled MNIST subset")?;
                load_idx(source)?
            }
            DataSource::Dir(dir) => {
                check_data_dir(dir)?;
                if [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]
                    .iter()
                    .any(|stem| dir.join(stem).exists() || dir.join(format!("{stem}.gz")).exists())
                {
                    only_for_pictures(data, "IDX files")?;
                    load_idx(source)?
                } else if cifar_binary::is_cifar_binary(dir) {
                    only_for_pictures(data, "CIFAR-10 binary batches")?;
                    let (class_names, train, test) = cifar_binary::load(dir)?;
                    Loaded {
                        shape: cifar_binary::SHAPE,
                        class_names,
                        train,
                        validation: None,
                        test,
                        report: LoadReport {
                            format: "CIFAR-10 binary batches".into(),
                            ..LoadReport::default()
                        },
                    }
                } else if folder::looks_like_folders(dir) {
                    let p = pictures::load(dir, data)?;
                    Loaded {
                        shape: p.shape,
                        class_names: p.classes,
                        train: p.train,
                        validation: p.validation,
                        test: p.test,
                        report: LoadReport {
                            format: "folders of pictures".into(),
                            cache: p.cached,
                            skipped: p.skipped,
                            bad: p.bad,
                            ..LoadReport::default()
                        },
                    }
                } else {
                    return Err(Error::data(
                        dir,
                        format!("no data in a layout cnn-tui reads; it reads {LAYOUTS}"),
                    ));
                }
            }
        };
        let validation = match loaded.validation.take() {
            Some(v) => v,
            None => {
                let val_count = (loaded.train.len() as f64 * validation_split).round() as usize;
                if val_count >= loaded.train.len() {
                    return Err(Error::config(
                        "training.validation_split",
                        format!("{validation_split} leaves no training data"),
                    ));
                }
                loaded.train.split_off_tail(val_count)
            }
        };
        loaded.report.seconds = start.elapsed().as_secs_f64();
        Ok(Dataset {
            image_shape: loaded.shape,
            classes: loaded.class_names.len(),
            class_names: loaded.class_names,
            train: loaded.train,
            validation,
            test: loaded.test,
            report: loaded.report,
        })
    }
}

/// `data.image_size`, `data.channels` and `data.test_split` apply to folders of pictures only.
fn only_for_pictures(data: &DataConfig, what: &str) -> Result<()> {
    let set = [
        ("data.image_size", data.image_size.is_some()),
        ("data.channels", data.channels.is_some()),
        ("data.test_split", data.test_split.is_some()),
    ];
    match set.iter().find(|(_, on)| *on) {
        Some((key, _)) => Err(Error::config(
            *key,
            format!("applies to folders of pictures; the data here is {what}"),
        )),
        None => Ok(()),
    }
}

/// The four IDX files, from a directory or the bundled subset. Class names are the label
/// numbers.
fn load_idx(source: &DataSource) -> Result<Loaded> {
    let files: Vec<(PathBuf, IdxArray)> = match source {
        DataSource::Bundled => BUNDLED
            .iter()
            .map(|(stem, bytes)| {
                let path = PathBuf::from(format!("<bundled>/{stem}.gz"));
                parse_idx(&path, bytes).map(|a| (path, a))
            })
            .collect::<Result<_>>()?,
        DataSource::Dir(dir) => [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS]
            .iter()
            .map(|stem| {
                let path = find_file(dir, stem)?;
                read_idx_file(&path).map(|a| (path, a))
            })
            .collect::<Result<_>>()?,
    };
    let mut files = files.into_iter();
    let mut next = || files.next().expect("four files");
    let (train_img_path, train_img) = next();
    let (train_lbl_path, train_lbl) = next();
    let (test_img_path, test_img) = next();
    let (test_lbl_path, test_lbl) = next();

    let image_shape = image_shape_of(&train_img_path, &train_img)?;
    let test_shape = image_shape_of(&test_img_path, &test_img)?;
    if test_shape != image_shape {
        return Err(Error::data(
            &test_img_path,
            format!(
                "test images are {test_shape:?} but training images are {image_shape:?} (height, width, channels)"
            ),
        ));
    }
    let train = pair(&train_img_path, train_img, &train_lbl_path, train_lbl)?;
    let test = pair(&test_img_path, test_img, &test_lbl_path, test_lbl)?;
    let max_label = train
        .labels
        .iter()
        .chain(&test.labels)
        .copied()
        .max()
        .unwrap_or(0);
    let classes = (max_label as usize + 1).max(2);
    Ok(Loaded {
        shape: image_shape,
        class_names: (0..classes).map(|c| c.to_string()).collect(),
        train,
        validation: None,
        test,
        report: LoadReport {
            format: "MNIST IDX files".into(),
            ..LoadReport::default()
        },
    })
}

/// The data directory exists, is a directory and can be listed; otherwise says which not.
fn check_data_dir(dir: &Path) -> Result<()> {
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(Error::data(dir, "data directory not found"))
        }
        Err(e) => Err(Error::data(
            dir,
            format!("cannot read the data directory: {e}"),
        )),
        Ok(m) if !m.is_dir() => Err(Error::data(
            dir,
            "is a file, not a directory: give the directory holding the four IDX files",
        )),
        Ok(_) => std::fs::read_dir(dir)
            .map(drop)
            .map_err(|e| Error::data(dir, format!("cannot read the data directory: {e}"))),
    }
}

/// `<stem>.gz` or `<stem>` in `dir`: a regular file (a link to one is fine). A directory or a
/// FIFO in its place is named as such, not reported missing or read.
fn find_file(dir: &Path, stem: &str) -> Result<PathBuf> {
    let gz = dir.join(format!("{stem}.gz"));
    let raw = dir.join(stem);
    for path in [&gz, &raw] {
        match std::fs::metadata(path) {
            Ok(m) if m.is_file() => return Ok(path.clone()),
            Ok(m) if m.is_dir() => {
                return Err(Error::data(path, "is a directory, not an IDX data file"));
            }
            Ok(_) => {
                return Err(Error::data(
                    path,
                    "is not a regular file (a FIFO or a device?): give an IDX data file",
                ));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::data(path, format!("cannot read: {e}"))),
        }
    }
    Err(Error::data(
        &gz,
        "missing data file (looked for it with and without .gz)",
    ))
}

fn image_shape_of(path: &Path, arr: &IdxArray) -> Result<[usize; 3]> {
    match arr.dims.as_slice() {
        [_, h, w] => Ok([*h, *w, 1]),
        [_, h, w, c] => Ok([*h, *w, *c]),
        dims => Err(Error::data(
            path,
            format!("expected images (3 or 4 dimensions), found dimensions {dims:?}"),
        )),
    }
}

fn pair(img_path: &Path, images: IdxArray, lbl_path: &Path, labels: IdxArray) -> Result<Split> {
    if labels.dims.len() != 1 {
        return Err(Error::data(
            lbl_path,
            format!(
                "expected labels (1 dimension), found dimensions {:?}",
                labels.dims
            ),
        ));
    }
    if images.dims[0] != labels.dims[0] {
        return Err(Error::data(
            lbl_path,
            format!(
                "has {} labels but {} has {} images",
                labels.dims[0],
                img_path.display(),
                images.dims[0]
            ),
        ));
    }
    if let Some(bad) = labels.data.iter().find(|&&l| l > 200) {
        return Err(Error::data(
            lbl_path,
            format!("label {bad} is not a class index"),
        ));
    }
    Ok(Split {
        images: images.data,
        labels: labels.data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_subset_is_real_mnist() {
        let d = Dataset::load(&DataSource::Bundled, &DataConfig::default(), 0.1).unwrap();
        assert_eq!(d.image_shape, [28, 28, 1]);
        assert_eq!(d.classes, 10);
        assert_eq!(d.class_names[3], "3");
        assert_eq!(d.train.len(), 9000);
        assert_eq!(d.validation.len(), 1000);
        assert_eq!(d.test.len(), 10000);
        // The first MNIST training label is 5 and the first test label is 7.
        assert_eq!(d.train.labels[0], 5);
        assert_eq!(d.test.labels[0], 7);
    }

    #[test]
    fn missing_directory_and_files_are_named() {
        let none = DataConfig::default();
        let e = Dataset::load(&DataSource::Dir("/no/such/dir".into()), &none, 0.0).unwrap_err();
        assert_eq!(e.to_string(), "/no/such/dir: data directory not found");
        let tmp = tempfile::tempdir().unwrap();
        let e = Dataset::load(&DataSource::Dir(tmp.path().into()), &none, 0.0).unwrap_err();
        assert!(
            e.to_string().contains("no data in a layout cnn-tui reads"),
            "{e}"
        );
        std::fs::write(tmp.path().join("t10k-labels-idx1-ubyte"), b"").unwrap();
        let e = Dataset::load(&DataSource::Dir(tmp.path().into()), &none, 0.0).unwrap_err();
        assert!(
            e.to_string()
                .contains("train-images-idx3-ubyte.gz: missing data file")
        );
        // A directory where a data file should be, and a file given as the data directory.
        let images = tmp.path().join("train-images-idx3-ubyte.gz");
        std::fs::create_dir(&images).unwrap();
        let e = Dataset::load(&DataSource::Dir(tmp.path().into()), &none, 0.0).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("{}: is a directory, not an IDX data file", images.display())
        );
        let file = tmp.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let e = Dataset::load(&DataSource::Dir(file.clone()), &none, 0.0).unwrap_err();
        assert!(
            e.to_string().ends_with(
                "is a file, not a directory: give the directory holding the four IDX files"
            ),
            "{e}"
        );
    }
}
