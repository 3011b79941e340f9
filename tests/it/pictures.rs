//! Folders of pictures and CIFAR-10 binary batches through `cnn-tui data` (and `train`):
//! both folder layouts, every PNG and JPEG flavour, skipped files, the size-mismatch and
//! corrupt-file errors, the decoded cache, and the binary format.

use std::path::{Path, PathBuf};

use image::{ImageBuffer, Luma, Rgb, Rgba};
use serde_json::Value;

use crate::util::{cnn_tui, stderr, stdout};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/fixtures");

/// The flavours a folder may mix; all 8x8, colour where the format has it.
#[derive(Clone, Copy)]
enum Kind {
    GrayPng,
    RgbPng,
    RgbaPng,
    Gray16Png,
    Rgb16Png,
    PalettePng,
    GrayJpeg,
    RgbJpeg,
    CmykJpeg,
}

const ALL_KINDS: [Kind; 9] = [
    Kind::GrayPng,
    Kind::RgbPng,
    Kind::RgbaPng,
    Kind::Gray16Png,
    Kind::Rgb16Png,
    Kind::PalettePng,
    Kind::GrayJpeg,
    Kind::RgbJpeg,
    Kind::CmykJpeg,
];

/// Writes one 8x8 picture (`seed` varies the pixels) of `kind` to `path` (folders created).
fn picture(path: &Path, kind: Kind, seed: u8) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let v = |x: u32, y: u32| (x * 29 + y * 13 + seed as u32 * 7) as u8;
    match kind {
        Kind::GrayPng => ImageBuffer::from_fn(8, 8, |x, y| Luma([v(x, y)]))
            .save(path)
            .unwrap(),
        Kind::RgbPng => ImageBuffer::from_fn(8, 8, |x, y| Rgb([v(x, y), 255 - v(x, y), 40]))
            .save(path)
            .unwrap(),
        Kind::RgbaPng => ImageBuffer::from_fn(8, 8, |x, y| Rgba([v(x, y), 20, 200, 128]))
            .save(path)
            .unwrap(),
        Kind::Gray16Png => ImageBuffer::from_fn(8, 8, |x, y| Luma([v(x, y) as u16 * 257]))
            .save(path)
            .unwrap(),
        Kind::Rgb16Png => {
            ImageBuffer::from_fn(8, 8, |x, y| Rgb([v(x, y) as u16 * 257, 1000, 65535]))
                .save(path)
                .unwrap()
        }
        Kind::GrayJpeg => ImageBuffer::from_fn(8, 8, |x, y| Luma([v(x, y)]))
            .save(path)
            .unwrap(),
        Kind::RgbJpeg => ImageBuffer::from_fn(8, 8, |x, y| Rgb([v(x, y), 100, 200]))
            .save(path)
            .unwrap(),
        Kind::PalettePng => {
            std::fs::copy(Path::new(FIXTURES).join("palette-8x8.png"), path).unwrap();
        }
        Kind::CmykJpeg => {
            std::fs::copy(Path::new(FIXTURES).join("cmyk-8x8.jpg"), path).unwrap();
        }
    }
}

fn extension(kind: Kind) -> &'static str {
    match kind {
        Kind::GrayJpeg | Kind::RgbJpeg | Kind::CmykJpeg => "jpg",
        _ => "png",
    }
}

/// Runs `cnn-tui data --json` on `dir` with `sets`, expecting success; returns the JSON and
/// stderr. The default config holds out 10% of the training set for validation.
fn data_json(dir: &Path, sets: &[&str]) -> (Value, String) {
    let mut args = vec!["data", "--json", "--data", dir.to_str().unwrap()];
    for s in sets {
        args.extend(["--set", s]);
    }
    let o = cnn_tui(&args, dir);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    (
        serde_json::from_str(&stdout(&o)).expect("one JSON object"),
        err,
    )
}

/// Runs `cnn-tui data` on `dir`, expecting failure; returns the last stderr line.
fn data_error(dir: &Path, sets: &[&str]) -> String {
    let mut args = vec!["data", "--data", dir.to_str().unwrap()];
    for s in sets {
        args.extend(["--set", s]);
    }
    let o = cnn_tui(&args, dir);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    err.lines().last().unwrap_or("").to_string()
}

