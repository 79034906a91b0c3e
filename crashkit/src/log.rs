//! The crash log (feature `crash-log`): rings in memory that every
//! context, NMI included, writes without a lock, and that survive into
//! every dump (docs/crash-log.md).
//!
//! `kernel!`'s `crash_log: BYTES` field declares the rings (three per CPU
//! of `BYTES` bytes each) and the kernel's three hooks ([`LogHooks`]).
//! At boot the kernel calls `K::install_log(build_id)` ([`LogKernel`]):
//! the rings learn the kernel's build-id, the crash record points at them,
//! and (feature `defmt`) crashkit's defmt global logger writes into them.
//! A kernel with a defmt logger of its own keeps it and tees every frame
//! into the rings by calling the hooks from its `acquire`, `write` and
//! `release` ([`LogHooks`]).
//!
//! # Contexts, and how this differs from defmt's `Logger` contract
//! defmt says `acquire` panics when the logger is already acquired in the
//! current execution context. crashkit's never does:
//! - the **normal** context (threads, interrupt handlers, the panic path)
//!   writes its CPU's normal ring with maskable interrupts held off for one
//!   frame, so an interrupt handler never finds its CPU's frame half written;
//! - **NMIs** (and debug traps on an IST stack) write their CPU's NMI ring,
//!   **machine checks** their machine-check ring: an NMI that lands in a
//!   half-written normal frame writes beside it, not into it;
//! - a writer that finds its ring inside a frame (re-entry in the same
//!   context: a message logged while formatting a message, or a debug trap
//!   inside an NMI's frame) drops its message, and the ring counts it.
//!
//! The hooks find the writer's ring by the calling CPU's index and
//! context, and its `Begin` by the ring's nesting depth
//! (`Ring::innermost`), which relies on one CPU per index: what the
//! platform's registration gives (a CPU it cannot name gets no ring, and
//! its messages are counted as unplaced).

use core::sync::atomic::AtomicPtr;
use core::sync::atomic::Ordering::{Acquire, Release};

use crashkit_log::{Begin, LogContext, LogRings};
use crashkit_nmi::{ContextKind, CpuIndex, Platform};

pub use crashkit_log::{LogContext as Context, layout, read};

/// A kernel's three crash-log hooks: begin a frame, add defmt's bytes to
/// it, end it. They find the calling CPU and context themselves. A
/// kernel's own defmt logger tees into crashkit by calling them from its
/// `acquire`, `write` and `release`, in that order, once each frame.
#[derive(Debug)]
pub struct LogHooks {
    /// Begin a frame in the caller's ring.
    pub begin: fn(),
    /// Add bytes to the caller's frame.
    pub write: fn(&[u8]),
    /// End the caller's frame.
    pub end: fn(),
}

/// What `kernel!`'s `crash_log:` field adds to a kernel type.
pub trait LogKernel: crashkit_panic_path::Kernel {
    /// The kernel's hooks.
    fn log_hooks() -> &'static LogHooks;

    /// The rings' address and size in bytes.
    fn log_area() -> (u64, u64);

    /// Name the kernel in the rings (its GNU build-id: the CLI refuses to
    /// decode with an ELF of another build), point the crash record at
    /// them, and (feature `defmt`) make them defmt's global logger. Once,
    /// on the boot CPU, before other CPUs start.
    fn install_log(build_id: &[u8]);
}

/// The hooks crashkit's defmt global logger calls (null: none installed).
static GLOBAL: AtomicPtr<LogHooks> = AtomicPtr::new(core::ptr::null_mut());

/// Make `hooks` the ones crashkit's defmt global logger calls.
pub fn set_global(hooks: &'static LogHooks) {
    // Release: publishes the hooks' statics (built at compile time, so
    // nothing to publish in practice) to the Acquire in `global`.
    GLOBAL.store(core::ptr::from_ref(hooks).cast_mut(), Release);
}

/// `install_log`'s last step: with feature `defmt`, make `hooks` the
/// global logger's ([`set_global`]); without it, nothing (the kernel's own
/// logger calls them).
pub fn install_global(hooks: &'static LogHooks) {
    if cfg!(feature = "defmt") {
        set_global(hooks);
    }
}

