//! Making sure the machine has what a task needs, installing it if we can.
//!
//! Rust pieces come from rustup, which reads `rust-toolchain.toml` (channel,
//! the `x86_64-unknown-none` target, clippy, rustfmt). The QEMU tests need
//! one Debian package, qemu-system-x86, installed with `apt-get install -y
//! --no-install-recommends` when it is missing and we run as root; otherwise
//! the task stops and says so (a QEMU test never passes without QEMU).

use std::process::Command;

/// The bare-metal target, clippy and rustfmt of the pinned toolchain.
pub fn rust_toolchain() -> Result<(), String> {
    let targets = output("rustup", &["target", "list", "--installed"]);
    let components = output("rustup", &["component", "list", "--installed"]);
    let (Some(targets), Some(components)) = (targets, components) else {
        return Err("rustup is not on PATH: install it from https://rustup.rs, \
                    then rerun (rust-toolchain.toml pins the toolchain)"
            .into());
    };
    let have_target = targets
        .lines()
        .any(|line| line.trim() == crate::BARE_METAL_TARGET);
    let have = |name: &str| components.lines().any(|line| line.starts_with(name));
    if have_target && have("clippy") && have("rustfmt") {
        return Ok(());
    }
    println!(
        "xtask: installing the pinned toolchain's missing pieces \
         ({} target, clippy, rustfmt) with `rustup toolchain install`",
        crate::BARE_METAL_TARGET
    );
    let root = crate::run::workspace_root()?;
    let status = Command::new("rustup")
        .args(["toolchain", "install"])
        .env_remove(TOOLCHAIN_OVERRIDE)
        .current_dir(root)
        .status()
        .map_err(|e| format!("cannot run rustup: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`rustup toolchain install` failed ({status}); install the \
             {} target, clippy and rustfmt by hand",
            crate::BARE_METAL_TARGET
        ))
    }
}

/// The variable through which `cargo` (run by rustup's proxy) tells child
/// processes which toolchain it is. With it set, `rustup toolchain install`
/// installs that toolchain as rustup's defaults have it and ignores
/// `rust-toolchain.toml`, targets and components included: a fresh machine
/// then got no bare-metal target. Removed for every rustup call here, so
/// that rustup reads the file.
const TOOLCHAIN_OVERRIDE: &str = "RUSTUP_TOOLCHAIN";

fn output(program: &str, args: &[&str]) -> Option<String> {
    let root = crate::run::workspace_root().ok()?;
    let output = Command::new(program)
        .args(args)
        .env_remove(TOOLCHAIN_OVERRIDE)
        .current_dir(root)
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// `qemu-system-x86_64`, installed from Debian's qemu-system-x86 if missing
/// (as root, with apt). Without it the QEMU tests cannot run, and that is an
/// error, never a skip.
pub fn qemu() -> Result<(), String> {
    debian_tool(
        "qemu-system-x86_64",
        "qemu-system-x86",
        "the QEMU crash-injection tests",
    )
}

/// The tools nobody here wrote that check crashkit's dumps: binutils'
/// `readelf`, `gdb`, makedumpfile and libkdumpfile's Python binding,
/// installed from Debian if missing.
pub fn dump_checkers() -> Result<(), String> {
    debian_tool("readelf", "binutils", "the dump-format checks")?;
    debian_tool("gdb", "gdb", "the dump-format checks")?;
    makedumpfile()?;
    // libkdumpfile, seen by Debian's Python (not a pyenv one first on PATH).
    debian_tool_with(
        "/usr/bin/python3",
        &["-c", "import kdumpfile"],
        "python3-libkdumpfile",
        "the kdump-compressed checks",
    )
}

/// The peers of the CLI benchmark: gdb, and libkdumpfile's and drgn's
/// Python bindings as Debian's Python sees them.
pub fn cli_peers() -> Result<(), String> {
    debian_tool("gdb", "gdb", "the CLI benchmark")?;
    debian_tool_with(
        "/usr/bin/python3",
        &["-c", "import kdumpfile"],
        "python3-libkdumpfile",
        "the CLI benchmark",
    )?;
    debian_tool_with(
        "/usr/bin/python3",
        &["-c", "import drgn"],
        "python3-drgn",
        "the CLI benchmark",
    )
}

/// g++, which libFuzzer's build (the fuzz target) needs.
pub fn gxx() -> Result<(), String> {
    debian_tool("g++", "g++", "libFuzzer, built by the fuzz target")
}

/// `cargo fuzz` (installed with `cargo install cargo-fuzz --locked` if
/// missing) and g++, which libFuzzer's build needs.
pub fn cargo_fuzz() -> Result<(), String> {
    gxx()?;
    if output("cargo", &["fuzz", "--version"]).is_some() {
        return Ok(());
    }
    println!("xtask: installing cargo-fuzz with `cargo install cargo-fuzz --locked`");
    let status = Command::new("cargo")
        .args(["install", "cargo-fuzz", "--locked"])
        .status()
        .map_err(|e| format!("cannot run cargo install: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`cargo install cargo-fuzz` failed ({status})"))
    }
}

/// makedumpfile, which filters the Linux guest's dump in the corpus.
pub fn makedumpfile() -> Result<(), String> {
    debian_tool_with(
        "makedumpfile",
        &["-v"],
        "makedumpfile",
        "the Linux dump corpus",
    )
}

/// `program` (answering `--version`), installed from Debian's `package`
/// with apt when it is missing and we are root; otherwise an error naming
/// the package. A test that needs it fails without it, never skips.
fn debian_tool(program: &str, package: &str, why: &str) -> Result<(), String> {
    debian_tool_with(program, &["--version"], package, why)
}

/// [`debian_tool`] for a program that answers `probe` (not `--version`).
fn debian_tool_with(program: &str, probe: &[&str], package: &str, why: &str) -> Result<(), String> {
    if output(program, probe).is_some() {
        return Ok(());
    }
    let root = output("id", &["-u"]).is_some_and(|uid| uid.trim() == "0");
    let apt = output("apt-get", &["--version"]).is_some();
    if !(root && apt) {
        return Err(format!(
            "{program} is missing: install it (Debian: apt-get install {package}), then rerun"
        ));
    }
    println!("xtask: installing {package} with apt-get (for {why})");
    for args in [
        &["update", "-q"][..],
        &["install", "-y", "--no-install-recommends", package][..],
    ] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("cannot run apt-get: {e}"))?;
        if !status.success() {
            return Err(format!("`apt-get {}` failed ({status})", args.join(" ")));
        }
    }
    if output(program, &["--version"]).is_some() {
        Ok(())
    } else {
        Err(format!(
            "{program} is still missing after installing {package}"
        ))
    }
}
