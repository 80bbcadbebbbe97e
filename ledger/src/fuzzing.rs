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
