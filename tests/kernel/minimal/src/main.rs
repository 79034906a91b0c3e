//! crashkit's minimal kernel: kernel-base, a bare-metal kernel that already
//! boots (PVH, serial, IDT, SMP, ACPI MADT), with crashkit wired in as
//! docs/integration.md says, in the fewest lines (README.md counts them).
//! Its scenarios ([`scenario`]) crash it for the test suite.

#![no_std]
#![no_main]

mod scenario;

use core::fmt::Write;

use crashkit::kdump::{self, Capture, PhysRange};
use crashkit::prelude::*;
use kernel_base::{Boot, Serial};

// SAFETY: ring 0, and kernel-base keeps the APIC in xAPIC mode at APIC_BASE, mapped uncacheable.
const APIC: LocalApic = unsafe { LocalApic::xapic(kernel_base::APIC_BASE) };
crashkit::kernel! {
    struct Crash;
    cpus: kernel_base::MAX_CPUS,
    notifiers: 4,
    apic: APIC,
    final_action: reboot(kernel_base::exit_ran),
    console: CONSOLE,
    dump: dump,
    crash_log: 1024,
}
crashkit::panic_handler!(Crash);

static CAPTURE: Capture = Capture::new();
fn dump() -> DumpAttempt {
    kdump::hand_over(&CAPTURE, &APIC)
}

/// The console: COM1 behind a lock every CPU prints through.
static CONSOLE: NotifierLock<Crash, Serial> = NotifierLock::new(Serial);

/// `println!` on the console.
macro_rules! println {
    ($($argument:tt)*) => {
        let _ = writeln!(crate::CONSOLE.lock(), $($argument)*);
    };
}

kernel_base::entry!(main);

/// The kernel's main, on the boot CPU.
fn main(boot: &'static Boot) -> ! {
    println!("minimal: booting, {} CPUs", boot.cpus.apic_ids().len());
    let scenario = scenario::select(boot);
    let reservation = PhysRange::new(64 << 20, 16 << 20);
    // SAFETY: 64-80 MiB is RAM this kernel never uses, identity mapped; `dump` is the panic path's.
    let armed = boot.module().map(|image| unsafe {
        kdump::load_identity::<Crash>(&CAPTURE, image, reservation, boot.ram(), boot.kept())
    });
    println!(
        "minimal: capture kernel: {:?}",
        armed.map(|r| r.map(|ready| ready.loaded.entry))
    );
    Crash::set_tsc_hz(boot.tsc_hz);
    Crash::install_log(kernel_base::build_id());
    // SAFETY: kernel-base gives each CPU its own stacks in IST slots 0-2; the IDT is not loaded yet.
    kernel_base::idt::build(|idt| unsafe { Crash::install_entries(idt, &IstSlots::DEFAULT) });
    kernel_base::start_cpus(
        boot,
        |cpu| Ok(Crash::cpu_online(CpuIndex(cpu))?),
        scenario.bsp,
        scenario.ap,
    )
}
