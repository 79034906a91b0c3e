//! Stress: simulated CPUs nest NMI-like contexts up to and past the limit
//! while NMIs, machine checks and debug traps hit them at random moments, and the handler
//! chain is edited from ordinary and NMI context under the dispatchers.
//!
//! Invariants checked after every step, on every CPU:
//! - the body's tracker state is exactly the stack of contexts it entered
//!   (depth and kind per level), whatever interrupted it in between;
//! - an entry (NMI or machine check) sees its own level on top of the
//!   interrupted stack, and leaves the tracker word exactly as it found it;
//! - entering past [`MAX_NESTING`] fails, is counted, and changes nothing
//!   else; no exit is ever unbalanced;
//! - every dispatch runs the first registered handler exactly once, every
//!   other handler at most once, and the emergency handler (installed from
//!   NMI context mid-run) exactly once from the moment it is visible.
//!
//! Entries and bodies neither allocate nor lock (see `common`).
//!
//! Bounded: a fixed number of rounds per CPU and a deadline; the report says
//! which CPU failed how.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Duration;

use crashkit_nmi::{
    ContextKind, CpuContexts, CpuIndex, HandlerChain, MAX_NESTING, NmiEvent, NmiHandler,
    NmiOutcome, Platform, RegisterHandlerError, UnknownNmiPolicy,
};
use crashkit_sim::{EntryKind, Machine, Rng, SimCpu};

const CPUS: usize = 4;
const ROUNDS: u64 = 3000;
const DEADLINE: Duration = Duration::from_secs(120);

static CONTEXTS: CpuContexts<CPUS> = CpuContexts::new();
static CHAIN: HandlerChain<4, CPUS> = HandlerChain::new(UnknownNmiPolicy::Count);

/// Per-CPU call counters of one handler (indexed by the NMI's CPU).
struct Calls([AtomicU64; CPUS]);

impl Calls {
    const fn new() -> Self {
        Self([const { AtomicU64::new(0) }; CPUS])
    }
    fn bump(&self, event: &NmiEvent<'_>) -> NmiOutcome {
        if let Some(count) = self.0.get(event.cpu.as_usize()) {
            // Relaxed: read back only by the same CPU (program order).
            count.fetch_add(1, Relaxed);
        }
        NmiOutcome::NotMine
    }
    fn on(&self, cpu: CpuIndex) -> u64 {
        self.0.get(cpu.as_usize()).map_or(0, |c| c.load(Relaxed))
    }
}

static ALWAYS_CALLS: Calls = Calls::new();
static CHURN_CALLS: [Calls; 3] = [Calls::new(), Calls::new(), Calls::new()];
static EMERGENCY_CALLS: Calls = Calls::new();

static ALWAYS: NmiHandler = NmiHandler::new("always", |e| ALWAYS_CALLS.bump(e));
static CHURN: [NmiHandler; 3] = [
    NmiHandler::new("churn-0", |e| CHURN_CALLS[0].bump(e)),
    NmiHandler::new("churn-1", |e| CHURN_CALLS[1].bump(e)),
    NmiHandler::new("churn-2", |e| CHURN_CALLS[2].bump(e)),
];
static EMERGENCY: NmiHandler = NmiHandler::new("emergency", |e| EMERGENCY_CALLS.bump(e));

/// Tallies for the final report (Relaxed: read after the run has joined).
static DISPATCHES: AtomicU64 = AtomicU64::new(0);
static ENTRY_OVERFLOWS: AtomicU64 = AtomicU64::new(0);
static BODY_OVERFLOWS: AtomicU64 = AtomicU64::new(0);
static CHURN_OK: AtomicU64 = AtomicU64::new(0);
static CHURN_BUSY: AtomicU64 = AtomicU64::new(0);
static NMI_CONTEXT_EDITS: AtomicU64 = AtomicU64::new(0);
static EMERGENCY_INSTALLED: AtomicBool = AtomicBool::new(false);

fn context_kind(kind: EntryKind) -> ContextKind {
    match kind {
        EntryKind::Nmi => ContextKind::Nmi,
        EntryKind::MachineCheck => ContextKind::MachineCheck,
        EntryKind::Debug => ContextKind::Debug,
        EntryKind::Interrupt => unreachable!("this test raises no maskable interrupts"),
    }
}

