//! [`Socket`]: where a simulated machine's platform plugs into a kernel's
//! statics.
//!
//! A kernel keeps its platform in a static built at compile time
//! (`crashkit::kernel!`'s `platform:` field); a simulated machine exists only
//! once a test builds it. A `Socket` is that static: empty until the test
//! plugs its machine's [`SimPlatform`] in ([`Socket::plug`]), then the
//! machine's platform for good. Empty, it is a platform with no CPUs: every
//! caller is a CPU without an index ([`CpuIndex::UNKNOWN`]), the clock reads
//! 0, no NMI can be sent.
//!
//! | state | `current_cpu` | `cpu_count` | NMIs |
//! |-------|---------------|-------------|------|
//! | empty (from `new`) | `CpuIndex::UNKNOWN` | 0 | `Unavailable` |
//! | plugged (by `plug`, once) | the machine's | the machine's | the machine's |

use std::sync::OnceLock;

use crashkit_nmi::{CpuIndex, NmiSendError, Platform};

use crate::{EntryKind, SimPlatform};

/// A static home for one simulated machine's platform (see the module
/// docs).
#[derive(Debug, Default)]
pub struct Socket {
    platform: OnceLock<SimPlatform>,
}

/// [`Socket::plug`] on a socket that already holds a machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AlreadyPlugged;

impl core::fmt::Display for AlreadyPlugged {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("the socket already holds a machine (a kernel's statics serve one machine)")
    }
}

impl std::error::Error for AlreadyPlugged {}

impl Socket {
    /// An empty socket.
    pub const fn new() -> Self {
        Self {
            platform: OnceLock::new(),
        }
    }

    /// Plug `platform` in, for good.
    pub fn plug(&self, platform: &SimPlatform) -> Result<(), AlreadyPlugged> {
        self.platform
            .set(platform.clone())
            .map_err(|_| AlreadyPlugged)
    }

    /// The machine's platform, once plugged.
    pub fn platform(&self) -> Option<&SimPlatform> {
        self.platform.get()
    }
}

impl Platform for Socket {
    fn current_cpu(&self) -> CpuIndex {
        self.platform()
            .map_or(CpuIndex::UNKNOWN, Platform::current_cpu)
    }

    fn cpu_count(&self) -> usize {
        self.platform().map_or(0, Platform::cpu_count)
    }

    fn relax(&self) {
        std::thread::yield_now();
    }

    fn now_ns(&self) -> u64 {
        self.platform().map_or(0, Platform::now_ns)
    }

    fn send_nmi(&self, target: CpuIndex) -> Result<(), NmiSendError> {
        match self.platform() {
            Some(platform) => platform.send_nmi(target),
            None => Err(NmiSendError::Unavailable),
        }
    }

    fn send_nmi_all_but_self(&self) -> Result<(), NmiSendError> {
        match self.platform() {
            Some(platform) => platform.send_nmi_all_but_self(),
            None => Err(NmiSendError::Unavailable),
        }
    }

    /// The machine's [`park`](SimPlatform::park) (which panics on a thread
    /// that is not one of its CPUs).
    ///
    /// # Panics
    /// On an empty socket: no CPU to park.
    fn park(&self) -> ! {
        match self.platform() {
            Some(platform) => platform.park(),
            None => panic!("Socket::park: no machine plugged in, so no CPU to park"),
        }
    }

    fn disable_interrupts(&self) {
        let _previous = crate::signals::mask(
            crate::signals::signals_of(&[EntryKind::Interrupt]).as_slice(),
            true,
        );
    }

    /// As the machine's (the calling thread's own signal mask, plugged or
    /// not).
    fn save_and_disable_interrupts(&self) -> bool {
        crate::signals::save_and_block_interrupts()
    }

    fn restore_interrupts(&self, enabled: bool) {
        if enabled {
            crate::signals::unblock_interrupts();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{CpuOutcome, Machine};

    static EMPTY: Socket = Socket::new();

    #[test]
    fn an_empty_socket_is_a_machine_without_cpus() {
        assert_eq!(EMPTY.current_cpu(), CpuIndex::UNKNOWN);
        assert_eq!(EMPTY.cpu_count(), 0);
        assert_eq!(EMPTY.now_ns(), 0);
        assert_eq!(EMPTY.send_nmi(CpuIndex(0)), Err(NmiSendError::Unavailable));
        assert_eq!(
            EMPTY.send_nmi_all_but_self(),
            Err(NmiSendError::Unavailable)
        );
    }

    #[test]
    fn a_plugged_socket_is_its_machine_and_plugs_once() {
        static SOCKET: Socket = Socket::new();
        let machine = Machine::new(2, |_, _, _| {});
        assert_eq!(SOCKET.plug(machine.platform()), Ok(()));
        let other = Machine::new(1, |_, _, _| {});
        assert_eq!(SOCKET.plug(other.platform()), Err(AlreadyPlugged));
        assert_eq!(SOCKET.cpu_count(), 2);
        // The test thread is not one of the machine's CPUs.
        assert_eq!(SOCKET.current_cpu(), CpuIndex::UNKNOWN);
        let report = machine.run(Duration::from_secs(20), |cpu| {
            assert_eq!(SOCKET.current_cpu(), cpu.index());
            if cpu.index() == CpuIndex(1) {
                SOCKET.park();
            }
        });
        assert_eq!(
            report.outcomes,
            [CpuOutcome::Finished, CpuOutcome::Parked],
            "{report}"
        );
    }
}
