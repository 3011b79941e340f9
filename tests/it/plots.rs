//! Every run ends with PNG charts in its run directory; `plot` redraws them.

use crate::util::{cnn_tui, stderr};

/// Pixels that are not white, and distinct colours, of a PNG.
fn ink(path: &std::path::Path) -> (u32, u32, usize, usize) {
    let img = image::open(path).unwrap().to_rgb8();
    let colours: std::collections::HashSet<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    let inked = img.pixels().filter(|p| p.0 != [255, 255, 255]).count();
    (img.width(), img.height(), inked, colours.len())
}

#[test]
fn runs_write_loss_and_accuracy_charts_with_the_hand_made_lr_change_marked() {
    let dir = tempfile::tempdir().unwrap();
    let o = cnn_tui(
        &["train", "--headless", "--epochs", "2", "--run-dir", "run"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    for chart in ["loss.png", "accuracy.png"] {
        let (w, h, inked, colours) = ink(&dir.path().join("run/plots").join(chart));
        assert_eq!((w, h), cnn_tui::plots::CHART_SIZE, "{chart}");
        assert!(
            inked > 5_000 && colours > 10,
            "{chart}: {inked} inked pixels, {colours} colours"
        );
    }
    // A learning-rate change by hand appears as an extra marked line on the redrawn chart.
    let metrics = dir.path().join("run/metrics.jsonl");
    let before = ink(&dir.path().join("run/plots/loss.png")).2;
    let mut text = std::fs::read_to_string(&metrics).unwrap();
    text.push_str("{\"type\":\"lr_change\",\"step\":200,\"epoch\":2,\"from\":0.05,\"to\":0.1,\"source\":\"command\"}\n");
    std::fs::write(&metrics, text).unwrap();
    let o = cnn_tui(&["plot", "run"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(ink(&dir.path().join("run/plots/loss.png")).2 > before);
    // No metrics: a clear error.
    let o = cnn_tui(&["plot", "nowhere"], dir.path());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).starts_with("error: nowhere/metrics.jsonl: cannot read"),
        "{}",
        stderr(&o)
    );
}

/// Pixels of a PNG that are clearly red (positive weights) and clearly blue (negative).
fn reds_and_blues(path: &std::path::Path) -> (usize, usize) {
    let img = image::open(path).unwrap().to_rgb8();
    let red = img
        .pixels()
        .filter(|p| p.0[0] > p.0[2].saturating_add(60))
        .count();
    let blue = img
        .pixels()
        .filter(|p| p.0[2] > p.0[0].saturating_add(60))
        .count();
    (red, blue)
}

#[test]
fn runs_draw_filters_feature_maps_confusion_and_most_wrong_digits() {
    let dir = tempfile::tempdir().unwrap();
    let o = cnn_tui(
        &["train", "--headless", "--epochs", "1", "--run-dir", "run"],
        dir.path(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let plots = dir.path().join("run/plots");
    // The default model: conv1 has 8 filters of 5x5x1, conv2 16 of 3x3x8.
    for (name, shape) in [("conv1", [5, 5, 1, 8]), ("conv2", [3, 3, 8, 16])] {
        let path = plots.join(format!("filters-{name}.png"));
        let (w, h, inked, _) = ink(&path);
        assert_eq!((w, h), cnn_tui::plots::filter_picture_size(shape), "{name}");
        let (red, blue) = reds_and_blues(&path);
        // Every weight is a zoomed square: trained filters have both signs.
        let weights = shape.iter().product::<usize>();
        assert!(
            red > weights && blue > weights,
            "{name}: {red} red, {blue} blue pixels"
        );
        assert!(inked > 4 * weights, "{name}");
        let (fw, fh, finked, fcolours) = ink(&plots.join(format!("feature-maps-{name}.png")));
        assert!(fw >= 560 && fh > 4 * 28 * 3, "{name}: {fw}x{fh}");
        assert!(
            finked > 20_000 && fcolours > 50,
            "{name}: {finked} inked, {fcolours} colours"
        );
    }
    let (w, h, inked, _) = ink(&plots.join("confusion.png"));
    assert_eq!((w, h), cnn_tui::plots::CONFUSION_SIZE);
    let (red, blue) = reds_and_blues(&plots.join("confusion.png"));
    assert!(
        inked > 50_000 && red > 1_000 && blue > 10 * 3_000,
        "{inked} {red} {blue}"
    );
    let (w, h, inked, _) = ink(&plots.join("most-wrong.png"));
    assert_eq!((w, h), cnn_tui::plots::MOST_WRONG_SIZE);
    assert!(inked > 32 * 1_000, "32 digits drawn: {inked} inked pixels");

    // A run directory copied to a machine without its data: curves still, and a reason.
    let copied = dir.path().join("copied");
    std::fs::create_dir(&copied).unwrap();
    std::fs::copy(
        dir.path().join("run/metrics.jsonl"),
        copied.join("metrics.jsonl"),
    )
    .unwrap();
    let config = std::fs::read_to_string(dir.path().join("run/config.toml")).unwrap();
    assert!(!config.contains("dir ="), "bundled data is not a directory");
    let o = cnn_tui(&["plot", "copied"], dir.path());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(copied.join("plots/loss.png").is_file());
    assert!(
        stderr(&o)
            .contains("no pictures of the model: copied: no model.safetensors and no checkpoint"),
        "{}",
        stderr(&o)
    );
}
