//! The crash's timeline, laid out from a crash record for `crashkit report`
//! to draw: every time relative to the panic entry, one lane per CPU the
//! record knows (absent slots left out), the owner's phases, each notifier
//! as a bar, escalations and the final action.
//!
//! What the record holds and what is derived (docs/cli.md, `report`):
//! - phase stamps, each CPU's first stop NMI and its stop, escalations
//!   are the record's own times;
//! - a notifier slot holds its duration, not its start. Lists run in the
//!   order hypervisor, informational, pre-dump, the dump hand-over, then
//!   post-dump, one notifier after another; the informational list runs
//!   after the dump (the panic path's default) or, when the kernel sets
//!   `informational_before_dump`, before the pre-dump list. The record
//!   does not say which: informational bars go after the dump unless
//!   they and the post-dump ones do not fit between the hand-over's end
//!   and the notifiers' end stamp. Bars are placed end to end in slot
//!   order from the notifiers' start stamp, those after the dump no
//!   earlier than the hand-over's end. The gaps between them (the
//!   recording itself) are not known, so a bar can sit a little early;
//! - only a CPU's first NMI is timed: resends are counted, not timed.

use serde::Serialize;

use crate::record::{Report, Stamp};

/// The timeline of one crash record.
#[derive(Debug, Serialize)]
pub struct Timeline {
    /// What every `*_ns` here counts from: `PanicEntry`, else the earliest
    /// stamp the record has (`earliest stamp`).
    pub origin: &'static str,
    /// That origin in platform nanoseconds.
    pub origin_ns: u64,
    /// The last time the timeline shows (its right edge): the latest time
    /// in it, and a twentieth more when a phase has no end.
    pub end_ns: u64,
    /// The owner's phases, in order.
    pub phases: Vec<Phase>,
    /// One lane per CPU the record knows (not `Absent`), by CPU index.
    pub lanes: Vec<Lane>,
    /// Each recorded notifier, placed as the module's docs say.
    pub notifiers: Vec<NotifierBar>,
    /// Each escalation (a panic of the owner inside the panic path).
    pub escalations: Vec<Escalation>,
    /// The final action and when it was taken, when it was.
    pub final_action: Option<Mark>,
    /// Stop NMIs sent, resent (not timed) and failed sends, from the
    /// shootdown's totals.
    pub nmis_sent: u32,
    /// Resends for NMIs that were lost.
    pub nmis_resent: u32,
    /// Sends the APIC refused.
    pub send_errors: u32,
}

/// One phase of the owner.
#[derive(Debug, Serialize)]
pub struct Phase {
    /// `shootdown`, `notifiers`, `dump hand-over`.
    pub name: &'static str,
    /// When it started.
    pub start_ns: u64,
    /// When it ended (null: it did not, or the record lost the stamp).
    pub end_ns: Option<u64>,
}

/// One CPU's lane.
#[derive(Debug, Serialize)]
pub struct Lane {
    /// The CPU index.
    pub cpu: usize,
    /// Its state in the record (`PanicOwner`, `Stopped`, `Unresponsive`,
    /// `NmiSent`, `Running`).
    pub state: String,
    /// Whether it owns the panic.
    pub owner: bool,
    /// How it stopped (`Nmi`, `Poll`, `None`).
    pub stop_path: String,
    /// Stop NMIs sent to it.
    pub nmis_sent: u32,
    /// When its first stop NMI was sent.
    pub first_nmi_ns: Option<u64>,
    /// When it stopped (the owner: when it claimed the panic).
    pub stopped_ns: Option<u64>,
    /// The lane's one-line account: `panic owner`, `stopped by NMI in
    /// 0.529 ms` (from its first NMI), `never answered (3 NMIs)`, ...
    pub summary: String,
}

