//! crashkit's QEMU test kernel: a bare-metal x86_64 kernel that links
//! crashkit exactly as an integrator would and crashes for real, one
//! scenario per boot (`-append "scenario=NAME"`, see [`scenario`]).
//!
//! Boot order on the BSP ([`kernel_main`]):
//!
//! | step | module |
//! |------|--------|
//! | PVH entry, long mode, identity map of 4 GiB | [`boot`] |
//! | serial console (COM1) | [`serial`] |
//! | start info: command line, RSDP; scenario lookup | [`pvh`], [`scenario`] |
//! | PIC masked; TSC calibrated on the PIT | [`time`] |
//! | CPUs from the ACPI MADT | [`madt`] |
//! | `X86Platform` built; crash statics | [`crash`] |
//! | IDT (NMI, #DF, #MC on IST stacks); own GDT/TSS; APIC enabled, LINT1 = NMI; registered | [`idt`], [`cpu`] |
//! | scenario set-up; APs started one by one (INIT-SIPI-SIPI) | [`smp`] |
//! | every CPU online: CPU list printed, scenario roles | [`machine`], [`scenario`] |
//!
//! Each AP ([`ap_entry`]) sets up its own GDT/TSS, loads the IDT, enables its
//! APIC with LINT1 as NMI, registers its APIC ID under its index, reports
//! online and runs its role.
//!
//! Exit codes (`isa-debug-exit`) are in [`exit`]; the crash record's place
//! in [`crash`].

#![no_std]
#![no_main]

mod bench;
mod boot;
mod cpu;
mod crash;
mod exit;
mod idt;
mod machine;
mod madt;
mod percpu;
mod pvh;
mod scenario;
mod serial;
mod smp;
mod time;
mod warm;

use crashkit_nmi::CpuIndex;
use x86_64::instructions::port::Port;
use x86_64::registers::model_specific::Msr;

use crate::exit::{ExitCode, exit};
use crate::percpu::MAX_CPUS;

/// IA32_APIC_BASE (Intel SDM vol. 3A 10.4.4).
const IA32_APIC_BASE: u32 = 0x1B;
/// How long the BSP waits for every AP to finish its set-up.
const ONLINE_TIMEOUT_US: u64 = 5_000_000;

/// Print `what` and exit "failed".
fn fail(what: core::fmt::Arguments<'_>) -> ! {
    println!("crashkit-test: FAILED: {what}");
    exit(ExitCode::Failed)
}

/// Mask both 8259 PICs: no legacy interrupt reaches the CPUs (the BIOS
/// left IRQ 0 mapped onto vector 8, the double-fault vector).
fn mask_pic() {
    let mut master: Port<u8> = Port::new(0x21);
    let mut slave: Port<u8> = Port::new(0xA1);
    // SAFETY: the PICs' data ports (interrupt mask registers); nothing else
    // in this kernel uses them.
    unsafe {
        master.write(0xFF);
        slave.write(0xFF);
    }
}

/// Check that the calling CPU's local APIC is globally enabled in xAPIC
/// mode at [`crash::APIC_BASE`].
fn check_apic_base() -> Result<(), u64> {
    // SAFETY: reading IA32_APIC_BASE has no side effect; ring 0, and every
    // x86_64 CPU has the MSR.
    let value = unsafe { Msr::new(IA32_APIC_BASE).read() };
    let enabled = value & (1 << 11) != 0;
    let x2apic = value & (1 << 10) != 0;
    if enabled && !x2apic && value & 0xF_FFFF_F000 == crash::APIC_BASE as u64 {
        Ok(())
    } else {
        Err(value)
    }
}

/// The per-CPU part of the set-up, on every CPU: GDT/TSS, IDT, local APIC
/// (software enable, LINT1 as NMI), registration under `cpu`.
///
/// # Safety
/// Called once per CPU by that CPU, interrupts off, after `idt::build` and
/// `crash::init_platform`.
unsafe fn setup_this_cpu(cpu: usize) {
    // SAFETY: the caller is CPU `cpu`, once, interrupts off.
    if let Err(error) = unsafe { cpu::init_current(cpu) } {
        fail(format_args!("cpu {cpu}: descriptor tables: {error:?}"));
    }
    // SAFETY: the IDT is built and this CPU's TSS holds its IST stacks.
    unsafe { idt::load() };
    if let Err(value) = check_apic_base() {
        fail(format_args!(
            "cpu {cpu}: local APIC not in xAPIC mode at the expected base (IA32_APIC_BASE {value:#x})"
        ));
    }
    let Some(platform) = crash::platform() else {
        fail(format_args!("cpu {cpu}: no platform"));
    };
    platform.apic().enable();
    platform.apic().set_lint1_nmi();
    if let Err(error) = platform.register_current_cpu(CpuIndex(cpu as u32)) {
        fail(format_args!("cpu {cpu}: registration: {error:?}"));
    }
}

