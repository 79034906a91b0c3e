//! Host simulation of a multiprocessor for crashkit's tests: threads stand for
//! CPUs and POSIX signals for NMIs.
//!
//! Our nomenclature:
//! - a **machine** ([`Machine`]) is a set of simulated CPUs and one entry
//!   function, the simulated IDT: what runs when a CPU takes an NMI or a
//!   machine check;
//! - a **CPU** is an OS thread running the test's body ([`SimCpu`] is its
//!   handle); an **NMI** is `SIGUSR1` sent to that thread with
//!   `pthread_kill`, a **machine check** is `SIGUSR2`, a **debug trap** and a
//!   maskable **interrupt** are realtime signals ([`EntryKind`]);
//! - the **platform** ([`SimPlatform`]) implements [`crashkit_nmi::Platform`]
//!   for code under test and adds the knobs a test needs (lost NMIs, machine
//!   checks, delivery counters); a [`Socket`] is a static that holds it, for
//!   a kernel's statics built before the machine (`crashkit::kernel!`'s
//!   `platform:` field).
//!
//! # Why signals model NMIs well
//! - A signal handler runs on the target thread and interrupts it between
//!   any two instructions, like an NMI.
//! - While a handler runs, its own signal is blocked (no `SA_NODEFER`), and a
//!   second one arriving meanwhile stays *pending*: one latched, the rest
//!   coalesced, exactly the NMI latch. It is delivered right after the
//!   handler returns, interrupting the same instruction: a back-to-back NMI.
//! - The signals do not block each other, so a machine check can interrupt
//!   an NMI handler and vice versa, as on x86_64, and a CPU can be five
//!   contexts deep (its body, then one entry of each kind).
//! - A CPU with NMIs blocked is a thread with `SIGUSR1` blocked
//!   ([`SimCpu::block_nmis`]); a lost NMI is a signal the platform decided
//!   not to send ([`SimPlatform::drop_next_nmis`], [`SimPlatform::set_nmi_loss`]).
//!
//! # Flow
//! 1. `Machine::new(cpus, entry)` installs the process-wide signal handlers
//!    (once) and creates the CPU table;
//! 2. `machine.run(deadline, body)` starts one thread per CPU, releases them
//!    together, and waits until every CPU finished, parked or panicked, or the
//!    deadline passed;
//! 3. the returned [`RunReport`] says what each CPU did ([`CpuOutcome`]) and
//!    how many NMIs were sent, dropped and delivered.
//!
//! Nothing here can hang a test: a CPU still running at the deadline is
//! reported [`CpuOutcome::Hung`] and abandoned (it is asked to stop through
//! [`SimCpu::stop_requested`]; a parked or hung thread is leaked, not joined).
//!
//! # Limits
//! - Code in the entry function runs in a signal handler, so it must not
//!   allocate or take a lock the interrupted body may hold: glibc's `malloc`
//!   and std's `Mutex` are not reentrant, and the CPU would deadlock (the run
//!   then reports it `Hung`). crashkit's NMI code does neither; test
//!   scaffolding in entries should use atomics. A *panic* in the entry
//!   allocates its message; it is reported cleanly as long as the body was
//!   not inside `malloc` at that moment, so stress bodies avoid allocating.
//! - The interrupted frame has the general registers, RIP, RSP, RFLAGS and
//!   CS from the signal's `ucontext_t`; SS where the kernel saves it; the error code is 0.
//! - Linux on x86_64 only.

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
compile_error!("crashkit-sim simulates x86_64 CPUs with Linux signals; build it on x86_64 Linux");

mod cpu;
mod machine;
mod platform;
mod rng;
mod signals;
mod slot;
mod socket;

pub use cpu::{Masked, SimCpu};
pub use machine::{CpuOutcome, EntryFn, EntryKind, MAX_CPUS, Machine, RunReport};
pub use platform::{SimCpuStats, SimPlatform, current_cpu, simulated_cr3};
pub use rng::Rng;
pub use socket::{AlreadyPlugged, Socket};
