//! The crash record itself: header, panic section, CPU slots, notifier
//! slots, in one `#[repr(C)]` static the kernel reserves at build time.
//!
//! The header is written once, by `const fn new`, and never changes: it
//! tells a reader (who has nothing but bytes) the format version, the byte
//! order, and where each section is, how many slots it has and how big a
//! slot is. Everything after it is atomics written on the panic path (see
//! each section's docs for who writes what and how it is published).
//!
//! Two ways to get the bytes in-process: [`CrashRecord::snapshot`] copies
//! field by field with atomic loads (safe while CPUs write), and
//! [`CrashRecord::as_bytes`] views the memory itself (unsafe: nobody may
//! write meanwhile). Both give what a dump of the static would hold.

use core::fmt;
use core::mem::size_of;
use core::ops::Range;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering::{self, Relaxed};

use crashkit_nmi::CpuIndex;

use crate::cpu::CpuSlot;
use crate::dump::DumpSection;
use crate::exclusion::{ExcludeError, Exclusion, ExclusionSlot};
use crate::layout::{self, cpu, header, notifier, section_kind};

/// Exclusion slots a record has unless its type says otherwise.
pub const DEFAULT_EXCLUSIONS: usize = 8;
use crate::notifier::{NotifierEntry, NotifierSlot};
use crate::panic::{Full, PanicSection};

/// One section table entry (immutable after `new`).
#[derive(Clone, Copy)]
#[repr(C)]
struct SectionEntry {
    kind: u32,
    offset: u32,
    count: u32,
    slot_size: u32,
}

impl SectionEntry {
    /// An entry; the sizes fit in `u32` (`CrashRecord::new` checks the
    /// total at compile time).
    const fn new(kind: u32, offset: usize, count: usize, slot_size: usize) -> Self {
        Self {
            kind,
            offset: offset as u32,
            count: count as u32,
            slot_size: slot_size as u32,
        }
    }
}

/// The header (immutable after `new`).
#[repr(C)]
struct RecordHeader {
    magic: [u8; 8],
    version: u16,
    header_size: u16,
    byte_order: u32,
    total_size: u32,
    section_table_offset: u16,
    section_entry_size: u16,
    section_count: u32,
    reserved: u32,
    sections: [SectionEntry; layout::SECTION_COUNT],
}

/// The crash record for a machine of `CPUS` CPUs and a panic path that
/// records up to `NOTIFIERS` notifier outcomes, with `EXCLUSIONS` slots for
/// memory a dump must leave out (`#[repr(C)]`, 8-byte aligned,
/// [`Self::TOTAL_SIZE`] bytes, no padding).
///
/// ```
/// use crashkit_record::{CrashRecord, PanicPhase, PhaseStamp};
/// use core::fmt::Write;
///
/// static RECORD: CrashRecord<4, 16> = CrashRecord::new();
///
/// let panic = RECORD.panic();
/// panic.stamp(PhaseStamp::PanicEntry, 1_000);
/// panic.set_owner(crashkit_nmi::CpuIndex(0));
/// panic.set_phase(PanicPhase::Claimed);
/// let _ = write!(panic.message_writer(), "out of {}", "memory");
///
/// let mut bytes = [0u8; CrashRecord::<4, 16>::TOTAL_SIZE];
/// let len = RECORD.snapshot(&mut bytes).unwrap();
/// let view = crashkit_record::RecordView::parse(&bytes[..len]).unwrap();
/// assert_eq!(view.panic().message().as_str(), Some("out of memory"));
/// ```
#[repr(C)]
pub struct CrashRecord<
    const CPUS: usize,
    const NOTIFIERS: usize,
    const EXCLUSIONS: usize = DEFAULT_EXCLUSIONS,
> {
    header: RecordHeader,
    panic: PanicSection,
    cpus: [CpuSlot; CPUS],
    notifiers: [NotifierSlot; NOTIFIERS],
    dump: DumpSection,
    exclusions: [ExclusionSlot; EXCLUSIONS],
    log: LogSection,
}

/// The log section: where the kernel's crash log is. Written once at boot
/// (`set_log`), read post-mortem.
#[repr(C)]
#[derive(Debug)]
struct LogSection {
    address: AtomicU64,
    size: AtomicU64,
}

/// [`CrashRecord::snapshot`]'s buffer was too small.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotTooSmall {
    /// Bytes the record needs ([`CrashRecord::TOTAL_SIZE`]).
    pub needed: usize,
    /// Bytes the buffer had.
    pub available: usize,
}