/// The BSP's Rust entry, from the boot stub, with the physical address of
/// the PVH start info.
#[unsafe(no_mangle)]
pub extern "C" fn kernel_main(start_info: u64) -> ! {
    serial::init();
    println!("crashkit-test: booting");
    // SAFETY: the boot stub passes QEMU's ebx; the first 4 GiB are
    // identity mapped.
    let info = match unsafe { pvh::BootInfo::read(start_info) } {
        Ok(info) => info,
        Err(error) => fail(format_args!("start info: {error:?}")),
    };
    println!(
        "crashkit-test: PVH start info v{}, command line {:?}",
        info.version,
        info.cmdline()
    );
    let Some(name) = info.option("scenario") else {
        fail(format_args!("no scenario=NAME on the command line"));
    };
    let Some(scenario) = scenario::select(name) else {
        fail(format_args!("unknown scenario {name:?}"));
    };
    // `halt`: after the crash, halt for the host's dump instead of exiting.
    crash::set_halt_after_crash(info.cmdline().split_ascii_whitespace().any(|w| w == "halt"));

    mask_pic();
    let tsc_hz = time::calibrate();
    println!("crashkit-test: TSC {} MHz", tsc_hz / 1_000_000);

    // SAFETY: the RSDP comes from the start info; identity mapped.
    let cpus = match unsafe { madt::read_cpus(info.rsdp) } {
        Ok(cpus) => cpus,
        Err(error) => fail(format_args!("ACPI MADT: {error}")),
    };
    if cpus.local_apic_address as usize != crash::APIC_BASE {
        fail(format_args!(
            "the MADT puts the local APIC at {:#x}",
            cpus.local_apic_address
        ));
    }
    if cpus.ignored > 0 {
        println!(
            "crashkit-test: {} CPUs past the first {MAX_CPUS} are left off",
            cpus.ignored
        );
    }

    // SAFETY: BSP, once, nothing else runs, APIC checked in `setup_this_cpu`
    // before first use (reading the ID below is the first APIC access and
    // the boot stub maps the page).
    unsafe { crash::init_platform(tsc_hz) };
    let Some(platform) = crash::platform() else {
        fail(format_args!("no platform"));
    };
    if let Err(value) = check_apic_base() {
        fail(format_args!(
            "BSP local APIC not in xAPIC mode at the expected base (IA32_APIC_BASE {value:#x})"
        ));
    }
    let bsp_apic_id = platform.apic().id();
    let Some(bsp) = cpus.index_of(bsp_apic_id) else {
        fail(format_args!(
            "the BSP's APIC ID {bsp_apic_id} is not in the MADT"
        ));
    };
    if scenario.min_cpus > cpus.apic_ids().len() {
        fail(format_args!(
            "scenario {} needs {} CPUs, the machine has {}",
            scenario.name,
            scenario.min_cpus,
            cpus.apic_ids().len()
        ));
    }
    crash::set_panic_expected(scenario.panics);
    println!(
        "crashkit-test: crash record at {:#x} ({} bytes)",
        &raw const crash::RECORD as usize,
        crash::Record::TOTAL_SIZE
    );

    // SAFETY: once, BSP, no CPU has loaded the IDT.
    if let Err(error) = unsafe { idt::build() } {
        fail(format_args!("IDT: {error:?}"));
    }
    // SAFETY: BSP, once, interrupts off (boot stub), IDT built, platform up.
    unsafe { setup_this_cpu(bsp) };
    machine::set_expected(cpus.apic_ids().len());
    scenario::common_setup();
    (scenario.setup)();
    machine::report_online();

    for (cpu, &apic_id) in cpus.apic_ids().iter().enumerate() {
        if cpu == bsp {
            continue;
        }
        // SAFETY: BSP, before this AP starts, once per AP.
        let Some(stack) = (unsafe { cpu::ap_stack_top(cpu) }) else {
            fail(format_args!("no stack for cpu {cpu}"));
        };
        // SAFETY: BSP, one AP at a time; the xAPIC page is identity mapped;
        // the AP was never started; 0x8000 is free RAM once the start info
        // was copied (the command line is in `info`); `stack` is this AP's.
        let started = unsafe { smp::start_ap(crash::APIC_BASE, apic_id, cpu, stack, ap_entry) };
        if let Err(error) = started {
            fail(format_args!(
                "starting cpu {cpu} (APIC ID {apic_id}): {error:?}"
            ));
        }
    }
    if !machine::wait_all_online(ONLINE_TIMEOUT_US) {
        fail(format_args!(
            "{} of {} CPUs online",
            machine::online(),
            machine::expected()
        ));
    }
    print!(
        "crashkit-test: scenario {}: {} CPUs online:",
        scenario.name,
        machine::online()
    );
    for (cpu, apic_id) in cpus.apic_ids().iter().enumerate() {
        print!(" cpu{cpu}=apic{apic_id}");
    }
    println!();
    (scenario.bsp)()
}

/// An AP's Rust entry, from the trampoline, with its CPU index.
extern "C" fn ap_entry(cpu: u64) -> ! {
    smp::arrived();
    let cpu = cpu as usize;
    // SAFETY: this is CPU `cpu`, once; interrupts are off (trampoline
    // `cli`); the BSP built the IDT and the platform before starting APs.
    unsafe { setup_this_cpu(cpu) };
    machine::report_online();
    match scenario::current() {
        Some(scenario) => (scenario.ap)(cpu),
        None => machine::idle(),
    }
}
