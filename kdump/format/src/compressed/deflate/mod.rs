//! A zlib encoder for 4 KiB pages, written here: makedumpfile `-c` pages
//! (`compress2` output: a zlib stream per page) at several times zlib's
//! speed, for the capture kernel and the in-place fallback (no allocation,
//! no `unsafe`, the whole state in one value).
//!
//! One page makes one zlib stream (RFC 1950: header `78 01`, one final
//! deflate block, Adler-32) holding one deflate block (RFC 1951), dynamic
//! or fixed Huffman, whichever is smaller. The design is the usual one for
//! fast deflate on small inputs:
//! - matches: one pass over the page with a hash table of 4-byte
//!   sequences, two candidates per bucket (the longer match wins), matches
//!   of 4 to 258 bytes; greedy at level 1, lazy at levels 2 and 3 (a match
//!   shorter than 8, or 16, bytes is given up when the next position starts
//!   a longer one); the page is copied into a padded buffer so that every
//!   read is provably in bounds (see [`super::matcher`]); every position of
//!   a match of up to 4 bytes and the last 3 of a longer one are hashed
//!   too, so the next matches find them; entries carry the page's number,
//!   so the table is cleared only once every 15 pages;
//! - symbols are recorded and counted in the same pass, then the codes are
//!   built (`huffman.rs`: lengths and canonical codes in one pass over the
//!   used symbols; the fixed code's tables at compile time) and the
//!   block's exact size is known before a bit is written: a page that
//!   would not shrink is given up at once (the writer stores it raw);
//! - bits go out through a 64-bit accumulator, whole bytes at a time
//!   (`bits.rs`).

mod adler;
mod bits;
mod huffman;
mod symbols;

use super::matcher::{common_length, load32};
use adler::adler32;
use bits::{Bits, code_bits, join};
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
/// Matches up to this long have their inner positions hashed too...
const INSERT_INSIDE: usize = 4;
/// ...longer ones their last this many.
const INSERT_TAIL: usize = 3;

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
    /// The precode's lengths and codes.
    lengths: [u8; PRECODES],
    codes: [u32; PRECODES],
}

