//! Page decoders: zlib, LZO1X, snappy and zstd, each into exactly one page.
//!
//! Every decoder writes into the caller's page buffer and fails, rather than
//! grow anything, when the data would decode to more than the buffer (a
//! decompression bomb) or to less; a page decodes to exactly one page or is
//! reported corrupt.
//!
//! - zlib: miniz_oxide's inflate (no allocation), zlib header and Adler-32
//!   checked: makedumpfile and QEMU use `compress2`.
//! - LZO1X: written here from the format's description (the instruction
//!   table of Linux's `Documentation/staging/lzo.rst`; no LZO code is
//!   linked: every LZO crate is GPL). Version 0 streams, as liblzo2's
//!   `lzo1x_1_compress` writes them for makedumpfile.
//! - snappy: written here from the raw format (a varint length, then
//!   literal and copy elements).
//! - zstd: ruzstd (alloc only) after a check of the frame header, so that a
//!   hostile window size cannot make it allocate more than [`ZSTD_MAX_WINDOW`].

use super::header::{FLAG_LZO, FLAG_SNAPPY, FLAG_ZLIB, FLAG_ZSTD};

/// Why a page's data does not decode to one page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// The descriptor's flags name no codec this reader knows.
    UnknownCodec(u32),
    /// The data is malformed for its codec.
    Malformed(&'static str),
    /// The data would decode to more than one page.
    TooLong,
    /// The data decodes to fewer bytes than a page.
    TooShort(usize),
    /// zstd pages need the `alloc` feature.
    NeedsAlloc,
}

impl core::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::UnknownCodec(flags) => write!(f, "unknown compression flags {flags:#x}"),
            Self::Malformed(what) => write!(f, "malformed data: {what}"),
            Self::TooLong => f.write_str("decodes to more than one page"),
            Self::TooShort(n) => write!(f, "decodes to {n} bytes, less than one page"),
            Self::NeedsAlloc => f.write_str("zstd pages need the alloc feature"),
        }
    }
}

impl core::error::Error for DecodeError {}

/// Largest zstd window accepted (bounds ruzstd's allocation).
pub const ZSTD_MAX_WINDOW: u64 = 8 << 20;

/// Decode `data`, compressed with the codec of descriptor `flags` (0:
/// raw), into `page`, which it must fill exactly.
pub fn decode_page(flags: u32, data: &[u8], page: &mut [u8]) -> Result<(), DecodeError> {
    // Exactly one codec's flag, or none (raw): every producer writes one of
    // these values, so other bits set are damage, not a codec to guess.
    let written = match flags {
        0 => {
            if data.len() != page.len() {
                return Err(if data.len() > page.len() {
                    DecodeError::TooLong
                } else {
                    DecodeError::TooShort(data.len())
                });
            }
            page.copy_from_slice(data);
            data.len()
        }
        FLAG_ZLIB => zlib(data, page)?,
        FLAG_LZO => lzo1x(data, page)?,
        FLAG_SNAPPY => snappy(data, page)?,
        FLAG_ZSTD => zstd(data, page)?,
        _ => return Err(DecodeError::UnknownCodec(flags)),
    };
    if written != page.len() {
        return Err(DecodeError::TooShort(written));
    }
    Ok(())
}

fn zlib(data: &[u8], page: &mut [u8]) -> Result<usize, DecodeError> {
    use miniz_oxide::inflate::TINFLStatus;
    match miniz_oxide::inflate::decompress_slice_iter_to_slice(
        page,
        core::iter::once(data),
        true,
        false,
    ) {
        Ok(n) => Ok(n),
        Err(TINFLStatus::HasMoreOutput) => Err(DecodeError::TooLong),
        Err(TINFLStatus::Adler32Mismatch) => Err(DecodeError::Malformed("zlib checksum")),
        Err(_) => Err(DecodeError::Malformed("zlib stream")),
    }
}

