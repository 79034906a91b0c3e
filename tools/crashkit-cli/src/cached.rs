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
            match read {
                Ok(bytes) => out[done..done + take].copy_from_slice(&bytes[within..within + take]),
                Err(why) => return Err(why.clone()),
            }
            done += take;
        }
        Ok(out)
    }

    /// The little-endian word at `addr`.
    pub fn u64(&self, addr: u64) -> Result<u64, String> {
        self.bytes::<8>(addr).map(u64::from_le_bytes)
    }
}
