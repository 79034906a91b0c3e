//! The `shootdown-warm` scenario: a panic whose shootdown runs on code QEMU
//! has already translated, so that its time compares with a warm NMI round
//! trip (`nmi-roundtrip`).
//!
//! Under TCG, guest code costs a translation the first time it runs, and the
//! shootdown runs once per boot (a stopped CPU never returns): measured
//! cold, it is mostly translation (docs/benchmarks.md). Before this
//! scenario panics, every CPU runs the shootdown's code once on scratch
//! state:
//!
//! | who | warms | how |
//! |-----|-------|-----|
//! | each AP | its stop path's record writes | `CpuSlot::record_stop` into scratch slots |
//! | the BSP | the owner's side: marking, broadcast, wait, resend-free deadline | `Shootdown::stop_other_cpus` over [`ROUNDS`] scratch `Shootdown`s with a 2 ms deadline |
//! | each AP | the NMI entry and the handler chain | the scratch shootdowns' NMIs (no stop handler is installed yet, so the chain counts them unknown) |
//!
//! What stays cold: the stop handler's few lines between the entry and the
//! record writes, and `park`. The real shootdown is then the panic path's
//! own, recorded in the crash record as usual (the runner checks it like
//! `panic-bsp`, and its benchmark reads its phase stamps).

use crashkit::prelude::*;
use crashkit::record::{CpuSlot, StopPath};
use crashkit::shootdown::Shootdown;
use kernel_base::exit::{ExitCode, exit};
use kernel_base::time::delay_us;
use kernel_base::{MAX_CPUS, machine, println};

use crate::crash::K;

/// Scratch shootdowns the BSP runs before the real one.
pub const ROUNDS: usize = 3;

static SLOTS_0: [CpuSlot; MAX_CPUS] = [const { CpuSlot::new() }; MAX_CPUS];
static SLOTS_1: [CpuSlot; MAX_CPUS] = [const { CpuSlot::new() }; MAX_CPUS];
static SLOTS_2: [CpuSlot; MAX_CPUS] = [const { CpuSlot::new() }; MAX_CPUS];
static SCRATCH: [Shootdown; ROUNDS] = [
    Shootdown::new(&SLOTS_0),
    Shootdown::new(&SLOTS_1),
    Shootdown::new(&SLOTS_2),
];

/// The scratch shootdowns' timing: nobody stops (their NMIs find no stop
/// handler), so each one waits out this deadline; no resend.
const SCRATCH_CONFIG: ShootdownConfig = ShootdownConfig {
    deadline_ns: 2_000_000,
    resend_interval_ns: 0,
    ..ShootdownConfig::DEFAULT
};

/// Each AP: write a stop record into scratch slots a few times, then idle.
pub fn ap(_cpu: usize) -> ! {
    for _ in 0..ROUNDS {
        let slot = CpuSlot::new();
        let now = K::platform().now_ns();
        let _ = slot.record_stop(
            &RegisterFrame::capture(),
            &ControlRegisters::NONE,
            StopPath::Nmi,
            1,
            now,
        );
    }
    machine::idle()
}

/// The BSP: wait for every CPU, run the scratch shootdowns, let the APs
/// settle back into `hlt`, then panic.
pub fn bsp() -> ! {
    if !machine::wait_all_online(5_000_000) {
        println!("crashkit-test: FAILED: shootdown-warm: not every CPU came online");
        exit(ExitCode::Failed);
    }
    let platform = K::platform();
    for scratch in &SCRATCH {
        // Nobody answers a scratch shootdown: its summary says so and is
        // of no interest.
        let _unanswered = scratch.stop_other_cpus(platform, &SCRATCH_CONFIG);
        delay_us(5_000);
    }
    panic!("shootdown-warm: cpu 0 panics after warming the shootdown's code")
}
