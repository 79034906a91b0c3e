//! crashkit's task runner: `cargo xtask TASK`, one module per task.
//!
//! Every task first makes sure the machine has what it needs, installing it
//! where it can (the pinned Rust toolchain with its `x86_64-unknown-none`
//! target, clippy and rustfmt through rustup; Debian packages through
//! `apt-get install -y --no-install-recommends` when running as root;
//! [`prerequisites`]) and stopping with a message that names what is
//! missing otherwise.
//!
//! | task | module | what |
//! |------|--------|------|
//! | `test` | [`test`](mod@test) | formatting, clippy, bare-metal builds, rustdoc, all tests, the QEMU scenarios (`tests/scenarios`), the dump corpora (`tests/corpus`), the loom model; `.ci/run` calls it |
//! | `demo` | [`demo`] | the most complete real run crashkit has today, artefacts in `target/demo/` |
//! | `fuzz [SECONDS]` | [`fuzz`] | each fuzz target of `kdump/format/fuzz`, corpora in the cache directory ([`run::cache_dir`]) |
//! | `bench-kdump [ROUNDS] [--image NAME]... [CONTENDER]...` | [`bench_kdump`] | the kdump writers against makedumpfile on the benchmark set (`benches`) |
//! | `bench-cli [ROUNDS]` | [`bench_cli`] | the CLI against gdb, libkdumpfile and drgn (`benches`) |
//! | `bench-triage [ROUNDS]` | [`bench_triage`] | `crashkit triage` over 100 corpus dumps against a per-file `info` script and drgn (`benches`) |
//! | `test-kvm` | [`test_kvm`] | both QEMU kernels' scenarios with `-accel kvm`; not part of `test` |
//! | `fresh-check` | [`fresh_check`] | `demo` and `test` as a fresh machine runs them; not part of `test` |
//!
//! [`run`] has what the tasks share: a step with a time limit, `cargo`,
//! the workspace root and the cache directory.

mod bench_cli;
mod bench_kdump;
mod bench_triage;
mod demo;
mod fresh_check;
mod fuzz;
mod prerequisites;
mod run;
mod test;
mod test_kvm;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let task = args.next();
    let rest: Vec<String> = args.collect();
    let result = match task.as_deref() {
        Some("test") => test::run(&rest),
        Some("demo") => demo::run(&rest),
        Some("fuzz") => fuzz::run(&rest),
        Some("bench-kdump") => bench_kdump::run(&rest),
        Some("bench-cli") => bench_cli::run(&rest),
        Some("bench-triage") => bench_triage::run(&rest),
        Some("fresh-check") => fresh_check::run(&rest),
        Some("test-kvm") => test_kvm::run(&rest),
        Some("help") | Some("--help") | Some("-h") | None => {
            print_help();
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown task `{other}`; try `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: error: {message}");
            ExitCode::FAILURE
        }
    }
}

fn print_help() {
    println!(
        "cargo xtask <task>\n\n\
         tasks:\n  \
         test   format check, clippy, bare-metal builds, rustdoc, all tests, QEMU scenarios, loom model\n  \
         demo   the NMI core and a kernel panic on the host simulation, then a panic under QEMU\n  \
         fuzz [SECONDS]  fuzz each dump reader and the page encoders (default 300 s each; corpora in the cache directory)\n  \
         bench-kdump [ROUNDS] [--image NAME]... [CONTENDER]...  the kdump writers against makedumpfile on the benchmark set of 1 GiB images (default 5 rounds; about 35 minutes)\n  \
         bench-cli [ROUNDS]  the crashkit CLI against gdb, libkdumpfile and drgn on dumps of a 16 GiB machine (default 10 rounds)\n  \
         bench-triage [ROUNDS]  crashkit triage over 100 corpus dumps against a per-file info script and drgn (default 5 rounds; after cargo xtask test)\n  \
         test-kvm  both QEMU kernels' scenarios under KVM (-accel kvm; needs /dev/kvm; not part of `test`)\n  \
         fresh-check  the README's two commands on a fresh machine: a new clone in a throwaway Debian root (mmdebstrap) without the packages the tasks install, an empty cache (root only; not part of `test`)\n  \
         help   this text"
    );
}
