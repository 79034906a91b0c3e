//! A zlib encoder for 4 KiB pages, written here: makedumpfile `-c` pages
//! (`compress2` output: a zlib stream per page) at several times zlib's
//! speed, for the capture kernel and the in-place fallback (no allocation,
//! no `unsafe`, the whole state in one value).
//!
//! One page makes one zlib stream (RFC 1950: header `78 01`, one final
//! deflate block, Adler-32) holding one deflate block (RFC 1951), dynamic
//! or fixed Huffman, whichever is smaller. The design is the usual one for
//! fast deflate on small inputs:
//! - matches: a greedy pass over the page with a hash table of 4-byte
//!   sequences, two candidates per bucket (the longer match wins), matches
//!   of 4 to 258 bytes; the page is copied into a padded buffer so that
//!   every read is provably in bounds (see [`super::matcher`]); positions
//!   inside short matches are hashed too, so the next match finds them;
//!   entries carry the page's number, so the table is cleared only once
//!   every 15 pages;
//! - symbols are recorded and counted in the same pass, then the codes are
//!   built (`huffman.rs`) and the block's exact size is known before a bit
//!   is written: a page that would not shrink is given up at once (the
//!   writer stores it raw);
//! - bits go out through a 64-bit accumulator, 32 bits at a time.

mod adler;
mod bits;
mod huffman;
mod symbols;

use super::matcher::{common_length, load32};
use adler::adler32;
use bits::Bits;
use symbols::{distance_code, distance_extra, fixed_litlen_length, length_code, length_extra};

use crate::PAGE_SIZE;

const PAGE: usize = PAGE_SIZE as usize;
/// Spare bytes after the page copy: an 8-byte read at any position stays
/// inside.
const SPARE: usize = 8;
/// Hash table: 2^14 buckets of two positions (fewer buckets found fewer
/// matches and were no faster: the table is not cleared per page).
const HASH_BITS: u32 = 14;
const MIN_MATCH: usize = 4;
const MAX_MATCH: usize = 258;
/// Matches up to this long have their inner positions hashed too.
const INSERT_INSIDE: usize = 16;

/// Literal/length alphabet: 256 literals, end of block, 29 lengths (286,
/// and two more that the fixed code defines but that never occur).
const LITLEN: usize = 288;
const DISTANCES: usize = 30;
const END_OF_BLOCK: usize = 256;
/// Code-length alphabet and its order in the block header.
const PRECODES: usize = 19;
const PRECODE_ORDER: [usize; PRECODES] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// One recorded step of the page: `literals` bytes taken as they are,
/// then a match of `length` (4 to 258; 0 for the last step, which has no
/// match) from `distance` back.
#[derive(Clone, Copy, Default)]
struct Sequence {
    literals: u16,
    length: u16,
    distance: u16,
    /// The length's code (0 = symbol 257) and the distance's code, found
    /// while counting.
    length_code: u8,
    distance_code: u8,
}

/// The most sequences a page makes: one per match of at least
/// [`MIN_MATCH`] bytes, and the last.
const MAX_SEQUENCES: usize = PAGE / MIN_MATCH + 1;

/// A dynamic block's header, planned before it is written.
#[derive(Clone, Copy)]
struct Header {
    hlit: usize,
    hdist: usize,
    hclen: usize,
    /// The code-length sequence, run-length coded: (symbol, extra bits).
    items: [(u8, u8); LITLEN + DISTANCES],
    count: usize,
    /// The precode's lengths.
    lengths: [u8; PRECODES],
}

impl Header {
    const EMPTY: Self = Self {
        hlit: 257,
        hdist: 1,
        hclen: 4,
        items: [(0, 0); LITLEN + DISTANCES],
        count: 0,
        lengths: [0; PRECODES],
    };
}

impl Default for Header {
    fn default() -> Self {
        Self::EMPTY
    }
}

/// The encoder's state, reused page after page (at most 84 KiB: keep it in
/// a static or a `Box`).
#[derive(Clone)]
pub struct Deflate {
    table: [u16; 2 << HASH_BITS],
    /// This page's number in the table's entries (1 to 15).
    tag: u16,
    page: [u8; PAGE + SPARE],
    sequences: [Sequence; MAX_SEQUENCES],
    litlen_freq: [u32; LITLEN],
    dist_freq: [u32; DISTANCES],
    litlen_len: [u8; LITLEN],
    dist_len: [u8; DISTANCES],
    litlen_code: [u16; LITLEN],
    dist_code: [u16; DISTANCES],
    scratch: [u32; LITLEN],
    header: Header,
}

impl core::fmt::Debug for Deflate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Deflate")
    }
}

impl Default for Deflate {
    fn default() -> Self {
        Self::new()
    }
}

#[inline(always)]
fn hash(word: u32) -> usize {
    (word.wrapping_mul(0x9E37_79B1) >> (32 - HASH_BITS)) as usize
}

