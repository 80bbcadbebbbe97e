//! The body of the `ledger_apply` fuzz target (and of its stable corpus replay): arbitrary command
//! sequences applied to the ledger, checked after every batch.
//!
//! Input: repeated `[u16 length BE][u8 seconds to advance][length bytes]`, each chunk one batch
//! whose commands are the bytes decoded with the log codec (so the fuzzer, seeded with encoded
//! batches, mutates real commands of every kind; chunks that do not decode are skipped). At most
//! [`BATCHES_MAX`] batches.
//!
//! Checked after each batch: money conserved per currency (the ledger asserts it as well); the
//! in-memory and RocksDB stores return the same results and reach the same digest; the same batch
//! applied again (a client retry) returns exactly the first results (a conflict is refused again)
//! and moves no money; after the run, reopening the RocksDB ledger gives the same digest.

use crate::codec::decode_commands;
use crate::command::Batch;
use crate::state::Ledger;
use crate::store::MemStore;
use crate::RocksStore;

pub const BATCHES_MAX: usize = 64;
const T0: u64 = 1_790_000_000_000_000_000;

/// Splits the input into (seconds to advance, encoded commands) chunks.
pub fn chunks(mut data: &[u8]) -> Vec<(u8, &[u8])> {
    let mut out = Vec::new();
    while data.len() >= 3 && out.len() < BATCHES_MAX {
        let len = u16::from_be_bytes([data[0], data[1]]) as usize;
        let dt = data[2];
        data = &data[3..];
        let take = len.min(data.len());
        out.push((dt, &data[..take]));
        data = &data[take..];
    }
    out
}

