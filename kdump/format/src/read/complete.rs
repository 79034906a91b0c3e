//! Whether a dump is whole, in every format: [`Completeness`], and why a
//! dump is known incomplete ([`Incomplete`]).

/// Whether a dump is whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Completeness {
    /// crashkit's completion marker matches this dump: every page the
    /// writer meant to write is there.
    Complete,
    /// Known not to be whole, and why.
    Incomplete(Incomplete),
    /// The producer leaves no marker (QEMU, Linux) and nothing says the
    /// file is damaged.
    Unknown,
}

/// Why a dump is incomplete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Incomplete {
    /// `e_flags` bit 0 is set: the writer had not finished (crashkit,
    /// makedumpfile).
    FlagSet,
    /// A crashkit dump without a valid completion marker: the writer
    /// stopped, or the marker is damaged.
    NoMarker,
    /// The completion marker names another dump: a stale marker of an
    /// earlier dump in the same place.
    StaleMarker,
    /// The header checksum does not match the headers: they are not the
    /// ones the marker was written for (another tool rewrote them keeping
    /// crashkit's notes, an overwrite is in progress, or they are damaged).
    HeaderChecksum,
    /// The headers or notes are damaged (see [`ElfDump::damage`](crate::elf::reader::ElfDump::damage)), so
    /// whatever marker there was cannot be trusted or found.
    Damaged,
    /// A flattened stream ends without its end marker: the transfer or the
    /// writer stopped.
    StreamCut,
    /// The file is shorter than the dump: `len` bytes of `expected`.
    Truncated {
        /// The file's length.
        len: u64,
        /// The length the dump needs.
        expected: u64,
    },
}

impl core::fmt::Display for Completeness {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Complete => f.write_str("complete"),
            Self::Unknown => f.write_str("unknown (the producer writes no completion marker)"),
            Self::Incomplete(why) => {
                f.write_str("incomplete: ")?;
                match why {
                    Incomplete::FlagSet => f.write_str("the writer did not finish (e_flags bit 0)"),
                    Incomplete::NoMarker => f.write_str("no valid completion marker"),
                    Incomplete::StaleMarker => {
                        f.write_str("the completion marker belongs to another dump")
                    }
                    Incomplete::HeaderChecksum => f.write_str(
                        "the headers are not the ones the completion marker was written for \
                         (rewritten by another tool, or damaged)",
                    ),
                    Incomplete::Damaged => f.write_str("its headers or notes are damaged"),
                    Incomplete::StreamCut => {
                        f.write_str("the flattened stream ends without its end marker")
                    }
                    Incomplete::Truncated { len, expected } => {
                        write!(f, "the file is {len} bytes of {expected}")
                    }
                }
            }
        }
    }
}
