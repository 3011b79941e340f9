//! Replays every fuzz target's corpus and every input that once crashed one (kept as
//! regressions) through the same checks, on the stable toolchain: `fuzz/corpus/<target>/`
//! and `fuzz/regressions/<target>/`.

#[path = "../../fuzz/checks.rs"]
mod checks;

use std::path::Path;

#[test]
fn every_fuzz_corpus_and_regression_input_is_handled_without_panicking() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, check) in checks::TARGETS {
        let mut inputs = 0;
        for kind in ["corpus", "regressions"] {
            let Ok(entries) = std::fs::read_dir(root.join(kind).join(name)) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let bytes = std::fs::read(&path).unwrap();
                let outcome = std::panic::catch_unwind(|| check(&bytes));
                assert!(outcome.is_ok(), "{name}: {} panicked", path.display());
                inputs += 1;
            }
        }
        assert!(
            inputs >= 4,
            "{name}: only {inputs} inputs; the corpus is missing"
        );
    }
}
