//! The notes of a dump, read back by both readers: CPUs, `VMCOREINFO`,
//! QEMU's and crashkit's notes.
//!
//! CPUs are the `CORE`/`NT_PRSTATUS` notes in order. QEMU writes all its
//! `CORE` notes, then one `QEMU` note per CPU in the same order, so the
//! i-th of each belong together; crashkit writes its control-state notes in
//! the order of its `CORE` notes, so they pair the same way (each carries
//! the CPU's index).

use alloc::vec::Vec;

use super::{NAME_CORE, NAME_CRASHKIT, NAME_QEMU, NAME_VMCOREINFO, Notes as NoteWalk};
use crate::elf::ProgramHeader;
use crate::notes::crashkit::{self, CompletionMarker, ControlState, DumpIdentity};
use crate::notes::prstatus::{self, I386Registers, Registers};
use crate::notes::qemu::{QEMU_CPU_STATE_SIZE, QemuCpuState};
use crate::plan::PhysRange;
use crate::read::{Damage, DamageKind, Machine, NoteKind, Segment};
use crate::vmcoreinfo::VmcoreInfo;

/// The registers of one `NT_PRSTATUS` note.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuRegisters {
    /// The x86_64 layout.
    X86_64(Registers),
    /// The i386 layout (QEMU, CPU 0 not in long mode).
    I386(I386Registers),
}

/// One CPU of the dump.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cpu {
    /// `pr_pid` of its `NT_PRSTATUS` note.
    pub pid: u32,
    /// File offset of that note.
    pub note_offset: u64,
    /// Its registers.
    pub registers: CpuRegisters,
    /// QEMU's CPU state for it, in a QEMU dump.
    pub qemu: Option<QemuCpuState>,
    /// crashkit's control state for it, in a crashkit dump.
    pub control: Option<ControlState>,
}

impl Cpu {
    /// The instruction pointer.
    pub fn rip(&self) -> u64 {
        match self.registers {
            CpuRegisters::X86_64(r) => r.rip,
            CpuRegisters::I386(r) => u64::from(r.eip),
        }
    }

    /// The stack pointer.
    pub fn rsp(&self) -> u64 {
        match self.registers {
            CpuRegisters::X86_64(r) => r.rsp,
            CpuRegisters::I386(r) => u64::from(r.esp),
        }
    }

    /// Whether every register is zero (Linux leaves such a note for a CPU
    /// that missed the shootdown NMI).
    pub fn is_empty(&self) -> bool {
        match self.registers {
            CpuRegisters::X86_64(r) => r.to_array().iter().all(|&v| v == 0),
            CpuRegisters::I386(r) => r.to_array().iter().all(|&v| v == 0),
        }
    }

    /// CR3, from crashkit's control state or QEMU's CPU state.
    pub fn cr3(&self) -> Option<u64> {
        self.control
            .and_then(|c| c.cr3)
            .or_else(|| self.qemu.map(|q| q.cr[3]))
    }

    /// This CPU as the writers take it (`index`: its place in the dump),
    /// to write the dump again: the x86_64 registers, and the control state
    /// from crashkit's note, else from QEMU's CPU state (CR0 to CR4, FS and
    /// GS bases, GDTR and IDTR bases; QEMU's notes carry no APIC ID, so the
    /// index stands in for it), else only the index. `None` for i386
    /// registers, which the writers do not write.
    pub fn writer_state(&self, index: u32) -> Option<crate::plan::CpuState> {
        let CpuRegisters::X86_64(registers) = self.registers else {
            return None;
        };
        let control = match (self.control, self.qemu) {
            (Some(control), _) => control,
            (None, Some(q)) => ControlState {
                cpu: index,
                apic_id: index,
                cr0: Some(q.cr[0]),
                cr2: Some(q.cr[2]),
                cr3: Some(q.cr[3]),
                cr4: Some(q.cr[4]),
                fs_base: Some(q.segments[3].base),
                gs_base: Some(q.segments[4].base),
                gdtr_base: Some(q.segments[8].base),
                idtr_base: Some(q.segments[9].base),
                ..ControlState::default()
            },
            (None, None) => ControlState {
                cpu: index,
                apic_id: index,
                ..ControlState::default()
            },
        };
        Some(crate::plan::CpuState {
            registers,
            control,
            pid: Some(self.pid),
        })
    }
}

