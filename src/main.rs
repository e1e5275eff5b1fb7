//! The `registry-operator` binary: the operator and its CLI.

use std::process::ExitCode;

use clap::Parser;
use registry_operator::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    registry_operator::cli::run(cli)
}
