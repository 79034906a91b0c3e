//! `crashkit log DUMP`: a Linux dump's kernel log, read from the printk
//! ring buffer of Linux 5.10 and later (the lockless ring), located and
//! laid out entirely through VMCOREINFO, read through the dump's page
//! tables (`vaddr`).
//!
//! The ring, as VMCOREINFO describes it (`SYMBOL(prb)`, the
//! `printk_ringbuffer`, `prb_desc_ring`, `prb_desc`, `prb_data_blk_lpos`,
//! `printk_info` and `prb_data_ring` sizes and offsets):
//! - `prb` is a pointer to the ring; the ring has a descriptor ring and a
//!   text data ring;
//! - the descriptor ring holds `1 << count_bits` descriptors and as many
//!   `printk_info` records, and the ids of its oldest (`tail_id`) and
//!   newest (`head_id`) descriptor; id `n` lives in slot `n mod count`;
//! - a descriptor's `state_var` holds its id in the low 62 bits and its
//!   state in the top two (0 reserved, 1 committed, 2 finalized, 3
//!   reusable): a record is readable when the id is the one expected and
//!   the state is committed or finalized;
//! - its `text_blk_lpos` gives the logical begin and end of its text block
//!   in the data ring (`1 << size_bits` bytes): positions are taken modulo
//!   the size, a block that would wrap is stored from the ring's start, a
//!   block starts with the 8-byte descriptor id, and an odd `begin` means
//!   no text;
//! - `printk_info` has the sequence number, the timestamp in nanoseconds,
//!   the text length and the caller id (a thread id, or a CPU number with
//!   bit 31 set).
//!
//! Every count and size read from the dump is bounded before it is used;
//! a part of the ring the dump does not have loses only the records that
//! touch it, and the answer says how many.

use std::collections::BTreeMap;

use serde::Serialize;

use crashkit_dump_format::vmcoreinfo::VmcoreInfo;

use crate::open::Opened;
use crate::vaddr;

/// The most descriptors read (Linux's ring is at most 2^22 records, for a
/// 2^27-byte log buffer).
const MOST_DESCRIPTORS_BITS: u64 = 22;
/// The largest text data ring read (Linux's log_buf is at most 2^25 bytes
/// by default configuration; 2^28 allows for `log_buf_len=`).
const MOST_DATA_BITS: u64 = 28;
/// The most the ring's three arrays may take together (they are read into
/// memory whole).
const MOST_LOG_BYTES: u64 = 384 << 20;

/// Why the log cannot be read at all.
#[derive(Debug)]
pub struct NoLog(pub String);

impl std::fmt::Display for NoLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NoLog {}

/// One record of the log.
#[derive(Debug, Serialize)]
pub struct Record {
    /// Its sequence number.
    pub seq: u64,
    /// Nanoseconds since boot.
    pub ts_nsec: u64,
    /// `T<thread id>` or `C<cpu>`, as Linux's `printk.caller` shows it.
    pub caller: String,
    /// The text (lossy UTF-8); continuation lines separated by `\n`.
    pub text: String,
}

