//! Huffman code lengths for deflate's dynamic blocks, from symbol
//! frequencies, limited to a maximum length, and the canonical codes that
//! follow from them (RFC 1951 section 3.2.2). No allocation: the caller
//! lends a scratch slice as long as the alphabet.
//!
//! Lengths come from Moffat and Katajainen's in-place algorithm ("In-place
//! calculation of minimum-redundancy codes", 1995) over the used symbols
//! sorted by frequency; when the longest exceeds the limit, lengths are
//! reassigned from a per-length count repaired the way deflate encoders
//! usually do it (every overlong code is made `limit` long, then codes are
//! moved down one level at a time from the deepest level below the limit
//! until the Kraft sum is one again), longest codes to the rarest symbols.

/// Code lengths above this never occur before limiting: a code of length
/// `d` needs a total frequency of at least Fibonacci(d + 2), and a page
/// gives at most 4096 + 1 symbols (Fibonacci(20) = 6765).
const DEEPEST: usize = 32;

/// Fill `lengths` (one per symbol, 0 for an unused symbol) for `freq`,
/// no length above `limit`, and the used symbols' canonical `codes` (as
/// [`codes`] gives them; an unused symbol's is left as it was).
/// `scratch` must be at least as long as `freq`. A single used symbol gets
/// length 1 (deflate decoders accept a one-code tree); no used symbol, all
/// zeros.
pub fn build(freq: &[u32], limit: u8, lengths: &mut [u8], codes: &mut [u32], scratch: &mut [u32]) {
    let n = freq
        .len()
        .min(lengths.len())
        .min(scratch.len())
        .min(MAX_SYMBOLS);
    lengths.fill(0);
    // The used symbols' keys in symbol order (for the codes, which are
    // given in that order): frequencies are at most a page's symbols (13
    // bits), so with the frequency above and the symbol below, sorting
    // keys sorts by frequency. Every symbol's key is written and kept only
    // if the symbol is used (the count moves on): no branch per symbol,
    // which mispredicted on about every other used one.
    let mut used = 0usize;
    for (symbol, &f) in freq.iter().take(n).enumerate() {
        // `used <= symbol < n <= scratch.len()`: always there.
        if let Some(slot) = scratch.get_mut(used) {
            *slot = (f.min(0xffff) << 16) | symbol as u32;
        }
        used += usize::from(f > 0);
    }
    let Some(keys) = scratch.get(..used) else {
        return;
    };
    match keys {
        [] => return,
        [key] => {
            let symbol = (key & 0xffff) as usize;
            if let (Some(l), Some(c)) = (lengths.get_mut(symbol), codes.get_mut(symbol)) {
                *l = 1;
                *c = reversed(0, 1);
            }
            return;
        }
        _ => {}
    }
    let mut sorted_keys = [0u32; MAX_SYMBOLS];
    let mut depths = [0u32; MAX_SYMBOLS];
    let (Some(sorted_keys), Some(sorted)) = (sorted_keys.get_mut(..used), depths.get_mut(..used))
    else {
        return;
    };
    sort_by_frequency(keys, sorted_keys);
    // The weights, rarest first; the algorithm overwrites them with depths.
    for (weight, key) in sorted.iter_mut().zip(sorted_keys.iter()) {
        *weight = key >> 16;
    }
    minimum_redundancy(sorted);
    // `sorted[i]` is now the length of the i-th rarest symbol, and lengths
    // never grow with frequency. Count them per length, limit, reassign.
    let mut count = [0u32; DEEPEST + 1];
    for &depth in sorted.iter() {
        if let Some(c) = count.get_mut((depth as usize).min(DEEPEST)) {
            *c += 1;
        }
    }
    limit_counts(&mut count, limit);
    let mut rank = 0usize;
    for length in (1..=usize::from(limit)).rev() {
        for _ in 0..count.get(length).copied().unwrap_or(0) {
            if let Some(&key) = sorted_keys.get(rank)
                && let Some(l) = lengths.get_mut((key & 0xffff) as usize)
            {
                *l = length as u8;
            }
            rank += 1;
        }
    }
    // Canonical codes (RFC 1951 3.2.2): the first code of each length from
    // the counts, then the used symbols in symbol order.
    let mut next = first_codes(&count);
    for &key in keys {
        let symbol = (key & 0xffff) as usize;
        let (Some(&l), Some(c)) = (lengths.get(symbol), codes.get_mut(symbol)) else {
            continue;
        };
        if l > 15 {
            // Only a limit above deflate's (tests) makes such a length:
            // it has no code here.
            continue;
        }
        let Some(value) = next.get_mut(usize::from(l)) else {
            continue;
        };
        *c = reversed(*value, l);
        *value += 1;
    }
}