impl Header {
    const EMPTY: Self = Self {
        hlit: 257,
        hdist: 1,
        hclen: 4,
        items: [(0, 0); LITLEN + DISTANCES],
        count: 0,
        lengths: [0; PRECODES],
        codes: [0; PRECODES],
    };
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
    /// Codes with their lengths: `code | length << 16`.
    litlen_code: [u32; LITLEN],
    dist_code: [u32; DISTANCES],
    scratch: [u32; LITLEN],
    header: Header,
    level: u8,
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

/// Hash `j`'s four bytes into the table (two positions per bucket, the
/// newest first).
#[inline(always)]
fn insert(table: &mut [u16; 2 << HASH_BITS], buf: &[u8; PAGE + SPARE], tag: u16, j: usize) {
    let bucket = hash(load32(buf, j)) * 2;
    table[bucket + 1] = table[bucket];
    table[bucket] = (tag << 12) | j as u16;
}

/// The longest match at `i` (at most `len - i` bytes) among the bucket's
/// two candidates of this page (the longer wins), as (length, start);
/// (0, 0) when neither matches four bytes. `i` is inserted into the
/// bucket.
#[inline(always)]
fn longest(
    table: &mut [u16; 2 << HASH_BITS],
    buf: &[u8; PAGE + SPARE],
    tag: u16,
    i: usize,
    len: usize,
) -> (usize, usize) {
    let word = load32(buf, i);
    let bucket = hash(word) * 2;
    let (first, second) = (table[bucket], table[bucket + 1]);
    table[bucket + 1] = first;
    table[bucket] = (tag << 12) | i as u16;
    let limit = i + (len - i).min(MAX_MATCH);
    let mut best = 0usize;
    let mut best_start = 0usize;
    let start = usize::from(first & 0xfff);
    if first >> 12 == tag && load32(buf, start) == word {
        best = MIN_MATCH + common_length(buf, limit, start + MIN_MATCH, i + MIN_MATCH);
        best_start = start;
    }
    let start = usize::from(second & 0xfff);
    if best < MAX_MATCH && second >> 12 == tag && load32(buf, start) == word {
        let length = MIN_MATCH + common_length(buf, limit, start + MIN_MATCH, i + MIN_MATCH);
        if length > best {
            best = length;
            best_start = start;
        }
    }
    (best, best_start)
}

/// The fixed code (RFC 1951 3.2.6), built at compile time.
const FIXED_LITLEN_LENGTHS: [u8; LITLEN] = {
    let mut lengths = [0u8; LITLEN];
    let mut symbol = 0;
    while symbol < LITLEN {
        lengths[symbol] = fixed_litlen_length(symbol) as u8;
        symbol += 1;
    }
    lengths
};
const FIXED_LITLEN: [u32; LITLEN] = huffman::codes(&FIXED_LITLEN_LENGTHS);

/// Extra bits of each length code (symbols 257 to 287; the last two
/// never occur) and of each distance code.
const LENGTH_EXTRA_BITS: [u8; LITLEN - 257] = {
    let mut bits = [0u8; LITLEN - 257];
    let mut code = 0;
    while code < 29 {
        bits[code] = length_extra(code).0 as u8;
        code += 1;
    }
    bits
};
const DISTANCE_EXTRA_BITS: [u8; DISTANCES] = {
    let mut bits = [0u8; DISTANCES];
    let mut code = 0;
    while code < DISTANCES {
        bits[code] = distance_extra(code).0 as u8;
        code += 1;
    }
    bits
};
const FIXED_DIST: [u32; DISTANCES] = huffman::codes(&[5; DISTANCES]);

/// The number of lengths from `at` on equal to the one at `at` (the
/// run ends at the sentinels), compared 8 at a time: most runs end within
/// the first 8, so the loop's branch is taken once per run, not once per
/// length.
#[inline(always)]
fn run_length(all: &[u8; LITLEN + DISTANCES + 8], at: usize) -> usize {
    let length = u64::from(all[at.min(LITLEN + DISTANCES)]) * 0x0101_0101_0101_0101;
    let mut run = 0usize;
    loop {
        let from = (at + run).min(LITLEN + DISTANCES);
        let mut word = [0u8; 8];
        word.copy_from_slice(&all[from..from + 8]);
        let differ = u64::from_le_bytes(word) ^ length;
        if differ != 0 {
            return run + (differ.trailing_zeros() / 8) as usize;
        }
        run += 8;
    }
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
    /// The level [`Self::new`] takes: lazy below 8 bytes, 0.5 to 2.5%
    /// smaller than level 1 and a few per cent slower (docs/benchmarks.md).
    pub const DEFAULT_LEVEL: u8 = 2;
    /// The highest level.
    pub const MAX_LEVEL: u8 = 3;

    /// A fresh encoder at [`Self::DEFAULT_LEVEL`].
    pub const fn new() -> Self {
        Self::with_level(Self::DEFAULT_LEVEL)
    }

    /// `level` made one of the encoder's: 1 to [`Self::MAX_LEVEL`], others
    /// taken as the nearest (a handover block's zlib level may be up to 9).
    const fn clamp_level(level: u8) -> u8 {
        if level < 1 {
            1
        } else if level > Self::MAX_LEVEL {
            Self::MAX_LEVEL
        } else {
            level
        }
    }

    /// Compress at `level` (see [`Self::with_level`]) from the next page on.
    pub fn set_level(&mut self, level: u8) {
        self.level = Self::clamp_level(level);
    }

    /// A fresh encoder at `level`: 1, greedy matching, the fastest; 2,
    /// lazy below 8 bytes; 3, lazy below 16, the smallest. Others are
    /// taken as the nearest.
    pub const fn with_level(level: u8) -> Self {
        let level = Self::clamp_level(level);
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
            level,
        }
    }

