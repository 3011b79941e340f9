//! Folders of pictures, one sub-folder per class, in the two layouts that Keras'
//! `image_dataset_from_directory` and torchvision's `ImageFolder` read:
//! `DIR/train/<class>/*` + `DIR/test/<class>/*` (+ optional `DIR/val/<class>/*`), or
//! `DIR/<class>/*` alone with a seeded, per-class test split.
//!
//! This module only lists files (names, sizes, modification times) and decides which split
//! each belongs to; `decode` turns them into pixels.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};

/// The test fraction of a class-folders-only layout when `data.test_split` is absent.
pub(crate) const DEFAULT_TEST_SPLIT: f64 = 0.2;
/// The seed of the test split and of the training order: fixed, so that every run of the
/// same folder tests on the same files and runs compare.
const SPLIT_SEED: u64 = 0x5EED_DA7A;
/// Labels are bytes.
const MAX_CLASSES: usize = 256;
/// Names accepted for the optional validation folder.
const VAL_NAMES: [&str; 2] = ["val", "validation"];

/// One picture: where it is, its class, and what the decoded cache is keyed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) path: PathBuf,
    pub(crate) label: u8,
    pub(crate) size: u64,
    pub(crate) mtime_ns: u128,
}

/// The files of a folder dataset, split, in the order their pixels are stored.
#[derive(Debug, Clone, Default)]
pub(crate) struct Listing {
    pub(crate) classes: Vec<String>,
    /// In a seeded shuffled order, so that a validation split taken from the tail mixes classes.
    pub(crate) train: Vec<Entry>,
    /// `Some` when the folder has its own validation set (`val/`).
    pub(crate) validation: Option<Vec<Entry>>,
    pub(crate) test: Vec<Entry>,
    /// Files and folders that are not PNG or JPEG pictures (README.txt, .DS_Store, ...).
    pub(crate) skipped: usize,
    /// Which layout was found, for messages.
    pub(crate) layout: &'static str,
}

impl Listing {
    pub(crate) fn len(&self) -> usize {
        self.train.len() + self.validation.as_ref().map_or(0, Vec::len) + self.test.len()
    }
}

/// True when `dir` looks like a folder of class folders in either layout: it has at least one
/// visible sub-folder.
pub(crate) fn looks_like_folders(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .flatten()
            .any(|e| !is_hidden(&e.file_name().to_string_lossy()) && e.path().is_dir())
    })
}

/// Lists `dir` in whichever layout it has. `test_split` applies to the class-folders-only
/// layout and is an error with `test/`.
pub(crate) fn list(dir: &Path, test_split: Option<f64>) -> Result<Listing> {
    let train_dir = dir.join("train");
    if train_dir.is_dir() {
        let test_dir = dir.join("test");
        if !test_dir.is_dir() {
            return Err(Error::data(
                dir,
                "has train/ but no test/ folder (put the test pictures in test/<class>/, or all pictures in <class>/ folders with data.test_split)",
            ));
        }
        if test_split.is_some() {
            return Err(Error::config(
                "data.test_split",
                format!(
                    "{} has its own test/ folder; data.test_split applies only to a folder of class folders",
                    dir.display()
                ),
            ));
        }
        let mut skipped = 0;
        let (classes, mut train) = class_folders(&train_dir, None, &mut skipped)?;
        let validation = VAL_NAMES
            .iter()
            .map(|n| dir.join(n))
            .find(|p| p.is_dir())
            .map(|val_dir| class_folders(&val_dir, Some(&classes), &mut skipped).map(|c| c.1))
            .transpose()?;
        let (_, test) = class_folders(&test_dir, Some(&classes), &mut skipped)?;
        train.shuffle(&mut ChaCha8Rng::seed_from_u64(SPLIT_SEED));
        return Ok(Listing {
            classes,
            train,
            validation,
            test,
            skipped,
            layout: "train/<class>/ and test/<class>/",
        });
    }
    let mut skipped = 0;
    let (classes, all) = class_folders(dir, None, &mut skipped)?;
    let fraction = test_split.unwrap_or(DEFAULT_TEST_SPLIT);
    let mut rng = ChaCha8Rng::seed_from_u64(SPLIT_SEED);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for label in 0..classes.len() {
        let mut members: Vec<Entry> = all
            .iter()
            .filter(|e| e.label as usize == label)
            .cloned()
            .collect();
        members.shuffle(&mut rng);
        let held = ((members.len() as f64 * fraction).round() as usize).min(members.len() - 1);
        let mut rest = members.split_off(held);
        members.sort_by(|a, b| a.path.cmp(&b.path));
        test.extend(members);
        train.append(&mut rest);
    }
    if test.is_empty() {
        return Err(Error::config(
            "data.test_split",
            format!(
                "{fraction} of each class's pictures rounds to none ({} pictures in all); raise it or add pictures",
                all.len()
            ),
        ));
    }
    train.shuffle(&mut rng);
    Ok(Listing {
        classes,
        train,
        validation: None,
        test,
        skipped,
        layout: "<class>/ folders",
    })
}

