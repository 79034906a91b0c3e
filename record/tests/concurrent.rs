//! The record written by many CPUs at once and read meanwhile: "CPU"
//! threads stop themselves (their `CpuSlot`) and add to counters while the
//! owner writes the panic section and notifier slots, and a reader thread
//! snapshots and parses the record continuously. Every snapshot must parse,
//! and everything it shows as published must be complete: a message that is
//! a prefix of the final one, notifier slots whose names match their index,
//! stopped CPUs whose registers are theirs. Then the same with stops taken
//! in simulated NMI context (signals interrupting running CPUs).
//!
//! Each test bounds its own waits (a missed deadline fails, it never hangs).

mod common;

use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::thread;
use std::time::{Duration, Instant};

use common::frame;

use crashkit_nmi::{ControlRegisters, CpuIndex, Platform};
use crashkit_record::SlotFrame;
use crashkit_record::{
    CpuState, CrashRecord, Decoded, NotifierEntry, NotifierList, NotifierOutcome, PanicPhase,
    PhaseStamp, RecordView, ShootdownTotals, Skipped, StopPath,
};
use crashkit_sim::{CpuOutcome, EntryKind, Machine};

const CPUS: usize = 8;
const NOTIFIERS: usize = 16;
type Big = CrashRecord<CPUS, NOTIFIERS>;

/// Pieces of the panic message; together more than 512 bytes, so the last
/// one that fits is cut at a character boundary and the rest dropped.
const PIECES: [&str; 6] = [
    "panicked at kernel/src/sched.rs:918:5: ",
    "ordre ",
    "élevé ",
    "€uro ",
    "😀 ",
    "x",
];
const REPEATS: usize = 30;

fn pieces() -> impl Iterator<Item = &'static str> {
    (0..REPEATS).flat_map(|_| PIECES)
}

/// What the message must read after every piece was written.
fn final_message() -> String {
    let mut message = String::new();
    for piece in pieces() {
        let room = 512 - message.len();
        if piece.len() > room {
            let mut end = room;
            while !piece.is_char_boundary(end) {
                end -= 1;
            }
            message.push_str(&piece[..end]);
            break;
        }
        message.push_str(piece);
    }
    message
}

fn notifier_name(index: usize) -> String {
    format!("notifier-{index}-ñ")
}

/// Registers CPU `cpu` stops with (the owner's are `frame(0x4200)`).
fn cpu_frame(cpu: usize) -> crashkit_nmi::RegisterFrame {
    frame(0x1_0000 * (cpu as u64 + 1))
}

fn wait_until(what: &str, deadline: Instant, mut done: impl FnMut() -> bool) {
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::yield_now();
    }
}

/// Checks one snapshot taken while writers run; returns the phase code, the
/// counters, to check monotonicity across snapshots.
/// `synthetic`: CPUs stop with `cpu_frame(cpu)`; otherwise with the real
/// registers a simulated NMI interrupted (only plausibility is checked).
fn check_snapshot(view: &RecordView<'_>, message: &str, synthetic: bool) -> (u32, u32, u32) {
    let panic = view.panic();
    let phase = panic.phase();
    assert!(phase.known().is_some(), "{phase:?}");
    let text = panic.message();
    let shown = text.as_str().expect("published message is valid UTF-8");
    assert!(message.starts_with(shown), "not a prefix: {shown:?}");
    for (index, notifier) in view.notifiers().enumerate() {
        assert_eq!(
            notifier.name().as_str(),
            Some(notifier_name(index).as_str()),
            "slot {index} published incomplete"
        );
        assert_eq!(notifier.priority(), index as i32);
        assert_eq!(notifier.outcome().code(), (index % 6) as u32);
    }
    for (cpu, slot) in view.cpus().enumerate() {
        let state = slot.state().known().expect("a known state");
        if let Some(registers) = slot.frame() {
            if state == CpuState::PanicOwner {
                assert_eq!(registers, frame(0x4200), "the owner's frame is torn");
            } else if synthetic {
                assert_eq!(
                    registers,
                    cpu_frame(cpu),
                    "CPU {cpu} published a torn frame"
                );
            } else {
                assert!(
                    registers.rip != 0 && registers.rsp != 0,
                    "CPU {cpu}: {registers:?}"
                );
            }
            assert_ne!(slot.stopped_ns(), 0);
        }
    }
    for index in 0..4 {
        if let Some(escalation) = panic.escalation(index) {
            assert_eq!(escalation.at_ns, 9_000 + index as u64);
            assert_eq!(escalation.skipped, Skipped::NOTIFIER);
        }
    }
    (
        phase.code(),
        panic.second_panickers(),
        panic.qspinlock_fallbacks(),
    )
}

