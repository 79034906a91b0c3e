//! [`InPlace::write`]: the dump, written by the crashed kernel itself.
//!
//! The order (docs/kdump.md, "The in-place writer"):
//! 1. take the writer's state (once; a re-entry writes nothing: `Busy`);
//! 2. the record's dump section: `InPlace`, why, the hand-over's error;
//! 3. list the memory the writer changes: its stack below here (at most
//!    [`STACK_BUDGET`]), the record, its own state (left out);
//! 4. copy the record (the dump's crash-record note: it says `Running`);
//! 5. open the device, write the dump with `crashkit-kdump-capture` (the
//!    capture kernel's code: the record's exclusions and the writer's state
//!    left out, the completion marker and the device headers last);
//! 6. store the outcome in the record and return it to the panic path.

use core::cell::UnsafeCell;
use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, Ordering};

use crashkit_dump_format::PhysRange;
use crashkit_kdump_capture::sector::WINDOW;
use crashkit_kdump_capture::{CaptureError, EntryState, Inputs, Scratch, SectorDevice, capture};
use crashkit_kdump_handover::{AfterDump, HandOver};
use crashkit_nmi::ControlRegisters;
use crashkit_panic_path::CrashLog;
use crashkit_record::{ChangedKind, DumpOutcome, FallbackReason};

use crate::config::{Config, InPlace};
use crate::memory::Ram;

/// The panicking CPU's stack the writer may change below the point where
/// it starts, listed as changed with [`FRAMES_ABOVE`]: the switch to its
/// own stack (the work runs on a stack of its state, left out of the
/// dump).
pub const STACK_BUDGET: u64 = 1024;

/// The writer's own frames above that point (`InPlace::write`,
/// `write_with`), listed with it.
pub const FRAMES_ABOVE: u64 = 2048;

/// The largest record the writer copies into the dump (a record for 256
/// CPUs and 64 notifier slots is about 78 KiB).
const SNAPSHOT_LEN: usize = 128 * 1024;

/// Why the in-place writer runs (from the hand-over's answer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Why {
    /// The reason, for the record.
    pub reason: FallbackReason,
    /// The hand-over's own error code (0: none).
    pub handover_error: u32,
}

impl Why {
    /// From a hand-over error code (`HandOverError::code`: 1 nothing
    /// armed, 2 bad mapping, 3 the image changed, 4 the control area
    /// changed).
    pub const fn from_handover_code(code: u32) -> Self {
        let reason = match code {
            1 => FallbackReason::NoCaptureKernel,
            3 => FallbackReason::ImageChanged,
            4 => FallbackReason::ControlAreaChanged,
            _ => FallbackReason::HandOverRefused,
        };
        Self {
            reason,
            handover_error: code,
        }
    }
}

/// The writer's state: everything it writes but the device, its stack and
/// the record. Taken once (`TAKEN`), for the kernel's life.
struct State {
    scratch: Scratch,
    window: [u8; WINDOW],
    snapshot: [u8; SNAPSHOT_LEN],
    bounce: Bounce,
    /// The capture's progress lines, held while pages are read (printing
    /// would change the console's own state, in pages being dumped) and
    /// printed after.
    lines: Lines,
    /// The stack the writer runs on.
    stack: OwnStack,
}

/// The writer's own stack.
#[repr(C, align(16))]
struct OwnStack([u8; OWN_STACK]);

/// Bytes of the writer's own stack (the capture kernel runs the same
/// capture on 16 KiB; debug builds of the host tests need more).
const OWN_STACK: usize = 256 * 1024;

/// Text kept for later, cut when full (the first lines are the useful
/// ones; the rest is counted).
struct Lines {
    text: [u8; LINES_LEN],
    len: usize,
    dropped: usize,
}

/// Bytes of progress text kept during the writing.
const LINES_LEN: usize = 2048;

impl core::fmt::Write for Lines {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let room = LINES_LEN - self.len;
        let take = s.len().min(room);
        if let Some(to) = self.text.get_mut(self.len..self.len + take) {
            to.copy_from_slice(&s.as_bytes()[..take]);
            self.len += take;
        }
        self.dropped += s.len() - take;
        Ok(())
    }
}

#[repr(C, align(4096))]
struct Bounce([u8; 4096]);

struct StateCell(UnsafeCell<State>);

// SAFETY: the state is reached only through `take`, which hands out one
// `&mut` for the kernel's life (the `TAKEN` flag below); no other code
// touches it.
unsafe impl Sync for StateCell {}

static STATE: StateCell = StateCell(UnsafeCell::new(State {
    scratch: Scratch::new(),
    window: [0; WINDOW],
    snapshot: [0; SNAPSHOT_LEN],
    bounce: Bounce([0; 4096]),
    lines: Lines {
        text: [0; LINES_LEN],
        len: 0,
        dropped: 0,
    },
    stack: OwnStack([0; OWN_STACK]),
}));

