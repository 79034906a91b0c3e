//! `cargo xtask fresh-check`: the README's set-up as a fresh machine sees
//! it. CI runs on a machine that keeps what earlier runs installed, so a
//! broken install step stays green there; this task takes it away.
//!
//! 1. A throwaway Debian root made with mmdebstrap (the host's release,
//!    `apt` variant: apt, dpkg and the essential packages; plus
//!    ca-certificates and gcc with libc6-dev, which a machine with a
//!    working rustup has: Rust links through `cc`). None of the packages
//!    the tasks install ([`PACKAGES`]) is there, which the task checks
//!    before it starts, except binutils, which gcc depends on (its
//!    `readelf` then comes with the toolchain, as on every Rust machine).
//! 2. The host's rustup home under an overlay at the same path inside the
//!    root (`/root/.rustup`: toolchain links are absolute), so rustup in
//!    the root reads the host's toolchains and whatever it writes (a
//!    channel sync, a stray-file clean-up) lands in the overlay, never in
//!    the host's home: a first version bound it read-write, and rustup in
//!    the root, not finding a toolchain behind an absolute link, removed
//!    the host's. The `cargo`/`rustup` proxies are copied; `CARGO_HOME` is
//!    otherwise empty (crates come from crates.io again), and so is the
//!    cache directory.
//! 3. The host's extra CA certificates (`/usr/local/share/ca-certificates`,
//!    which on this workplace's machines includes its egress proxy's) are
//!    added to the root's store: without them nothing the root downloads
//!    over TLS (crates, rustup's channel) gets through. A machine on an
//!    open network has none, and the step adds nothing there.
//! 4. A new clone of this repository's committed `HEAD` (what CI tests).
//! 5. Inside the root, as root: `cargo xtask demo`, then `cargo xtask test`
//!    (the README's two commands, in its order), each with the tasks'
//!    own installs.
//!
//! The root lives in the cache directory (`fresh-check/root`, removed at
//! the start and at the end); `/proc`, `/sys` and `/dev` are bind-mounted
//! (as slaves: nothing unmounted in the root propagates to the host) for
//! QEMU, and everything is unmounted again whatever happens.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::prerequisites::{self, PACKAGES, Package};
use crate::run::{self, Step};

/// The tool that makes the throwaway root.
const MMDEBSTRAP: Package = Package {
    name: "mmdebstrap",
    program: "mmdebstrap",
    probe: &["--version"],
    why: "the fresh-machine check",
};

/// Packages of the throwaway root beyond the `apt` variant: what a machine
/// where rustup works has.
const BASE_PACKAGES: &str = "ca-certificates,gcc,libc6-dev";

/// Where the rustup proxies and the host's rustup home appear in the root
/// (where rustup puts them on a machine: toolchain links are absolute).
const ROOT_CARGO_BIN: &str = "root/.cargo/bin";
/// See [`ROOT_CARGO_BIN`].
const ROOT_RUSTUP_HOME: &str = "root/.rustup";
/// The clone, inside the root.
const ROOT_CLONE: &str = "work/crashkit";

