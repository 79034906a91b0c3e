//! Links the capture kernel at its reservation's address: `linker.ld` with
//! `CAPTURE_BASE` from the environment variable of the same name (default
//! 0x400_0000, 64 MiB: the test kernels' reservation), as a non-PIE static
//! executable (the loader copies each segment to its `p_paddr`; nothing
//! relocates it) with a GNU build-id.

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| String::from("."));
    let base = std::env::var("CRASHKIT_CAPTURE_BASE").unwrap_or_else(|_| String::from("0x4000000"));
    println!("cargo:rerun-if-changed={dir}/linker.ld");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CRASHKIT_CAPTURE_BASE");
    println!("cargo:rustc-link-arg-bins=-T{dir}/linker.ld");
    println!("cargo:rustc-link-arg-bins=--defsym=CAPTURE_BASE={base}");
    println!("cargo:rustc-link-arg-bins=--no-pie");
    println!("cargo:rustc-link-arg-bins=--build-id=sha1");
}
