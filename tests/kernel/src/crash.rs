//! The crashkit wiring: one `crashkit::kernel!` declaration (as
//! docs/integration.md describes it), plus what a test kernel adds around
//! it: an NMI entry that counts NMIs before crashkit sees them, CPU
//! exceptions routed into the panic path, and a final action that exits
//! QEMU with a verdict.
//!
//! [`K`] is the kernel type: `CrashRecord<8, 16>` in section
//! `.crash_record` (its address is printed at boot and it starts with the
//! magic `CRASHKIT`), xAPIC at `0xFEE0_0000`, final action `Reboot`, whose
//! callback ([`reboot`]) exits QEMU. A test kernel exits rather than
//! halting because the runner needs a verdict and a prompt end: an exit
//! status says the panic path reached its final action (a halt would look
//! the same as a hang, and the runner could only wait for its timeout); the
//! runner then reads the record from guest RAM. If the scenario did not ask
//! for a panic, the callback exits with "failed".
//!
//! Before bring-up (before the boot CPU's `K::cpu_online`), crashkit already
//! works: a panic there runs the panic path with nothing to shoot down, and
//! the reboot callback exits "failed" (no scenario asks for it).

use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use crashkit::kdump::{AfterDump, Capture, Device, DumpFormat, PhysRange, Setup};
use crashkit::prelude::*;
use kernel_base::exit::{ExitCode, exit};
use kernel_base::{APIC_BASE, MAX_CPUS, println};

// SAFETY: ring 0; kernel-base checks on every CPU that the local APIC is in
// xAPIC mode at APIC_BASE, which the boot stub maps uncacheable (top GiB) and
// nothing else uses as memory.
const APIC: LocalApic = unsafe { LocalApic::xapic(APIC_BASE) };

crashkit::kernel! {
    /// The test kernel's crashkit glue: the panic path's `Kernel` and the
    /// locks' domain.
    pub struct K;
    cpus: MAX_CPUS,
    notifiers: 16,
    apic: APIC,
    final_action: reboot(reboot),
    external_nmi: external_nmi(),
    nmi_handlers: 8,
    dump: dump,
    before_stop: before_stop,
}

/// The capture kernel's reservation: 16 MiB at 64 MiB, where
/// `crashkit-capture` is linked (its build's default `CRASHKIT_CAPTURE_BASE`).
/// Nothing in this kernel allocates memory, so nothing else uses it.
pub const RESERVATION: PhysRange = PhysRange::new(0x400_0000, 0x100_0000);

/// The hand-over to the capture kernel, armed at boot when QEMU gives one
/// as boot module 0 (`-initrd crashkit-capture`).
static CAPTURE: Capture = Capture::new();

/// The panic path's dump step.
fn dump() -> DumpAttempt {
    crashkit::kdump::hand_over(&CAPTURE, &APIC)
}

/// VMCOREINFO for the dump: the release, the page size, the record.
static mut VMCOREINFO: [u8; 256] = [0; 256];

/// Load the capture kernel from boot module 0, if there is one: the
/// reservation above, the memory map from the start info, the first
/// virtio-blk disk, the format from `dumpfmt=lzo|zlib|raw|elf` (LZO1X by
/// default), a reset after the dump.
pub fn load_capture(boot: &kernel_base::Boot) {
    let Some(image) = boot.module() else {
        return;
    };
    let format = match boot.option("dumpfmt") {
        None | Some("lzo") => DumpFormat::KdumpLzo,
        Some("zlib") => DumpFormat::KdumpZlib,
        Some("raw") => DumpFormat::KdumpRaw,
        Some("elf") => DumpFormat::Elf,
        Some(other) => kernel_base::fail(format_args!("dumpfmt={other}: lzo, zlib, raw or elf")),
    };
    let mut ram = [PhysRange::default(); kernel_base::pvh::MAX_RAM_RANGES];
    let mut count = 0;
    for (to, (start, len)) in ram.iter_mut().zip(boot.ram()) {
        *to = PhysRange::new(start, len);
        count += 1;
    }
    let ram = &ram[..count];
    let record = &raw const *K::record() as u64;
    let record_len = crashkit::record::CrashRecord::<{ MAX_CPUS }, 16>::TOTAL_SIZE as u64;
    // SAFETY: written once here, on the boot CPU before the APs start;
    // read only through the slice below (copied into the control area).
    let buffer = unsafe { &mut *core::ptr::addr_of_mut!(VMCOREINFO) };
    let mut info = crashkit::dump_format::vmcoreinfo::VmcoreInfoWriter::new(buffer);
    info.os_release("crashkit-test-kernel")
        .page_size(4096)
        .crashkit(env!("CARGO_PKG_VERSION"), record, record_len);
    let text_len = info.as_bytes().len();
    let setup = Setup {
        record: PhysRange::new(record, record_len),
        memory_map: ram,
        format,
        level: if format == DumpFormat::KdumpZlib {
            6
        } else {
            0
        },
        after: AfterDump::Reset,
        device: Device::VirtioBlkPci {
            address: None,
            ecam: None,
        },
        vmcoreinfo: buffer.get(..text_len).unwrap_or(&[]),
        direct_map: None,
        kernel_image: None,
        // SAFETY: RDTSC has no side effect.
        boot_id: unsafe { core::arch::x86_64::_rdtsc() },
    };
    // What this kernel keeps: low memory, its image, the module (kernel-base's list).
    let kept = boot.kept().map(|(start, len)| PhysRange::new(start, len));
    // SAFETY: the reservation is RAM this kernel never uses (it allocates
    // nothing), identity mapped read-write-execute by the boot stub, and
    // `kept` keeps it off the module; the panic path calls `dump` as
    // `hand_over` requires.
    match unsafe {
        crashkit::kdump::load_capture(
            &CAPTURE,
            image,
            RESERVATION,
            RESERVATION.start as usize,
            &kept,
            &setup,
        )
    } {
        Ok(ready) => println!(
            "crashkit-test: capture kernel loaded: {} bytes, entry {:#x}, {:?}, {} RAM ranges",
            image.len(),
            ready.loaded.entry,
            format,
            ram.len()
        ),
        Err(error) => kernel_base::fail(format_args!("capture kernel not loaded: {error}")),
    }
}

