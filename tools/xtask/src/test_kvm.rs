//! `cargo xtask test-kvm`: both QEMU kernels' scenarios under KVM, the way
//! kernel developers run QEMU (`-accel kvm`). Not part of `cargo xtask
//! test`: a boot takes seconds under KVM on this kind of machine (a
//! paravirtual KVM, kvm-pvm) against a fraction of a second under TCG.
//!
//! It needs `/dev/kvm` open for reading and writing; without it the task
//! fails and says so (it never passes by skipping). What cannot pass under
//! KVM, and why, is in tests/kernel/README.md ("Under KVM").

use std::path::Path;

use crate::run::{Step, cargo};

/// The task.
pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("`test-kvm` takes no arguments (got `{extra}`)"));
    }
    kvm_usable(Path::new("/dev/kvm"))?;
    crate::prerequisites::rust_toolchain()?;
    crate::prerequisites::qemu()?;
    crate::test::build_test_kernel()?;
    let out = crate::run::workspace_root()?
        .join("target")
        .join("qemu-kvm");
    for (name, minimal) in [
        ("the full test kernel's scenarios under KVM", false),
        ("the minimal kernel's scenarios under KVM", true),
    ] {
        let mut runner = cargo(["run", "--release", "-q", "-p", "crashkit-scenarios", "--"]);
        runner.args(["--accel", "kvm", "--out"]).arg(&out);
        if minimal {
            runner.arg("--minimal");
        }
        Step::new(name, runner).time_limit(60 * 60).run()?;
    }
    Ok(())
}

/// `/dev/kvm` can be opened read-write (QEMU's `-accel kvm` needs that).
fn kvm_usable(device: &Path) -> Result<(), String> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(device)
        .map(drop)
        .map_err(|e| {
            format!(
                "{} is not usable ({e}): KVM is needed for test-kvm (cargo xtask test runs the same scenarios under TCG)",
                device.display()
            )
        })
}
