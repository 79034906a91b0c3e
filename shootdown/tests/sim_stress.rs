//! Stress: many shootdowns on fresh simulated machines, each with a random
//! owner, random NMI loss, and CPUs doing different things when the NMI
//! comes: busy, briefly blocking NMIs over and over (the NMI latches and
//! lands when they unblock), or spinning with NMIs blocked in a loop that
//! polls. Every CPU must end `Stopped` by the expected path with
//! plausible registers, the owner must never be sent an NMI, and the books
//! must balance (summary against slots).
//!
//! Parked CPUs' threads are never joined (the simulation leaks them, like
//! halted CPUs), so the run count is kept moderate.

mod common;

use std::sync::atomic::Ordering::SeqCst;

use common::{
    RUN_DEADLINE, Rig, assert_owner_finished_others_parked, assert_owner_never_sent_an_nmi,
    assert_stopped, wait_until,
};
use crashkit_nmi::ContextKind;
use crashkit_record::StopPath;
use crashkit_shootdown::ShootdownConfig;
use crashkit_sim::{Rng, SimCpu};

const RUNS: u64 = 48;
const CPUS: usize = 4;

/// What a non-owner CPU does while the shootdown comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Spins with NMIs open.
    Busy,
    /// Blocks NMIs for short stretches, again and again.
    Flickering,
    /// Inside an NMI-like context with NMIs blocked, spinning in a loop
    /// that polls the shootdown.
    Polling,
}

fn role_of(seed: u64, index: usize) -> Role {
    match Rng::new(seed ^ (index as u64) << 40).below(3) {
        0 => Role::Busy,
        1 => Role::Flickering,
        _ => Role::Polling,
    }
}

fn body(rig: Rig, cpu: &SimCpu, role: Role) {
    match role {
        Role::Busy => rig.busy(cpu),
        Role::Flickering => {
            rig.ready.fetch_add(1, SeqCst);
            while !cpu.stop_requested() {
                let masked = cpu.block_nmis();
                for _ in 0..2_000 {
                    std::hint::spin_loop();
                }
                drop(masked);
                std::thread::yield_now();
            }
        }
        Role::Polling => {
            let _masked = cpu.block_nmis();
            let _context = rig.contexts.enter_current(cpu.platform(), ContextKind::Nmi);
            rig.ready.fetch_add(1, SeqCst);
            wait_until(cpu, || {
                rig.shootdown.poll(cpu.platform(), 1);
                false
            });
        }
    }
}

#[test]
fn every_cpu_ends_stopped_under_random_nmi_loss() {
    let mut resent = 0;
    let mut dropped = 0;
    for run in 0..RUNS {
        let seed = 0x5107_d0e5 ^ run.wrapping_mul(0x9E37_79B9);
        let owner = Rng::new(seed).below(CPUS as u64) as usize;
        let rig = Rig::new(CPUS);
        let machine = rig.machine(CPUS);
        machine.platform().set_nmi_loss(300, seed);
        let config = ShootdownConfig {
            // Lost NMIs are resent every 2 ms; with 30% loss, a CPU missing
            // every NMI for 10 s is out of the question.
            resend_interval_ns: 2_000_000,
            deadline_ns: 10_000_000_000,
            ..ShootdownConfig::DEFAULT
        };
        let report = machine.run(RUN_DEADLINE, move |cpu| {
            let index = cpu.index().as_usize();
            if index != owner {
                return body(rig, cpu, role_of(seed, index));
            }
            if rig.wait_ready(cpu, CPUS - 1) {
                rig.keep(rig.shootdown.stop_other_cpus(cpu.platform(), &config));
            }
        });

        assert_owner_finished_others_parked(&report, owner);
        assert_owner_never_sent_an_nmi(&report, owner);
        let summary = rig.summary(&report);
        assert!(summary.all_stopped(), "run {run}: {summary:?}\n{report}");
        let mut nmis = 0;
        for index in (0..CPUS).filter(|&index| index != owner) {
            let slot = rig.slot(index);
            let path = match role_of(seed, index) {
                Role::Polling => StopPath::Poll,
                Role::Busy | Role::Flickering => StopPath::Nmi,
            };
            assert_stopped(slot, path, 1);
            nmis += slot.nmis_sent();
        }
        assert_eq!(summary.totals.nmis_sent, nmis, "run {run}");
        assert_eq!(summary.totals.stopped, CPUS as u32 - 1);
        assert_eq!(
            summary.stopped_by_poll as usize,
            (0..CPUS)
                .filter(|&i| i != owner && role_of(seed, i) == Role::Polling)
                .count()
        );
        assert_eq!(
            rig.handled.load(SeqCst),
            0,
            "run {run}: an NMI reached the owner"
        );
        resent += summary.totals.nmis_resent;
        dropped += report.total().nmis_dropped;
    }
    // The loss really happened and was recovered from.
    assert!(
        dropped > 0 && resent > 0,
        "dropped {dropped}, resent {resent}"
    );
}