impl fmt::Display for SnapshotTooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a crash record snapshot needs {} bytes, the buffer has {}",
            self.needed, self.available
        )
    }
}

impl core::error::Error for SnapshotTooSmall {}

impl<const CPUS: usize, const NOTIFIERS: usize, const EXCLUSIONS: usize> Default
    for CrashRecord<CPUS, NOTIFIERS, EXCLUSIONS>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<const CPUS: usize, const NOTIFIERS: usize, const EXCLUSIONS: usize> fmt::Debug
    for CrashRecord<CPUS, NOTIFIERS, EXCLUSIONS>
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CrashRecord")
            .field("cpus", &CPUS)
            .field("notifiers", &NOTIFIERS)
            .field("exclusions", &EXCLUSIONS)
            .field("panic", &self.panic)
            .finish_non_exhaustive()
    }
}

impl<const CPUS: usize, const NOTIFIERS: usize, const EXCLUSIONS: usize>
    CrashRecord<CPUS, NOTIFIERS, EXCLUSIONS>
{
    /// Where the panic section starts.
    pub const PANIC_OFFSET: usize = layout::HEADER_SIZE;
    /// Where the CPU slots start.
    pub const CPUS_OFFSET: usize = Self::PANIC_OFFSET + layout::panic::SIZE;
    /// Where the notifier slots start.
    pub const NOTIFIERS_OFFSET: usize = Self::CPUS_OFFSET + CPUS * cpu::SIZE;
    /// Where the dump section starts.
    pub const DUMP_OFFSET: usize = Self::NOTIFIERS_OFFSET + NOTIFIERS * notifier::SIZE;
    /// Where the exclusion slots start.
    pub const EXCLUSIONS_OFFSET: usize = Self::DUMP_OFFSET + layout::dump::SIZE;
    /// Where the log section starts.
    pub const LOG_OFFSET: usize = Self::EXCLUSIONS_OFFSET + EXCLUSIONS * layout::exclusion::SIZE;
    /// The record's size in bytes.
    pub const TOTAL_SIZE: usize = Self::LOG_OFFSET + layout::log::SIZE;

    /// An empty record (no panic), its header filled in. Usable in a
    /// `static`; a record too large for the format's 32-bit sizes does not
    /// compile.
    pub const fn new() -> Self {
        const {
            assert!(Self::TOTAL_SIZE <= u32::MAX as usize, "record too large");
            assert!(size_of::<Self>() == Self::TOTAL_SIZE, "record has padding");
        }
        Self {
            header: RecordHeader {
                magic: layout::MAGIC,
                version: layout::VERSION,
                header_size: layout::HEADER_SIZE as u16,
                byte_order: layout::BYTE_ORDER_MARK,
                total_size: Self::TOTAL_SIZE as u32,
                section_table_offset: header::SECTION_TABLE as u16,
                section_entry_size: layout::SECTION_ENTRY_SIZE as u16,
                section_count: layout::SECTION_COUNT as u32,
                reserved: 0,
                sections: [
                    SectionEntry::new(
                        section_kind::PANIC,
                        Self::PANIC_OFFSET,
                        1,
                        layout::panic::SIZE,
                    ),
                    SectionEntry::new(section_kind::CPUS, Self::CPUS_OFFSET, CPUS, cpu::SIZE),
                    SectionEntry::new(
                        section_kind::NOTIFIERS,
                        Self::NOTIFIERS_OFFSET,
                        NOTIFIERS,
                        notifier::SIZE,
                    ),
                    SectionEntry::new(
                        section_kind::EXCLUSIONS,
                        Self::EXCLUSIONS_OFFSET,
                        EXCLUSIONS,
                        layout::exclusion::SIZE,
                    ),
                    SectionEntry::new(section_kind::DUMP, Self::DUMP_OFFSET, 1, layout::dump::SIZE),
                    SectionEntry::new(section_kind::LOG, Self::LOG_OFFSET, 1, layout::log::SIZE),
                ],
            },
            panic: PanicSection::new(),
            cpus: [const { CpuSlot::new() }; CPUS],
            notifiers: [const { NotifierSlot::new() }; NOTIFIERS],
            dump: DumpSection::new(),
            exclusions: [const { ExclusionSlot::new() }; EXCLUSIONS],
            log: LogSection {
                address: AtomicU64::new(0),
                size: AtomicU64::new(0),
            },
        }
    }

    /// Point the record at the kernel's crash log: `size` bytes at
    /// `address` (docs/crash-log.md). Once, at boot.
    pub fn set_log(&self, address: u64, size: u64) {
        // Relaxed: written once at boot, before any panic; read by a dump's
        // reader, post-mortem (or by `snapshot`, which takes what it finds).
        self.log.address.store(address, Relaxed);
        self.log.size.store(size, Relaxed);
    }

    /// Leave `len` bytes of physical memory at `start` out of any dump
    /// (see [`crate::exclusion`]'s docs for the order to keep: register,
    /// then write the secret). Lock-free and bounded: callable from any
    /// context, NMI included.
    pub fn exclude(&self, start: u64, len: u64) -> Result<Exclusion, ExcludeError> {
        crate::exclusion::exclude(&self.exclusions, start, len)
    }

    /// Let a registered range into dumps again (wipe the secret first).
    /// Lock-free and bounded. Returns false if `exclusion` is not this
    /// record's (its slot was not active).
    pub fn include_again(&self, exclusion: Exclusion) -> bool {
        self.exclusions
            .get(exclusion.slot())
            .is_some_and(ExclusionSlot::release)
    }

    /// The exclusion slots.
    pub const fn exclusion_slots(&self) -> &[ExclusionSlot] {
        &self.exclusions
    }

    /// The dump section.
    pub const fn dump(&self) -> &DumpSection {
        &self.dump
    }

    /// The panic section: phase, owner, stamps, counters, message.
    pub const fn panic(&self) -> &PanicSection {
        &self.panic
    }

    /// Every CPU slot, indexed by CPU index (for the shootdown).
    pub const fn cpu_slots(&self) -> &[CpuSlot] {
        &self.cpus
    }

    /// The slot of `cpu`; `None` for an index the record has no slot for.
    pub fn cpu_slot(&self, cpu: CpuIndex) -> Option<&CpuSlot> {
        self.cpus.get(usize::try_from(cpu.0).ok()?)
    }

    /// Record one notifier outcome in the next slot (the panic owner, in
    /// run order). When every slot is used, the outcome is counted in
    /// `notifiers_dropped` and [`Full`] is returned.
    pub fn record_notifier(&self, entry: &NotifierEntry<'_>) -> Result<(), Full> {
        let panic = &self.panic;
        // Relaxed: the owner is the count's only writer and reads its own
        // latest store.
        let index = panic.notifiers_recorded.load(Ordering::Relaxed) as usize;
        let Some(slot) = self.notifiers.get(index) else {
            // Relaxed: a counter.
            panic.notifiers_dropped.fetch_add(1, Ordering::Relaxed);
            return Err(Full);
        };
        slot.write(entry);
        // Release: publishes the slot just written to readers that load
        // the count with Acquire (`notifiers_recorded`, `notifier`,
        // `snapshot`). `index < NOTIFIERS <= u32::MAX`.
        panic
            .notifiers_recorded
            .store(index as u32 + 1, Ordering::Release);
        Ok(())
    }

    /// Notifier slot `index`, if it was recorded.
    pub fn notifier(&self, index: usize) -> Option<&NotifierSlot> {
        if index >= self.panic.notifiers_recorded() as usize {
            return None;
        }
        self.notifiers.get(index)
    }

    /// Copy the record into `out` field by field (native byte order), as a
    /// dump of the static would hold it; returns the bytes written
    /// ([`Self::TOTAL_SIZE`]). Safe while other CPUs write: every field is
    /// read atomically, publication words first (a slot's registers are
    /// copied only if the state read before them has registers; otherwise
    /// the copy has zeros there). Not a single atomic picture: fields
    /// written during the copy may or may not be in it.
    pub fn snapshot(&self, out: &mut [u8]) -> Result<usize, SnapshotTooSmall> {
        let needed = Self::TOTAL_SIZE;
        let Some(out) = out.get_mut(..needed) else {
            return Err(SnapshotTooSmall {
                needed,
                available: out.len(),
            });
        };
        out.fill(0);
        let mut put = Writer { out };
        self.snapshot_header(&mut put);
        self.snapshot_panic(&mut put, Self::PANIC_OFFSET);
        for (index, slot) in self.cpus.iter().enumerate() {
            snapshot_cpu(&mut put, Self::CPUS_OFFSET + index * cpu::SIZE, slot);
        }
        for (index, slot) in self.notifiers.iter().enumerate() {
            let at = Self::NOTIFIERS_OFFSET + index * notifier::SIZE;
            let (words, duration_ns, name) = slot.words();
            let offsets = [
                notifier::LIST,
                notifier::OUTCOME,
                notifier::PRIORITY,
                notifier::FLAGS,
                notifier::NAME_LEN,
                notifier::RESERVED,
            ];
            for (offset, word) in offsets.into_iter().zip(words) {
                put.u32(at + offset, word);
            }
            put.u64(at + notifier::DURATION_NS, duration_ns);
            put.bytes(at + notifier::NAME, &name);
        }
        self.snapshot_dump(&mut put, Self::DUMP_OFFSET);
        for (index, slot) in self.exclusions.iter().enumerate() {
            let at = Self::EXCLUSIONS_OFFSET + index * layout::exclusion::SIZE;
            let (state, start, len) = slot.words();
            put.u32(at + layout::exclusion::STATE, state);
            put.u64(at + layout::exclusion::START, start);
            put.u64(at + layout::exclusion::LEN, len);
        }
        // Relaxed: see `set_log`.
        put.u64(
            Self::LOG_OFFSET + layout::log::ADDRESS,
            self.log.address.load(Relaxed),
        );
        put.u64(
            Self::LOG_OFFSET + layout::log::SIZE_BYTES,
            self.log.size.load(Relaxed),
        );
        Ok(needed)
    }

    fn snapshot_header(&self, put: &mut Writer<'_>) {
        let h = &self.header;
        put.bytes(header::MAGIC, &h.magic);
        put.u16(header::VERSION, h.version);
        put.u16(header::HEADER_SIZE, h.header_size);
        put.u32(header::BYTE_ORDER, h.byte_order);
        put.u32(header::TOTAL_SIZE, h.total_size);
        put.u16(header::SECTION_TABLE_OFFSET, h.section_table_offset);
        put.u16(header::SECTION_ENTRY_SIZE, h.section_entry_size);
        put.u32(header::SECTION_COUNT, h.section_count);
        put.u32(header::RESERVED, h.reserved);
        for (index, entry) in h.sections.iter().enumerate() {
            let at = header::SECTION_TABLE + index * layout::SECTION_ENTRY_SIZE;
            put.u32(at + layout::section_entry::KIND, entry.kind);
            put.u32(at + layout::section_entry::OFFSET, entry.offset);
            put.u32(at + layout::section_entry::COUNT, entry.count);
            put.u32(at + layout::section_entry::SLOT_SIZE, entry.slot_size);
        }
    }

    fn snapshot_dump(&self, put: &mut Writer<'_>, at: usize) {
        use layout::dump as d;
        let copy = self.dump.words();
        for (index, word) in copy.words.into_iter().enumerate() {
            put.u32(at + index * 4, word);
        }
        for (index, long) in copy.longs.into_iter().enumerate() {
            put.u64(at + d::PAGES_WRITTEN + index * 8, long);
        }
        for (index, (start, len, kind, flags)) in copy.changed.into_iter().enumerate() {
            let entry = at + d::CHANGED + index * d::changed::SIZE;
            put.u64(entry + d::changed::START, start);
            put.u64(entry + d::changed::LEN, len);
            put.u32(entry + d::changed::KIND, kind);
            put.u32(entry + d::changed::FLAGS, flags);
        }
    }

    fn snapshot_panic(&self, put: &mut Writer<'_>, at: usize) {
        let copy = self.panic.words();
        for (index, word) in copy.words.into_iter().enumerate() {
            put.u32(at + index * 4, word);
        }
        for (index, stamp) in copy.stamps.into_iter().enumerate() {
            put.u64(at + layout::panic::STAMPS + index * 8, stamp);
        }
        for (index, (phase, skipped, at_ns)) in copy.log.into_iter().enumerate() {
            let entry = at + layout::panic::ESCALATION_LOG + index * layout::escalation::SIZE;
            put.u32(entry + layout::escalation::PHASE, phase);
            put.u32(entry + layout::escalation::SKIPPED, skipped);
            put.u64(entry + layout::escalation::AT_NS, at_ns);
        }
        put.bytes(at + layout::panic::MESSAGE, &copy.message);
    }

    /// The record's memory as bytes (native byte order), e.g. to hand to
    /// [`crate::RecordView::parse`] in a test or a tool that runs in the
    /// same address space.
    ///
    /// # Safety
    /// No CPU may write to the record while the returned slice is alive:
    /// not the panic owner (the panic section's writers, `message_writer`,
    /// `record_notifier`), not another CPU (`CpuSlot::record_stop`, the
    /// counters any CPU adds to). Atomic writes during the borrow would be
    /// a data race with the slice's plain reads. Use
    /// [`CrashRecord::snapshot`] when that cannot be guaranteed.
    pub unsafe fn as_bytes(&self) -> &[u8] {
        // SAFETY: the record is `#[repr(C)]` and made only of integers,
        // byte arrays, atomics of integers and `CpuSlot` (integers, an
        // `UnsafeCell<RegisterFrame>` of 21 `u64`s and an
        // `UnsafeCell<ControlRegisters>` of integers without padding);
        // `new` checks at
        // compile time that its size is the sum of its parts, so there is
        // no padding and every byte is initialised. The pointer and length
        // cover exactly `*self`, which outlives the slice. The caller
        // guarantees that no write (atomic or through `CpuSlot`'s frame
        // and control cells) happens while the slice lives, so its reads race nothing.
        unsafe {
            core::slice::from_raw_parts(core::ptr::from_ref(self).cast::<u8>(), size_of::<Self>())
        }
    }
}

