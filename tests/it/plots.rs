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
