//! crashkit-capture: the capture kernel a crashed kernel hands over to
//! (docs/kdump.md). It runs alone on the CPU that panicked, in the
//! reservation, and:
//!
//! 1. leaves the crashed kernel's descriptor tables and stack ([`entry`]);
//! 2. checks the hand-over block and its memory map (a refused block: the
//!    reason on the console, no dump, a reset);
//! 3. builds its own identity map of what it reads ([`paging`]);
//! 4. finds the virtio-blk disk the block names (`crashkit-kdump-pc`, the
//!    driver the in-place writer uses too);
//! 5. writes the dump with `crashkit-kdump-capture` (progress on COM1,
//!    the completion marker and the device headers last);
//! 6. resets or halts, as the block says.

#![no_std]
#![no_main]

mod entry;
mod machine;
mod paging;
mod serial;

use crate::serial::Serial;
use crashkit_dump_format::{PhysMemory, PhysRange};
use crashkit_kdump_capture::sector::WINDOW;
use crashkit_kdump_capture::{EntryState, Inputs, Scratch, capture};
use crashkit_kdump_handover::block::{BLOCK_LEN, MAX_RANGES};
use crashkit_kdump_handover::{AfterDump, Device, HandOver, memory_map};

/// The writers' window, in .bss (identity mapped: the device reaches it).
static mut WINDOW_BUFFER: [u8; WINDOW] = [0; WINDOW];
/// The capture's large state.
static mut SCRATCH: Scratch = Scratch::new();

/// Physical memory, identity mapped by [`paging`].
struct Identity<'a> {
    ranges: &'a [PhysRange],
}

impl PhysMemory for Identity<'_> {
    fn page(&mut self, phys: u64) -> Option<&[u8; 4096]> {
        let page = PhysRange::new(phys, 4096);
        let mapped = self.ranges.iter().any(|r| r.contains(&page));
        if !mapped || !phys.is_multiple_of(4096) {
            return None;
        }
        // Page 0 through its alias: no reference can point at address 0.
        let address = if phys < 4096 {
            paging::LOW_ALIAS + phys
        } else {
            phys
        };
        // SAFETY: `phys` is a page of a memory-map range, identity mapped
        // write-back by `capture_main` (page 0 also at LOW_ALIAS); the
        // crashed kernel's CPUs are parked and nothing writes it while the
        // capture reads.
        Some(unsafe { &*(address as *const [u8; 4096]) })
    }
}

/// Where an exception lands: say so and halt (no dump can be trusted).
#[unsafe(no_mangle)]
extern "C" fn capture_exception(vector: u64, error: u64, rip: u64) -> ! {
    println!("crashkit-capture: exception {vector} (error {error:#x}) at {rip:#x}; halting");
    machine::halt()
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("crashkit-capture: panic: {info}; halting");
    machine::halt()
}

/// Refuse the hand-over: no dump, a reset (the block's own choice cannot
/// be trusted).
fn refuse(what: core::fmt::Arguments<'_>) -> ! {
    println!("crashkit-capture: {what}; no dump written, resetting");
    machine::reset()
}

