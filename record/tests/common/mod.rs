//! Shared by the record's integration tests: a record filled through the
//! whole writer API, and byte-patching helpers for the parser tests.

#![allow(dead_code)] // each test file uses a different part

use core::fmt::Write;

use crashkit_nmi::{ControlRegisters, CpuIndex, RegisterFrame};
use crashkit_record::{
    ChangedKind, CrashRecord, DumpOutcome, DumpResult, FallbackReason, FinalAction, NotifierEntry,
    NotifierList, NotifierOutcome, PanicPhase, PhaseStamp, ShootdownTotals, Skipped, StopPath,
};

/// The record the tests fill: 4 CPUs, 3 notifier slots.
pub type Record = CrashRecord<4, 3>;

/// The panic message the filled record holds.
pub const MESSAGE: &str = "kernel panic at src/mm.rs:42: out of memory (é€😀)";

/// A frame whose registers are `base + position` (position in pr_reg order).
pub fn frame(base: u64) -> RegisterFrame {
    let mut regs = [0u64; 21];
    for (i, r) in regs.iter_mut().enumerate() {
        *r = base + i as u64;
    }
    RegisterFrame::from_array(regs)
}

/// A control state with every register valid, each `base` plus its index
/// (CR0 = base, CR2 = base + 1, ..., selectors base + 8 onwards).
pub fn control(base: u64) -> ControlRegisters {
    ControlRegisters {
        valid: crashkit_nmi::control::valid::ALL,
        reserved: 0,
        cr0: base,
        cr2: base + 1,
        cr3: base + 2,
        cr4: base + 3,
        efer: base + 4,
        fs_base: base + 5,
        gs_base: base + 6,
        kernel_gs_base: base + 7,
        ds: (base + 8) as u16,
        es: (base + 9) as u16,
        fs: (base + 10) as u16,
        gs: (base + 11) as u16,
    }
}

/// The shootdown totals the filled record holds.
pub const TOTALS: ShootdownTotals = ShootdownTotals {
    stopped: 1,
    unresponsive: 1,
    absent: 1,
    nmis_sent: 5,
    nmis_resent: 3,
    send_errors: 2,
};

/// Fill every part of `record` through the writer API.
///
/// CPU 0 stopped through an NMI, CPU 1 unresponsive, CPU 2 the owner,
/// CPU 3 absent; four notifier outcomes for three slots (one dropped), one
/// with an outcome code this crate does not know (77).
pub fn fill(record: &Record) {
    let panic = record.panic();
    for (i, &which) in PhaseStamp::ALL.iter().enumerate() {
        panic.stamp(which, 1_000 * (i as u64 + 1));
    }
    panic.set_owner(CpuIndex(2));
    panic.set_phase(PanicPhase::Claimed);
    let mut message = panic.message_writer();
    let (file, line) = ("src/mm.rs", 42);
    write!(message, "kernel panic at {file}:{line}: ").unwrap();
    write!(message, "out of memory (é€😀)").unwrap();
    let slots = record.cpu_slots();
    slots[2]
        .record_owner(&frame(0x2000), &control(0x2000), 0, 1_500)
        .unwrap();
    panic.set_phase(PanicPhase::StoppingCpus);
    assert!(slots[0].mark_nmi_sent(2_000));
    slots[0]
        .record_stop(&frame(0x1000), &control(0x1000), StopPath::Nmi, 2, 2_100)
        .unwrap();
    assert!(slots[1].mark_nmi_sent(2_000));
    slots[1].count_nmi_sent();
    assert!(slots[1].mark_unresponsive());
    assert!(slots[3].mark_absent());
    panic.record_shootdown(&TOTALS);
    panic.set_phase(PanicPhase::Notifiers);
    let entries = [
        NotifierEntry::new(
            NotifierList::Hypervisor,
            NotifierOutcome::Ran,
            10,
            111,
            "pvpanic",
        ),
        NotifierEntry::new(
            NotifierList::PreDump,
            NotifierOutcome::SkippedLockBusy,
            -5,
            0,
            "dma-quiesce",
        ),
        NotifierEntry {
            list: NotifierList::PostDump as u32,
            outcome: 77,
            priority: i32::MIN,
            duration_ns: u64::MAX,
            name: "future",
        },
        NotifierEntry::new(
            NotifierList::PostDump,
            NotifierOutcome::Ran,
            0,
            1,
            "dropped",
        ),
    ];
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(record.record_notifier(entry).is_ok(), i < 3);
    }
    panic
        .record_escalation(PanicPhase::Notifiers, Skipped::NOTIFIER, 3_333)
        .unwrap();
    panic.add_reentry();
    panic.set_phase(PanicPhase::DumpHandover);
    // A secret registered, one registered and removed (its slot is then
    // reused by the third).
    let secret = record.exclude(0x20_0000, 0x3000).unwrap();
    assert_eq!(secret.slot(), 0);
    let gone = record.exclude(0x30_0000, 0x1000).unwrap();
    assert!(record.include_again(gone));
    let _kept = record.exclude(0x40_0000, 0x10).unwrap();
    let dump = record.dump();
    dump.choose_in_place(FallbackReason::ImageChanged, 3, 4_000);
    dump.add_changed(0x7000, 0x4000, ChangedKind::Stack, false)
        .unwrap();
    dump.add_changed(0x9_0000, 0x6_0000, ChangedKind::WriterState, true)
        .unwrap();
    dump.finish(DumpOutcome::Complete, 1234, 0x10_0000, 4_500);
    panic.set_dump_result(DumpResult::Failed, 0x22);
    panic.set_phase(PanicPhase::FinalAction);
    panic.set_final_action(FinalAction::Halt);
    panic.set_phase(PanicPhase::Halted);
    for _ in 0..3 {
        panic.add_second_panicker();
    }
    panic.add_qspinlock_fallback();
    for _ in 0..4 {
        panic.add_panic_lock_break();
    }
}

/// The bytes of a freshly filled record.
pub fn filled_bytes() -> Vec<u8> {
    let record = Record::new();
    fill(&record);
    let mut bytes = vec![0u8; Record::TOTAL_SIZE];
    record.snapshot(&mut bytes).unwrap();
    bytes
}

/// Little-endian stores (the tests run on x86_64).
pub fn put_u16(bytes: &mut [u8], at: usize, value: u16) {
    bytes[at..at + 2].copy_from_slice(&value.to_le_bytes());
}

/// See [`put_u16`].
pub fn put_u32(bytes: &mut [u8], at: usize, value: u32) {
    bytes[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// See [`put_u16`].
pub fn get_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

/// A tiny deterministic PRNG (xorshift64*), so mutation runs repeat.
pub struct Prng(u64);

impl Prng {
    /// Seeded; a zero seed is replaced (xorshift's fixed point).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..bound` (`bound > 0`).
    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}