/// Whether the state was handed out (once for the kernel's life: a
/// kernel writes one dump; a flag that went back would also be a page that
/// differs between the dump and memory).
static TAKEN: AtomicBool = AtomicBool::new(false);

/// The writer's state, the first time only. A panic inside the writer
/// re-enters the panic path, whose dump step then finds it taken.
fn take() -> Option<&'static mut State> {
    // Relaxed: the flag only has to be won once; the state it guards is
    // used by the winner alone, on one CPU (the panic owner).
    if TAKEN.swap(true, Ordering::Relaxed) {
        return None;
    }
    // SAFETY: the swap returned false exactly once in the kernel's life,
    // so this is the only `&mut` ever made to the state (see
    // `StateCell`).
    Some(unsafe { &mut *STATE.0.get() })
}

/// The virtual range of the writer's state.
fn state_range() -> (usize, usize) {
    (STATE.0.get() as usize, core::mem::size_of::<State>())
}

/// Progress lines to the configured console.
struct Console(Option<fn(&str)>);

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        if let Some(print) = self.0 {
            print(s);
        }
        Ok(())
    }
}

/// The calling CPU's stack pointer.
#[inline(always)]
fn stack_pointer() -> usize {
    let rsp: usize;
    // SAFETY: reads rsp into a register; no memory, no flags.
    unsafe {
        core::arch::asm!("mov {}, rsp", out(reg) rsp, options(nomem, nostack, preserves_flags))
    };
    rsp
}

/// A whole-page range around `[virt, virt + len)`, translated.
fn phys_pages(config: &Config, virt: usize, len: usize) -> Option<PhysRange> {
    let start = virt & !0xfff;
    let end = virt.checked_add(len)?.checked_add(0xfff)? & !0xfff;
    let phys = (config.virt_to_phys)(start)?;
    Some(PhysRange::new(phys, (end - start) as u64))
}

impl InPlace {
    /// Write the dump in place, for `why`, with the record `record` of
    /// this kernel; `now_ns` is the platform clock. Opens the configured
    /// virtio-blk disk. Returns the `DumpOutcome` (stored in the record
    /// too), or `None` if no in-place writer is armed (nothing written,
    /// nothing recorded).
    ///
    /// Called by the panic path's dump step after the hand-over returned:
    /// ring 0, interrupts off, the other CPUs stopped (`arm`'s contract).
    pub fn write<R: CrashLog>(
        &self,
        record: &R,
        why: Why,
        now_ns: &dyn Fn() -> u64,
    ) -> Option<DumpOutcome> {
        let config = self.config()?;
        // The DMA pool's translation: a pool this kernel cannot translate
        // gets no device (a DMA address guessed wrong would have the disk
        // write the wrong memory).
        let (pool_virt, pool_len) = crashkit_kdump_pc::virtio::dma_pool();
        let pool_phys = (config.virt_to_phys)(pool_virt);
        if let Some(phys) = pool_phys {
            crashkit_kdump_pc::virtio::set_offsets(
                (pool_virt as u64).wrapping_sub(phys),
                config.mmio_offset,
            );
        }
        let pool = phys_pages(config, pool_virt, pool_len);
        // This CPU's control registers now: the crashed kernel's own, for
        // a record whose owner slot lacks them.
        // SAFETY: the panic path runs in ring 0 (`arm`'s contract).
        let control = unsafe { ControlRegisters::capture() };
        let entry = EntryState {
            cr0: control.cr0,
            cr3: control.cr3,
            cr4: control.cr4,
        };
        let start = Start {
            entry,
            crash_time: crashkit_kdump_pc::clock::rtc_seconds(),
            device_state: pool,
        };
        Some(self.write_with(record, why, now_ns, start, &mut || {
            pool_phys?;
            let mut map = |range| (config.map_bar)(range);
            crashkit_kdump_pc::virtio::open(config.device, &mut map).ok()
        }))
    }