/// A train/test folder: every flavour in each of two classes, plus files to skip.
fn split_folder(root: &Path) {
    for (c, class) in ["cat", "dog"].iter().enumerate() {
        for (i, kind) in ALL_KINDS.iter().enumerate() {
            let name = format!("{i}.{}", extension(*kind));
            picture(
                &root.join("train").join(class).join(&name),
                *kind,
                (i + c) as u8,
            );
        }
        picture(
            &root.join("test").join(class).join("t.png"),
            Kind::RgbPng,
            9,
        );
    }
    std::fs::write(root.join("train/README.txt"), "about").unwrap();
    std::fs::write(root.join("train/cat/.DS_Store"), "x").unwrap();
    std::fs::write(root.join("train/dog/Thumbs.db"), "x").unwrap();
}

#[test]
fn train_test_layout_reads_every_png_and_jpeg_flavour() {
    let tmp = tempfile::tempdir().unwrap();
    split_folder(tmp.path());
    let (j, err) = data_json(tmp.path(), &[]);
    assert_eq!(j["classes"], serde_json::json!(["cat", "dog"]));
    assert_eq!(
        (
            j["train"].as_u64(),
            j["validation"].as_u64(),
            j["test"].as_u64()
        ),
        (Some(16), Some(2), Some(2))
    );
    assert_eq!(j["image_shape"], serde_json::json!([8, 8, 3]));
    assert_eq!(j["skipped"], 3);
    assert_eq!(j["cached"], false);
    assert!(
        err.contains("skipped 3 files that are not PNG or JPEG pictures"),
        "{err}"
    );
    // The blue channel: 40, 200, 255 (16-bit 65535), 200 ... all high but the RGB PNG's 40.
    let mean = j["channel_mean"].as_array().unwrap();
    assert!(mean[2].as_f64().unwrap() > 0.4, "{mean:?}");
    // A val/ folder replaces training.validation_split.
    picture(&tmp.path().join("val/dog/v.jpg"), Kind::RgbJpeg, 3);
    let (j, _) = data_json(tmp.path(), &["training.validation_split=0.5"]);
    assert_eq!(
        (j["train"].as_u64(), j["validation"].as_u64()),
        (Some(18), Some(1))
    );
}

#[test]
fn class_folders_alone_split_by_class_with_names_as_given() {
    let tmp = tempfile::tempdir().unwrap();
    for class in ["red fox", "Äpfel", "cat"] {
        for i in 0..10 {
            picture(
                &tmp.path().join(class).join(format!("{i}.png")),
                Kind::GrayPng,
                i,
            );
        }
    }
    std::fs::write(tmp.path().join("notes.txt"), "x").unwrap();
    let (j, err) = data_json(tmp.path(), &["data.test_split=0.3"]);
    assert_eq!(j["classes"], serde_json::json!(["cat", "red fox", "Äpfel"]));
    assert_eq!(
        (
            j["train"].as_u64(),
            j["validation"].as_u64(),
            j["test"].as_u64()
        ),
        (Some(19), Some(2), Some(9))
    );
    for c in j["per_class"].as_array().unwrap() {
        assert_eq!(c["test"], 3, "{c}");
    }
    // All gray: one channel.
    assert_eq!(j["image_shape"], serde_json::json!([8, 8, 1]));
    assert!(err.contains("skipped 1 file that is not"), "{err}");
    // data.channels converts; data.image_size resizes.
    let (j, _) = data_json(
        tmp.path(),
        &[
            "data.test_split=0.3",
            "data.channels=3",
            "data.image_size=[5,6]",
        ],
    );
    assert_eq!(j["image_shape"], serde_json::json!([5, 6, 3]));
}

#[test]
fn pictures_of_different_sizes_are_an_error_naming_two_files() {
    let tmp = tempfile::tempdir().unwrap();
    split_folder(tmp.path());
    let big = tmp.path().join("train/dog/big.png");
    ImageBuffer::from_fn(12, 10, |_, _| Rgb([1u8, 2, 3]))
        .save(&big)
        .unwrap();
    let e = data_error(tmp.path(), &[]);
    assert!(
        e.contains("big.png: picture is 10x12 (height x width) but "),
        "{e}"
    );
    assert!(e.contains(".png is 8x8; "), "{e}");
    assert!(e.contains("set data.image_size = [8, 8]"), "{e}");
    let (j, _) = data_json(tmp.path(), &["data.image_size=[8,8]"]);
    assert_eq!(
        j["train"].as_u64().unwrap() + j["validation"].as_u64().unwrap(),
        19
    );
}