/// Reads input bytes with bounds checks.
struct Input<'a> {
    data: &'a [u8],
    at: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        let b = *self
            .data
            .get(self.at)
            .ok_or(DecodeError::Malformed("stream ends early"))?;
        self.at += 1;
        Ok(b)
    }

    fn le16(&mut self) -> Result<usize, DecodeError> {
        Ok(usize::from(self.byte()?) | usize::from(self.byte()?) << 8)
    }

    /// LZO's length extension: zero bytes add 255 each, the first non-zero
    /// byte ends it; `base` is the field's all-ones value.
    fn lzo_length(&mut self, base: usize) -> Result<usize, DecodeError> {
        let mut length = base;
        loop {
            let b = self.byte()?;
            if b != 0 {
                return Ok(length + usize::from(b));
            }
            length += 255;
            // More than a page of length cannot be valid here.
            if length > 1 << 20 {
                return Err(DecodeError::TooLong);
            }
        }
    }

    fn copy_literals(&mut self, n: usize, out: &mut Output<'_>) -> Result<(), DecodeError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or(DecodeError::Malformed("literal length"))?;
        let literals = self
            .data
            .get(self.at..end)
            .ok_or(DecodeError::Malformed("literals past the end"))?;
        out.push(literals)?;
        self.at = end;
        Ok(())
    }
}

/// The page being produced.
struct Output<'a> {
    page: &'a mut [u8],
    at: usize,
}

impl Output<'_> {
    fn push(&mut self, bytes: &[u8]) -> Result<(), DecodeError> {
        let end = self.at + bytes.len();
        let dst = self
            .page
            .get_mut(self.at..end)
            .ok_or(DecodeError::TooLong)?;
        dst.copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }

    /// Copy `length` bytes from `distance` back (they may overlap what is
    /// being written: byte by byte).
    fn copy_match(&mut self, distance: usize, length: usize) -> Result<(), DecodeError> {
        if distance == 0 || distance > self.at {
            return Err(DecodeError::Malformed("match before the start"));
        }
        if self.at + length > self.page.len() {
            return Err(DecodeError::TooLong);
        }
        for i in self.at..self.at + length {
            let byte = self.page.get(i - distance).copied().unwrap_or(0);
            if let Some(dst) = self.page.get_mut(i) {
                *dst = byte;
            }
        }
        self.at += length;
        Ok(())
    }
}

/// LZO1X (version 0). The state is how many literals the previous
/// instruction copied: 0, 1 to 3, or 4 for "4 or more"; it changes what
/// opcodes 0..15 mean.
fn lzo1x(data: &[u8], page: &mut [u8]) -> Result<usize, DecodeError> {
    let mut input = Input { data, at: 0 };
    let mut out = Output { page, at: 0 };
    let mut state = 0usize;
    let first = *data.first().ok_or(DecodeError::Malformed("empty"))?;
    if first > 17 {
        input.at = 1;
        let n = usize::from(first - 17);
        input.copy_literals(n, &mut out)?;
        state = n.min(4);
    }
    loop {
        let t = usize::from(input.byte()?);
        let (distance, length, next);
        if t < 16 {
            if state == 0 {
                // Long literal run: 3 + length.
                let length = if t == 0 { input.lzo_length(15)? } else { t };
                input.copy_literals(length + 3, &mut out)?;
                state = 4;
                continue;
            }
            let h = usize::from(input.byte()?);
            next = t & 3;
            if state < 4 {
                (distance, length) = ((h << 2) + ((t >> 2) & 3) + 1, 2);
            } else {
                (distance, length) = ((h << 2) + ((t >> 2) & 3) + 2049, 3);
            }
        } else if t < 32 {
            let l = if t & 7 == 0 {
                input.lzo_length(7)?
            } else {
                t & 7
            };
            let d = input.le16()?;
            let far = 16384 + ((t & 8) << 11) + (d >> 2);
            if far == 16384 {
                // End of stream; nothing may follow.
                if input.at != data.len() {
                    return Err(DecodeError::Malformed("data after the end marker"));
                }
                return Ok(out.at);
            }
            (distance, length, next) = (far, l + 2, d & 3);
        } else if t < 64 {
            let l = if t & 31 == 0 {
                input.lzo_length(31)?
            } else {
                t & 31
            };
            let d = input.le16()?;
            (distance, length, next) = ((d >> 2) + 1, l + 2, d & 3);
        } else {
            let h = usize::from(input.byte()?);
            let length = if t < 128 {
                3 + ((t >> 5) & 1)
            } else {
                5 + ((t >> 5) & 3)
            };
            (distance, next) = ((h << 3) + ((t >> 2) & 7) + 1, t & 3);
            out.copy_match(distance, length)?;
            input.copy_literals(next, &mut out)?;
            state = next;
            continue;
        }
        out.copy_match(distance, length)?;
        input.copy_literals(next, &mut out)?;
        state = next;
    }
}

