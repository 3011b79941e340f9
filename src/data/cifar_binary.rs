//! The CIFAR-10 binary format: `data_batch_1.bin` ... `data_batch_5.bin` and `test_batch.bin`,
//! each a run of 3073-byte records (a label byte, then 1024 red, 1024 green and 1024 blue bytes
//! of a 32x32 picture, row by row), with the class names one per line in `batches.meta.txt`.

use std::path::Path;

use super::Split;
use crate::error::{Error, Result};

const SIDE: usize = 32;
const PLANE: usize = SIDE * SIDE;
const RECORD: usize = 1 + 3 * PLANE;
/// The official files hold 10,000 records (30.7 MB); refuse anything far larger.
const MAX_FILE_BYTES: u64 = 64 * RECORD as u64 * 1000;
pub(crate) const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub(crate) const TEST_FILE: &str = "test_batch.bin";
pub(crate) const META_FILE: &str = "batches.meta.txt";

/// The image shape of every CIFAR-10 picture.
pub(crate) const SHAPE: [usize; 3] = [SIDE, SIDE, 3];

/// True when `dir` holds the first training batch.
pub(crate) fn is_cifar_binary(dir: &Path) -> bool {
    dir.join(TRAIN_FILES[0]).is_file()
}

/// Reads the class names, the training batches and the test batch, channels last.
pub(crate) fn load(dir: &Path) -> Result<(Vec<String>, Split, Split)> {
    let meta_path = dir.join(META_FILE);
    let meta = read_capped(&meta_path, 1 << 20)?;
    let classes: Vec<String> = String::from_utf8_lossy(&meta)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect();
    if classes.len() < 2 || classes.len() > 256 {
        return Err(Error::data(
            &meta_path,
            format!(
                "expected one class name per line (2 to 256), found {}",
                classes.len()
            ),
        ));
    }
    let mut train = Split::default();
    for name in TRAIN_FILES {
        read_batch(&dir.join(name), classes.len(), &mut train)?;
    }
    let mut test = Split::default();
    read_batch(&dir.join(TEST_FILE), classes.len(), &mut test)?;
    Ok((classes, train, test))
}

fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            Error::data(path, "file not found (CIFAR-10 binary format)")
        }
        _ => Error::io(path, "cannot read", e),
    })?;
    if !meta.is_file() {
        return Err(Error::data(path, "not a regular file"));
    }
    if meta.len() > cap {
        return Err(Error::data(
            path,
            format!(
                "is {} bytes; the most cnn-tui reads here is {cap}",
                meta.len()
            ),
        ));
    }
    std::fs::read(path).map_err(|e| Error::io(path, "cannot read", e))
}

/// Appends the records of one batch file to `split`.
fn read_batch(path: &Path, classes: usize, split: &mut Split) -> Result<()> {
    let bytes = read_capped(path, MAX_FILE_BYTES)?;
    if bytes.is_empty() || bytes.len() % RECORD != 0 {
        return Err(Error::data(
            path,
            format!(
                "is {} bytes, not a whole number of {RECORD}-byte CIFAR-10 records (truncated?)",
                bytes.len()
            ),
        ));
    }
    for (i, record) in bytes.chunks_exact(RECORD).enumerate() {
        let label = record[0];
        if label as usize >= classes {
            return Err(Error::data(
                path,
                format!("record {i} has label {label}, but {META_FILE} names {classes} classes"),
            ));
        }
        split.labels.push(label);
        let planes = &record[1..];
        split
            .images
            .extend((0..PLANE).flat_map(|p| [planes[p], planes[PLANE + p], planes[2 * PLANE + p]]));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_channels_last_pictures() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(META_FILE), "cat\ndog\n\n").unwrap();
        let record = |label: u8, r: u8, g: u8, b: u8| {
            let mut v = vec![label];
            v.extend([r; PLANE]);
            v.extend([g; PLANE]);
            v.extend([b; PLANE]);
            v
        };
        for (i, name) in TRAIN_FILES.iter().enumerate() {
            std::fs::write(
                tmp.path().join(name),
                record((i % 2) as u8, i as u8, 100, 200),
            )
            .unwrap();
        }
        std::fs::write(tmp.path().join(TEST_FILE), record(1, 9, 8, 7)).unwrap();
        let (classes, train, test) = load(tmp.path()).unwrap();
        assert_eq!(classes, ["cat", "dog"]);
        assert_eq!(train.labels, [0, 1, 0, 1, 0]);
        assert_eq!(
            &train.images[3 * 3072..3 * 3072 + 6],
            [3, 100, 200, 3, 100, 200]
        );
        assert_eq!(&test.images[..3], [9, 8, 7]);
        // A truncated batch and a label past the names are errors naming the file.
        std::fs::write(tmp.path().join(TEST_FILE), &record(1, 0, 0, 0)[..100]).unwrap();
        let e = load(tmp.path()).unwrap_err().to_string();
        assert!(
            e.contains("test_batch.bin: is 100 bytes, not a whole number"),
            "{e}"
        );
        std::fs::write(tmp.path().join(TEST_FILE), record(2, 0, 0, 0)).unwrap();
        let e = load(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("record 0 has label 2"), "{e}");
    }
}
