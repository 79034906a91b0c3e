//! Encoding of the lock word: the locked bit and the queue tail (see the
//! table in the module docs of [`crate::lock`]).

use super::queue::NODES_PER_CPU;
use crate::CpuIndex;

/// The locked bit.
pub(crate) const LOCKED: u32 = 1;

/// The pending bit: one waiter spins on the word, ahead of any queue,
/// without taking a node.
pub(crate) const PENDING: u32 = 1 << 8;

const TAIL_INDEX_SHIFT: u32 = 16;
const TAIL_CPU_SHIFT: u32 = 18;
const TAIL_CPU_BITS: u32 = 32 - TAIL_CPU_SHIFT;

/// All tail bits.
pub(crate) const TAIL_MASK: u32 = !0 << TAIL_INDEX_SHIFT;

/// CPUs whose nodes can be encoded in a tail: CPU indices `0..MAX_QUEUE_CPUS`.
/// A CPU beyond it (or not covered by the domain's queues) never queues; it
/// spins test-and-set.
pub const MAX_QUEUE_CPUS: usize = (1 << TAIL_CPU_BITS) - 1;

const _: () = assert!(NODES_PER_CPU <= 1 << (TAIL_CPU_SHIFT - TAIL_INDEX_SHIFT));

/// The tail naming node `index` of `cpu`, if it can be encoded.
pub(crate) fn encode_tail(cpu: CpuIndex, index: usize) -> Option<u32> {
    if cpu.as_usize() >= MAX_QUEUE_CPUS || index >= NODES_PER_CPU {
        return None;
    }
    // Both fit: checked above (the +1 keeps CPU 0's tail non-zero).
    Some(((cpu.0 + 1) << TAIL_CPU_SHIFT) | ((index as u32) << TAIL_INDEX_SHIFT))
}

/// The (CPU, node index) a non-zero tail names; `None` for "no tail".
pub(crate) fn decode_tail(word: u32) -> Option<(CpuIndex, usize)> {
    let cpu_plus_one = word >> TAIL_CPU_SHIFT;
    let index = (word >> TAIL_INDEX_SHIFT) & ((1 << (TAIL_CPU_SHIFT - TAIL_INDEX_SHIFT)) - 1);
    let cpu = cpu_plus_one.checked_sub(1)?;
    Some((CpuIndex(cpu), index as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tails_round_trip_and_never_touch_the_locked_bit() {
        for cpu in [0, 1, 7, 255, MAX_QUEUE_CPUS as u32 - 1] {
            for index in 0..NODES_PER_CPU {
                let tail = encode_tail(CpuIndex(cpu), index).unwrap();
                assert_ne!(tail, 0);
                assert_eq!(tail & !TAIL_MASK, 0);
                assert_eq!(
                    decode_tail(tail | PENDING | LOCKED),
                    Some((CpuIndex(cpu), index))
                );
            }
        }
        assert_eq!(decode_tail(LOCKED | PENDING), None);
        assert_eq!(PENDING & (LOCKED | TAIL_MASK), 0);
    }

    #[test]
    fn unencodable_nodes_are_refused() {
        assert_eq!(encode_tail(CpuIndex(MAX_QUEUE_CPUS as u32), 0), None);
        assert_eq!(encode_tail(CpuIndex(0), NODES_PER_CPU), None);
    }
}