/// The first canonical code of each length 1 to 15 (RFC 1951 3.2.2) from
/// the number of codes of each length (`count[0]` and lengths past 15 are
/// not counted).
const fn first_codes(count: &[u32]) -> [u16; 16] {
    let mut next = [0u16; 16];
    let mut code = 0u32;
    let mut bits = 1;
    while bits < 16 && bits < count.len() {
        let shorter = if bits == 1 { 0 } else { count[bits - 1] };
        code = (code + shorter) << 1;
        next[bits] = code as u16;
        bits += 1;
    }
    next
}

/// `value`'s low `l` bits reversed (two table lookups), with `l`: a code
/// as the LSB-first writer takes it, `code | length << 16`.
#[inline(always)]
const fn reversed(value: u16, l: u8) -> u32 {
    let r =
        (REVERSED[(value & 0xff) as usize] as u16) << 8 | REVERSED[(value >> 8) as usize] as u16;
    (r >> (16 - l as u32)) as u32 | (l as u32) << 16
}

/// The most symbols [`build`] takes (deflate's largest alphabet has 288).
const MAX_SYMBOLS: usize = 320;

/// Up to this many keys are sorted by rank (no branch), more by counting.
const RANKED: usize = 32;

/// `keys` (`frequency << 16 | symbol`, all different, at most
/// [`MAX_SYMBOLS`]) into `out` (as long) in ascending order: by frequency,
/// equal ones by symbol.
///
/// A few keys (a distance or precode alphabet's) are placed by rank: each
/// goes where the number of smaller keys says, all pairs compared without
/// a branch. More (a page's literals and lengths) take one counting pass
/// over the frequency capped at 255 (a page's few hundred symbols average
/// a few dozen each), then the keys of 255 or more, at most 16 of a page's
/// 4097 symbols, by insertion. A comparison sort of the whole cost more
/// than the rest of the code construction together; a two-pass radix sort
/// twice this.
fn sort_by_frequency(keys: &[u32], out: &mut [u32]) {
    if keys.len() <= RANKED {
        for &key in keys {
            let rank = keys
                .iter()
                .map(|&other| usize::from(other < key))
                .sum::<usize>();
            // Keys are all different: ranks are 0 to len - 1, each once.
            if let Some(slot) = out.get_mut(rank) {
                *slot = key;
            }
        }
        return;
    }
    // Every index below is a capped frequency (at most 255), so inside
    // the 257 counters.
    let bucket = |key: u32| ((key >> 16).min(255)) as usize;
    let mut count = [0u16; 257];
    for &key in keys {
        count[bucket(key) + 1] += 1;
    }
    for digit in 1..257 {
        count[digit] += count[digit - 1];
    }
    let large = usize::from(count[255]);
    for &key in keys {
        let slot = &mut count[bucket(key)];
        if let Some(t) = out.get_mut(usize::from(*slot)) {
            *t = key;
        }
        *slot += 1;
    }
    // The capped bucket, in key order (frequency, then symbol: the input
    // is in symbol order, so this is the order a stable sort gives).
    if let Some(tail) = out.get_mut(large..) {
        for i in 1..tail.len() {
            let mut j = i;
            while j > 0 && tail[j - 1] > tail[j] {
                tail.swap(j - 1, j);
                j -= 1;
            }
        }
    }
}