/// The class folders of `dir` (sorted by name) and their pictures. With `known`, every
/// folder must be one of those classes (a test class the training set lacks is an error).
fn class_folders(
    dir: &Path,
    known: Option<&[String]>,
    skipped: &mut usize,
) -> Result<(Vec<String>, Vec<Entry>)> {
    let mut folders = Vec::new();
    for item in read_dir(dir)? {
        let (path, name) = item;
        if is_hidden(&name) {
            // Our own cache folder is not the user's file to count.
            if name != super::cache::FOLDER {
                *skipped += 1;
            }
        } else if path.is_dir() {
            folders.push((name, path));
        } else {
            *skipped += 1;
        }
    }
    folders.sort();
    if folders.is_empty() {
        return Err(Error::data(dir, "has no class folders"));
    }
    let classes: Vec<String> = match known {
        Some(k) => k.to_vec(),
        None => folders.iter().map(|(n, _)| n.clone()).collect(),
    };
    if classes.len() > MAX_CLASSES {
        return Err(Error::data(
            dir,
            format!(
                "has {} class folders; cnn-tui handles at most {MAX_CLASSES} classes",
                classes.len()
            ),
        ));
    }
    let mut entries = Vec::new();
    for (name, path) in &folders {
        let Some(label) = classes.iter().position(|c| c == name) else {
            return Err(Error::data(
                path,
                format!(
                    "class {name:?} is not among the training classes ({})",
                    classes.join(", ")
                ),
            ));
        };
        let before = entries.len();
        let mut files = read_dir(path)?;
        files.sort();
        for (file, file_name) in files {
            let meta = std::fs::metadata(&file).ok();
            match meta {
                Some(m) if m.is_file() && !is_hidden(&file_name) && is_picture_name(&file_name) => {
                    let mtime_ns = m
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_nanos());
                    entries.push(Entry {
                        path: file,
                        label: label as u8,
                        size: m.len(),
                        mtime_ns,
                    });
                }
                _ => *skipped += 1,
            }
        }
        if entries.len() == before {
            return Err(Error::data(
                path,
                "class folder has no PNG or JPEG pictures",
            ));
        }
    }
    Ok((classes, entries))
}

/// The entries of a folder as (path, name), names made valid UTF-8.
fn read_dir(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, "cannot list folder", e))?;
    let mut out = Vec::new();
    for e in entries {
        let e = e.map_err(|e| Error::io(dir, "cannot list folder", e))?;
        out.push((e.path(), e.file_name().to_string_lossy().into_owned()));
    }
    Ok(out)
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// PNG and JPEG by extension (case-insensitive); the content decides the decoder.
fn is_picture_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".png", ".jpg", ".jpeg"].iter().any(|x| lower.ends_with(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    #[test]
    fn class_folders_sort_and_split_per_class_the_same_way_every_time() {
        let tmp = tempfile::tempdir().unwrap();
        for class in ["zebra", "äpfel", "a cat"] {
            for i in 0..10 {
                touch(&tmp.path().join(class).join(format!("{i}.png")));
            }
        }
        touch(&tmp.path().join("README.txt"));
        touch(&tmp.path().join("a cat/.DS_Store"));
        touch(&tmp.path().join("zebra/Thumbs.db"));
        let l = list(tmp.path(), Some(0.3)).unwrap();
        assert_eq!(l.classes, ["a cat", "zebra", "äpfel"]);
        assert_eq!(l.skipped, 3);
        assert_eq!((l.train.len(), l.test.len()), (21, 9));
        for c in 0..3u8 {
            assert_eq!(l.test.iter().filter(|e| e.label == c).count(), 3);
        }
        let again = list(tmp.path(), Some(0.3)).unwrap();
        assert_eq!(l.test, again.test);
        assert_eq!(l.train, again.train);
        // The training order mixes classes (the validation tail is not one class).
        let tail: std::collections::HashSet<u8> = l.train[15..].iter().map(|e| e.label).collect();
        assert!(tail.len() > 1);
    }

    #[test]
    fn split_layout_errors_name_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        touch(&tmp.path().join("train/cat/1.png"));
        touch(&tmp.path().join("train/dog/1.png"));
        let e = list(tmp.path(), None).unwrap_err().to_string();
        assert!(e.contains("has train/ but no test/"), "{e}");
        touch(&tmp.path().join("test/cow/1.png"));
        let e = list(tmp.path(), None).unwrap_err().to_string();
        assert!(
            e.contains("test/cow: class \"cow\" is not among the training classes (cat, dog)"),
            "{e}"
        );
        std::fs::create_dir_all(tmp.path().join("train/empty")).unwrap();
        let e = list(tmp.path(), None).unwrap_err().to_string();
        assert!(
            e.contains("train/empty: class folder has no PNG or JPEG pictures"),
            "{e}"
        );
    }
}
