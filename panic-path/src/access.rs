//! What the panic path needs of the crash record and of the notifier
//! registry, as traits implemented for every size of either: both are
//! generic over their capacities, and the [`Kernel`](crate::Kernel) trait
//! cannot name a type with a const parameter of its own.

use crashkit_notifiers::{
    ListSummary, NotifierList, NotifierRecorder, PanicInputs, Registry, Resumed, RunError,
};
use crashkit_record::{CpuSlot, CrashRecord, DumpSection, Full, NotifierEntry, PanicSection};

/// The crash record as the panic path writes it.
pub trait CrashLog: Sync + 'static {
    /// The panic section.
    fn panic_section(&self) -> &PanicSection;
    /// The CPU slots.
    fn cpu_slots(&self) -> &[CpuSlot];
    /// Append one notifier outcome.
    fn record_notifier(&self, entry: &NotifierEntry<'_>) -> Result<(), Full>;
    /// The dump section (which writer wrote the dump; the dump path's).
    fn dump_section(&self) -> &DumpSection;
    /// Copy the record into `out` as a dump would hold it; the bytes
    /// written, `None` if `out` is too small.
    fn snapshot_into(&self, out: &mut [u8]) -> Option<usize>;
    /// The record's address and size in the kernel's memory.
    fn span(&self) -> (usize, usize);
}

impl<const CPUS: usize, const NOTIFIERS: usize, const EXCLUSIONS: usize> CrashLog
    for CrashRecord<CPUS, NOTIFIERS, EXCLUSIONS>
{
    fn panic_section(&self) -> &PanicSection {
        self.panic()
    }

    fn cpu_slots(&self) -> &[CpuSlot] {
        CrashRecord::cpu_slots(self)
    }

    fn record_notifier(&self, entry: &NotifierEntry<'_>) -> Result<(), Full> {
        CrashRecord::record_notifier(self, entry)
    }

    fn dump_section(&self) -> &DumpSection {
        self.dump()
    }

    fn snapshot_into(&self, out: &mut [u8]) -> Option<usize> {
        self.snapshot(out).ok()
    }

    fn span(&self) -> (usize, usize) {
        (core::ptr::from_ref(self) as usize, Self::TOTAL_SIZE)
    }
}

/// The notifier registry as the panic path runs it.
pub trait NotifierLists: Sync + 'static {
    /// Run one list.
    fn run_list(
        &self,
        list: NotifierList,
        inputs: &PanicInputs<'_>,
        recorder: &mut dyn NotifierRecorder,
    ) -> Result<ListSummary, RunError>;
    /// Finish a list whose run a panic interrupted.
    fn resume(&self, inputs: &PanicInputs<'_>, recorder: &mut dyn NotifierRecorder) -> Resumed;
}

/// Lets a `&mut dyn NotifierRecorder` go where the registry wants an
/// `impl NotifierRecorder`.
struct Forward<'r>(&'r mut dyn NotifierRecorder);

impl NotifierRecorder for Forward<'_> {
    fn record(&mut self, report: &crashkit_notifiers::NotifierReport) {
        self.0.record(report);
    }
}

impl<const N: usize> NotifierLists for Registry<N> {
    fn run_list(
        &self,
        list: NotifierList,
        inputs: &PanicInputs<'_>,
        recorder: &mut dyn NotifierRecorder,
    ) -> Result<ListSummary, RunError> {
        Registry::run_list(self, list, inputs, &mut Forward(recorder))
    }

    fn resume(&self, inputs: &PanicInputs<'_>, recorder: &mut dyn NotifierRecorder) -> Resumed {
        Registry::resume(self, inputs, &mut Forward(recorder))
    }
}
