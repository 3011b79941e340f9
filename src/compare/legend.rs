//! The legend of a comparison: the settings in which runs differ, with short names
//! (`lr=0.01`, not `optimizer.lr=0.01`), read from each run's resolved config.

use crate::config::Config;

/// A config as `key = value` pairs with dotted keys (`optimizer.lr`, `model.layers.0.filters`),
/// in the config's own order; values as they would be written in TOML, strings unquoted.
pub(crate) fn flatten(config: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Ok(value) = toml::Value::try_from(config) {
        walk("", &value, &mut out);
    }
    out
}

fn walk(prefix: &str, value: &toml::Value, out: &mut Vec<(String, String)>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match value {
        toml::Value::Table(t) => t.iter().for_each(|(k, v)| walk(&key(k), v, out)),
        toml::Value::Array(a) if a.iter().all(|v| v.is_table()) && !a.is_empty() => a
            .iter()
            .enumerate()
            .for_each(|(i, v)| walk(&key(&i.to_string()), v, out)),
        toml::Value::String(s) => out.push((prefix.to_string(), crate::fs::escape(s))),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

/// One differing setting: its short name and each run's value (`None` where a run lacks it,
/// or its config could not be read).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Differing {
    pub(crate) name: String,
    pub(crate) values: Vec<Option<String>>,
}

/// The settings whose values are not the same in every run (whose config could be read), in
/// the order they first appear (keys sorted within a table); named by the shortest dotted suffix that tells them apart.
pub(crate) fn differing(params: &[Option<Vec<(String, String)>>]) -> Vec<Differing> {
    let read: Vec<&Vec<(String, String)>> = params.iter().flatten().collect();
    let mut keys: Vec<&str> = Vec::new();
    for p in &read {
        for (k, _) in p.iter() {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
    }
    let value = |p: &Vec<(String, String)>, k: &str| {
        p.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
    };
    let keys: Vec<&str> = keys
        .into_iter()
        .filter(|k| {
            let first = read.first().map(|p| value(p, k));
            read.iter().any(|p| Some(value(p, k)) != first)
        })
        .collect();
    let names = short_names(&keys);
    keys.iter()
        .zip(names)
        .map(|(k, name)| Differing {
            name,
            values: params
                .iter()
                .map(|p| p.as_ref().and_then(|p| value(p, k)))
                .collect(),
        })
        .collect()
}

/// `optimizer.lr` as `lr`, unless another key ends the same way: then as many more parts as
/// tell them apart (`layers.0.filters`, `layers.2.filters`).
fn short_names(keys: &[&str]) -> Vec<String> {
    let parts: Vec<Vec<&str>> = keys.iter().map(|k| k.split('.').collect()).collect();
    distinct_suffixes(&parts, ".")
}

/// Each of `parts` as its last part, or as many more of its last parts (joined by `sep`) as
/// tell it apart from the others.
pub(crate) fn distinct_suffixes<S: AsRef<str>>(parts: &[Vec<S>], sep: &str) -> Vec<String> {
    let mut depth = vec![1; parts.len()];
    let suffix = |i: usize, n: usize| {
        let tail = &parts[i][parts[i].len().saturating_sub(n)..];
        tail.iter()
            .map(AsRef::as_ref)
            .collect::<Vec<&str>>()
            .join(sep)
    };
    loop {
        let shown: Vec<String> = (0..parts.len()).map(|i| suffix(i, depth[i])).collect();
        let mut changed = false;
        for i in 0..parts.len() {
            let clash = (0..parts.len()).any(|j| j != i && shown[j] == shown[i]);
            if clash && depth[i] < parts[i].len() {
                depth[i] += 1;
                changed = true;
            }
        }
        if !changed {
            return shown;
        }
    }
}

/// Run `run`'s values of the differing settings it has: `lr=0.01 batch_size=64`; `-` when
/// it has none.
pub(crate) fn describe(differing: &[Differing], run: usize) -> String {
    let parts: Vec<String> = differing
        .iter()
        .filter_map(|d| Some(format!("{}={}", d.name, d.values[run].as_ref()?)))
        .collect();
    if parts.is_empty() {
        return "-".into();
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DEFAULT_CONFIG, parse_config};

    fn params(sets: &[&str]) -> Option<Vec<(String, String)>> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        Some(flatten(
            &parse_config(DEFAULT_CONFIG, "default", &sets).unwrap(),
        ))
    }

    #[test]
    fn the_legend_names_only_the_settings_that_differ_shortly() {
        let runs = [
            params(&["optimizer.lr=0.1"]),
            params(&["optimizer.lr=0.01"]),
            params(&["optimizer.lr=0.001", "training.batch_size=64"]),
        ];
        let d = differing(&runs);
        let legend: Vec<String> = (0..3).map(|i| describe(&d, i)).collect();
        assert_eq!(
            legend,
            [
                "lr=0.1 batch_size=32",
                "lr=0.01 batch_size=32",
                "lr=0.001 batch_size=64"
            ]
        );
        // Layers' settings by index where their last part repeats; a run whose config could
        // not be read has no values and changes nothing.
        let runs = [
            params(&["model.layers.0.filters=4"]),
            params(&["model.layers.2.filters=4"]),
            None,
        ];
        let d = differing(&runs);
        assert_eq!(describe(&d, 0), "0.filters=4 2.filters=16");
        assert_eq!(describe(&d, 1), "0.filters=8 2.filters=4");
        assert_eq!(describe(&d, 2), "-");
        // Identical runs: nothing differs.
        let same = [params(&[]), params(&[])];
        assert_eq!(describe(&differing(&same), 0), "-");
        // Settings only one run has (Adam's betas) are left out of the others' legends.
        let d = differing(&[params(&[]), params(&["optimizer={type=\"adam\",lr=0.001}"])]);
        let legend: Vec<String> = (0..2).map(|i| describe(&d, i)).collect();
        assert_eq!(
            legend,
            [
                "lr=0.05 momentum=0.9 nesterov=false type=sgd",
                "lr=0.001 type=adam beta1=0.9 beta2=0.999 epsilon=0.0000001"
            ]
        );
    }
}
