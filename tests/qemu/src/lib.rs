//! `crashkit-qemu`: what every room of the QEMU rig uses.
//!
//! | module | what |
//! |--------|------|
//! | [`qemu`] | one boot: QEMU with file-backed guest RAM, a hard timeout, the kernel's exit status and serial log |
//! | [`qmp`] | the QMP client: `inject-nmi` when the kernel asks, `dump-guest-memory`, `quit` |
//! | [`host`] | host commands with their output, dumps compared page by page with guest RAM |
//! | [`rewrite`] | a crashkit ELF vmcore written from another producer's dump |
//!
//! The rooms: the crash-injection scenarios (`tests/scenarios`), the dump
//! corpora (`tests/corpus`) and the benchmarks (`benches`).

pub mod crash_log;
pub mod host;
pub mod qemu;
pub mod qmp;
pub mod rewrite;

use std::path::PathBuf;

/// An error and its causes, `what: why: why...`, for the rig's string
/// errors.
pub fn causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The repository's root (every room is two folders below it).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// The full QEMU test kernel as `cargo xtask` builds it.
pub fn test_kernel() -> PathBuf {
    workspace_root().join("tests/kernel/target/x86_64-unknown-none/release/crashkit-test-kernel")
}

/// The minimal QEMU test kernel as `cargo xtask` builds it.
pub fn minimal_kernel() -> PathBuf {
    workspace_root().join("tests/kernel/target/x86_64-unknown-none/release/crashkit-minimal-kernel")
}

/// QEMU must be there: a test never passes for want of it.
pub fn check_qemu() -> Result<(), String> {
    let qemu = std::process::Command::new(qemu::QEMU)
        .arg("--version")
        .output()
        .map_err(|e| {
            format!(
                "{} is not runnable ({e}); install qemu-system-x86",
                qemu::QEMU
            )
        })?;
    if !qemu.status.success() {
        return Err(format!("`{} --version` failed", qemu::QEMU));
    }
    Ok(())
}

/// The kernel must be there: a test never passes for want of it.
pub fn check_kernel(kernel: &std::path::Path) -> Result<(), String> {
    if kernel.is_file() {
        Ok(())
    } else {
        Err(format!(
            "no test kernel at {} (build it: cargo build --release --manifest-path \
             tests/kernel/Cargo.toml --target x86_64-unknown-none)",
            kernel.display()
        ))
    }
}
