//! The `crashkit` CLI against gdb, libkdumpfile and drgn
//! ([`crashkit_benches::cli`]).

use std::path::PathBuf;

use clap::Parser;

/// The crashkit CLI against gdb, libkdumpfile and drgn, one core, one run.
#[derive(Debug, Parser)]
#[command(name = "bench-cli", about, long_about = None)]
struct Args {
    /// The cache directory (the kdump benchmark's image and the dumps made
    /// from it live there).
    cache: PathBuf,
    /// Rounds per contender (medians are reported).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u16).range(1..))]
    rounds: u16,
    /// Measure the dumps made by an earlier run, without making them.
    #[arg(long)]
    measure_only: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let rounds = usize::from(args.rounds);
    let result = if args.measure_only {
        crashkit_benches::cli::measure_only(&args.cache, rounds)
    } else {
        crashkit_benches::cli::run(&args.cache, rounds)
    };
    crashkit_benches::report("bench-cli", result)
}