/// One input's run; panics on any violated invariant (that is the finding).
pub fn fuzz_apply(data: &[u8]) {
    let dir = std::env::temp_dir().join(format!(
        "suanpan-fuzz-apply-{}-{:x}",
        std::process::id(),
        blake3::hash(data).as_bytes()[..8]
            .iter()
            .fold(0u64, |a, b| (a << 8) | *b as u64)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    {
        let mut mem = Ledger::open(MemStore::new()).expect("open memory ledger");
        let mut rocks =
            Ledger::open(RocksStore::open(&dir).expect("open rocksdb")).expect("open ledger");
        let mut now = T0;
        let mut index: u64 = 0;
        for (dt, bytes) in chunks(data) {
            let Ok(commands) = decode_commands(bytes) else {
                continue;
            };
            now += dt as u64 * 1_000_000_000;
            index += 1;
            let batch = Batch {
                timestamp_ns: now,
                seed: index.wrapping_mul(0x9E37_79B9_7F4A_7C15),
                commands,
            };
            let a = mem.apply(index, &batch).expect("memory apply");
            let b = rocks.apply(index, &batch).expect("rocksdb apply");
            assert_eq!(a.results, b.results, "stores disagree at batch {index}");
            assert_eq!(
                mem.digest(),
                rocks.digest(),
                "digests differ at batch {index}"
            );
            for (currency, t) in mem.totals() {
                assert_eq!(t.debits_posted, t.credits_posted, "{currency:?} posted");
                assert_eq!(t.debits_pending, t.credits_pending, "{currency:?} pending");
            }
            // A retry of the whole batch replays every first outcome.
            let balances: Vec<_> = mem
                .accounts()
                .map(|a| (a.info.id, a.state.balances))
                .collect();
            index += 1;
            let retry = Batch {
                timestamp_ns: now,
                ..batch
            };
            let r = mem.apply(index, &retry).expect("memory retry");
            for (again, first) in r.results.iter().zip(&a.results) {
                // A conflict is not an outcome of the id (the id holds another body): it is
                // refused afresh, at the retry's log time. Everything else replays exactly.
                if first.code == crate::ResultCode::IdempotencyConflict {
                    assert_eq!(
                        again.code, first.code,
                        "a retry changed a conflict at {index}"
                    );
                } else {
                    assert_eq!(again, first, "a retry changed an outcome at batch {index}");
                }
            }
            rocks.apply(index, &retry).expect("rocksdb retry");
            let after: Vec<_> = mem
                .accounts()
                .map(|a| (a.info.id, a.state.balances))
                .collect();
            assert_eq!(balances, after, "a retry moved money at batch {index}");
            assert_eq!(
                mem.digest(),
                rocks.digest(),
                "digests differ after retry {index}"
            );
        }
        let digest = rocks.digest();
        drop(rocks);
        let reopened = Ledger::open(RocksStore::open(&dir).expect("reopen")).expect("reopen");
        assert_eq!(reopened.digest(), digest, "reopen changed the digest");
        assert_eq!(reopened.digest(), mem.digest());
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The body of the `ledger_snapshot` fuzz target: arbitrary bytes installed as a Raft snapshot.
///
/// Input: `[u64 index BE][snapshot bytes]` (the index the snapshot is offered at). Checked: no
/// panic; a refused snapshot leaves the ledger exactly as it was (empty); an accepted one
/// passes the full consistency check (`verify`), balances in every currency, sits at the offered
/// index, and its own snapshot restores into another ledger with the same digest.
pub fn fuzz_snapshot(data: &[u8]) {
    if data.len() < 8 {
        return;
    }
    let index = u64::from_be_bytes(data[..8].try_into().expect("8 bytes"));
    let snap = &data[8..];
    let mut l = Ledger::open(MemStore::new()).expect("empty ledger opens");
    match l.restore(index, snap) {
        Err(_) => {
            assert_eq!(
                l.applied_index(),
                0,
                "a refused snapshot changed the ledger"
            );
            assert_eq!(l.accounts().count(), 0, "a refused snapshot left accounts");
        }
        Ok(()) => {
            assert_eq!(l.applied_index(), index);
            l.verify().expect("an accepted snapshot passes verify");
            for (currency, t) in l.totals() {
                assert_eq!(t.debits_posted, t.credits_posted, "{currency:?} posted");
                assert_eq!(t.debits_pending, t.credits_pending, "{currency:?} pending");
            }
            let again = l.snapshot().expect("snapshot of a restored ledger");
            let mut m = Ledger::open(MemStore::new()).expect("empty ledger opens");
            m.restore(index, &again)
                .expect("a restored ledger's snapshot restores");
            assert_eq!(
                m.digest(),
                l.digest(),
                "snapshot round trip changed the digest"
            );
        }
    }
}

/// Seeds for `ledger_snapshot`: real snapshots of a small bank, at their index.
pub fn snapshot_seeds() -> Vec<Vec<u8>> {
    use crate::command::*;
    use crate::types::*;
    let account = |n: u128, kind: AccountKind| {
        Command::CreateAccount(CreateAccount::basic(Id(n), "CNY", kind))
    };
    let transfer = |n: u128, from: u128, to: u128, cents: i64, hold: Option<u64>| {
        Command::CreateTransfer(CreateTransfer::single(
            Id(n),
            Id(from),
            Id(to),
            rust_decimal::Decimal::new(cents, 2),
            hold,
        ))
    };
    let batches = vec![
        vec![
            account(1, AccountKind::System),
            account(0xA, AccountKind::Wallet),
            account(0xB, AccountKind::Wallet),
        ],
        vec![
            transfer(10, 1, 0xA, 50_000, None),
            transfer(11, 1, 0xB, 800, None),
        ],
        vec![
            transfer(12, 0xA, 0xB, 1_250, None),
            transfer(13, 0xA, 0xB, 300, Some(60)),
        ],
    ];
    let mut l = Ledger::open(MemStore::new()).expect("empty ledger opens");
    let mut out = Vec::new();
    for (i, commands) in batches.into_iter().enumerate() {
        let index = i as u64 + 1;
        let batch = Batch {
            timestamp_ns: T0 + index * 1_000_000_000,
            seed: index,
            commands,
        };
        l.apply(index, &batch).expect("seed batch applies");
        let mut input = index.to_be_bytes().to_vec();
        input.extend(l.snapshot().expect("snapshot"));
        out.push(input);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_seeds_restore_and_mutations_are_refused_cleanly() {
        let seeds = snapshot_seeds();
        for s in &seeds {
            fuzz_snapshot(s);
        }
        // Every single-byte corruption of a seed is refused (the checksum) without a change.
        let s = &seeds[1];
        for i in (0..s.len()).step_by(7) {
            let mut m = s.clone();
            m[i] ^= 0x55;
            fuzz_snapshot(&m);
        }
    }
}
