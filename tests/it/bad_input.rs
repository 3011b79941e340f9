//! Bad input through the real binary: one clear line on stderr, non-zero exit, no panic.

use std::path::Path;

use crate::util::{cnn_tui, gzip, idx, stderr, stdout, write_tiny_dataset};

/// Runs `train --data DIR` on a dataset with one file replaced, and returns the error line.
fn train_error(setup: impl FnOnce(&Path)) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_dataset(dir.path(), 20);
    setup(dir.path());
    let data = dir.path().to_str().unwrap();
    let o = cnn_tui(
        &["train", "--headless", "--data", data, "--epochs", "1"],
        dir.path(),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err.replace(data, "DATA")
}

#[test]
fn missing_directory() {
    let o = cnn_tui(
        &["train", "--headless", "--data", "/no/such/dir"],
        Path::new("."),
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "error: /no/such/dir: data directory not found\n"
    );
}

#[test]
fn missing_file() {
    let e = train_error(|d| std::fs::remove_file(d.join("t10k-labels-idx1-ubyte")).unwrap());
    assert_eq!(
        e,
        "error: DATA/t10k-labels-idx1-ubyte.gz: missing data file (looked for it with and without .gz)\n"
    );
}

#[test]
fn truncated_gzip() {
    let e = train_error(|d| {
        let p = d.join("train-images-idx3-ubyte.gz");
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() * 2 / 3]).unwrap();
    });
    assert!(
        e.starts_with("error: DATA/train-images-idx3-ubyte.gz: "),
        "{e}"
    );
    assert!(e.contains("gzip") || e.contains("truncated"), "{e}");
}

#[test]
fn wrong_magic_number() {
    let e = train_error(|d| {
        std::fs::write(
            d.join("t10k-labels-idx1-ubyte"),
            idx(0x0901, &[20], &[0; 20]),
        )
        .unwrap()
    });
    assert!(
        e.contains(
            "t10k-labels-idx1-ubyte: not an IDX file of unsigned bytes: magic number is 0x00000901"
        ),
        "{e}"
    );
}

#[test]
fn header_claiming_two_to_the_31_images() {
    let e = train_error(|d| {
        let bytes = gzip(&idx(0x803, &[1 << 31, 28, 28], &[0; 64]));
        std::fs::write(d.join("train-images-idx3-ubyte.gz"), bytes).unwrap()
    });
    assert!(e.contains("implausibly large"), "{e}");
    let e = train_error(|d| {
        let bytes = gzip(&idx(0x803, &[1 << 22, 28, 28], &[0; 64]));
        std::fs::write(d.join("train-images-idx3-ubyte.gz"), bytes).unwrap()
    });
    assert!(
        e.contains("truncated: header declares 4194304 items"),
        "{e}"
    );
}

#[test]
fn image_label_count_mismatch() {
    let e = train_error(|d| {
        std::fs::write(
            d.join("train-labels-idx1-ubyte.gz"),
            gzip(&idx(0x801, &[19], &[1; 19])),
        )
        .unwrap()
    });
    assert!(e.contains("train-labels-idx1-ubyte.gz: has 19 labels but DATA/train-images-idx3-ubyte.gz has 20 images"), "{e}");
}

#[test]
fn malformed_config_and_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[optimizer\ntype = \"sgd\"\n").unwrap();
    let o = cnn_tui(&["train", "--headless", "--config", "bad.toml"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: bad.toml:1:11: "),
        "{}",
        stderr(&o)
    );
    let o = cnn_tui(&["summary", "--set", "training.bogus=1"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("unknown field `bogus`"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unwritable_run_directory() {
    let o = cnn_tui(
        &["train", "--headless", "--run-dir", "/proc/cnn-tui-run"],
        Path::new("."),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: /proc/cnn-tui-run: "),
        "{}",
        stderr(&o)
    );
}

#[test]
fn weights_that_are_not_weights() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("w.safetensors"),
        b"not a safetensors file at all",
    )
    .unwrap();
    let o = cnn_tui(&["evaluate", "--weights", "w.safetensors"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: w.safetensors: not a readable safetensors file"),
        "{}",
        stderr(&o)
    );
}

/// `cnn-tui` is documented as `cnn-tui train`: the default command takes train's options
/// without the word, and mixing them with another command is a usage error (exit 2).
#[test]
fn the_default_command_takes_the_options_of_train() {
    let dir = tempfile::tempdir().unwrap();
    let o = cnn_tui(
        &[
            "--headless",
            "--epochs",
            "1",
            "--set",
            "training.batch_size=512",
            "--no-plots",
            "--run-dir",
            "run",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("Epoch 1/1"), "{}", stdout(&o));
    assert!(dir.path().join("run/metrics.jsonl").is_file());

    let o = cnn_tui(&["--epochs", "1", "summary"], dir.path());
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("'summary' cannot be used with '--epochs <EPOCHS>'"),
        "{}",
        stderr(&o)
    );
}
