//! Adler-32 (RFC 1950), the zlib stream's checksum.

/// Adler-32 of `data` (RFC 1950), eight bytes per step in plain 64-bit
/// arithmetic (the capture kernel's target has no vector registers).
///
/// Over a block of `n` bytes `x_p`, Adler's `a` gains `A = sum x_p` and
/// `b` gains `n * a + sum (n - p) x_p = n * a + n * A - P` with
/// `P = sum p x_p`. Per 8-byte word `k`, the even and the odd bytes are
/// spread into four 16-bit lanes each and added to lane sums `R` (so
/// `sum_j j R_j` is the part of `P` within words), and the word's byte sum
/// `S_k` (one multiply folds four lanes) adds `8 k S_k` to `P`.
pub(super) fn adler32(data: &[u8]) -> u32 {
    const MOD: u64 = 65521;
    const SPREAD: u64 = 0x00ff_00ff_00ff_00ff;
    const FOLD: u64 = 0x0001_0001_0001_0001;
    let (mut a, mut b) = (1u64, 0u64);
    // 2048-byte blocks: a 16-bit lane sums at most 256 bytes.
    for block in data.chunks(2048) {
        let (mut even, mut odd) = (0u64, 0u64);
        let mut within_words = 0u64;
        let mut words = block.chunks_exact(8);
        for (k, word) in (&mut words).enumerate() {
            let word = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
            let (e, o) = (word & SPREAD, (word >> 8) & SPREAD);
            even += e;
            odd += o;
            within_words += k as u64 * ((e + o).wrapping_mul(FOLD) >> 48);
        }
        let (mut sum, mut weighted) = (0u64, 8 * within_words);
        for lane in 0..4 {
            let (e, o) = (
                (even >> (16 * lane)) & 0xffff,
                (odd >> (16 * lane)) & 0xffff,
            );
            sum += e + o;
            weighted += 2 * lane * e + (2 * lane + 1) * o;
        }
        let base = block.len() - words.remainder().len();
        for (k, &x) in words.remainder().iter().enumerate() {
            sum += u64::from(x);
            weighted += (base + k) as u64 * u64::from(x);
        }
        let n = block.len() as u64;
        b = (b + n * a + n * sum - weighted) % MOD;
        a = (a + sum) % MOD;
    }
    ((b << 16) | a) as u32
}
