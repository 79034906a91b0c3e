//! [`Machine`]: build a simulated machine, run a body on every CPU, get a
//! report of what each CPU did.

use std::fmt;
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crashkit_nmi::{CpuIndex, Platform, RegisterFrame};

use crate::slot::CpuState;
use crate::{SimCpu, SimCpuStats, SimPlatform, signals};

/// Largest machine the simulation builds (threads are cheap, but a test
/// with more CPUs than this is a mistake).
pub const MAX_CPUS: usize = 64;

/// How long CPUs still running at the deadline get to notice
/// [`SimCpu::stop_requested`] and leave before they are abandoned.
const GRACE: Duration = Duration::from_secs(1);

/// Which simulated exception or interrupt a CPU takes. Each kind is blocked
/// while its own entry runs and nests freely inside the others, so a CPU can
/// be up to five contexts deep (its body plus one of each).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EntryKind {
    /// A non-maskable interrupt (`SIGUSR1`; one latches, the rest coalesce).
    Nmi,
    /// A machine check (`SIGUSR2`; latches like an NMI).
    MachineCheck,
    /// A debug trap (a realtime signal: every occurrence is delivered).
    Debug,
    /// A maskable interrupt (a realtime signal), blocked by
    /// [`SimCpu::disable_interrupts`].
    Interrupt,
}

impl EntryKind {
    /// Every kind, in [`index`](Self::index) order.
    pub const ALL: [EntryKind; 4] = [
        EntryKind::Nmi,
        EntryKind::MachineCheck,
        EntryKind::Debug,
        EntryKind::Interrupt,
    ];

    /// Position in [`ALL`](Self::ALL), for per-kind tables.
    pub const fn index(self) -> usize {
        self as usize
    }
}

/// The machine's entry function, the simulated IDT: runs on the
/// interrupted CPU's thread, in its signal handler, with the interrupted
/// registers.
pub type EntryFn = dyn Fn(&SimCpu, EntryKind, &mut RegisterFrame) + Send + Sync;

/// How one CPU's run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CpuOutcome {
    /// The body returned.
    Finished,
    /// The CPU called [`SimCpu::park`].
    Parked,
    /// The body or the entry function panicked, with this message.
    Panicked(String),
    /// Still running at the deadline.
    Hung,
}

/// What a run did, per CPU.
#[derive(Clone, Debug)]
pub struct RunReport {
    /// Outcome of CPU `i` at index `i`.
    pub outcomes: Vec<CpuOutcome>,
    /// Delivery counters of CPU `i` at index `i`, at the end of the run.
    pub stats: Vec<SimCpuStats>,
    /// Time from the start of the bodies to the last CPU's end (or the
    /// deadline).
    pub elapsed: Duration,
}

impl RunReport {
    /// Whether every CPU's body returned.
    pub fn all_finished(&self) -> bool {
        self.outcomes.iter().all(|o| *o == CpuOutcome::Finished)
    }

    /// Panic with the whole report unless every CPU finished: the usual last
    /// line of a simulation test.
    #[track_caller]
    pub fn assert_all_finished(&self) {
        assert!(self.all_finished(), "not every CPU finished:\n{self}");
    }

