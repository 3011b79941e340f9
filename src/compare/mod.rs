//! Several runs side by side, for `watch RUN1 RUN2 ...` / `watch SWEEP_DIR` and
//! `plot --compare`: which run directories the arguments name ([`run_dirs`]), how each run is
//! told apart (a letter, and the hyperparameters in which it differs from the others:
//! [`legend`]), what its records say ([`curves`]), and a poller that follows them all as their
//! jobs append ([`feed`]). Run directories are only read, through the same no-follow,
//! size-capped readers as `watch` and `runs`.

pub(crate) mod curves;
pub(crate) mod feed;
pub(crate) mod legend;

use std::path::{Path, PathBuf};

use crate::config::parse_config;
use crate::error::{Error, Result};
use crate::rundir::RunDir;

/// Most runs compared at once: each has a letter, `a` to `z`.
pub(crate) const MAX_RUNS: usize = 26;

/// The letter that marks run `index` in charts, legends and tables.
pub(crate) fn letter(index: usize) -> char {
    (b'a' + (index % MAX_RUNS) as u8) as char
}

/// The run directories that `args` name, in order, each once: an argument is a run directory
/// (it holds `config.toml`) or a folder with run directories in it, found as `runs` finds them
/// (a sweep's directory). A link, a file, or a folder without runs is an error naming it.
pub(crate) fn run_dirs(args: &[PathBuf], option: &str) -> Result<Vec<PathBuf>> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    for arg in args {
        let meta = std::fs::symlink_metadata(arg).map_err(|e| match e.kind() {
            std::io::ErrorKind::PermissionDenied => Error::data(arg, "permission denied"),
            _ => Error::data(arg, "not found"),
        })?;
        refuse_link(arg, &meta)?;
        if !meta.is_dir() {
            return Err(Error::data(arg, "not a directory"));
        }
        if let Err(e) = std::fs::read_dir(arg)
            && e.kind() == std::io::ErrorKind::PermissionDenied
        {
            return Err(Error::data(arg, "permission denied"));
        }
        let found = crate::runs::find(arg);
        if found.is_empty() {
            return Err(Error::data(
                arg,
                "not a run directory (no config.toml), and no run directories in it",
            ));
        }
        for d in found {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    if dirs.len() > MAX_RUNS {
        return Err(Error::usage(
            option,
            format!(
                "{} runs found: at most {MAX_RUNS} can be compared at once; name fewer",
                dirs.len()
            ),
        ));
    }
    Ok(dirs)
}

/// The error for a path named on the command line that is a symbolic link (`meta`, its
/// `symlink_metadata`): links are not followed, for one run as for several.
pub(crate) fn refuse_link(arg: &Path, meta: &std::fs::Metadata) -> Result<()> {
    if meta.file_type().is_symlink() {
        return Err(Error::data(
            arg,
            "a symbolic link: links are not followed, give the directory itself",
        ));
    }
    Ok(())
}

/// One run of a comparison: its letter, its name and the settings it differs in.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RunLabel {
    pub(crate) letter: char,
    /// The directory's name, escaped (`003-lr=0.01`), or its path when names repeat.
    pub(crate) name: String,
    /// `lr=0.01 batch_size=64`: the settings in which it differs from the others, or
    /// `(config unreadable)`.
    pub(crate) differs: String,
}

/// The labels of `dirs`: names, and the differing settings read from each `config.toml`.
pub(crate) fn labels(dirs: &[PathBuf]) -> Vec<RunLabel> {
    let params: Vec<Option<Vec<(String, String)>>> = dirs
        .iter()
        .map(|d| {
            let run = RunDir::new(d);
            let text = run.read_config_text().ok()?;
            let config = parse_config(&text, &run.config().display().to_string(), &[]).ok()?;
            Some(legend::flatten(&config))
        })
        .collect();
    let names = names(dirs);
    let differs = legend::differing(&params);
    dirs.iter()
        .enumerate()
        .map(|(i, _)| RunLabel {
            letter: letter(i),
            name: names[i].clone(),
            differs: match &params[i] {
                None => "(config unreadable)".into(),
                Some(_) => legend::describe(&differs, i),
            },
        })
        .collect()
}

/// Short names for `dirs`: the last component, or more of the path where those repeat.
fn names(dirs: &[PathBuf]) -> Vec<String> {
    let components: Vec<Vec<String>> = dirs
        .iter()
        .map(|d| {
            d.components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect()
        })
        .collect();
    legend::distinct_suffixes(&components, "/")
        .iter()
        .map(|s| crate::fs::escape(s))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_take_more_of_the_path_only_where_they_repeat() {
        let dirs = [
            PathBuf::from("runs/sweep-a/000-lr=0.1"),
            PathBuf::from("runs/sweep-b/000-lr=0.1"),
            PathBuf::from("runs/sweep-b/001-lr=0.01"),
        ];
        assert_eq!(
            names(&dirs),
            ["sweep-a/000-lr=0.1", "sweep-b/000-lr=0.1", "001-lr=0.01"]
        );
        assert_eq!(letter(0), 'a');
        assert_eq!(letter(25), 'z');
    }

    #[test]
    fn arguments_are_run_directories_or_folders_of_them_never_links() {
        let root = tempfile::tempdir().unwrap();
        let sweep = root.path().join("sw");
        for run in ["000-lr=0.1", "001-lr=0.01"] {
            std::fs::create_dir_all(sweep.join(run)).unwrap();
            std::fs::write(sweep.join(run).join("config.toml"), "").unwrap();
        }
        let found = run_dirs(std::slice::from_ref(&sweep), "watch").unwrap();
        assert_eq!(found, [sweep.join("000-lr=0.1"), sweep.join("001-lr=0.01")]);
        // A run named twice, once in its sweep, is compared once.
        let again = run_dirs(&[sweep.join("001-lr=0.01"), sweep.clone()], "watch").unwrap();
        assert_eq!(again, [sweep.join("001-lr=0.01"), sweep.join("000-lr=0.1")]);
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&sweep, &link).unwrap();
        let e = run_dirs(&[link], "watch").unwrap_err().to_string();
        assert!(
            e.ends_with("link: a symbolic link: links are not followed, give the directory itself"),
            "{e}"
        );
        let empty = root.path().join("empty");
        std::fs::create_dir(&empty).unwrap();
        let e = run_dirs(&[empty], "watch").unwrap_err().to_string();
        assert!(
            e.ends_with(
                "empty: not a run directory (no config.toml), and no run directories in it"
            ),
            "{e}"
        );
        let e = run_dirs(&[root.path().join("nothing")], "watch")
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("nothing: not found"), "{e}");
    }
}
