//! The facade's crash-log glue (`kernel!`'s `crash_log:` field, the hooks
//! a defmt logger calls) on the host simulation: a CPU logs in its normal
//! context, its maskable interrupts log too, and NMIs log from inside the
//! kernel's NMI entry (crashkit's context tracker says "NMI"). The hooks
//! put each message in the ring of its CPU and context, hold interrupts off
//! for each normal-context frame (so no interrupt ever finds one half
//! written: none is dropped) and give them back after it (interrupts keep
//! arriving), and every message reads back whole.

use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use crashkit::log::LogKernel;
use crashkit::prelude::*;
use crashkit_log::read::{AreaView, Item};
use crashkit_sim::{CpuOutcome, EntryKind, Machine, Socket};

crashkit::kernel! {
    struct K;
    cpus: 2,
    notifiers: 1,
    platform: Socket = Socket::new(),
    final_action: halt,
    crash_log: 1024,
}

/// Messages each writer logged: body, interrupt, NMI.
static LOGGED: [AtomicU64; 3] = [const { AtomicU64::new(0) }; 3];

fn log(tag: u8) {
    let hooks = K::log_hooks();
    (hooks.begin)();
    // Slow enough that interrupts and NMIs land inside the frame.
    for _ in 0..8 {
        (hooks.write)(&[tag; 4]);
        for _ in 0..200 {
            std::hint::spin_loop();
        }
    }
    (hooks.end)();
    LOGGED[usize::from(tag - b'a')].fetch_add(1, SeqCst);
}

static NMI_LOGGER: NmiHandler = NmiHandler::new("log", |_event| {
    log(b'c');
    NmiOutcome::Handled
});

#[test]
fn each_context_logs_into_its_own_ring_and_interrupts_never_find_a_half_written_frame() {
    let machine = Machine::new(2, |cpu, kind, frame| match kind {
        // An NMI gate clears IF: no maskable interrupt inside the handler
        // (signals do not block each other).
        EntryKind::Nmi => {
            let _masked = cpu.disable_interrupts();
            K::on_nmi(frame);
        }
        EntryKind::Interrupt => log(b'b'),
        _ => {}
    });
    K::state()
        .platform()
        .plug(machine.platform())
        .expect("one machine");
    K::state()
        .chain()
        .register(&NMI_LOGGER)
        .expect("a free handler slot");
    K::install_log(&[7; 20]);
    let report = machine.run(Duration::from_secs(30), |cpu| {
        let platform = cpu.platform();
        if cpu.index().0 == 0 {
            let until = Instant::now() + Duration::from_millis(200);
            let mut i = 0u32;
            while Instant::now() < until {
                let kind = if i.is_multiple_of(2) {
                    EntryKind::Nmi
                } else {
                    EntryKind::Interrupt
                };
                let _ = platform.raise(CpuIndex(1), kind);
                i += 1;
                for _ in 0..3_000 {
                    std::hint::spin_loop();
                }
            }
            platform.request_stop();
            return;
        }
        while !cpu.stop_requested() {
            log(b'a');
        }
    });
    assert!(
        report.outcomes.iter().all(|o| *o == CpuOutcome::Finished),
        "{report}"
    );
    let mut bytes = vec![0u8; core::mem::size_of_val(K::crash_log())];
    K::crash_log().copy_to(&mut bytes);
    let area = AreaView::parse(&bytes).expect("a valid area");
    assert_eq!(area.build_id(), Some(&[7u8; 20][..]));
    for ring in area.rings() {
        let mut tags = Vec::new();
        let summary = ring.read(|item| match item {
            Item::Frame(frame) => {
                let tag = frame.defmt[0];
                assert!(
                    frame.defmt.iter().all(|&b| b == tag) && frame.defmt.len() == 32,
                    "CPU {} {:?}: a frame not whole: {:?}",
                    ring.cpu,
                    ring.context,
                    frame.defmt
                );
                tags.push(tag);
            }
            Item::Damaged { why, .. } => panic!("damage: {why}"),
        });
        let (cpu, context) = (ring.cpu, ring.context);
        match (cpu, context) {
            (1, crashkit::log::Context::Normal) => {
                assert!(tags.iter().all(|&t| t == b'a' || t == b'b'), "{tags:?}");
                // Interrupts are held off for each frame and given back
                // after it: they arrived, and none found a frame open, so
                // every body and interrupt message began a frame.
                assert_eq!(ring.dropped, 0, "an interrupt found a frame half written");
                assert_eq!(
                    u64::from(ring.next_seq),
                    LOGGED[0].load(SeqCst) + LOGGED[1].load(SeqCst)
                );
            }
            (1, crashkit::log::Context::Nmi) => {
                assert!(tags.iter().all(|&t| t == b'c'), "{tags:?}");
                assert_eq!(u64::from(ring.next_seq), LOGGED[2].load(SeqCst));
            }
            _ => assert!(tags.is_empty(), "CPU {cpu} {context:?}: {tags:?}"),
        }
        assert_eq!(summary.damaged, 0);
    }
    // Each writer logged: the checks above checked something.
    for (count, who) in LOGGED.iter().zip(["the body", "interrupts", "NMIs"]) {
        assert!(count.load(SeqCst) > 0, "{who} never logged");
    }
}
