//! `crashkit-corpus`: the dump corpora of the QEMU rig, made in the cache
//! directory and checked against the guest RAM they came from.
//!
//! | module | what |
//! |--------|------|
//! | [`test_kernel`] | the crashed test kernel: QEMU's ELF and kdump-compressed dumps, crashkit's ELF of them (readelf, gdb), QEMU's EM_386 dump of a machine at reset |
//! | [`linux`] | a crashed Debian Linux guest, with and without KASLR and with 5-level paging: QEMU's dumps, makedumpfile's ELF, kdump, flattened and split files |
//! | [`kexec`] | the same guest crashed through Linux's own crash path: the genuine `/proc/vmcore` a kexec'd capture kernel copies out, and makedumpfile's files of it |
//! | [`kallsyms`] | the Linux guests' own `/proc/kallsyms`, handed out through RAM: `sym`, symbolic `rd` and the panicking CPU checked against it |
//! | [`convert_check`] | `crashkit convert`'s files of a Linux guest's dump, read by makedumpfile, crash, libkdumpfile and gdb as the source is |
//! | [`backtrace`] | `bt -a` on a Linux guest's dump with no vmlinux, against the Call Trace its console printed |
//! | [`triage_check`] | `crashkit triage` over a corpus's directories: every file a row, each crash's dumps one signature, different crashes different |
//! | [`cli_check`] | every `crashkit` command over a dump, its answers checked against RAM and the crash record |
//! | [`oracle`] | the corpus's own page-table walk, the independent oracle the format library's `paging` is checked against |
//!
//! A new corpus check goes in the module of the dump it reads; a new dump
//! producer gets a module of its own beside these.

pub mod backtrace;
pub mod cli_check;
pub mod convert_check;
pub mod kallsyms;
pub mod kexec;
pub mod linux;
pub mod oracle;
pub mod test_kernel;
pub mod triage_check;