/// Register or unregister churn handler `which`; `Busy` and the expected
/// already/not-registered answers are fine, anything else is a bug.
fn churn(which: usize) {
    let handler = &CHURN[which % CHURN.len()];
    let result = if which >= CHURN.len() {
        CHAIN.unregister(handler)
    } else {
        CHAIN.register(handler)
    };
    match result {
        Ok(()) => CHURN_OK.fetch_add(1, Relaxed),
        Err(RegisterHandlerError::Busy) => CHURN_BUSY.fetch_add(1, Relaxed),
        Err(RegisterHandlerError::AlreadyRegistered | RegisterHandlerError::NotRegistered) => 0,
        Err(RegisterHandlerError::Full) => panic!("chain full: 1 + 3 handlers fit in 4 slots"),
    };
}

/// The simulated IDT: track the context, check it, dispatch NMIs.
fn entry(cpu: &SimCpu, kind: EntryKind, frame: &mut crashkit_nmi::RegisterFrame) {
    let index = cpu.index();
    let tracker = CONTEXTS.get(index).expect("a CPU of the machine");
    let before = tracker.snapshot();
    let guard = match tracker.enter(context_kind(kind)) {
        Ok(guard) => {
            let during = tracker.snapshot();
            assert_eq!(during.depth(), before.depth() + 1, "{kind:?} entry depth");
            for level in 1..=before.depth() {
                assert_eq!(
                    during.kind_at(level),
                    before.kind_at(level),
                    "level {level}"
                );
            }
            assert_eq!(during.innermost(), Some(context_kind(kind)));
            assert_eq!(guard.is_outermost(), before.depth() == 0);
            assert!(tracker.in_nmi());
            Some(guard)
        }
        Err(overflow) => {
            assert_eq!(before.depth(), MAX_NESTING, "overflow below the limit");
            assert_eq!(overflow.kind, context_kind(kind));
            // >=: a machine check nested here may overflow as well.
            assert!(tracker.snapshot().overflows() > before.overflows());
            ENTRY_OVERFLOWS.fetch_add(1, Relaxed);
            None
        }
    };

    // The NMI is handled even when its context could not be tracked.
    if kind == EntryKind::Nmi {
        let always = ALWAYS_CALLS.on(index);
        let churned: [u64; 3] = std::array::from_fn(|i| CHURN_CALLS[i].on(index));
        let emergency = EMERGENCY_CALLS.on(index);
        let emergency_visible = CHAIN.emergency().is_some();
        CHAIN.dispatch(cpu.platform(), frame);
        DISPATCHES.fetch_add(1, Relaxed);
        assert_eq!(ALWAYS_CALLS.on(index), always + 1, "first handler ran once");
        for (calls, before) in CHURN_CALLS.iter().zip(churned) {
            assert!(calls.on(index) <= before + 1, "a handler ran twice");
        }
        if emergency_visible {
            assert_eq!(EMERGENCY_CALLS.on(index), emergency + 1);
        }
        // Chain edits from NMI context: every few NMIs, and the emergency
        // handler once, from CPU 1.
        let seed = frame.rip ^ ALWAYS_CALLS.on(index);
        if seed.is_multiple_of(5) {
            NMI_CONTEXT_EDITS.fetch_add(1, Relaxed);
            churn((seed / 5 % 6) as usize);
        }
        if index == CpuIndex(1) && always == 20 {
            assert!(CHAIN.set_emergency(Some(&EMERGENCY)).is_none());
            EMERGENCY_INSTALLED.store(true, SeqCst);
        }
    }

    drop(guard);
    let after = tracker.snapshot();
    assert_eq!(
        after.raw(),
        before.raw(),
        "{kind:?} entry left the tracker changed"
    );
    assert!(!after.unbalanced());
}

