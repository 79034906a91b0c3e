//! The signal side of the simulation: which signals stand for what, the
//! process-wide handler, and the per-thread masks.
//!
//! The handler is installed once per process and finds the interrupted CPU
//! through a thread-local pointer set by the CPU's thread ([`CURRENT`]).
//! Threads that are not simulated CPUs never receive these signals: the
//! platform sends them with `pthread_kill` to CPU threads only.

use std::cell::Cell;
use std::sync::Once;

use crashkit_nmi::RegisterFrame;

use crate::{EntryKind, SimCpu};

/// The signal standing for each entry kind. NMIs and machine checks are
/// standard signals, which latch one and coalesce the rest like the NMI
/// latch; debug traps and interrupts are realtime signals, which queue every
/// occurrence (`SIGRTMIN()` is the first one glibc leaves to applications;
/// +4 and +5 leave room for other libraries).
pub(crate) fn signal_of(kind: EntryKind) -> libc::c_int {
    match kind {
        EntryKind::Nmi => libc::SIGUSR1,
        EntryKind::MachineCheck => libc::SIGUSR2,
        EntryKind::Debug => libc::SIGRTMIN() + 4,
        EntryKind::Interrupt => libc::SIGRTMIN() + 5,
    }
}

fn kind_of(signal: libc::c_int) -> Option<EntryKind> {
    EntryKind::ALL
        .into_iter()
        .find(|&kind| signal_of(kind) == signal)
}

/// The signals of `kinds`.
pub(crate) fn signals_of(kinds: &[EntryKind]) -> SignalList {
    let mut list = SignalList {
        len: 0,
        signals: [0; EntryKind::ALL.len()],
    };
    for &kind in kinds {
        if let Some(slot) = list.signals.get_mut(list.len) {
            *slot = signal_of(kind);
            list.len += 1;
        }
    }
    list
}

/// A fixed-capacity list of signal numbers (no allocation: built in signal
/// handlers too).
pub(crate) struct SignalList {
    len: usize,
    signals: [libc::c_int; EntryKind::ALL.len()],
}

impl SignalList {
    pub(crate) fn as_slice(&self) -> &[libc::c_int] {
        self.signals.get(..self.len).unwrap_or(&[])
    }
}

thread_local! {
    /// The simulated CPU this thread is, or null. Set by the CPU's thread for
    /// the lifetime of its `SimCpu` (which lives on that thread's stack) and
    /// cleared before the `SimCpu` is dropped, with the signals blocked; read
    /// by the signal handler on the same thread. `const` initialised and
    /// without a destructor, so reading it in a signal handler is a plain
    /// TLS load (no lazy initialisation).
    pub(crate) static CURRENT: Cell<*const SimCpu> = const { Cell::new(std::ptr::null()) };
}

/// Install the handler for every simulation signal, once per process.
pub(crate) fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        for signal in EntryKind::ALL.map(signal_of) {
            // SAFETY: `sigaction` is plain old data; all-zero is a valid
            // value that the fields below complete. `on_signal` has the
            // `SA_SIGINFO` handler signature. No other code in the process
            // installs handlers for these signals (a test that did would
            // break the simulation, not memory safety).
            let installed = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as *const () as usize;
                // No SA_NODEFER: a signal is blocked while its own handler
                // runs (the NMI latch). SA_RESTART: a body's blocking calls
                // are resumed after the handler, not failed with EINTR.
                action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(signal, &action, std::ptr::null_mut())
            };
            assert_eq!(installed, 0, "sigaction({signal}) failed");
        }
    });
}

/// Block the calling thread's interrupt signal (a CPU's `cli`); whether it
/// was unblocked before (IF was set).
pub(crate) fn save_and_block_interrupts() -> bool {
    let signals = signals_of(&[EntryKind::Interrupt]);
    let previous = mask(signals.as_slice(), true);
    let Some(&signal) = signals.as_slice().first() else {
        return false;
    };
    // SAFETY: `previous` is a set `pthread_sigmask` filled in;
    // `sigismember` only reads it.
    unsafe { libc::sigismember(&previous, signal) == 0 }
}

/// Unblock the calling thread's interrupt signal (`sti`).
pub(crate) fn unblock_interrupts() {
    let _previous = mask(signals_of(&[EntryKind::Interrupt]).as_slice(), false);
}

