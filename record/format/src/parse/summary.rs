//! [`Summary`]: a parsed record as a human-readable report, for tools and
//! demos (the `crashkit` CLI will print the same). `core::fmt` only: no
//! allocation, so a kernel could print it to a serial console too.

use core::fmt;

use crate::layout::cpu as cpu_layout;
use crate::{CpuState, Decoded, DumpPath, NotifierList, PhaseStamp, RecordView, Skipped, StopPath};

/// Displays a [`RecordView`] as a report: the panic, its timeline, every
/// CPU, every notifier outcome, escalations and counters.
#[derive(Debug)]
pub struct Summary<'v, 'a>(pub &'v RecordView<'a>);

/// A decoded code: the known name, or `unknown(code)`.
struct Name<T>(Decoded<T>);

impl<T: fmt::Debug> fmt::Display for Name<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Decoded::Known(value) => write!(f, "{value:?}"),
            Decoded::Unknown(code) => write!(f, "unknown({code})"),
        }
    }
}

/// Nanoseconds after the panic entry, in milliseconds; `-` for an
/// unwritten (zero) timestamp.
struct Since {
    at_ns: u64,
    entry_ns: u64,
}

impl fmt::Display for Since {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.at_ns == 0 {
            return f.pad("-");
        }
        let ns = self.at_ns.saturating_sub(self.entry_ns);
        let text = Millis(ns);
        f.pad(text.as_str(&mut [0u8; 24]))
    }
}

/// Nanoseconds as milliseconds with three decimals.
struct Millis(u64);

impl Millis {
    /// Format into `buffer` (large enough for any `u64`).
    fn as_str<'b>(&self, buffer: &'b mut [u8; 24]) -> &'b str {
        let mut writer = Buffer {
            bytes: buffer,
            len: 0,
        };
        let _ = fmt::write(
            &mut writer,
            format_args!("{}.{:03}", self.0 / 1_000_000, (self.0 / 1_000) % 1_000),
        );
        let len = writer.len;
        core::str::from_utf8(buffer.get(..len).unwrap_or(&[])).unwrap_or("?")
    }
}

/// A `fmt::Write` into a fixed buffer (drops what does not fit).
struct Buffer<'b> {
    bytes: &'b mut [u8; 24],
    len: usize,
}

impl fmt::Write for Buffer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            let slot = self.bytes.get_mut(self.len).ok_or(fmt::Error)?;
            *slot = byte;
            self.len += 1;
        }
        Ok(())
    }
}

struct SkippedNames(Skipped);

impl fmt::Display for SkippedNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut known = 0;
        for (bit, name) in Skipped::NAMED {
            if self.0.contains(bit) {
                f.write_str(if first { "" } else { ", " })?;
                f.write_str(name)?;
                first = false;
                known |= bit.0;
            }
        }
        let unknown = self.0.0 & !known;
        if unknown != 0 {
            write!(f, "{}bits {unknown:#x}", if first { "" } else { ", " })?;
            first = false;
        }
        if first {
            f.write_str("nothing")?;
        }
        Ok(())
    }
}

