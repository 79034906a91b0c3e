//! Links with kernel-base's linker script (PVH boot at 1 MiB), as a non-PIE
//! static executable: QEMU's PVH loader puts each segment at its physical
//! link address and nothing relocates the image. defmt's linker script
//! keeps the crash log's string table (`.defmt`) in the ELF.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| String::from("."));
    println!("cargo:rerun-if-changed={dir}/../base/linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bins=-T{dir}/../base/linker.ld");
    println!("cargo:rustc-link-arg-bins=--no-pie");
    // A GNU build-id, so the tools can tell this ELF from another build.
    println!("cargo:rustc-link-arg-bins=--build-id=sha1");
    println!("cargo:rustc-link-arg-bins=-Tdefmt.x"); // crashkit's crash log: defmt's string table
}
