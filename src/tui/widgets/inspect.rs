//! The filters of the selected conv layer, and the probe image beside its feature maps.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::grid::{Scale, grid_lines, rgb_lines, tile_layout};
use super::pane;
use crate::train::{FilterImage, RgbImage, Snapshot};
use crate::tui::app::{App, Style};

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

pub(crate) fn draw_filters(frame: &mut Frame, area: Rect, app: &App) {
    let title = match &app.run.snapshot {
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
    };
    let block = pane(&title, app.style);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(s) = &app.run.snapshot else {
        frame.render_widget(Paragraph::new("no conv layer snapshot yet"), inner);
        return;
    };
    let colour = !s.colour_filters.is_empty();
    let legend = match (colour, in_colour(app.style), app.style.color) {
        (true, true, _) => "RGB weights in colour, each filter scaled on its own",
        (true, false, _) => "a row per channel (R, G, B): dark low, light high",
        (false, _, true) => "blue -  red +, each filter scaled on its own",
        (false, _, false) => "light -  dark +, each filter scaled on its own",
    };
    let [legend_area, tiles_area] = ratatui::layout::Layout::vertical([
        ratatui::layout::Constraint::Length(1),
        ratatui::layout::Constraint::Fill(1),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(legend), legend_area);
    let drawn = match (colour, in_colour(app.style)) {
        (true, true) => {
            let tiles: Vec<Tile> = s.colour_filters.iter().map(Tile::Colour).collect();
            draw_tiles(frame, tiles_area, &tiles, app.style)
        }
        (true, false) => draw_channel_rows(frame, tiles_area, s, app.style),
        (false, _) => {
            let tiles: Vec<Tile> = s
                .filters
                .iter()
                .map(|f| Tile::Values(f, Scale::Diverging))
                .collect();
            draw_tiles(frame, tiles_area, &tiles, app.style)
        }
    };
    if !drawn {
        frame.render_widget(
            Paragraph::new("(enlarge the terminal to see the filters)"),
            tiles_area,
        );
    }
}

pub(crate) fn draw_feature_maps(frame: &mut Frame, area: Rect, app: &App) {
    let block = pane("probe and feature maps", app.style);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(s) = &app.run.snapshot else {
        frame.render_widget(Paragraph::new("waiting for a snapshot..."), inner);
        return;
    };
    let top3: Vec<String> = s
        .top3
        .iter()
        .map(|(c, p)| format!("{} {:.0}%", s.class_name(*c), p * 100.0))
        .collect();
    let header = Line::from(format!(
        "probe #{} label {} -> {} | {} maps of {}",
        s.probe_index,
        s.class_name(s.probe_label as usize),
        top3.join(", "),
        s.feature_maps.len(),
        s.layer_name
    ));
    let [header_area, tiles_area] = ratatui::layout::Layout::vertical([
        ratatui::layout::Constraint::Length(1),
        ratatui::layout::Constraint::Fill(1),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(header), header_area);
    let probe = match &s.colour_probe {
        Some(c) if in_colour(app.style) => Tile::Colour(c),
        _ => Tile::Values(&s.probe_image, Scale::Gray),
    };
    let mut images = vec![probe];
    images.extend(s.feature_maps.iter().map(|m| Tile::Values(m, Scale::Gray)));
    if !draw_tiles(frame, tiles_area, &images, app.style) {
        frame.render_widget(
            Paragraph::new("(enlarge the terminal to see the maps)"),
            tiles_area,
        );
    }
}