/// crashkit's notes in a crashkit dump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CrashkitNotes<'a> {
    /// The identity note.
    pub identity: DumpIdentity,
    /// File offset of the identity note.
    pub identity_offset: u64,
    /// The crash record's bytes, if the dump carries one.
    pub crash_record: Option<&'a [u8]>,
    /// The physical memory the dump covers.
    pub memory_map: Vec<PhysRange>,
    /// The completion marker, if its checksum holds.
    pub completion: Option<CompletionMarker>,
    /// File offset of the completion marker's descriptor.
    pub completion_desc_offset: Option<u64>,
}

impl CrashkitNotes<'_> {
    /// In an incomplete dump, the physical address from which memory-map
    /// pages outside every segment are lost rather than excluded. The
    /// writer writes the kernel image's segments first, then the ranges in
    /// ascending order: the leading run of segments inside the kernel image
    /// (ascending, not overlapping, at its virtual offset) is the image;
    /// the end of the last segment after it is how far the ranges got.
    pub fn frontier(&self, segments: &[Segment]) -> u64 {
        let mut rest = segments;
        if let Some((phys, virt, len)) = self.identity.kernel_image {
            let delta = virt.wrapping_sub(phys);
            let mut previous_end = phys;
            let image_end = phys.saturating_add(len);
            let prefix = segments
                .iter()
                .take_while(|s| {
                    let inside = s.paddr >= previous_end
                        && s.paddr.saturating_add(s.memsz) <= image_end
                        && s.vaddr.wrapping_sub(s.paddr) == delta;
                    if inside {
                        previous_end = s.paddr + s.memsz;
                    }
                    inside
                })
                .count();
            rest = segments.get(prefix..).unwrap_or(&[]);
        }
        rest.last().map_or(0, |s| s.paddr + s.memsz)
    }
}

/// Everything the notes said.
#[derive(Debug, Default)]
pub(crate) struct Notes<'a> {
    pub cpus: Vec<Cpu>,
    pub vmcoreinfo: Option<&'a [u8]>,
    pub crashkit: Option<CrashkitNotes<'a>>,
    pub qemu_notes: usize,
    /// `(offset, length)` of each note segment's bytes inside the file.
    pub regions: Vec<(u64, u64)>,
}

