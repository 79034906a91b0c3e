//! Writing the flattened form: any dump writer's positional writes as a
//! stream, for sinks that cannot seek (a pipe, a network socket, a serial
//! line).
//!
//! [`FlatSink`] is a [`DumpSink`] over a [`StreamSink`]: it sends the
//! 4096-byte flattened header first, then one record (`offset` i64,
//! `size` i64, big-endian, then the bytes) per positional write, and the end
//! marker (offset and size -1) from [`FlatSink::finish`]. Reassembled by
//! writing each record at its offset (`makedumpfile -R`), later records
//! over earlier ones, the stream gives exactly the file the same writes
//! make on a seekable sink. No allocation.

use crate::sink::DumpSink;

/// A destination that only appends.
pub trait StreamSink {
    /// The sink's error.
    type Error;

    /// Append `bytes`.
    fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error>;

    /// Make what was appended durable (a no-op for most streams).
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// The flattened header: `"makedumpfile"` NUL-padded to 16 bytes, type 1
/// and version 1 as big-endian i64, zeros to 4096 bytes.
pub fn flat_header() -> [u8; 4096] {
    let mut header = [0u8; 4096];
    crate::bytes::put(&mut header, 0, b"makedumpfile");
    crate::bytes::put(&mut header, 16, &1i64.to_be_bytes());
    crate::bytes::put(&mut header, 24, &1i64.to_be_bytes());
    header
}

/// Positional writes turned into a flattened stream.
#[derive(Debug)]
pub struct FlatSink<W> {
    inner: W,
    started: bool,
}

impl<W: StreamSink> FlatSink<W> {
    /// A flattened stream into `inner`; the header goes out with the first
    /// write.
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            started: false,
        }
    }

    fn start(&mut self) -> Result<(), W::Error> {
        if !self.started {
            self.inner.write_all(&flat_header())?;
            self.started = true;
        }
        Ok(())
    }

    /// End the stream (the end marker) and give the inner sink back. A
    /// stream that is never finished reads as cut.
    pub fn finish(mut self) -> Result<W, W::Error> {
        self.start()?;
        self.inner.write_all(&(-1i64).to_be_bytes())?;
        self.inner.write_all(&(-1i64).to_be_bytes())?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: StreamSink> DumpSink for FlatSink<W> {
    type Error = W::Error;

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), W::Error> {
        self.start()?;
        // No record for an empty write: makedumpfile -R stops at a record of
        // size 0 and then reports a missing end marker (found by the
        // byte-identity check).
        if bytes.is_empty() {
            return Ok(());
        }
        // Offsets and sizes of a dump fit in i64; the record carries them
        // as the format's signed big-endian integers.
        self.inner.write_all(&(offset as i64).to_be_bytes())?;
        self.inner.write_all(&(bytes.len() as i64).to_be_bytes())?;
        self.inner.write_all(bytes)
    }

    fn flush(&mut self) -> Result<(), W::Error> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Bytes(Vec<u8>);

    impl StreamSink for Bytes {
        type Error = core::convert::Infallible;
        fn write_all(&mut self, bytes: &[u8]) -> Result<(), Self::Error> {
            self.0.extend_from_slice(bytes);
            Ok(())
        }
    }

    #[test]
    fn records_reassemble_to_the_positional_file() {
        let mut sink = FlatSink::new(Bytes(Vec::new()));
        sink.write_at(10, b"world").unwrap();
        sink.write_at(4, b"hello ").unwrap();
        sink.write_at(10, b"WORLD").unwrap();
        sink.write_at(0, b"").unwrap();
        let stream = sink.finish().unwrap().0;
        assert!(crate::compressed::flat::is_flattened(&stream));
        let source = crate::compressed::flat::Source::new(&stream).unwrap();
        assert_eq!(source.to_vec(4, 11).as_deref(), Some(&b"hello WORLD"[..]));
        let crate::compressed::flat::Source::Flattened(_, index) = source else {
            panic!("not flattened");
        };
        assert!(index.complete);
        assert_eq!(index.records, 3);
    }
}
