//! `cargo xtask bench-triage [ROUNDS]`: `crashkit triage` over 100 dumps of
//! the corpora against a script running `crashkit --json info` per file
//! and against drgn (`benches`, binary `bench-triage`;
//! docs/benchmarks.md). The corpora are `cargo xtask test`'s.

use crate::prerequisites;
use crate::run::{Step, cache_dir, cargo, workspace_root};

/// `cargo xtask bench-triage [ROUNDS]`.
pub(crate) fn run(args: &[String]) -> Result<(), String> {
    let rounds = match args {
        [] => "5",
        [rounds] if rounds.parse::<u32>().is_ok_and(|n| n > 0) => rounds.as_str(),
        _ => return Err("`bench-triage` takes at most one argument, the rounds".into()),
    };
    prerequisites::rust_toolchain()?;
    prerequisites::cli_peers()?;
    Step::new(
        "crashkit CLI, release build",
        cargo(["build", "--release", "-q", "-p", "crashkit-cli"]),
    )
    .run()?;
    let crashkit = workspace_root()?.join("target/release/crashkit");
    let mut bench = cargo([
        "run",
        "--release",
        "-q",
        "-p",
        "crashkit-benches",
        "--bin",
        "bench-triage",
        "--",
    ]);
    bench
        .arg(cache_dir()?)
        .arg("--crashkit")
        .arg(crashkit)
        .args(["--rounds", rounds]);
    Step::new(
        "crashkit triage against a per-file info script and drgn",
        bench,
    )
    .time_limit(60 * 60)
    .run()
}
