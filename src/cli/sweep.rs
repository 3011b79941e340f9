//! `cnn-tui sweep`: a grid of `--set KEY=V1,V2,...` axes, one headless run directory per
//! combination, then the table of the sweep. `--index I` runs one combination (a Slurm job
//! array task); every run is resumable, so a requeued task continues its own run.

use std::path::{Path, PathBuf};

use super::args::{ConfigArgs, SweepArgs, TrainArgs};
use super::{exit, load_config};
use crate::error::{Error, Result};

/// One axis of the grid: a config key and its values.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Axis {
    pub(crate) key: String,
    pub(crate) values: Vec<String>,
}

/// Parses `KEY=V1,V2,...`; commas inside brackets or quotes belong to a value.
pub(crate) fn parse_axis(item: &str) -> std::result::Result<Axis, String> {
    let (key, values) = item
        .split_once('=')
        .filter(|(k, v)| !k.trim().is_empty() && !v.trim().is_empty())
        .ok_or_else(|| format!("`{item}`: expected KEY=V1,V2,..."))?;
    let mut out = Vec::new();
    let (mut depth, mut quoted, mut current) = (0i32, false, String::new());
    for c in values.chars() {
        match c {
            '"' => quoted = !quoted,
            '[' | '{' if !quoted => depth += 1,
            ']' | '}' if !quoted => depth -= 1,
            ',' if depth == 0 && !quoted => {
                out.push(std::mem::take(&mut current).trim().to_string());
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    out.push(current.trim().to_string());
    if out.iter().any(String::is_empty) {
        return Err(format!("`{item}`: an empty value"));
    }
    Ok(Axis {
        key: key.trim().to_string(),
        values: out,
    })
}

/// The grid's combinations in order (the first axis varies slowest), each as `KEY=VALUE`s.
pub(crate) fn combinations(axes: &[Axis]) -> Vec<Vec<String>> {
    let total: usize = axes.iter().map(|a| a.values.len()).product();
    (0..total)
        .map(|mut i| {
            let mut combo = vec![String::new(); axes.len()];
            for (k, axis) in axes.iter().enumerate().rev() {
                let n = axis.values.len();
                combo[k] = format!("{}={}", axis.key, axis.values[i % n]);
                i /= n;
            }
            combo
        })
        .collect()
}

/// The run directory name of combination `index`: `003-lr=0.1-batch_size=64` (axes with a
/// single value are left out; names are kept to safe characters).
fn run_name(index: usize, axes: &[Axis], combo: &[String]) -> String {
    let mut name = format!("{index:03}");
    for (axis, item) in axes.iter().zip(combo) {
        if axis.values.len() < 2 {
            continue;
        }
        let value = item.split_once('=').map_or("", |(_, v)| v);
        let key = axis.key.rsplit('.').next().unwrap_or(&axis.key);
        let short = format!("{key}={value}");
        name.push('-');
        name.extend(short.chars().map(|c| {
            if c.is_ascii_alphanumeric() || "=.+-_".contains(c) {
                c
            } else {
                '_'
            }
        }));
    }
    name.truncate(120);
    name
}

pub(crate) fn run(args: SweepArgs) -> Result<u8> {
    let axes: Vec<Axis> = args
        .set
        .iter()
        .map(|s| parse_axis(s).map_err(|e| Error::config("--set", e)))
        .collect::<Result<_>>()?;
    let combos = combinations(&axes);
    // Every combination must make a valid config before anything runs.
    for combo in &combos {
        let mut sets = combo.clone();
        sets.extend(args.flags.overrides());
        load_config(args.config.as_deref(), &sets)?;
    }
    let loaded = load_config(args.config.as_deref(), &[])?;
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs").join(format!("sweep-{}", loaded.name)));
    let names: Vec<String> = combos
        .iter()
        .enumerate()
        .map(|(i, c)| run_name(i, &axes, c))
        .collect();
    if args.list {
        for (i, combo) in combos.iter().enumerate() {
            println!(
                "{i}\t{}\t{}",
                combo.join(" "),
                dir.join(&names[i]).display()
            );
        }
        return Ok(exit::OK);
    }
    let chosen: Vec<usize> = match args.index {
        Some(i) if i >= combos.len() => {
            return Err(Error::usage(
                "--index",
                format!(
                    "{i} is past the grid's {} combinations (0 to {})",
                    combos.len(),
                    combos.len() - 1
                ),
            ));
        }
        Some(i) => vec![i],
        None => (0..combos.len()).collect(),
    };
    let mut worst = exit::OK;
    for i in chosen {
        let run_dir = dir.join(&names[i]);
        println!(
            "== sweep {}/{}: {} -> {}",
            i + 1,
            combos.len(),
            combos[i].join(" "),
            run_dir.display()
        );
        if finished(&run_dir) {
            println!("already finished; skipped");
            continue;
        }
        let code = train_one(&args, &combos[i], &run_dir)?;
        worst = worst.max(code);
        if code == exit::INTERRUPTED || code == exit::ABORTED {
            break; // a signal: the job is being stopped, so stop the sweep too
        }
    }
    println!();
    let rows = super::runs::table(&dir, "name", false)?;
    print!("{}", super::runs::text(&rows));
    Ok(worst)
}

fn finished(run_dir: &Path) -> bool {
    crate::rundir::RunDir::new(run_dir)
        .read_summary()
        .is_some_and(|s| s.status != crate::rundir::Status::Interrupted)
}

/// Trains one combination headless; an interrupted run of it is resumed.
fn train_one(args: &SweepArgs, combo: &[String], run_dir: &Path) -> Result<u8> {
    let config = ConfigArgs {
        config: args.config.clone(),
        set: combo.to_vec(),
        data: args.data.clone(),
    };
    let train = TrainArgs::headless_resumable(config, args.flags.clone(), run_dir.to_path_buf());
    Ok(super::train::run(train).unwrap_or_else(|e| exit::report(&e)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_split_at_top_level_commas_and_combine_first_slowest() {
        let a = parse_axis("optimizer.lr=0.1, 0.01,0.001").unwrap();
        assert_eq!(a.values, ["0.1", "0.01", "0.001"]);
        let b = parse_axis("model.layers.0.kernel_size=3,5").unwrap();
        let nested = parse_axis("x=[1,2],[3]").unwrap();
        assert_eq!(nested.values, ["[1,2]", "[3]"]);
        assert!(parse_axis("lr").is_err());
        assert!(parse_axis("lr=0.1,,0.2").is_err());
        let grid = combinations(&[a.clone(), b.clone()]);
        assert_eq!(grid.len(), 6);
        assert_eq!(
            grid[0],
            ["optimizer.lr=0.1", "model.layers.0.kernel_size=3"]
        );
        assert_eq!(
            grid[1],
            ["optimizer.lr=0.1", "model.layers.0.kernel_size=5"]
        );
        assert_eq!(
            grid[5],
            ["optimizer.lr=0.001", "model.layers.0.kernel_size=5"]
        );
        assert_eq!(run_name(1, &[a, b], &grid[1]), "001-lr=0.1-kernel_size=5");
        assert_eq!(combinations(&[]), vec![Vec::<String>::new()]);
    }
}
