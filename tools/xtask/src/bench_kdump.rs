//! `cargo xtask bench-kdump [ROUNDS] [CONTENDER]...`: the kdump writers
//! against makedumpfile `-c` and `-l` on a 1 GiB image made from a crashed
//! Linux guest (`benches`, binary `bench-kdump`; docs/benchmarks.md).

use crate::prerequisites;
use crate::run::{Step, cache_dir, cargo};

/// `cargo xtask bench-kdump [ROUNDS] [CONTENDER]...`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let (rounds, contenders) = match args.split_first() {
        Some((first, rest)) if first.parse::<u32>().is_ok() => (first.as_str(), rest),
        _ => ("5", args),
    };
    prerequisites::rust_toolchain()?;
    prerequisites::qemu()?;
    prerequisites::makedumpfile()?;
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
    for contender in contenders {
        bench.args(["--contender", contender]);
    }
    Step::new("kdump writers against makedumpfile", bench)
        .time_limit(60 * 60)
        .run()
}