/// Give a code at least two used symbols (fake ones of frequency 1, the
/// first unused), as zlib does: old decoders reject a code of one symbol,
/// and zlib's own rejects an incomplete code-length code.
fn at_least_two(freq: &mut [u32]) {
    let mut used = freq.iter().filter(|&&f| f > 0).count();
    for f in freq.iter_mut() {
        if used >= 2 {
            break;
        }
        if *f == 0 {
            *f = 1;
            used += 1;
        }
    }
}

impl Deflate {
    /// A fresh encoder.
    pub const fn new() -> Self {
        Self {
            table: [0; 2 << HASH_BITS],
            tag: 0,
            page: [0; PAGE + SPARE],
            sequences: [Sequence {
                literals: 0,
                length: 0,
                distance: 0,
                length_code: 0,
                distance_code: 0,
            }; MAX_SEQUENCES],
            litlen_freq: [0; LITLEN],
            dist_freq: [0; DISTANCES],
            litlen_len: [0; LITLEN],
            dist_len: [0; DISTANCES],
            litlen_code: [0; LITLEN],
            dist_code: [0; DISTANCES],
            scratch: [0; LITLEN],
            header: Header::EMPTY,
        }
    }

    /// Compress `page` (at most 4096 bytes) into `out` as a zlib stream;
    /// its length, or `None` when it would not be shorter than the page.
    pub fn compress(&mut self, page: &[u8], out: &mut [u8]) -> Option<usize> {
        let len = page.len();
        self.page.get_mut(..len)?.copy_from_slice(page);
        let count = self.find_matches(len);
        self.litlen_freq[END_OF_BLOCK] += 1;
        let (dynamic_bits, fixed_bits) = self.block_sizes();
        let bits = dynamic_bits.min(fixed_bits);
        // zlib header (2 bytes), the block, Adler-32 (4 bytes).
        let total = 2 + bits.div_ceil(8) + 4;
        let limit = len.saturating_sub(1).min(out.len());
        if total as usize > limit {
            return None;
        }
        let out = out.get_mut(..limit)?;
        // CMF 0x78: deflate, 32 KiB window; FLG 0x01: fastest level, no
        // dictionary, check bits making 0x7801 a multiple of 31.
        out.get_mut(..2)?.copy_from_slice(&[0x78, 0x01]);
        let mut bits_out = Bits::new(out.get_mut(2..)?);
        if dynamic_bits <= fixed_bits {
            bits_out.put(0b101, 3)?; // final, dynamic
            self.write_header(&mut bits_out)?;
        } else {
            bits_out.put(0b011, 3)?; // final, fixed
            self.fixed_codes();
        }
        self.write_symbols(&mut bits_out, count)?;
        let body = bits_out.finish()?;
        let end = 2 + body;
        out.get_mut(end..end + 4)?
            .copy_from_slice(&adler32(page).to_be_bytes());
        Some(end + 4)
    }

    /// The greedy pass: sequences recorded, frequencies counted; the
    /// number of sequences.
    fn find_matches(&mut self, len: usize) -> usize {
        // Entries are `tag << 12 | position`: an entry of an earlier page
        // (another tag) is no candidate, so the table is cleared only when
        // the tags run out, once every 15 pages.
        if self.tag == 15 {
            self.table.fill(0);
            self.tag = 0;
        }
        self.tag += 1;
        let tag = self.tag;
        self.litlen_freq = [0; LITLEN];
        self.dist_freq = [0; DISTANCES];
        let (table, buf) = (&mut self.table, &self.page);
        let (sequences, litlen, dist) = (
            &mut self.sequences,
            &mut self.litlen_freq,
            &mut self.dist_freq,
        );
        let mut count = 0usize;
        let end = len.saturating_sub(MIN_MATCH);
        let mut literal_start = 0usize;
        let mut i = 0usize;
        while i < end {
            let word = load32(buf, i);
            let bucket = hash(word) * 2;
            let (first, second) = (table[bucket], table[bucket + 1]);
            table[bucket + 1] = first;
            table[bucket] = (tag << 12) | i as u16;
            let max = (len - i).min(MAX_MATCH) - MIN_MATCH;
            let mut best = 0usize;
            let mut best_start = 0usize;
            let start = usize::from(first & 0xfff);
            if first >> 12 == tag && load32(buf, start) == word {
                best = MIN_MATCH
                    + common_length(buf, i + MIN_MATCH + max, start + MIN_MATCH, i + MIN_MATCH);
                best_start = start;
            }
            let start = usize::from(second & 0xfff);
            if best < MAX_MATCH && second >> 12 == tag && load32(buf, start) == word {
                let length = MIN_MATCH
                    + common_length(buf, i + MIN_MATCH + max, start + MIN_MATCH, i + MIN_MATCH);
                if length > best {
                    best = length;
                    best_start = start;
                }
            }
            if best == 0 {
                // Over data that does not match, look at fewer and fewer
                // positions: one in 2 after 64 misses, one in 3 after 128...
                i += 1 + ((i - literal_start) >> 6);
                continue;
            }
            for &byte in buf.get(literal_start..i).unwrap_or(&[]) {
                litlen[usize::from(byte)] += 1;
            }
            let distance = i - best_start;
            let (lcode, dcode) = (length_code(best), distance_code(distance));
            if let Some(s) = sequences.get_mut(count) {
                *s = Sequence {
                    literals: (i - literal_start) as u16,
                    length: best as u16,
                    distance: distance as u16,
                    length_code: lcode as u8,
                    distance_code: dcode as u8,
                };
                count += 1;
            }
            litlen[257 + lcode] += 1;
            dist[dcode] += 1;
            if best <= INSERT_INSIDE {
                for j in i + 1..(i + best).min(end) {
                    let bucket = hash(load32(buf, j)) * 2;
                    table[bucket + 1] = table[bucket];
                    table[bucket] = (tag << 12) | j as u16;
                }
            }
            i += best;
            literal_start = i;
        }
        for &byte in buf.get(literal_start..len).unwrap_or(&[]) {
            litlen[usize::from(byte)] += 1;
        }
        if let Some(s) = sequences.get_mut(count) {
            *s = Sequence {
                literals: (len - literal_start) as u16,
                ..Sequence::default()
            };
            count += 1;
        }
        count
    }

