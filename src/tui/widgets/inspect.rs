//! The filters of the selected conv layer, and the probe image beside its feature maps.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::grid::{Scale, art_lines, grid_lines, rgb_lines, shared_magnitude, tile_layout};
use super::pane_of;
use crate::train::{FilterImage, RgbImage, Snapshot};
use crate::tui::app::{App, Pane, Style};

/// One tile: values on a scale, or a colour picture.
#[derive(Clone, Copy)]
enum Tile<'a> {
    Values(&'a FilterImage, Scale),
    Colour(&'a RgbImage),
}

/// Tiles images into `area`, each scaled on its own; returns false if they cannot fit.
fn draw_tiles(frame: &mut Frame, area: Rect, images: &[Tile], style: Style) -> bool {
    let Some((tw, th, per_row)) = tile_layout(images.len(), area.width, area.height) else {
        return false;
    };
    for (i, image) in images.iter().enumerate() {
        let x = area.x + (i % per_row) as u16 * (tw + 1);
        let y = area.y + (i / per_row) as u16 * (th + 1);
        let tile = Rect::new(x, y, tw, th).intersection(area);
        let lines = match image {
            Tile::Values(img, scale) => grid_lines(img, *scale, style, tile.width, tile.height),
            Tile::Colour(img) => rgb_lines(img, style, tile.width, tile.height),
        };
        frame.render_widget(Paragraph::new(lines), tile);
    }
    true
}

/// Whether colour pictures are drawn in colour (else as one shaded grid per channel).
fn in_colour(style: Style) -> bool {
    style.color && !style.ascii
}

/// Channel `ch` of each colour filter, as a grid of values.
fn channel_of(filters: &[RgbImage], ch: usize) -> Vec<FilterImage> {
    filters
        .iter()
        .map(|f| FilterImage {
            height: f.height,
            width: f.width,
            values: f.values.iter().skip(ch).step_by(3).copied().collect(),
        })
        .collect()
}

/// RGB filters without colour: one band of tiles per channel (R, G, B), each tile a shaded
/// grid scaled on its own.
fn draw_channel_rows(frame: &mut Frame, area: Rect, s: &Snapshot, style: Style) -> bool {
    let bands =
        ratatui::layout::Layout::vertical([ratatui::layout::Constraint::Fill(1); 3]).split(area);
    for (ch, (band, name)) in bands.iter().zip(["R", "G", "B"]).enumerate() {
        let [label_area, tiles_area] = ratatui::layout::Layout::horizontal([
            ratatui::layout::Constraint::Length(2),
            ratatui::layout::Constraint::Fill(1),
        ])
        .areas(*band);
        frame.render_widget(Paragraph::new(name), label_area);
        let channel = channel_of(&s.colour_filters, ch);
        let tiles: Vec<Tile> = channel
            .iter()
            .map(|f| Tile::Values(f, Scale::Gray))
            .collect();
        if !draw_tiles(frame, tiles_area, &tiles, style) {
            return false;
        }
    }
    true
}

/// The scale the filters are drawn on: the layer's largest magnitude (as in the PNGs, so
/// that weak and dead filters look faint), or each filter's own (`f`).
fn filter_scale(app: &App, s: &Snapshot) -> Scale {
    if app.ui.per_filter_scale {
        Scale::Diverging
    } else {
        Scale::DivergingBy(shared_magnitude(&s.filters))
    }
}

fn filters_title(app: &App) -> String {
    match &app.run.snapshot {
        Some(s) => format!(
            "filters {} ({}/{}) {}x{} x{}{}",
            s.layer_name,
            s.conv_layer + 1,
            s.conv_layers,
            s.filters.first().map_or(0, |f| f.height),
            s.filters.first().map_or(0, |f| f.width),
            s.filters.len(),
            if s.colour_filters.is_empty() {
                s.channel_note
                    .as_ref()
                    .map_or(String::new(), |n| format!(", {n}"))
            } else {
                ", RGB".to_string()
            }
        ),
        None => "filters".into(),
    }
}

/// What the filter shades mean, for the pane's bottom edge.
fn filters_legend(app: &App, colour: bool) -> String {
    let scale = if app.ui.per_filter_scale {
        "each filter on its own scale"
    } else {
        "one scale for the layer"
    };
    match (colour, in_colour(app.style), app.style.color) {
        (true, true, _) => "RGB weights in colour, each filter scaled on its own".into(),
        (true, false, _) => "a row per channel (R, G, B): dark low, light high".into(),
        (false, _, true) => format!("blue - red +, {scale} (f)"),
        (false, _, false) => format!("light - dark +, {scale} (f)"),
    }
}

/// The filters pane's frame, title and legend; the area inside it, the snapshot and whether
/// its filters are in colour, or `None` (with a note drawn) before the first snapshot.
fn filters_frame<'a>(
    frame: &mut Frame,
    area: Rect,
    app: &'a App,
) -> Option<(Rect, &'a Snapshot, bool)> {
    let colour = app
        .run
        .snapshot
        .as_ref()
        .is_some_and(|s| !s.colour_filters.is_empty());
    let block = pane_of(&filters_title(app), Pane::Filters, app)
        .title_bottom(Line::from(format!(" {} ", filters_legend(app, colour))));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(s) = &app.run.snapshot else {
        frame.render_widget(Paragraph::new("no conv layer snapshot yet"), inner);
        return None;
    };
    Some((inner, s, colour))
}

