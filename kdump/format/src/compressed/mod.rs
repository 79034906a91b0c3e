//! makedumpfile's kdump-compressed format and its flattened form.
//!
//! A kdump-compressed file is: block 0 the `disk_dump_header`; block 1 the
//! `kdump_sub_header`, followed by a copy of the dump's ELF notes; then two
//! bitmaps of one bit per page frame (the first: not a hole; the second:
//! dumpable), then one 24-byte page descriptor per dumpable frame in frame
//! order, then the pages' data, each page compressed on its own (or raw).
//! A flattened file carries the same bytes as records of (offset, size,
//! data) after a 4096-byte header, so that it can travel through a pipe.
//! Layouts: [`header`], `flat` (with `alloc`), `docs/dump-formats.md`.

pub mod codec;
pub mod deflate;
#[cfg(feature = "alloc")]
pub mod flat;
pub mod flat_writer;
pub mod header;
pub mod lzo;
pub mod matcher;
#[cfg(feature = "alloc")]
pub mod reader;
pub mod snappy;
#[cfg(feature = "alloc")]
pub mod split;
pub mod writer;
