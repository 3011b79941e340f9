use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cnn_tui::cli::Cli::parse();
    ExitCode::from(cnn_tui::cli::run(cli))
}