pub(crate) fn draw_filters(frame: &mut Frame, area: Rect, app: &App) {
    let Some((inner, s, colour)) = filters_frame(frame, area, app) else {
        return;
    };
    let drawn = match (colour, in_colour(app.style)) {
        (true, true) => {
            let tiles: Vec<Tile> = s.colour_filters.iter().map(Tile::Colour).collect();
            draw_tiles(frame, inner, &tiles, app.style)
        }
        (true, false) => draw_channel_rows(frame, inner, s, app.style),
        (false, _) => {
            let scale = filter_scale(app, s);
            let tiles: Vec<Tile> = s.filters.iter().map(|f| Tile::Values(f, scale)).collect();
            draw_tiles(frame, inner, &tiles, app.style)
        }
    };
    if !drawn {
        frame.render_widget(
            Paragraph::new("(enlarge the terminal, or z to zoom)"),
            inner,
        );
    }
}

/// The probe line: which image, its label, and the model's three best guesses.
fn probe_line(s: &Snapshot) -> String {
    let top3: Vec<String> = s
        .top3
        .iter()
        .map(|(c, p)| format!("{} {:.0}%", s.class_name(*c), p * 100.0))
        .collect();
    format!(
        "probe #{} label {} -> {}",
        s.probe_index,
        s.class_name(s.probe_label as usize),
        top3.join(", "),
    )
}

/// Draws the probe as text art, as large as `area` allows (square-looking: two columns a
/// pixel row pair); returns the columns used.
fn draw_probe(frame: &mut Frame, area: Rect, s: &Snapshot, style: Style) -> u16 {
    let rows = area.height.min(area.width / 2);
    let cols = 2 * rows;
    let tile = Rect::new(area.x, area.y, cols, rows);
    let lines = match &s.colour_probe {
        Some(c) if in_colour(style) => rgb_lines(c, style, cols, rows),
        _ => art_lines(&s.probe_image, Scale::Gray, style, cols, rows),
    };
    frame.render_widget(Paragraph::new(lines), tile);
    cols
}

/// Smallest map tile worth showing in the dashboard (columns, rows); fewer maps are shown
/// rather than smaller ones.
const MIN_MAP_TILE: (u16, u16) = (12, 6);