/// Raw snappy: a varint of the decoded length, then elements.
fn snappy(data: &[u8], page: &mut [u8]) -> Result<usize, DecodeError> {
    let mut input = Input { data, at: 0 };
    let mut expected = 0usize;
    for shift in (0..35).step_by(7) {
        let b = input.byte()?;
        expected |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        if shift == 28 {
            return Err(DecodeError::Malformed("length varint"));
        }
    }
    if expected > page.len() {
        return Err(DecodeError::TooLong);
    }
    let mut out = Output { page, at: 0 };
    while input.at < data.len() {
        let tag = usize::from(input.byte()?);
        match tag & 3 {
            0 => {
                let mut length = tag >> 2;
                if length >= 60 {
                    let bytes = length - 59;
                    length = 0;
                    for i in 0..bytes {
                        length |= usize::from(input.byte()?) << (8 * i);
                    }
                }
                input.copy_literals(length + 1, &mut out)?;
            }
            1 => {
                let length = 4 + ((tag >> 2) & 7);
                let distance = ((tag >> 5) << 8) | usize::from(input.byte()?);
                out.copy_match(distance, length)?;
            }
            2 => {
                let length = 1 + (tag >> 2);
                let distance = input.le16()?;
                out.copy_match(distance, length)?;
            }
            _ => {
                let length = 1 + (tag >> 2);
                let distance = input.le16()? | input.le16()? << 16;
                out.copy_match(distance, length)?;
            }
        }
    }
    if out.at != expected {
        return Err(DecodeError::Malformed("length differs from the preamble"));
    }
    Ok(out.at)
}

/// The window a zstd frame header declares, if the header is readable.
fn zstd_window(data: &[u8]) -> Option<u64> {
    if data.get(..4)? != [0x28, 0xb5, 0x2f, 0xfd] {
        return None;
    }
    let descriptor = *data.get(4)?;
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let window = *data.get(5)?;
        let base = 1u64 << (10 + u32::from(window >> 3));
        return Some(base + (base / 8) * u64::from(window & 7));
    }
    // Single segment: the window is the content size.
    let dict_bytes = [0usize, 1, 2, 4][usize::from(descriptor & 3)];
    let size_bytes = [1usize, 2, 4, 8][usize::from(descriptor >> 6)];
    let at = 5 + dict_bytes;
    let field = data.get(at..at + size_bytes)?;
    let mut size = 0u64;
    for (i, b) in field.iter().enumerate() {
        size |= u64::from(*b) << (8 * i);
    }
    Some(if size_bytes == 2 { size + 256 } else { size })
}

#[cfg(feature = "alloc")]
fn zstd(data: &[u8], page: &mut [u8]) -> Result<usize, DecodeError> {
    let window = zstd_window(data).ok_or(DecodeError::Malformed("zstd frame header"))?;
    if window > ZSTD_MAX_WINDOW {
        return Err(DecodeError::Malformed("zstd window too large"));
    }
    let mut decoder = ruzstd::decoding::FrameDecoder::new();
    match decoder.decode_all(data, page) {
        Ok(n) => Ok(n),
        Err(ruzstd::decoding::errors::FrameDecoderError::TargetTooSmall) => {
            Err(DecodeError::TooLong)
        }
        Err(_) => Err(DecodeError::Malformed("zstd frame")),
    }
}