/// Copy one CPU slot through `CpuSlot`'s public, atomic getters.
fn snapshot_cpu(put: &mut Writer<'_>, at: usize, slot: &CpuSlot) {
    // The state first (Acquire inside `state`), then what it publishes.
    // A value no writer stores cannot be read back (the getters decode);
    // it is written as `u32::MAX`, also undecodable.
    let state = slot.state();
    put.u32(at + cpu::STATE, state.map_or(u32::MAX, |s| s as u32));
    let path = slot.stop_path().map_or(u32::MAX, |p| p as u32);
    put.u32(at + cpu::STOP_PATH, path);
    put.u32(at + cpu::NMIS_SENT, slot.nmis_sent());
    put.u32(at + cpu::NMI_DEPTH, slot.nmi_depth());
    put.u64(at + cpu::FIRST_NMI_NS, slot.first_nmi_ns());
    put.u64(at + cpu::STOPPED_NS, slot.stopped_ns());
    if state.is_some_and(|s| s.has_registers())
        && let Some(frame) = slot.registers()
    {
        for (index, register) in frame.to_array().into_iter().enumerate() {
            put.u64(at + cpu::FRAME + index * 8, register);
        }
    }
    if let Some(control) = slot.control() {
        put.u32(at + cpu::CONTROL_VALID, control.valid);
        let registers = [
            control.cr0,
            control.cr2,
            control.cr3,
            control.cr4,
            control.efer,
            control.fs_base,
            control.gs_base,
            control.kernel_gs_base,
        ];
        for (index, register) in registers.into_iter().enumerate() {
            put.u64(at + cpu::CONTROL + index * 8, register);
        }
        let selectors = [control.ds, control.es, control.fs, control.gs];
        for (index, selector) in selectors.into_iter().enumerate() {
            put.u16(at + cpu::SELECTORS + index * 2, selector);
        }
    }
}