impl fmt::Display for Summary<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let record = self.0;
        let header = record.header();
        let panic = record.panic();
        let entry_ns = panic.stamp_ns(PhaseStamp::PanicEntry);
        let since = |at_ns| Since { at_ns, entry_ns };
        writeln!(
            f,
            "crash record v{} ({:?}, {} bytes): {} CPU slots, {} notifier slots",
            header.version,
            header.byte_order,
            header.total_size,
            record.cpu_count(),
            record.notifier_slot_count()
        )?;
        match panic.owner_cpu() {
            Some(cpu) => write!(f, "panic on cpu{cpu}")?,
            None if panic.owner_unregistered() => {
                write!(f, "panic on a CPU without an index (not yet online)")?;
            }
            None => write!(f, "no panic owner")?,
        }
        writeln!(
            f,
            "; phase {}; final action {}",
            Name(panic.phase()),
            Name(panic.final_action())
        )?;
        let message = panic.message();
        match message.as_str() {
            Some(text) => write!(f, "message: {text:?}")?,
            None => write!(
                f,
                "message: ({} bytes, not UTF-8)",
                message.as_bytes().len()
            )?,
        }
        writeln!(
            f,
            "{}",
            if message.truncated() {
                " (truncated)"
            } else {
                ""
            }
        )?;

        writeln!(f, "timeline (ms after the panic entry):")?;
        for (label, start, end) in [
            (
                "shootdown",
                PhaseStamp::ShootdownStart,
                PhaseStamp::ShootdownEnd,
            ),
            (
                "notifiers",
                PhaseStamp::NotifiersStart,
                PhaseStamp::NotifiersEnd,
            ),
            (
                "dump hand-over",
                PhaseStamp::DumpHandoverStart,
                PhaseStamp::DumpHandoverEnd,
            ),
        ] {
            writeln!(
                f,
                "  {label:<15} {:>10} -> {:>10}",
                since(panic.stamp_ns(start)),
                since(panic.stamp_ns(end))
            )?;
        }
        writeln!(
            f,
            "  {:<15} {:>10}",
            "final action",
            since(panic.stamp_ns(PhaseStamp::FinalAction))
        )?;
        writeln!(
            f,
            "  dump result {} (detail {:#x})",
            Name(panic.dump_result()),
            panic.dump_detail()
        )?;

        if let Some(dump) = record.dump()
            && dump.path() != Decoded::Known(DumpPath::None)
        {
            write!(f, "  dump path {}", Name(dump.path()))?;
            if dump.path() == Decoded::Known(DumpPath::InPlace) {
                let (started, finished) = dump.started_finished_ns();
                write!(
                    f,
                    " ({}, hand-over error {}): {}, {} pages, {} bytes, {} -> {} ms",
                    Name(dump.reason()),
                    dump.handover_error(),
                    Name(dump.outcome()),
                    dump.pages_written(),
                    dump.data_bytes(),
                    since(started),
                    since(finished)
                )?;
            }
            writeln!(f)?;
            for changed in dump.changed() {
                writeln!(
                    f,
                    "    changed while writing: {:#x}+{:#x} {}{}",
                    changed.start,
                    changed.len,
                    Name(changed.kind),
                    if changed.left_out {
                        " (left out of the dump)"
                    } else {
                        ""
                    }
                )?;
            }
        }
        for (start, len) in record.exclusions() {
            writeln!(f, "  excluded from dumps: {start:#x}+{len:#x}")?;
        }
        if let Some((address, size)) = record.log() {
            writeln!(
                f,
                "  crash log: {size} bytes at {address:#x} (`crashkit log --kernel ELF` decodes it)"
            )?;
        }

        let totals = panic.shootdown();
        writeln!(
            f,
            "shootdown: {} stopped, {} unresponsive, {} absent; {} NMIs sent ({} resent), {} send errors",
            totals.stopped,
            totals.unresponsive,
            totals.absent,
            totals.nmis_sent,
            totals.nmis_resent,
            totals.send_errors
        )?;

        writeln!(
            f,
            "{:<5} {:<13} {:<5} {:>4} {:>5} {:>10}  {:<18} {:<18}",
            "cpu", "state", "path", "nmis", "depth", "stopped", "rip", "rsp"
        )?;
        for (index, cpu) in record.cpus().enumerate() {
            let state = cpu.state();
            if state == Decoded::Known(CpuState::Absent) {
                continue;
            }
            let path = match cpu.stop_path() {
                Decoded::Known(StopPath::None) => "-",
                Decoded::Known(StopPath::Nmi) => "NMI",
                Decoded::Known(StopPath::Poll) => "poll",
                Decoded::Unknown(_) => "?",
            };
            write!(
                f,
                "{:<5} {:<13} {:<5} {:>4} {:>5} {:>10}",
                index,
                Name(state).to_padded(),
                path,
                cpu.nmis_sent(),
                cpu.nmi_depth(),
                since(cpu.stopped_ns())
            )?;
            match cpu.saved_registers() {
                Some(registers) => writeln!(
                    f,
                    "  {:#018x} {:#018x}",
                    registers[cpu_layout::RIP],
                    registers[cpu_layout::RSP]
                )?,
                None => writeln!(f, "  (no registers)")?,
            }
        }

        writeln!(
            f,
            "notifiers: {} recorded, {} dropped (slots full)",
            panic.notifiers_recorded(),
            panic.notifiers_dropped()
        )?;
        for notifier in record.notifiers() {
            let list = match notifier.list() {
                Decoded::Known(NotifierList::Hypervisor) => "hypervisor",
                Decoded::Known(NotifierList::Informational) => "informational",
                Decoded::Known(NotifierList::PreDump) => "pre-dump",
                Decoded::Known(NotifierList::PostDump) => "post-dump",
                Decoded::Unknown(_) => "?",
            };
            let name = notifier.name();
            writeln!(
                f,
                "  {:<13} {:<24} prio {:>4}  {:<16} {} ms",
                list,
                name.as_str().unwrap_or("(not UTF-8)"),
                notifier.priority(),
                Name(notifier.outcome()).to_padded(),
                Millis(notifier.duration_ns()).as_str(&mut [0u8; 24])
            )?;
        }

        writeln!(
            f,
            "escalations: {} (skipped: {})",
            panic.escalations(),
            SkippedNames(panic.skipped())
        )?;
        for index in 0..panic.escalations() as usize {
            let Some(escalation) = panic.escalation(index) else {
                break;
            };
            writeln!(
                f,
                "  in {} at {} ms: skipped {}",
                Name(escalation.phase),
                since(escalation.at_ns),
                SkippedNames(escalation.skipped)
            )?;
        }
        write!(
            f,
            "counters: {} second panickers, {} re-entries, {} lock fallbacks, {} panic lock breaks",
            panic.second_panickers(),
            panic.reentries(),
            panic.qspinlock_fallbacks(),
            panic.panic_lock_breaks()
        )
    }
}

impl<T: fmt::Debug> Name<T> {
    /// The name in a fixed buffer, so that width and alignment apply
    /// (`Display` of a composite ignores them).
    fn to_padded(&self) -> Padded {
        let mut padded = Padded {
            bytes: [0u8; 24],
            len: 0,
        };
        let mut writer = Buffer {
            bytes: &mut padded.bytes,
            len: 0,
        };
        let _ = fmt::write(&mut writer, format_args!("{self}"));
        padded.len = writer.len;
        padded
    }
}

/// A short name held in a buffer, displayed with the formatter's padding.
struct Padded {
    bytes: [u8; 24],
    len: usize,
}

impl fmt::Display for Padded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self
            .bytes
            .get(..self.len)
            .and_then(|bytes| core::str::from_utf8(bytes).ok())
            .unwrap_or("?");
        f.pad(text)
    }
}
