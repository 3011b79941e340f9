//! Reading a config from TOML text and applying `--set section.key=value` overrides.

use toml::{Table, Value};

use super::Config;
use crate::error::{Error, Result};

/// Parses and validates a config. `origin` (a path, usually) prefixes every error, and parse
/// errors give line and column.
pub fn parse_config(text: &str, origin: &str, overrides: &[String]) -> Result<Config> {
    // First pass straight from the text, so that errors carry positions.
    let config: Config = toml::from_str(text).map_err(|e| toml_error(text, origin, &e))?;
    if overrides.is_empty() {
        config.validate().map_err(|e| e.in_config(origin))?;
        return Ok(config);
    }
    let mut table: Table = toml::from_str(text).map_err(|e| toml_error(text, origin, &e))?;
    for item in overrides {
        apply_override(&mut table, item)?;
    }
    let config: Config = Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| {
            Error::config(
                format!("--set {}", overrides.join(" --set ")),
                one_line(e.message()),
            )
        })?;
    config.validate().map_err(|e| e.in_config(origin))?;
    Ok(config)
}

/// Applies one `path=value` override to a TOML table. Path parts are keys, or indices into
/// arrays (`model.layers.0.filters=32`). The value is TOML (`0.1`, `true`, `"adam"`), or a
/// bare word taken as a string.
pub(crate) fn apply_override(table: &mut Table, item: &str) -> Result<()> {
    let origin = format!("--set {item}");
    let (path, raw) = item
        .split_once('=')
        .ok_or_else(|| Error::config(&origin, "expected section.key=value"))?;
    let parts: Vec<&str> = path.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::config(&origin, "empty key in path"));
    }
    let mut root = Value::Table(std::mem::take(table));
    let result = set_path(&mut root, &parts, parse_value(raw.trim()));
    let Value::Table(t) = root else {
        unreachable!("the root stays a table")
    };
    *table = t;
    result.map_err(|message| Error::config(&origin, message))
}

fn set_path(node: &mut Value, parts: &[&str], value: Value) -> Result<(), String> {
    let (part, rest) = parts.split_first().expect("non-empty path");
    let child = match node {
        Value::Table(t) if rest.is_empty() => {
            t.insert(part.to_string(), value);
            return Ok(());
        }
        Value::Table(t) => t
            .entry(part.to_string())
            .or_insert_with(|| Value::Table(Table::new())),
        Value::Array(a) => {
            let len = a.len();
            let i = part
                .parse::<usize>()
                .ok()
                .filter(|&i| i < len)
                .ok_or_else(|| format!("'{part}' is not an index below {len}"))?;
            if rest.is_empty() {
                a[i] = value;
                return Ok(());
            }
            &mut a[i]
        }
        _ => return Err(format!("'{part}' is inside a value, not a table")),
    };
    set_path(child, rest, value)
}

fn parse_value(raw: &str) -> Value {
    let doc = format!("v = {raw}");
    match toml::from_str::<Table>(&doc) {
        Ok(mut t) => t.remove("v").expect("parsed key"),
        Err(_) => Value::String(raw.to_string()),
    }
}

fn toml_error(text: &str, origin: &str, e: &toml::de::Error) -> Error {
    let message = one_line(e.message());
    match e.span() {
        Some(span) => {
            // Tagged enums report the whole table; point at the unknown key inside it.
            let start = unknown_key_offset(text, span.clone(), e.message()).unwrap_or(span.start);
            let before = &text[..start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.chars().rev().take_while(|&c| c != '\n').count() + 1;
            Error::config(format!("{origin}:{line}:{column}"), message)
        }
        None => Error::config(origin, message),
    }
}

/// Where the key named in an "unknown field `key`" message sits, in the table whose header
/// or inline value `span` covers (up to the next table header).
fn unknown_key_offset(text: &str, span: std::ops::Range<usize>, message: &str) -> Option<usize> {
    let key = message.strip_prefix("unknown field `")?.split('`').next()?;
    let region = text.get(span.start..)?;
    let mut offset = 0;
    for (i, line) in region.split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if i > 0 && trimmed.starts_with('[') {
            break;
        }
        let indent = line.len() - trimmed.len();
        let at_start = trimmed
            .strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
            .then_some(indent);
        if let Some(at) = at_start.or_else(|| find_key(line, key)) {
            return Some(span.start + offset + at);
        }
        offset += line.len();
    }
    None
}

/// The offset of `key = ` within an inline table on one line, e.g. `{ type = "x", key = 1 }`.
fn find_key(line: &str, key: &str) -> Option<usize> {
    line.match_indices(key).map(|(i, _)| i).find(|&i| {
        let before = line[..i].trim_end();
        (before.ends_with('{') || before.ends_with(','))
            && line[i + key.len()..].trim_start().starts_with('=')
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