    /// [`write`](Self::write) onto a device `open` gives (`None`: no
    /// device), with what [`Start`] says of the machine. The host tests
    /// drive it with a file-like device and memory.
    pub fn write_with<R: CrashLog, D: SectorDevice>(
        &self,
        record: &R,
        why: Why,
        now_ns: &dyn Fn() -> u64,
        start: Start,
        open: &mut dyn FnMut() -> Option<D>,
    ) -> DumpOutcome {
        #[cfg(feature = "defmt")]
        defmt::warn!(
            "in-place dump: no hand-over ({=str}, code {=u32}): the crashed kernel writes the dump",
            why.reason.variant_name(),
            why.handover_error
        );
        let Some(config) = self.config() else {
            #[cfg(feature = "defmt")]
            defmt::error!("in-place dump: no device configured");
            return DumpOutcome::NoDevice;
        };
        let Some(state) = take() else {
            #[cfg(feature = "defmt")]
            defmt::error!("in-place dump: the writer is busy (a re-entered panic)");
            return DumpOutcome::Busy;
        };
        // Everything from here runs on the writer's own stack, so the
        // panicking CPU's stack below this point keeps what it held (old
        // frames included); only this frame and the switch touch it.
        let stack_top = stack_pointer();
        let State {
            scratch,
            window,
            snapshot,
            bounce,
            lines,
            stack,
        } = state;
        let top = stack.0.as_mut_ptr_range().end;
        let mut outcome = DumpOutcome::Refused;
        let mut work = || {
            outcome = write_on_own_stack(
                config,
                record,
                why,
                now_ns,
                Moment {
                    entry: start.entry,
                    crash_time: start.crash_time,
                    stack_top,
                    device_state: start.device_state,
                },
                Buffers {
                    scratch,
                    window,
                    snapshot,
                    bounce,
                    lines,
                },
                open,
            );
        };
        // SAFETY: `top` is the end of the writer's stack, a 16-byte
        // aligned array of this state, which `take` hands out once for
        // the kernel's life (see `State`), large enough for the work
        // (`OWN_STACK`).
        unsafe { on_stack(top, &mut work) };
        // No event here: the rings were read into the dump as they were
        // before the writing, and the panic path logs the outcome next.
        outcome
    }
}

/// What [`InPlace::write_with`] is told of the machine.
#[derive(Clone, Copy, Debug)]
pub struct Start {
    /// The panicking CPU's CR0, CR3 and CR4 (for a record whose owner slot
    /// lacks them).
    pub entry: EntryState,
    /// Seconds since 1970 (0: unknown).
    pub crash_time: u64,
    /// The device driver's own memory (its DMA pool), listed and left out
    /// like the writer's state.
    pub device_state: Option<PhysRange>,
}

/// What the writer knows of the moment it started.
struct Moment {
    entry: EntryState,
    crash_time: u64,
    /// The panicking CPU's stack pointer when the writer started.
    stack_top: usize,
    device_state: Option<PhysRange>,
}

/// The writer's buffers, borrowed from its state.
struct Buffers<'a> {
    scratch: &'a mut Scratch,
    window: &'a mut [u8; WINDOW],
    snapshot: &'a mut [u8; SNAPSHOT_LEN],
    bounce: &'a mut Bounce,
    lines: &'a mut Lines,
}

/// A call made on another stack: the closure, behind a pointer the
/// assembly passes in `rdi`.
struct Call<'a> {
    work: &'a mut dyn FnMut(),
}

extern "C" fn run_call(call: *mut Call<'_>) {
    // SAFETY: `on_stack` passes a pointer to a live `Call` on its caller's
    // stack, which outlives this call, and nothing else uses it meanwhile.
    let call = unsafe { &mut *call };
    (call.work)();
}

/// Run `work` with `rsp` at `top`, then come back to this stack.
///
/// # Safety
/// `top` is the 16-byte aligned end of memory the caller owns and nothing
/// else uses while `work` runs, large enough for `work`'s deepest call.
unsafe fn on_stack(top: *mut u8, work: &mut dyn FnMut()) {
    let mut call = Call { work };
    let call: *mut Call<'_> = &mut call;
    // SAFETY: the caller's contract gives a free, aligned stack; `call`
    // (pushing the return address) leaves `rsp` at 8 mod 16 at the
    // callee's entry, as the SysV ABI wants. r12 is callee-saved, so it
    // holds this stack's `rsp` across the call and restores it; it is an
    // output (not `lateout`), so no input is placed in it. The callee
    // follows the C ABI (`clobber_abi`). A panic in `work` re-enters the
    // kernel's panic path, which never returns here (panic = abort).
    unsafe {
        core::arch::asm!(
            "mov r12, rsp",
            "mov rsp, {top}",
            "call {run}",
            "mov rsp, r12",
            top = in(reg) top,
            run = sym run_call,
            in("rdi") call,
            out("r12") _,
            clobber_abi("C"),
        );
    }
}

