//! The real files the benchmark's pages are cut from, the same bytes on
//! every machine: Debian 12 packages pinned to a version, fetched with
//! `apt-get download` (apt checks each file against the archive's signed
//! index) and unpacked with `dpkg-deb -x` into `CACHE/kdump-bench/sources`,
//! never installed. The versions chosen are bookworm's release versions,
//! which no point release has replaced, so the archive keeps them.
//!
//! A source is the concatenation of the chosen files of its packages, in
//! path order, each file padded with zeros to whole pages (as the page
//! cache holds a file); a package larger than [`PER_PACKAGE`] gives every
//! n-th page instead, so that all of its files and sections are sampled.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crashkit_dump_format::PAGE_SIZE;

const PAGE: usize = PAGE_SIZE as usize;

/// The most bytes one package gives a source.
pub const PER_PACKAGE: usize = 48 << 20;

/// A Debian package pinned to one version.
#[derive(Clone, Copy, Debug)]
pub struct Package {
    /// The package's name.
    pub name: &'static str,
    /// Its version, epoch included (`1:15.0.6-4+b1`).
    pub version: &'static str,
}

const fn package(name: &'static str, version: &'static str) -> Package {
    Package { name, version }
}

/// Executables and shared libraries: small tools, a large C++ program, a
/// compiler library, a codec with hand-written SIMD, an interpreter.
pub const EXECUTABLES: [Package; 6] = [
    package("coreutils", "9.1-1"),
    package("gdb", "13.1-3"),
    package("libllvm15", "1:15.0.6-4+b1"),
    package("libx265-199", "3.5-2+b1"),
    package("libbinutils", "2.40-2"),
    package("libtcl8.6", "8.6.13+dfsg-2"),
];

/// Text: C++ headers, Python sources and documentation, Tcl and
/// JavaScript.
pub const TEXT: [Package; 6] = [
    package("libboost1.74-dev", "1.74.0+ds1-21"),
    package("python3-sympy", "1.11.1-1"),
    package("python3-networkx", "2.8.8-1"),
    package("python3-docutils", "0.19+dfsg-6"),
    package("libtcl8.6", "8.6.13+dfsg-2"),
    package("libjs-jquery", "3.6.1+dfsg+~3.5.14-1"),
];

/// Which files of a package a source takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    /// ELF files (executables, shared libraries, kernel modules).
    Elf,
    /// Text files: no NUL in the first KiB, not ELF, not compressed.
    Text,
}

impl Keep {
    fn wants(self, path: &Path) -> bool {
        let mut head = [0u8; 1024];
        let Ok(n) = File::open(path).and_then(|file| file.read_at(&mut head, 0)) else {
            return false;
        };
        let head = &head[..n];
        let elf = head.starts_with(b"\x7fELF");
        match self {
            Keep::Elf => elf,
            Keep::Text => {
                let compressed = ["gz", "xz", "bz2", "zst", "zip", "png", "jpg", "pyc"];
                let packed = path
                    .extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| compressed.contains(&e));
                n > 0 && !elf && !packed && !head.contains(&0)
            }
        }
    }
}

/// Fetch (once) and unpack (once) `packages` under `dir`; the bytes of
/// the files `keep` takes, page-padded, each package sampled down to
/// [`PER_PACKAGE`].
pub fn gather(dir: &Path, packages: &[Package], keep: Keep) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for package in packages {
        let root = unpacked(dir, package)?;
        let bytes = files(&root, keep)?;
        if bytes.len() < PAGE {
            return Err(format!(
                "{} {}: no {keep:?} files in it",
                package.name, package.version
            ));
        }
        out.extend(sample(&bytes, PER_PACKAGE));
    }
    Ok(out)
}

/// The kernel modules under `root` (a kernel package's unpacked
/// `lib/modules/RELEASE`), page-padded, sampled down to `cap` bytes.
pub fn modules(root: &Path, cap: usize) -> Result<Vec<u8>, String> {
    let bytes = files(root, Keep::Elf)?;
    if bytes.len() < PAGE {
        return Err(format!("no kernel modules under {}", root.display()));
    }
    Ok(sample(&bytes, cap))
}

