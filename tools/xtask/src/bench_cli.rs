//! `cargo xtask bench-cli [ROUNDS]`: the `crashkit` CLI against gdb,
//! libkdumpfile and drgn on dumps of a 16 GiB machine (`benches`, binary
//! `bench-cli`; docs/benchmarks.md).

use crate::prerequisites;
use crate::run::{Step, cache_dir, cargo};

/// `cargo xtask bench-cli [ROUNDS]`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let rounds = match args {
        [] => "10",
        [rounds] if rounds.parse::<u32>().is_ok_and(|n| n > 0) => rounds.as_str(),
        _ => return Err("`bench-cli` takes at most one argument, the rounds".into()),
    };
    prerequisites::rust_toolchain()?;
    prerequisites::qemu()?;
    prerequisites::makedumpfile()?;
    prerequisites::cli_peers()?;
    Step::new(
        "crashkit CLI, release build",
        cargo(["build", "--release", "-q", "-p", "crashkit-cli"]),
    )
    .run()?;
    let mut bench = cargo([
        "run",
        "--release",
        "-q",
        "-p",
        "crashkit-benches",
        "--bin",
        "bench-cli",
        "--",
    ]);
    bench.arg(cache_dir()?).args(["--rounds", rounds]);
    Step::new("crashkit CLI against gdb, libkdumpfile and drgn", bench)
        .time_limit(60 * 60)
        .run()
}
