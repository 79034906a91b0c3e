//! The atomics the lock word and queue nodes use: `core`'s, or `loom`'s
//! when the crate is built with `--cfg loom` for the model test
//! (`nmi/tests/loom_qspinlock.rs`), so loom can explore their interleavings.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::AtomicU32;

#[cfg(not(loom))]
pub(crate) use core::sync::atomic::AtomicU32;
