//! Red packets (hongbao): how a packet's total is cut into slots, written so that anyone holding
//! the recorded seed can recompute it (`suanpan redpacket verify`).
//!
//! - The packet's seed is the first 8 bytes (little-endian) of BLAKE3(batch seed as 8 little-endian
//!   bytes ‖ packet id as 16 big-endian bytes): the leader chooses the batch seed, every replica
//!   derives the same packet seed.
//! - `random` ("double average"): with `rem` minor units and `left` slots to go, while `left > 1`
//!   draw a slot uniformly from `[1, min(⌊2·rem/left⌋, rem − (left − 1))]` with SplitMix64 seeded by
//!   the packet seed and unbiased bounded draws (`SplitMix64::below`, rejection sampling); the last
//!   slot takes the rest. Every slot is at least one minor unit; the slots sum to the total.
//! - `fixed`: equal slots by the largest-remainder rule, the extra units to the first slots.

use crate::rng::SplitMix64;
use crate::types::Id;

/// The packet's seed from the batch seed and its id.
pub fn packet_seed(batch_seed: u64, packet: Id) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&batch_seed.to_le_bytes());
    h.update(&packet.to_bytes());
    u64::from_le_bytes(h.finalize().as_bytes()[..8].try_into().expect("8 bytes"))
}

/// The slots of a packet of `total` minor units in `count` slots (`1 ≤ count ≤ total`).
pub fn slots(seed: u64, total: u64, count: u32, random: bool) -> Vec<u64> {
    assert!(
        count >= 1 && u64::from(count) <= total,
        "one minor unit per slot"
    );
    let count64 = u64::from(count);
    if !random {
        let (base, extra) = (total / count64, total % count64);
        return (0..count64).map(|i| base + u64::from(i < extra)).collect();
    }
    let mut rng = SplitMix64::new(seed);
    let mut out = Vec::with_capacity(count as usize);
    let mut rem = total;
    for left in (2..=count64).rev() {
        // Upper bound: twice the average of what is left, and enough left for one unit per slot.
        let max = (rem.saturating_mul(2) / left).min(rem - (left - 1)).max(1);
        let v = 1 + rng.below(max);
        out.push(v);
        rem -= v;
    }
    out.push(rem);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_sum_to_the_total_and_are_reproducible() {
        for (seed, total, count) in [
            (1u64, 10_000u64, 10u32),
            (7, 5, 5),
            (9, 1_000_000, 1),
            (3, 101, 100),
        ] {
            let s = slots(seed, total, count, true);
            assert_eq!(s.len(), count as usize);
            assert_eq!(s.iter().sum::<u64>(), total);
            assert!(s.iter().all(|v| *v >= 1));
            assert_eq!(s, slots(seed, total, count, true), "same seed, same slots");
        }
        assert_eq!(slots(0, 10, 3, false), vec![4, 3, 3]);
        assert_ne!(packet_seed(1, Id(5)), packet_seed(2, Id(5)));
    }
}
