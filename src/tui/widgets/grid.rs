//! Small 2-D arrays (filters, feature maps, digits) drawn as terminal cells.
//!
//! With colour: half blocks (`▀`, foreground the upper pixel, background the lower), or
//! tinted ASCII shades in ASCII mode. Without colour: one shade character per cell, from
//! ` ░▒▓█` or the ASCII ramp ` .:-=+*#%@`. Each image is scaled on its own.

use ratatui::style::{Color, Style as CellStyle};
use ratatui::text::{Line, Span};

use crate::train::{FilterImage, RgbImage};
use crate::tui::app::{Palette, Style};

pub(crate) const ASCII_RAMP: &[u8] = b" .:-=+*#%@";
pub(crate) const UNICODE_RAMP: [char; 5] = [' ', '░', '▒', '▓', '█'];

/// How values map to shades.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Scale {
    /// Weights: symmetric about zero by the largest magnitude; blue below, red above.
    Diverging,
    /// Weights on a scale shared with other images (the layer's): symmetric about zero by
    /// the given magnitude.
    DivergingBy(f32),
    /// Images and activations: black at the minimum, white at the maximum.
    Gray,
}

/// Values scaled to [0, 1] (Gray) or [-1, 1] (Diverging), by the image's own range.
pub(crate) fn normalize(values: &[f32], scale: Scale) -> Vec<f32> {
    match scale {
        Scale::Diverging => {
            let m = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            values
                .iter()
                .map(|v| if m > 0.0 { v / m } else { 0.0 })
                .collect()
        }
        Scale::DivergingBy(m) => values
            .iter()
            .map(|v| {
                if m > 0.0 {
                    (v / m).clamp(-1.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect(),
        Scale::Gray => {
            let lo = values.iter().copied().fold(f32::INFINITY, f32::min);
            let hi = values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let span = hi - lo;
            values
                .iter()
                .map(|v| if span > 0.0 { (v - lo) / span } else { 0.0 })
                .collect()
        }
    }
}

/// A shade from a ramp for `t` in [0, 1].
fn ramp_index(t: f32, len: usize) -> usize {
    ((t.clamp(0.0, 1.0) * (len - 1) as f32).round() as usize).min(len - 1)
}

/// A colour for a normalized value: grey (Gray) or blue below zero and red above
/// (Diverging), in the terminal's palette.
fn color(v: f32, scale: Scale, palette: Palette) -> Color {
    let byte = |t: f32| (t.clamp(0.0, 1.0) * 255.0).round() as u8;
    match (scale, palette) {
        (Scale::Gray, Palette::Ansi16) => {
            [Color::Black, Color::DarkGray, Color::Gray, Color::White][ramp_index(v, 4)]
        }
        (Scale::Gray, Palette::Indexed) => Color::Indexed(232 + ramp_index(v, 24) as u8),
        (Scale::Gray, Palette::Rgb) => Color::Rgb(byte(v), byte(v), byte(v)),
        (_, Palette::Ansi16) => match (ramp_index(v.abs(), 3), v < 0.0) {
            (0, _) => Color::Black,
            (1, true) => Color::Blue,
            (1, false) => Color::Red,
            (_, true) => Color::LightBlue,
            (_, false) => Color::LightRed,
        },
        (_, Palette::Indexed) => {
            let level = ramp_index(v.abs(), 6) as u8;
            // The 6x6x6 cube: 16 + 36r + 6g + b; negative blue, positive red.
            if v < 0.0 {
                Color::Indexed(16 + level)
            } else {
                Color::Indexed(16 + 36 * level)
            }
        }
        (_, Palette::Rgb) if v < 0.0 => Color::Rgb(0, 0, byte(-v)),
        (_, Palette::Rgb) => Color::Rgb(byte(v), 0, 0),
    }
}

/// The tint of an ASCII shade: never so dark that the character disappears.
fn tint(v: f32, scale: Scale, palette: Palette) -> Color {
    match scale {
        Scale::Gray => color(v.max(0.35), scale, palette),
        Scale::Diverging | Scale::DivergingBy(_) => {
            color(v.signum() * v.abs().max(0.6), scale, palette)
        }
    }
}

/// One shade character for a normalized value (no colour).
fn shade(v: f32, scale: Scale, ascii: bool) -> char {
    let t = match scale {
        Scale::Gray => v,
        Scale::Diverging | Scale::DivergingBy(_) => (v + 1.0) / 2.0,
    };
    if ascii {
        ASCII_RAMP[ramp_index(t, ASCII_RAMP.len())] as char
    } else {
        UNICODE_RAMP[ramp_index(t, UNICODE_RAMP.len())]
    }
}

/// Nearest-neighbour sample of a normalized image at pixel-grid position (x, y) of a grid
/// `w` x `h`.
fn sample(img: &FilterImage, norm: &[f32], x: usize, y: usize, w: usize, h: usize) -> f32 {
    let sx = (x * img.width / w.max(1)).min(img.width - 1);
    let sy = (y * img.height / h.max(1)).min(img.height - 1);
    norm[sy * img.width + sx]
}

/// Draws `img` into exactly `cols` x `rows` cells.
pub(crate) fn grid_lines(
    img: &FilterImage,
    scale: Scale,
    style: Style,
    cols: u16,
    rows: u16,
) -> Vec<Line<'static>> {
    cell_lines(img, scale, cols, rows, |norm, c, r, cols, rows| {
        if style.color && !style.ascii {
            let top = sample(img, norm, c, 2 * r, cols, 2 * rows);
            let bottom = sample(img, norm, c, 2 * r + 1, cols, 2 * rows);
            Span::styled(
                "▀",
                CellStyle::default()
                    .fg(color(top, scale, style.palette))
                    .bg(color(bottom, scale, style.palette)),
            )
        } else {
            // ASCII shades, tinted when colour is on: readable in colour and in a plain copy.
            // Without colour (and with Unicode's five shades) a shrunken feature map shows the strongest pixel a cell covers,
            // brightened (square root), as grey levels in colour would show faint values: a
            // sparse map (after a ReLU) is otherwise blank with five shades.
            let v = if !style.color && !style.ascii && scale == Scale::Gray {
                area_max(img, norm, c, r, cols, rows).sqrt()
            } else {
                sample(img, norm, c, r, cols, rows)
            };
            shade_span(v, scale, style, style.color || style.ascii)
        }
    })
}

/// The largest magnitude among several images: the one scale for a layer's filters.
pub(crate) fn shared_magnitude<'a>(images: impl IntoIterator<Item = &'a FilterImage>) -> f32 {
    images
        .into_iter()
        .flat_map(|i| i.values.iter())
        .fold(0.0f32, |m, v| m.max(v.abs()))
}

/// The normalized pixels that cell (c, r) of a `cols` x `rows` grid covers (at least one).
fn cell_pixels<'a>(
    img: &FilterImage,
    norm: &'a [f32],
    c: usize,
    r: usize,
    cols: usize,
    rows: usize,
) -> impl Iterator<Item = f32> + 'a {
    let span = |i: usize, n: usize, len: usize| {
        let a = (i * len / n).min(len - 1);
        let b = ((i + 1) * len / n).clamp(a + 1, len);
        a..b
    };
    let (xs, ys, width) = (
        span(c, cols, img.width),
        span(r, rows, img.height),
        img.width,
    );
    ys.flat_map(move |y| xs.clone().map(move |x| norm[y * width + x]))
}