/// One notifier's bar.
#[derive(Debug, Serialize)]
pub struct NotifierBar {
    /// Its list.
    pub list: String,
    /// Its name.
    pub name: String,
    /// What happened.
    pub outcome: String,
    /// Where the bar starts (derived: see the module's docs).
    pub start_ns: u64,
    /// How long it took (the record's own figure).
    pub duration_ns: u64,
}

/// One escalation.
#[derive(Debug, Serialize)]
pub struct Escalation {
    /// When.
    pub at_ns: u64,
    /// The phase the owner was in.
    pub phase: String,
    /// What it skipped from then on.
    pub skipped: Vec<String>,
}

/// A point in time with a label.
#[derive(Debug, Serialize)]
pub struct Mark {
    /// When.
    pub at_ns: u64,
    /// What.
    pub what: String,
}

/// The stamp named `name`, if the record has it.
fn stamp(timeline: &[Stamp], name: &str) -> Option<u64> {
    timeline.iter().find(|s| s.stamp == name).and_then(|s| s.ns)
}

/// Lay out `record`'s timeline. None when the record has no time at all
/// (a panic that never reached its entry stamp).
pub fn layout(record: &Report) -> Option<Timeline> {
    let panic = &record.panic;
    let stamps = &panic.timeline;
    let (origin, origin_ns) = match stamp(stamps, "PanicEntry") {
        Some(ns) => ("PanicEntry", ns),
        None => ("earliest stamp", stamps.iter().filter_map(|s| s.ns).min()?),
    };
    // A time relative to the origin; a stamp before it (a damaged record)
    // is drawn at the origin rather than wrapping.
    let at = |ns: u64| ns.saturating_sub(origin_ns);
    let rel = |name: &str| stamp(stamps, name).map(at);

    let mut phases = Vec::new();
    for (name, start, end) in [
        ("shootdown", "ShootdownStart", "ShootdownEnd"),
        ("notifiers", "NotifiersStart", "NotifiersEnd"),
        ("dump hand-over", "DumpHandoverStart", "DumpHandoverEnd"),
    ] {
        if let Some(start_ns) = rel(start) {
            phases.push(Phase {
                name,
                start_ns,
                end_ns: rel(end).filter(|&end| end >= start_ns),
            });
        }
    }

    let lanes = record
        .cpus
        .iter()
        .filter(|cpu| cpu.state != "Absent")
        .map(|cpu| {
            let owner = cpu.state == "PanicOwner";
            let first_nmi_ns = cpu.first_nmi_ns.map(at);
            let stopped_ns = cpu.stopped_ns.map(at);
            let summary = lane_summary(
                &cpu.state,
                &cpu.stop_path,
                cpu.nmis_sent,
                first_nmi_ns,
                stopped_ns,
            );
            Lane {
                cpu: cpu.cpu,
                state: cpu.state.clone(),
                owner,
                stop_path: cpu.stop_path.clone(),
                nmis_sent: cpu.nmis_sent,
                first_nmi_ns,
                stopped_ns,
                summary,
            }
        })
        .collect();

    let notifiers = place_notifiers(
        record,
        rel("NotifiersStart"),
        rel("DumpHandoverEnd").or(rel("DumpHandoverStart")),
        rel("NotifiersEnd"),
    );
    let escalations = panic
        .escalation_log
        .iter()
        .map(|e| Escalation {
            at_ns: at(e.at_ns),
            phase: e.phase.clone(),
            skipped: e.skipped.clone(),
        })
        .collect::<Vec<_>>();
    let final_action = rel("FinalAction").map(|at_ns| Mark {
        at_ns,
        what: panic.final_action.clone(),
    });

    let mut timeline = Timeline {
        origin,
        origin_ns,
        end_ns: 0,
        phases,
        lanes,
        notifiers,
        escalations,
        final_action,
        nmis_sent: panic.shootdown.nmis_sent,
        nmis_resent: panic.shootdown.nmis_resent,
        send_errors: panic.shootdown.send_errors,
    };
    // A phase without an end (the dump was taken during it: a capture
    // kernel's dump is written inside the hand-over) runs off the right
    // edge: a twentieth more shows that it goes on.
    let latest = timeline.latest().max(1);
    let open = timeline.phases.iter().any(|p| p.end_ns.is_none());
    timeline.end_ns = if open {
        latest.saturating_add((latest / 20).max(1))
    } else {
        latest
    };
    Some(timeline)
}

