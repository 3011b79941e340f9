//! What the conv layers learned: every filter as a diverging-colour tile, and the feature maps
//! a few test digits produce in each conv layer.

use super::tiles::{Scale, colour_bar, frame, label, paint, paint_picture, paint_rgb, title};
use super::{Area, Drawn};
use crate::train::{FilterImage, RgbImage};

/// A conv layer's weights as `[kh, kw, in_channels, filters]` values.
pub(crate) struct ConvWeights<'a> {
    pub(crate) name: &'a str,
    pub(crate) shape: [usize; 4],
    pub(crate) values: &'a [f32],
}

/// The filter grid's layout: one row per input channel and one column per filter, or, when
/// there is a single input channel, the filters wrapped into rows of at most eight.
struct FilterLayout {
    rows: usize,
    cols: usize,
    zoom: i32,
    pitch: i32,
}

const GRID_TOP: i32 = 120;
const GRID_LEFT: i32 = 70;

impl FilterLayout {
    fn of(shape: [usize; 4]) -> FilterLayout {
        let [_, kw, cin, f] = shape;
        let (rows, cols) = if cin == 1 {
            let cols = f.clamp(1, 8);
            (f.div_ceil(cols), cols)
        } else {
            // RGB filters get a row in colour above their channels.
            (cin + usize::from(cin == 3), f)
        };
        // A 3x3 filter gets at least 12x12 pixels; small grids get up to 24 per weight.
        let zoom = (1000 / (cols * (kw + 1)).max(1)).clamp(4, 24) as i32;
        let pitch = zoom * kw as i32 + (zoom / 2).max(3);
        FilterLayout {
            rows,
            cols,
            zoom,
            pitch,
        }
    }
}

/// Size in pixels of the filter picture of a layer with weights of `shape`.
pub fn filter_picture_size(shape: [usize; 4]) -> (u32, u32) {
    let l = FilterLayout::of(shape);
    let w = GRID_LEFT + l.cols as i32 * l.pitch + 30;
    let h = GRID_TOP + l.rows as i32 * l.pitch + 20;
    (w.max(560) as u32, h as u32)
}

pub(crate) fn draw_filters(area: &Area, conv: &ConvWeights) -> Drawn {
    area.fill(&plotters::style::WHITE)
        .map_err(|e| e.to_string())?;
    let [kh, kw, cin, f] = conv.shape;
    let l = FilterLayout::of(conv.shape);
    let scale = Scale::diverging(conv.values.iter());
    title(
        area,
        &format!("{}: {f} filters of {kh}x{kw}x{cin}", conv.name),
        "weights: blue negative, white zero, red positive (one scale for the layer)",
    )?;
    colour_bar(area, scale, (16 + 30, 68), 220)?;
    let rgb = cin == 3;
    if cin > 1 {
        label(
            area,
            if rgb {
                "top row: each filter in colour, scaled on its own; then rows R, G, B"
            } else {
                "rows: input channel, columns: filter"
            },
            (300, 68),
            14,
            false,
        )?;
    }
    if rgb {
        for c in 0..f {
            let weights: Vec<f32> = (0..kh * kw * 3).map(|i| conv.values[i * f + c]).collect();
            let at = (GRID_LEFT + c as i32 * l.pitch, GRID_TOP);
            paint_rgb(area, &RgbImage::filter(&weights, kh, kw), at, l.zoom)?;
            frame(area, at, (l.zoom * kw as i32, l.zoom * kh as i32))?;
        }
        label(area, "RGB", (16, GRID_TOP), 12, false)?;
    }
    let first_row = usize::from(rgb);
    for r in first_row..l.rows {
        for c in 0..l.cols {
            let (filter, channel) = if cin == 1 {
                (r * l.cols + c, 0)
            } else {
                (c, r - first_row)
            };
            if filter >= f {
                continue;
            }
            let tile = FilterImage {
                height: kh,
                width: kw,
                values: (0..kh * kw)
                    .map(|p| conv.values[(p * cin + channel) * f + filter])
                    .collect(),
            };
            let at = (
                GRID_LEFT + c as i32 * l.pitch,
                GRID_TOP + r as i32 * l.pitch,
            );
            paint(area, &tile, at, l.zoom, scale)?;
            frame(area, at, (l.zoom * kw as i32, l.zoom * kh as i32))?;
        }
        // Row labels: the input channel.
        let every = (16 / l.pitch).max(1) as usize;
        if cin > 1 && r % every == 0 {
            label(
                area,
                &match (rgb, r - first_row) {
                    (true, ch) => ["R", "G", "B"][ch].to_string(),
                    (false, ch) => format!("in {ch}"),
                },
                (16, GRID_TOP + r as i32 * l.pitch),
                12,
                false,
            )?;
        }
    }
    if cin > 1 {
        let every = (32 / l.pitch).max(1) as usize;
        for c in (0..l.cols).step_by(every) {
            let x = GRID_LEFT + c as i32 * l.pitch + l.zoom * kw as i32 / 2;
            label(area, &c.to_string(), (x, GRID_TOP - 18), 12, true)?;
        }
    }
    Ok(())
}

