//! Pictures to bytes: PNG (gray, RGB, RGBA, palette, 16-bit) and JPEG (gray, RGB, CMYK),
//! decoded in parallel straight into each split's pixel buffer, resized (bilinear) when
//! `data.image_size` is set and converted to 1 or 3 channels. Alpha is dropped, as Keras and
//! PIL's `convert("RGB")` do.

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, ImageDecoder, ImageReader};
use rayon::prelude::*;

use super::Split;
use super::digit::{MAX_PICTURE_PIXELS, MAX_PICTURE_SIDE};
use super::folder::Entry;
use super::progress::Progress;
use crate::error::{Error, Result};

/// The resize filter for `data.image_size`, named in the README: bilinear, Keras' default.
pub(crate) const RESIZE_FILTER: FilterType = FilterType::Triangle;
/// A picture file larger than this is refused before it is read.
const MAX_FILE_BYTES: u64 = 64 << 20;
/// How many undecodable names a warning lists.
const NAMES_SHOWN: usize = 3;

/// What the decoding options settle: the stored image shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    /// `data.image_size`; without it every picture must have the size of the first.
    pub(crate) size: Option<[usize; 2]>,
    /// `data.channels`; without it 3, reduced to 1 when no picture has colour.
    pub(crate) channels: Option<usize>,
    pub(crate) skip_bad: bool,
}

/// Decoded splits (in the order of the lists given) and what was left out.
pub(crate) struct Decoded {
    pub(crate) splits: Vec<Split>,
    pub(crate) shape: [usize; 3],
    /// Pictures that failed to decode and were left out (`data.skip_bad_images`).
    pub(crate) bad: Vec<PathBuf>,
}

enum Outcome {
    Ok {
        colour: bool,
    },
    Bad(String),
    /// Decoded at `[height, width]`, which is not the size of the others.
    OtherSize([usize; 2]),
    /// Refused: a hard error even when bad pictures are skipped.
    TooLarge(String),
}

/// Decodes every list into one split each.
pub(crate) fn decode(lists: &[&[Entry]], target: Target, progress: &Progress) -> Result<Decoded> {
    let (size, reference) = match target.size {
        Some(s) => (s, None),
        None => {
            let (s, path) = first_size(lists)?;
            (s, Some(path))
        }
    };
    let channels = target.channels.unwrap_or(3);
    let sample_len = size[0] * size[1] * channels;
    let mut splits = Vec::new();
    let mut any_colour = false;
    let mut bad = Vec::new();
    for list in lists {
        let mut images = vec![0u8; list.len() * sample_len];
        let outcomes: Vec<Outcome> = images
            .par_chunks_mut(sample_len)
            .zip(list.par_iter())
            .map(|(dst, entry)| {
                let outcome = decode_into(entry, dst, size, target.size.is_some(), channels);
                progress.tick();
                outcome
            })
            .collect();
        let mut keep = vec![true; list.len()];
        for (i, (outcome, entry)) in outcomes.iter().zip(list.iter()).enumerate() {
            match outcome {
                Outcome::Ok { colour } => any_colour |= colour,
                Outcome::OtherSize([h, w]) => {
                    let reference = reference.as_deref().unwrap_or(Path::new("?"));
                    return Err(Error::data(
                        &entry.path,
                        format!(
                            "picture is {h}x{w} (height x width) but {} is {}x{}; set data.image_size = [{}, {}] to resize every picture to one size",
                            reference.display(),
                            size[0],
                            size[1],
                            size[0],
                            size[1]
                        ),
                    ));
                }
                Outcome::TooLarge(why) => return Err(Error::data(&entry.path, why.clone())),
                Outcome::Bad(why) if !target.skip_bad => {
                    return Err(Error::data(
                        &entry.path,
                        format!(
                            "cannot decode picture: {why} (set data.skip_bad_images = true to leave such files out)"
                        ),
                    ));
                }
                Outcome::Bad(_) => {
                    keep[i] = false;
                    bad.push(entry.path.clone());
                }
            }
        }
        let mut labels = Vec::with_capacity(list.len());
        let mut kept = 0;
        for (i, entry) in list.iter().enumerate() {
            if keep[i] {
                images.copy_within(i * sample_len..(i + 1) * sample_len, kept * sample_len);
                labels.push(entry.label);
                kept += 1;
            }
        }
        images.truncate(kept * sample_len);
        splits.push(Split { images, labels });
    }
    let mut shape = [size[0], size[1], channels];
    if target.channels.is_none() && !any_colour {
        // Every picture was gray: keep one of the three equal channels.
        for split in &mut splits {
            let pixels = split.images.len() / 3;
            for i in 0..pixels {
                split.images[i] = split.images[3 * i];
            }
            split.images.truncate(pixels);
            split.images.shrink_to_fit();
        }
        shape[2] = 1;
    }
    for split in &mut splits {
        split.images.shrink_to_fit();
    }
    Ok(Decoded { splits, shape, bad })
}

