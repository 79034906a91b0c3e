//! Making sure the machine has what a task needs, installing it if we can.
//!
//! Rust pieces come from rustup, which reads `rust-toolchain.toml` (channel,
//! the `x86_64-unknown-none` target, clippy, rustfmt). Everything else is a
//! Debian package, listed once in [`PACKAGES`] with the probe that says it
//! works: the same probe is run before installing (is it there?) and after
//! (did the install give us a working tool?), so the two cannot disagree.
//! A package is installed with `apt-get install -y --no-install-recommends`
//! when its probe fails and we run as root; otherwise the task stops and
//! names it (a test never passes for want of a tool). `cargo xtask
//! fresh-check` removes exactly these packages in a throwaway root.

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
        .any(|line| line.trim() == crate::run::BARE_METAL_TARGET);
    let have = |name: &str| components.lines().any(|line| line.starts_with(name));
    if have_target && have("clippy") && have("rustfmt") {
        return Ok(());
    }
    println!(
        "xtask: installing the pinned toolchain's missing pieces \
         ({} target, clippy, rustfmt) with `rustup toolchain install`",
        crate::run::BARE_METAL_TARGET
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
            crate::run::BARE_METAL_TARGET
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

/// What `program args` prints on standard output, if it runs and exits 0
/// (from the workspace root, with rustup's toolchain override removed).
pub(crate) fn output(program: &str, args: &[&str]) -> Option<String> {
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

/// A Debian package a task installs, and the command that proves it works.
#[derive(Clone, Copy, Debug)]
pub struct Package {
    /// The Debian package.
    pub name: &'static str,
    /// The program the probe runs.
    pub program: &'static str,
    /// Its arguments: a command that exits 0 exactly when the tool works
    /// (makedumpfile answers `-v` but refuses `--version`; a Python module
    /// is probed by importing it, since `python3 --version` always passes).
    pub probe: &'static [&'static str],
    /// Which tasks need it, for the messages.
    pub why: &'static str,
}

impl Package {
    /// Whether the probe passes on this machine now.
    pub fn works(&self) -> bool {
        output(self.program, self.probe).is_some()
    }

    /// The probe as a shell would show it.
    pub fn probe_command(&self) -> String {
        std::iter::once(self.program)
            .chain(self.probe.iter().copied())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// QEMU, for the crash-injection scenarios, the corpora and the demo.
pub const QEMU: Package = Package {
    name: "qemu-system-x86",
    program: "qemu-system-x86_64",
    probe: &["--version"],
    why: "the QEMU crash-injection tests",
};
/// binutils' readelf, one of the dump-format checks' independent readers.
pub const BINUTILS: Package = Package {
    name: "binutils",
    program: "readelf",
    probe: &["--version"],
    why: "the dump-format checks",
};
/// gdb: reads crashkit's ELF dumps and unwinds the test kernel's stacks.
pub const GDB: Package = Package {
    name: "gdb",
    program: "gdb",
    probe: &["--version"],
    why: "the dump-format checks and the CLI benchmark",
};
/// makedumpfile: filters the Linux guest's dumps, reassembles crashkit's.
pub const MAKEDUMPFILE: Package = Package {
    name: "makedumpfile",
    program: "makedumpfile",
    probe: &["-v"],
    why: "the Linux dump corpus",
};
/// crash: reads the release of every file `crashkit convert` writes from a
/// Linux guest's dump, as it reads the source's.
pub const CRASH: Package = Package {
    name: "crash",
    program: "crash",
    probe: &["--version"],
    why: "the Linux dump corpus",
};
/// libkdumpfile's Python binding, as Debian's Python sees it (not a pyenv
/// `python3` first on PATH).
pub const LIBKDUMPFILE: Package = Package {
    name: "python3-libkdumpfile",
    program: "/usr/bin/python3",
    probe: &["-c", "import kdumpfile"],
    why: "the kdump-compressed checks and the CLI benchmark",
};
/// drgn, as Debian's Python sees it.
pub const DRGN: Package = Package {
    name: "python3-drgn",
    program: "/usr/bin/python3",
    probe: &["-c", "import drgn"],
    why: "the CLI benchmark",
};
/// g++, which libFuzzer's build needs.
pub const GXX: Package = Package {
    name: "g++",
    program: "g++",
    probe: &["--version"],
    why: "libFuzzer, built by the fuzz target",
};

/// Debian's Chromium: the browser `crashkit report`'s and `triage
/// --html`'s pages are loaded in (headless, driven through the DevTools
/// protocol) by the CLI's browser test, and the demo's screenshot.
pub const CHROMIUM: Package = Package {
    name: "chromium",
    program: "chromium",
    probe: &["--version"],
    why: "the report pages' browser test",
};

/// Every Debian package any task installs: the one list `fresh-check`
/// removes and the probe test walks. (gcc, the linker Rust needs, is
/// `.ci/run`'s: the xtask cannot link without it.)
pub const PACKAGES: &[Package] = &[
    QEMU,
    BINUTILS,
    GDB,
    MAKEDUMPFILE,
    CRASH,
    LIBKDUMPFILE,
    DRGN,
    GXX,
    CHROMIUM,
];

/// `qemu-system-x86_64`. Without it the QEMU tests cannot run, and that is
/// an error, never a skip.
pub fn qemu() -> Result<(), String> {
    ensure(&QEMU)
}

/// The tools nobody here wrote that check crashkit's dumps: readelf, gdb,
/// makedumpfile and libkdumpfile's Python binding.
pub fn dump_checkers() -> Result<(), String> {
    for package in [&BINUTILS, &GDB, &MAKEDUMPFILE, &LIBKDUMPFILE] {
        ensure(package)?;
    }
    Ok(())
}

/// Chromium, for the report pages' browser test.
pub fn browser() -> Result<(), String> {
    ensure(&CHROMIUM)
}

/// The peers of the CLI benchmark: gdb, libkdumpfile and drgn.
pub fn cli_peers() -> Result<(), String> {
    for package in [&GDB, &LIBKDUMPFILE, &DRGN] {
        ensure(package)?;
    }
    Ok(())
}

/// g++, which libFuzzer's build (the fuzz target) needs.
pub fn gxx() -> Result<(), String> {
    ensure(&GXX)
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
    ensure(&MAKEDUMPFILE)
}

/// makedumpfile and crash, which the Linux corpus runs on the guest's dumps
/// and on `crashkit convert`'s files of them.
pub fn linux_corpus_tools() -> Result<(), String> {
    ensure(&MAKEDUMPFILE)?;
    ensure(&CRASH)
}

/// `package` works (its probe passes), installing it from Debian with apt
/// when it does not and we are root; otherwise an error naming the
/// package. A test that needs it fails without it, never skips.
pub fn ensure(package: &Package) -> Result<(), String> {
    if package.works() {
        return Ok(());
    }
    let apt = output("apt-get", &["--version"]).is_some();
    if !(running_as_root() && apt) {
        return Err(format!(
            "{} does not work (`{}` failed): install it (Debian: apt-get install {}), then rerun",
            package.program,
            package.probe_command(),
            package.name
        ));
    }
    println!(
        "xtask: installing {} with apt-get (for {})",
        package.name, package.why
    );
    for args in [
        &["update", "-q"][..],
        &["install", "-y", "--no-install-recommends", package.name][..],
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
    // The same probe as before installing.
    if package.works() {
        Ok(())
    } else {
        Err(format!(
            "{} still does not work after installing {} (`{}` failed)",
            package.program,
            package.name,
            package.probe_command()
        ))
    }
}

/// Whether we run as root (apt and chroot need it).
pub(crate) fn running_as_root() -> bool {
    output("id", &["-u"]).is_some_and(|uid| uid.trim() == "0")
}

/// Whether Debian's package `name` is installed, as the dpkg database in
/// `admin_dir` says (`None`: this machine's).
pub(crate) fn installed(name: &str, admin_dir: Option<&std::path::Path>) -> bool {
    let admin = admin_dir.map(|dir| format!("--admindir={}", dir.display()));
    let mut args: Vec<&str> = admin.iter().map(String::as_str).collect();
    args.extend(["-W", "-f=${Status}", name]);
    output("dpkg-query", &args).is_some_and(|status| status.trim_end().ends_with(" installed"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every installed package's probe passes: a probe a tool rejects (the
    /// defect: makedumpfile probed with `--version` after installing) fails
    /// here on any machine that has the package, as CI's has after its
    /// first run. The probe is the one value `ensure` uses before and after
    /// installing, so this is the check of both.
    #[test]
    fn the_probe_of_every_installed_package_passes() {
        let mut checked = 0;
        for package in PACKAGES {
            if !installed(package.name, None) {
                continue;
            }
            assert!(
                package.works(),
                "{} is installed but its probe `{}` fails",
                package.name,
                package.probe_command()
            );
            checked += 1;
        }
        println!(
            "{checked} of {} packages installed and probed",
            PACKAGES.len()
        );
    }

    /// The defect itself, on a probe this machine always has: a tool that
    /// rejects the probe's arguments is "not working", whatever the
    /// package says.
    #[test]
    fn a_rejected_probe_reads_as_not_working() {
        let rejected = Package {
            name: "coreutils",
            program: "true",
            probe: &[],
            why: "a test",
        };
        assert!(rejected.works());
        let refusing = Package {
            program: "false",
            ..rejected
        };
        assert!(!refusing.works());
    }

    #[test]
    fn packages_are_listed_once_and_python_modules_are_imported() {
        for (at, package) in PACKAGES.iter().enumerate() {
            assert!(
                PACKAGES[..at]
                    .iter()
                    .all(|other| other.name != package.name),
                "{} listed twice",
                package.name
            );
            if package.program.contains("python") {
                assert_eq!(package.probe.first(), Some(&"-c"), "{}", package.name);
                assert!(
                    package
                        .probe
                        .get(1)
                        .is_some_and(|code| code.starts_with("import ")),
                    "{}: a Python package is probed by importing its module",
                    package.name
                );
            }
        }
    }
}