#[test]
fn a_corrupt_picture_is_an_error_unless_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    split_folder(tmp.path());
    std::fs::write(
        tmp.path().join("train/cat/broken.jpg"),
        b"\xff\xd8\xff\xe0 not a jpeg",
    )
    .unwrap();
    let e = data_error(tmp.path(), &[]);
    assert!(
        e.contains("train/cat/broken.jpg: cannot decode picture"),
        "{e}"
    );
    assert!(e.contains("data.skip_bad_images = true"), "{e}");
    let (j, err) = data_json(tmp.path(), &["data.skip_bad_images=true"]);
    assert_eq!(
        j["train"].as_u64().unwrap() + j["validation"].as_u64().unwrap(),
        18
    );
    assert!(
        err.contains("warning: left out 1 picture that failed to decode: ")
            && err.contains("broken.jpg"),
        "{err}"
    );
    assert_eq!(j["left_out"].as_array().unwrap().len(), 1);
}

#[test]
fn folders_that_cannot_be_a_dataset_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let e = data_error(tmp.path(), &[]);
    assert!(
        e.contains("no data in a layout cnn-tui reads; it reads the four MNIST IDX files"),
        "{e}"
    );
    assert!(e.contains("train/<class>/ and test/<class>/"), "{e}");
    std::fs::create_dir_all(tmp.path().join("cat")).unwrap();
    picture(&tmp.path().join("dog/1.png"), Kind::RgbPng, 1);
    let e = data_error(tmp.path(), &[]);
    assert!(
        e.ends_with("cat: class folder has no PNG or JPEG pictures"),
        "{e}"
    );
    let tmp = tempfile::tempdir().unwrap();
    split_folder(tmp.path());
    picture(&tmp.path().join("test/cow/1.png"), Kind::RgbPng, 1);
    let e = data_error(tmp.path(), &[]);
    assert!(
        e.contains("test/cow: class \"cow\" is not among the training classes (cat, dog)"),
        "{e}"
    );
}

#[test]
fn a_picture_over_the_size_limit_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    split_folder(tmp.path());
    // A PNG header claiming 20000 x 20000 pixels: refused before anything is decoded.
    let mut bytes = Vec::new();
    ImageBuffer::from_fn(1, 1, |_, _| Luma([0u8]))
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    // IHDR's width and height are bytes 16..24, its CRC (over type and data) 29..33.
    bytes[16..20].copy_from_slice(&20_000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&20_000u32.to_be_bytes());
    let mut crc = flate2::Crc::new();
    crc.update(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.sum().to_be_bytes());
    std::fs::write(tmp.path().join("train/dog/huge.png"), &bytes).unwrap();
    let e = data_error(
        tmp.path(),
        &["data.image_size=[8,8]", "data.skip_bad_images=true"],
    );
    assert!(e.contains("huge.png: picture"), "{e}");
    assert!(e.contains("12000") || e.contains("million"), "{e}");
}

/// The cache file `data` wrote for `dir` with default settings.
fn cache_file(dir: &Path) -> PathBuf {
    let folder = dir.join(".cnn-tui-cache");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files.pop().unwrap()
}

#[test]
fn the_decoded_cache_is_used_invalidated_and_rebuilt_when_torn() {
    let tmp = tempfile::tempdir().unwrap();
    split_folder(tmp.path());
    let (first, err) = data_json(tmp.path(), &[]);
    assert_eq!(first["cached"], false);
    assert!(err.contains("wrote the decoded cache"), "{err}");
    let (second, err) = data_json(tmp.path(), &[]);
    assert_eq!(second["cached"], true, "{err}");
    assert_eq!(first["channel_mean"], second["channel_mean"]);
    // A changed picture (new size on disk) invalidates it.
    picture(&tmp.path().join("train/cat/1.png"), Kind::RgbPng, 77);
    let (third, err) = data_json(tmp.path(), &[]);
    assert_eq!(third["cached"], false);
    assert!(
        err.contains("decoded cache not used") && err.contains("changed"),
        "{err}"
    );
    assert_ne!(first["channel_mean"], third["channel_mean"]);
    // A torn cache (as a kill mid-write without the rename would leave) is rebuilt.
    let cache = cache_file(tmp.path());
    let bytes = std::fs::read(&cache).unwrap();
    std::fs::write(&cache, &bytes[..bytes.len() - 100]).unwrap();
    let (fourth, err) = data_json(tmp.path(), &[]);
    assert_eq!(fourth["cached"], false);
    assert!(err.contains("torn"), "{err}");
    assert_eq!(third["channel_mean"], fourth["channel_mean"]);
    // A flipped pixel byte keeps the length but not the checksum.
    let mut bytes = std::fs::read(&cache).unwrap();
    let n = bytes.len();
    bytes[n - 20] ^= 0xff;
    std::fs::write(&cache, &bytes).unwrap();
    let (fifth, err) = data_json(tmp.path(), &[]);
    assert_eq!(fifth["cached"], false);
    assert!(err.contains("checksum"), "{err}");
    let (sixth, _) = data_json(tmp.path(), &[]);
    assert_eq!(sixth["cached"], true);
}

