//! How the model errs on the test set: the confusion matrix with counts, and the test digits
//! it gets most confidently wrong.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::tiles::{Scale, fill, frame, label, paint_picture, title};
use super::{Area, Drawn};
use crate::train::{FilterImage, RgbImage};

pub const CONFUSION_SIZE: (u32, u32) = (820, 780);
pub const MOST_WRONG_SIZE: (u32, u32) = (1080, 760);

/// Most-wrong digits shown: rows x columns.
pub(crate) const MOST_WRONG_GRID: (usize, usize) = (4, 8);

/// A test digit the model got wrong.
#[derive(Debug, Clone)]
pub(crate) struct Mistake {
    pub(crate) index: usize,
    pub(crate) truth: usize,
    pub(crate) predicted: usize,
    /// The probability the model gave its (wrong) prediction.
    pub(crate) confidence: f32,
    pub(crate) digit: FilterImage,
    /// The picture in colour, for a colour model.
    pub(crate) colour: Option<RgbImage>,
}

/// A class name cut to `chars` characters (a full stop marks the cut).
fn short(name: &str, chars: usize) -> String {
    if name.chars().count() <= chars {
        name.to_string()
    } else {
        name.chars()
            .take(chars.saturating_sub(1))
            .collect::<String>()
            + "."
    }
}

/// `counts[truth][predicted]`, rows and columns labelled with `names`.
pub(crate) fn draw_confusion(area: &Area, counts: &[Vec<usize>], names: &[String]) -> Drawn {
    area.fill(&WHITE).map_err(|e| e.to_string())?;
    let n = counts.len();
    let total: usize = counts.iter().flatten().sum();
    let right: usize = (0..n).map(|c| counts[c][c]).sum();
    title(
        area,
        &format!(
            "Confusion matrix, test set: {right} of {total} right ({:.2}%)",
            100.0 * right as f64 / total.max(1) as f64
        ),
        "rows: true class, columns: predicted; blue = right, red = mistakes (darker = more)",
    )?;
    let cell = (600 / n.max(1)).clamp(12, 60) as i32;
    let (left, top) = (110, 110);
    let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
    let worst = (0..n)
        .flat_map(|t| (0..n).filter(move |&p| p != t).map(move |p| (t, p)))
        .map(|(t, p)| counts[t][p])
        .max()
        .unwrap_or(0)
        .max(1);
    label(
        area,
        "predicted",
        (left + cell * n as i32 / 2, top - 40),
        14,
        true,
    )?;
    label(area, "true", (16, top - 22), 14, false)?;
    label(
        area,
        "right",
        (left + cell * n as i32 + 30, top - 22),
        14,
        true,
    )?;
    for (t, counts_t) in counts.iter().enumerate() {
        let row: usize = counts_t.iter().sum();
        let y = top + t as i32 * cell;
        label(
            area,
            &short(&name(t), 13),
            (left - 52, y + cell / 2 - 8),
            13,
            true,
        )?;
        label(
            area,
            &short(&name(t), (cell / 7).max(1) as usize),
            (left + t as i32 * cell + cell / 2, top - 20),
            12,
            true,
        )?;
        for (p, &count) in counts_t.iter().enumerate() {
            let x = left + p as i32 * cell;
            let shade = if p == t {
                Scale::Diverging { limit: 1.0 }.colour(-(count as f32 / row.max(1) as f32))
            } else if count == 0 {
                RGBColor(255, 255, 255)
            } else {
                Scale::Diverging { limit: 1.0 }.colour(0.15 + 0.85 * count as f32 / worst as f32)
            };
            fill(area, (x, y), (cell, cell), shade)?;
            frame(area, (x + 1, y + 1), (cell - 2, cell - 2))?;
            if count > 0 && cell >= 30 {
                let dark = (shade.0 as u32 + shade.1 as u32 + shade.2 as u32) < 380;
                let text = count.to_string();
                let style = TextStyle::from(("sans-serif", 13).into_font())
                    .color(if dark { &WHITE } else { &BLACK })
                    .pos(Pos::new(HPos::Center, VPos::Center));
                area.draw_text(&text, &style, (x + cell / 2, y + cell / 2))
                    .map_err(|e| e.to_string())?;
            }
        }
        let rate = 100.0 * counts_t[t] as f64 / row.max(1) as f64;
        label(
            area,
            &format!("{rate:.1}%"),
            (left + cell * n as i32 + 30, y + cell / 2 - 8),
            13,
            true,
        )?;
    }
    Ok(())
}

pub(crate) fn draw_most_wrong(
    area: &Area,
    mistakes: &[Mistake],
    total_wrong: usize,
    names: &[String],
) -> Drawn {
    let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
    area.fill(&WHITE).map_err(|e| e.to_string())?;
    let (rows, cols) = MOST_WRONG_GRID;
    title(
        area,
        &format!(
            "The {} test pictures the model is most sure about and gets wrong ({total_wrong} wrong in all)",
            mistakes.len().min(rows * cols)
        ),
        "under each: true class -> predicted, the probability the model gave its prediction, test index",
    )?;
    let (pitch_x, pitch_y, zoom) = (130, 170, 4);
    for (i, m) in mistakes.iter().take(rows * cols).enumerate() {
        let x = 24 + (i % cols) as i32 * pitch_x;
        let y = 80 + (i / cols) as i32 * pitch_y;
        paint_picture(area, &m.digit, m.colour.as_ref(), (x, y), zoom)?;
        let (w, h) = (m.digit.width as i32 * zoom, m.digit.height as i32 * zoom);
        frame(area, (x, y), (w, h))?;
        let centre = x + w / 2;
        label(
            area,
            &format!(
                "{} -> {}",
                short(&name(m.truth), 8),
                short(&name(m.predicted), 8)
            ),
            (centre, y + h + 4),
            14,
            true,
        )?;
        label(
            area,
            &format!("{:.1}%  #{}", 100.0 * m.confidence, m.index),
            (centre, y + h + 24),
            12,
            true,
        )?;
    }
    Ok(())
}
