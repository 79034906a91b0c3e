//! crashkit's QEMU test kernel: kernel-base (a bare-metal x86_64 kernel that
//! boots through PVH and brings up every CPU) with crashkit wired in through
//! the `crashkit` facade, as an integrator would, crashing for real, one
//! scenario per boot (`-append "scenario=NAME"`, see [`scenario`]).
//!
//! On the boot CPU ([`main`], after kernel-base's boot):
//!
//! | step | module |
//! |------|--------|
//! | scenario lookup (`scenario=NAME`), `halt` and `extnmi=bsp\|all\|none` options | [`scenario`], [`crash`] |
//! | crashkit: the TSC frequency; the record's address printed | [`crash`] |
//! | IDT: crashkit's entries, this kernel's NMI, exception and nesting stubs | [`idt`] |
//! | scenario set-up (notifiers, NMI handlers) | [`scenario`] |
//! | every CPU, the boot CPU first: descriptor tables, IDT, `K::cpu_online`; then the scenario's roles | kernel-base's `start_cpus` |
//!
//! Exit codes (`isa-debug-exit`) are in `kernel_base::exit`; the crash
//! record's place in [`crash`].

#![no_std]
#![no_main]

mod bench;
mod crash;
mod idt;
mod scenario;
mod warm;

use crashkit::prelude::*;
use kernel_base::{Boot, Failure, fail, println};

use crate::crash::K;

kernel_base::entry!(main);

/// The test kernel's main, on the boot CPU.
fn main(boot: &'static Boot) -> ! {
    let Some(name) = boot.option("scenario") else {
        fail(format_args!("no scenario=NAME on the command line"));
    };
    let Some(scenario) = scenario::select(name) else {
        fail(format_args!("unknown scenario {name:?}"));
    };
    if crash::set_external_nmi(boot.option("extnmi")).is_none() {
        fail(format_args!("extnmi= is bsp, all or none"));
    }
    // `halt`: after the crash, halt for the host's dump instead of exiting.
    crash::set_halt_after_crash(boot.flag("halt"));
    K::set_tsc_hz(boot.tsc_hz);
    // The crash log, named by the kernel's build-id; crashkit's defmt
    // logger writes into it from here on.
    <K as crashkit::log::LogKernel>::install_log(kernel_base::build_id());
    defmt::info!(
        "crashkit-test: scenario {=str} on {=usize} CPUs",
        scenario.name,
        boot.cpus.apic_ids().len()
    );
    if scenario.min_cpus > boot.cpus.apic_ids().len() {
        fail(format_args!(
            "scenario {} needs {} CPUs, the machine has {}",
            scenario.name,
            scenario.min_cpus,
            boot.cpus.apic_ids().len()
        ));
    }
    crash::set_panic_expected(scenario.panics);
    println!(
        "crashkit-test: crash record at {:#x} ({} bytes)",
        &raw const *K::record() as usize,
        crashkit::record::CrashRecord::<{ kernel_base::MAX_CPUS }, 16>::TOTAL_SIZE
    );
    crash::load_capture(boot);
    crash::keep_secret(boot);
    crash::fill_memory(boot);
    kernel_base::idt::build(idt::fill);
    scenario::common_setup();
    (scenario.setup)();
    kernel_base::start_cpus(boot, online, run_bsp, run_ap)
}

/// A CPU comes online: crashkit will stop it from now on.
fn online(cpu: u32) -> Result<(), Failure> {
    if let Some(scenario) = scenario::current() {
        (scenario.before_online)(cpu);
    }
    Ok(K::cpu_online(CpuIndex(cpu))?)
}

/// The boot CPU's role, once every CPU is online.
fn run_bsp() -> ! {
    // Bring-up is over: the shootdown may use the APIC's broadcast.
    K::allow_broadcast();
    match scenario::current() {
        Some(scenario) => {
            println!("crashkit-test: scenario {}", scenario.name);
            (scenario.bsp)()
        }
        None => kernel_base::machine::idle(),
    }
}

/// An AP's role, once it is online.
fn run_ap(cpu: usize) -> ! {
    match scenario::current() {
        Some(scenario) => (scenario.ap)(cpu),
        None => kernel_base::machine::idle(),
    }
}