/// Every `n`-th page of `bytes` so that at most `cap` bytes remain.
fn sample(bytes: &[u8], cap: usize) -> Vec<u8> {
    let pages = bytes.len() / PAGE;
    let step = pages.div_ceil((cap / PAGE).max(1)).max(1);
    bytes
        .chunks_exact(PAGE)
        .step_by(step)
        .flatten()
        .copied()
        .collect()
}

/// `package` unpacked under `dir/unpacked/NAME`, fetched first if its
/// `.deb` is not in `dir/debs`.
fn unpacked(dir: &Path, package: &Package) -> Result<PathBuf, String> {
    let debs = dir.join("debs");
    let root = dir.join("unpacked").join(package.name);
    let done = root.join(".unpacked");
    if done.is_file() {
        return Ok(root);
    }
    std::fs::create_dir_all(&debs).map_err(|e| format!("{}: {e}", debs.display()))?;
    // The file name apt gives a .deb: NAME_VERSION_ARCH.deb, the epoch's
    // colon written %3a.
    let version = package.version.replace(':', "%3a");
    let downloaded = || {
        ["amd64", "all"]
            .iter()
            .map(|arch| debs.join(format!("{}_{version}_{arch}.deb", package.name)))
            .find(|path| path.is_file())
    };
    let deb = match downloaded() {
        Some(deb) => deb,
        None => {
            let pinned = format!("{}={}", package.name, package.version);
            println!("kdump bench: fetching {pinned} with apt-get download");
            let fetch = || {
                crashkit_qemu::host::run(
                    Command::new("apt-get")
                        .args(["download", "-q", &pinned])
                        .current_dir(&debs),
                )
            };
            if fetch().is_err() {
                // A fresh machine may have no package lists yet.
                crashkit_qemu::host::run(Command::new("apt-get").args(["update", "-q"]))?;
                fetch().map_err(|e| {
                    format!(
                        "{pinned} is not in the archive this machine reaches ({e}); the benchmark \
                         set is pinned to it so that every machine cuts the same pages: fetch \
                         that version from snapshot.debian.org into {}",
                        debs.display()
                    )
                })?;
            }
            downloaded().ok_or_else(|| format!("apt-get download gave no .deb for {pinned}"))?
        }
    };
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).map_err(|e| format!("{}: {e}", root.display()))?;
    crashkit_qemu::host::run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
    std::fs::write(&done, b"").map_err(|e| format!("{}: {e}", done.display()))?;
    Ok(root)
}

/// The files under `root` that `keep` takes, in path order (symbolic
/// links not followed), each padded with zeros to whole pages.
fn files(root: &Path, keep: Keep) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta =
            std::fs::symlink_metadata(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(|e| format!("{}: {e}", path.display()))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.file_name().is_none_or(|n| n != ".unpacked"))
                .collect();
            entries.sort();
            stack.extend(entries.into_iter().rev());
        } else if meta.is_file() && meta.len() > 0 && keep.wants(&path) {
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            out.extend_from_slice(&bytes);
            out.resize(out.len().next_multiple_of(PAGE), 0);
        }
    }
    Ok(out)
}

/// One line naming the packages (for the image's description).
pub fn describe(packages: &[Package]) -> String {
    packages
        .iter()
        .map(|p| format!("{} {}", p.name, p.version))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_keeps_every_nth_page_under_the_cap() {
        let bytes: Vec<u8> = (0..10u8)
            .flat_map(|i| std::iter::repeat_n(i, PAGE))
            .collect();
        let kept = sample(&bytes, 4 * PAGE);
        // 10 pages to at most 4: every third (0, 3, 6, 9).
        let firsts: Vec<u8> = kept.chunks_exact(PAGE).map(|p| p[0]).collect();
        assert_eq!(firsts, [0, 3, 6, 9]);
        assert_eq!(sample(&bytes, 64 * PAGE), bytes);
    }
}
