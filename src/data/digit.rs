//! Turns a picture of one handwritten digit into an MNIST-style 28x28 image, the way MNIST
//! itself was made: grayscale, white ink on black (inverted when the background is light),
//! cropped to the ink, scaled into a 20x20 box keeping the aspect ratio, and placed in 28x28 so
//! that its centre of mass is at the centre.

/// Side of the output image.
pub(crate) const SIDE: usize = 28;
/// Side of the box the digit is scaled into.
const BOX: f32 = 20.0;

/// A grayscale picture: `width * height` values in [0, 1], row-major.
pub(crate) struct Gray<'a> {
    pub(crate) width: usize,
    pub(crate) height: usize,
    pub(crate) pixels: &'a [f32],
}

/// Why a picture cannot be turned into a digit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum DigitError {
    Empty,
    NoInk,
}

impl std::fmt::Display for DigitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DigitError::Empty => write!(f, "the image has no pixels"),
            DigitError::NoInk => write!(f, "no ink found: the image looks blank"),
        }
    }
}

/// Largest picture side accepted, in pixels: a header claiming more is not a photo of a digit,
/// and is refused before anything is allocated.
pub(crate) const MAX_PICTURE_SIDE: u32 = 12_000;
/// Most pixels accepted (a 6000x4000 photo): a few hundred bytes of JPEG can claim far more,
/// and decoding them would take seconds and hundreds of megabytes.
pub(crate) const MAX_PICTURE_PIXELS: u64 = 25_000_000;

/// Decodes a PNG or JPEG (recognised by its content, not its name) and makes the digit in it
/// MNIST-like. The error says what is wrong, for a message naming the file.
pub fn digit_from_picture(bytes: &[u8]) -> Result<Vec<f32>, String> {
    let mut reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?;
    match reader.format() {
        Some(image::ImageFormat::Jpeg) if !has_jpeg_end(bytes) => {
            // The decoder fills a cut-off scan with grey and would let us predict from it.
            return Err("a truncated or corrupt JPEG (no end-of-image marker)".into());
        }
        Some(image::ImageFormat::Png | image::ImageFormat::Jpeg) => {}
        Some(other) => return Err(format!("a {other:?} image; give a PNG or JPEG")),
        None => return Err("not a PNG or JPEG image".into()),
    }
    let (w, h) = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?
        .into_dimensions()
        .map_err(|e| {
            format!(
                "not a readable PNG or JPEG image ({})",
                one_line(&e.to_string())
            )
        })?;
    if u64::from(w) * u64::from(h) > MAX_PICTURE_PIXELS {
        return Err(format!(
            "the picture is {w}x{h} ({:.1} megapixels); predict takes at most {} megapixels: scale it down",
            (u64::from(w) * u64::from(h)) as f64 / 1e6,
            MAX_PICTURE_PIXELS / 1_000_000
        ));
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_PICTURE_SIDE);
    limits.max_image_height = Some(MAX_PICTURE_SIDE);
    limits.max_alloc = Some(256 << 20);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| {
        format!(
            "not a readable PNG or JPEG image ({})",
            one_line(&e.to_string())
        )
    })?;
    // Transparent pixels are paper: composited on white (black strokes on a transparent
    // background would otherwise be black on black).
    let gray = img.to_luma_alpha8();
    let pixels: Vec<f32> = gray
        .pixels()
        .map(|p| {
            let (v, a) = (p.0[0] as f32 / 255.0, p.0[1] as f32 / 255.0);
            v * a + (1.0 - a)
        })
        .collect();
    let picture = Gray {
        width: gray.width() as usize,
        height: gray.height() as usize,
        pixels: &pixels,
    };
    mnist_like(&picture).map_err(|e| e.to_string())
}

