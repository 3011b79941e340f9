//! `cnn-tui runs [DIR]`: the runs under a directory in one table (or JSON, or CSV).

use std::path::Path;

use super::args::RunsArgs;
use super::exit;
use crate::config::fmt_lr;
use crate::error::{Error, Result};
use crate::fs::escape;
use crate::runs::{COLUMNS, RunRow, find, row, sort};

pub(crate) fn run(args: RunsArgs) -> Result<u8> {
    let rows = table(&args.dir, &args.sort, args.reverse)?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows serialize")
        );
    } else if args.csv {
        print!("{}", csv(&rows));
    } else {
        print!("{}", text(&rows));
    }
    Ok(exit::OK)
}

/// The rows of every run under `dir`, sorted.
pub(crate) fn table(dir: &Path, column: &str, reverse: bool) -> Result<Vec<RunRow>> {
    match std::fs::read_dir(dir) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(Error::data(dir, "permission denied"));
        }
        Err(_) => return Err(Error::data(dir, "directory not found")),
    }
    let mut rows: Vec<RunRow> = find(dir).iter().filter_map(|d| row(dir, d)).collect();
    sort(&mut rows, column, reverse).map_err(|e| Error::usage("--sort", e))?;
    Ok(rows)
}

fn percent(a: Option<f64>) -> String {
    a.map_or("-".into(), |a| format!("{:.2}%", 100.0 * a))
}

fn duration(seconds: f64) -> String {
    let s = seconds.round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s / 60 % 60),
    }
}

fn cells(r: &RunRow) -> [String; 15] {
    let lr = match r.lr_now {
        Some(now) if (now - r.lr).abs() > 1e-12 * r.lr.abs() => {
            format!("{}>{}", fmt_lr(r.lr), fmt_lr(now))
        }
        _ => fmt_lr(r.lr),
    };
    [
        escape(&r.name),
        escape(&r.model),
        escape(&r.optimizer),
        lr,
        r.batch_size.to_string(),
        // A running job's epochs with the fraction of the one in progress: 2.37/5.
        match r.epoch_progress {
            Some(f) => format!("{:.2}/{}", r.epochs_done as f64 + f.min(0.99), r.epochs),
            None => format!("{}/{}", r.epochs_done, r.epochs),
        },
        percent(r.best_val_accuracy),
        percent(r.test_accuracy),
        duration(r.seconds),
        if r.paused_seconds >= 0.5 {
            duration(r.paused_seconds)
        } else {
            "-".into()
        },
        r.wall_seconds.map_or("-".into(), duration),
        r.samples_per_second
            .map_or("-".into(), |v| format!("{:.0}", v)),
        r.starts.to_string(),
        r.status.clone(),
        r.eta_seconds.map_or("-".into(), duration),
    ]
}

/// A plain aligned table, ASCII only.
pub(crate) fn text(rows: &[RunRow]) -> String {
    if rows.is_empty() {
        return "no runs found\n".into();
    }
    let body: Vec<[String; 15]> = rows.iter().map(cells).collect();
    let widths: Vec<usize> = (0..COLUMNS.len())
        .map(|c| {
            body.iter()
                .map(|r| r[c].len())
                .chain([COLUMNS[c].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: Vec<&str>| {
        let mut s = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ");
        s.truncate(s.trim_end().len());
        s.push('\n');
        s
    };
    let mut out = line(COLUMNS.to_vec());
    for r in &body {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

fn csv(rows: &[RunRow]) -> String {
    let quote = |s: &str| {
        let s = escape(s);
        if s.contains([',', '"']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s
        }
    };
    let mut out = String::from(
        "name,model,optimizer,lr,lr_now,batch_size,epochs_done,epochs,best_val_accuracy,test_accuracy,seconds,wall_seconds,samples_per_second,starts,status,paused_seconds,epoch_progress,eta_seconds\n",
    );
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},{:.1},{},{},{},{},{:.1},{},{}\n",
            quote(&r.name),
            quote(&r.model),
            quote(&r.optimizer),
            r.lr,
            opt(r.lr_now),
            r.batch_size,
            r.epochs_done,
            r.epochs,
            opt(r.best_val_accuracy),
            opt(r.test_accuracy),
            r.seconds,
            opt(r.wall_seconds.map(|w| (w * 10.0).round() / 10.0)),
            opt(r.samples_per_second.map(f64::round)),
            r.starts,
            r.status,
            r.paused_seconds,
            opt(r.epoch_progress.map(|f| (f * 1000.0).round() / 1000.0)),
            opt(r.eta_seconds.map(f64::round)),
        ));
    }
    out
}