/// Snapshot and parse `record` until `stop`; returns the snapshots taken.
fn reader(record: &'static Big, stop: Arc<AtomicBool>, message: String, synthetic: bool) -> usize {
    let mut buffer = vec![0u8; Big::TOTAL_SIZE];
    let mut last = (0, 0, 0);
    let mut snapshots = 0;
    loop {
        let finished = stop.load(SeqCst);
        record.snapshot(&mut buffer).unwrap();
        let view = RecordView::parse(&buffer).expect("every snapshot parses");
        let now = check_snapshot(&view, &message, synthetic);
        assert!(
            now.0 >= last.0 && now.1 >= last.1 && now.2 >= last.2,
            "{last:?} -> {now:?}"
        );
        last = now;
        snapshots += 1;
        if finished {
            return snapshots;
        }
    }
}

fn leak() -> &'static Big {
    Box::leak(Box::new(Big::new()))
}

/// The owner's part after the CPUs are stopped: totals, notifiers (more
/// than the slots), escalations (more than the log), the end.
fn owner_tail(record: &Big, totals: &ShootdownTotals) {
    let panic = record.panic();
    panic.record_shootdown(totals);
    panic.set_phase(PanicPhase::Notifiers);
    for index in 0..NOTIFIERS + 4 {
        let name = notifier_name(index);
        let entry = NotifierEntry {
            list: NotifierList::Informational as u32,
            outcome: (index % 6) as u32,
            priority: index as i32,
            duration_ns: index as u64,
            name: &name,
        };
        assert_eq!(record.record_notifier(&entry).is_ok(), index < NOTIFIERS);
    }
    for index in 0..5 {
        let logged =
            panic.record_escalation(PanicPhase::Notifiers, Skipped::NOTIFIER, 9_000 + index);
        assert_eq!(logged.is_ok(), index < 4);
    }
    panic.set_phase(PanicPhase::Halted);
}

/// The final record after a run with every other CPU stopped.
fn check_final(record: &Big, stopped_path: StopPath, fallbacks: u32) {
    let mut buffer = vec![0u8; Big::TOTAL_SIZE];
    record.snapshot(&mut buffer).unwrap();
    let view = RecordView::parse(&buffer).unwrap();
    let panic = view.panic();
    assert_eq!(panic.phase(), Decoded::Known(PanicPhase::Halted));
    assert_eq!(panic.owner_cpu(), Some(0));
    assert_eq!(panic.message().as_str(), Some(final_message().as_str()));
    assert!(panic.message().truncated());
    assert_eq!(panic.second_panickers(), (CPUS - 1) as u32);
    assert_eq!(panic.qspinlock_fallbacks(), fallbacks);
    assert_eq!(
        (panic.notifiers_recorded(), panic.notifiers_dropped()),
        (16, 4)
    );
    assert_eq!(panic.escalations(), 5);
    assert_eq!(view.notifiers().count(), NOTIFIERS);
    for (cpu, slot) in view.cpus().enumerate() {
        if cpu == 0 {
            assert_eq!(slot.state(), Decoded::Known(CpuState::PanicOwner));
            continue;
        }
        assert_eq!(slot.state(), Decoded::Known(CpuState::Stopped), "CPU {cpu}");
        if stopped_path == StopPath::Nmi {
            assert_eq!(slot.stop_path(), Decoded::Known(StopPath::Nmi));
            assert_ne!(slot.frame().map(|f| f.rip), Some(0), "CPU {cpu}");
        } else {
            assert_eq!(slot.frame(), Some(cpu_frame(cpu)));
        }
    }
}

#[test]
fn threads_as_cpus_write_while_the_owner_records_and_a_reader_parses() {
    const ROUNDS: usize = 20;
    const FALLBACKS_PER_CPU: u32 = 500;
    let message = final_message();
    let mut snapshots = 0;
    for round in 0..ROUNDS {
        let record = leak();
        let deadline = Instant::now() + Duration::from_secs(20);
        let stop = Arc::new(AtomicBool::new(false));
        let reading = {
            let (stop, message) = (stop.clone(), message.clone());
            thread::spawn(move || reader(record, stop, message, true))
        };
        let started = Arc::new(AtomicUsize::new(0));
        let cpus: Vec<_> = (1..CPUS)
            .map(|cpu| {
                let started = started.clone();
                thread::spawn(move || {
                    started.fetch_add(1, SeqCst);
                    let panic = record.panic();
                    panic.add_second_panicker();
                    for _ in 0..FALLBACKS_PER_CPU {
                        panic.add_qspinlock_fallback();
                    }
                    let slot = &record.cpu_slots()[cpu];
                    // Odd CPUs answer the "NMI" (wait for NmiSent); even
                    // ones stop through a poll as soon as they can.
                    let path = if (cpu + round) % 2 == 1 {
                        wait_until("the stop NMI", deadline, || {
                            slot.state() == Some(CpuState::NmiSent)
                        });
                        StopPath::Nmi
                    } else {
                        StopPath::Poll
                    };
                    slot.record_stop(
                        &cpu_frame(cpu),
                        &ControlRegisters::NONE,
                        path,
                        1,
                        5_000 + cpu as u64,
                    )
                    .unwrap();
                })
            })
            .collect();

        // The owner, on this thread.
        wait_until("the CPUs to start", deadline, || {
            started.load(SeqCst) == CPUS - 1
        });
        let panic = record.panic();
        panic.stamp(PhaseStamp::PanicEntry, 1);
        panic.set_owner(CpuIndex(0));
        panic.set_phase(PanicPhase::Claimed);
        record.cpu_slots()[0]
            .record_owner(&frame(0x4200), &ControlRegisters::NONE, 0, 2)
            .unwrap();
        let mut writer = panic.message_writer();
        for piece in pieces() {
            let _ = writer.write_str(piece);
        }
        panic.set_phase(PanicPhase::StoppingCpus);
        for slot in &record.cpu_slots()[1..] {
            slot.mark_nmi_sent(3);
        }
        let slots = &record.cpu_slots()[1..];
        wait_until("every CPU to stop", deadline, || {
            slots.iter().all(|s| s.state() == Some(CpuState::Stopped))
        });
        owner_tail(
            record,
            &ShootdownTotals {
                stopped: 7,
                nmis_sent: 7,
                ..Default::default()
            },
        );
        for cpu in cpus {
            cpu.join().unwrap();
        }
        stop.store(true, SeqCst);
        snapshots += reading.join().unwrap();
        check_final(
            record,
            StopPath::Poll,
            FALLBACKS_PER_CPU * (CPUS as u32 - 1),
        );
    }
    assert!(
        snapshots >= ROUNDS,
        "the reader ran ({snapshots} snapshots)"
    );
}