/// One probe digit and its feature maps in one conv layer.
pub(crate) struct ProbeMaps {
    /// Caption under the picture, one label per line, e.g. "#0 7\nsaid 7".
    pub(crate) caption: String,
    pub(crate) digit: FilterImage,
    /// The picture in colour, for a colour model.
    pub(crate) colour: Option<RgbImage>,
    pub(crate) maps: Vec<FilterImage>,
}

const MAP_COLS: usize = 16;
const DIGIT_ZOOM: i32 = 3;
const MAPS_LEFT: i32 = 130;

fn map_zoom(maps: &[FilterImage]) -> i32 {
    let side = maps.first().map_or(1, |m| m.height.max(m.width)).max(1);
    ((56.0 / side as f64).round() as i32).clamp(1, 8)
}

fn probe_block_height(p: &ProbeMaps) -> i32 {
    let zoom = map_zoom(&p.maps);
    let pitch = zoom * p.maps.first().map_or(1, |m| m.height) as i32 + 6;
    let rows = p.maps.len().div_ceil(MAP_COLS) as i32;
    let caption = 16 * p.caption.lines().count() as i32 + 8;
    (rows * pitch).max(p.digit.height as i32 * DIGIT_ZOOM + caption) + 16
}

/// Size in pixels of a feature-map picture.
pub(crate) fn feature_picture_size(probes: &[ProbeMaps]) -> (u32, u32) {
    let cols = probes
        .first()
        .map_or(1, |p| p.maps.len().clamp(1, MAP_COLS)) as i32;
    let width = probes.first().map_or(1, |p| {
        let zoom = map_zoom(&p.maps);
        zoom * p.maps.first().map_or(1, |m| m.width) as i32 + 6
    });
    let h: i32 = probes.iter().map(probe_block_height).sum();
    (
        (MAPS_LEFT + cols * width + 20).max(560) as u32,
        (90 + h) as u32,
    )
}

pub(crate) fn draw_feature_maps(area: &Area, layer: &str, probes: &[ProbeMaps]) -> Drawn {
    area.fill(&plotters::style::WHITE)
        .map_err(|e| e.to_string())?;
    let count = probes.first().map_or(0, |p| p.maps.len());
    title(
        area,
        &format!("{layer}: {count} feature maps of test pictures"),
        "after the activation: black = no response, white = the strongest for that picture",
    )?;
    let mut y = 80;
    for p in probes {
        paint_picture(area, &p.digit, p.colour.as_ref(), (16, y), DIGIT_ZOOM)?;
        let (dw, dh) = (
            p.digit.width as i32 * DIGIT_ZOOM,
            p.digit.height as i32 * DIGIT_ZOOM,
        );
        frame(area, (16, y), (dw, dh))?;
        for (i, line) in p.caption.lines().enumerate() {
            label(area, line, (16, y + dh + 4 + 16 * i as i32), 13, false)?;
        }
        let zoom = map_zoom(&p.maps);
        let hi = p
            .maps
            .iter()
            .flat_map(|m| &m.values)
            .fold(0.0f32, |a, &v| if v.is_finite() { a.max(v) } else { a });
        let lo = p
            .maps
            .iter()
            .flat_map(|m| &m.values)
            .fold(0.0f32, |a, &v| if v.is_finite() { a.min(v) } else { a });
        let scale = Scale::Gray { lo, hi };
        for (i, m) in p.maps.iter().enumerate() {
            let (r, c) = ((i / MAP_COLS) as i32, (i % MAP_COLS) as i32);
            let (w, h) = (zoom * m.width as i32, zoom * m.height as i32);
            let at = (MAPS_LEFT + c * (w + 6), y + r * (h + 6));
            paint(area, m, at, zoom, scale)?;
        }
        y += probe_block_height(p);
    }
    Ok(())
}