    /// Compress `page` (at most 4096 bytes) into `out` as a zlib stream;
    /// its length, or `None` when it would not be shorter than the page.
    pub fn compress(&mut self, page: &[u8], out: &mut [u8]) -> Option<usize> {
        let len = page.len();
        self.page.get_mut(..len)?.copy_from_slice(page);
        let count = match self.level {
            1 => self.find_matches::<0>(len),
            2 => self.find_matches::<8>(len),
            _ => self.find_matches::<16>(len),
        };
        self.litlen_freq[END_OF_BLOCK] += 1;
        let (dynamic_bits, fixed_bits) = self.block_sizes();
        let bits = dynamic_bits.min(fixed_bits);
        // zlib header (2 bytes), the block, Adler-32 (4 bytes).
        let total = 2 + bits.div_ceil(8) + 4;
        let limit = len.saturating_sub(1).min(out.len());
        if total as usize > limit {
            return None;
        }
        // The writer stores 8 bytes at a time when `out` has room for them
        // past the stream (nearly every page; the bytes past the returned
        // length are the caller's scratch), else byte by byte up to the
        // limit.
        let fast = total as usize + 8 <= out.len();
        let out = if fast { out } else { out.get_mut(..limit)? };
        // CMF 0x78: deflate, 32 KiB window; FLG 0x01: fastest level, no
        // dictionary, check bits making 0x7801 a multiple of 31.
        out.get_mut(..2)?.copy_from_slice(&[0x78, 0x01]);
        let mut bits_out = Bits::new(out.get_mut(2..)?, fast);
        // The codes, and the longest literal's length (an unused symbol's
        // code may be an earlier page's; its length is 0).
        let (codes, longest_literal) = if dynamic_bits <= fixed_bits {
            bits_out.put(0b101, 3); // final, dynamic
            self.write_header(&mut bits_out)?;
            let longest = self.litlen_len[..END_OF_BLOCK].iter().max();
            (
                (&self.litlen_code, &self.dist_code),
                longest.copied().unwrap_or(15),
            )
        } else {
            bits_out.put(0b011, 3); // final, fixed
            ((&FIXED_LITLEN, &FIXED_DIST), 9)
        };
        self.write_symbols(&mut bits_out, count, codes, longest_literal)?;
        let body = bits_out.finish()?;
        let end = 2 + body;
        out.get_mut(end..end + 4)?
            .copy_from_slice(&adler32(page).to_be_bytes());
        Some(end + 4)
    }

