//! The `--ascii` safety net: after a frame is drawn, every non-ASCII symbol a widget used
//! (borders, chart axes, gauge blocks, braille) is replaced by an ASCII look-alike.

use ratatui::buffer::Buffer;

/// An ASCII stand-in for a character.
pub(crate) fn to_ascii(c: char) -> char {
    match c {
        c if c.is_ascii() => c,
        '─' | '━' | '┄' | '┅' | '┈' | '┉' | '╌' | '╍' | '═' => '-',
        '│' | '┃' | '┆' | '┇' | '┊' | '┋' | '╎' | '╏' | '║' => '|',
        '\u{2500}'..='\u{257F}' => '+',
        '░' => '.',
        '▒' => ':',
        '▓' => '%',
        '\u{2580}'..='\u{259F}' => '#',
        '\u{2800}' => ' ',
        '\u{2801}'..='\u{28FF}' => '.',
        '•' | '·' => '*',
        '…' => '.',
        '×' => 'x',
        '÷' => '/',
        _ => '?',
    }
}

/// Rewrites every cell of `buf` to ASCII.
pub(crate) fn asciify(buf: &mut Buffer) {
    let area = buf.area;
    for y in area.top()..area.bottom() {
        for x in area.left()..area.right() {
            let cell = &mut buf[(x, y)];
            let sym = cell.symbol();
            if !sym.is_ascii() {
                let replaced: String = sym.chars().map(to_ascii).collect();
                cell.set_symbol(&replaced);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ratatui::layout::Rect;
    use ratatui::widgets::{Block, Widget};

    #[test]
    fn borders_become_ascii() {
        let mut buf = Buffer::empty(Rect::new(0, 0, 4, 3));
        Block::bordered().render(buf.area, &mut buf);
        asciify(&mut buf);
        assert_eq!(buf, Buffer::with_lines(["+--+", "|  |", "+--+"]));
        assert_eq!(to_ascii('⣿'), '.');
        assert_eq!(to_ascii('█'), '#');
    }
}