/// Which CPUs take external NMIs (LINT1): `extnmi=bsp|all|none` on the
/// command line, Linux's `apic_extnmi=` names; `bsp` by default. Read by
/// `K::cpu_online` on each CPU.
static EXTERNAL_NMI: AtomicU8 = AtomicU8::new(0);

/// Set the external-NMI choice from the command line's `extnmi=` value
/// (BSP, before any CPU comes online); `None` if the value is unknown.
pub fn set_external_nmi(value: Option<&str>) -> Option<ExternalNmi> {
    let (code, setting) = match value {
        None | Some("bsp") => (0, ExternalNmi::BootCpu),
        Some("all") => (1, ExternalNmi::All),
        Some("none") => (2, ExternalNmi::None),
        Some(_) => return None,
    };
    // Relaxed: written by the BSP before its own `cpu_online` and before
    // the APs start (their start-up IPIs order it).
    EXTERNAL_NMI.store(code, Ordering::Relaxed);
    Some(setting)
}

/// The external-NMI choice ([`set_external_nmi`]).
pub fn external_nmi() -> ExternalNmi {
    // Relaxed: see `set_external_nmi`.
    match EXTERNAL_NMI.load(Ordering::Relaxed) {
        1 => ExternalNmi::All,
        2 => ExternalNmi::None,
        _ => ExternalNmi::BootCpu,
    }
}

/// NMIs each CPU's entry took (any source), for scenarios that wait for
/// one.
pub static NMI_ENTRIES: [AtomicU64; MAX_CPUS] = [const { AtomicU64::new(0) }; MAX_CPUS];

/// Whether the scenario being run asks for a panic (set by the BSP before
/// the APs start; read by [`reboot`]).
static PANIC_EXPECTED: AtomicBool = AtomicBool::new(false);

/// Whether the final action halts instead of exiting QEMU (command-line
/// option `halt`), so the host can take a dump of the crashed machine over
/// QMP (`dump-guest-memory`) before it quits QEMU.
static HALT_AFTER_CRASH: AtomicBool = AtomicBool::new(false);

/// The serial line printed when the kernel halts after a crash: the host
/// takes its dump then.
pub const HALTED: &str = "crashkit-test: halted after the crash";

/// Halt after the crash instead of exiting (see [`HALT_AFTER_CRASH`]).
pub fn set_halt_after_crash(halt: bool) {
    // Relaxed: written by the BSP before the APs start, like
    // `PANIC_EXPECTED`.
    HALT_AFTER_CRASH.store(halt, Ordering::Relaxed);
}

/// Say whether the scenario expects the panic path to run.
pub fn set_panic_expected(expected: bool) {
    // Relaxed: written by the BSP before the APs start (the start-up IPIs
    // order it) and before any panic it could cause itself.
    PANIC_EXPECTED.store(expected, Ordering::Relaxed);
}

/// The panic owner, just before the stop handler goes in: where a scenario
/// holds the owner back (bounded) until another CPU got somewhere.
fn before_stop() {
    if let Some(scenario) = crate::scenario::current() {
        (scenario.before_shootdown)();
    }
}

