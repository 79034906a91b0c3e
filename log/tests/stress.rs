//! The rings under load on the host simulation (threads as CPUs, signals as
//! NMIs and machine checks, a realtime signal as a maskable interrupt):
//! every CPU logs in its normal context with interrupts masked for each
//! frame (as crashkit's writer does), its interrupts log into the same ring
//! between frames, its NMIs log into the NMI ring and, half the time, try
//! the normal ring (re-entry: the message is dropped), machine checks log
//! into theirs and try the NMI ring. Then CPU 0 stops the others with NMIs
//! in the middle of whatever they write, and the rings are read as a dump's
//! reader reads them: every frame read is a message whole (its bytes follow
//! from its stamp), no torn frame decodes, and every message is accounted
//! for: read, overwritten, torn or dropped and counted.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use crashkit_log::read::{AreaView, Item};
use crashkit_log::{Begin, LogContext, LogRings};
use crashkit_nmi::{CpuIndex, Platform};
use crashkit_sim::{CpuOutcome, EntryKind, Machine};

const CPUS: usize = 4;
type Rings = LogRings<CPUS, 1024>;

/// Writer kinds, for the stamp and the counters.
const BODY: u64 = 0;
const IRQ: u64 = 1;
const NMI: u64 = 2;
const MCE: u64 = 3;

/// A unique stamp: CPU, writer kind, counter.
fn stamp(cpu: usize, kind: u64, n: u64) -> u64 {
    (cpu as u64) << 48 | kind << 40 | n
}

/// The message a stamp stands for (its length and bytes follow from it).
fn message(stamp: u64) -> Vec<u8> {
    let len = (stamp.wrapping_mul(0x9E37_79B9) >> 7) as usize % 40;
    (0..len)
        .map(|i| (stamp.wrapping_mul(31).wrapping_add(i as u64 * 7) % 7 * 41) as u8)
        .collect()
}

/// Per CPU, per ring: attempts, and drops seen by the writers.
struct Counts {
    attempts: [[AtomicU64; 3]; CPUS],
    drops: [[AtomicU64; 4]; CPUS],
    counters: [[AtomicU64; 4]; CPUS],
}

static COUNTS: Counts = Counts {
    attempts: [const { [const { AtomicU64::new(0) }; 3] }; CPUS],
    drops: [const { [const { AtomicU64::new(0) }; 4] }; CPUS],
    counters: [const { [const { AtomicU64::new(0) }; 4] }; CPUS],
};

/// One message by writer `kind` of `cpu` into its `context` ring; slow
/// (spins between the bytes) so other writers land inside it.
fn log(rings: &Rings, cpu: usize, kind: u64, context: LogContext, slow: bool) {
    let Some(ring) = rings.ring(cpu, context) else {
        return;
    };
    let n = COUNTS.counters[cpu][kind as usize].fetch_add(1, SeqCst);
    let stamp = stamp(cpu, kind, n);
    COUNTS.attempts[cpu][context as usize].fetch_add(1, SeqCst);
    let began = ring.begin(stamp);
    if began == Begin::Dropped {
        COUNTS.drops[cpu][kind as usize].fetch_add(1, SeqCst);
    }
    for byte in message(stamp) {
        ring.write(began, &[byte]);
        if slow {
            for _ in 0..50 {
                std::hint::spin_loop();
            }
        }
    }
    ring.end(began);
}

