//! The QEMU test kernels' common half: a bare-metal x86_64 kernel that
//! already boots, without crashkit. Both test kernels (`tests/kernel`, the
//! full one, and `tests/kernel/minimal`, the 20-line integration) are this
//! plus their crashkit wiring and scenarios, so what each adds for crashkit
//! can be read, and counted, on its own.
//!
//! Boot order:
//!
//! | step | who | module |
//! |------|-----|--------|
//! | PVH entry, long mode, identity map of 4 GiB (top GiB uncacheable) | boot stub | [`boot`] |
//! | serial console (COM1), start info (command line, RSDP), PICs remapped to 0x20-0x2F and masked ([`pic`]), TSC calibrated on the PIT, CPUs from the ACPI MADT, local APIC checked (xAPIC at [`APIC_BASE`]) | [`entry!`]'s function, before the kernel's | [`serial`], [`pvh`], [`time`], [`madt`] |
//! | the kernel's `main(&Boot)`: its own set-up, the IDT ([`idt::build`]) | kernel | |
//! | [`start_cpus`]: on every CPU, the boot CPU first: GDT/TSS with IST stacks, IDT loaded, the kernel's `online` hook; APs started one by one (INIT-SIPI-SIPI); then the kernel's per-CPU mains | kernel calls, base runs | [`cpu`], [`smp`], [`machine`] |
//!
//! Exit codes (`isa-debug-exit`) are in [`exit`].

#![no_std]

pub mod boot;
pub mod cpu;
pub mod exit;
pub mod idt;
pub mod machine;
pub mod madt;
pub mod percpu;
pub mod pic;
pub mod pvh;
pub mod serial;
pub mod smp;
pub mod time;

use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};

use x86_64::registers::model_specific::Msr;

use crate::exit::{ExitCode, exit};

pub use crate::cpu::{DOUBLE_FAULT_IST, MACHINE_CHECK_IST, NMI_IST};
pub use crate::percpu::MAX_CPUS;
pub use crate::pvh::Region;
pub use crate::serial::Serial;

unsafe extern "C" {
    /// The linker script's first byte of the kernel image.
    static __kernel_start: u8;
    /// One past its last byte (`.bss` included).
    static __kernel_end: u8;
    /// The `.note.gnu.build-id` section's first byte.
    static __build_id_note_start: u8;
    /// One past its last byte (equal to the start: no build-id).
    static __build_id_note_end: u8;
}

/// The kernel's GNU build-id (the `NT_GNU_BUILD_ID` note's descriptor, 20
/// bytes for `--build-id=sha1`), or empty if the kernel was linked without
/// one. Read from the note the linker script bounds: `namesz`, `descsz`,
/// `type` (3), `"GNU\0"`, then the descriptor (ELF gABI, "Note Section").
pub fn build_id() -> &'static [u8] {
    let start = &raw const __build_id_note_start;
    let end = &raw const __build_id_note_end;
    let len = (end as usize).saturating_sub(start as usize);
    // SAFETY: the linker script puts both symbols around the note section,
    // which is loaded, read-only and never written: `len` bytes from
    // `start` are the section's bytes for the kernel's life.
    let note = unsafe { core::slice::from_raw_parts(start, len) };
    let word = |at: usize| {
        note.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_le_bytes) as usize
    };
    let (namesz, descsz, kind) = (word(0), word(4), word(8));
    let desc = 12 + namesz.div_ceil(4) * 4;
    if kind != 3 || note.get(12..16) != Some(b"GNU\0") {
        return &[];
    }
    note.get(desc..desc + descsz).unwrap_or(&[])
}

/// The kernel image in physical memory (identity mapped: its addresses
/// are its physical addresses), `.bss` included.
pub fn image() -> Region {
    let start = (&raw const __kernel_start) as u64;
    let end = (&raw const __kernel_end) as u64;
    Region {
        start,
        len: end.saturating_sub(start),
    }
}

/// Virtual (= physical) address of the xAPIC page (the boot stub maps it
/// uncacheable; the MADT and IA32_APIC_BASE are checked to agree).
pub const APIC_BASE: usize = 0xFEE0_0000;
/// IA32_APIC_BASE (Intel SDM vol. 3A 10.4.4).
const IA32_APIC_BASE: u32 = 0x1B;
/// The xAPIC ID register's offset.
const APIC_ID_REGISTER: usize = 0x20;
/// How long the boot CPU waits for every AP to finish its set-up.
const ONLINE_TIMEOUT_US: u64 = 5_000_000;

