//! A makedumpfile `--split` set checked as a whole.
//!
//! `makedumpfile --split` writes one dump as N files: each carries the
//! whole dump's headers, notes and both bitmaps, and the descriptors and
//! pages of one frame range (`start_pfn_64..end_pfn_64` of its sub-header).
//! A set is whole when its parts are of one dump (the same header, notes
//! and bitmaps; the sub-headers differ only in the range) and their ranges
//! tile `[0, max_mapnr)` without gap or overlap. [`check_set`] says which
//! part is foreign, doubled or missing, as `makedumpfile --reassemble`
//! refuses such sets.

use alloc::vec::Vec;
use core::fmt;

use super::reader::KdumpDump;

/// What is wrong with a set of parts (indexes are positions in the slice
/// given to [`check_set`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetProblem {
    /// Part `part` is not of the same dump as part `first`: its `what`
    /// differs.
    Foreign {
        /// The part.
        part: usize,
        /// The first part, the set's reference.
        first: usize,
        /// What differs (header, sub-header, notes, bitmaps).
        what: &'static str,
    },
    /// Part `part` is a whole dump, not a split part, given with others.
    NotSplit {
        /// The part.
        part: usize,
    },
    /// Part `part` holds the same frames as part `of`: given twice.
    Doubled {
        /// The later one.
        part: usize,
        /// The earlier one.
        of: usize,
    },
    /// Parts `part` and `other` hold overlapping frame ranges.
    Overlap {
        /// The later-starting one.
        part: usize,
        /// The other.
        other: usize,
    },
    /// Frames `start..end` are in no part given: their part is missing.
    Missing {
        /// First frame.
        start: u64,
        /// End frame (exclusive).
        end: u64,
    },
}

impl fmt::Display for SetProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Foreign { part, first, what } => write!(
                f,
                "part {} is not of the same dump as part {}: its {what} differs",
                part + 1,
                first + 1
            ),
            Self::NotSplit { part } => {
                write!(
                    f,
                    "part {} is a whole dump, not a part of a split one",
                    part + 1
                )
            }
            Self::Doubled { part, of } => {
                write!(
                    f,
                    "part {} is part {} again (the same frames)",
                    part + 1,
                    of + 1
                )
            }
            Self::Overlap { part, other } => write!(
                f,
                "parts {} and {} hold overlapping frames",
                other + 1,
                part + 1
            ),
            Self::Missing { start, end } => write!(
                f,
                "frames {start:#x}..{end:#x} are in a part not given (a part is missing)"
            ),
        }
    }
}

/// Check `parts` as one split dump: an empty list when they are a whole
/// set, or when there is one part that is a whole dump.
pub fn check_set(parts: &[KdumpDump<'_>]) -> Vec<SetProblem> {
    let mut problems = Vec::new();
    let Some(first) = parts.first() else {
        return problems;
    };
    let split = |part: &KdumpDump<'_>| part.sub_header().split != 0;
    if parts.len() == 1 && !split(first) {
        return problems;
    }
    // Which parts are of the first one's dump (one entry per file the
    // caller opened, not a count read from a file).
    let mut same = Vec::with_capacity(parts.len());
    for (index, part) in parts.iter().enumerate() {
        if !split(part) {
            problems.push(SetProblem::NotSplit { part: index });
            same.push(false);
            continue;
        }
        match difference(first, part) {
            Some(what) => {
                problems.push(SetProblem::Foreign {
                    part: index,
                    first: 0,
                    what,
                });
                same.push(false);
            }
            None => same.push(true),
        }
    }
    // The ranges of the parts of that dump, in frame order.
    let mut ranges: Vec<(u64, u64, usize)> = parts
        .iter()
        .enumerate()
        .filter(|(index, _)| same.get(*index).copied().unwrap_or(false))
        .map(|(index, part)| {
            let (start, end) = part.part();
            (start, end, index)
        })
        .collect();
    ranges.sort_unstable();
    let mut covered = 0u64;
    let mut previous: Option<(u64, u64, usize)> = None;
    for &(start, end, index) in &ranges {
        if let Some((p_start, p_end, p_index)) = previous {
            if (p_start, p_end) == (start, end) {
                problems.push(SetProblem::Doubled {
                    part: index,
                    of: p_index,
                });
                continue;
            }
            if start < covered {
                problems.push(SetProblem::Overlap {
                    part: index,
                    other: p_index,
                });
            }
        }
        if start > covered {
            problems.push(SetProblem::Missing {
                start: covered,
                end: start,
            });
        }
        covered = covered.max(end);
        previous = Some((start, end, index));
    }
    let frames = first.frames();
    if covered < frames {
        problems.push(SetProblem::Missing {
            start: covered,
            end: frames,
        });
    }
    problems
}

/// What makes `part` another dump than `first`, if anything: the header,
/// the sub-header but its range fields, the notes or the bitmaps.
fn difference(first: &KdumpDump<'_>, part: &KdumpDump<'_>) -> Option<&'static str> {
    if first.header().encode() != part.header().encode() {
        return Some("header");
    }
    let without_range = |dump: &KdumpDump<'_>| {
        let mut sub = *dump.sub_header();
        sub.start_pfn = 0;
        sub.end_pfn = 0;
        sub.start_pfn_64 = 0;
        sub.end_pfn_64 = 0;
        sub.encode()
    };
    if without_range(first) != without_range(part) {
        return Some("sub-header");
    }
    if first.notes_region_bytes() != part.notes_region_bytes() {
        return Some("notes");
    }
    if first.bitmaps() != part.bitmaps() {
        return Some("bitmaps");
    }
    None
}
