//! Command ids a store cannot hold, known without a lookup.
//!
//! Why: every command's idempotency check reads its id, and for a new command that read misses —
//! through the write-behind maps and RocksDB's MultiGet over every memtable and sorted run's
//! filter (14 % of a follower's Raft thread). Command ids are time-ordered (UUIDv7,
//! `api::client::new_id`), so a new id is above nearly every id stored before it. The store
//! keeps a *floor* and the set of stored ids above it: an id above the floor that is not in the
//! set is not stored, and its read ends here. When the set reaches [`ABOVE_KEYS_MAX`] the floor
//! rises to the set's median and the ids at or below it leave the set; ids far above the rest
//! (a client's random UUIDv4, say) stay in the set and cost nothing else. A client whose ids are
//! all random gets the lookups of before, no worse.
//!
//! Invariant (what makes "absent" safe): every command id the store holds is at or below
//! `floor` or in `above`. Writes are covered before they become visible; deletes leave the set
//! as it is (an id wrongly thought present costs a lookup, never a wrong answer). Only the
//! writing handle (and the handles shared from it) writes the database, so the set sees every
//! write; at open it is read from the family's last [`OPEN_KEYS`] keys.

use std::sync::{Mutex, MutexGuard};

use rustc_hash::FxHashSet;

use crate::store::{Cf, WriteBatch};
use crate::writebehind::key_head;

/// Ids remembered above the floor before it rises (then half are let go). At 60 000
/// commands/s an id stays known for 2–4 s, longer than a command waits between its id's
/// creation and its apply under load; an id older than that is looked up as before. ~9 MiB.
pub const ABOVE_KEYS_MAX: usize = 1 << 18;
/// Ids read back at open: the floor starts just below the newest of them.
pub const OPEN_KEYS: usize = 4_096;
/// The family whose keys are bounded: command ids, read (and missed) by every command.
pub(crate) const CF: Cf = Cf::Commands;

/// The bounds of a store's command ids, shared by every handle on it.
pub(crate) struct KeyBounds(Mutex<Bounds>);

pub(crate) struct Bounds {
    /// Every command id held is at or below `floor`, or in `above`.
    floor: u128,
    above: FxHashSet<u128>,
    above_max: usize,
}

impl KeyBounds {
    /// The bounds of a store whose ids above `floor` are `above` (heads, [`key_head`]).
    pub(crate) fn new(
        floor: u128,
        above: impl IntoIterator<Item = u128>,
        above_max: usize,
    ) -> KeyBounds {
        let above_max = above_max.max(2);
        // Sized once: the set never rehashes or grows on the applying thread.
        let mut set = FxHashSet::with_capacity_and_hasher(above_max + 1, Default::default());
        set.extend(above.into_iter().filter(|&h| h > floor));
        let mut b = Bounds {
            floor,
            above: set,
            above_max,
        };
        if b.above.len() > b.above_max {
            b.raise();
        }
        KeyBounds(Mutex::new(b))
    }

    /// The floor only rises over ids let go, and a set too large costs a lookup: a panic while
    /// the bounds were held leaves nothing unsafe behind.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Bounds> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Bounds {
    /// False only if `cf` cannot hold `key`.
    pub(crate) fn may_hold(&self, cf: Cf, key: &[u8]) -> bool {
        if cf != CF {
            return true;
        }
        let h = key_head(key);
        h <= self.floor || self.above.contains(&h)
    }

    /// Adds `batch`'s command ids; called before the batch is visible to readers.
    pub(crate) fn cover(&mut self, batch: &WriteBatch) {
        for (cf, k, v) in &batch.ops {
            if *cf != CF || v.is_none() {
                continue;
            }
            self.add(key_head(k));
        }
        for (id, _) in &batch.history.locs {
            self.add(id.0);
        }
    }

    fn add(&mut self, h: u128) {
        if h > self.floor {
            self.above.insert(h);
            if self.above.len() > self.above_max {
                self.raise();
            }
        }
    }

    /// Raises the floor to the median id above it and lets go of the ids now at or below it.
    /// Linear in the set (a few milliseconds once per `above_max / 2` new ids).
    fn raise(&mut self) {
        let mut ids: Vec<u128> = self.above.iter().copied().collect();
        let mid = ids.len() / 2;
        let (_, median, _) = ids.select_nth_unstable(mid);
        self.floor = *median;
        let floor = self.floor;
        self.above.retain(|&h| h > floor);
    }

