//! What a dump holds for each physical address, in every format: the page
//! states, their counts, runs of one state, and the error of a read that
//! meets a page the dump does not have.

/// What a dump holds for a physical address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PageState {
    /// The bytes are in the file.
    Present,
    /// Known to be zero and not stored (crashkit's zero tails).
    Zero,
    /// Deliberately left out (a secret, a filtered page, makedumpfile
    /// `-E`'s `p_memsz > p_filesz`): the content is unknown.
    Excluded,
    /// Not memory the dump covers.
    Hole,
    /// Meant to be in the dump but not there: the file is cut short, or the
    /// writer stopped before it.
    Lost,
    /// Its data is in the file but does not decode to one page (a
    /// kdump-compressed page that is malformed or the wrong size).
    Corrupt,
    /// Dumpable, but in another part of a split dump: this file holds no
    /// descriptor for it (a part not given to the reader, not a page lost).
    InOtherPart,
}

/// How many pages of a dump are in each state, from its metadata alone
/// (no page data is read), up to the highest page the dump describes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageCounts {
    /// In the file (for a kdump-compressed dump: dumpable, with a
    /// descriptor).
    pub present: u64,
    /// Known zero, not stored (crashkit's ELF zero tails).
    pub zero: u64,
    /// Deliberately left out.
    pub excluded: u64,
    /// Not memory, below the highest page described.
    pub hole: u64,
    /// Meant to be in the dump, not there.
    pub lost: u64,
    /// In parts of a split dump that were not given.
    pub in_other_parts: u64,
}

impl PageCounts {
    /// Add `n` (pages, or bytes while counting) in `state` (corrupt pages
    /// are found only by decoding; metadata counts them as present).
    pub fn add(&mut self, state: PageState, n: u64) {
        let slot = match state {
            PageState::Present | PageState::Corrupt => &mut self.present,
            PageState::Zero => &mut self.zero,
            PageState::Excluded => &mut self.excluded,
            PageState::Hole => &mut self.hole,
            PageState::Lost => &mut self.lost,
            PageState::InOtherPart => &mut self.in_other_parts,
        };
        *slot = slot.saturating_add(n);
    }
}

impl PageState {
    /// A short lowercase name for output.
    pub fn name(self) -> &'static str {
        match self {
            Self::Present => "present",
            Self::Zero => "zero",
            Self::Excluded => "excluded",
            Self::Hole => "hole",
            Self::Lost => "lost",
            Self::Corrupt => "corrupt",
            Self::InOtherPart => "in a part not given",
        }
    }
}

/// A run of addresses in one state, from the address asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    /// The state.
    pub state: PageState,
    /// Bytes from the address in this state (at least 1).
    pub len: u64,
    /// For [`PageState::Present`], the file offset of the first byte.
    pub file_offset: Option<u64>,
}

/// A read that met an address whose bytes the dump does not have.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unreadable {
    /// The first such address.
    pub addr: u64,
    /// Its state.
    pub state: PageState,
}

impl core::fmt::Display for Unreadable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "physical address {:#x} is {} in this dump",
            self.addr,
            self.state.name()
        )
    }
}

impl core::error::Error for Unreadable {}
