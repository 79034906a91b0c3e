//! The panic path walks the notifier lists from NMI context on a simulated
//! CPU whose body is registering and unregistering notifiers: real
//! asynchronous signals interrupt the writer between any two instructions
//! (often with the writer epoch held, a slot half-edited), and the walk runs
//! on top of the frozen writer, as when the panic owner interrupted a
//! registration on its own CPU.
//!
//! Code in the entry runs in a signal handler: the walk, the bodies and the
//! recorder here neither allocate nor lock.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};
use std::time::Duration;

use crashkit_nmi::{CpuIndex, Platform};
use crashkit_notifiers::{
    BodyResult, EscalationPolicy, Notifier, NotifierList, NotifierRecorder, NotifierReport,
    PanicContext, PanicInputs, Registry,
};
use crashkit_sim::{CpuOutcome, Machine};

const DEADLINE: Duration = Duration::from_secs(30);
const WALKS: u32 = 300;
const LIST: NotifierList = NotifierList::PreDump;

fn complete(_: &PanicContext<'_>) -> BodyResult {
    BodyResult::Complete
}

static REGISTRY: Registry<8> = Registry::new(EscalationPolicy::NextNotifier);
static S0: Notifier = Notifier::new("s0", LIST, 10, complete);
static S1: Notifier = Notifier::new("s1", LIST, -10, complete);
static CHURN: [Notifier; 3] = [
    Notifier::new("c0", LIST, 20, complete),
    Notifier::new("c1", LIST, 0, complete),
    Notifier::new("c2", LIST, -20, complete),
];

static WALKS_DONE: AtomicU32 = AtomicU32::new(0);
static MID_EDIT_WALKS: AtomicU32 = AtomicU32::new(0);
static VIOLATIONS: AtomicU32 = AtomicU32::new(0);
static FAILED_RUNS: AtomicU32 = AtomicU32::new(0);
static EDITS: AtomicU32 = AtomicU32::new(0);
static DONE: AtomicBool = AtomicBool::new(false);

/// Per-walk tally on the handler's stack: runs per notifier and order.
struct Tally {
    runs: [u32; 5],
    order: [u8; 8],
    len: usize,
}

impl NotifierRecorder for Tally {
    fn record(&mut self, report: &NotifierReport) {
        let index = match report.name {
            "s0" => 0,
            "s1" => 1,
            "c0" => 2,
            "c1" => 3,
            _ => 4,
        };
        if let Some(runs) = self.runs.get_mut(index) {
            *runs += 1;
        }
        if let Some(slot) = self.order.get_mut(self.len) {
            *slot = index as u8;
            self.len += 1;
        }
    }
}

fn walk_in_nmi(platform: &dyn Platform) {
    let inputs = PanicInputs::new(platform, "simulated panic");
    let mut tally = Tally {
        runs: [0; 5],
        order: [0; 8],
        len: 0,
    };
    match REGISTRY.run_list(LIST, &inputs, &mut tally) {
        Ok(summary) => {
            if summary.writer_mid_edit {
                MID_EDIT_WALKS.fetch_add(1, SeqCst);
            }
            let steady_once = tally.runs[0] == 1 && tally.runs[1] == 1;
            let churn_at_most_once = tally.runs[2..].iter().all(|&runs| runs <= 1);
            let s0_before_s1 = tally.order[..tally.len]
                .iter()
                .filter(|&&index| index <= 1)
                .eq([0u8, 1].iter());
            if !(steady_once && churn_at_most_once && s0_before_s1) || summary.truncated {
                VIOLATIONS.fetch_add(1, SeqCst);
            }
        }
        Err(_) => {
            FAILED_RUNS.fetch_add(1, SeqCst);
        }
    }
    WALKS_DONE.fetch_add(1, SeqCst);
}

#[test]
fn walks_in_nmi_context_over_a_writer_frozen_on_the_same_cpu() {
    REGISTRY.register(&S0).unwrap();
    REGISTRY.register(&S1).unwrap();
    let machine = Machine::new(2, |cpu, _, _| {
        if cpu.index() == CpuIndex(0) {
            walk_in_nmi(cpu.platform());
        }
    });
    let report = machine.run(DEADLINE, |cpu| {
        if cpu.index() == CpuIndex(0) {
            // The writer: churn as fast as possible until the walks are done.
            let mut turn = 0usize;
            while !DONE.load(SeqCst) && !cpu.stop_requested() {
                let churn = &CHURN[turn % CHURN.len()];
                turn += 1;
                if REGISTRY.register(churn).is_ok() {
                    EDITS.fetch_add(1, SeqCst);
                }
                if REGISTRY.unregister(churn).is_ok() {
                    EDITS.fetch_add(1, SeqCst);
                }
            }
        } else {
            // The NMI source: one NMI at a time to CPU 0, each a walk.
            for sent in 1..=WALKS {
                if cpu.platform().send_nmi(CpuIndex(0)).is_err() {
                    break;
                }
                while WALKS_DONE.load(SeqCst) < sent {
                    if cpu.stop_requested() {
                        return;
                    }
                    std::thread::yield_now();
                }
            }
            DONE.store(true, SeqCst);
        }
    });
    report.assert_all_finished();
    assert!(
        report
            .outcomes
            .iter()
            .all(|outcome| matches!(outcome, CpuOutcome::Finished))
    );
    let walks = WALKS_DONE.load(SeqCst);
    let mid_edit = MID_EDIT_WALKS.load(SeqCst);
    eprintln!(
        "{walks} walks in NMI context, {mid_edit} over a writer mid-edit, {} edits",
        EDITS.load(SeqCst)
    );
    assert_eq!(walks, WALKS);
    assert_eq!(VIOLATIONS.load(SeqCst), 0);
    assert_eq!(FAILED_RUNS.load(SeqCst), 0);
    assert!(EDITS.load(SeqCst) > 0);
    assert!(
        mid_edit > 0,
        "no NMI landed while the writer held the epoch in {walks} tries"
    );
}
