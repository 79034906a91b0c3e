//! Small kdump-compressed files built by hand for the reader's tests: the
//! layout of `docs/dump-formats.md`, pages raw or in each codec, plain or
//! flattened.

use crashkit_dump_format::compressed::header::{
    DiskDumpHeader, FLAG_LZO, FLAG_SNAPPY, FLAG_ZLIB, PageDescriptor, SIGNATURE_KDUMP, SubHeader,
};

/// How one frame is stored.
#[derive(Clone, Debug)]
pub enum Frame {
    /// Not memory (clear in both bitmaps).
    Hole,
    /// Memory left out (clear in the second bitmap).
    Excluded,
    /// Raw bytes.
    Raw(Vec<u8>),
    /// zlib (a real deflate stream).
    Zlib(Vec<u8>),
    /// LZO1X of a page that repeats its first 4 bytes: 4 literals and one
    /// long match at distance 4.
    Lzo(Vec<u8>),
    /// snappy of a page that repeats its first 4 bytes: a literal and
    /// copies at distance 4.
    Snappy(Vec<u8>),
}

/// The page a frame decodes to, if it has one.
pub fn contents(frame: &Frame) -> Option<&[u8]> {
    match frame {
        Frame::Raw(p) | Frame::Zlib(p) | Frame::Lzo(p) | Frame::Snappy(p) => Some(p),
        Frame::Hole | Frame::Excluded => None,
    }
}

fn encode(frame: &Frame) -> Option<(u32, Vec<u8>)> {
    match frame {
        Frame::Hole | Frame::Excluded => None,
        Frame::Raw(page) => Some((0, page.clone())),
        Frame::Zlib(page) => Some((
            FLAG_ZLIB,
            miniz_oxide::deflate::compress_to_vec_zlib(page, 1),
        )),
        Frame::Lzo(page) => {
            assert!(
                page.chunks(4).all(|c| c == &page[..4]),
                "an LZO test page repeats"
            );
            // First byte 17 + 4: four literals. Then `001LLLLL` with L = 0:
            // length 2 + 31 + the extension; distance (D + 1) = 4, D in the
            // LE16's upper 14 bits. Then the end marker.
            let mut out = vec![17 + 4];
            out.extend_from_slice(&page[..4]);
            out.push(0b0010_0000);
            let mut rest = page.len() - 4 - 2 - 31;
            while rest > 255 {
                out.push(0);
                rest -= 255;
            }
            out.push(rest as u8);
            out.extend_from_slice(&(3u16 << 2).to_le_bytes());
            out.extend_from_slice(&[0x11, 0, 0]);
            Some((FLAG_LZO, out))
        }
        Frame::Snappy(page) => {
            assert!(
                page.chunks(4).all(|c| c == &page[..4]),
                "a snappy test page repeats"
            );
            let mut out = Vec::new();
            let mut n = page.len();
            loop {
                let b = (n & 0x7f) as u8;
                n >>= 7;
                if n == 0 {
                    out.push(b);
                    break;
                }
                out.push(b | 0x80);
            }
            out.push(3 << 2); // literal of 4
            out.extend_from_slice(&page[..4]);
            let mut rest = page.len() - 4;
            while rest > 0 {
                let length = rest.min(64);
                out.push((((length - 1) << 2) | 2) as u8); // copy, 2-byte offset
                out.extend_from_slice(&4u16.to_le_bytes());
                rest -= length;
            }
            Some((FLAG_SNAPPY, out))
        }
    }
}