#[cfg(not(feature = "alloc"))]
fn zstd(data: &[u8], _page: &mut [u8]) -> Result<usize, DecodeError> {
    let _ = zstd_window(data);
    Err(DecodeError::NeedsAlloc)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page_pattern() -> Vec<u8> {
        (0..4096u32)
            .map(|i| {
                if i % 512 < 300 {
                    (i % 7) as u8
                } else {
                    (i * 31 % 251) as u8
                }
            })
            .collect()
    }

    #[test]
    fn raw_pages_must_be_exactly_one_page() {
        let page = page_pattern();
        let mut out = vec![0u8; 4096];
        decode_page(0, &page, &mut out).unwrap();
        assert_eq!(out, page);
        assert_eq!(
            decode_page(0, &page[..100], &mut out),
            Err(DecodeError::TooShort(100))
        );
        assert_eq!(
            decode_page(0x40, &page, &mut out),
            Err(DecodeError::UnknownCodec(0x40))
        );
    }

    #[test]
    fn lzo1x_streams_by_hand() {
        // First-byte literal run of 4 ("abcd"), a 64..127 match (length 3,
        // distance 4), then the end marker 0x11 0x00 0x00.
        let stream = [17 + 4, b'a', b'b', b'c', b'd', 0b0100_1100, 0, 0x11, 0, 0];
        let mut out = [0u8; 7];
        assert_eq!(lzo1x(&stream, &mut out), Ok(7));
        assert_eq!(&out, b"abcdabc");
        // The same with one byte too few room: a bomb is refused.
        let mut small = [0u8; 6];
        assert_eq!(lzo1x(&stream, &mut small), Err(DecodeError::TooLong));
        // A match reaching before the start is malformed.
        let bad = [17 + 1, b'a', 0b0100_1100, 5, 0x11, 0, 0];
        assert!(matches!(
            lzo1x(&bad, &mut out),
            Err(DecodeError::Malformed(_))
        ));
        // Cut streams never panic.
        for cut in 0..stream.len() {
            let _ = lzo1x(&stream[..cut], &mut out);
        }
    }

    #[test]
    fn snappy_streams_by_hand() {
        // Length 8; literal "abcd"; copy-1 of length 4 at distance 4.
        let stream = [8, 3 << 2, b'a', b'b', b'c', b'd', 0b0000_0001, 4];
        let mut out = [0u8; 8];
        assert_eq!(snappy(&stream, &mut out), Ok(8));
        assert_eq!(&out, b"abcdabcd");
        let mut wrong = stream;
        wrong[0] = 9;
        let mut nine = [0u8; 9];
        assert!(matches!(
            snappy(&wrong, &mut nine),
            Err(DecodeError::Malformed(_))
        ));
        for cut in 0..stream.len() {
            let _ = snappy(&stream[..cut], &mut out);
        }
    }

    #[test]
    fn zlib_pages_decode_and_bombs_are_refused() {
        let page = page_pattern();
        let compressed = miniz_oxide_compress(&page);
        let mut out = vec![0u8; 4096];
        decode_page(FLAG_ZLIB, &compressed, &mut out).unwrap();
        assert_eq!(out, page);
        let mut short = vec![0u8; 4095];
        assert_eq!(
            decode_page(FLAG_ZLIB, &compressed, &mut short),
            Err(DecodeError::TooLong)
        );
        let mut flipped = compressed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(decode_page(FLAG_ZLIB, &flipped, &mut out).is_err());
    }

    /// A stored (uncompressed) zlib stream, built by hand for the test:
    /// header 0x78 0x01, one final stored block, Adler-32.
    fn miniz_oxide_compress(data: &[u8]) -> Vec<u8> {
        let mut out = vec![0x78, 0x01, 0x01];
        let len = data.len() as u16;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(data);
        let (mut a, mut b) = (1u32, 0u32);
        for &byte in data {
            a = (a + u32::from(byte)) % 65521;
            b = (b + a) % 65521;
        }
        out.extend_from_slice(&((b << 16) | a).to_be_bytes());
        out
    }

    #[test]
    #[cfg(feature = "alloc")]
    fn zstd_pages_decode() {
        let page = page_pattern();
        let frame = ruzstd::encoding::compress_to_vec(
            &page[..],
            ruzstd::encoding::CompressionLevel::Fastest,
        );
        assert!(frame.len() < page.len());
        let mut out = vec![0u8; 4096];
        decode_page(FLAG_ZSTD, &frame, &mut out).unwrap();
        assert_eq!(out, page);
        let mut short = vec![0u8; 4000];
        assert!(decode_page(FLAG_ZSTD, &frame, &mut short).is_err());
        for cut in 0..frame.len() {
            assert!(decode_page(FLAG_ZSTD, &frame[..cut], &mut out).is_err());
        }
    }

    #[test]
    fn zstd_window_is_read_from_the_frame_header() {
        // Single segment, 2-byte content size 4096 (stored as 4096 - 256).
        let header = [0x28, 0xb5, 0x2f, 0xfd, 0b0110_0000, 0x00, 0x0f];
        assert_eq!(zstd_window(&header), Some(4096));
        // Window descriptor exponent 30: 1 TiB, refused before ruzstd runs.
        let huge = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 30 << 3];
        assert_eq!(zstd_window(&huge), Some(1 << 40));
        let mut out = vec![0u8; 4096];
        assert!(decode_page(FLAG_ZSTD, &huge, &mut out).is_err());
    }
}