/// What the boot found, for the kernel's `main`.
#[derive(Debug)]
pub struct Boot {
    /// The PVH start info (command line).
    pub info: pvh::BootInfo,
    /// The TSC frequency measured on the PIT, Hz.
    pub tsc_hz: u64,
    /// The CPUs, by index (MADT order, at most [`MAX_CPUS`]).
    pub cpus: madt::CpuList,
    /// The boot CPU's index.
    pub bsp: usize,
}

impl Boot {
    /// The value of `key=VALUE` on the command line.
    pub fn option(&self, key: &str) -> Option<&str> {
        self.info.option(key)
    }

    /// Whether the bare word `flag` is on the command line.
    pub fn flag(&self, flag: &str) -> bool {
        self.info
            .cmdline()
            .split_ascii_whitespace()
            .any(|word| word == flag)
    }

    /// Boot module 0 (QEMU's `-initrd`), if there is one.
    pub fn module(&self) -> Option<&'static [u8]> {
        let module = self.info.module?;
        // SAFETY: the loader put the module in RAM at this physical
        // address, identity mapped by the boot stub; nothing in this
        // kernel writes it (it allocates nothing).
        Some(unsafe { core::slice::from_raw_parts(module.start as *const u8, module.len as usize) })
    }

    /// The memory map's RAM ranges as `(start, length)`.
    pub fn ram(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.info.ram().iter().map(|r| (r.start, r.len))
    }

    /// What the kernel itself keeps, as `(start, length)`: low memory
    /// (the start info, the AP trampoline, ACPI tables), the kernel image,
    /// boot module 0.
    pub fn kept(&self) -> [(u64, u64); 3] {
        let image = image();
        let module = self.info.module.unwrap_or_default();
        [
            (0, 0x10_0000),
            (image.start, image.len.next_multiple_of(4096)),
            (
                module.start / 4096 * 4096,
                module.len.next_multiple_of(4096) + 4096,
            ),
        ]
    }
}

/// Name the kernel's `main`, an `fn(&'static Boot) -> !`: the boot stub
/// enters it, on the boot CPU, once the machine is found.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        /// The boot stub's call into Rust (`boot.rs`), with the physical
        /// address of the PVH start info.
        #[unsafe(no_mangle)]
        extern "C" fn kernel_base_entry(start_info: u64) -> ! {
            let main: fn(&'static $crate::Boot) -> ! = $main;
            // SAFETY: the boot stub calls this once, on the boot CPU,
            // before any other CPU runs.
            main(unsafe { $crate::boot_bsp(start_info) })
        }
    };
}

/// Written once by `boot_bsp` (boot CPU, before any AP exists), then read.
struct Once<T>(UnsafeCell<Option<T>>);

// SAFETY: each `Once` is written once by the boot CPU before it starts any
// other CPU (the start-up IPIs order the write before everything an AP
// does), and only read afterwards.
unsafe impl<T: Sync> Sync for Once<T> {}

static BOOT: Once<Boot> = Once(UnsafeCell::new(None));

/// The kernel's per-CPU hooks, for the APs.
#[derive(Clone, Copy)]
struct Hooks {
    online: fn(u32) -> Result<(), Failure>,
    ap_main: fn(usize) -> !,
}

static HOOKS: Once<Hooks> = Once(UnsafeCell::new(None));
/// Set by the first `start_cpus`.
static STARTED: AtomicBool = AtomicBool::new(false);