/// The Rust entry (see [`entry`]).
#[unsafe(no_mangle)]
extern "C" fn capture_main(block: u64, cr0: u64, cr3: u64, cr4: u64) -> ! {
    Serial::init();
    println!("crashkit-capture: entered, hand-over block at {block:#x}");
    // SAFETY: the entry contract: `block` is the control area's first page,
    // identity mapped by the entry's page tables, nothing else writes it.
    let bytes = unsafe { core::slice::from_raw_parts(block as *const u8, BLOCK_LEN) };
    let handover = match HandOver::decode(bytes) {
        Ok(handover) => handover,
        Err(error) => refuse(format_args!("the hand-over block is refused: {error}")),
    };
    if handover.control.start != block {
        refuse(format_args!(
            "the block is at {block:#x} but names its control area at {:#x}",
            handover.control.start
        ));
    }
    let mut ranges = [PhysRange::default(); MAX_RANGES];
    let map_len = handover.memory_map_count as usize * 16;
    // SAFETY: `decode` checked the map lies in the control area (identity
    // mapped by the entry's tables).
    let map_bytes =
        unsafe { core::slice::from_raw_parts(handover.memory_map as *const u8, map_len) };
    let count = match memory_map::read(map_bytes, handover.memory_map_count as usize, &mut ranges) {
        Ok(count) => count,
        Err(error) => refuse(format_args!("the memory map is refused: {error}")),
    };
    let memory = &ranges[..count];

    // Page tables: the first 4 GiB (RAM write-back, the rest uncacheable),
    // the memory map, the record, the ECAM window.
    // SAFETY: called once.
    let mut mapper = unsafe { paging::Mapper::new() };
    let mut mapped = Ok(());
    let mut region = 0u64;
    while region < 1 << 32 {
        let ram = memory
            .iter()
            .chain([&handover.reservation])
            .any(|r| r.overlaps(&PhysRange::new(region, 1 << 21)));
        mapped = mapped.and(mapper.map_large(region, !ram));
        region += 1 << 21;
    }
    for range in memory
        .iter()
        .chain([&handover.reservation, &handover.record])
    {
        mapped = mapped.and(mapper.map_range(*range, false));
    }
    let Device::VirtioBlkPci { ecam, .. } = handover.device;
    mapped = mapped.and(mapper.map_large_at(paging::LOW_ALIAS, 0, false));
    if let Some(base) = ecam {
        mapped = mapped.and(mapper.map_range(PhysRange::new(base, 256 << 20), true));
    }
    if mapped.is_err() {
        refuse(format_args!("out of page-table pages for the memory map"));
    }
    mapper.activate();
    println!(
        "crashkit-capture: block v1 checked: {} memory ranges, record {:#x}+{:#x}, {:?}",
        count, handover.record.start, handover.record.len, handover.format
    );

    // The device: `crashkit-kdump-pc` finds it and has its BARs mapped
    // (uncacheable) wherever firmware put them; identity mapped, so both
    // offsets are 0.
    crashkit_kdump_pc::virtio::set_offsets(0, 0);
    let mut map_bar = |range: PhysRange| {
        let mapped = mapper.map_range(range, true).is_ok();
        mapper.activate();
        mapped
    };
    let disk = match crashkit_kdump_pc::virtio::open(handover.device, &mut map_bar) {
        Ok(disk) => disk,
        Err(error) => refuse(format_args!("{error}")),
    };
    println!(
        "crashkit-capture: dump device: virtio-blk, {} MiB",
        disk.mib()
    );

    // SAFETY: the record range is mapped (above) and in the crashed
    // kernel's memory, which nothing writes any more.
    let record = unsafe {
        core::slice::from_raw_parts(
            handover.record.start as *const u8,
            handover.record.len as usize,
        )
    };
    let vmcoreinfo: &[u8] = if handover.vmcoreinfo.len == 0 {
        &[]
    } else {
        // SAFETY: `decode` checked it lies in the control area (mapped).
        unsafe {
            core::slice::from_raw_parts(
                handover.vmcoreinfo.start as *const u8,
                handover.vmcoreinfo.len as usize,
            )
        }
    };
    let inputs = Inputs {
        block: &handover,
        record,
        vmcoreinfo,
        memory_map: memory,
        left_out: &[],
        entry: EntryState { cr0, cr3, cr4 },
        dump_id: crashkit_kdump_pc::id::dump_id(handover.boot_id),
        crash_time: crashkit_kdump_pc::clock::rtc_seconds(),
    };
    // SAFETY: the window and scratch statics are used only here, once, on
    // the one CPU this kernel runs on.
    let (window, scratch) = unsafe {
        (
            &mut *core::ptr::addr_of_mut!(WINDOW_BUFFER),
            &mut *core::ptr::addr_of_mut!(SCRATCH),
        )
    };
    let mut physical = Identity { ranges: memory };
    match capture(&inputs, &mut physical, disk, window, scratch, &mut Serial) {
        Ok(outcome) => println!(
            "crashkit-capture: dump written: {} of {} pages, {} bytes, {} CPUs ({} without registers){}{}",
            outcome.pages_written,
            outcome.pages_total,
            outcome.data_len,
            outcome.cpus,
            outcome.cpus_without_registers,
            if outcome.record_ok {
                ""
            } else {
                ", record unreadable"
            },
            if outcome.did_not_fit {
                ", DID NOT FIT: incomplete"
            } else {
                ""
            },
        ),
        Err(error) => println!("crashkit-capture: the dump failed: {error:?}"),
    }
    match handover.after {
        AfterDump::Reset => {
            println!("crashkit-capture: resetting");
            machine::reset()
        }
        AfterDump::Halt => {
            println!("crashkit-capture: halting");
            machine::halt()
        }
    }
}
