//! The filters of the selected conv layer, and the probe image beside its feature maps.

use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

use super::grid::{Scale, grid_lines, tile_layout};
use super::pane;
use crate::train::FilterImage;
use crate::tui::app::{App, Style};

/// Tiles images into `area`, each scaled on its own; returns false if they cannot fit.
fn draw_tiles(
    frame: &mut Frame,
    area: Rect,
    images: &[(&FilterImage, Scale)],
    style: Style,
) -> bool {
    let Some((tw, th, per_row)) = tile_layout(images.len(), area.width, area.height) else {
        return false;
    };
    for (i, (img, scale)) in images.iter().enumerate() {
        let x = area.x + (i % per_row) as u16 * (tw + 1);
        let y = area.y + (i / per_row) as u16 * (th + 1);
        let tile = Rect::new(x, y, tw, th).intersection(area);
        frame.render_widget(
            Paragraph::new(grid_lines(img, *scale, style, tile.width, tile.height)),
            tile,
        );
    }
    true
}

pub fn draw_filters(frame: &mut Frame, area: Rect, app: &App) {
    let title = match &app.snapshot {
        Some(s) => format!(
            "filters {} ({}/{}) {}x{} x{}{}",
            s.layer_name,
            s.conv_layer + 1,
            s.conv_layers,
            s.filters.first().map_or(0, |f| f.height),
            s.filters.first().map_or(0, |f| f.width),
            s.filters.len(),
            s.channel_note
                .as_ref()
                .map_or(String::new(), |n| format!(", {n}"))
        ),
        None => "filters".into(),
    };
    let block = pane(&title, app.style);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(s) = &app.snapshot else {
        frame.render_widget(Paragraph::new("no conv layer snapshot yet"), inner);
        return;
    };
    let legend = if app.style.color {
        "blue -  red +, each filter scaled on its own"
    } else {
        "light -  dark +, each filter scaled on its own"
    };
    let [legend_area, tiles_area] = ratatui::layout::Layout::vertical([
        ratatui::layout::Constraint::Length(1),
        ratatui::layout::Constraint::Fill(1),
    ])
    .areas(inner);
    frame.render_widget(Paragraph::new(legend), legend_area);
    let images: Vec<(&FilterImage, Scale)> =
        s.filters.iter().map(|f| (f, Scale::Diverging)).collect();
    if !draw_tiles(frame, tiles_area, &images, app.style) {
        frame.render_widget(
            Paragraph::new("(enlarge the terminal to see the filters)"),
            tiles_area,
        );
    }
}

pub fn draw_feature_maps(frame: &mut Frame, area: Rect, app: &App) {
    let block = pane("probe and feature maps", app.style);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let Some(s) = &app.snapshot else {
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
    let mut images: Vec<(&FilterImage, Scale)> = vec![(&s.probe_image, Scale::Gray)];
    images.extend(s.feature_maps.iter().map(|m| (m, Scale::Gray)));
    if !draw_tiles(frame, tiles_area, &images, app.style) {
        frame.render_widget(
            Paragraph::new("(enlarge the terminal to see the maps)"),
            tiles_area,
        );
    }
}