/// `log`'s answer.
#[derive(Debug, Serialize)]
pub struct Log {
    /// The records, oldest first.
    pub records: Vec<Record>,
    /// Records before the first one kept, overwritten as the ring wrapped
    /// (the first record's sequence number).
    pub overwritten: u64,
    /// Records missing between those kept (a gap in the sequence numbers).
    pub missing: u64,
    /// Descriptors the ring held that could not be read, and why.
    pub unreadable: Vec<String>,
    /// Descriptors in use between tail and head.
    pub descriptors: u64,
    /// Records read but not shown (`--tail`).
    #[serde(skip_serializing_if = "is_zero")]
    pub not_shown: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl Log {
    /// Keep only the last `count` records (`--tail`).
    pub fn tail(&mut self, count: usize) {
        let drop = self.records.len().saturating_sub(count);
        self.records.drain(..drop);
        self.not_shown = drop as u64;
    }
}

/// The offsets and sizes the reader needs, from VMCOREINFO.
struct Layout {
    prb: u64,
    desc_ring: u64,
    text_data_ring: u64,
    count_bits: u64,
    descs: u64,
    infos: u64,
    head_id: u64,
    tail_id: u64,
    desc_size: u64,
    state_var: u64,
    text_blk_lpos: u64,
    lpos_begin: u64,
    lpos_next: u64,
    info_size: u64,
    info_seq: u64,
    info_ts: u64,
    info_text_len: u64,
    info_caller: u64,
    size_bits: u64,
    data: u64,
}

impl Layout {
    fn from(info: &VmcoreInfo<'_>) -> Result<Self, NoLog> {
        let get = |key: &str| {
            info.number(key).ok_or_else(|| {
                NoLog(format!(
                    "VMCOREINFO has no {key}: not a Linux 5.10+ dump with the lockless printk ring"
                ))
            })
        };
        Ok(Self {
            prb: get("SYMBOL(prb)")?,
            desc_ring: get("OFFSET(printk_ringbuffer.desc_ring)")?,
            text_data_ring: get("OFFSET(printk_ringbuffer.text_data_ring)")?,
            count_bits: get("OFFSET(prb_desc_ring.count_bits)")?,
            descs: get("OFFSET(prb_desc_ring.descs)")?,
            infos: get("OFFSET(prb_desc_ring.infos)")?,
            head_id: get("OFFSET(prb_desc_ring.head_id)")?,
            tail_id: get("OFFSET(prb_desc_ring.tail_id)")?,
            desc_size: get("SIZE(prb_desc)")?,
            state_var: get("OFFSET(prb_desc.state_var)")?,
            text_blk_lpos: get("OFFSET(prb_desc.text_blk_lpos)")?,
            lpos_begin: get("OFFSET(prb_data_blk_lpos.begin)")?,
            lpos_next: get("OFFSET(prb_data_blk_lpos.next)")?,
            info_size: get("SIZE(printk_info)")?,
            info_seq: get("OFFSET(printk_info.seq)")?,
            info_ts: get("OFFSET(printk_info.ts_nsec)")?,
            info_text_len: get("OFFSET(printk_info.text_len)")?,
            info_caller: get("OFFSET(printk_info.caller_id)")?,
            size_bits: get("OFFSET(prb_data_ring.size_bits)")?,
            data: get("OFFSET(prb_data_ring.data)")?,
        })
    }
}

/// Little-endian integers out of a byte slice that may be short.
fn u64_at(bytes: &[u8], at: u64) -> Option<u64> {
    let at = usize::try_from(at).ok()?;
    let mut word = [0u8; 8];
    word.copy_from_slice(bytes.get(at..at.checked_add(8)?)?);
    Some(u64::from_le_bytes(word))
}

fn u32_at(bytes: &[u8], at: u64) -> Option<u32> {
    let at = usize::try_from(at).ok()?;
    let mut word = [0u8; 4];
    word.copy_from_slice(bytes.get(at..at.checked_add(4)?)?);
    Some(u32::from_le_bytes(word))
}

fn u16_at(bytes: &[u8], at: u64) -> Option<u16> {
    let at = usize::try_from(at).ok()?;
    let mut word = [0u8; 2];
    word.copy_from_slice(bytes.get(at..at.checked_add(2)?)?);
    Some(u16::from_le_bytes(word))
}

/// Read the kernel log of `dump`.
pub fn read(dump: &Opened<'_>) -> Result<Log, NoLog> {
    let info = dump
        .vmcoreinfo()
        .ok_or_else(|| NoLog("the dump has no VMCOREINFO: no Linux log to read".into()))?;
    let layout = Layout::from(&info)?;
    let space = vaddr::space(dump, None).map_err(|e| NoLog(e.to_string()))?;
    // Addresses are the dump's values plus VMCOREINFO's offsets: wrapping
    // arithmetic, and a wild address is an unmapped one.
    let word = |addr: u64, what: &str| -> Result<u64, NoLog> {
        vaddr::read_u64(dump, &space, addr).map_err(|why| NoLog(format!("{what}: {why}")))
    };
    let ring = word(layout.prb, "the prb pointer")?;
    let desc_ring = ring.wrapping_add(layout.desc_ring);
    let data_ring = ring.wrapping_add(layout.text_data_ring);
    let count_bits = word(desc_ring.wrapping_add(layout.count_bits), "count_bits")? & 0xffff_ffff;
    let size_bits = word(data_ring.wrapping_add(layout.size_bits), "size_bits")? & 0xffff_ffff;
    if count_bits > MOST_DESCRIPTORS_BITS || !(4..=MOST_DATA_BITS).contains(&size_bits) {
        return Err(NoLog(format!(
            "the ring's sizes are not believable: 2^{count_bits} descriptors, 2^{size_bits} bytes of text"
        )));
    }
    let count = 1u64 << count_bits;
    let size = 1u64 << size_bits;
    // Structure sizes from VMCOREINFO, bounded before they size a read.
    for (what, value) in [
        ("SIZE(prb_desc)", layout.desc_size),
        ("SIZE(printk_info)", layout.info_size),
    ] {
        if !(8..=4096).contains(&value) {
            return Err(NoLog(format!(
                "VMCOREINFO's {what} is {value}: not believable"
            )));
        }
    }
    // The three arrays together at most MOST_LOG_BYTES: each is allocated
    // whole before its pages are read.
    let total = count * (layout.desc_size + layout.info_size) + size;
    if total > MOST_LOG_BYTES {
        return Err(NoLog(format!(
            "the ring would take {total} bytes (2^{count_bits} descriptors of {} and {} bytes, \
             2^{size_bits} bytes of text): more than the {MOST_LOG_BYTES} read",
            layout.desc_size, layout.info_size
        )));
    }
    let descs_at = word(
        desc_ring.wrapping_add(layout.descs),
        "the descriptors pointer",
    )?;
    let infos_at = word(desc_ring.wrapping_add(layout.infos), "the infos pointer")?;
    let data_at = word(data_ring.wrapping_add(layout.data), "the text pointer")?;
    let head = word(desc_ring.wrapping_add(layout.head_id), "head_id")?;
    let tail = word(desc_ring.wrapping_add(layout.tail_id), "tail_id")?;

    // The three arrays in bulk, pages the dump does not have left out.
    let descs = vaddr::read_pages(dump, &space, descs_at, count * layout.desc_size);
    let infos = vaddr::read_pages(dump, &space, infos_at, count * layout.info_size);
    let data = vaddr::read_pages(dump, &space, data_at, size);

    const ID_MASK: u64 = !(3u64 << 62);
    let in_use = head.wrapping_sub(tail) & ID_MASK;
    let mut log = Log {
        records: Vec::new(),
        overwritten: 0,
        missing: 0,
        unreadable: Vec::new(),
        descriptors: (in_use + 1).min(count),
        not_shown: 0,
    };
    let mut by_seq = BTreeMap::new();
    let mut unreadable = BTreeMap::<String, u64>::new();
    for step in 0..log.descriptors {
        let id = tail.wrapping_add(step) & ID_MASK;
        let slot = id & (count - 1);
        let desc = slot * layout.desc_size;
        let Some(desc_bytes) = descs.get(desc, layout.desc_size) else {
            *unreadable
                .entry(format!("descriptors {}", descs.why(desc)))
                .or_default() += 1;
            continue;
        };
        let Some(state_var) = u64_at(desc_bytes, layout.state_var) else {
            continue;
        };
        let state = state_var >> 62;
        if state_var & ID_MASK != id || !(state == 1 || state == 2) {
            // Reused for a newer record, or not finished: nothing to read.
            continue;
        }
        let info_off = slot * layout.info_size;
        let Some(info_bytes) = infos.get(info_off, layout.info_size) else {
            *unreadable
                .entry(format!("record information {}", infos.why(info_off)))
                .or_default() += 1;
            continue;
        };
        let (Some(seq), Some(ts_nsec), Some(text_len), Some(caller_id)) = (
            u64_at(info_bytes, layout.info_seq),
            u64_at(info_bytes, layout.info_ts),
            u16_at(info_bytes, layout.info_text_len),
            u32_at(info_bytes, layout.info_caller),
        ) else {
            continue;
        };
        let lpos = layout.text_blk_lpos;
        let (Some(begin), Some(next)) = (
            u64_at(desc_bytes, lpos.saturating_add(layout.lpos_begin)),
            u64_at(desc_bytes, lpos.saturating_add(layout.lpos_next)),
        ) else {
            continue;
        };
        let text = match text_block(begin, next, size_bits) {
            None => Vec::new(),
            Some((start, block_len)) => {
                // The block starts with the descriptor's id (8 bytes).
                let len = block_len.saturating_sub(8).min(u64::from(text_len));
                match data.get(start + 8, len) {
                    Some(bytes) => bytes.to_vec(),
                    None => {
                        *unreadable
                            .entry(format!("text {}", data.why(start)))
                            .or_default() += 1;
                        continue;
                    }
                }
            }
        };
        let caller = if caller_id & 0x8000_0000 != 0 {
            format!("C{}", caller_id & 0x7fff_ffff)
        } else {
            format!("T{caller_id}")
        };
        by_seq.insert(
            seq,
            Record {
                seq,
                ts_nsec,
                caller,
                text: String::from_utf8_lossy(&text).into_owned(),
            },
        );
    }
    log.unreadable = unreadable
        .into_iter()
        .map(|(why, n)| format!("{n} records: {why}"))
        .collect();
    log.records = by_seq.into_values().collect();
    if let Some(first) = log.records.first() {
        log.overwritten = first.seq;
    }
    log.missing = log
        .records
        .windows(2)
        .map(|pair| pair[1].seq.saturating_sub(pair[0].seq + 1))
        .sum();
    Ok(log)
}

impl Log {
    /// Linux's panic line: the last record that says `Kernel panic - not
    /// syncing: ...`.
    pub fn panic_line(&self) -> Option<&str> {
        self.records
            .iter()
            .rev()
            .map(|r| r.text.as_str())
            .find(|text| text.starts_with("Kernel panic - not syncing"))
    }