pub(crate) fn draw_feature_maps(frame: &mut Frame, area: Rect, app: &App) {
    let Some(s) = &app.run.snapshot else {
        let block = pane_of("probe and feature maps", Pane::Maps, app);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        frame.render_widget(Paragraph::new("waiting for a snapshot..."), inner);
        return;
    };
    let n = s.feature_maps.len();
    // Probe first, at most 28x14 here (z shows it larger), then as many maps as fit at a
    // readable size.
    let probe_rows = area
        .height
        .saturating_sub(3)
        .min(14)
        // Room for one column of maps beside it.
        .min(area.width.saturating_sub(3 + MIN_MAP_TILE.0) / 2);
    let probe_area = Rect::new(area.x + 1, area.y + 2, 2 * probe_rows, probe_rows);
    let maps_x = probe_area.right() + 1;
    let maps_area = Rect::new(
        maps_x,
        area.y + 2,
        area.right().saturating_sub(maps_x + 1),
        area.height.saturating_sub(3),
    );
    let (tw, th, per_row, shown) = (1..=n)
        .rev()
        .find_map(|k| {
            let (tw, th, per_row) = tile_layout(k, maps_area.width, maps_area.height)?;
            (tw >= MIN_MAP_TILE.0 && th >= MIN_MAP_TILE.1 || k == 1).then_some((tw, th, per_row, k))
        })
        .unwrap_or((0, 0, 1, 0));
    let note = if shown < n {
        format!(" {shown} of {n} maps of {}, z: all ", s.layer_name)
    } else {
        format!(" {n} maps of {} ", s.layer_name)
    };
    let block = pane_of("probe and feature maps", Pane::Maps, app).title_bottom(Line::from(note));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    frame.render_widget(
        Paragraph::new(probe_line(s)),
        Rect::new(inner.x, inner.y, inner.width, 1),
    );
    draw_probe(frame, probe_area, s, app.style);
    for (i, map) in s.feature_maps.iter().take(shown).enumerate() {
        let x = maps_area.x + (i % per_row) as u16 * (tw + 1);
        let y = maps_area.y + (i / per_row) as u16 * (th + 1);
        let tile = Rect::new(x, y, tw, th).intersection(maps_area);
        let lines = grid_lines(map, Scale::Gray, app.style, tile.width, tile.height);
        frame.render_widget(Paragraph::new(lines), tile);
    }
}

/// The tile size (columns, rows) for images of `px` (width, height) pixels in a gallery of
/// `n` over `area`, each with a label row: the native size (a column a pixel, a row two), or
/// larger when all fit at once, or smaller when not even one fits.
fn gallery_tile(n: usize, px: (usize, usize), area: Rect) -> (u16, u16) {
    let (pw, ph) = (px.0.max(1) as u16, px.1.max(1) as u16);
    let cols_for = |rows: u16| (rows * 2 * pw).div_ceil(ph).max(1);
    let fits = |rows: u16| {
        let cols = cols_for(rows);
        if cols > area.width || rows + 1 > area.height {
            return 0;
        }
        let per_row = (area.width + 1) / (cols + 1);
        let per_col = (area.height + 1) / (rows + 2);
        (per_row as usize) * (per_col as usize)
    };
    // Small images (filters) at a whole number of cells a pixel: a pixel is two columns by
    // one row times k, as large as lets all fit on one page (else k = 1, paged).
    if ph <= 12 {
        let k = (1..=area.height / ph)
            .rev()
            .find(|&k| fits(k * ph) >= n)
            .unwrap_or(1);
        return (2 * k * pw, k * ph);
    }
    // Larger ones (maps) all on one page if they can be two thirds of their native size or
    // more; else in pages of four (or fewer, as fit) as large as that allows, up to the
    // native size.
    let native = ph.div_ceil(2);
    let largest = |want: usize| (1..=area.height).rev().find(|&r| fits(r) >= want);
    let rows = match largest(n) {
        Some(r) if 3 * r >= 2 * native => r,
        _ => (1..=4.min(n))
            .rev()
            .find_map(largest)
            .unwrap_or(1)
            .min(native.max(1)),
    };
    (cols_for(rows), rows)
}