impl<'a> Notes<'a> {
    pub(crate) fn read(
        data: &'a [u8],
        machine: Machine,
        segments: &[(u32, u64, ProgramHeader)],
        damage: &mut Vec<Damage>,
    ) -> Self {
        let mut notes = Self::default();
        let mut qemu = Vec::new();
        let mut controls = Vec::new();
        let mut identity = None;
        let mut crash_record = None;
        let mut memory_map = Vec::new();
        let mut completion = None;
        let mut vmcoreinfo_at = 0u64;
        let mut crashkit_seen = None;
        let len = data.len() as u64;
        for &(index, header_offset, ph) in segments {
            let end = ph.p_offset.checked_add(ph.p_filesz);
            let in_file_end = end.unwrap_or(u64::MAX).min(len);
            if end.is_none_or(|end| end > len) {
                damage.push(Damage {
                    offset: header_offset,
                    kind: DamageKind::NotesPastEnd {
                        index,
                        missing: end.unwrap_or(u64::MAX) - in_file_end,
                    },
                });
            }
            let Some(bytes) =
                crate::bytes::slice_at(data, ph.p_offset, in_file_end.saturating_sub(ph.p_offset))
            else {
                continue;
            };
            notes.regions.push((ph.p_offset, bytes.len() as u64));
            for found in NoteWalk::new(bytes, ph.p_offset) {
                let found = match found {
                    Ok(found) => found,
                    Err(error) => {
                        damage.push(Damage {
                            offset: error.offset(),
                            kind: DamageKind::Note(error),
                        });
                        if error.ends_walk() {
                            break;
                        }
                        continue;
                    }
                };
                let size_damage = |note: NoteKind, expected: usize| Damage {
                    offset: found.offset,
                    kind: DamageKind::NoteSize {
                        note,
                        expected: expected as u32,
                        found: found.desc.len() as u32,
                    },
                };
                match (found.name, found.n_type) {
                    (NAME_CORE, super::NT_PRSTATUS) => {
                        let registers = if let Some((pid, r)) = prstatus::decode_x86_64(found.desc)
                        {
                            if machine == Machine::I386 {
                                damage.push(Damage {
                                    offset: found.offset,
                                    kind: DamageKind::X86_64NoteInI386Dump,
                                });
                            }
                            Some((pid, CpuRegisters::X86_64(r)))
                        } else if let Some((pid, r)) = prstatus::decode_i386(found.desc) {
                            if machine == Machine::X86_64 {
                                damage.push(Damage {
                                    offset: found.offset,
                                    kind: DamageKind::I386NoteInX86_64Dump,
                                });
                            }
                            Some((pid, CpuRegisters::I386(r)))
                        } else {
                            damage.push(size_damage(
                                NoteKind::Prstatus,
                                prstatus::PRSTATUS_X86_64_SIZE,
                            ));
                            None
                        };
                        if let Some((pid, registers)) = registers {
                            notes.cpus.push(Cpu {
                                pid,
                                note_offset: found.offset,
                                registers,
                                qemu: None,
                                control: None,
                            });
                        }
                    }
                    (NAME_QEMU, 0) => {
                        notes.qemu_notes += 1;
                        match QemuCpuState::decode(found.desc) {
                            Some(state) => qemu.push(Some(state)),
                            None => {
                                qemu.push(None);
                                damage
                                    .push(size_damage(NoteKind::QemuCpuState, QEMU_CPU_STATE_SIZE));
                            }
                        }
                    }
                    (NAME_VMCOREINFO, super::NT_VMCOREINFO) => {
                        if notes.vmcoreinfo.is_some() {
                            damage.push(Damage {
                                offset: found.offset,
                                kind: DamageKind::DuplicateNote {
                                    kind: NoteKind::Crashkit(0),
                                },
                            });
                        } else {
                            notes.vmcoreinfo = Some(found.desc);
                            vmcoreinfo_at = found.desc_offset;
                        }
                    }
                    (NAME_CRASHKIT, n_type) => {
                        crashkit_seen.get_or_insert(found.offset);
                        let duplicate = Damage {
                            offset: found.offset,
                            kind: DamageKind::DuplicateNote {
                                kind: NoteKind::Crashkit(n_type),
                            },
                        };
                        match n_type {
                            crashkit::NT_IDENTITY => match DumpIdentity::decode(found.desc) {
                                _ if identity.is_some() => damage.push(duplicate),
                                Some(id) => {
                                    if id.version > crashkit::FORMAT_VERSION {
                                        damage.push(Damage {
                                            offset: found.offset,
                                            kind: DamageKind::NewerFormat { found: id.version },
                                        });
                                    }
                                    identity = Some((id, found.offset));
                                }
                                None => damage.push(size_damage(
                                    NoteKind::Crashkit(n_type),
                                    DumpIdentity::SIZE,
                                )),
                            },
                            crashkit::NT_CRASH_RECORD if crash_record.is_some() => {
                                damage.push(duplicate)
                            }
                            crashkit::NT_CRASH_RECORD => crash_record = Some(found.desc),
                            crashkit::NT_CONTROL_STATE => match ControlState::decode(found.desc) {
                                Some(control) => controls.push(control),
                                None => damage.push(size_damage(
                                    NoteKind::Crashkit(n_type),
                                    ControlState::SIZE,
                                )),
                            },
                            crashkit::NT_MEMORY_MAP if !memory_map.is_empty() => {
                                damage.push(duplicate)
                            }
                            crashkit::NT_MEMORY_MAP => {
                                memory_map = read_memory_map(found.desc);
                                if memory_map.len() * 16 != found.desc.len() {
                                    damage.push(Damage {
                                        offset: found.offset,
                                        kind: DamageKind::BadMemoryMap,
                                    });
                                }
                            }
                            crashkit::NT_COMPLETION if completion.is_some() => {
                                damage.push(duplicate)
                            }
                            crashkit::NT_COMPLETION => {
                                if found.desc.len() < CompletionMarker::SIZE {
                                    damage.push(size_damage(
                                        NoteKind::Crashkit(n_type),
                                        CompletionMarker::SIZE,
                                    ));
                                } else {
                                    completion = Some((
                                        CompletionMarker::decode(found.desc),
                                        found.desc_offset,
                                    ));
                                }
                            }
                            _ => {}
                        }
                    }
                    _ => {}
                }
            }
        }
        if let Some(text) = notes.vmcoreinfo {
            check_vmcoreinfo(text, vmcoreinfo_at, damage);
        }
        // QEMU writes one CPU-state note per CPU note: a count that
        // differs means a CPU note's name or type was damaged (the CPU
        // would vanish silently) or a state note was.
        if notes.qemu_notes > 0 && notes.qemu_notes != notes.cpus.len() {
            damage.push(Damage {
                offset: segments.first().map_or(0, |(_, header, _)| *header),
                kind: DamageKind::QemuNoteCount {
                    cpus: notes.cpus.len() as u32,
                    states: notes.qemu_notes as u32,
                },
            });
        }
        for (cpu, state) in notes.cpus.iter_mut().zip(qemu) {
            cpu.qemu = state;
        }
        // crashkit's other notes without its identity: the identity note's
        // name or type is damaged, and with it the dump would be judged as
        // another producer's (no marker, no checksum).
        if let (None, Some(offset)) = (identity, crashkit_seen) {
            damage.push(Damage {
                offset,
                kind: DamageKind::CrashkitIdentityMissing,
            });
        }
        if let Some((identity, identity_offset)) = identity {
            if !controls.is_empty() && controls.len() != notes.cpus.len() {
                damage.push(Damage {
                    offset: identity_offset,
                    kind: DamageKind::ControlStateCount {
                        cpus: notes.cpus.len() as u32,
                        controls: controls.len() as u32,
                    },
                });
            }
            // The writer puts the control-state notes in the order of the
            // CPU notes; matching by position, not by `pr_pid`, keeps a
            // converted dump's PIDs (Linux's, which repeat: idle CPUs
            // all run PID 0) from losing the control state. With the
            // counts apart (damage, above) position means nothing, and
            // the crash path's `pr_pid` = index + 1 pairs what it can.
            if controls.len() == notes.cpus.len() {
                for (cpu, control) in notes.cpus.iter_mut().zip(&controls) {
                    cpu.control = Some(*control);
                }
            } else {
                for cpu in &mut notes.cpus {
                    cpu.control = controls
                        .iter()
                        .find(|c| c.cpu.checked_add(1) == Some(cpu.pid))
                        .copied();
                }
            }
            notes.crashkit = Some(CrashkitNotes {
                identity,
                identity_offset,
                crash_record,
                memory_map,
                completion: completion.and_then(|(marker, _)| marker),
                completion_desc_offset: completion.map(|(_, offset)| offset),
            });
        }
        notes
    }
}