    /// The block's size in bits, dynamic and fixed (header included; the
    /// dynamic codes are built here and kept).
    fn block_sizes(&mut self) -> (u64, u64) {
        huffman::lengths(
            &self.litlen_freq,
            15,
            &mut self.litlen_len,
            &mut self.scratch,
        );
        let mut dist_freq = self.dist_freq;
        at_least_two(&mut dist_freq);
        huffman::lengths(&dist_freq, 15, &mut self.dist_len, &mut self.scratch);
        let mut extra = 0u64;
        let mut dynamic = 0u64;
        let mut fixed = 0u64;
        for (symbol, &f) in self.litlen_freq.iter().enumerate() {
            if f == 0 {
                continue;
            }
            let f = u64::from(f);
            dynamic += f * u64::from(self.litlen_len[symbol]);
            fixed += f * u64::from(fixed_litlen_length(symbol));
            if symbol > END_OF_BLOCK {
                extra += f * u64::from(length_extra(symbol - 257).0);
            }
        }
        for (code, &f) in self.dist_freq.iter().enumerate() {
            if f == 0 {
                continue;
            }
            let f = u64::from(f);
            dynamic += f * u64::from(self.dist_len[code]);
            fixed += f * 5;
            extra += f * u64::from(distance_extra(code).0);
        }
        let header = self.plan_header();
        (3 + header + dynamic + extra, 3 + fixed + extra)
    }

    /// The dynamic header's code-length sequence, run-length coded, into
    /// `self.header`; its precode; its size in bits (HLIT, HDIST, HCLEN,
    /// the precode, the coded lengths).
    fn plan_header(&mut self) -> u64 {
        let hlit = 257
            + self.litlen_len[257..]
                .iter()
                .rposition(|&l| l != 0)
                .map_or(0, |p| p + 1);
        let hdist = 1 + self.dist_len.iter().rposition(|&l| l != 0).unwrap_or(0);
        let mut header = Header {
            hlit,
            hdist,
            ..Header::default()
        };
        let mut push = |symbol: usize, extra: u8| {
            if let Some(item) = header.items.get_mut(header.count) {
                *item = (symbol as u8, extra);
                header.count += 1;
            }
        };
        let all = self.litlen_len[..hlit]
            .iter()
            .chain(&self.dist_len[..hdist])
            .copied();
        let mut previous = 0u8;
        let mut run = 0usize;
        for length in all.chain(core::iter::once(u8::MAX)) {
            if length == previous && run > 0 {
                run += 1;
                continue;
            }
            // Flush the run of `previous`.
            let mut left = run;
            if previous == 0 {
                while left >= 11 {
                    let n = left.min(138);
                    push(18, (n - 11) as u8);
                    left -= n;
                }
                if left >= 3 {
                    push(17, (left - 3) as u8);
                    left = 0;
                }
            } else if left > 0 {
                push(usize::from(previous), 0);
                left -= 1;
                while left >= 3 {
                    let n = left.min(6);
                    push(16, (n - 3) as u8);
                    left -= n;
                }
            }
            for _ in 0..left {
                push(usize::from(previous), 0);
            }
            previous = length;
            run = 1;
        }
        let mut freq = [0u32; PRECODES];
        let mut extra = 0u64;
        for &(symbol, _) in header.items.get(..header.count).unwrap_or(&[]) {
            if let Some(f) = freq.get_mut(usize::from(symbol)) {
                *f += 1;
            }
            extra += match symbol {
                16 => 2,
                17 => 3,
                18 => 7,
                _ => 0,
            };
        }
        let mut scratch = [0u32; PRECODES];
        let mut padded = freq;
        at_least_two(&mut padded);
        huffman::lengths(&padded, 7, &mut header.lengths, &mut scratch);
        header.hclen = 4 + PRECODE_ORDER[4..]
            .iter()
            .rposition(|&s| header.lengths[s] != 0)
            .map_or(0, |p| p + 1);
        let coded: u64 = freq
            .iter()
            .zip(&header.lengths)
            .map(|(&f, &l)| u64::from(f) * u64::from(l))
            .sum();
        let bits = 5 + 5 + 4 + 3 * header.hclen as u64 + coded + extra;
        self.header = header;
        bits
    }