/// A kdump-compressed file (header version 6) of `frames`, with `notes`
/// copied after the sub-header as makedumpfile does.
pub fn build(frames: &[Frame], notes: &[u8]) -> Vec<u8> {
    let block = 4096usize;
    let count = frames.len();
    let sub_blocks = (104 + notes.len()).div_ceil(block);
    let bitmap_len = count.div_ceil(8).div_ceil(block) * block;
    let mut present = vec![0u8; bitmap_len];
    let mut dumpable = vec![0u8; bitmap_len];
    let mut encoded = Vec::new();
    for (i, frame) in frames.iter().enumerate() {
        if !matches!(frame, Frame::Hole) {
            present[i / 8] |= 1 << (i % 8);
        }
        // As makedumpfile: a page that does not shrink is stored raw.
        let stored = encode(frame).map(|(flags, data)| match contents(frame) {
            Some(page) if data.len() >= page.len() => (0, page.to_vec()),
            _ => (flags, data),
        });
        if let Some(data) = stored {
            dumpable[i / 8] |= 1 << (i % 8);
            encoded.push(data);
        }
    }
    let descriptors_at = (1 + sub_blocks) * block + 2 * bitmap_len;
    let mut data_at = descriptors_at + encoded.len() * 24;
    let mut utsname = [[0u8; 65]; 6];
    utsname[4][..6].copy_from_slice(b"x86_64");
    let header = DiskDumpHeader {
        signature: *SIGNATURE_KDUMP,
        header_version: 6,
        utsname,
        timestamp: (1_733_000_000, 0),
        status: FLAG_ZLIB | FLAG_LZO | FLAG_SNAPPY,
        block_size: block as i32,
        sub_hdr_size: sub_blocks as i32,
        bitmap_blocks: (2 * bitmap_len / block) as u32,
        max_mapnr: count as u32,
        total_ram_blocks: 0,
        device_blocks: 0,
        written_blocks: 0,
        current_cpu: 0,
        // One per NT_PRSTATUS note, as makedumpfile and QEMU count.
        nr_cpus: crashkit_dump_format::notes::Notes::new(notes, 0)
            .flatten()
            .filter(|n| n.name == b"CORE" && n.n_type == 1)
            .count() as i32,
    };
    let sub = SubHeader {
        dump_level: 1,
        offset_note: (block + 104) as u64,
        size_note: notes.len() as u64,
        max_mapnr_64: count as u64,
        ..SubHeader::default()
    };
    let mut file = vec![0u8; descriptors_at];
    file[..464].copy_from_slice(&header.encode());
    file[block..block + 104].copy_from_slice(&sub.encode());
    file[block + 104..block + 104 + notes.len()].copy_from_slice(notes);
    let bitmaps = (1 + sub_blocks) * block;
    file[bitmaps..bitmaps + bitmap_len].copy_from_slice(&present);
    file[bitmaps + bitmap_len..bitmaps + 2 * bitmap_len].copy_from_slice(&dumpable);
    let mut data = Vec::new();
    for (flags, bytes) in &encoded {
        let descriptor = PageDescriptor {
            offset: data_at as u64,
            size: bytes.len() as u32,
            flags: *flags,
            page_flags: 0,
        };
        file.extend_from_slice(&descriptor.encode());
        data_at += bytes.len();
        data.extend_from_slice(bytes);
    }
    file.extend_from_slice(&data);
    file
}

/// `file` as a flattened stream: records of `chunk` bytes, in order.
pub fn flatten(file: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = vec![0u8; 4096];
    out[..12].copy_from_slice(b"makedumpfile");
    out[16..24].copy_from_slice(&1i64.to_be_bytes());
    out[24..32].copy_from_slice(&1i64.to_be_bytes());
    for (i, piece) in file.chunks(chunk).enumerate() {
        out.extend_from_slice(&((i * chunk) as i64).to_be_bytes());
        out.extend_from_slice(&(piece.len() as i64).to_be_bytes());
        out.extend_from_slice(piece);
    }
    out.extend_from_slice(&(-1i64).to_be_bytes());
    out.extend_from_slice(&(-1i64).to_be_bytes());
    out
}

/// A mixed set of frames: every kind, pages with content derived from
/// their frame number.
pub fn mixed_frames(count: usize) -> Vec<Frame> {
    (0..count)
        .map(|i| {
            let page = super::pattern(i as u64 * 4096).to_vec();
            match i % 7 {
                0 => Frame::Raw(page),
                1 => Frame::Zlib(vec![(i % 251) as u8; 4096]),
                2 => Frame::Lzo(page[..4].repeat(1024)),
                3 => Frame::Snappy(page[..4].repeat(1024)),
                4 => Frame::Excluded,
                5 if i % 3 == 0 => Frame::Hole,
                _ => Frame::Zlib(page),
            }
        })
        .collect()
}
