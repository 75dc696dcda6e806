//! The `applegate` command: parses arguments and dispatches to a command.
//!
//! The arguments and the commands live in `cli.rs`; usage errors exit 2
//! with clap's message, a bad config exits 2 too, a failure to run exits 1.

mod cli;

use std::process::ExitCode;

use clap::Parser;

/// pingora allocates per request; mimalloc beat glibc malloc by 5-15% in
/// throughput on the proxy path (benches/RESULTS.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    cli::dispatch(cli::Cli::parse().into_command())
}