/// The writer's work, on its own stack.
fn write_on_own_stack<R: CrashLog, D: SectorDevice>(
    config: &Config,
    record: &R,
    why: Why,
    now_ns: &dyn Fn() -> u64,
    moment: Moment,
    buffers: Buffers<'_>,
    open: &mut dyn FnMut() -> Option<D>,
) -> DumpOutcome {
    let section = record.dump_section();
    section.choose_in_place(why.reason, why.handover_error, now_ns());
    let mut console = Console(config.console);
    let _ = writeln!(
        console,
        "crashkit: no capture kernel to hand over to ({:?}, hand-over error {}); writing the dump in place",
        why.reason, why.handover_error
    );

    // The memory this writer changes, in the record before the copy.
    let mut left_out = [PhysRange::default(); 3];
    let mut left_out_count = 0;
    let stack = phys_pages(
        config,
        moment.stack_top.saturating_sub(STACK_BUDGET as usize),
        (STACK_BUDGET + FRAMES_ABOVE) as usize,
    );
    let (record_virt, record_len) = record.span();
    let own = state_range();
    let changed = [
        (stack, ChangedKind::Stack, false),
        (
            phys_pages(config, record_virt, record_len),
            ChangedKind::Record,
            false,
        ),
        (
            phys_pages(config, own.0, own.1),
            ChangedKind::WriterState,
            true,
        ),
        (moment.device_state, ChangedKind::WriterState, true),
    ];
    for (range, kind, leave_out) in changed {
        let Some(range) = range else { continue };
        // A full list cannot happen (4 of 8 entries); were it full, the
        // range would still be left out or changed, unlisted.
        let _ = section.add_changed(range.start, range.len, kind, leave_out);
        if leave_out && let Some(slot) = left_out.get_mut(left_out_count) {
            *slot = range;
            left_out_count += 1;
        }
    }

    let finish = |outcome: DumpOutcome, pages: u64, bytes: u64| {
        section.finish(outcome, pages, bytes, now_ns());
        outcome
    };
    let Buffers {
        scratch,
        window,
        snapshot,
        bounce,
        lines,
    } = buffers;
    let Some(record_len) = record.snapshot_into(snapshot) else {
        return finish(DumpOutcome::Refused, 0, 0);
    };
    let Some(device) = open() else {
        let _ = writeln!(console, "crashkit: no dump device; no dump written");
        return finish(DumpOutcome::NoDevice, 0, 0);
    };
    let block = HandOver {
        reservation: config.reservation,
        control: PhysRange::default(),
        record: PhysRange::default(),
        memory_map: 0,
        memory_map_count: config.memory_count as u32,
        format: config.format,
        level: 0,
        after: AfterDump::Halt,
        device: config.device,
        vmcoreinfo: PhysRange::default(),
        direct_map: config.direct_map,
        kernel_image: config.kernel_image,
        entry: 0,
        digest: [0; 32],
        boot_id: config.boot_id,
    };
    let inputs = Inputs {
        block: &block,
        record: snapshot.get(..record_len).unwrap_or(&[]),
        vmcoreinfo: config.vmcoreinfo(),
        memory_map: config.memory(),
        left_out: left_out.get(..left_out_count).unwrap_or(&[]),
        entry: moment.entry,
        dump_id: crashkit_kdump_pc::id::dump_id(config.boot_id),
        crash_time: moment.crash_time,
    };
    let mut memory = Ram {
        ranges: config.memory(),
        offset: config.ram_offset,
        bounce: &mut bounce.0,
    };
    lines.len = 0;
    lines.dropped = 0;
    let result = capture(&inputs, &mut memory, device, window, scratch, lines);
    // The copy is a valid record: cleared, so that a later scan of this
    // kernel's memory (a hypervisor's dump) finds the record only once.
    if let Some(copy) = snapshot.get_mut(..record_len) {
        copy.fill(0);
    }
    // The held lines, now that no page is read any more. A cut inside a
    // character is shown as far as it is valid.
    let held = lines.text.get(..lines.len).unwrap_or(&[]);
    let text = match core::str::from_utf8(held) {
        Ok(text) => text,
        Err(error) => {
            core::str::from_utf8(held.get(..error.valid_up_to()).unwrap_or(&[])).unwrap_or("")
        }
    };
    let _ = console.write_str(text);
    if lines.dropped > 0 {
        let _ = writeln!(console, "({} bytes of progress not kept)", lines.dropped);
    }
    match result {
        Ok(outcome) => {
            let _ = writeln!(
                console,
                "crashkit: dump written in place: {} of {} pages, {} bytes{}",
                outcome.pages_written,
                outcome.pages_total,
                outcome.data_len,
                if outcome.did_not_fit {
                    ", DID NOT FIT: incomplete"
                } else {
                    ""
                }
            );
            let code = if outcome.did_not_fit {
                DumpOutcome::DidNotFit
            } else {
                DumpOutcome::Complete
            };
            finish(code, outcome.pages_written, outcome.data_len)
        }
        Err(error) => {
            let _ = writeln!(console, "crashkit: the in-place dump failed: {error:?}");
            let code = match error {
                CaptureError::DeviceTooSmall { .. } => DumpOutcome::DeviceTooSmall,
                CaptureError::Device(_) => DumpOutcome::DeviceFailed,
                CaptureError::Plan(_) | CaptureError::SegmentTableFull => DumpOutcome::Refused,
            };
            finish(code, 0, 0)
        }
    }
}
