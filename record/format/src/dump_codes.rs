//! The codes of the dump section (`docs/crash-record.md`, "Dump section"):
//! which writer wrote the dump, why the in-place writer ran, how the
//! writing ended, and what the writer kept in the memory it changed.

code_enum! {
    /// Which writer the dump path chose (`path`).
    ///
    /// | from | to | when |
    /// |------|----|------|
    /// | `None` | `CaptureKernel` | just before the jump to the capture kernel |
    /// | `None`, `CaptureKernel` | `InPlace` | the hand-over returned (nothing armed, or its checks failed) and an in-place writer is configured |
    pub enum DumpPath {
        /// The dump path has not chosen (or no dump path is configured).
        None = 0,
        /// Control went to the capture kernel, which writes the dump.
        CaptureKernel = 1,
        /// The crashed kernel writes the dump itself, with no allocator.
        InPlace = 2,
    }
}

code_enum! {
    /// Why the in-place writer ran (`reason`).
    pub enum FallbackReason {
        /// Not the in-place writer.
        None = 0,
        /// No capture kernel was loaded.
        NoCaptureKernel = 1,
        /// The capture image's SHA-256 no longer matches the one taken at
        /// load time (memory corruption reached it).
        ImageChanged = 2,
        /// The control area (hand-over block, memory map, page tables)
        /// failed its CRC-32C.
        ControlAreaChanged = 3,
        /// The hand-over refused for another reason (`handover_error`).
        HandOverRefused = 4,
    }
}

code_enum! {
    /// How the in-place writer's work ended (`outcome`, and the panic
    /// section's `dump_detail` when `dump_result` is `WrittenInPlace`).
    pub enum DumpOutcome {
        /// Not started, or still writing (a dump's own copy of the record
        /// is taken before the writing starts, so it always says this).
        Running = 0,
        /// The dump is complete on the device.
        Complete = 1,
        /// The device was too small: the dump is marked incomplete.
        DidNotFit = 2,
        /// The device failed part way: the dump on it reads as torn.
        DeviceFailed = 3,
        /// No device: no dump written.
        NoDevice = 4,
        /// The device is too small for the layout's headers: nothing
        /// written.
        DeviceTooSmall = 5,
        /// The writer refused its inputs (a memory map or exclusion list
        /// that does not check): nothing written past the leading header.
        Refused = 6,
        /// The writer's state was taken already (the panic path re-entered
        /// during the writing): not run twice.
        Busy = 7,
    }
}

code_enum! {
    /// What the in-place writer keeps in a range it changes (a `changed`
    /// entry's `kind`).
    pub enum ChangedKind {
        /// The panicking CPU's stack below the point where the writer
        /// started (its frames, at most the stated budget).
        Stack = 1,
        /// The crash record (the dump section's own fields).
        Record = 2,
        /// The writer's own state: buffers, codec state, the device's
        /// queues. It held nothing at the crash and is left out of the dump.
        WriterState = 3,
    }
}
