//! Fuzz crashkit's page encoders (zlib from the page deflate at every
//! level, LZO1X, snappy): any page, compressed by each, must decode back
//! to itself through the reader's decoders, and an encoder must never claim an
//! output of a page or more. A panic or a mismatch is a bug.
//!
//! The input is stretched to a whole page by repeating it with a running
//! offset, so short inputs still make pages of every shape (runs, repeats
//! at every distance, literals).

#![no_main]

use crashkit_dump_format::compressed::codec::decode_page;
use crashkit_dump_format::compressed::deflate::Deflate;
use crashkit_dump_format::compressed::header::{FLAG_LZO, FLAG_SNAPPY, FLAG_ZLIB};
use crashkit_dump_format::compressed::lzo::Lzo1x;
use crashkit_dump_format::compressed::snappy::Snappy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    // Mode bit 0: a whole page (stretched) or the input as it is (shorter
    // inputs are what the encoders see for a partial page); the other
    // bits choose the page deflate's level.
    let page: Vec<u8> = if mode & 1 == 0 || rest.is_empty() || rest.len() > 4096 {
        if rest.is_empty() {
            vec![mode; 4096]
        } else {
            (0..4096)
                .map(|i| rest[i % rest.len()].wrapping_add((i / rest.len()) as u8 & mode))
                .collect()
        }
    } else {
        rest.to_vec()
    };
    let mut out = [0u8; 4096];
    let mut back = vec![0u8; page.len()];
    let level = 1 + (mode >> 1) % Deflate::MAX_LEVEL;
    let mut deflate = Box::new(Deflate::with_level(level));
    let mut lzo = Box::new(Lzo1x::new());
    let mut snappy = Box::new(Snappy::new());
    type Compress<'a> = &'a mut dyn FnMut(&[u8], &mut [u8]) -> Option<usize>;
    let encoders: [(u32, Compress); 3] = [
        (FLAG_ZLIB, &mut |p, o| deflate.compress(p, o)),
        (FLAG_LZO, &mut |p, o| lzo.compress(p, o)),
        (FLAG_SNAPPY, &mut |p, o| snappy.compress(p, o)),
    ];
    for (flag, encode) in encoders {
        if let Some(n) = encode(&page, &mut out) {
            assert!(
                n < page.len(),
                "codec {flag:#x}: {n} bytes for {}",
                page.len()
            );
            decode_page(flag, &out[..n], &mut back)
                .unwrap_or_else(|e| panic!("codec {flag:#x}: {e:?}"));
            assert!(back == page, "codec {flag:#x}: a different page came back");
        }
    }
});
