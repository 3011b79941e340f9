//! A folder of pictures as a dataset: list it, then read the decoded cache or decode (and
//! write the cache), saying on stderr what was found and what each phase took.

use std::path::{Path, PathBuf};

use super::Split;
use super::cache::{self, Cached};
use super::decode::{self, Target};
use super::folder;
use super::progress::{phase, say};
use crate::config::DataConfig;
use crate::error::{Error, Result};

/// A decoded folder: its classes, its splits and what loading met.
pub(crate) struct Pictures {
    pub(crate) classes: Vec<String>,
    pub(crate) shape: [usize; 3],
    pub(crate) train: Split,
    /// From the folder's own `val/`, when it has one.
    pub(crate) validation: Option<Split>,
    pub(crate) test: Split,
    pub(crate) skipped: usize,
    pub(crate) bad: Vec<PathBuf>,
    /// Where the pixels came from when the decoded cache was used.
    pub(crate) cached: Option<PathBuf>,
}

pub(crate) fn load(dir: &Path, data: &DataConfig) -> Result<Pictures> {
    let listing = folder::list(dir, data.test_split)?;
    say(&format!(
        "found {} files belonging to {} classes in {} ({}): {} train{}, {} test",
        listing.len(),
        listing.classes.len(),
        dir.display(),
        listing.layout,
        listing.train.len(),
        listing
            .validation
            .as_ref()
            .map_or(String::new(), |v| format!(", {} validation", v.len())),
        listing.test.len()
    ));
    if listing.skipped > 0 {
        say(&format!(
            "skipped {} file{} that {} not PNG or JPEG pictures",
            listing.skipped,
            if listing.skipped == 1 { "" } else { "s" },
            if listing.skipped == 1 { "is" } else { "are" }
        ));
    }
    let target = Target {
        size: data.image_size,
        channels: data.channels,
        skip_bad: data.skip_bad_images,
    };
    let key = cache::key(&listing, &target);
    let places = cache::places(dir, &target);
    let lists = cache::lists(&listing);
    let (decoded, cached) = match cache::read(&places, &key) {
        Ok(Some((c, path))) => {
            say(&format!(
                "read the decoded pictures from {}",
                path.display()
            ));
            (c, Some(path))
        }
        found => {
            if let Err(why) = found {
                say(&format!("decoded cache not used: {why}"));
            }
            let d = phase("decoding", listing.len(), |p| {
                decode::decode(&lists, target, p)
            })?;
            let c = Cached {
                splits: d.splits,
                shape: d.shape,
                bad: d.bad,
            };
            match cache::write(&places, &key, &c) {
                Ok(path) => say(&format!("wrote the decoded cache {}", path.display())),
                Err(why) => say(&format!("could not write a decoded cache: {why}")),
            }
            (c, None)
        }
    };
    if let Some(w) = decode::bad_warning(&decoded.bad) {
        eprintln!("{w}");
    }
    let Cached {
        mut splits,
        shape,
        bad,
    } = decoded;
    let test = splits.pop().expect("a test split");
    let validation = (splits.len() == 2).then(|| splits.pop().expect("validation"));
    let train = splits.pop().expect("a train split");
    for (split, name) in [(&train, "train"), (&test, "test")] {
        if split.is_empty() {
            return Err(Error::data(
                dir,
                format!("no {name} pictures are left after leaving out those that fail to decode"),
            ));
        }
    }
    Ok(Pictures {
        classes: listing.classes,
        shape,
        train,
        validation,
        test,
        skipped: listing.skipped,
        bad,
        cached,
    })
}
