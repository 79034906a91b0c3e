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

use crashkit::kdump::{AfterDump, Capture, Device, DumpFormat, InPlace, PhysRange, Setup};
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
    crash_log: 4096,
}

/// The capture kernel's reservation: 16 MiB at 64 MiB, where
/// `crashkit-capture` is linked (its build's default `CRASHKIT_CAPTURE_BASE`).
/// Nothing in this kernel allocates memory, so nothing else uses it.
pub const RESERVATION: PhysRange = PhysRange::new(0x400_0000, 0x100_0000);

/// The hand-over to the capture kernel, armed at boot when QEMU gives one
/// as boot module 0 (`-initrd crashkit-capture`).
static CAPTURE: Capture = Capture::new();

/// The in-place writer behind it, armed with it (`capture=none` arms it
/// alone): the crashed kernel writes the dump itself when the hand-over
/// does not happen.
static IN_PLACE: InPlace = InPlace::new();

/// `pause=1`: after an in-place dump, say so on the raw serial port (no
/// lock: no memory changes) and wait 2 s before the panic path goes on, so
/// the runner can copy guest RAM as the writer left it (the post-dump
/// notifiers change memory afterwards).
static PAUSE_AFTER_DUMP: AtomicBool = AtomicBool::new(false);

/// The panic path's dump step: hand over, or write in place.
fn dump() -> DumpAttempt {
    let attempt = crashkit::kdump::dump::<K>(&CAPTURE, &IN_PLACE, &APIC);
    // Relaxed: set at boot on the boot CPU, before any CPU can panic.
    if matches!(attempt, DumpAttempt::WrittenInPlace(_)) && PAUSE_AFTER_DUMP.load(Ordering::Relaxed)
    {
        use core::fmt::Write as _;
        let _ = kernel_base::serial::Serial
            .write_str("crashkit-test: in-place dump returned, pausing\n");
        kernel_base::time::delay_us(2_000_000);
    }
    attempt
}

/// The in-place writer's console: the kernel's (bounded lock).
fn dump_console(text: &str) {
    kernel_base::print!("{text}");
}

/// A BAR the in-place writer may use: the boot stub identity-maps the
/// first 4 GiB, the top GiB uncacheable, where firmware puts the BARs.
fn bar_mapped(bar: PhysRange) -> bool {
    bar.start >= 0xC000_0000 && bar.end().is_some_and(|end| end <= 1 << 32)
}

/// `secret=1`: two pages registered as a secret at boot, then filled with
/// a pattern drawn at run time (the runner finds them through the record's
/// exclusion slots and looks for the pattern on the device).
#[repr(C, align(4096))]
struct Secret([u8; 8192]);
static mut SECRET: Secret = Secret([0; 8192]);

/// `fill=N`: N MiB of RAM from 16 MiB on (but what the kernel keeps and
/// the reservation) filled with bytes no codec compresses, so the dump has
/// that much to write: the runner's torn-dump scenario stops the machine
/// part way through it.
pub fn fill_memory(boot: &kernel_base::Boot) {
    let Some(mib) = boot.option("fill").and_then(|n| n.parse::<u64>().ok()) else {
        return;
    };
    let start = 16u64 << 20;
    let end = (start + (mib.min(40) << 20)).min(RESERVATION.start);
    // SAFETY: RDTSC has no side effect.
    let mut x = unsafe { core::arch::x86_64::_rdtsc() } | 1;
    let mut filled = 0u64;
    for page in (start..end).step_by(4096) {
        let kept = boot
            .kept()
            .into_iter()
            .any(|(at, len)| page < at.saturating_add(len) && at < page + 4096);
        if kept
            || !boot
                .ram()
                .any(|(at, len)| at <= page && page + 4096 <= at + len)
        {
            continue;
        }
        let words = page as *mut u64;
        for index in 0..512 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // SAFETY: `page` is RAM (the memory map says so) that this
            // kernel neither keeps nor uses (it allocates nothing), identity
            // mapped; 512 words fill exactly the page.
            unsafe { words.add(index).write_volatile(x) };
        }
        filled += 1;
    }
    println!("crashkit-test: fill: {filled} pages of incompressible bytes from {start:#x}");
}

/// Register and fill the secret (`secret=1`).
pub fn keep_secret(boot: &kernel_base::Boot) {
    if boot.option("secret") != Some("1") {
        return;
    }
    let address = core::ptr::addr_of!(SECRET) as u64;
    // Registered before it is written (the exclusion slots' rule).
    if let Err(error) = K::record().exclude(address, 8192) {
        kernel_base::fail(format_args!("secret not registered: {error}"));
    }
    // SAFETY: RDTSC has no side effect.
    let mut x = unsafe { core::arch::x86_64::_rdtsc() } | 1;
    // SAFETY: written once here, on the boot CPU before the APs start;
    // nothing else refers to it.
    let secret = unsafe { &mut *core::ptr::addr_of_mut!(SECRET) };
    for byte in secret.0.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *byte = x as u8;
    }
    println!("crashkit-test: secret registered at {address:#x}, 8192 bytes");
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
    // The in-place writer, whenever there is a disk to write to (the
    // runner gives the capture kernel and a disk together).
    let ram_ranges = boot.ram();
    // SAFETY: this kernel is identity mapped (RAM, statics, stacks, the
    // BARs `bar_mapped` accepts), and nothing else drives the disk.
    let armed = unsafe {
        crashkit::kdump::arm_in_place_identity::<K>(
            &IN_PLACE,
            ram_ranges,
            RESERVATION,
            bar_mapped,
            Some(dump_console),
        )
    };
    if let Err(error) = armed {
        kernel_base::fail(format_args!("{error}"));
    }
    // Relaxed: read by `dump` on the panicking CPU, which starts later.
    PAUSE_AFTER_DUMP.store(boot.option("pause") == Some("1"), Ordering::Relaxed);
    let mode = boot.option("capture");
    if mode == Some("none") {
        println!("crashkit-test: capture=none: no capture kernel loaded");
        return;
    }
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
    if mode == Some("corrupt") {
        // Memory corruption reaching the loaded image: one byte of its
        // first page flipped, as a stray write would.
        let at = (RESERVATION.start + 0x40) as *mut u8;
        // SAFETY: the reservation is identity mapped and this kernel's
        // alone; the byte is inside the loaded image (it starts at the
        // reservation), which only the hand-over's check reads.
        unsafe { at.write_volatile(at.read_volatile() ^ 0x5a) };
        println!("crashkit-test: capture=corrupt: one byte of the loaded image flipped");
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