/// Draws tiles `images` as a gallery with a label over each (the selected one in brackets),
/// on the page holding `selected`; returns (page, pages).
fn draw_gallery(
    frame: &mut Frame,
    area: Rect,
    images: &[Tile],
    px: (usize, usize),
    selected: usize,
    style: Style,
) -> (usize, usize) {
    let (tw, th) = gallery_tile(images.len(), px, area);
    let per_row = ((area.width + 1) / (tw + 1)).max(1) as usize;
    let per_col = ((area.height + 1) / (th + 2)).max(1) as usize;
    let per_page = per_row * per_col;
    let page = selected / per_page;
    let pages = images.len().div_ceil(per_page).max(1);
    for (k, image) in images
        .iter()
        .enumerate()
        .skip(page * per_page)
        .take(per_page)
    {
        let j = k - page * per_page;
        let x = area.x + (j % per_row) as u16 * (tw + 1);
        let y = area.y + (j / per_row) as u16 * (th + 2);
        let label = if k == selected {
            format!("[#{}]", k + 1)
        } else {
            format!(" #{}", k + 1)
        };
        frame.render_widget(
            Paragraph::new(label),
            Rect::new(x, y, tw, 1).intersection(area),
        );
        let tile = Rect::new(x, y + 1, tw, th).intersection(area);
        let lines = match image {
            Tile::Values(img, scale) => art_lines(img, *scale, style, tile.width, tile.height),
            Tile::Colour(img) => rgb_lines(img, style, tile.width, tile.height),
        };
        frame.render_widget(Paragraph::new(lines), tile);
    }
    (page, pages)
}

/// `min to max` of an image's values.
fn value_range(img: &FilterImage) -> String {
    let lo = img.values.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = img.values.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    format!("{lo:.3} to {hi:.3}")
}

/// The zoomed filters: each at its native size or larger, labelled, paged with the arrows.
pub(crate) fn draw_filters_zoomed(frame: &mut Frame, area: Rect, app: &App) {
    let Some((inner, s, colour)) = filters_frame(frame, area, app) else {
        return;
    };
    let [header, body] =
        Layout::vertical([Constraint::Length(1), Constraint::Fill(1)]).areas(inner);
    let scale = filter_scale(app, s);
    let tiles: Vec<Tile> = if colour && in_colour(app.style) {
        s.colour_filters.iter().map(Tile::Colour).collect()
    } else {
        s.filters.iter().map(|f| Tile::Values(f, scale)).collect()
    };
    let Some(first) = s.filters.first() else {
        return;
    };
    let selected = app.ui.item.min(tiles.len().saturating_sub(1));
    let (page, pages) = draw_gallery(
        frame,
        body,
        &tiles,
        (first.width, first.height),
        selected,
        app.style,
    );
    let mut text = format!(
        "filter {}/{}: {}",
        selected + 1,
        tiles.len(),
        value_range(&s.filters[selected])
    );
    if pages > 1 {
        text.push_str(&format!(" | page {}/{}, arrows move", page + 1, pages));
    }
    frame.render_widget(Paragraph::new(text), header);
}

/// The zoomed probe and feature maps: the probe at 28x14 or more, every map as large as
/// fits, paged with the arrows; the selected map's index and value range on top.
pub(crate) fn draw_feature_maps_zoomed(frame: &mut Frame, area: Rect, app: &App) {
    let block = pane_of("probe and feature maps", Pane::Maps, app);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(s) = &app.run.snapshot else {
        frame.render_widget(Paragraph::new("waiting for a snapshot..."), inner);
        return;
    };
    let [line1, line2, body] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Fill(1),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(probe_line(s)), line1);
    // The probe takes 28x14, or up to 40% of the width when there is more room.
    let probe_rows = body
        .height
        .min((body.width / 5).max(14))
        .min(body.width / 2);
    let cols = draw_probe(
        frame,
        Rect::new(body.x, body.y, 2 * probe_rows, probe_rows),
        s,
        app.style,
    );
    let maps_area = Rect::new(
        body.x + cols + 2,
        body.y,
        body.width.saturating_sub(cols + 2),
        body.height,
    );
    let n = s.feature_maps.len();
    let Some(first) = s.feature_maps.first() else {
        return;
    };
    let selected = app.ui.item.min(n - 1);
    let tiles: Vec<Tile> = s
        .feature_maps
        .iter()
        .map(|m| Tile::Values(m, Scale::Gray))
        .collect();
    let (page, pages) = draw_gallery(
        frame,
        maps_area,
        &tiles,
        (first.width, first.height),
        selected,
        app.style,
    );
    let mut text = format!(
        "{} map {}/{}: {}",
        s.layer_name,
        selected + 1,
        n,
        value_range(&s.feature_maps[selected])
    );
    if pages > 1 {
        text.push_str(&format!(" | page {}/{}, arrows move", page + 1, pages));
    }
    frame.render_widget(Paragraph::new(text), line2);
}