/// One CPU's work: nest contexts to a random depth (sometimes past the
/// limit), unwind, and between steps send NMIs and machine checks and edit
/// the chain.
fn body(cpu: &SimCpu) {
    let index = cpu.index();
    let platform = cpu.platform();
    let tracker = CONTEXTS.get(index).expect("a CPU of the machine");
    let mut rng = Rng::new(0x5EED ^ u64::from(index.0));
    let kinds = [
        ContextKind::Nmi,
        ContextKind::MachineCheck,
        ContextKind::Debug,
    ];

    let poke = |rng: &mut Rng| {
        let target = CpuIndex(rng.below(CPUS as u64) as u32);
        match rng.below(20) {
            0..=7 => {
                let _ = platform.send_nmi(target);
            }
            8 => {
                let _ = platform.send_nmi_all_but_self();
            }
            9 => {
                let _ = platform.raise(target, EntryKind::MachineCheck);
            }
            10 => {
                let _ = platform.raise(target, EntryKind::Debug);
            }
            11 => churn(rng.below(6) as usize),
            _ => {}
        }
    };

    for _ in 0..ROUNDS {
        if cpu.stop_requested() {
            return;
        }
        let target_depth = match rng.below(4) {
            0 => MAX_NESTING,
            _ => rng.below(u64::from(MAX_NESTING)) as u8 + 1,
        };
        // heapless: the body must not be inside `malloc` when a signal
        // arrives whose entry might panic (see `common`).
        let mut stack: heapless::Vec<ContextKind, 16> = heapless::Vec::new();
        let mut guards: heapless::Vec<_, 16> = heapless::Vec::new();
        for level in 1..=target_depth {
            let kind = kinds[rng.below(3) as usize];
            let guard = tracker.enter(kind).expect("below the limit");
            assert!(guards.push(guard).is_ok() && stack.push(kind).is_ok());
            poke(&mut rng);
            let now = tracker.snapshot();
            assert_eq!(now.depth(), level);
            for (i, kind) in stack.iter().enumerate() {
                assert_eq!(now.kind_at(i as u8 + 1), Some(*kind), "level {}", i + 1);
            }
        }
        if target_depth == MAX_NESTING {
            let overflows = tracker.snapshot().overflows();
            assert!(tracker.enter(ContextKind::Debug).is_err());
            BODY_OVERFLOWS.fetch_add(1, Relaxed);
            assert!(tracker.snapshot().overflows() > overflows);
            assert_eq!(tracker.depth(), MAX_NESTING);
        }
        while let Some(guard) = guards.pop() {
            assert_eq!(guard.level() as usize, stack.len());
            drop(guard);
            stack.pop();
            poke(&mut rng);
            assert_eq!(tracker.depth() as usize, stack.len());
            assert_eq!(tracker.snapshot().innermost(), stack.last().copied());
        }
        assert!(!tracker.snapshot().unbalanced());
    }
}

#[test]
fn nesting_and_chain_hold_under_random_nmis() {
    CHAIN.register(&ALWAYS).unwrap();
    let machine = Machine::new(CPUS, entry);
    machine.platform().set_nmi_loss(50, 3);
    let report = machine.run(DEADLINE, body);
    report.assert_all_finished();

    let total = report.total();
    let (rewalks, torn) = (0..CPUS as u32)
        .filter_map(|c| CHAIN.cpu_stats(CpuIndex(c)))
        .fold((0, 0), |(r, t), s| (r + s.rewalks, t + s.torn_walks));
    let relaxed = |c: &AtomicU64| c.load(Relaxed);
    eprintln!(
        "{report}dispatches {}, overflows entry/body {}/{}, chain edits ok/busy {}/{} \
         ({} from NMI context), rewalks/torn {rewalks}/{torn}, emergency calls {}",
        relaxed(&DISPATCHES),
        relaxed(&ENTRY_OVERFLOWS),
        relaxed(&BODY_OVERFLOWS),
        relaxed(&CHURN_OK),
        relaxed(&CHURN_BUSY),
        relaxed(&NMI_CONTEXT_EDITS),
        (0..CPUS as u32)
            .map(|c| EMERGENCY_CALLS.on(CpuIndex(c)))
            .sum::<u64>(),
    );
    // The run exercised what it claims to.
    assert_eq!(relaxed(&DISPATCHES), total.delivered(EntryKind::Nmi));
    assert!(
        total.delivered(EntryKind::Nmi) > 500,
        "too few NMIs to mean anything"
    );
    assert!(
        total.delivered(EntryKind::MachineCheck) > 20,
        "too few machine checks"
    );
    assert!(
        total.delivered(EntryKind::Debug) > 20,
        "too few debug traps"
    );
    assert!(total.nmis_dropped > 0, "no NMI was lost");
    assert!(relaxed(&BODY_OVERFLOWS) > 0);
    assert!(relaxed(&NMI_CONTEXT_EDITS) > 0);
    assert!(
        EMERGENCY_INSTALLED.load(SeqCst),
        "CPU 1 never installed the emergency handler"
    );
    for cpu in 0..CPUS as u32 {
        let tracker = CONTEXTS.get(CpuIndex(cpu)).unwrap();
        assert_eq!(tracker.depth(), 0);
        assert!(!tracker.snapshot().unbalanced());
    }
}
