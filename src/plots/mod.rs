//! PNG pictures of a run for people who cannot open a window on the cluster: loss and
//! accuracy curves, read from the run directory's `metrics.jsonl`.
//!
//! Text is drawn with DejaVu Sans compiled into the binary, so no system fonts are needed.

mod curves;

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};

pub use curves::{Metrics, read_metrics};

/// Size of every chart, in pixels.
pub const CHART_SIZE: (u32, u32) = (960, 540);

const FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

fn register_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is compiled in and known to parse.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Writes every picture for `run_dir` into `run_dir/plots/` and returns their paths.
pub fn write_all(run_dir: &Path) -> Result<Vec<PathBuf>> {
    register_font();
    let metrics = read_metrics(&run_dir.join("metrics.jsonl"))?;
    let dir = run_dir.join("plots");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, "cannot create", e))?;
    let loss = dir.join("loss.png");
    render(&loss, |area| curves::draw_loss(area, &metrics))?;
    let accuracy = dir.join("accuracy.png");
    render(&accuracy, |area| curves::draw_accuracy(area, &metrics))?;
    Ok(vec![loss, accuracy])
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// Draws into an RGB buffer and saves it as PNG (atomically).
fn render(path: &Path, draw: impl FnOnce(&Area) -> std::result::Result<(), String>) -> Result<()> {
    let (w, h) = CHART_SIZE;
    let mut buffer = vec![255u8; (w * h * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut buffer, (w, h)).into_drawing_area();
        draw(&area).map_err(|e| Error::data(path, format!("cannot draw: {e}")))?;
        area.present()
            .map_err(|e| Error::data(path, format!("cannot draw: {e}")))?;
    }
    let image = image::RgbImage::from_raw(w, h, buffer).expect("buffer sized for the image");
    let mut png = Vec::new();
    image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| Error::data(path, format!("cannot encode PNG: {e}")))?;
    crate::weights::write_atomically(path, &png)
}
