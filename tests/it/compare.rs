//! Comparing runs: `watch RUN1 RUN2 ...` / `watch SWEEP_DIR` refuse bad arguments in one line;
//! `plot --compare` draws one PNG.

use std::path::Path;

use crate::util::{cnn_tui, stderr, stdout};

/// One line on stderr, exit 1, no panic.
fn one_line_error(args: &[&str], cwd: &Path) -> String {
    let o = cnn_tui(args, cwd);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err
}

#[test]
fn watch_refuses_what_is_not_a_run_or_a_folder_of_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A run directory, as far as watch looks: its config.
    std::fs::create_dir_all(d.join("sw/000-lr=0.1")).unwrap();
    std::fs::write(d.join("sw/000-lr=0.1/config.toml"), "").unwrap();
    std::fs::create_dir(d.join("empty")).unwrap();
    std::fs::write(d.join("notes.txt"), "hello").unwrap();
    std::os::unix::fs::symlink(d.join("sw"), d.join("link")).unwrap();
    let cases = [
        (
            &["watch", "sw", "empty"][..],
            "error: empty: not a run directory (no config.toml), and no run directories in it\n",
        ),
        (
            &["watch", "empty"],
            "error: empty: not a run directory (no config.toml), and no run directories in it\n",
        ),
        (
            &["watch", "sw", "notes.txt"],
            "error: notes.txt: not a directory\n",
        ),
        (
            &["watch", "link"],
            "error: link: a symbolic link: links are not followed, give the directory itself\n",
        ),
        (
            &["watch", "sw", "link"],
            "error: link: a symbolic link: links are not followed, give the directory itself\n",
        ),
        (&["watch", "sw", "gone"], "error: gone: not found\n"),
        (
            &["plot", "--compare", "sw", "link"],
            "error: link: a symbolic link: links are not followed, give the directory itself\n",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(one_line_error(args, d), want, "{args:?}");
    }
    // Good arguments, but no terminal to draw on.
    let err = one_line_error(&["watch", "sw"], d);
    assert!(err.contains("needs a terminal"), "{err}");
}

#[test]
fn plot_compare_draws_one_png_of_a_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = cnn_tui(
        &[
            "sweep",
            "--set",
            "optimizer.lr=0.1,0.01",
            "--epochs",
            "1",
            "--no-plots",
            "--dir",
            "sw",
        ],
        d,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = cnn_tui(&["plot", "--compare", "sw", "--out", "cmp.png"], d);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "cmp.png\n");
    let png = image::open(d.join("cmp.png")).unwrap().to_rgb8();
    assert_eq!(png.dimensions(), cnn_tui::plots::compare_size(2));
    // Both runs' colours are drawn.
    for colour in &cnn_tui::plots::RUN_COLOURS[..2] {
        assert!(
            png.pixels().filter(|p| p.0 == *colour).count() > 50,
            "{colour:?}"
        );
    }
    // The default place, and a run without progress yet is an error naming it.
    let o = cnn_tui(&["plot", "--compare", "sw/000-lr=0.1", "sw/001-lr=0.01"], d);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "compare.png\n");
    assert!(d.join("compare.png").is_file());
    std::fs::create_dir(d.join("sw/002-new")).unwrap();
    std::fs::write(d.join("sw/002-new/config.toml"), "").unwrap();
    let err = one_line_error(&["plot", "--compare", "sw", "--out", "x.png"], d);
    assert!(err.contains("no training progress to plot yet"), "{err}");
}
