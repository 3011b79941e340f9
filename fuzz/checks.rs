//! What each fuzz target checks, shared by the fuzz targets (`cargo +nightly fuzz run NAME`)
//! and the stable test that replays the corpus and every past crash (`tests/it/fuzz_corpus.rs`).
//! Each function must never panic, hang or allocate without bound, whatever the bytes.

use std::path::Path;

/// The IDX reader, raw and gzip (gzip is recognised by its magic bytes).
pub fn idx(data: &[u8]) {
    if let Ok(a) = cnn_tui::data::idx::parse_idx(Path::new("fuzz.idx"), data) {
        // What parses is consistent: the dimensions account for every byte.
        assert_eq!(a.dims.iter().product::<usize>(), a.data.len());
    }
}

/// The TOML config loader with `--set` overrides: the file's text, a NUL byte, then one
/// override per line.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (toml, sets) = text.split_once('\0').unwrap_or((text, ""));
    let overrides: Vec<String> = sets.lines().map(str::to_string).collect();
    if let Ok(config) = cnn_tui::config::parse_config(toml, "fuzz.toml", &overrides) {
        // A config that loads builds its model or says why not, and writes itself back as
        // TOML that loads to the same config.
        let _ = cnn_tui::nn::Sequential::build(&config.model, [28, 28, 1], 10, 1);
        let again = cnn_tui::config::parse_config(&config.to_toml(), "again.toml", &[])
            .expect("a saved config loads");
        assert_eq!(again, config);
    }
}

/// The checkpoint and weights loaders (safetensors with cnn-tui's metadata).
pub fn checkpoint(data: &[u8]) {
    let path = Path::new("fuzz.safetensors");
    let _ = cnn_tui::train::checkpoint::from_bytes(path, data);
    let _ = cnn_tui::weights::from_bytes(path, data);
}

/// `metrics.jsonl` as every reader reads it: `watch`, `ctl`, `plot`, `runs` and a resume.
pub fn metrics(data: &[u8]) {
    use cnn_tui::rundir::metrics::{Record, parse_all};
    parse_all(data, |record| {
        // What reads writes itself back as a record that reads, and replays as an event.
        assert!(Record::parse(record.to_line().as_bytes()).is_some());
        let _ = record.step();
        let _ = record.into_event();
    });
    let _ = cnn_tui::plots::parse_metrics(Path::new("metrics.jsonl"), data);
    let mut kept = Vec::new();
    cnn_tui::rundir::metrics::Tail::copy_until(data, 10, &mut kept).expect("writes to memory");
    assert!(kept.len() <= data.len() + 1);
}

/// The command files a running job reads from its commands folder.
pub fn command_file(data: &[u8]) {
    use cnn_tui::rundir::commands::CommandFile;
    if let Ok(file) = CommandFile::parse(data) {
        // A valid command survives writing it back.
        let bytes = serde_json::to_vec(&file).expect("command files serialize");
        assert_eq!(CommandFile::parse(&bytes), Ok(file));
    }
}

/// `predict`'s image decoding and MNIST-style preprocessing.
pub fn picture(data: &[u8]) {
    if let Ok(digit) = cnn_tui::data::digit::digit_from_picture(data) {
        assert_eq!(digit.len(), 28 * 28);
        assert!(digit.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

/// A target's check.
pub type Check = fn(&[u8]);

/// Every target by name.
pub const TARGETS: [(&str, Check); 6] = [
    ("idx", idx),
    ("config", config),
    ("checkpoint", checkpoint),
    ("metrics", metrics),
    ("command_file", command_file),
    ("picture", picture),
];