/// The task.
pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(extra) = args.first() {
        return Err(format!("`fresh-check` takes no arguments (got `{extra}`)"));
    }
    let started = Instant::now();
    if !prerequisites::running_as_root() {
        return Err("fresh-check makes a Debian root and chroots into it: run it as root".into());
    }
    prerequisites::ensure(&MMDEBSTRAP)?;
    let home = std::env::var_os("HOME").map(PathBuf::from);
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".cargo")))
        .map(|dir| dir.join("bin"))
        .ok_or("no CARGO_HOME or HOME: where are the rustup proxies?")?;
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| home.as_ref().map(|h| h.join(".rustup")))
        .ok_or("no RUSTUP_HOME or HOME: where are the toolchains?")?;
    for needed in [cargo_bin.join("cargo"), rustup_home.join("toolchains")] {
        if !needed.exists() {
            return Err(format!(
                "{} is missing: is rustup installed?",
                needed.display()
            ));
        }
    }
    let suite = host_codename()?;
    let work = crate::run::cache_dir()?.join("fresh-check");
    let root = work.join("root");
    remove_root(&root)?;
    std::fs::create_dir_all(&work).map_err(|e| format!("creating {}: {e}", work.display()))?;

    let mut bootstrap = Command::new("mmdebstrap");
    bootstrap
        .args(["--variant=apt", &format!("--include={BASE_PACKAGES}")])
        .arg(&suite)
        .arg(&root)
        .arg(format!("deb http://deb.debian.org/debian {suite} main"))
        .arg(format!(
            "deb http://deb.debian.org/debian {suite}-updates main"
        ))
        .arg(format!(
            "deb http://deb.debian.org/debian-security {suite}-security main"
        ));
    Step::new(
        &format!("a fresh Debian {suite} root (mmdebstrap)"),
        bootstrap,
    )
    .time_limit(20 * 60)
    .run()?;
    let result = check_in(&root, &work, &cargo_bin, &rustup_home);
    let unmounted = unmount_all(&root);
    let removed = remove_root(&root);
    // The overlay's writable half: what rustup wrote inside the root.
    let _ = std::fs::remove_dir_all(work.join("rustup-overlay"));
    result?;
    unmounted?;
    removed?;
    println!(
        "xtask: fresh-check passed in {:.0} s: the README's two commands work on a fresh machine",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Everything inside the root: the package check, the clone, the mounts
/// and the two commands.
fn check_in(root: &Path, work: &Path, cargo_bin: &Path, rustup_home: &Path) -> Result<(), String> {
    let present: Vec<&str> = PACKAGES
        .iter()
        .filter(|package| package.name != prerequisites::BINUTILS.name)
        .filter(|package| prerequisites::installed(package.name, Some(&root.join("var/lib/dpkg"))))
        .map(|package| package.name)
        .collect();
    if !present.is_empty() {
        return Err(format!(
            "the fresh root already has {}: it would not test their install",
            present.join(", ")
        ));
    }
    println!(
        "xtask: the fresh root has none of {} (binutils comes with gcc)",
        PACKAGES
            .iter()
            .map(|package| package.name)
            .filter(|name| *name != prerequisites::BINUTILS.name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let repo = run::workspace_root()?;
    let clone = root.join(ROOT_CLONE);
    let mut git = Command::new("git");
    git.args(["clone", "--quiet", "--no-local"])
        .arg(&repo)
        .arg(&clone);
    Step::new("a new clone of HEAD", git).run()?;
    std::fs::copy("/etc/resolv.conf", root.join("etc/resolv.conf"))
        .map_err(|e| format!("copying /etc/resolv.conf into the root: {e}"))?;
    let overlay = work.join("rustup-overlay");
    let _ = std::fs::remove_dir_all(&overlay);
    for path in [
        root.join("proc"),
        root.join("sys"),
        root.join("dev"),
        root.join(ROOT_CARGO_BIN),
        root.join(ROOT_RUSTUP_HOME),
        overlay.join("upper"),
        overlay.join("work"),
    ] {
        std::fs::create_dir_all(&path).map_err(|e| format!("creating {}: {e}", path.display()))?;
    }
    for proxy in
        std::fs::read_dir(cargo_bin).map_err(|e| format!("{}: {e}", cargo_bin.display()))?
    {
        let proxy = proxy.map_err(|e| format!("{}: {e}", cargo_bin.display()))?;
        let target = root.join(ROOT_CARGO_BIN).join(proxy.file_name());
        copy_preserving(&proxy.path(), &target)?;
    }
    add_host_certificates(root)?;
    mount(&["--bind", "/proc"], &root.join("proc"))?;
    mount(&["--rbind", "/sys"], &root.join("sys"))?;
    mount(&["--make-rslave"], &root.join("sys"))?;
    mount(&["--rbind", "/dev"], &root.join("dev"))?;
    mount(&["--make-rslave"], &root.join("dev"))?;
    mount(
        &[
            "-t",
            "overlay",
            "overlay",
            "-o",
            &format!(
                "lowerdir={},upperdir={},workdir={}",
                rustup_home.display(),
                overlay.join("upper").display(),
                overlay.join("work").display()
            ),
        ],
        &root.join(ROOT_RUSTUP_HOME),
    )?;
    for (name, script) in [
        ("cargo xtask demo, in the fresh root", "cargo xtask demo"),
        ("cargo xtask test, in the fresh root (.ci/run)", ".ci/run"),
    ] {
        Step::new(name, in_root(root, script))
            .time_limit(60 * 60)
            .run()?;
    }
    Ok(())
}

/// `script` run by bash inside the root, in the clone, with a clean
/// environment: the host's toolchain, nothing else of the host's.
fn in_root(root: &Path, script: &str) -> Command {
    let mut command = Command::new("chroot");
    command
        .arg(root)
        .args(["/usr/bin/env", "-i"])
        .arg("HOME=/root")
        .arg(format!(
            "PATH=/{ROOT_CARGO_BIN}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
        ))
        .arg("TERM=dumb")
        .args(["/bin/bash", "-c"])
        .arg(format!("cd /{ROOT_CLONE} && {script}"));
    command
}

/// Copy one file (a rustup proxy: the same binary under several names;
/// links are copied as links).
fn copy_preserving(source: &Path, target: &Path) -> Result<(), String> {
    let status = Command::new("cp")
        .args(["-a"])
        .arg(source)
        .arg(target)
        .status()
        .map_err(|e| format!("cannot run cp: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "cp -a {} {} failed ({status})",
            source.display(),
            target.display()
        ))
    }
}

/// The host's extra CA certificates into the root's store (see the module
/// docs, step 3).
fn add_host_certificates(root: &Path) -> Result<(), String> {
    let extra = Path::new("/usr/local/share/ca-certificates");
    let Ok(entries) = std::fs::read_dir(extra) else {
        return Ok(());
    };
    let target = root.join("usr/local/share/ca-certificates");
    std::fs::create_dir_all(&target).map_err(|e| format!("creating {}: {e}", target.display()))?;
    let mut added = 0;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "crt") {
            std::fs::copy(&path, target.join(entry.file_name()))
                .map_err(|e| format!("copying {}: {e}", path.display()))?;
            added += 1;
        }
    }
    if added > 0 {
        let mut update = Command::new("chroot");
        update
            .arg(root)
            .args(["/bin/sh", "-c", "update-ca-certificates >/dev/null"]);
        Step::new(
            &format!("the host's {added} extra CA certificates in the root's store"),
            update,
        )
        .run()?;
    }
    Ok(())
}

