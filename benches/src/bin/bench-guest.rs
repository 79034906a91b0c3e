//! NMI round trips and the shootdown inside the QEMU test kernel
//! ([`crashkit_benches::guest`]).

use std::path::PathBuf;

use clap::Parser;

/// NMI round trips and the shootdown, timed by the QEMU test kernel.
#[derive(Debug, Parser)]
#[command(name = "bench-guest", about, long_about = None)]
struct Args {
    /// The test kernel's ELF (default: the one `cargo xtask` builds).
    #[arg(long)]
    kernel: Option<PathBuf>,
    /// Where each boot's files go (default: target/qemu).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let kernel = args.kernel.unwrap_or_else(crashkit_qemu::test_kernel);
    let out = args
        .out
        .unwrap_or_else(|| crashkit_qemu::workspace_root().join("target/qemu"));
    let result = crashkit_qemu::check_qemu()
        .and_then(|()| crashkit_qemu::check_kernel(&kernel))
        .and_then(|()| crashkit_benches::guest::run(&kernel, &out));
    crashkit_benches::report("bench-guest", result)
}