/// The warning for pictures left out by `data.skip_bad_images`, or `None`.
pub(crate) fn bad_warning(bad: &[PathBuf]) -> Option<String> {
    if bad.is_empty() {
        return None;
    }
    let names: Vec<String> = bad
        .iter()
        .take(NAMES_SHOWN)
        .map(|p| p.display().to_string())
        .collect();
    Some(format!(
        "warning: left out {} picture{} that failed to decode: {}{}",
        bad.len(),
        if bad.len() == 1 { "" } else { "s" },
        names.join(", "),
        if bad.len() > NAMES_SHOWN { ", ..." } else { "" }
    ))
}

/// The size of the first picture whose header can be read, and its path.
fn first_size(lists: &[&[Entry]]) -> Result<([usize; 2], PathBuf)> {
    let mut first_error = None;
    for entry in lists.iter().flat_map(|l| l.iter()) {
        match header_size(&entry.path) {
            Ok([h, w]) => return Ok(([h, w], entry.path.clone())),
            Err(e) => {
                first_error.get_or_insert((entry.path.clone(), e));
            }
        }
    }
    match first_error {
        Some((path, why)) => Err(Error::data(&path, format!("cannot decode picture: {why}"))),
        None => Err(Error::data(Path::new("?"), "no pictures")),
    }
}

fn header_size(path: &Path) -> std::result::Result<[usize; 2], String> {
    let reader = ImageReader::open(path)
        .map_err(|e| one_line(&e))?
        .with_guessed_format()
        .map_err(|e| one_line(&e))?;
    let (w, h) = reader.into_dimensions().map_err(|e| one_line(&e))?;
    Ok([h as usize, w as usize])
}

/// Decodes one picture into `dst` (`size` x `channels` bytes).
fn decode_into(
    entry: &Entry,
    dst: &mut [u8],
    size: [usize; 2],
    resize: bool,
    channels: usize,
) -> Outcome {
    if entry.size > MAX_FILE_BYTES {
        return Outcome::TooLarge(format!(
            "picture file is {} MB; the most cnn-tui reads is {} MB",
            entry.size >> 20,
            MAX_FILE_BYTES >> 20
        ));
    }
    let bytes = match std::fs::read(&entry.path) {
        Ok(b) => b,
        Err(e) => return Outcome::Bad(format!("cannot read: {}", one_line(&e))),
    };
    let image = match decode_bytes(&bytes) {
        Ok(image) => image,
        Err(outcome) => return outcome,
    };
    let colour = image.color().has_color();
    let (h, w) = (image.height() as usize, image.width() as usize);
    if [h, w] != size && !resize {
        return Outcome::OtherSize([h, w]);
    }
    fit(&image, size, channels, dst);
    Outcome::Ok { colour }
}

/// Converts `image` to `channels` (1: luma, 3: RGB, alpha dropped) and resizes it to `size`
/// when it has another size, into `dst`.
fn fit(image: &DynamicImage, size: [usize; 2], channels: usize, dst: &mut [u8]) {
    let same = [image.height() as usize, image.width() as usize] == size;
    let (th, tw) = (size[0] as u32, size[1] as u32);
    if channels == 1 {
        let mut gray = image.to_luma8();
        if !same {
            gray = image::imageops::resize(&gray, tw, th, RESIZE_FILTER);
        }
        dst.copy_from_slice(gray.as_raw());
    } else {
        let mut rgb = image.to_rgb8();
        if !same {
            rgb = image::imageops::resize(&rgb, tw, th, RESIZE_FILTER);
        }
        dst.copy_from_slice(rgb.as_raw());
    }
}

/// A PNG or JPEG picture as the input of a model taking `[h, w, c]` (values in [0, 1]):
/// converted to its channels and resized (bilinear) to its height and width, as the training
/// pictures were with `data.image_size`. The error says what is wrong, for a message naming
/// the file.
pub(crate) fn picture_for_model(bytes: &[u8], [h, w, c]: [usize; 3]) -> Result<Vec<f32>, String> {
    if c != 1 && c != 3 {
        return Err(format!(
            "the model takes {c} channels; a picture gives 1 (gray) or 3 (RGB)"
        ));
    }
    let image = decode_bytes(bytes).map_err(|o| match o {
        Outcome::TooLarge(why) => why,
        Outcome::Bad(why) => format!("not a readable PNG or JPEG image ({why})"),
        Outcome::Ok { .. } | Outcome::OtherSize(_) => unreachable!("decode_bytes fails so"),
    })?;
    let mut dst = vec![0u8; h * w * c];
    fit(&image, [h, w], c, &mut dst);
    Ok(dst.iter().map(|&v| v as f32 / 255.0).collect())
}

