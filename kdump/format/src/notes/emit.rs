//! The notes' bytes, from one producer: [`emit_notes`] hands consecutive
//! byte strings to a closure. Each writer runs it once to size its notes,
//! once to write them and once, at the end, to checksum them (the ELF
//! writer's note segment, the kdump-compressed writer's ELF notes); one
//! producer means the three cannot disagree.

use super::crashkit::{CompletionMarker, DumpIdentity, FLAG_ZERO_TAILS, FORMAT_VERSION};
use super::{NAME_CORE, NAME_CRASHKIT, NAME_VMCOREINFO};
use crate::PAGE_SIZE;
use crate::crc32c::Crc32c;
use crate::plan::DumpPlan;
/// One consecutive piece of the notes area.
pub(crate) enum Piece<'a> {
    /// Bytes to write as they are.
    Bytes(&'a [u8]),
    /// The completion marker's descriptor: zeros until the end.
    CompletionDesc,
    /// `n` zero bytes of padding (0 to 3).
    Padding(usize),
}

impl Piece<'_> {
    pub fn len(&self) -> usize {
        match self {
            Self::Bytes(bytes) => bytes.len(),
            Self::CompletionDesc => CompletionMarker::SIZE,
            Self::Padding(n) => *n,
        }
    }
}

fn emit_note<E>(
    out: &mut impl FnMut(Piece<'_>) -> Result<(), E>,
    name: &[u8],
    n_type: u32,
    desc: &[u8],
) -> Result<(), E> {
    let (head, head_len) = super::encode_head(name, n_type, desc.len() as u32);
    out(Piece::Bytes(head.get(..head_len).unwrap_or(&[])))?;
    out(Piece::Bytes(desc))?;
    out(Piece::Padding(super::pad4(desc.len()) - desc.len()))
}

/// Write the notes area from `offset` through `put` (offset, bytes), the
/// completion marker's descriptor as zeros; stops at the first error.
pub(crate) fn write_notes<E>(
    plan: &DumpPlan<'_>,
    mut offset: u64,
    mut put: impl FnMut(u64, &[u8]) -> Result<(), E>,
) -> Result<(), E> {
    const ZEROS: [u8; CompletionMarker::SIZE] = [0; CompletionMarker::SIZE];
    emit_notes(plan, |piece| {
        let result = match piece {
            Piece::Bytes(bytes) => put(offset, bytes),
            Piece::CompletionDesc => put(offset, &ZEROS),
            Piece::Padding(n) => put(offset, ZEROS.get(..n).unwrap_or(&[])),
        };
        offset += piece.len() as u64;
        result
    })
}

/// Feed the notes area, the completion marker's descriptor as zeros, to
/// `crc` (the header checksums of both writers cover it so).
pub(crate) fn checksum_notes(plan: &DumpPlan<'_>, crc: &mut Crc32c) {
    let _ = emit_notes(plan, |piece| {
        match piece {
            Piece::Bytes(bytes) => crc.update(bytes),
            Piece::CompletionDesc => crc.update_zeros(CompletionMarker::SIZE as u64),
            Piece::Padding(n) => crc.update_zeros(n as u64),
        }
        Ok::<(), ()>(())
    });
}

/// Produce the notes area, piece by piece, in file order.
pub(crate) fn emit_notes<E>(
    plan: &DumpPlan<'_>,
    mut out: impl FnMut(Piece<'_>) -> Result<(), E>,
) -> Result<(), E> {
    // The panicking CPU's note first: gdb selects the first thread.
    let first = plan
        .cpus
        .iter()
        .position(|cpu| Some(cpu.control.cpu) == plan.panic_cpu)
        .unwrap_or(0);
    let ordered = plan.cpus.get(first).into_iter().chain(
        plan.cpus
            .iter()
            .enumerate()
            .filter(move |(i, _)| *i != first)
            .map(|(_, cpu)| cpu),
    );
    for cpu in ordered.clone() {
        let pid = cpu.pid.unwrap_or(cpu.control.cpu.saturating_add(1));
        let desc = super::prstatus::encode_x86_64(pid, &cpu.registers);
        emit_note(&mut out, NAME_CORE, super::NT_PRSTATUS, &desc)?;
    }
    if !plan.vmcoreinfo.is_empty() {
        emit_note(
            &mut out,
            NAME_VMCOREINFO,
            super::NT_VMCOREINFO,
            plan.vmcoreinfo,
        )?;
    }
    let identity = DumpIdentity {
        version: FORMAT_VERSION,
        flags: FLAG_ZERO_TAILS,
        dump_id: plan.dump_id,
        crash_time: plan.crash_time,
        page_size: PAGE_SIZE,
        direct_map: plan.direct_map,
        kernel_image: plan
            .kernel_image
            .map(|image| (image.phys_start, image.virt_start, image.len)),
        cpu_count: plan.cpus.len() as u32,
        panic_cpu: plan.panic_cpu,
    };
    emit_note(
        &mut out,
        NAME_CRASHKIT,
        super::crashkit::NT_IDENTITY,
        &identity.encode(),
    )?;
    for cpu in ordered {
        let desc = cpu.control.encode();
        emit_note(
            &mut out,
            NAME_CRASHKIT,
            super::crashkit::NT_CONTROL_STATE,
            &desc,
        )?;
    }
    let map_len = plan.ranges.len() * 16;
    let (head, head_len) = super::encode_head(
        NAME_CRASHKIT,
        super::crashkit::NT_MEMORY_MAP,
        map_len as u32,
    );
    out(Piece::Bytes(head.get(..head_len).unwrap_or(&[])))?;
    for range in plan.ranges {
        out(Piece::Bytes(&super::crashkit::encode_range(
            range.start,
            range.len,
        )))?;
    }
    if !plan.crash_record.is_empty() {
        emit_note(
            &mut out,
            NAME_CRASHKIT,
            super::crashkit::NT_CRASH_RECORD,
            plan.crash_record,
        )?;
    }
    let (head, head_len) = super::encode_head(
        NAME_CRASHKIT,
        super::crashkit::NT_COMPLETION,
        CompletionMarker::SIZE as u32,
    );
    out(Piece::Bytes(head.get(..head_len).unwrap_or(&[])))?;
    out(Piece::CompletionDesc)?;
    Ok(())
}