/// Whether a JPEG has its end-of-image marker (FF D9) after the start of its scan, as every
/// complete one does (some cameras append data after it).
fn has_jpeg_end(bytes: &[u8]) -> bool {
    let scan = bytes
        .windows(2)
        .position(|w| w == [0xFF, 0xDA])
        .unwrap_or(bytes.len());
    bytes[scan..].windows(2).any(|w| w == [0xFF, 0xD9])
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The 28x28 MNIST-style image (values in [0, 1], ink bright) of the digit in `picture`.
pub(crate) fn mnist_like(picture: &Gray) -> Result<Vec<f32>, DigitError> {
    let (w, h) = (picture.width, picture.height);
    if w == 0 || h == 0 || picture.pixels.len() != w * h {
        return Err(DigitError::Empty);
    }
    // The border tells the background: light paper or a dark screen.
    let mut border: Vec<f32> = (0..w)
        .flat_map(|x| [picture.pixels[x], picture.pixels[(h - 1) * w + x]])
        .chain((0..h).flat_map(|y| [picture.pixels[y * w], picture.pixels[y * w + w - 1]]))
        .collect();
    border.sort_by(f32::total_cmp);
    let median = border[border.len() / 2];
    let invert = median > 0.5;
    let ink: Vec<f32> = picture
        .pixels
        .iter()
        .map(|&v| if invert { 1.0 - v } else { v })
        .collect();
    let background = if invert { 1.0 - median } else { median };
    let peak = ink.iter().copied().fold(0.0f32, f32::max);
    if peak - background < 0.1 {
        return Err(DigitError::NoInk);
    }
    // Contrast stretched so the background is 0 and the darkest stroke 1.
    let ink: Vec<f32> = ink
        .iter()
        .map(|&v| ((v - background) / (peak - background)).clamp(0.0, 1.0))
        .collect();
    let (mut x0, mut y0, mut x1, mut y1) = (w, h, 0, 0);
    for (i, _) in ink.iter().enumerate().filter(|(_, v)| **v > 0.25) {
        let (x, y) = (i % w, i / w);
        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
    }
    if x1 <= x0 || y1 <= y0 {
        return Err(DigitError::NoInk);
    }
    let (cw, ch) = ((x1 - x0) as f32, (y1 - y0) as f32);
    let scale = BOX / cw.max(ch);
    let (tw, th) = (
        ((cw * scale).round() as usize).max(1),
        ((ch * scale).round() as usize).max(1),
    );
    let boxed = area_resample(&ink, w, (x0, y0, x1, y1), tw, th);
    // Centre of mass of the scaled digit, then shift it to the middle of 28x28.
    let total: f32 = boxed.iter().sum();
    let (mut mx, mut my) = (0.0f32, 0.0f32);
    for (i, v) in boxed.iter().enumerate() {
        mx += v * ((i % tw) as f32 + 0.5);
        my += v * ((i / tw) as f32 + 0.5);
    }
    let (mx, my) = (mx / total, my / total);
    let offset = |m: f32, size: usize| {
        ((SIDE as f32 / 2.0 - m).round() as isize).clamp(0, (SIDE - size) as isize) as usize
    };
    let (ox, oy) = (offset(mx, tw), offset(my, th));
    let mut out = vec![0.0f32; SIDE * SIDE];
    for (i, v) in boxed.iter().enumerate() {
        out[(oy + i / tw) * SIDE + ox + i % tw] = *v;
    }
    Ok(out)
}

/// Area-averaging resample of the region `(x0, y0, x1, y1)` of a `width`-wide image to
/// `tw` x `th`: each target pixel is the mean of the source area it covers.
fn area_resample(
    src: &[f32],
    width: usize,
    (x0, y0, x1, y1): (usize, usize, usize, usize),
    tw: usize,
    th: usize,
) -> Vec<f32> {
    let (sx, sy) = ((x1 - x0) as f32 / tw as f32, (y1 - y0) as f32 / th as f32);
    let overlap = |a0: f32, a1: f32, p: usize| (a1.min(p as f32 + 1.0) - a0.max(p as f32)).max(0.0);
    let mut out = vec![0.0f32; tw * th];
    for ty in 0..th {
        let (a0, a1) = (y0 as f32 + ty as f32 * sy, y0 as f32 + (ty + 1) as f32 * sy);
        for tx in 0..tw {
            let (b0, b1) = (x0 as f32 + tx as f32 * sx, x0 as f32 + (tx + 1) as f32 * sx);
            let (mut sum, mut weight) = (0.0f32, 0.0f32);
            for y in a0.floor() as usize..(a1.ceil() as usize).min(y1) {
                let wy = overlap(a0, a1, y);
                for x in b0.floor() as usize..(b1.ceil() as usize).min(x1) {
                    let wgt = wy * overlap(b0, b1, x);
                    sum += wgt * src[y * width + x];
                    weight += wgt;
                }
            }
            out[ty * tw + tx] = if weight > 0.0 { sum / weight } else { 0.0 };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 200x300 (w x h) light picture with a dark ring drawn off-centre, near the top left.
    fn ring_picture() -> Vec<f32> {
        let (w, h) = (200usize, 300usize);
        (0..w * h)
            .map(|i| {
                let (x, y) = ((i % w) as f32, (i / w) as f32);
                let d = ((x - 60.0).powi(2) / 900.0 + (y - 80.0).powi(2) / 2500.0).sqrt();
                if (0.7..1.0).contains(&d) { 0.1 } else { 0.95 }
            })
            .collect()
    }

    #[test]
    fn off_centre_dark_on_light_digit_comes_out_centred_28x28() {
        let pixels = ring_picture();
        let img = mnist_like(&Gray {
            width: 200,
            height: 300,
            pixels: &pixels,
        })
        .unwrap();
        assert_eq!(img.len(), 784);
        // Inverted: ink bright, background black.
        assert_eq!(img[0], 0.0);
        assert!(img.iter().copied().fold(0.0, f32::max) > 0.9);
        // The ring is 2:3.33 tall: scaled to 20 rows, about 12 columns.
        let rows: Vec<usize> = (0..28)
            .filter(|&y| (0..28).any(|x| img[y * 28 + x] > 0.3))
            .collect();
        let cols: Vec<usize> = (0..28)
            .filter(|&x| (0..28).any(|y| img[y * 28 + x] > 0.3))
            .collect();
        assert!((19..=20).contains(&rows.len()), "{rows:?}");
        assert!((10..=14).contains(&cols.len()), "{cols:?}");
        // Centre of mass within a pixel of the centre.
        let total: f32 = img.iter().sum();
        let cx = img
            .iter()
            .enumerate()
            .map(|(i, v)| v * ((i % 28) as f32 + 0.5))
            .sum::<f32>()
            / total;
        let cy = img
            .iter()
            .enumerate()
            .map(|(i, v)| v * ((i / 28) as f32 + 0.5))
            .sum::<f32>()
            / total;
        assert!(
            (cx - 14.0).abs() <= 1.0 && (cy - 14.0).abs() <= 1.0,
            "({cx}, {cy})"
        );
    }

    /// A vertical stroke, as `encode` makes it: ink where `ink` is true.
    fn stroke<P: image::Pixel<Subpixel = u8>>(ink: P, paper: P) -> image::ImageBuffer<P, Vec<u8>> {
        image::ImageBuffer::from_fn(40, 40, |x, y| {
            if (17..23).contains(&x) && (6..34).contains(&y) {
                ink
            } else {
                paper
            }
        })
    }

    fn encode(img: impl Into<image::DynamicImage>, format: image::ImageFormat) -> Vec<u8> {
        let mut out = std::io::Cursor::new(Vec::new());
        img.into().write_to(&mut out, format).unwrap();
        out.into_inner()
    }

    #[test]
    fn transparent_paper_counts_as_white() {
        use image::{ImageFormat::Png, Luma, LumaA};
        let on_white = encode(stroke(Luma([0u8]), Luma([255])), Png);
        let on_nothing = encode(stroke(LumaA([0u8, 255]), LumaA([0, 0])), Png);
        let expected = digit_from_picture(&on_white).unwrap();
        assert_eq!(digit_from_picture(&on_nothing), Ok(expected));
    }

    #[test]
    fn a_cut_off_jpeg_is_an_error_not_a_guess() {
        let jpeg = encode(
            stroke(image::Luma([0u8]), image::Luma([255])),
            image::ImageFormat::Jpeg,
        );
        assert!(digit_from_picture(&jpeg).is_ok());
        let scan = jpeg.windows(2).position(|w| w == [0xFF, 0xDA]).unwrap();
        let cut = &jpeg[..scan + (jpeg.len() - scan) / 2];
        assert_eq!(
            digit_from_picture(cut),
            Err("a truncated or corrupt JPEG (no end-of-image marker)".to_string())
        );
    }

    #[test]
    fn blank_pictures_are_errors() {
        let white = vec![1.0f32; 100];
        assert_eq!(
            mnist_like(&Gray {
                width: 10,
                height: 10,
                pixels: &white
            }),
            Err(DigitError::NoInk)
        );
        assert_eq!(
            mnist_like(&Gray {
                width: 0,
                height: 0,
                pixels: &[]
            }),
            Err(DigitError::Empty)
        );
    }
}
