//! Physical memory of an opened ELF dump: the segment index and page
//! reads.
//!
//! A physical address is in one of five states ([`PageState`]). Segments
//! are indexed by physical start with a running maximum of their ends, so a
//! lookup is a binary search plus a backward walk over the segments that
//! overlap the address (none, one, or two with Linux's kernel text).

use alloc::vec::Vec;

use super::{ElfDump, Segment};
use crate::elf::ProgramHeader;
use crate::read::{Damage, DamageKind, PageCounts, PageState, Span, Unreadable};

/// Check one PT_LOAD; `None` (with damage) if it cannot be used at all.
pub(super) fn check_segment(
    index: u32,
    header_offset: u64,
    ph: &ProgramHeader,
    file_len: u64,
    damage: &mut Vec<Damage>,
) -> Option<Segment> {
    let filesz = ph.p_filesz;
    let mut memsz = ph.p_memsz;
    if filesz > memsz {
        damage.push(Damage {
            offset: header_offset,
            kind: DamageKind::FileSizeAboveMemorySize { index },
        });
        memsz = filesz;
    }
    let wraps =
        ph.p_offset.checked_add(filesz).is_none() || ph.p_paddr.checked_add(memsz).is_none();
    if wraps {
        damage.push(Damage {
            offset: header_offset,
            kind: DamageKind::SegmentWraps { index },
        });
        return None;
    }
    let in_file = file_len.saturating_sub(ph.p_offset).min(filesz);
    if in_file < filesz {
        damage.push(Damage {
            offset: header_offset,
            kind: DamageKind::SegmentPastEnd {
                index,
                missing: filesz - in_file,
            },
        });
    }
    Some(Segment {
        index,
        paddr: ph.p_paddr,
        vaddr: ph.p_vaddr,
        offset: ph.p_offset,
        filesz,
        memsz,
        flags: ph.p_flags,
        in_file,
    })
}

/// How many earlier segments are compared with each for conflicts.
const CONFLICT_SCAN: usize = 64;

/// Segments ordered by physical start, with the running maximum end.
#[derive(Debug, Default)]
pub(super) struct SegmentIndex {
    /// Positions in the segment vector, by `(paddr, index)`.
    order: Vec<u32>,
    /// `max_end[i]` = the largest `paddr + memsz` of `order[..=i]`.
    max_end: Vec<u64>,
}

impl SegmentIndex {
    /// Index `segments`, dropping exact duplicates and reporting conflicts.
    pub fn build(segments: &[Segment], phoff: u64, damage: &mut Vec<Damage>) -> Self {
        let header_offset = |index: u32| {
            phoff.saturating_add(u64::from(index) * crate::elf::PROGRAM_HEADER_SIZE as u64)
        };
        let mut order: Vec<u32> = (0..segments.len() as u32).collect();
        let key = |position: &u32| {
            segments
                .get(*position as usize)
                .map_or((u64::MAX, u32::MAX), |s| (s.paddr, s.index))
        };
        order.sort_unstable_by_key(key);
        // Drop exact duplicates (same addresses, sizes and file bytes).
        let mut dropped = Vec::new();
        for pair in order.windows(2) {
            let (Some(a), Some(b)) = (
                segments.get(pair[0] as usize),
                segments.get(pair[1] as usize),
            ) else {
                continue;
            };
            let same = (a.paddr, a.vaddr, a.offset, a.filesz, a.memsz)
                == (b.paddr, b.vaddr, b.offset, b.filesz, b.memsz);
            if same {
                damage.push(Damage {
                    offset: header_offset(b.index),
                    kind: DamageKind::DuplicateSegment {
                        index: b.index,
                        of: a.index,
                    },
                });
                dropped.push(pair[1]);
            }
        }
        order.retain(|position| !dropped.contains(position));
        let mut max_end = Vec::with_capacity(order.len());
        let mut running = 0u64;
        for position in &order {
            if let Some(segment) = segments.get(*position as usize) {
                running = running.max(segment.paddr + segment.memsz);
            }
            max_end.push(running);
        }
        let index = Self { order, max_end };
        for (i, position) in index.order.iter().enumerate() {
            let Some(segment) = segments.get(*position as usize) else {
                continue;
            };
            // A conflict: an earlier-starting segment that still covers
            // this one's start, with the same virtual mapping but other
            // file bytes (a report, not a rule: the lookup does not depend
            // on it).
            let conflict = index.earlier(segments, i, segment.paddr).find(|other| {
                other.paddr + other.memsz > segment.paddr
                    && other.vaddr.wrapping_sub(other.paddr)
                        == segment.vaddr.wrapping_sub(segment.paddr)
                    && other.offset.wrapping_sub(other.paddr)
                        != segment.offset.wrapping_sub(segment.paddr)
            });
            if let Some(other) = conflict {
                damage.push(Damage {
                    offset: header_offset(segment.index),
                    kind: DamageKind::ConflictingSegments {
                        index: segment.index,
                        other: other.index,
                    },
                });
            }
        }
        index
    }