/// The common boot on the boot CPU (see the crate docs); failures end in
/// [`fail`]. Called by [`entry!`] only.
///
/// # Safety
/// Called once, on the boot CPU, before any other CPU runs: it writes the
/// `Boot` every later reader shares.
#[doc(hidden)]
pub unsafe fn boot_bsp(start_info: u64) -> &'static Boot {
    serial::init();
    println!("kernel-base: booting");
    // SAFETY: the boot stub passes QEMU's ebx; the first 4 GiB are
    // identity mapped.
    let info = match unsafe { pvh::BootInfo::read(start_info) } {
        Ok(info) => info,
        Err(error) => fail(format_args!("start info: {error:?}")),
    };
    println!(
        "kernel-base: PVH start info v{}, command line {:?}",
        info.version,
        info.cmdline()
    );
    pic::remap_and_mask();
    let tsc_hz = time::calibrate();
    println!("kernel-base: TSC {} MHz", tsc_hz / 1_000_000);
    // SAFETY: the RSDP comes from the start info; identity mapped.
    let cpus = match unsafe { madt::read_cpus(info.rsdp) } {
        Ok(cpus) => cpus,
        Err(error) => fail(format_args!("ACPI MADT: {error}")),
    };
    if cpus.local_apic_address as usize != APIC_BASE {
        fail(format_args!(
            "the MADT puts the local APIC at {:#x}",
            cpus.local_apic_address
        ));
    }
    if cpus.ignored > 0 {
        println!(
            "kernel-base: {} CPUs past the first {MAX_CPUS} are left off",
            cpus.ignored
        );
    }
    check_apic_base();
    let bsp_apic_id = apic_id();
    let Some(bsp) = cpus.index_of(bsp_apic_id) else {
        fail(format_args!(
            "the boot CPU's APIC ID {bsp_apic_id} is not in the MADT"
        ));
    };
    // SAFETY: boot CPU, once, before any other CPU runs (see `Once`).
    let slot = unsafe { &mut *BOOT.0.get() };
    slot.insert(Boot {
        info,
        tsc_hz,
        cpus,
        bsp,
    })
}