fn mount(args: &[&str], target: &Path) -> Result<(), String> {
    let status = Command::new("mount")
        .args(args)
        .arg(target)
        .status()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "mount {} {} failed ({status})",
            args.join(" "),
            target.display()
        ))
    }
}

/// Unmount everything mounted under `root`, deepest first (recursive binds
/// of /sys and /dev bring their submounts).
fn unmount_all(root: &Path) -> Result<(), String> {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        return Err("cannot read /proc/self/mounts".into());
    };
    let prefix = root.to_string_lossy().into_owned();
    let mut targets: Vec<String> = mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(|target| target.replace("\\040", " "))
        .filter(|target| target == &prefix || target.starts_with(&format!("{prefix}/")))
        .collect();
    targets.sort_by_key(|target| std::cmp::Reverse(target.len()));
    targets.dedup();
    let mut failed = Vec::new();
    for target in &targets {
        let ok = Command::new("umount")
            .arg(target)
            .status()
            .is_ok_and(|status| status.success());
        if !ok {
            // Busy (a process still inside): detach it instead.
            let lazy = Command::new("umount")
                .args(["-l", target])
                .status()
                .is_ok_and(|status| status.success());
            if !lazy {
                failed.push(target.clone());
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("could not unmount {}", failed.join(", ")))
    }
}

/// Remove the throwaway root, refusing while anything is mounted in it
/// (removing through a bind mount would delete the host's files).
fn remove_root(root: &Path) -> Result<(), String> {
    if !root.exists() {
        return Ok(());
    }
    unmount_all(root)?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = root.to_string_lossy().into_owned();
    if mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .any(|target| target.starts_with(&prefix))
    {
        return Err(format!(
            "{} still has mounts: not removing it",
            root.display()
        ));
    }
    std::fs::remove_dir_all(root).map_err(|e| format!("removing {}: {e}", root.display()))
}

/// The host's Debian release codename (`VERSION_CODENAME` in
/// /etc/os-release).
fn host_codename() -> Result<String, String> {
    let release = std::fs::read_to_string("/etc/os-release")
        .map_err(|e| format!("reading /etc/os-release: {e}"))?;
    release
        .lines()
        .find_map(|line| line.strip_prefix("VERSION_CODENAME="))
        .map(|name| name.trim_matches('"').to_owned())
        .filter(|name| !name.is_empty())
        .ok_or_else(|| "no VERSION_CODENAME in /etc/os-release: is this Debian?".into())
}
