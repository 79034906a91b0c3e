//! `crashkit-benches`: crashkit measured against the tools it stands beside,
//! each benchmark a binary that prints a Markdown table (results and how
//! they were made: docs/benchmarks.md). Speed targets are checked here,
//! never by timed tests.
//!
//! | binary (`cargo xtask ...`) | module | what |
//! |----------------------------|--------|------|
//! | `bench-kdump` (`bench-kdump`) | [`kdump`] | the kdump-compressed writers against makedumpfile on a set of 1 GiB images of a crashed Linux guest's memory, one kind of page each, and mixes |
//! | `bench-cli` (`bench-cli`) | [`cli`] | the `crashkit` CLI against gdb, libkdumpfile and drgn on dumps of a 16 GiB machine |
//! | `bench-triage` (`bench-triage`) | [`triage`] | `crashkit triage` over 100 dumps against a per-file `crashkit info` script and drgn |
//! | `bench-guest` | [`guest`] | NMI round trips and the shootdown, timed inside the QEMU test kernel |
//! | `bench-dump` | [`dump`] | the dump path per phase, capture kernel and in-place writer, beside Linux's kdump |
//!
//! The criterion benchmarks of single crates stay with their crate
//! (`nmi/benches`, `shootdown/benches`).

pub mod cli;
pub mod dump;
pub mod guest;
pub mod kdump;
pub mod triage;

/// Print a benchmark's report, or its error as `NAME: error`; the exit code.
pub fn report(name: &str, result: Result<String, String>) -> std::process::ExitCode {
    match result {
        Ok(report) => {
            println!("{report}");
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("{name}: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
