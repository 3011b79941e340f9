//! `predict` on pictures: an MNIST test digit printed large, dark on light and off-centre,
//! must come back as the same digit.

use std::path::Path;

use crate::util::{cnn_tui, stderr, stdout};

const TEST_IMAGES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/t10k-images-idx3-ubyte.gz"
);

/// Test image 0 of MNIST (a 7) as a 300x240 picture: scaled 6x, inverted, in the top left.
fn write_picture(path: &Path) {
    let arr = cnn_tui::data::idx::read_idx_file(Path::new(TEST_IMAGES)).unwrap();
    let digit = &arr.data[..784];
    let img = image::GrayImage::from_fn(300, 240, |x, y| {
        let (sx, sy) = (x as i64 / 6 - 2, y as i64 / 6 - 1);
        let v = if (0..28).contains(&sx) && (0..28).contains(&sy) {
            digit[(sy * 28 + sx) as usize]
        } else {
            0
        };
        image::Luma([255 - v])
    });
    img.save(path).unwrap();
}

#[test]
fn predicts_a_picture_and_an_idx_image() {
    let dir = tempfile::tempdir().unwrap();
    let o = cnn_tui(
        &["train", "--headless", "--epochs", "1", "--run-dir", "run"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    write_picture(&dir.path().join("seven.png"));
    let o = cnn_tui(
        &[
            "predict",
            "--weights",
            "run/model.safetensors",
            "seven.png",
            "--idx",
            TEST_IMAGES,
            "--index",
            "0",
            "--json",
        ],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let results: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    for r in results.as_array().unwrap() {
        assert_eq!(r["prediction"], 7, "{r}");
        assert_eq!(r["label"], "7", "{r}");
        assert!(r["top3"][0]["probability"].as_f64().unwrap() > 0.5, "{r}");
    }
    // The text form shows the digit the model sees.
    let o = cnn_tui(
        &["predict", "--weights", "run/model.safetensors", "seven.png"],
        dir.path(),
    );
    let out = stdout(&o);
    assert!(out.contains("prediction: 7 ("), "{out}");
    assert!(
        out.lines().filter(|l| l.len() == 56).count() == 28,
        "28 rows of 2x28 characters:\n{out}"
    );

    std::fs::write(dir.path().join("notes.png"), "not a picture").unwrap();
    let o = cnn_tui(
        &["predict", "--weights", "run/model.safetensors", "notes.png"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: notes.png: not a PNG or JPEG image"),
        "{}",
        stderr(&o)
    );
}
