//! [`Coalescing`]: a sink adapter that gathers the writers' small
//! positional writes into few large ones.
//!
//! Both writers write page data at increasing offsets, a page (or a
//! compressed page of a few hundred bytes) at a time, and metadata
//! (descriptors, bitmap blocks, program headers) elsewhere now and then. A
//! sink whose every write costs a system call or a device command spends
//! more on those calls than the fast codecs spend compressing. This
//! adapter keeps one run of contiguous bytes in a fixed buffer of `N`
//! bytes and hands it on when a write does not continue the run, when the
//! run would overflow the buffer, or on [`flush`](DumpSink::flush).
//!
//! Order is kept: buffered bytes always reach the inner sink before any
//! later write that is not appended to them, and before the inner flush.
//! So a descriptor never reaches the inner sink before the page data it
//! points at, and the completion protocol's flushes mean what they meant.
//!
//! Errors: a failed hand-on keeps the buffer, so a retried call (the
//! writers' bounded retries) tries it again. The error then belongs to
//! the buffered run, which started at or before the offset the writer
//! reports.

use super::DumpSink;

/// A [`DumpSink`] that buffers contiguous writes, `N` bytes at most (no
/// allocation: the buffer is part of the value; put a large one in a
/// static or a `Box`).
pub struct Coalescing<S, const N: usize> {
    inner: S,
    buffer: [u8; N],
    /// Offset of `buffer[0]` in the dump.
    start: u64,
    /// Bytes buffered.
    len: usize,
}

impl<S, const N: usize> core::fmt::Debug for Coalescing<S, N> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Coalescing")
            .field("capacity", &N)
            .field("start", &self.start)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl<S: DumpSink, const N: usize> Coalescing<S, N> {
    /// Buffer writes to `inner`.
    pub const fn new(inner: S) -> Self {
        Self {
            inner,
            buffer: [0; N],
            start: 0,
            len: 0,
        }
    }

    /// The inner sink, once everything buffered has been handed on (call
    /// [`flush`](DumpSink::flush) first; unflushed bytes are dropped).
    pub fn into_inner(self) -> S {
        self.inner
    }

    /// The inner sink (what it holds lacks the buffered run until a
    /// flush).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Hand the buffered run to the inner sink; on failure it stays
    /// buffered.
    fn drain(&mut self) -> Result<(), S::Error> {
        if self.len > 0 {
            let run = self.buffer.get(..self.len).unwrap_or(&[]);
            self.inner.write_at(self.start, run)?;
            self.len = 0;
        }
        Ok(())
    }
}

