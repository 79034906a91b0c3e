//! `cargo xtask bench-kdump [ROUNDS] [--image NAME]... [CONTENDER]...`:
//! the kdump writers against makedumpfile `-c` and `-l` on the benchmark
//! set, 1 GiB images made from a crashed Linux guest (`benches`, binary
//! `bench-kdump`; docs/benchmarks.md).

use crate::prerequisites;
use crate::run::{Step, cache_dir, cargo};

/// `cargo xtask bench-kdump [ROUNDS] [--image NAME]... [CONTENDER]...`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let (rounds, rest) = match args.split_first() {
        Some((first, rest)) if first.parse::<u32>().is_ok() => (first.as_str(), rest),
        _ => ("5", args),
    };
    prerequisites::rust_toolchain()?;
    prerequisites::qemu()?;
    // makedumpfile and libkdumpfile's Python binding (the check).
    prerequisites::dump_checkers()?;
    let mut bench = cargo([
        "run",
        "--release",
        "-q",
        "-p",
        "crashkit-benches",
        "--bin",
        "bench-kdump",
        "--",
    ]);
    bench.arg(cache_dir()?).args(["--rounds", rounds]);
    let mut rest = rest.iter();
    while let Some(arg) = rest.next() {
        if arg == "--image" {
            let name = rest.next().ok_or("--image needs a NAME")?;
            bench.args(["--image", name]);
        } else {
            bench.args(["--contender", arg]);
        }
    }
    Step::new("kdump writers against makedumpfile", bench)
        .time_limit(3 * 60 * 60)
        .run()
}
