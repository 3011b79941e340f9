//! Dashboard panes: each a function of `&App` drawing into an area.

pub mod ascii;
pub mod charts;
pub mod grid;
pub mod inspect;
pub mod overlays;
pub mod panels;

use ratatui::symbols::border;
use ratatui::widgets::Block;

use super::app::Style;

/// Plain ASCII borders for `--ascii`.
pub(crate) const ASCII_BORDER: border::Set = border::Set {
    top_left: "+",
    top_right: "+",
    bottom_left: "+",
    bottom_right: "+",
    vertical_left: "|",
    vertical_right: "|",
    horizontal_top: "-",
    horizontal_bottom: "-",
};

/// A bordered pane with a title.
pub(crate) fn pane(title: &str, style: Style) -> Block<'static> {
    let block = Block::bordered().title(format!(" {title} "));
    if style.ascii {
        block.border_set(ASCII_BORDER)
    } else {
        block
    }
}