/// Moffat-Katajainen: `a` holds weights in ascending order (at least two);
/// afterwards it holds each one's code length.
///
/// The indexing cannot go out of bounds: `root < next < n - 1` and `leaf`
/// is checked against `n` before each use in phase 1; phase 2 follows
/// parent indices, which phase 1 set below `n - 1`; phase 3 moves `next`
/// down from `n - 1` once per leaf, `n` times in all. Every input is a
/// page's symbol counts (at most 288 symbols), never a file's bytes.
fn minimum_redundancy(a: &mut [u32]) {
    let n = a.len();
    // Phase 1: build the tree in place; internal nodes' weights, then
    // parent indices, overwrite the leaves already consumed.
    a[0] += a[1];
    let (mut root, mut leaf) = (0usize, 2usize);
    for next in 1..n - 1 {
        // First child: the lighter of the next internal node and leaf.
        if leaf >= n || a[root] < a[leaf] {
            a[next] = a[root];
            a[root] = next as u32;
            root += 1;
        } else {
            a[next] = a[leaf];
            leaf += 1;
        }
        // Second child.
        if leaf >= n || (root < next && a[root] < a[leaf]) {
            a[next] += a[root];
            a[root] = next as u32;
            root += 1;
        } else {
            a[next] += a[leaf];
            leaf += 1;
        }
    }
    // Phase 2: parent indices to internal-node depths.
    a[n - 2] = 0;
    for next in (0..n - 2).rev() {
        a[next] = a[a[next] as usize] + 1;
    }
    // Phase 3: internal-node depths to leaf depths.
    let (mut available, mut used, mut depth) = (1u32, 0u32, 0u32);
    let mut root = n as isize - 2;
    let mut next = n as isize - 1;
    while available > 0 {
        while root >= 0 && a[root as usize] == depth {
            used += 1;
            root -= 1;
        }
        while available > used {
            a[next as usize] = depth;
            next -= 1;
            available -= 1;
        }
        available = 2 * used;
        depth += 1;
        used = 0;
    }
}

/// Make the per-length counts `count` (index = length) describe a complete
/// code (Kraft sum exactly one) with no length above `limit`: overlong
/// codes become `limit` long; while the sum is too large, the deepest code
/// above `limit` moves one level down (the smallest step); if that
/// overshoots, the deepest codes move back up until the sum is one (every
/// step is then a multiple of what is missing, so it lands exactly).
fn limit_counts(count: &mut [u32; DEEPEST + 1], limit: u8) {
    let limit = usize::from(limit).clamp(1, DEEPEST);
    for length in limit + 1..=DEEPEST {
        count[limit] += count[length];
        count[length] = 0;
    }
    let full = 1u64 << limit;
    let mut kraft: u64 = (1..=limit)
        .map(|l| u64::from(count[l]) << (limit - l))
        .sum();
    while kraft > full {
        let mut length = limit - 1;
        while length > 0 && count[length] == 0 {
            length -= 1;
        }
        if length == 0 {
            // More symbols than codes of `limit` bits: cannot happen for
            // deflate's alphabets (288 < 2^15, 19 < 2^7).
            return;
        }
        count[length] -= 1;
        count[length + 1] += 1;
        kraft -= 1 << (limit - length - 1);
    }
    while kraft < full {
        let mut length = limit;
        while length > 1 && count[length] == 0 {
            length -= 1;
        }
        if length <= 1 {
            return;
        }
        count[length] -= 1;
        count[length - 1] += 1;
        kraft += 1 << (limit - length);
    }
}

/// Each byte with its bits in reverse order.
const REVERSED: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = (i as u8).reverse_bits();
        i += 1;
    }
    table
};