/// The largest of the normalized pixels that cell (c, r) of a `cols` x `rows` grid covers.
fn area_max(img: &FilterImage, norm: &[f32], c: usize, r: usize, cols: usize, rows: usize) -> f32 {
    cell_pixels(img, norm, c, r, cols, rows).fold(0.0f32, f32::max)
}

/// The mean of the normalized pixels that cell (c, r) of a `cols` x `rows` grid covers.
fn area_mean(img: &FilterImage, norm: &[f32], c: usize, r: usize, cols: usize, rows: usize) -> f32 {
    let (sum, n) =
        cell_pixels(img, norm, c, r, cols, rows).fold((0.0f32, 0usize), |(s, n), v| (s + v, n + 1));
    sum / n as f32
}

/// Draws `img` into exactly `cols` x `rows` cells as text art: one shade character a cell
/// (the mean of the pixels it covers), tinted when colour is on. Unlike half blocks, it reads
/// the same in a plain copy of the screen, without colour.
pub(crate) fn art_lines(
    img: &FilterImage,
    scale: Scale,
    style: Style,
    cols: u16,
    rows: u16,
) -> Vec<Line<'static>> {
    cell_lines(img, scale, cols, rows, |norm, c, r, cols, rows| {
        let v = area_mean(img, norm, c, r, cols, rows);
        shade_span(v, scale, style, style.ascii)
    })
}

/// `cols` x `rows` cells of `img`, each drawn by `cell(normalized values, column, row, cols,
/// rows)`.
fn cell_lines(
    img: &FilterImage,
    scale: Scale,
    cols: u16,
    rows: u16,
    cell: impl Fn(&[f32], usize, usize, usize, usize) -> Span<'static>,
) -> Vec<Line<'static>> {
    let (cols, rows) = (cols as usize, rows as usize);
    if img.values.is_empty() || cols == 0 || rows == 0 {
        return Vec::new();
    }
    let norm = normalize(&img.values, scale);
    (0..rows)
        .map(|r| {
            Line::from(
                (0..cols)
                    .map(|c| cell(&norm, c, r, cols, rows))
                    .collect::<Vec<_>>(),
            )
        })
        .collect()
}