    /// The segments before position `i` in start order that may still
    /// cover `paddr` (the running maximum end passes it), nearest first;
    /// the closest [`CONFLICT_SCAN`] only, so a check over all segments
    /// stays linear.
    fn earlier<'s>(
        &'s self,
        segments: &'s [Segment],
        i: usize,
        paddr: u64,
    ) -> impl Iterator<Item = &'s Segment> + 's {
        (0..i)
            .rev()
            .take(CONFLICT_SCAN)
            .take_while(move |&j| self.max_end.get(j).is_some_and(|end| *end > paddr))
            .filter_map(|j| self.order.get(j).and_then(|p| segments.get(*p as usize)))
    }

    /// The segment covering `addr`: the earliest (by start, then program
    /// header index) whose bytes in the file cover it, else the earliest
    /// whose memory size covers it. So in a cut file a page that two
    /// segments hold (Linux's kernel text and direct map) is read from the
    /// one that is whole there.
    fn find<'s>(&self, segments: &'s [Segment], addr: u64) -> Option<&'s Segment> {
        let after = self
            .order
            .partition_point(|p| segments.get(*p as usize).is_some_and(|s| s.paddr <= addr));
        let mut best: Option<&Segment> = None;
        for i in (0..after).rev() {
            if self.max_end.get(i).is_none_or(|end| *end <= addr) {
                break;
            }
            let Some(segment) = self.order.get(i).and_then(|p| segments.get(*p as usize)) else {
                continue;
            };
            let rel = addr - segment.paddr;
            if rel >= segment.memsz {
                continue;
            }
            let has_bytes = |s: &Segment| addr - s.paddr < s.in_file;
            best = match best {
                Some(current) if has_bytes(current) && !has_bytes(segment) => Some(current),
                _ => Some(segment),
            };
        }
        best
    }

    /// The first segment start above `addr`.
    fn next_start(&self, segments: &[Segment], addr: u64) -> Option<u64> {
        let after = self
            .order
            .partition_point(|p| segments.get(*p as usize).is_some_and(|s| s.paddr <= addr));
        self.order
            .get(after)
            .and_then(|p| segments.get(*p as usize))
            .map(|s| s.paddr)
    }
}

