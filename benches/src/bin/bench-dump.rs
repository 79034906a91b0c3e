//! The dump path per phase, both writers, beside Linux's kdump
//! ([`crashkit_benches::dump`]).

use std::path::PathBuf;

use clap::Parser;

/// The dump path per phase under QEMU (TCG): the capture kernel and the
/// in-place writer at 2, 4 and 8 CPUs with 128 MiB and 1 GiB, and Linux's
/// kdump with the same RAM where it can reserve its capture kernel.
#[derive(Debug, Parser)]
#[command(name = "bench-dump", about, long_about = None)]
struct Args {
    /// Boots per configuration (medians).
    #[arg(long, default_value_t = crashkit_benches::dump::ROUNDS)]
    rounds: usize,
    /// Where each boot's files go (default: target/qemu).
    #[arg(long)]
    out: Option<PathBuf>,
    /// The corpus's Linux guest directory (its cached Debian packages);
    /// without it, Linux is not measured.
    #[arg(long)]
    linux: Option<PathBuf>,
    /// Only Linux.
    #[arg(long)]
    linux_only: bool,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let out = args
        .out
        .unwrap_or_else(|| crashkit_qemu::workspace_root().join("target/qemu"));
    let kernel = crashkit_qemu::test_kernel();
    let capture = crashkit_qemu::workspace_root()
        .join("tests/kernel/target/x86_64-unknown-none/release/crashkit-capture");
    let result = crashkit_qemu::check_qemu()
        .and_then(|()| crashkit_qemu::check_kernel(&kernel))
        .and_then(|()| crashkit_qemu::check_kernel(&capture))
        .and_then(|()| {
            let mut report = String::new();
            if !args.linux_only {
                report.push_str(&crashkit_benches::dump::run_crashkit(
                    &kernel,
                    &capture,
                    &out,
                    args.rounds,
                )?);
            }
            if let Some(corpus) = &args.linux {
                report.push('\n');
                report.push_str(&crashkit_benches::dump::run_linux(
                    corpus,
                    &out,
                    &[1024],
                    args.rounds,
                )?);
            }
            Ok(report)
        });
    crashkit_benches::report("bench-dump", result)
}