/// One shade character for `v` (ASCII when `ascii`), tinted when colour is on.
fn shade_span(v: f32, scale: Scale, style: Style, ascii: bool) -> Span<'static> {
    let ch = shade(v, scale, ascii).to_string();
    if !style.color {
        return Span::raw(ch);
    }
    Span::styled(ch, CellStyle::default().fg(tint(v, scale, style.palette)))
}

/// The 16 ANSI colours and the sRGB values terminals commonly give them (xterm's).
const ANSI16: [(Color, [u8; 3]); 16] = [
    (Color::Black, [0, 0, 0]),
    (Color::Red, [205, 0, 0]),
    (Color::Green, [0, 205, 0]),
    (Color::Yellow, [205, 205, 0]),
    (Color::Blue, [0, 0, 238]),
    (Color::Magenta, [205, 0, 205]),
    (Color::Cyan, [0, 205, 205]),
    (Color::Gray, [229, 229, 229]),
    (Color::DarkGray, [127, 127, 127]),
    (Color::LightRed, [255, 0, 0]),
    (Color::LightGreen, [0, 255, 0]),
    (Color::LightYellow, [255, 255, 0]),
    (Color::LightBlue, [92, 92, 255]),
    (Color::LightMagenta, [255, 0, 255]),
    (Color::LightCyan, [0, 255, 255]),
    (Color::White, [255, 255, 255]),
];

/// A colour for `[r, g, b]` in [0, 1]: 24-bit, the nearest of the 256-colour palette's
/// 6x6x6 cube, or the nearest of the 16 ANSI colours.
pub(crate) fn rgb_color([r, g, b]: [f32; 3], palette: Palette) -> Color {
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    match palette {
        Palette::Rgb => Color::Rgb(byte(r), byte(g), byte(b)),
        Palette::Indexed => {
            let level = |v: f32| ramp_index(v, 6) as u8;
            Color::Indexed(16 + 36 * level(r) + 6 * level(g) + level(b))
        }
        Palette::Ansi16 => {
            let want = [byte(r), byte(g), byte(b)];
            let distance = |c: &[u8; 3]| {
                c.iter()
                    .zip(want)
                    .map(|(&a, b)| (a as i32 - b as i32).pow(2))
                    .sum::<i32>()
            };
            ANSI16
                .iter()
                .min_by_key(|(_, c)| distance(c))
                .map_or(Color::Reset, |(colour, _)| *colour)
        }
    }
}