    #[cfg(test)]
    pub(crate) fn floor(&self) -> u128 {
        self.floor
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn id(n: u128) -> Vec<u8> {
        n.to_be_bytes().to_vec()
    }

    /// Whatever ids are written (rising, a little late, random, deleted, over many raises of the
    /// floor), no stored one is ever reported absent. Proptest prints the failing case.
    #[test]
    fn a_stored_id_is_never_reported_absent() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        // (kind, value): 0..=5 an id near the clock, 6 a random id, 7 a delete, 8 a probe.
        let op = (0u8..9, 0u32..2_000);
        let mut runner = TestRunner::new(Config {
            cases: 64,
            ..Config::default()
        });
        runner
            .run(
                &(proptest::collection::vec(op, 1..600), 0u128..50, 2usize..9),
                |(ops, initial, above_max)| {
                    // The store held every 7th id up to `initial` at open: the top few are read
                    // back, as `rocks` does, the floor just below them.
                    let mut stored: BTreeSet<u128> = (0..=initial).step_by(7).collect();
                    let top: Vec<u128> = stored.iter().rev().take(3).copied().collect();
                    let floor = stored.iter().rev().nth(3).copied().unwrap_or(0);
                    let bounds = KeyBounds::new(floor, top, above_max);
                    let mut clock = initial;
                    let mut batch = WriteBatch::default();
                    for (kind, v) in ops {
                        let v = u128::from(v);
                        match kind {
                            0..=5 => {
                                // Mostly rising, sometimes a little behind the newest.
                                clock += v % 5;
                                let k = clock.saturating_sub(v % 3);
                                batch.put(CF, id(k), vec![]);
                                stored.insert(k);
                            }
                            6 => {
                                batch.put(CF, id(v * 1_000), vec![]);
                                stored.insert(v * 1_000);
                            }
                            7 => {
                                batch.delete(CF, id(v));
                                stored.remove(&v);
                            }
                            _ => {
                                let mut b = bounds.lock();
                                b.cover(&std::mem::take(&mut batch));
                                for k in &stored {
                                    prop_assert!(b.may_hold(CF, &id(*k)), "stored {}", k);
                                }
                                prop_assert!(b.above.len() <= above_max);
                            }
                        }
                    }
                    Ok(())
                },
            )
            .unwrap();
    }

    #[test]
    fn new_ids_are_absent_without_a_lookup_and_old_ones_are_read() {
        let bounds = KeyBounds::new(100, [150, 120], 6);
        let mut b = bounds.lock();
        // At or below the floor: a lookup. Above it: only the ids known.
        assert!(b.may_hold(CF, &id(100)) && b.may_hold(CF, &id(7)));
        assert!(b.may_hold(CF, &id(120)) && b.may_hold(CF, &id(150)));
        assert!(!b.may_hold(CF, &id(101)) && !b.may_hold(CF, &id(151)));
        let mut wb = WriteBatch::default();
        for k in [201, 205, 203] {
            wb.put(CF, id(k), vec![]);
        }
        b.cover(&wb);
        for k in [201, 203, 205] {
            assert!(b.may_hold(CF, &id(k)), "{k}");
        }
        for k in [202, 204, 206] {
            assert!(!b.may_hold(CF, &id(k)), "{k}");
        }
        // Two more: the set passes 6 and the floor rises to its median, 203.
        let mut wb = WriteBatch::default();
        wb.put(CF, id(210), vec![]);
        wb.put(CF, id(211), vec![]);
        b.cover(&wb);
        assert_eq!(b.floor(), 203);
        assert!(b.may_hold(CF, &id(202)), "at or below the floor: read");
        assert!(!b.may_hold(CF, &id(204)));
        assert!(b.may_hold(CF, &id(205)) && b.may_hold(CF, &id(211)));
        // Deletes keep an id known (a lookup that finds nothing); other families are not bounded.
        let mut wb = WriteBatch::default();
        wb.delete(CF, id(211));
        b.cover(&wb);
        assert!(b.may_hold(CF, &id(211)));
        assert!(b.may_hold(Cf::Accounts, &id(999)));
    }
}