    /// The header Linux prints before a stack dump, `CPU: N PID: P Comm:
    /// NAME ...`: the last one in the log (the panic's, when the kernel
    /// panicked), as (CPU, PID, command).
    pub fn panic_header(&self) -> Option<(u32, u32, String)> {
        self.records.iter().rev().find_map(|r| {
            let rest = r.text.strip_prefix("CPU: ")?;
            let (cpu, rest) = rest.split_once(" PID: ")?;
            let (pid, rest) = rest.split_once(" Comm: ")?;
            let comm = rest.split_whitespace().next().unwrap_or("");
            Some((
                cpu.trim().parse().ok()?,
                pid.trim().parse().ok()?,
                comm.to_owned(),
            ))
        })
    }
}

/// Where a text block lies in a data ring of `1 << size_bits` bytes: its
/// start index and length, or `None` for a record without text (an odd
/// `begin`) or positions that cannot be a block.
fn text_block(begin: u64, next: u64, size_bits: u64) -> Option<(u64, u64)> {
    if begin & 1 != 0 || next <= begin {
        return None;
    }
    let size = 1u64 << size_bits;
    let wraps = |lpos: u64| lpos >> size_bits;
    let index = |lpos: u64| lpos & (size - 1);
    if wraps(begin) == wraps(next) {
        Some((index(begin), next - begin))
    } else if wraps(begin) + 1 == wraps(next) {
        // It would have wrapped: stored from the ring's start.
        Some((0, index(next)))
    } else {
        None
    }
    .filter(|&(_, len)| len <= size)
}

/// The text, as `dmesg` and `makedumpfile --dump-dmesg` print it:
/// `[    2.516997] text`, continuation lines indented under the first;
/// what could not be read said first.
pub fn render(log: &Log) -> String {
    let mut out = String::new();
    if log.overwritten > 0 {
        out.push_str(&format!(
            "(the {} records before sequence number {} were overwritten as the ring wrapped)\n",
            log.overwritten, log.overwritten
        ));
    }
    if log.missing > 0 {
        out.push_str(&format!(
            "({} records missing between those shown)\n",
            log.missing
        ));
    }
    for why in &log.unreadable {
        out.push_str(&format!("(not read: {why})\n"));
    }
    if log.not_shown > 0 {
        out.push_str(&format!(
            "({} earlier records not shown: --tail)\n",
            log.not_shown
        ));
    }
    for record in &log.records {
        let prefix = format!(
            "[{:5}.{:06}] ",
            record.ts_nsec / 1_000_000_000,
            (record.ts_nsec % 1_000_000_000) / 1000
        );
        // Continuation lines are indented under the first, as dmesg and
        // makedumpfile --dump-dmesg print them (the console repeats the
        // prefix instead).
        for (index, line) in record.text.split('\n').enumerate() {
            if index == 0 {
                out.push_str(&prefix);
            } else {
                out.extend(std::iter::repeat_n(' ', prefix.len()));
            }
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::text_block;

    #[test]
    fn text_blocks_in_place_wrapped_and_dataless() {
        // A 4096-byte ring: in place, wrapped to the start, none.
        assert_eq!(text_block(0x1010, 0x1050, 12), Some((0x10, 0x40)));
        assert_eq!(text_block(0x1ff0, 0x2030, 12), Some((0, 0x30)));
        assert_eq!(text_block(0x1, 0x1, 12), None);
        assert_eq!(text_block(0x3, 0x3, 12), None);
        // Positions that cannot be a block.
        assert_eq!(text_block(0x1050, 0x1010, 12), None);
        assert_eq!(text_block(0x1000, 0x4000, 12), None);
    }
}