/// Draws a colour image into exactly `cols` x `rows` cells as half blocks (two pixels a
/// cell). Only for styles with colour and without `--ascii`; the others show the channels as
/// shades (see `inspect`).
pub(crate) fn rgb_lines(img: &RgbImage, style: Style, cols: u16, rows: u16) -> Vec<Line<'static>> {
    let (cols, rows) = (cols as usize, rows as usize);
    if img.values.is_empty() || cols == 0 || rows == 0 {
        return Vec::new();
    }
    let at = |x: usize, y: usize| {
        let sx = (x * img.width / cols).min(img.width - 1);
        let sy = (y * img.height / (2 * rows)).min(img.height - 1);
        rgb_color(img.pixel(sy, sx), style.palette)
    };
    (0..rows)
        .map(|r| {
            Line::from(
                (0..cols)
                    .map(|c| {
                        Span::styled(
                            "▀",
                            CellStyle::default().fg(at(c, 2 * r)).bg(at(c, 2 * r + 1)),
                        )
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .collect()
}

/// The largest square-looking tile (`cols = 2 * rows`) that fits `n` tiles, with one-cell gaps,
/// into `width` x `height`. Returns (tile cols, tile rows, tiles per row), or `None` when even
/// 2x1 tiles do not fit.
pub(crate) fn tile_layout(n: usize, width: u16, height: u16) -> Option<(u16, u16, usize)> {
    if n == 0 {
        return None;
    }
    (1..=height).rev().find_map(|th| {
        let tw = 2 * th;
        let per_row = ((width + 1) / (tw + 1)) as usize;
        if per_row == 0 {
            return None;
        }
        let rows_of_tiles = n.div_ceil(per_row) as u16;
        (rows_of_tiles * (th + 1) - 1 <= height).then_some((tw, th, per_row.min(n)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(lines: &[Line]) -> Vec<String> {
        lines
            .iter()
            .map(|l| l.spans.iter().map(|s| s.content.as_ref()).collect())
            .collect()
    }

    const ASCII: Style = Style {
        ascii: true,
        color: false,
        palette: Palette::Indexed,
    };
    const UNICODE: Style = Style {
        ascii: false,
        color: false,
        palette: Palette::Indexed,
    };

    #[test]
    fn colour_pictures_use_24_bit_or_the_colour_cube() {
        // A 2x1 picture: pure red above, pure blue below.
        let img = RgbImage {
            height: 2,
            width: 1,
            values: vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0],
        };
        let style = |palette| Style {
            ascii: false,
            color: true,
            palette,
        };
        let span = &rgb_lines(&img, style(Palette::Rgb), 1, 1)[0].spans[0];
        assert_eq!(span.content, "▀");
        assert_eq!(span.style.fg, Some(Color::Rgb(255, 0, 0)));
        assert_eq!(span.style.bg, Some(Color::Rgb(0, 0, 255)));
        let span = &rgb_lines(&img, style(Palette::Indexed), 1, 1)[0].spans[0];
        assert_eq!(span.style.fg, Some(Color::Indexed(16 + 36 * 5)));
        assert_eq!(span.style.bg, Some(Color::Indexed(16 + 5)));
        // TERM=linux: the nearest of the 16 colours.
        let span = &rgb_lines(&img, style(Palette::Ansi16), 1, 1)[0].spans[0];
        assert_eq!(span.style.fg, Some(Color::LightRed));
        assert_eq!(span.style.bg, Some(Color::Blue));
    }

    #[test]
    fn known_arrays_render_as_expected_characters() {
        // A 2x2 filter with weights -1, 0 / 0.5, 1 on the diverging scale.
        let f = FilterImage {
            height: 2,
            width: 2,
            values: vec![-1.0, 0.0, 0.5, 1.0],
        };
        assert_eq!(
            text(&grid_lines(&f, Scale::Diverging, ASCII, 2, 2)),
            vec![" +", "#@"]
        );
        assert_eq!(
            text(&grid_lines(&f, Scale::Diverging, UNICODE, 2, 2)),
            vec![" ▒", "▓█"]
        );
        // Doubled in width for square pixels.
        assert_eq!(
            text(&grid_lines(&f, Scale::Diverging, ASCII, 4, 2)),
            vec!["  ++", "##@@"]
        );
        // A gray image 0..3 in one row.
        let g = FilterImage {
            height: 1,
            width: 4,
            values: vec![0.0, 1.0, 2.0, 3.0],
        };
        assert_eq!(
            text(&grid_lines(&g, Scale::Gray, ASCII, 4, 1)),
            vec![" -*@"]
        );
    }

    #[test]
    fn colour_uses_half_blocks_with_diverging_colours() {
        let f = FilterImage {
            height: 2,
            width: 1,
            values: vec![-1.0, 1.0],
        };
        let lines = grid_lines(
            &f,
            Scale::Diverging,
            Style {
                ascii: false,
                color: true,
                palette: Palette::Indexed,
            },
            1,
            1,
        );
        let span = &lines[0].spans[0];
        assert_eq!(span.content, "▀");
        assert_eq!(
            span.style.fg,
            Some(Color::Indexed(16 + 5)),
            "upper pixel full blue"
        );
        assert_eq!(
            span.style.bg,
            Some(Color::Indexed(16 + 36 * 5)),
            "lower pixel full red"
        );
    }

    #[test]
    fn text_art_averages_the_pixels_a_cell_covers_and_shares_a_scale() {
        // 4x2 pixels into 2x1 cells: each cell the mean of a 2x2 block.
        let g = FilterImage {
            height: 2,
            width: 4,
            values: vec![0.0, 0.0, 3.0, 3.0, 0.0, 0.0, 3.0, 1.0],
        };
        assert_eq!(text(&art_lines(&g, Scale::Gray, ASCII, 2, 1)), vec![" %"]);
        // A weak filter on the layer's scale stays faint; on its own scale it is full.
        let weak = FilterImage {
            height: 1,
            width: 2,
            values: vec![-0.1, 0.1],
        };
        assert_eq!(
            text(&art_lines(&weak, Scale::Diverging, ASCII, 2, 1)),
            vec![" @"]
        );
        assert_eq!(
            text(&art_lines(&weak, Scale::DivergingBy(1.0), ASCII, 2, 1)),
            vec!["=+"]
        );
        assert_eq!(shared_magnitude([&g, &weak]), 3.0);
    }

    #[test]
    fn tiles_fit_the_area() {
        assert_eq!(tile_layout(8, 38, 7), Some((6, 3, 5)));
        assert_eq!(tile_layout(1, 10, 10), Some((10, 5, 1)));
        assert_eq!(tile_layout(100, 10, 2), None);
    }
}
