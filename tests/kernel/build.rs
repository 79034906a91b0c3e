//! Passes kernel-base's linker script (link at 1 MiB, the PVH note in its
//! own `PT_NOTE`) to the kernel
//! binary only, and links it as a non-PIE static executable: the boot code
//! uses absolute 32-bit addresses and nothing relocates the image (QEMU's
//! PVH loader puts each segment at its physical link address), with a GNU
//! build-id (SHA-1) so that dumps can name the ELF they belong to, and
//! defmt's linker script for the crash log's string table.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| String::from("."));
    println!("cargo:rerun-if-changed={dir}/base/linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bins=-T{dir}/base/linker.ld");
    println!("cargo:rustc-link-arg-bins=--no-pie");
    // A GNU build-id note, so a dump's BUILD-ID can be matched with this ELF.
    println!("cargo:rustc-link-arg-bins=--build-id=sha1");
    // defmt's table (`.defmt`, an INFO section) for the crash log's decoder;
    // defmt's build script puts defmt.x on the link search path.
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x");
}