/// Decodes PNG or JPEG bytes (the content decides), refusing huge pictures before decoding.
fn decode_bytes(bytes: &[u8]) -> std::result::Result<DynamicImage, Outcome> {
    let bad = |e: &dyn std::fmt::Display| Outcome::Bad(one_line(e));
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(&e))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_PICTURE_SIDE);
    limits.max_image_height = Some(MAX_PICTURE_SIDE);
    limits.max_alloc = Some(256 << 20);
    reader.limits(limits);
    let decoder = reader.into_decoder().map_err(|e| match e {
        image::ImageError::Limits(_) => Outcome::TooLarge(format!(
            "picture is larger than {MAX_PICTURE_SIDE} pixels on a side, the most cnn-tui reads"
        )),
        e => bad(&e),
    })?;
    let (w, h) = decoder.dimensions();
    if u64::from(w) * u64::from(h) > MAX_PICTURE_PIXELS {
        return Err(Outcome::TooLarge(format!(
            "picture is {w}x{h} pixels; the most cnn-tui reads is {} million",
            MAX_PICTURE_PIXELS / 1_000_000
        )));
    }
    DynamicImage::from_decoder(decoder).map_err(|e| bad(&e))
}

/// A decoder's message on one line (some span several).
fn one_line(e: &dyn std::fmt::Display) -> String {
    e.to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageBuffer, Luma, Rgba};

    /// Decodes `path` alone into `size` x `channels`; returns the bytes and the outcome.
    fn one(path: &Path, size: [usize; 2], resize: bool, channels: usize) -> (Vec<u8>, Outcome) {
        let entry = Entry {
            path: path.to_path_buf(),
            label: 0,
            size: std::fs::metadata(path).unwrap().len(),
            mtime_ns: 0,
        };
        let mut dst = vec![0u8; size[0] * size[1] * channels];
        let outcome = decode_into(&entry, &mut dst, size, resize, channels);
        (dst, outcome)
    }

    #[test]
    fn each_flavour_decodes_to_the_pixels_it_holds() {
        let tmp = tempfile::tempdir().unwrap();
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures");
        // CMYK JPEG of a gradient whose top-left pixel is (255, 0, 128): back to RGB.
        let (rgb, outcome) = one(&fixtures.join("cmyk-8x8.jpg"), [8, 8], false, 3);
        assert!(matches!(outcome, Outcome::Ok { colour: true }));
        for (got, want) in rgb[..3].iter().zip([255u8, 0, 128]) {
            assert!(got.abs_diff(want) < 24, "{:?}", &rgb[..3]);
        }
        let (_, outcome) = one(&fixtures.join("palette-8x8.png"), [8, 8], false, 3);
        assert!(matches!(outcome, Outcome::Ok { colour: true }));
        // 16-bit gray scales to bytes and is not colour.
        let p16 = tmp.path().join("g16.png");
        ImageBuffer::from_fn(2, 2, |_, _| Luma([51u16 * 257]))
            .save(&p16)
            .unwrap();
        let (g, outcome) = one(&p16, [2, 2], false, 1);
        assert!(matches!(outcome, Outcome::Ok { colour: false }));
        assert_eq!(g, [51; 4]);
        // RGBA: alpha dropped, colour kept; to gray by luma.
        let rgba = tmp.path().join("a.png");
        ImageBuffer::from_fn(2, 2, |_, _| Rgba([200u8, 100, 0, 0]))
            .save(&rgba)
            .unwrap();
        assert_eq!(one(&rgba, [2, 2], false, 3).0[..3], [200, 100, 0]);
        let gray = one(&rgba, [2, 2], false, 1).0[0];
        assert!((100..140).contains(&gray), "{gray}");
        // Another size is reported unless resizing; resizing a flat picture keeps it flat.
        assert!(matches!(
            one(&rgba, [3, 3], false, 3).1,
            Outcome::OtherSize([2, 2])
        ));
        let (big, outcome) = one(&rgba, [5, 3], true, 3);
        assert!(matches!(outcome, Outcome::Ok { .. }));
        assert!(big.chunks(3).all(|p| p == [200, 100, 0]), "{big:?}");
    }
}
