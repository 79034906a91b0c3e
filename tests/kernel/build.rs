//! Passes the kernel's linker script (link at 1 MiB, the PVH note in its own
//! `PT_NOTE`, the crash record in its own page-aligned section) to the kernel
//! binary only, and links it as a non-PIE static executable: the boot code
//! uses absolute 32-bit addresses and nothing relocates the image (QEMU's
//! PVH loader puts each segment at its physical link address).

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| String::from("."));
    println!("cargo:rerun-if-changed={dir}/linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rustc-link-arg-bins=--build-id=none");
}