/// Add (`block == true`) or remove `signals` from the calling thread's mask;
/// returns the previous mask.
pub(crate) fn mask(signals: &[libc::c_int], block: bool) -> libc::sigset_t {
    // SAFETY: `set` and `old` are local, initialised by `sigemptyset` /
    // written by `pthread_sigmask`; the call changes only the calling
    // thread's mask, which no other thread reads.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for &signal in signals {
            libc::sigaddset(&mut set, signal);
        }
        let how = if block {
            libc::SIG_BLOCK
        } else {
            libc::SIG_UNBLOCK
        };
        libc::pthread_sigmask(how, &set, &mut old);
        old
    }
}

/// Restore a mask returned by [`mask`] on the calling thread.
pub(crate) fn restore(old: &libc::sigset_t) {
    // SAFETY: `old` came from `pthread_sigmask` on this thread; the call
    // changes only the calling thread's mask.
    unsafe {
        libc::pthread_sigmask(libc::SIG_SETMASK, old, std::ptr::null_mut());
    }
}

/// Block every simulation signal on the calling thread for good (a parked or
/// leaving CPU). Signals sent afterwards stay pending.
pub(crate) fn block_all() {
    let _ = mask(signals_of(&EntryKind::ALL).as_slice(), true);
}

/// Unblock every simulation signal on the calling thread (a CPU coming
/// online).
pub(crate) fn unblock_all() {
    let _ = mask(signals_of(&EntryKind::ALL).as_slice(), false);
}

extern "C" fn on_signal(signal: libc::c_int, _: *mut libc::siginfo_t, context: *mut libc::c_void) {
    let cpu = CURRENT.with(Cell::get);
    if cpu.is_null() {
        // Not a CPU thread, or a CPU between runs: nothing to interrupt.
        return;
    }
    let Some(kind) = kind_of(signal) else {
        return;
    };
    let mut frame = frame_from(context.cast());
    // SAFETY: `CURRENT` is non-null only while the `SimCpu` it points to is
    // alive on this thread's stack (set and cleared by `SimCpu::run_on_thread`
    // with the signals blocked around the clear), and this handler runs on
    // that same thread, so the pointee outlives this call.
    let cpu = unsafe { &*cpu };
    cpu.take_entry(kind, &mut frame);
}

/// `uc_flags` bit: the kernel saved SS in the top word of CSGSFS (Linux's
/// `arch/x86/include/uapi/asm/ucontext.h`).
const UC_SIGCONTEXT_SS: libc::c_ulong = 0x2;

/// The interrupted registers, from the kernel's signal frame.
fn frame_from(context: *const libc::ucontext_t) -> RegisterFrame {
    if context.is_null() {
        return RegisterFrame::ZERO;
    }
    // SAFETY: with SA_SIGINFO the kernel passes a valid `ucontext_t` for the
    // interrupted context as the third argument, alive for the duration of
    // the handler; only this handler reads it.
    let (flags, gregs) = unsafe { ((*context).uc_flags, &(*context).uc_mcontext.gregs) };
    let reg = |index: libc::c_int| gregs.get(index as usize).map_or(0, |&v| v as u64);
    RegisterFrame {
        r15: reg(libc::REG_R15),
        r14: reg(libc::REG_R14),
        r13: reg(libc::REG_R13),
        r12: reg(libc::REG_R12),
        rbp: reg(libc::REG_RBP),
        rbx: reg(libc::REG_RBX),
        r11: reg(libc::REG_R11),
        r10: reg(libc::REG_R10),
        r9: reg(libc::REG_R9),
        r8: reg(libc::REG_R8),
        rax: reg(libc::REG_RAX),
        rcx: reg(libc::REG_RCX),
        rdx: reg(libc::REG_RDX),
        rsi: reg(libc::REG_RSI),
        rdi: reg(libc::REG_RDI),
        error_code: 0,
        rip: reg(libc::REG_RIP),
        // CSGSFS packs cs, gs, fs and ss, 16 bits each, cs in the low word;
        // the kernel fills ss only when it sets UC_SIGCONTEXT_SS.
        cs: reg(libc::REG_CSGSFS) & 0xffff,
        rflags: reg(libc::REG_EFL),
        rsp: reg(libc::REG_RSP),
        ss: if flags & UC_SIGCONTEXT_SS != 0 {
            reg(libc::REG_CSGSFS) >> 48
        } else {
            0
        },
    }
}