#[test]
fn cifar10_binary_batches_are_read_with_their_class_names() {
    let tmp = tempfile::tempdir().unwrap();
    let names = "airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n";
    std::fs::write(tmp.path().join("batches.meta.txt"), names).unwrap();
    let batch = |n: usize, first_label: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| {
                let mut r = vec![((first_label + i) % 10) as u8];
                r.extend((0..3072).map(|p| ((p / 1024) * 100 + i) as u8));
                r
            })
            .collect()
    };
    for b in 1..=5 {
        std::fs::write(tmp.path().join(format!("data_batch_{b}.bin")), batch(4, b)).unwrap();
    }
    std::fs::write(tmp.path().join("test_batch.bin"), batch(3, 0)).unwrap();
    let (j, _) = data_json(tmp.path(), &[]);
    assert_eq!(j["classes"][9], "truck");
    assert_eq!(
        (
            j["train"].as_u64(),
            j["validation"].as_u64(),
            j["test"].as_u64()
        ),
        (Some(18), Some(2), Some(3))
    );
    assert_eq!(j["image_shape"], serde_json::json!([32, 32, 3]));
    // Red planes hold 0.., green 100.., blue 200..: the channel means tell the planes apart.
    let mean: Vec<f64> = j["channel_mean"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() * 255.0)
        .collect();
    assert!(mean[0] < 2.0, "{mean:?}");
    assert!((mean[1] - mean[0] - 100.0).abs() < 0.1, "{mean:?}");
    assert!((mean[2] - mean[0] - 200.0).abs() < 0.1, "{mean:?}");
    let e = data_error(tmp.path(), &["data.image_size=[8,8]"]);
    assert!(
        e.contains("data.image_size: applies to folders of pictures"),
        "{e}"
    );
}

/// A colour picture that is mostly red (`red`) or mostly blue, `w` x `h`, varied by `seed`.
fn tinted(path: &Path, red: bool, (w, h): (u32, u32), seed: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    ImageBuffer::from_fn(w, h, |x, y| {
        let n = ((x * 31 + y * 17 + seed * 13) % 60) as u8;
        if red {
            Rgb([180 + n, 40 + n, 30])
        } else {
            Rgb([30, 40 + n, 180 + n])
        }
    })
    .save(path)
    .unwrap();
}

#[test]
fn a_colour_model_names_its_classes_in_the_run_evaluate_and_predict() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    for (class, red) in [("red things", true), ("blue things", false)] {
        for i in 0..24 {
            let split = if i < 20 { "train" } else { "test" };
            tinted(
                &data.join(split).join(class).join(format!("{i}.png")),
                red,
                (8, 8),
                i,
            );
        }
    }
    std::fs::write(
        tmp.path().join("colour.toml"),
        r#"
[model]
loss = "softmax_cross_entropy"
layers = [
  { type = "conv2d", filters = 4, kernel_size = 3, activation = "relu" },
  { type = "flatten" },
  { type = "dense", units = 2, activation = "softmax" },
]
[optimizer]
type = "sgd"
lr = 0.05
[training]
epochs = 4
batch_size = 8
"#,
    )
    .unwrap();
    let o = cnn_tui(
        &[
            "train",
            "--headless",
            "-c",
            "colour.toml",
            "--data",
            "data",
            "--run-dir",
            "run",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("2 classes: blue things, red things"),
        "{}",
        stdout(&o)
    );
    let summary: Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("run/summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        summary["classes"],
        serde_json::json!(["blue things", "red things"])
    );
    assert_eq!(summary["test_accuracy"], 1.0, "{summary}");
    // evaluate names the classes from the weights.
    let o = cnn_tui(
        &["evaluate", "--weights", "run/model.safetensors", "--json"],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let e: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(e["per_class"][1]["class"], "red things", "{e}");
    assert_eq!(e["per_class"][1]["samples"], 4, "{e}");
    // predict takes a colour picture of another size and names the class without the data.
    std::fs::rename(&data, tmp.path().join("gone")).unwrap();
    tinted(&tmp.path().join("big red.jpg"), true, (20, 16), 5);
    let o = cnn_tui(
        &[
            "predict",
            "--weights",
            "run/model.safetensors",
            "--json",
            "big red.jpg",
        ],
        tmp.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let p: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(p[0]["label"], "red things", "{p}");
    assert_eq!(p[0]["prediction"], 1, "{p}");
}
