//! One integration-test binary (ripgrep style) with shared helpers.

mod bad_input;
mod configs;
mod training;
mod util;
