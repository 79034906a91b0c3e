//! The shootdown as the record stores it: each CPU's state and how it
//! stopped (CPU slots), and the owner's totals (the panic section).

code_enum! {
    /// Where a CPU is in the shootdown, as stored in the record's CPU slot (`u32`).
    pub enum CpuState {
        /// No shootdown has touched this CPU (a zeroed slot reads this way).
        Running = 0,
        /// The panic owner sent this CPU a stop NMI and waits for it.
        NmiSent = 1,
        /// The CPU saved its registers into the slot and parked for good.
        Stopped = 2,
        /// The deadline passed before the CPU answered.
        Unresponsive = 3,
        /// This CPU owns the panic; the slot holds the registers it panicked
        /// with.
        PanicOwner = 4,
        /// The record has a slot for this index, but the platform has no such
        /// CPU.
        Absent = 5,
    }
}

impl CpuState {
    /// Whether the slot's registers are valid in this state.
    pub const fn has_registers(self) -> bool {
        matches!(self, Self::Stopped | Self::PanicOwner)
    }
}

code_enum! {
    /// How a stopped CPU came to stop, as stored in the record's CPU slot (`u32`).
    pub enum StopPath {
        /// Not stopped (yet).
        None = 0,
        /// The shootdown's NMI handler ran on it.
        Nmi = 1,
        /// It was spinning inside an NMI-like context (NMIs blocked) and
        /// stopped itself through the shootdown's poll.
        Poll = 2,
    }
}

/// The shootdown's summary, as the panic section stores it (and the CLI's
/// `record --json` prints it, with the `serde` feature).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct ShootdownTotals {
    /// CPUs that stopped (saved their registers and parked).
    pub stopped: u32,
    /// CPUs that did not answer by the deadline.
    pub unresponsive: u32,
    /// Slots for CPU indices the platform does not have.
    pub absent: u32,
    /// Stop NMIs sent, first sends and resends.
    pub nmis_sent: u32,
    /// Of which resends to CPUs that had not answered.
    pub nmis_resent: u32,
    /// NMI sends the platform refused.
    pub send_errors: u32,
}