#[test]
fn signal_nmis_in_half_written_frames_lose_nothing_uncounted() {
    let mut torn_seen = 0;
    let mut dropped_seen = 0;
    for round in 0..4 {
        for cpu in 0..CPUS {
            for c in &COUNTS.attempts[cpu] {
                c.store(0, SeqCst);
            }
            for c in COUNTS.drops[cpu].iter().chain(&COUNTS.counters[cpu]) {
                c.store(0, SeqCst);
            }
        }
        let rings: &'static Rings = Box::leak(Box::new(Rings::new()));
        rings.install(&[round as u8; 20], 0);
        let stopping: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
        let machine = Machine::new(CPUS, move |cpu, kind, _frame| {
            let me = cpu.index().0 as usize;
            // NMI and machine-check gates clear IF: no maskable interrupt
            // inside their handlers (signals do not block each other).
            let _masked = (kind != EntryKind::Interrupt).then(|| cpu.disable_interrupts());
            match kind {
                EntryKind::Nmi => {
                    if stopping.load(SeqCst) && me != 0 {
                        cpu.park();
                    }
                    log(rings, me, NMI, LogContext::Nmi, true);
                    if COUNTS.counters[me][NMI as usize]
                        .load(SeqCst)
                        .is_multiple_of(2)
                    {
                        log(rings, me, NMI, LogContext::Normal, false);
                    }
                }
                EntryKind::MachineCheck => {
                    log(rings, me, MCE, LogContext::MachineCheck, false);
                    log(rings, me, MCE, LogContext::Nmi, false);
                }
                EntryKind::Interrupt => log(rings, me, IRQ, LogContext::Normal, false),
                EntryKind::Debug => {}
            }
        });
        let report = machine.run(Duration::from_secs(30), move |cpu| {
            let me = cpu.index().0 as usize;
            let platform = cpu.platform();
            if me == 0 {
                let until = Instant::now() + Duration::from_millis(250);
                let mut target = 1;
                let mut i = 0u32;
                while Instant::now() < until {
                    let kind = match i % 4 {
                        0 | 1 => EntryKind::Nmi,
                        2 => EntryKind::Interrupt,
                        _ => EntryKind::MachineCheck,
                    };
                    let _ = platform.raise(CpuIndex(target), kind);
                    target = target % (CPUS as u32 - 1) + 1;
                    i += 1;
                    for _ in 0..2_000 {
                        std::hint::spin_loop();
                    }
                }
                stopping.store(true, SeqCst);
                for other in 1..CPUS as u32 {
                    let _ = platform.send_nmi(CpuIndex(other));
                }
                return;
            }
            while !cpu.stop_requested() {
                // crashkit's normal-context writer: interrupts off for one frame.
                let _masked = cpu.disable_interrupts();
                log(rings, me, BODY, LogContext::Normal, true);
            }
        });
        assert_eq!(report.outcomes[0], CpuOutcome::Finished, "{report}");

        let mut bytes = vec![0u8; Rings::SIZE];
        rings.copy_to(&mut bytes);
        let area = AreaView::parse(&bytes).expect("a valid area");
        for ring in area.rings() {
            let (cpu, context) = (ring.cpu, ring.context);
            let mut last: Option<u32> = None;
            let mut damaged = 0;
            let summary = ring.read(|item| match item {
                Item::Frame(frame) => {
                    assert_eq!(
                        frame.defmt,
                        &message(frame.stamp)[..],
                        "round {round}: CPU {cpu} {context:?}: frame {} is not a whole message",
                        frame.seq
                    );
                    assert_eq!(frame.stamp >> 48, cpu as u64, "a frame of another CPU");
                    if let Some(last) = last {
                        assert_eq!(frame.seq, last + 1, "frames out of order");
                    }
                    last = Some(frame.seq);
                }
                Item::Damaged { .. } => damaged += 1,
            });
            assert_eq!(
                damaged, 0,
                "round {round}: CPU {cpu} {context:?}: {summary:?}"
            );
            assert_eq!(
                summary.missing, 0,
                "round {round}: CPU {cpu} {context:?}: {summary:?}"
            );
            // Every attempt either began a frame or was dropped and counted.
            let attempts = COUNTS.attempts[cpu][context as usize].load(SeqCst);
            assert_eq!(
                u64::from(ring.next_seq) + u64::from(ring.dropped),
                attempts,
                "round {round}: CPU {cpu} {context:?}"
            );
            // Every frame begun is read, overwritten or torn (being written).
            let torn = u32::from(summary.torn_bytes > 0 || ring.depth > 0);
            assert_eq!(
                summary.frames + summary.overwritten + torn,
                ring.next_seq,
                "round {round}: CPU {cpu} {context:?}: {summary:?}"
            );
            torn_seen += torn;
            dropped_seen += ring.dropped;
        }
        // Maskable interrupts never found the normal ring half written:
        // the writer masks them for each frame.
        for cpu in 0..CPUS {
            assert_eq!(COUNTS.drops[cpu][IRQ as usize].load(SeqCst), 0, "CPU {cpu}");
        }
    }
    // The NMIs did land inside frames, and the stop did tear some: the
    // checks above checked something.
    assert!(dropped_seen > 0, "no message was ever dropped by re-entry");
    assert!(torn_seen > 0, "the stop never caught a frame half written");
}