    /// Sum of the delivery counters over all CPUs.
    pub fn total(&self) -> SimCpuStats {
        let mut total = SimCpuStats::default();
        for s in &self.stats {
            total.nmis_dropped += s.nmis_dropped;
            for kind in EntryKind::ALL {
                total.sent[kind.index()] += s.sent(kind);
                total.delivered[kind.index()] += s.delivered(kind);
            }
        }
        total
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "run of {:?}:", self.elapsed)?;
        for (cpu, (outcome, s)) in self.outcomes.iter().zip(&self.stats).enumerate() {
            write!(f, "  cpu{cpu}: {outcome:?}; NMIs lost {}", s.nmis_dropped)?;
            for kind in EntryKind::ALL {
                let (sent, delivered) = (s.sent(kind), s.delivered(kind));
                write!(f, "; {kind:?} sent {sent} delivered {delivered}")?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// A simulated machine: `cpus` CPUs sharing one entry function.
#[derive(Debug)]
pub struct Machine {
    platform: SimPlatform,
}

impl Machine {
    /// A machine of `cpus` CPUs (1..=[`MAX_CPUS`]) that runs `entry` when a
    /// CPU takes an NMI or a machine check.
    ///
    /// # Panics
    /// If `cpus` is 0 or above [`MAX_CPUS`] (a test bug).
    pub fn new(
        cpus: usize,
        entry: impl Fn(&SimCpu, EntryKind, &mut RegisterFrame) + Send + Sync + 'static,
    ) -> Self {
        assert!(
            (1..=MAX_CPUS).contains(&cpus),
            "a simulated machine has 1..={MAX_CPUS} CPUs, not {cpus}"
        );
        signals::install();
        Self {
            platform: SimPlatform::new(cpus, Box::new(entry)),
        }
    }

    /// The machine's platform (shared with every CPU), for setting knobs and
    /// building the code under test before the run.
    pub fn platform(&self) -> &SimPlatform {
        &self.platform
    }

    /// Start every CPU on `body`, all released at once, and wait until each
    /// one finished, parked or panicked, or `deadline` passed. Then ask the
    /// rest to stop ([`SimCpu::stop_requested`]) and report them
    /// [`CpuOutcome::Hung`]; they get one more second to leave and are then
    /// abandoned (their threads leak, like parked ones).
    pub fn run(
        self,
        deadline: Duration,
        body: impl Fn(&SimCpu) + Send + Sync + 'static,
    ) -> RunReport {
        let body: Arc<dyn Fn(&SimCpu) + Send + Sync> = Arc::new(body);
        let cpus = self.platform.cpu_count();
        let start = Arc::new(Barrier::new(cpus + 1));
        let mut threads: Vec<Option<JoinHandle<()>>> = Vec::with_capacity(cpus);
        for index in 0..cpus {
            let (platform, start, body) = (self.platform.clone(), start.clone(), body.clone());
            let cpu = CpuIndex::try_from(index).unwrap_or(CpuIndex::UNKNOWN);
            let thread = std::thread::Builder::new()
                .name(format!("sim-{cpu}"))
                .spawn(move || SimCpu::run_on_thread(cpu, platform, &start, &*body))
                .expect("spawning a simulated CPU thread");
            threads.push(Some(thread));
        }
        start.wait();
        let began = Instant::now();

        let settled = |state: CpuState| matches!(state, CpuState::Parked | CpuState::Leaving);
        let slots = self.platform.slots();
        while began.elapsed() < deadline && !slots.iter().all(|s| settled(s.state())) {
            std::thread::sleep(Duration::from_micros(200));
        }
        let elapsed = began.elapsed();
        let hung: Vec<bool> = slots.iter().map(|s| !settled(s.state())).collect();
        self.platform.request_stop();

        // Give CPUs that were still running a grace period to leave, then
        // reap every thread that left.
        let grace_end = Instant::now() + GRACE;
        while hung
            .iter()
            .zip(slots)
            .any(|(&h, s)| h && !settled(s.state()))
            && Instant::now() < grace_end
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut outcomes = Vec::with_capacity(cpus);
        for ((slot, thread), was_hung) in slots.iter().zip(&mut threads).zip(hung) {
            // A thread that left has passed its last handshake; joining waits
            // for its few remaining instructions. Its panics were all caught,
            // so the join result carries nothing.
            if slot.state() == CpuState::Leaving
                && let Some(thread) = thread.take()
            {
                let _ = thread.join();
            }
            outcomes.push(if was_hung {
                CpuOutcome::Hung
            } else {
                slot.take_outcome().unwrap_or(CpuOutcome::Hung)
            });
        }
        let stats = (0..cpus)
            .map(|i| {
                let cpu = CpuIndex::try_from(i).unwrap_or(CpuIndex::UNKNOWN);
                self.platform.stats(cpu).unwrap_or_default()
            })
            .collect();
        RunReport {
            outcomes,
            stats,
            elapsed,
        }
    }
}