/// The installed hooks, if any.
pub fn global() -> Option<&'static LogHooks> {
    // Acquire: pairs with the Release in `set_global`.
    let hooks = GLOBAL.load(Acquire);
    // SAFETY: the only non-null value ever stored is a `&'static LogHooks`
    // (`set_global`), so the pointer is valid and shared for 'static.
    unsafe { hooks.cast_const().as_ref() }
}

fn ring_context(context: Option<ContextKind>) -> LogContext {
    match context {
        None => LogContext::Normal,
        Some(ContextKind::MachineCheck) => LogContext::MachineCheck,
        Some(ContextKind::Nmi | ContextKind::Debug) => LogContext::Nmi,
    }
}

/// The `begin` hook's body: the caller's ring, interrupts held off in
/// normal context, a frame stamped with the platform's clock.
pub fn begin<const CPUS: usize, const BYTES: usize, P: Platform>(
    rings: &LogRings<CPUS, BYTES>,
    platform: &P,
    place: (CpuIndex, Option<ContextKind>),
) {
    let (cpu, context) = (place.0, ring_context(place.1));
    let Some(ring) = rings.ring(cpu.0 as usize, context) else {
        rings.count_unplaced();
        return;
    };
    let enabled = context == LogContext::Normal && platform.save_and_disable_interrupts();
    if ring.begin(platform.now_ns()) == Begin::Owner {
        ring.set_saved_if(enabled);
    } else if enabled {
        // A dropped writer found interrupts on (the ring's owner is not
        // this CPU's own nesting: it would have held them off): give them
        // back now, as its `end` will not.
        platform.restore_interrupts(true);
    }
}

/// The `write` hook's body.
pub fn write<const CPUS: usize, const BYTES: usize>(
    rings: &LogRings<CPUS, BYTES>,
    place: (CpuIndex, Option<ContextKind>),
    bytes: &[u8],
) {
    if let Some(ring) = rings.ring(place.0.0 as usize, ring_context(place.1))
        && let Some(began) = ring.innermost()
    {
        ring.write(began, bytes);
    }
}

/// The `end` hook's body: the innermost writer of the caller's ring ends;
/// the owner of a normal-context frame gives interrupts back.
pub fn end<const CPUS: usize, const BYTES: usize, P: Platform>(
    rings: &LogRings<CPUS, BYTES>,
    platform: &P,
    place: (CpuIndex, Option<ContextKind>),
) {
    let context = ring_context(place.1);
    let Some(ring) = rings.ring(place.0.0 as usize, context) else {
        return;
    };
    let Some(began) = ring.innermost() else {
        return;
    };
    let enabled = began == Begin::Owner && ring.saved_if();
    ring.end(began);
    if context == LogContext::Normal && enabled {
        platform.restore_interrupts(true);
    }
}

/// crashkit's defmt global logger (feature `defmt`): the installed
/// kernel's hooks (messages before `install_log` are dropped: there is no
/// ring to count them in). Its `acquire` never panics (see the module's
/// contexts); `flush` has nothing to do, the rings are memory.
#[cfg(feature = "defmt")]
#[defmt::global_logger]
struct CrashkitLogger;

// SAFETY: defmt's contract: `acquire` .. `release` bracket each frame on
// the calling context, and `write` is only called between them. The hooks
// keep one frame per ring and per context (`crashkit_log::Ring`'s
// protocol), a nested `acquire` in the same context drops its frame rather
// than interleave, and nothing here blocks or panics.
#[cfg(feature = "defmt")]
unsafe impl defmt::Logger for CrashkitLogger {
    fn acquire() {
        if let Some(hooks) = global() {
            (hooks.begin)();
        }
    }

    unsafe fn flush() {}

    unsafe fn release() {
        if let Some(hooks) = global() {
            (hooks.end)();
        }
    }

    unsafe fn write(bytes: &[u8]) {
        if let Some(hooks) = global() {
            (hooks.write)(bytes);
        }
    }
}
