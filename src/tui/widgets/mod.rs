//! Dashboard panes: each a function of `&App` drawing into an area.

pub mod ascii;
pub mod charts;
pub mod confusion;
pub mod grid;
pub mod inspect;
pub mod layer_stats;
pub mod overlays;
pub mod panels;
pub mod resources;

use ratatui::symbols::border;
use ratatui::widgets::Block;

use super::app::{App, Pane, Style};

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
    bare_pane(style).title(format!(" {title} "))
}

/// A bordered pane, untitled.
pub(crate) fn bare_pane(style: Style) -> Block<'static> {
    let block = Block::bordered();
    if style.ascii {
        block.border_set(ASCII_BORDER)
    } else {
        block
    }
}

/// The pane `which` with its key in the title (`4 probe and feature maps`), in brackets when
/// it is the selected one.
pub(crate) fn pane_of(title: &str, which: Pane, app: &App) -> Block<'static> {
    let title = format!("{} {title}", which.key());
    if app.ui.pane == which {
        pane(&format!("[{title}]"), app.style)
    } else {
        pane(&title, app.style)
    }
}