/// The final action: exit QEMU, "ran" if the scenario asked for this panic,
/// else "failed"; or, with `halt` on the command line, halt for the host's
/// dump.
fn reboot() -> ! {
    let record = &raw const *K::record() as usize;
    // Relaxed: see `set_panic_expected`.
    let expected = PANIC_EXPECTED.load(Ordering::Relaxed);
    // Relaxed: see `set_halt_after_crash`.
    if HALT_AFTER_CRASH.load(Ordering::Relaxed) {
        println!(
            "{HALTED} (record at {record:#x}, {})",
            if expected { "ran" } else { "failed" }
        );
        loop {
            // Interrupts are off (the panic path turned them off); an NMI
            // only wakes the CPU to halt again.
            x86_64::instructions::hlt();
        }
    }
    if crate::scenario::current().is_some_and(|scenario| scenario.final_reset) {
        println!("crashkit-test: final action reached, resetting (record at {record:#x})");
        crashkit::reset();
    }
    println!(
        "crashkit-test: final action reached (record at {record:#x}), exiting: {}",
        if expected {
            "ran"
        } else {
            "failed, the scenario did not ask for a panic"
        }
    );
    exit(if expected {
        ExitCode::Ran
    } else {
        ExitCode::Failed
    })
}

/// The NMI entry (from the test kernel's own IDT stub): count it, then
/// crashkit's NMI entry (NMI context, handler chain).
pub fn on_nmi(frame: &RegisterFrame) {
    let cpu = <K as QueueDomain>::current_cpu();
    if let Some(count) = NMI_ENTRIES.get(cpu.as_usize()) {
        // Relaxed: a statistic; scenarios that wait for it only need to see
        // it change eventually.
        count.fetch_add(1, Ordering::Relaxed);
    }
    K::on_nmi(frame);
}

/// A CPU exception that means the kernel is broken: into the panic path
/// with the interrupted frame.
pub fn fatal_exception(name: &str, frame: &RegisterFrame, address: Option<u64>) -> ! {
    match address {
        Some(address) => K::panic_in_exception(
            format_args!(
                "{name} at rip {:#x}, address {address:#x}, error code {:#x}",
                frame.rip, frame.error_code
            ),
            frame,
        ),
        None => K::panic_in_exception(
            format_args!(
                "{name} at rip {:#x}, error code {:#x}",
                frame.rip, frame.error_code
            ),
            frame,
        ),
    }
}

crashkit::panic_handler!(K);

/// Prints the panic on serial: an informational notifier, as a kernel's
/// console flush would be (it runs after the shootdown, so no other CPU
/// prints any more).
pub static SERIAL_REPORT: Notifier =
    Notifier::new("serial-report", NotifierList::Informational, 0, |context| {
        println!(
            "crashkit-test: cpu {} panicked: {}",
            context.cpu().0,
            context.message()
        );
        BodyResult::Complete
    });

/// Prints every CPU's NMI entries and unclaimed NMIs, and the PICs'
/// interrupts, on serial, for the runner to check against the record: an
/// informational notifier (after the shootdown, so the counts are final
/// for the stopped CPUs). One line:
/// `crashkit-test: nmi-counts entries=E0,E1,.. unknown=U0,U1,.. pic-irqs=T,O`.
pub static NMI_COUNTS: Notifier =
    Notifier::new("nmi-counts", NotifierList::Informational, 1, |_| {
        use core::fmt::Write;
        let cpus = kernel_base::machine::expected().min(MAX_CPUS);
        // One line, printed at once: one console-lock wait.
        let mut line = kernel_base::Text::<256>::new();
        let mut written = write!(line, "crashkit-test: nmi-counts entries=");
        for cpu in 0..cpus {
            // Relaxed: statistics, final once every CPU stopped.
            let entries = NMI_ENTRIES
                .get(cpu)
                .map_or(0, |count| count.load(Ordering::Relaxed));
            written = written.and(write!(line, "{}{entries}", if cpu == 0 { "" } else { "," }));
        }
        written = written.and(write!(line, " unknown="));
        for cpu in 0..cpus {
            let unknown = K::state()
                .chain()
                .cpu_stats(CpuIndex(cpu as u32))
                .map_or(0, |stats| stats.unknown);
            written = written.and(write!(line, "{}{unknown}", if cpu == 0 { "" } else { "," }));
        }
        let (timer, other) = crate::scenario::pic_irqs();
        written = written.and(write!(line, " pic-irqs={timer},{other}"));
        println!("{}", line.as_str());
        if written.is_ok() {
            BodyResult::Complete
        } else {
            BodyResult::Degraded
        }
    });
