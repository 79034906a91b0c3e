//! Loading a capture kernel before any crash (docs/kdump.md, "Loading the
//! capture kernel"): the first step of the dump path, run at boot or at run
//! time, never in the crashed kernel.
//!
//! The integrator describes a **reservation**, physical memory the running
//! kernel never uses, and names the memory its own image occupies. The
//! capture kernel's ELF image is checked against both
//! ([`CaptureImage::check`]): an x86_64 executable whose every `PT_LOAD` lies
//! inside the reservation and overlaps neither another segment nor the
//! running kernel, whose entry point is inside a loaded segment. It is then
//! copied into the reservation ([`load`]), its zero tails cleared, and the
//! SHA-256 of the loaded bytes kept in a [`Loaded`]. At the crash the panic
//! path checks that digest again ([`Loaded::matches`]) before it jumps: a
//! reservation the crashed kernel scribbled over is never entered.
//!
//! Like Linux's `kexec_load`, everything that can be prepared is prepared
//! here, so the crash path only checks and jumps. Nothing allocates; the
//! bounds are fixed ([`MAX_SEGMENTS`]).
//!
//! | module | what |
//! |--------|------|
//! | `image` | [`CaptureImage`]: the ELF image checked against the reservation and the running kernel |
//! | `copy` | [`load`], [`Loaded`]: the copy into the reservation, the digest, its check at the crash |

#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

mod copy;
mod image;

pub use copy::{Loaded, load};
pub use image::{CaptureImage, LoadError, MAX_SEGMENTS, PhysRange, Segment};
