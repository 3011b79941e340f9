//! PNG pictures of a run for people who cannot open a window on the cluster: loss and
//! accuracy curves from the run directory's `metrics.jsonl`, and from its weights and test set
//! the filters, feature maps, confusion matrix and most confidently wrong digits.
//!
//! Text is drawn with DejaVu Sans compiled into the binary, so no system fonts are needed.

mod compare;
mod confusion;
mod curves;
mod filters;
mod learned;
mod tiles;

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};

pub(crate) use compare::write_compare;
pub use compare::{RUN_COLOURS, compare_size};
pub use confusion::{CONFUSION_SIZE, MOST_WRONG_SIZE};
pub(crate) use curves::read_metrics;
pub use curves::{Metrics, parse_metrics};
pub use filters::filter_picture_size;

use crate::data::DataSource;

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

/// The pictures written, and why the model's own pictures were not, if they were not.
#[derive(Debug)]
pub(crate) struct Written {
    pub(crate) paths: Vec<PathBuf>,
    pub(crate) skipped: Option<String>,
}

/// Writes every picture for `run_dir` into `run_dir/plots/`. The curves need only
/// `metrics.jsonl`; the model's pictures need its weights and test set (`data`, or the run's
/// own data directory), and are skipped with a reason when those cannot be had.
pub(crate) fn write_all(run_dir: &Path, data: Option<&DataSource>) -> Result<Written> {
    register_font();
    let run = crate::rundir::RunDir::new(run_dir);
    let metrics = read_metrics(&run.metrics())?;
    let dir = run.plots();
    crate::fs::Dir::open_following(run_dir)
        .and_then(|d| d.make_dir(crate::rundir::PLOTS))
        .map_err(|e| Error::io(&dir, "cannot create", e))?;
    let loss = dir.join("loss.png");
    render(&loss, CHART_SIZE, |area| curves::draw_loss(area, &metrics))?;
    let accuracy = dir.join("accuracy.png");
    render(&accuracy, CHART_SIZE, |area| {
        curves::draw_accuracy(area, &metrics)
    })?;
    let mut paths = vec![loss, accuracy];
    let skipped = match learned::examine(run_dir, data) {
        Ok(mut learned) => {
            paths.extend(write_learned(&dir, &mut learned)?);
            None
        }
        Err(e) => Some(format!("no pictures of the model: {e}")),
    };
    Ok(Written { paths, skipped })
}

fn write_learned(dir: &Path, learned: &mut learned::Learned) -> Result<Vec<PathBuf>> {
    let mut paths = Vec::new();
    for (name, shape, values) in learned.conv_weights() {
        let path = dir.join(format!("filters-{name}.png"));
        let conv = filters::ConvWeights {
            name: &name,
            shape,
            values: &values,
        };
        render(&path, filter_picture_size(shape), |area| {
            filters::draw_filters(area, &conv)
        })?;
        paths.push(path);
    }
    for (name, probes) in learned.feature_maps() {
        let path = dir.join(format!("feature-maps-{name}.png"));
        render(&path, filters::feature_picture_size(&probes), |area| {
            filters::draw_feature_maps(area, &name, &probes)
        })?;
        paths.push(path);
    }
    let path = dir.join("confusion.png");
    render(&path, CONFUSION_SIZE, |area| {
        confusion::draw_confusion(area, &learned.confusion, &learned.class_names)
    })?;
    paths.push(path);
    let path = dir.join("most-wrong.png");
    render(&path, MOST_WRONG_SIZE, |area| {
        confusion::draw_most_wrong(area, &learned.mistakes, learned.wrong, &learned.class_names)
    })?;
    paths.push(path);
    Ok(paths)
}

type Area<'a> = DrawingArea<BitMapBackend<'a>, plotters::coord::Shift>;

/// What drawing functions return: plotters' errors as text.
type Drawn = std::result::Result<(), String>;

/// Draws into an RGB buffer and saves it as PNG (atomically).
fn render(path: &Path, (w, h): (u32, u32), draw: impl FnOnce(&Area) -> Drawn) -> Result<()> {
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
    crate::fs::write_atomically(path, &png)
}
