//! The kdump writers against makedumpfile ([`crashkit_benches::kdump`]).

use std::path::PathBuf;

use clap::Parser;

/// crashkit's kdump-compressed writers against makedumpfile, one core, one run.
#[derive(Debug, Parser)]
#[command(name = "bench-kdump", about, long_about = None)]
struct Args {
    /// The cache directory (the Linux guest's corpus and the image live there).
    cache: PathBuf,
    /// Rounds per contender (medians are reported).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..))]
    rounds: u16,
    /// Only these images of the set (default: all).
    #[arg(long = "image")]
    images: Vec<String>,
    /// Only these contenders (default: makedumpfile-c, zlib, makedumpfile-l, lzo).
    #[arg(long = "contender")]
    contenders: Vec<String>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    crashkit_benches::report(
        "bench-kdump",
        crashkit_benches::kdump::run(
            &args.cache,
            usize::from(args.rounds),
            &args.images,
            &args.contenders,
        ),
    )
}