/// Stores native-endian values into a buffer checked to be large enough;
/// an out-of-range store (impossible by construction) is dropped.
struct Writer<'a> {
    out: &'a mut [u8],
}

impl Writer<'_> {
    fn bytes(&mut self, at: usize, bytes: &[u8]) {
        let range: Range<usize> = at..at.saturating_add(bytes.len());
        if let Some(target) = self.out.get_mut(range) {
            target.copy_from_slice(bytes);
        }
    }
    fn u16(&mut self, at: usize, value: u16) {
        self.bytes(at, &value.to_ne_bytes());
    }
    fn u32(&mut self, at: usize, value: u32) {
        self.bytes(at, &value.to_ne_bytes());
    }
    fn u64(&mut self, at: usize, value: u64) {
        self.bytes(at, &value.to_ne_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::offset_of;

    type Record = CrashRecord<3, 2>;

    #[test]
    fn layout_is_the_documented_one() {
        assert_eq!(offset_of!(RecordHeader, magic), header::MAGIC);
        assert_eq!(offset_of!(RecordHeader, version), header::VERSION);
        assert_eq!(offset_of!(RecordHeader, header_size), header::HEADER_SIZE);
        assert_eq!(offset_of!(RecordHeader, byte_order), header::BYTE_ORDER);
        assert_eq!(offset_of!(RecordHeader, total_size), header::TOTAL_SIZE);
        assert_eq!(
            offset_of!(RecordHeader, section_table_offset),
            header::SECTION_TABLE_OFFSET
        );
        assert_eq!(
            offset_of!(RecordHeader, section_entry_size),
            header::SECTION_ENTRY_SIZE
        );
        assert_eq!(
            offset_of!(RecordHeader, section_count),
            header::SECTION_COUNT
        );
        assert_eq!(offset_of!(RecordHeader, reserved), header::RESERVED);
        assert_eq!(offset_of!(RecordHeader, sections), header::SECTION_TABLE);
        assert_eq!(size_of::<RecordHeader>(), layout::HEADER_SIZE);
        use layout::section_entry as e;
        assert_eq!(offset_of!(SectionEntry, kind), e::KIND);
        assert_eq!(offset_of!(SectionEntry, offset), e::OFFSET);
        assert_eq!(offset_of!(SectionEntry, count), e::COUNT);
        assert_eq!(offset_of!(SectionEntry, slot_size), e::SLOT_SIZE);
        assert_eq!(size_of::<SectionEntry>(), layout::SECTION_ENTRY_SIZE);

        assert_eq!(offset_of!(Record, header), 0);
        assert_eq!(offset_of!(Record, panic), Record::PANIC_OFFSET);
        assert_eq!(offset_of!(Record, cpus), Record::CPUS_OFFSET);
        assert_eq!(offset_of!(Record, notifiers), Record::NOTIFIERS_OFFSET);
        assert_eq!(size_of::<Record>(), Record::TOTAL_SIZE);
        assert_eq!(offset_of!(Record, dump), Record::DUMP_OFFSET);
        assert_eq!(offset_of!(Record, exclusions), Record::EXCLUSIONS_OFFSET);
        assert_eq!(offset_of!(Record, log), Record::LOG_OFFSET);
        assert_eq!(
            Record::TOTAL_SIZE,
            128 + 728 + 3 * 280 + 2 * 80 + 248 + DEFAULT_EXCLUSIONS * 24 + 16
        );
        assert_eq!(core::mem::align_of::<Record>(), 8);
        // An empty table and an empty notifier list still lay out.
        assert_eq!(size_of::<CrashRecord<0, 0, 0>>(), 856 + 248 + 16);
    }

    #[test]
    fn a_quiet_snapshot_equals_the_memory() {
        let record = Record::new();
        record.panic().add_second_panicker();
        record.cpu_slots()[1]
            .record_stop(
                &crashkit_nmi::RegisterFrame {
                    rip: 0xdead,
                    ..Default::default()
                },
                &crashkit_nmi::ControlRegisters {
                    valid: crashkit_nmi::control::valid::CR3,
                    cr3: 0x7000,
                    ..crashkit_nmi::ControlRegisters::NONE
                },
                crate::StopPath::Nmi,
                1,
                5,
            )
            .unwrap();
        record
            .record_notifier(&NotifierEntry::new(
                crate::NotifierList::Hypervisor,
                crate::NotifierOutcome::Ran,
                1,
                2,
                "pvpanic",
            ))
            .unwrap();
        let mut copy = [0u8; Record::TOTAL_SIZE];
        assert_eq!(record.snapshot(&mut copy), Ok(Record::TOTAL_SIZE));
        // SAFETY: this thread is the only one that knows `record`; nothing
        // writes it while `memory` lives.
        let memory = unsafe { record.as_bytes() };
        assert_eq!(memory, &copy[..]);
        let mut small = [0u8; 10];
        assert_eq!(
            record.snapshot(&mut small),
            Err(SnapshotTooSmall {
                needed: Record::TOTAL_SIZE,
                available: 10
            })
        );
    }

    #[test]
    fn slots_out_of_range_are_none() {
        let record = Record::new();
        assert!(record.cpu_slot(CpuIndex(2)).is_some());
        assert!(record.cpu_slot(CpuIndex(3)).is_none());
        assert!(record.cpu_slot(CpuIndex(u32::MAX)).is_none());
        assert!(record.notifier(0).is_none(), "not recorded yet");
    }
}
