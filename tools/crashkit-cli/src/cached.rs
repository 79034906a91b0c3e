//! The crashed kernel's memory read a page at a time through a bounded
//! cache: lookups that make many small reads close together (ORC's binary
//! searches, a stack walk's words) read each page of the dump once.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::symbols::kallsyms::KernelMemory;

/// The most pages the cache holds (1 MiB) before it starts over.
const MOST_PAGES: usize = 256;

/// `memory`, cached by page; a page the dump lacks keeps why.
pub struct Cached<'m> {
    memory: &'m dyn KernelMemory,
    pages: RefCell<HashMap<u64, Result<Vec<u8>, String>>>,
}

impl<'m> Cached<'m> {
    /// An empty cache over `memory`.
    pub fn new(memory: &'m dyn KernelMemory) -> Self {
        Self {
            memory,
            pages: RefCell::new(HashMap::new()),
        }
    }

    /// The `N` bytes at `addr` (they may cross a page), or why not.
    pub fn bytes<const N: usize>(&self, addr: u64) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        let mut done = 0;
        while done < N {
            let at = addr.wrapping_add(done as u64);
            let page = at & !0xfff;
            let within = (at - page) as usize;
            let take = (4096 - within).min(N - done);
            let mut pages = self.pages.borrow_mut();
            if pages.len() >= MOST_PAGES && !pages.contains_key(&page) {
                pages.clear();
            }
            let read = pages
                .entry(page)
                .or_insert_with(|| self.memory.read(page, 4096));
            // A reader gives the whole page or an error; a short page is
            // an error too, never a panic.
            let piece = match read {
                Ok(bytes) => bytes
                    .get(within..within + take)
                    .ok_or_else(|| format!("{at:#x}: a page of {} bytes", bytes.len()))?,
                Err(why) => return Err(why.clone()),
            };
            out[done..done + take].copy_from_slice(piece);
            done += take;
        }
        Ok(out)
    }

    /// The little-endian word at `addr`.
    pub fn u64(&self, addr: u64) -> Result<u64, String> {
        self.bytes::<8>(addr).map(u64::from_le_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// Byte `i` of the kernel half is `i % 251`; pages at and above
    /// `short` come back 100 bytes long; every read is counted.
    struct Counting {
        reads: Cell<u32>,
        short: u64,
    }

    impl KernelMemory for Counting {
        fn read(&self, addr: u64, len: usize) -> Result<Vec<u8>, String> {
            self.reads.set(self.reads.get() + 1);
            if addr >= self.short {
                return Ok(vec![0; 100]);
            }
            Ok((addr..addr + len as u64).map(|a| (a % 251) as u8).collect())
        }
    }

    #[test]
    fn reads_cross_pages_read_each_page_once_and_stay_bounded() {
        let memory = Counting {
            reads: Cell::new(0),
            short: 0xffff_ffff_8100_0000,
        };
        let cached = Cached::new(&memory);
        let base = 0xffff_ffff_8000_0ffc_u64;
        let want: Vec<u8> = (base..base + 8).map(|a| (a % 251) as u8).collect();
        assert_eq!(cached.bytes::<8>(base).unwrap().to_vec(), want);
        assert_eq!(memory.reads.get(), 2);
        assert_eq!(
            cached.u64(base).unwrap(),
            u64::from_le_bytes(want.try_into().unwrap())
        );
        assert_eq!(memory.reads.get(), 2);
        // 300 more pages: the cache starts over rather than growing.
        for page in 0..300u64 {
            cached
                .bytes::<1>(0xffff_ffff_8010_0000 + page * 4096)
                .unwrap();
        }
        assert!(cached.pages.borrow().len() <= MOST_PAGES);
        // A page returned short is an error, not a panic.
        let why = cached.bytes::<8>(0xffff_ffff_8100_0ff8).unwrap_err();
        assert!(why.contains("a page of 100 bytes"), "{why}");
    }
}
