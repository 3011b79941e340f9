//! What the terminal can show, from the environment: Unicode or ASCII, and how many colours.
//!
//! A locale that is not UTF-8 (the first set of LC_ALL, LC_CTYPE and LANG; none set is the C
//! locale) or TERM `linux`, `vt100` or `dumb` gets ASCII and the 16 ANSI colours, and one line
//! saying so; `--unicode` keeps Unicode there. COLORTERM=truecolor (or 24bit) turns on
//! 24-bit colour, NO_COLOR turns colour off.

use super::app::{Palette, Style};

/// Terminals that draw neither braille nor half blocks nor 256 colours.
const LIMITED_TERMS: [&str; 3] = ["linux", "vt100", "dumb"];

/// The display style for the flags `--ascii` and `--unicode` and the environment `env`
/// (a lookup such as `std::env::var`), and the one line that says why the dashboard falls
/// back, if it does.
pub(crate) fn detect(
    env: impl Fn(&str) -> Option<String>,
    ascii: bool,
    unicode: bool,
) -> (Style, Option<String>) {
    let set = |name: &str| env(name).filter(|v| !v.is_empty());
    let color = set("NO_COLOR").is_none();
    let term = set("TERM").unwrap_or_default();
    // The locale's character set: the first of these that is set decides (POSIX order).
    let locale = ["LC_ALL", "LC_CTYPE", "LANG"]
        .into_iter()
        .find_map(|name| set(name).map(|v| (name, v)));
    let utf8 = locale.as_ref().is_some_and(|(_, v)| {
        let v = v.to_ascii_lowercase();
        v.contains("utf-8") || v.contains("utf8")
    });
    let limited_term = LIMITED_TERMS.contains(&term.as_str());
    let why = if limited_term {
        Some(format!("TERM={term}"))
    } else if !utf8 {
        Some(match &locale {
            Some((name, v)) => format!("the locale {name}={v} is not UTF-8"),
            None => "no UTF-8 locale (LC_ALL, LC_CTYPE and LANG unset)".to_string(),
        })
    } else {
        None
    };
    let truecolor = set("COLORTERM")
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "truecolor" | "24bit"));
    let palette = match (&why, truecolor) {
        (Some(_), _) => Palette::Ansi16,
        (None, true) => Palette::Rgb,
        (None, false) => Palette::Indexed,
    };
    let style = Style {
        ascii: ascii || (why.is_some() && !unicode),
        color,
        palette,
    };
    let note = why.map(|why| {
        let colours = if color { " and 16 colours" } else { "" };
        match (ascii, unicode) {
            (false, false) => {
                format!("{why}: ASCII characters{colours} (--unicode forces Unicode)")
            }
            (true, _) => format!("{why}: ASCII characters{colours}"),
            (false, true) => format!("{why}: Unicode (--unicode){colours}"),
        }
    });
    (style, note)
}

/// [`detect`] on this process's environment.
pub(crate) fn from_env(ascii: bool, unicode: bool) -> (Style, Option<String>) {
    detect(|name| std::env::var(name).ok(), ascii, unicode)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(vars: &[(&str, &str)], ascii: bool, unicode: bool) -> (Style, Option<String>) {
        detect(
            |name| {
                vars.iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| v.to_string())
            },
            ascii,
            unicode,
        )
    }

    const UTF8: (&str, &str) = ("LANG", "en_GB.UTF-8");

    #[test]
    fn a_utf8_xterm_gets_unicode_and_256_colours_or_24_bit() {
        let (style, note) = with(&[UTF8, ("TERM", "xterm-256color")], false, false);
        assert_eq!(
            style,
            Style {
                ascii: false,
                color: true,
                palette: Palette::Indexed
            }
        );
        assert_eq!(note, None);
        let (style, _) = with(&[UTF8, ("COLORTERM", "truecolor")], false, false);
        assert_eq!(style.palette, Palette::Rgb);
        let (style, _) = with(
            &[("LC_CTYPE", "C.utf8"), ("COLORTERM", "24bit")],
            false,
            false,
        );
        assert_eq!((style.ascii, style.palette), (false, Palette::Rgb));
        let (style, note) = with(&[UTF8, ("NO_COLOR", "1")], true, false);
        assert_eq!((style.ascii, style.color, note), (true, false, None));
    }

    #[test]
    fn limited_terminals_and_other_locales_fall_back_and_say_so() {
        for term in ["linux", "vt100", "dumb"] {
            let (style, note) = with(
                &[UTF8, ("TERM", term), ("COLORTERM", "truecolor")],
                false,
                false,
            );
            assert_eq!(
                (style.ascii, style.palette),
                (true, Palette::Ansi16),
                "{term}"
            );
            assert_eq!(
                note.as_deref(),
                Some(
                    format!(
                        "TERM={term}: ASCII characters and 16 colours (--unicode forces Unicode)"
                    )
                    .as_str()
                )
            );
        }
        // LC_ALL wins over LANG; nothing set is the C locale.
        let (style, note) = with(&[("LC_ALL", "C"), UTF8], false, false);
        assert!(style.ascii);
        assert_eq!(
            note.as_deref(),
            Some(
                "the locale LC_ALL=C is not UTF-8: ASCII characters and 16 colours (--unicode forces Unicode)"
            )
        );
        let (style, note) = with(&[("TERM", "xterm")], false, false);
        assert_eq!((style.ascii, style.palette), (true, Palette::Ansi16));
        assert!(note.unwrap().starts_with("no UTF-8 locale"));
        // An empty LC_ALL is unset.
        let (style, _) = with(&[("LC_ALL", ""), UTF8], false, false);
        assert!(!style.ascii);
    }

    #[test]
    fn unicode_forces_unicode_and_keeps_16_colours() {
        let (style, note) = with(&[UTF8, ("TERM", "linux")], false, true);
        assert_eq!((style.ascii, style.palette), (false, Palette::Ansi16));
        assert_eq!(
            note.as_deref(),
            Some("TERM=linux: Unicode (--unicode) and 16 colours")
        );
        let (_, note) = with(&[UTF8, ("TERM", "linux"), ("NO_COLOR", "1")], true, false);
        assert_eq!(note.as_deref(), Some("TERM=linux: ASCII characters"));
    }
}