#[test]
fn cpus_stopped_by_simulated_nmis_record_their_interrupted_registers() {
    const ROUNDS: usize = 5;
    let message = final_message();
    for _ in 0..ROUNDS {
        let record = leak();
        let stop = Arc::new(AtomicBool::new(false));
        let reading = {
            let (stop, message) = (stop.clone(), message.clone());
            thread::spawn(move || reader(record, stop, message, false))
        };
        // The stop NMI: in signal context, no allocation, no lock.
        let machine = Machine::new(CPUS, move |cpu, kind, frame| {
            if kind != EntryKind::Nmi || cpu.index().0 == 0 {
                return;
            }
            let Some(slot) = record.cpu_slot(cpu.index()) else {
                return;
            };
            record.panic().add_qspinlock_fallback();
            if slot
                .record_stop(
                    frame,
                    &cpu.platform().control_registers(),
                    StopPath::Nmi,
                    1,
                    cpu.platform().now_ns(),
                )
                .is_ok()
            {
                cpu.park();
            }
        });
        let report = machine.run(Duration::from_secs(20), move |cpu| {
            let platform = cpu.platform();
            let panic = record.panic();
            if cpu.index().0 != 0 {
                panic.add_second_panicker();
                // Running until the NMI parks this CPU.
                while !cpu.stop_requested() {
                    std::hint::spin_loop();
                }
                return;
            }
            panic.stamp(PhaseStamp::PanicEntry, platform.now_ns());
            panic.set_owner(cpu.index());
            panic.set_phase(PanicPhase::Claimed);
            record.cpu_slots()[0]
                .record_owner(
                    &frame(0x4200),
                    &platform.control_registers(),
                    0,
                    platform.now_ns(),
                )
                .unwrap();
            let mut writer = panic.message_writer();
            for piece in pieces() {
                let _ = writer.write_str(piece);
            }
            panic.set_phase(PanicPhase::StoppingCpus);
            let deadline = Instant::now() + Duration::from_secs(10);
            // Let every CPU count itself before the NMIs go out.
            wait_until("second panickers", deadline, || {
                panic.second_panickers() == (CPUS - 1) as u32
            });
            let mut totals = ShootdownTotals::default();
            for (index, slot) in record.cpu_slots().iter().enumerate().skip(1) {
                slot.mark_nmi_sent(platform.now_ns());
                totals.nmis_sent += 1;
                if platform.send_nmi(CpuIndex(index as u32)).is_err() {
                    totals.send_errors += 1;
                }
            }
            wait_until("every CPU to stop", deadline, || {
                record.cpu_slots()[1..]
                    .iter()
                    .all(|s| s.state() == Some(CpuState::Stopped))
            });
            totals.stopped = (CPUS - 1) as u32;
            owner_tail(record, &totals);
        });
        stop.store(true, SeqCst);
        reading.join().unwrap();
        let mut expected = vec![CpuOutcome::Parked; CPUS];
        expected[0] = CpuOutcome::Finished;
        assert_eq!(report.outcomes, expected, "{report}");
        check_final(record, StopPath::Nmi, (CPUS - 1) as u32);
        for (index, slot) in record.cpu_slots().iter().enumerate() {
            let control = slot.control().expect("every CPU saved its control state");
            assert_eq!(
                control.cr3,
                crashkit_sim::simulated_cr3(CpuIndex(index as u32)),
                "CPU {index}'s control state is its own"
            );
        }
        assert_eq!(record.panic().shootdown().send_errors, 0);
        assert_eq!(
            record.notifier(5).map(|n| n.outcome()),
            Some(Decoded::Known(NotifierOutcome::NotRun))
        );
    }
}