impl Timeline {
    /// The latest time anything here happens.
    fn latest(&self) -> u64 {
        let phases = self.phases.iter().map(|p| p.end_ns.unwrap_or(p.start_ns));
        let lanes = self
            .lanes
            .iter()
            .flat_map(|l| [l.first_nmi_ns, l.stopped_ns])
            .flatten();
        let bars = self
            .notifiers
            .iter()
            .map(|n| n.start_ns.saturating_add(n.duration_ns));
        let marks = self
            .escalations
            .iter()
            .map(|e| e.at_ns)
            .chain(self.final_action.iter().map(|m| m.at_ns));
        phases
            .chain(lanes)
            .chain(bars)
            .chain(marks)
            .max()
            .unwrap_or(0)
    }
}

/// A lane's one-line account.
fn lane_summary(
    state: &str,
    stop_path: &str,
    nmis: u32,
    first_nmi: Option<u64>,
    stopped: Option<u64>,
) -> String {
    let plural = if nmis == 1 { "" } else { "s" };
    match state {
        "PanicOwner" => "panic owner".into(),
        "Stopped" => {
            let how = match stop_path {
                "Nmi" => "by NMI",
                "Poll" => "by polling",
                _ => "",
            };
            let count = if nmis > 1 {
                format!(", {nmis} NMIs")
            } else {
                String::new()
            };
            match (first_nmi, stopped) {
                (Some(sent), Some(at)) if at >= sent => {
                    format!("stopped {how} in {}{count}", ms(at - sent))
                }
                _ => format!("stopped {how}{count}"),
            }
        }
        "Unresponsive" => format!("never answered ({nmis} NMI{plural})"),
        "NmiSent" => format!("NMI sent, no answer recorded ({nmis} NMI{plural})"),
        "Running" => "not asked to stop".into(),
        other => other.to_owned(),
    }
}

/// Place the notifiers' bars (the module's docs say how): from `start`
/// (the notifiers' start stamp), those after the dump from `dump_end` on,
/// checked against `end` (the notifiers' end stamp).
fn place_notifiers(
    record: &Report,
    start: Option<u64>,
    dump_end: Option<u64>,
    end: Option<u64>,
) -> Vec<NotifierBar> {
    let Some(mut cursor) = start else {
        // No start stamp: nothing to place them from.
        return Vec::new();
    };
    let took = |lists: &[&str]| {
        record
            .notifiers
            .iter()
            .filter(|n| lists.contains(&n.list.as_str()))
            .fold(0u64, |sum, n| sum.saturating_add(n.duration_ns))
    };
    let informational_after = match (dump_end, end) {
        (Some(dump_end), Some(end)) => {
            dump_end.saturating_add(took(&["Informational", "PostDump"])) <= end
        }
        _ => true,
    };
    let mut bars = Vec::with_capacity(record.notifiers.len());
    for notifier in &record.notifiers {
        let after = match notifier.list.as_str() {
            "PostDump" => true,
            "Informational" => informational_after,
            _ => false,
        };
        if after && let Some(dump_end) = dump_end {
            cursor = cursor.max(dump_end);
        }
        bars.push(NotifierBar {
            list: notifier.list.clone(),
            name: notifier.name.clone(),
            outcome: notifier.outcome.clone(),
            start_ns: cursor,
            duration_ns: notifier.duration_ns,
        });
        cursor = cursor.saturating_add(notifier.duration_ns);
    }
    bars
}

/// Nanoseconds as milliseconds, three decimals.
pub fn ms(ns: u64) -> String {
    format!("{}.{:03} ms", ns / 1_000_000, ns % 1_000_000 / 1000)
}
