//! Small images (filters, feature maps, digits) painted as scaled-up tiles, colour scales and
//! text labels: what the filter, feature-map and most-wrong pictures are made of.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{Area, Drawn};
use crate::train::{FilterImage, RgbImage};

/// How values map to colours.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scale {
    /// Blue for negative, white for zero, red for positive; ±`limit` is full colour.
    Diverging { limit: f32 },
    /// Black at `lo`, white at `hi`.
    Gray { lo: f32, hi: f32 },
    /// White at 0 (paper), black at 1 (ink): how a digit looks on paper.
    Ink,
}

const NEGATIVE: (f32, f32, f32) = (33.0, 102.0, 172.0);
const POSITIVE: (f32, f32, f32) = (178.0, 24.0, 43.0);

impl Scale {
    /// A diverging scale symmetric about zero that fits every value given.
    pub(crate) fn diverging<'a>(values: impl Iterator<Item = &'a f32>) -> Scale {
        let limit = values.fold(
            0.0f32,
            |m, v| if v.is_finite() { m.max(v.abs()) } else { m },
        );
        Scale::Diverging {
            limit: if limit > 0.0 { limit } else { 1.0 },
        }
    }

    pub(crate) fn colour(self, v: f32) -> RGBColor {
        let v = if v.is_finite() { v } else { 0.0 };
        let mix = |to: (f32, f32, f32), t: f32| {
            let t = t.clamp(0.0, 1.0);
            let c = |a: f32| (255.0 + (a - 255.0) * t).round() as u8;
            RGBColor(c(to.0), c(to.1), c(to.2))
        };
        match self {
            Scale::Diverging { limit } if v < 0.0 => mix(NEGATIVE, -v / limit),
            Scale::Diverging { limit } => mix(POSITIVE, v / limit),
            Scale::Gray { lo, hi } => {
                let t = if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
                let g = (t.clamp(0.0, 1.0) * 255.0).round() as u8;
                RGBColor(g, g, g)
            }
            Scale::Ink => {
                let g = 255 - (v.clamp(0.0, 1.0) * 255.0).round() as u8;
                RGBColor(g, g, g)
            }
        }
    }
}

/// Fills the `w`x`h` pixels whose top-left corner is `(x, y)` (plotters' filled rectangles
/// leave out their last row and column, which shows as a grid in scaled-up pixels).
pub(crate) fn fill(area: &Area, (x, y): (i32, i32), (w, h): (i32, i32), colour: RGBColor) -> Drawn {
    for py in y..y + h {
        for px in x..x + w {
            area.draw_pixel((px, py), &colour)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Paints `image` with its top-left corner at `(x, y)`, each value a `zoom`x`zoom` square.
pub(crate) fn paint(
    area: &Area,
    image: &FilterImage,
    (x, y): (i32, i32),
    zoom: i32,
    scale: Scale,
) -> Drawn {
    for (i, &v) in image.values.iter().enumerate() {
        let (r, c) = ((i / image.width) as i32, (i % image.width) as i32);
        fill(
            area,
            (x + c * zoom, y + r * zoom),
            (zoom, zoom),
            scale.colour(v),
        )?;
    }
    Ok(())
}

/// Paints a colour picture (values in [0, 1]) with its top-left corner at `(x, y)`, each pixel
/// a `zoom`x`zoom` square.
pub(crate) fn paint_rgb(area: &Area, image: &RgbImage, (x, y): (i32, i32), zoom: i32) -> Drawn {
    let byte = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
    for r in 0..image.height {
        for c in 0..image.width {
            let [red, green, blue] = image.pixel(r, c);
            fill(
                area,
                (x + c as i32 * zoom, y + r as i32 * zoom),
                (zoom, zoom),
                RGBColor(byte(red), byte(green), byte(blue)),
            )?;
        }
    }
    Ok(())
}

/// A test picture: in colour when it has colour, else as ink on paper.
pub(crate) fn paint_picture(
    area: &Area,
    gray: &FilterImage,
    colour: Option<&RgbImage>,
    at: (i32, i32),
    zoom: i32,
) -> Drawn {
    match colour {
        Some(c) => paint_rgb(area, c, at, zoom),
        None => paint(area, gray, at, zoom, Scale::Ink),
    }
}

/// A thin grey frame just outside a `w`x`h` tile at `(x, y)`.
pub(crate) fn frame(area: &Area, (x, y): (i32, i32), (w, h): (i32, i32)) -> Drawn {
    area.draw(&Rectangle::new(
        [(x - 1, y - 1), (x + w, y + h)],
        RGBColor(170, 170, 170).stroke_width(1),
    ))
    .map_err(|e| e.to_string())
}

/// Text with its top-left corner at `(x, y)` (or centred on `x` when `centred`).
pub(crate) fn label(
    area: &Area,
    text: &str,
    (x, y): (i32, i32),
    size: u32,
    centred: bool,
) -> Drawn {
    let h = if centred { HPos::Center } else { HPos::Left };
    let style = TextStyle::from(("sans-serif", size).into_font())
        .color(&BLACK)
        .pos(Pos::new(h, VPos::Top));
    area.draw_text(text, &style, (x, y))
        .map_err(|e| e.to_string())
}

/// A picture's heading (large) and the line under it that says how to read it.
pub(crate) fn title(area: &Area, heading: &str, subtitle: &str) -> Drawn {
    label(area, heading, (16, 12), 22, false)?;
    label(area, subtitle, (16, 42), 14, false)
}

/// A horizontal colour bar for a diverging scale with its end and middle values.
pub(crate) fn colour_bar(area: &Area, scale: Scale, (x, y): (i32, i32), width: i32) -> Drawn {
    let Scale::Diverging { limit } = scale else {
        return Ok(());
    };
    for i in 0..width {
        let v = limit * (2.0 * i as f32 / (width - 1).max(1) as f32 - 1.0);
        fill(area, (x + i, y), (1, 12), scale.colour(v))?;
    }
    frame(area, (x, y), (width, 12))?;
    label(area, &format!("{:.2}", -limit), (x, y + 16), 13, true)?;
    label(area, "0", (x + width / 2, y + 16), 13, true)?;
    label(area, &format!("+{limit:.2}"), (x + width, y + 16), 13, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diverging_scale_is_white_at_zero_and_saturates_at_the_limit() {
        let s = Scale::diverging([-0.5f32, 0.25, f32::NAN].iter());
        assert!(matches!(s, Scale::Diverging { limit } if limit == 0.5));
        assert_eq!(s.colour(0.0), RGBColor(255, 255, 255));
        assert_eq!(s.colour(-0.5), RGBColor(33, 102, 172));
        assert_eq!(s.colour(9.0), RGBColor(178, 24, 43));
        let half = s.colour(0.25);
        assert!(half.0 > 178 && half.0 < 255 && half.1 < 255);
        // All zeros (a dead layer) still gives a usable scale.
        assert!(
            matches!(Scale::diverging([0.0f32].iter()), Scale::Diverging { limit } if limit == 1.0)
        );
    }

    #[test]
    fn ink_is_dark_on_white_paper() {
        assert_eq!(Scale::Ink.colour(0.0), RGBColor(255, 255, 255));
        assert_eq!(Scale::Ink.colour(1.0), RGBColor(0, 0, 0));
        assert_eq!(
            Scale::Gray { lo: 0.0, hi: 0.0 }.colour(3.0),
            RGBColor(0, 0, 0)
        );
    }
}
