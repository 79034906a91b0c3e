//! rzCOBS ("reverse zero-compressing COBS"), the framing defmt uses by
//! default: an encoded frame has no zero byte, so a `0x00` ends it and a
//! reader that lands inside damage resyncs at the next one.
//!
//! The format, from its decoder's side (it reads an encoded frame from the
//! end): each block is some literal bytes and then one control byte `c`:
//! - `0x01..=0x7F`: seven decoded bytes; bit `j` set means byte `j` of the
//!   seven is zero, and the literals are the others, in order;
//! - `0x80..=0xFE`: `(c & 0x7F) + 7` literal (non-zero) bytes, then one zero;
//! - `0xFF`: 134 literal bytes, no zero.
//!
//! So an encoder streams: it writes each non-zero byte at once and only
//! owes the block's control byte when the block ends, which makes it two
//! bytes of state and no buffer (what an NMI-context writer needs). A
//! frame's decoded bytes can end with up to six zeros of padding (the last
//! block is completed with zeros); crashkit's frames end with a non-zero
//! marker, so the padding is unambiguous.

/// The streaming encoder's whole state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Encoder {
    /// Decoded bytes in the current block (0..=133).
    pub run: u8,
    /// Bit `j`: byte `j` of the current block is zero (only while `run < 7`
    /// or once a zero was seen).
    pub zeros: u8,
}

impl Encoder {
    /// Encode one byte; `emit` gets the encoded bytes (none, one or two).
    pub fn push(&mut self, byte: u8, mut emit: impl FnMut(u8)) {
        if self.run < 7 {
            if byte == 0 {
                self.zeros |= 1 << self.run;
            } else {
                emit(byte);
            }
            self.run += 1;
            if self.run == 7 && self.zeros != 0 {
                emit(self.zeros);
                *self = Self::default();
            }
        } else if byte == 0 {
            // A run of `run` non-zero bytes ended by this zero.
            emit(0x80 | (self.run - 7));
            *self = Self::default();
        } else {
            emit(byte);
            self.run += 1;
            if self.run == 134 {
                emit(0xFF);
                *self = Self::default();
            }
        }
    }

    /// End the frame: the owed control byte (padding the block with
    /// zeros), not the `0x00` delimiter.
    pub fn finish(&mut self, mut emit: impl FnMut(u8)) {
        match self.run {
            0 => {}
            // A partial block: the missing bytes are zeros.
            run @ 1..=6 => emit(self.zeros | (0x7F & !((1u8 << run) - 1))),
            // A run of non-zero bytes, closed with one zero of padding.
            run => emit(0x80 | (run - 7)),
        }
        *self = Self::default();
    }
}

/// A frame that is not valid rzCOBS, or decodes to more than the buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A zero byte inside the frame, or a block that wants more literals
    /// than the frame has.
    Malformed,
    /// The decoded frame does not fit the buffer.
    TooLong,
}

/// Decode one encoded frame (without its `0x00` delimiter) into the end of
/// `out`; returns the decoded bytes (padding included).
pub fn decode<'o>(encoded: &[u8], out: &'o mut [u8]) -> Result<&'o [u8], DecodeError> {
    // Decoded bytes are produced last first, so fill `out` from its end.
    let mut at = out.len();
    let mut put = |byte: u8| -> Result<(), DecodeError> {
        at = at.checked_sub(1).ok_or(DecodeError::TooLong)?;
        if let Some(slot) = out.get_mut(at) {
            *slot = byte;
        }
        Ok(())
    };
    let mut bytes = encoded.iter().rev().copied();
    let literal = |bytes: &mut dyn Iterator<Item = u8>| match bytes.next() {
        Some(0) | None => Err(DecodeError::Malformed),
        Some(byte) => Ok(byte),
    };
    while let Some(control) = bytes.next() {
        match control {
            0 => return Err(DecodeError::Malformed),
            0x01..=0x7F => {
                for bit in (0..7).rev() {
                    let byte = if control & (1 << bit) != 0 {
                        0
                    } else {
                        literal(&mut bytes)?
                    };
                    put(byte)?;
                }
            }
            0x80..=0xFE => {
                put(0)?;
                for _ in 0..(control & 0x7F) + 7 {
                    put(literal(&mut bytes)?)?;
                }
            }
            0xFF => {
                for _ in 0..134 {
                    put(literal(&mut bytes)?)?;
                }
            }
        }
    }
    Ok(out.get(at..).unwrap_or(&[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(data: &[u8]) -> Vec<u8> {
        let mut encoder = Encoder::default();
        let mut out = Vec::new();
        for &byte in data {
            encoder.push(byte, |b| out.push(b));
        }
        encoder.finish(|b| out.push(b));
        out
    }

    /// Inputs that reach every block kind and boundary: empty, short,
    /// all zeros, runs of 6, 7, 133, 134, 135 and 300 non-zero bytes, a
    /// zero after each, and random bytes with few and many zeros.
    fn cases() -> Vec<Vec<u8>> {
        let mut cases = vec![vec![], vec![0], vec![1], vec![0; 20], vec![1, 0, 2, 0, 3]];
        for n in [1, 6, 7, 8, 133, 134, 135, 268, 300] {
            cases.push(vec![0x41; n]);
            let mut with_zero = vec![0x42; n];
            with_zero.push(0);
            with_zero.push(9);
            cases.push(with_zero);
        }
        let mut x = 0x1234_5678_9abc_def0u64;
        for len in 0..200 {
            let mut data = Vec::new();
            for _ in 0..len * 3 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                data.push(if x.is_multiple_of(5) {
                    0
                } else {
                    (x >> 8) as u8
                });
            }
            cases.push(data);
        }
        cases
    }

    /// Every encoding has no zero byte and decodes (through the `rzcobs`
    /// crate, a decoder nobody here wrote, and through ours) to the input
    /// followed by at most six zeros.
    #[test]
    fn round_trip_against_the_rzcobs_crate() {
        for data in cases() {
            let encoded = encode(&data);
            assert!(!encoded.contains(&0), "{data:?}");
            let theirs = rzcobs::decode(&encoded).expect("rzcobs decodes ours");
            assert!(theirs.starts_with(&data), "{data:?} -> {theirs:?}");
            assert!(theirs[data.len()..].iter().all(|&b| b == 0));
            assert!(theirs.len() - data.len() <= 6, "{data:?}");
            let mut buffer = [0u8; 2048];
            let ours = decode(&encoded, &mut buffer).expect("ours decodes ours");
            assert_eq!(ours, &theirs[..]);
            // And ours decodes theirs.
            let encoded = rzcobs::encode(&data);
            let mut buffer = [0u8; 2048];
            let ours = decode(&encoded, &mut buffer).expect("ours decodes rzcobs's");
            assert!(ours.starts_with(&data));
            assert!(ours[data.len()..].iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn damage_is_an_error_not_a_panic() {
        let mut buffer = [0u8; 64];
        assert_eq!(decode(&[5, 0, 3], &mut buffer), Err(DecodeError::Malformed));
        assert_eq!(decode(&[0x80], &mut buffer), Err(DecodeError::Malformed));
        assert_eq!(decode(&[0xFF; 3], &mut buffer), Err(DecodeError::Malformed));
        let long = encode(&[7u8; 200]);
        assert_eq!(decode(&long, &mut buffer), Err(DecodeError::TooLong));
        // Every byte string decodes or fails cleanly.
        let mut x = 99u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 40) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 8 * 8)) as u8 | 1).collect();
            let _ = decode(&bytes, &mut buffer);
        }
    }
}