impl<S: DumpSink, const N: usize> DumpSink for Coalescing<S, N> {
    type Error = S::Error;

    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), S::Error> {
        let continues = self.start.checked_add(self.len as u64) == Some(offset);
        if self.len > 0 && (!continues || self.len + bytes.len() > N) {
            self.drain()?;
        }
        if bytes.len() >= N {
            return self.inner.write_at(offset, bytes);
        }
        if self.len == 0 {
            self.start = offset;
        }
        match self.buffer.get_mut(self.len..self.len + bytes.len()) {
            Some(slot) => {
                slot.copy_from_slice(bytes);
                self.len += bytes.len();
                Ok(())
            }
            // Unreachable: the run was drained above unless the bytes fit.
            None => self.inner.write_at(offset, bytes),
        }
    }

    fn flush(&mut self) -> Result<(), S::Error> {
        self.drain()?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::vec::Vec;

    /// Records every inner call; fails the writes whose index is listed.
    #[derive(Default)]
    struct Log {
        calls: Vec<(u64, Vec<u8>)>,
        flushes: Vec<usize>,
        fail: Vec<usize>,
        attempts: usize,
    }

    impl DumpSink for Log {
        type Error = usize;
        fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), usize> {
            self.attempts += 1;
            if self.fail.contains(&self.attempts) {
                return Err(self.attempts);
            }
            self.calls.push((offset, bytes.to_vec()));
            Ok(())
        }
        fn flush(&mut self) -> Result<(), usize> {
            self.flushes.push(self.calls.len());
            Ok(())
        }
    }

    #[test]
    fn contiguous_writes_become_one() {
        let mut sink = Coalescing::<_, 16>::new(Log::default());
        for (i, chunk) in [b"abc".as_slice(), b"defg", b"h"].into_iter().enumerate() {
            let at = [100, 103, 107][i];
            assert_eq!(sink.write_at(at, chunk), Ok(()));
        }
        assert!(
            sink.inner.calls.is_empty(),
            "nothing handed on before a flush"
        );
        assert_eq!(sink.flush(), Ok(()));
        assert_eq!(sink.inner.calls, [(100, b"abcdefgh".to_vec())]);
        assert_eq!(
            sink.inner.flushes,
            [1],
            "the run reaches the sink before its flush"
        );
    }

    #[test]
    fn a_jump_hands_on_the_run_first() {
        let mut sink = Coalescing::<_, 16>::new(Log::default());
        sink.write_at(0, b"page").unwrap();
        sink.write_at(4, b"data").unwrap();
        // A descriptor elsewhere, then more data after the first run.
        sink.write_at(500, b"desc").unwrap();
        sink.write_at(8, b"more").unwrap();
        sink.flush().unwrap();
        assert_eq!(
            sink.inner.calls,
            [
                (0, b"pagedata".to_vec()),
                (500, b"desc".to_vec()),
                (8, b"more".to_vec())
            ]
        );
    }

    #[test]
    fn overflow_and_large_writes_keep_order_and_bytes() {
        let mut sink = Coalescing::<_, 8>::new(Log::default());
        sink.write_at(0, b"12345").unwrap();
        sink.write_at(5, b"6789").unwrap(); // 9 > 8: the first run goes alone
        sink.write_at(9, b"large write!").unwrap(); // >= N: straight through
        sink.write_at(21, b"x").unwrap();
        sink.flush().unwrap();
        assert_eq!(
            sink.inner.calls,
            [
                (0, b"12345".to_vec()),
                (5, b"6789".to_vec()),
                (9, b"large write!".to_vec()),
                (21, b"x".to_vec())
            ]
        );
    }

    #[test]
    fn an_overwrite_lands_after_the_bytes_it_replaces() {
        let mut sink = Coalescing::<_, 16>::new(Log::default());
        sink.write_at(0, b"header-incomplete").unwrap();
        sink.write_at(0, b"HEADER").unwrap();
        sink.flush().unwrap();
        let mut file = [0u8; 17];
        for (at, bytes) in &sink.inner.calls {
            file[*at as usize..*at as usize + bytes.len()].copy_from_slice(bytes);
        }
        assert_eq!(&file, b"HEADER-incomplete");
    }

    #[test]
    fn a_failed_hand_on_keeps_the_run_for_the_retry() {
        let mut sink = Coalescing::<_, 16>::new(Log {
            fail: std::vec![1],
            ..Log::default()
        });
        sink.write_at(0, b"abcd").unwrap();
        assert_eq!(sink.write_at(100, b"zz"), Err(1), "the drain failed");
        // The writer retries the same call.
        assert_eq!(sink.write_at(100, b"zz"), Ok(()));
        sink.flush().unwrap();
        assert_eq!(
            sink.inner.calls,
            [(0, b"abcd".to_vec()), (100, b"zz".to_vec())]
        );
    }

    #[test]
    fn offsets_at_the_end_of_the_range_do_not_overflow() {
        let mut sink = Coalescing::<_, 16>::new(Log::default());
        sink.write_at(u64::MAX - 1, b"a").unwrap();
        sink.write_at(0, b"b").unwrap();
        sink.flush().unwrap();
        assert_eq!(
            sink.inner.calls,
            [(u64::MAX - 1, b"a".to_vec()), (0, b"b".to_vec())]
        );
    }
}
