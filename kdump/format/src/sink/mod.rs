//! Where both dump writers read from and write to: [`PhysMemory`] (the
//! crashed machine's pages), [`DumpSink`] (positional writes with a flush
//! as the ordering point), [`PageFilter`] (the integrator's exclusions),
//! [`Coalescing`] (a sink adapter that merges small writes), and the
//! bounded retry policy of sink operations.

mod coalesce;

pub use coalesce::Coalescing;

/// Run a sink operation, retrying it up to `retries` more times after a
/// failure (the writers' bounded retry policy); `on_retry` counts each
/// retry. The last error is returned when all attempts fail.
pub(crate) fn with_retries<E>(
    retries: u32,
    mut on_retry: impl FnMut(),
    mut op: impl FnMut() -> Result<(), E>,
) -> Result<(), E> {
    let mut attempts_left = retries;
    loop {
        match op() {
            Ok(()) => return Ok(()),
            Err(error) if attempts_left == 0 => return Err(error),
            Err(_) => {
                attempts_left -= 1;
                on_retry();
            }
        }
    }
}

/// Where the dump goes: positional writes, so headers can be completed
/// after the pages. A sink buffers as it likes; [`flush`](Self::flush) is
/// the ordering point the completion protocol relies on (everything written
/// before it is durable before anything written after it).
pub trait DumpSink {
    /// The sink's error.
    type Error;

    /// Write `bytes` at `offset` from the start of the dump.
    fn write_at(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Self::Error>;

    /// Make every earlier write durable before any later one.
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Physical memory of the crashed machine, a page at a time.
pub trait PhysMemory {
    /// The page at physical address `phys` (page aligned), or `None` if it
    /// cannot be read (it is then left out and counted).
    fn page(&mut self, phys: u64) -> Option<&[u8; crate::PAGE_SIZE as usize]>;
}

/// The integrator's page filter: `true` leaves the page out (free pages,
/// user pages: what makedumpfile's dump levels do for Linux).
pub trait PageFilter {
    /// Whether the page at `phys` is left out of the dump.
    fn exclude(&mut self, phys: u64) -> bool;
}

impl<F: FnMut(u64) -> bool> PageFilter for F {
    fn exclude(&mut self, phys: u64) -> bool {
        self(phys)
    }
}
