//! `crashkit triage` over 100 dumps against a per-file `crashkit info`
//! script and drgn ([`crashkit_benches::triage`]).

use std::path::PathBuf;

use clap::Parser;

/// `crashkit triage` over 100 dumps against its peers, one core, one run.
#[derive(Debug, Parser)]
#[command(name = "bench-triage", about, long_about = None)]
struct Args {
    /// The cache directory (the corpora `cargo xtask test` makes are there).
    cache: PathBuf,
    /// The `crashkit` binary to measure.
    #[arg(long)]
    crashkit: PathBuf,
    /// Rounds per contender (medians are reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    rounds: u16,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let result =
        crashkit_benches::triage::run(&args.cache, &args.crashkit, usize::from(args.rounds));
    crashkit_benches::report("bench-triage", result)
}