impl ElfDump<'_> {
    /// Segments that map the same physical memory from file bytes that
    /// differ ([`DamageKind::OverlapDiffers`]), found by comparing the
    /// bytes both hold in the file. Linux's kernel-text segment maps pages
    /// of the direct-map segment again and must hold the same bytes; two
    /// segments that disagree make every read of those pages a guess.
    /// This reads page data, so [`ElfDump::parse`] does not do it: the cost
    /// is one comparison of the overlapping bytes (a kernel image's size in
    /// a Linux dump). Each segment is compared with the closest earlier
    /// ones, as the conflict check at opening is.
    pub fn overlap_damage(&self) -> Vec<Damage> {
        let mut found = Vec::new();
        let order = &self.index.order;
        for (i, position) in order.iter().enumerate() {
            let Some(segment) = self.segments.get(*position as usize) else {
                continue;
            };
            let earlier = self.index.earlier(&self.segments, i, segment.paddr);
            for other in earlier {
                // Both segments' bytes in the file, over their common
                // physical range.
                let start = segment.paddr.max(other.paddr);
                let end = (segment.paddr + segment.in_file).min(other.paddr + other.in_file);
                if start >= end
                    || segment.offset.wrapping_sub(segment.paddr)
                        == other.offset.wrapping_sub(other.paddr)
                {
                    continue;
                }
                let len = end - start;
                let bytes = |s: &Segment| {
                    crate::bytes::slice_at(self.data, s.offset + (start - s.paddr), len)
                };
                let (Some(mine), Some(theirs)) = (bytes(segment), bytes(other)) else {
                    continue;
                };
                if let Some(at) = mine.iter().zip(theirs).position(|(a, b)| a != b) {
                    found.push(Damage {
                        offset: segment.offset + (start - segment.paddr) + at as u64,
                        kind: DamageKind::OverlapDiffers {
                            index: segment.index,
                            other: other.index,
                            paddr: start + at as u64,
                        },
                    });
                }
            }
        }
        found
    }

    /// Pages per state from address 0 to the end of the highest segment or
    /// memory-map range: one step per run of one state, so the cost is
    /// that of the program headers and the memory map, not of the memory.
    pub fn page_counts(&self) -> PageCounts {
        let mut end = self
            .segments
            .iter()
            .filter_map(|s| s.paddr.checked_add(s.memsz))
            .max()
            .unwrap_or(0);
        if let Some(crashkit) = self.crashkit() {
            for range in &crashkit.memory_map {
                end = end.max(range.end().unwrap_or(u64::MAX));
            }
        }
        // Bytes per state first (spans need not be page aligned in a
        // foreign dump), pages at the end, a partial page counted whole.
        let mut bytes = PageCounts::default();
        let mut addr = 0u64;
        // Each span runs to the next state change: a few spans per segment
        // and map range, so the walk is bounded by the metadata.
        while addr < end {
            let span = self.classify(addr);
            let len = span.len.min(end - addr).max(1);
            bytes.add(span.state, len);
            addr = addr.saturating_add(len);
        }
        let pages = |b: u64| b.div_ceil(crate::PAGE_SIZE);
        PageCounts {
            present: pages(bytes.present),
            zero: pages(bytes.zero),
            excluded: pages(bytes.excluded),
            hole: pages(bytes.hole),
            lost: pages(bytes.lost),
            in_other_parts: 0,
        }
    }

    /// The state of physical address `addr` and how far it lasts.
    pub fn classify(&self, addr: u64) -> Span {
        if let Some(segment) = self.index.find(&self.segments, addr) {
            let rel = addr - segment.paddr;
            if rel < segment.in_file {
                return Span {
                    state: PageState::Present,
                    len: segment.in_file - rel,
                    file_offset: Some(segment.offset + rel),
                };
            }
            if rel < segment.filesz {
                return Span {
                    state: PageState::Lost,
                    len: segment.filesz - rel,
                    file_offset: None,
                };
            }
            let zero_tails = self.crashkit_segments_trusted()
                && self.crashkit().is_some_and(|c| {
                    c.identity.flags & crate::notes::crashkit::FLAG_ZERO_TAILS != 0
                });
            return Span {
                state: if zero_tails {
                    PageState::Zero
                } else {
                    PageState::Excluded
                },
                len: segment.memsz - rel,
                file_offset: None,
            };
        }
        let next = self.index.next_start(&self.segments, addr);
        let until = |end: u64| end.saturating_sub(addr).max(1);
        let mut hole_end = next.unwrap_or(u64::MAX);
        if let Some(crashkit) = self.crashkit() {
            // The map is sorted and without overlap (the parser keeps only
            // such a prefix): the first range ending after `addr` either
            // holds it or starts the next excluded run.
            let map = &crashkit.memory_map;
            let index = map.partition_point(|r| r.end().is_some_and(|end| end <= addr));
            if let Some(range) = map.get(index) {
                let end = range.end().unwrap_or(u64::MAX);
                if range.start <= addr {
                    let (state, until_state) = match self.lost_from {
                        Some(from) if addr >= from => (PageState::Lost, end),
                        Some(from) => (PageState::Excluded, end.min(from)),
                        None => (PageState::Excluded, end),
                    };
                    return Span {
                        state,
                        len: until(until_state.min(hole_end)),
                        file_offset: None,
                    };
                }
                hole_end = hole_end.min(range.start);
            }
        }
        Span {
            state: PageState::Hole,
            len: until(hole_end),
            file_offset: None,
        }
    }

    /// Read physical memory at `addr` into `buf`: present bytes are copied,
    /// zero pages give zeros; the first address in any other state stops
    /// the read with [`Unreadable`] (what was before it is in `buf`).
    pub fn read_phys(&self, addr: u64, buf: &mut [u8]) -> Result<(), Unreadable> {
        let mut done = 0usize;
        while done < buf.len() {
            let at = addr.wrapping_add(done as u64);
            let span = self.classify(at);
            let want = buf.len() - done;
            let step = usize::try_from(span.len).map_or(want, |len| len.min(want));
            let Some(dst) = buf.get_mut(done..done + step) else {
                break;
            };
            match (span.state, span.file_offset) {
                (PageState::Present, Some(offset)) => {
                    let src = crate::bytes::slice_at(self.data, offset, step as u64);
                    let Some(src) = src else {
                        return Err(Unreadable {
                            addr: at,
                            state: PageState::Lost,
                        });
                    };
                    dst.copy_from_slice(src);
                }
                (PageState::Zero, _) => dst.fill(0),
                (state, _) => return Err(Unreadable { addr: at, state }),
            }
            done += step;
        }
        Ok(())
    }
}