/// Bring every CPU up and run the kernel's mains: on each CPU, the boot
/// CPU first, its GDT/TSS (IST stacks) and the IDT ([`idt::build`] must have
/// run), then `online(index)`; the APs are started one at a time and run
/// `ap_main(index)`; once all are online the boot CPU prints the CPU list
/// and runs `bsp_main`.
pub fn start_cpus(
    boot: &Boot,
    online: fn(u32) -> Result<(), Failure>,
    bsp_main: fn() -> !,
    ap_main: fn(usize) -> !,
) -> ! {
    // Relaxed: guards against a second call; before it only the boot CPU
    // runs (APs are started below), so the first call is the boot CPU's.
    if STARTED.swap(true, Ordering::Relaxed) {
        fail(format_args!("start_cpus called twice"));
    }
    // SAFETY: the first call (above), so the boot CPU, before any AP starts
    // (see `Once`).
    unsafe { *HOOKS.0.get() = Some(Hooks { online, ap_main }) };
    let cpus = boot.cpus.apic_ids();
    machine::set_expected(cpus.len());
    // SAFETY: the boot CPU, once, interrupts off (boot stub).
    unsafe { setup_this_cpu(boot.bsp, online) };
    machine::report_online();
    for (cpu, &apic_id) in cpus.iter().enumerate() {
        if cpu == boot.bsp {
            continue;
        }
        // SAFETY: boot CPU, before this AP starts, once per AP.
        let Some(stack) = (unsafe { cpu::ap_stack_top(cpu) }) else {
            fail(format_args!("no stack for cpu {cpu}"));
        };
        // SAFETY: boot CPU, one AP at a time; the xAPIC page is identity
        // mapped; the AP was never started; the trampoline's page is free
        // RAM once the start info was copied; `stack` is this AP's.
        let started = unsafe { smp::start_ap(APIC_BASE, apic_id, cpu, stack, ap_entry) };
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
    print!("kernel-base: {} CPUs online:", machine::online());
    for (cpu, apic_id) in cpus.iter().enumerate() {
        print!(" cpu{cpu}=apic{apic_id}");
    }
    println!();
    bsp_main()
}

/// An AP's Rust entry, from the trampoline, with its CPU index.
extern "C" fn ap_entry(cpu: u64) -> ! {
    smp::arrived();
    let cpu = cpu as usize;
    // SAFETY: written by the boot CPU before it started this AP.
    let Some(hooks) = (unsafe { *HOOKS.0.get() }) else {
        fail(format_args!("cpu {cpu}: started without hooks"));
    };
    // SAFETY: this is CPU `cpu`, once; interrupts are off (trampoline
    // `cli`); the boot CPU built the IDT before starting APs.
    unsafe { setup_this_cpu(cpu, hooks.online) };
    machine::report_online();
    (hooks.ap_main)(cpu)
}

/// The per-CPU part of the set-up: GDT/TSS, IDT, the kernel's hook.
///
/// # Safety
/// Called once per CPU by that CPU, interrupts off, after `idt::build`.
unsafe fn setup_this_cpu(cpu: usize, online: fn(u32) -> Result<(), Failure>) {
    // SAFETY: the caller is CPU `cpu`, once, interrupts off.
    if let Err(error) = unsafe { cpu::init_current(cpu) } {
        fail(format_args!("cpu {cpu}: descriptor tables: {error:?}"));
    }
    // SAFETY: this CPU's TSS holds its IST stacks (just loaded).
    unsafe { idt::load() };
    check_apic_base();
    // `cpu < MAX_CPUS`, checked by `init_current`.
    if let Err(failure) = online(cpu as u32) {
        fail(format_args!("cpu {cpu}: coming online: {failure}"));
    }
}

/// Check that the calling CPU's local APIC is globally enabled in xAPIC
/// mode at [`APIC_BASE`]; fail otherwise.
fn check_apic_base() {
    // SAFETY: reading IA32_APIC_BASE has no side effect; ring 0, and every
    // x86_64 CPU has the MSR.
    let value = unsafe { Msr::new(IA32_APIC_BASE).read() };
    let enabled = value & (1 << 11) != 0;
    let x2apic = value & (1 << 10) != 0;
    if !enabled || x2apic || value & 0xF_FFFF_F000 != APIC_BASE as u64 {
        fail(format_args!(
            "local APIC not in xAPIC mode at {APIC_BASE:#x} (IA32_APIC_BASE {value:#x})"
        ));
    }
}

/// The calling CPU's xAPIC ID.
fn apic_id() -> u32 {
    let register = (APIC_BASE + APIC_ID_REGISTER) as *const u32;
    // SAFETY: the xAPIC page is identity mapped uncacheable by the boot
    // stub and the APIC is in xAPIC mode (`check_apic_base`); reading the ID
    // register has no side effect.
    let value = unsafe { register.read_volatile() };
    value >> 24
}

/// Print `what` and exit QEMU with "failed".
pub fn fail(what: fmt::Arguments<'_>) -> ! {
    println!("kernel-base: FAILED: {what}");
    exit(ExitCode::Failed)
}

/// Exit QEMU with "ran": the scenario ran as designed.
pub fn exit_ran() -> ! {
    exit(ExitCode::Ran)
}

/// Text formatted into a fixed buffer of `N` bytes, without an allocator:
/// what fits is kept (a cut character is dropped from [`as_str`](Self::as_str)),
/// and a write that did not fit returns `fmt::Error`.
#[derive(Clone)]
pub struct Text<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> Text<N> {
    /// An empty text.
    pub const fn new() -> Self {
        Self {
            bytes: [0; N],
            len: 0,
        }
    }

    /// The text written so far (its valid UTF-8 prefix, if a write was cut
    /// inside a character).
    pub fn as_str(&self) -> &str {
        let bytes = self.bytes.get(..self.len).unwrap_or(&[]);
        match core::str::from_utf8(bytes) {
            Ok(text) => text,
            Err(error) => {
                core::str::from_utf8(bytes.get(..error.valid_up_to()).unwrap_or(&[])).unwrap_or("")
            }
        }
    }
}

impl<const N: usize> fmt::Debug for Text<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> Default for Text<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> fmt::Write for Text<N> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        let take = text.len().min(N - self.len);
        let (Some(target), Some(source)) = (
            self.bytes.get_mut(self.len..self.len + take),
            text.as_bytes().get(..take),
        ) else {
            return Err(fmt::Error);
        };
        target.copy_from_slice(source);
        self.len += take;
        if take < text.len() {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }
}

/// Why a kernel hook failed: any `Debug` value, formatted into a fixed
/// buffer (truncated past [`Failure::CAPACITY`] bytes), so a hook can use
/// `?` on its own error types without an allocator.
///
/// Deliberately not `Debug` itself: that is what lets every `Debug` type
/// convert into it (the blanket `From` would otherwise overlap `From<T> for
/// T`).
#[allow(missing_debug_implementations)]
pub struct Failure {
    text: Text<{ Failure::CAPACITY }>,
}

impl Failure {
    /// Bytes of the description kept.
    pub const CAPACITY: usize = 96;

    /// The description.
    pub fn as_str(&self) -> &str {
        self.text.as_str()
    }
}

impl<T: fmt::Debug> From<T> for Failure {
    fn from(value: T) -> Self {
        let mut text = Text::new();
        // `fmt::Error` means the buffer is full: the description is cut.
        let _ = write!(text, "{value:?}");
        Failure { text }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
