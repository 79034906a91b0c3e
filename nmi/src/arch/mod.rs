//! Architecture support: entry stubs, interrupt controllers, [`Platform`](crate::Platform)
//! implementations.
//!
//! Only x86_64 exists. The module is compiled for any x86_64 target, hosted
//! ones included, so its pure parts (ICR encodings, frame layout checks) are
//! unit-tested on the host; executing its privileged instructions outside
//! ring 0 faults.

#[cfg(target_arch = "x86_64")]
pub mod x86_64;