/// Problems of the `VMCOREINFO` text whose descriptor is at file offset
/// `at`, as damage: the first [`VMCOREINFO_PROBLEMS`], then one that counts
/// the rest (a note of garbage would otherwise give one per line).
fn check_vmcoreinfo(text: &[u8], at: u64, damage: &mut Vec<Damage>) {
    let mut count = 0usize;
    VmcoreInfo::new(text).check(|problem| {
        count += 1;
        if count <= VMCOREINFO_PROBLEMS {
            damage.push(Damage {
                offset: at.saturating_add(problem.at),
                kind: DamageKind::Vmcoreinfo(problem.problem),
            });
        }
    });
    if count > VMCOREINFO_PROBLEMS {
        damage.push(Damage {
            offset: at,
            kind: DamageKind::VmcoreinfoMore {
                more: (count - VMCOREINFO_PROBLEMS) as u32,
            },
        });
    }
}

/// `VMCOREINFO` problems reported one by one.
const VMCOREINFO_PROBLEMS: usize = 16;

/// The memory map's entries up to the first that is empty, wraps,
/// overlaps or is out of order (the caller compares the count).
fn read_memory_map(desc: &[u8]) -> Vec<PhysRange> {
    let mut ranges: Vec<PhysRange> = Vec::new();
    for (start, len) in crashkit::memory_map_entries(desc) {
        let range = PhysRange::new(start, len);
        let ordered = ranges
            .last()
            .is_none_or(|last| last.end().is_some_and(|end| end <= start));
        if len == 0 || range.end().is_none() || !ordered {
            break;
        }
        ranges.push(range);
    }
    ranges
}
