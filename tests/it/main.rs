//! One integration-test binary (ripgrep style) with shared helpers.

mod bad_input;
mod bench;
mod checkpoints;
mod compare;
mod configs;
mod dashboard;
mod faults;
mod fuzz_corpus;
mod layer_stats;
mod pictures;
mod plots;
mod predict;
mod remote;
mod resume;
mod rundir;
mod tmux;
mod training;
mod util;