/// Canonical codes for `lengths`, bit-reversed for an LSB-first writer,
/// each with its length: `code | length << 16` (one load per symbol for
/// the writer); 0 for an unused symbol. A `const fn`: the fixed code's
/// tables are built at compile time.
pub const fn codes<const N: usize>(lengths: &[u8; N]) -> [u32; N] {
    let mut count = [0u32; 16];
    let mut i = 0;
    while i < N {
        if lengths[i] < 16 {
            count[lengths[i] as usize] += 1;
        }
        i += 1;
    }
    let mut next = first_codes(&count);
    let mut out = [0u32; N];
    let mut symbol = 0;
    while symbol < N {
        let l = lengths[symbol];
        if l > 0 && l < 16 {
            out[symbol] = reversed(next[l as usize], l);
            next[l as usize] += 1;
        }
        symbol += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kraft(lengths: &[u8]) -> f64 {
        lengths
            .iter()
            .filter(|&&l| l > 0)
            .map(|&l| 2f64.powi(-i32::from(l)))
            .sum()
    }

    fn cost(freq: &[u32], lengths: &[u8]) -> u64 {
        freq.iter()
            .zip(lengths)
            .map(|(&f, &l)| u64::from(f) * u64::from(l))
            .sum()
    }

    /// Huffman's algorithm with a sorted list: the optimal cost.
    fn optimal_cost(freq: &[u32]) -> u64 {
        let mut nodes: Vec<u64> = freq
            .iter()
            .filter(|&&f| f > 0)
            .map(|&f| u64::from(f))
            .collect();
        if nodes.len() < 2 {
            return nodes.iter().sum();
        }
        let mut total = 0;
        while nodes.len() > 1 {
            nodes.sort_unstable();
            let merged = nodes[0] + nodes[1];
            total += merged;
            nodes.drain(..2);
            nodes.push(merged);
        }
        total
    }

    fn check(freq: &[u32], limit: u8) -> Vec<u8> {
        let mut out = vec![0u8; freq.len()];
        let mut scratch = vec![0u32; freq.len()];
        let mut built = vec![0u32; freq.len()];
        build(freq, limit, &mut out, &mut built, &mut scratch);
        // The codes built with the lengths are the canonical ones.
        if limit <= 15 {
            let mut padded = [0u8; 320];
            padded[..out.len()].copy_from_slice(&out);
            let canonical = codes(&padded);
            for (symbol, &l) in out.iter().enumerate() {
                if l > 0 {
                    assert_eq!(built[symbol], canonical[symbol], "symbol {symbol}");
                }
            }
        }
        let used = freq.iter().filter(|&&f| f > 0).count();
        for (f, l) in freq.iter().zip(&out) {
            assert_eq!(*f > 0, *l > 0, "{freq:?} -> {out:?}");
            assert!(*l <= limit);
        }
        if used >= 2 {
            assert!((kraft(&out) - 1.0).abs() < 1e-9, "complete code: {out:?}");
        }
        out
    }

    #[test]
    fn lengths_are_optimal_when_the_limit_allows() {
        let mut state = 7u64;
        for round in 0..500 {
            let n = 2 + round % 300;
            let freq: Vec<u32> = (0..n)
                .map(|_| {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let r = (state >> 33) as u32;
                    if r.is_multiple_of(4) {
                        0
                    } else {
                        1 + r % (1 + (round as u32 % 40) * 50)
                    }
                })
                .collect();
            let out = check(&freq, 32);
            if freq.iter().filter(|&&f| f > 0).count() >= 2 {
                assert_eq!(cost(&freq, &out), optimal_cost(&freq), "{freq:?}");
            }
        }
    }

    #[test]
    fn limits_hold_on_skewed_frequencies() {
        // Fibonacci frequencies make the deepest trees.
        let mut freq = vec![1u32, 1];
        while freq.len() < 20 {
            let n = freq.len();
            freq.push(freq[n - 1] + freq[n - 2]);
        }
        let unlimited = check(&freq, 32);
        assert!(unlimited.iter().copied().max().unwrap() > 15);
        let limited = check(&freq, 15);
        assert!(cost(&freq, &limited) >= cost(&freq, &unlimited));
        let seven = check(&freq[..19], 7);
        assert_eq!(seven.iter().copied().max(), Some(7));
    }

    #[test]
    fn one_symbol_gets_one_bit_and_none_gets_nothing() {
        assert_eq!(check(&[0, 0, 5, 0], 15), [0, 0, 1, 0]);
        assert_eq!(check(&[0, 0, 0], 15), [0, 0, 0]);
    }

    #[test]
    fn canonical_codes_match_rfc_1951_example() {
        // RFC 1951 3.2.2: lengths (3, 3, 3, 3, 3, 2, 4, 4) give codes
        // 010, 011, 100, 101, 110, 00, 1110, 1111.
        let lengths = [3u8, 3, 3, 3, 3, 2, 4, 4];
        let out = codes(&lengths);
        let expected = [0b010u16, 0b011, 0b100, 0b101, 0b110, 0b00, 0b1110, 0b1111];
        for ((&code, &want), &l) in out.iter().zip(&expected).zip(&lengths) {
            assert_eq!(code & 0xffff, u32::from(want.reverse_bits() >> (16 - l)));
            assert_eq!(code >> 16, u32::from(l));
        }
    }
}