    /// The pass over the page: sequences recorded, frequencies counted;
    /// the number of sequences. A match shorter than `LAZY_BELOW` also
    /// tries the next position, and the longer of the two is taken (lazy
    /// matching; 0: greedy). Each level's pass is compiled on its own.
    fn find_matches<const LAZY_BELOW: usize>(&mut self, len: usize) -> usize {
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
            let (mut best, mut best_start) = longest(table, buf, tag, i, len);
            if best == 0 {
                // Over data that does not match, look at fewer and fewer
                // positions: one in 2 after 64 misses, one in 3 after 128...
                i += 1 + ((i - literal_start) >> 6);
                continue;
            }
            // Lazy matching: while the match is short, the next position's
            // may be longer (it is hashed either way).
            let mut probed = i;
            while best < LAZY_BELOW && i + 1 < end {
                let (next, next_start) = longest(table, buf, tag, i + 1, len);
                probed = i + 1;
                if next > best {
                    i += 1;
                    best = next;
                    best_start = next_start;
                } else {
                    break;
                }
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
            // Positions inside the match are hashed too, so that the next
            // matches find them: all of a short match's, the last few of a
            // longer one's (the most likely to start the next match).
            let first = if best <= INSERT_INSIDE {
                (probed + 1).max(i + 1)
            } else {
                (probed + 1).max(i + best - INSERT_TAIL)
            };
            for j in first..(i + best).min(end) {
                insert(table, buf, tag, j);
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
        huffman::build(
            &self.litlen_freq,
            15,
            &mut self.litlen_len,
            &mut self.litlen_code,
            &mut self.scratch,
        );
        let mut dist_freq = self.dist_freq;
        at_least_two(&mut dist_freq);
        huffman::build(
            &dist_freq,
            15,
            &mut self.dist_len,
            &mut self.dist_code,
            &mut self.scratch,
        );
        // Without a branch per symbol (most of a page's are unused, at
        // random): frequency times length, zero for the unused.
        let mut dynamic = 0u64;
        let mut fixed = 0u64;
        let mut extra = 0u64;
        for ((&f, &l), &fixed_l) in self
            .litlen_freq
            .iter()
            .zip(&self.litlen_len)
            .zip(&FIXED_LITLEN_LENGTHS)
        {
            dynamic += u64::from(f) * u64::from(l);
            fixed += u64::from(f) * u64::from(fixed_l);
        }
        for (&f, &bits) in self.litlen_freq[257..].iter().zip(&LENGTH_EXTRA_BITS) {
            extra += u64::from(f) * u64::from(bits);
        }
        for ((&f, &l), &bits) in self
            .dist_freq
            .iter()
            .zip(&self.dist_len)
            .zip(&DISTANCE_EXTRA_BITS)
        {
            dynamic += u64::from(f) * u64::from(l);
            fixed += u64::from(f) * 5;
            extra += u64::from(f) * u64::from(bits);
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
        // The code lengths in the order the header gives them, sentinels
        // after (no code is 255 bits long) to end the last run and to let
        // runs be measured 8 lengths at a time.
        let mut all = [u8::MAX; LITLEN + DISTANCES + 8];
        all[..hlit].copy_from_slice(&self.litlen_len[..hlit]);
        all[hlit..hlit + hdist].copy_from_slice(&self.dist_len[..hdist]);
        let total = hlit + hdist;
        let header = &mut self.header;
        header.hlit = hlit;
        header.hdist = hdist;
        let mut count = 0usize;
        let mut freq = [0u32; PRECODES];
        let mut extra = 0u64;
        // Runs of one length: zeros as 17 (3-10) and 18 (11-138), others
        // as the length once then 16 (repeat 3-6), short rests as they
        // are. At most one item per length, so `count` stays in `items`.
        let mut at = 0usize;
        while at < total {
            let length = all[at];
            let mut run = run_length(&all, at);
            at += run;
            let mut push = |symbol: u8, bits: u8, value: u8| {
                if let Some(item) = header.items.get_mut(count) {
                    *item = (symbol, value);
                    count += 1;
                }
                freq[usize::from(symbol)] += 1;
                extra += u64::from(bits);
            };
            if length == 0 {
                while run >= 11 {
                    let n = run.min(138);
                    push(18, 7, (n - 11) as u8);
                    run -= n;
                }
                if run >= 3 {
                    push(17, 3, (run - 3) as u8);
                    run = 0;
                }
            } else {
                push(length, 0, 0);
                run -= 1;
                while run >= 3 {
                    let n = run.min(6);
                    push(16, 2, (n - 3) as u8);
                    run -= n;
                }
            }
            for _ in 0..run {
                push(length, 0, 0);
            }
        }
        header.count = count;
        let mut scratch = [0u32; PRECODES];
        let mut padded = freq;
        at_least_two(&mut padded);
        huffman::build(
            &padded,
            7,
            &mut header.lengths,
            &mut header.codes,
            &mut scratch,
        );
        header.hclen = 4 + PRECODE_ORDER[4..]
            .iter()
            .rposition(|&s| header.lengths[s] != 0)
            .map_or(0, |p| p + 1);
        let coded: u64 = freq
            .iter()
            .zip(&header.lengths)
            .map(|(&f, &l)| u64::from(f) * u64::from(l))
            .sum();
        5 + 5 + 4 + 3 * header.hclen as u64 + coded + extra
    }

    /// The dynamic block's header (planned by [`Self::plan_header`]), and
    /// the codes for the symbols.
    fn write_header(&mut self, bits: &mut Bits<'_>) -> Option<()> {
        let header = &self.header;
        let codes = &header.codes;
        bits.put((header.hlit - 257) as u64, 5);
        bits.put((header.hdist - 1) as u64, 5);
        bits.put((header.hclen - 4) as u64, 4);
        bits.flush()?;
        for &symbol in PRECODE_ORDER.get(..header.hclen)? {
            bits.put(u64::from(header.lengths[symbol]), 3);
            bits.flush()?;
        }
        for &(symbol, extra) in header.items.get(..header.count)? {
            let symbol = usize::from(symbol) % PRECODES;
            let (extra_bits, extra) = match symbol {
                16 => (2, extra),
                17 => (3, extra),
                18 => (7, extra),
                _ => (0, 0),
            };
            bits.put_code(codes[symbol], u64::from(extra), extra_bits);
            bits.flush()?;
        }
        Some(())
    }

    /// The recorded sequences, then end of block. Literals go out four
    /// at a time when no literal's code is longer than 14 bits (4 x 14 =
    /// 56, the room after a flush), else three; a length and a distance
    /// with their extra bits (at most 20 and 28) together. Codes are
    /// joined before they are put (see [`bits::join`]).
    fn write_symbols(
        &self,
        bits: &mut Bits<'_>,
        count: usize,
        (litlen, dist): (&[u32; LITLEN], &[u32; DISTANCES]),
        longest_literal: u8,
    ) -> Option<()> {
        if longest_literal <= 14 {
            self.write_sequences::<4>(bits, count, litlen, dist)?;
        } else {
            self.write_sequences::<3>(bits, count, litlen, dist)?;
        }
        bits.put_code(litlen[END_OF_BLOCK], 0, 0);
        Some(())
    }

    /// [`Self::write_symbols`]'s loop, up to `PER_FLUSH` literals between
    /// flushes (the caller has checked that they fit).
    #[inline(always)]
    fn write_sequences<const PER_FLUSH: usize>(
        &self,
        bits: &mut Bits<'_>,
        count: usize,
        litlen: &[u32; LITLEN],
        dist: &[u32; DISTANCES],
    ) -> Option<()> {
        let literal = |byte: u8| code_bits(litlen[usize::from(byte)], 0, 0);
        let mut at = 0usize;
        for sequence in self.sequences.get(..count)? {
            let literals = usize::from(sequence.literals);
            let mut groups = self.page.get(at..at + literals)?.chunks_exact(PER_FLUSH);
            for group in &mut groups {
                let (value, n) = group
                    .iter()
                    .fold((0, 0), |joined, &byte| join(joined, literal(byte)));
                bits.put(value, n);
                bits.flush()?;
            }
            let (value, n) = groups
                .remainder()
                .iter()
                .fold((0, 0), |joined, &byte| join(joined, literal(byte)));
            bits.put(value, n);
            bits.flush()?;
            at += literals;
            let length = usize::from(sequence.length);
            if length == 0 {
                break;
            }
            at += length;
            let code = usize::from(sequence.length_code);
            let (extra_bits, base) = length_extra(code);
            let length = code_bits(
                litlen[(257 + code) % LITLEN],
                (length - base) as u64,
                extra_bits,
            );
            let distance = usize::from(sequence.distance);
            let code = usize::from(sequence.distance_code) % DISTANCES;
            let (extra_bits, base) = distance_extra(code);
            let distance = code_bits(dist[code], (distance - base) as u64, extra_bits);
            let (value, n) = join(length, distance);
            bits.put(value, n);
            bits.flush()?;
        }
        Some(())
    }
}

#[cfg(test)]
mod tests;