    /// The dynamic block's header (planned by [`Self::plan_header`]), and
    /// the codes for the symbols.
    fn write_header(&mut self, bits: &mut Bits<'_>) -> Option<()> {
        huffman::codes(&self.litlen_len, &mut self.litlen_code);
        huffman::codes(&self.dist_len, &mut self.dist_code);
        let header = &self.header;
        let mut codes = [0u16; PRECODES];
        huffman::codes(&header.lengths, &mut codes);
        bits.put((header.hlit - 257) as u32, 5)?;
        bits.put((header.hdist - 1) as u32, 5)?;
        bits.put((header.hclen - 4) as u32, 4)?;
        for &symbol in PRECODE_ORDER.get(..header.hclen)? {
            bits.put(u32::from(header.lengths[symbol]), 3)?;
        }
        for &(symbol, extra) in header.items.get(..header.count)? {
            let symbol = usize::from(symbol) % PRECODES;
            bits.put(u32::from(codes[symbol]), u32::from(header.lengths[symbol]))?;
            match symbol {
                16 => bits.put(u32::from(extra), 2)?,
                17 => bits.put(u32::from(extra), 3)?,
                18 => bits.put(u32::from(extra), 7)?,
                _ => {}
            }
        }
        Some(())
    }

    /// The fixed code's lengths and codes in place of the dynamic ones.
    fn fixed_codes(&mut self) {
        for (symbol, l) in self.litlen_len.iter_mut().enumerate() {
            *l = fixed_litlen_length(symbol) as u8;
        }
        self.dist_len = [5; DISTANCES];
        huffman::codes(&self.litlen_len, &mut self.litlen_code);
        huffman::codes(&self.dist_len, &mut self.dist_code);
    }

    /// The recorded sequences, then end of block.
    fn write_symbols(&self, bits: &mut Bits<'_>, count: usize) -> Option<()> {
        let mut at = 0usize;
        for sequence in self.sequences.get(..count)? {
            let literals = usize::from(sequence.literals);
            // Two literals per call: two codes of at most 15 bits fit.
            let mut pairs = self.page.get(at..at + literals)?.chunks_exact(2);
            for pair in &mut pairs {
                let (a, b) = (usize::from(pair[0]), usize::from(pair[1]));
                let (code_a, len_a) = (
                    u32::from(self.litlen_code[a]),
                    u32::from(self.litlen_len[a]),
                );
                let (code_b, len_b) = (
                    u32::from(self.litlen_code[b]),
                    u32::from(self.litlen_len[b]),
                );
                bits.put(code_a | (code_b << len_a), len_a + len_b)?;
            }
            for &byte in pairs.remainder() {
                let s = usize::from(byte);
                bits.put(
                    u32::from(self.litlen_code[s]),
                    u32::from(self.litlen_len[s]),
                )?;
            }
            at += literals;
            let length = usize::from(sequence.length);
            if length == 0 {
                break;
            }
            at += length;
            let code = usize::from(sequence.length_code);
            let (extra_bits, base) = length_extra(code);
            let s = (257 + code) % LITLEN;
            bits.put(
                u32::from(self.litlen_code[s]) | (((length - base) as u32) << self.litlen_len[s]),
                u32::from(self.litlen_len[s]) + extra_bits,
            )?;
            let distance = usize::from(sequence.distance);
            let code = usize::from(sequence.distance_code) % DISTANCES;
            let (extra_bits, base) = distance_extra(code);
            bits.put(
                u32::from(self.dist_code[code])
                    | (((distance - base) as u32) << self.dist_len[code]),
                u32::from(self.dist_len[code]) + extra_bits,
            )?;
        }
        bits.put(
            u32::from(self.litlen_code[END_OF_BLOCK]),
            u32::from(self.litlen_len[END_OF_BLOCK]),
        )
    }
}

#[cfg(test)]
mod tests;
