//! The real ledger as a simulated replica's state machine: the api crate's bridge
//! ([`LedgerStateMachine`]: proposal decoding, batch apply, result encoding) over a store whose
//! writes reach the "disk" only at writeback, so a crash loses what was not yet written back.
//!
//! This is stricter than a node on RocksDB, where the ledger's writes share the Raft log's WAL
//! and become durable with the next synced log write: here they may be lost even after it, and
//! recovery (replay from the log, or the stored snapshot) must still reach the same state.

use std::sync::Arc;

use api::events::{EventLog, EventLogConfig};
use api::state_machine::{LedgerStateMachine, SharedLedger};
use consensus::sim::SimMachine;
use consensus::{CommittedEntry, StateMachine, StateMachineError};
use ledger::{Cf, Ledger, MemStore, Store, StoreError, WriteBatch};
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::Rng;

enum Write {
    Batch(WriteBatch),
    Replace(WriteBatch),
}

/// An in-memory ledger store with a disk image behind it: reads see every write; the disk sees a
/// write at writeback; a crash keeps the disk plus, in order, some of the writes not yet on it.
#[derive(Default)]
pub struct DiskStore {
    live: MemStore,
    disk: MemStore,
    pending: Vec<Write>,
}

impl DiskStore {
    fn flush(&mut self) -> Result<(), StoreError> {
        for w in self.pending.drain(..) {
            match w {
                Write::Batch(b) => self.disk.write(b)?,
                Write::Replace(b) => self.disk.replace_all(b)?,
            }
        }
        Ok(())
    }

    /// What a crash leaves: the disk and the first `keep` pending writes.
    fn image(&self, keep: usize) -> Result<DiskStore, StoreError> {
        let mut disk = self.disk.clone();
        for w in self.pending.iter().take(keep) {
            match w {
                Write::Batch(b) => disk.write(b.clone())?,
                Write::Replace(b) => disk.replace_all(b.clone())?,
            }
        }
        Ok(DiskStore {
            live: disk.clone(),
            disk,
            pending: Vec::new(),
        })
    }
}

impl Store for DiskStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        self.live.get(cf, key)
    }
    fn persist(&mut self) -> Result<(), StoreError> {
        self.flush()
    }
    fn batched_reads_pay(&self) -> bool {
        false
    }
    fn for_each(
        &self,
        cf: Cf,
        f: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.live.for_each(cf, f)
    }
    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        self.live.scan(cf, prefix, start, limit)
    }
    fn write(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        self.live.write(batch.clone())?;
        self.pending.push(Write::Batch(batch));
        Ok(())
    }
    fn replace_all(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        self.live.replace_all(batch.clone())?;
        self.pending.push(Write::Replace(batch));
        Ok(())
    }
}

/// One committed entry as a replica applied it (drained by the swarm after every step).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedEntry {
    pub index: u64,
    pub timestamp_ns: u64,
    pub seed: u64,
    /// (proposing node, proposal id, payload).
    pub proposals: Vec<(u64, u64, Vec<u8>)>,
    /// The result bytes of each proposal.
    pub results: Vec<Vec<u8>>,
    /// The ledger digest after the entry.
    pub digest: [u8; 32],
}

/// A replica's ledger in the simulator.
pub struct SimLedger {
    node: u64,
    ledger: SharedLedger<DiskStore>,
    bridge: LedgerStateMachine<DiskStore>,
    applied: Vec<AppliedEntry>,
    restores: u64,
}

impl SimLedger {
    fn open(node: u64, store: DiskStore) -> SimLedger {
        // A crash image the ledger cannot open is a finding: the swarm reports the panic.
        let ledger = Ledger::open(store)
            .unwrap_or_else(|e| panic!("node {node}: the ledger does not open after a crash: {e}"));
        let events = EventLog::new(
            EventLogConfig {
                max_batches: 8,
                max_commands: 256,
                live_buffer_batches: 1,
                max_watchers: 0,
            },
            ledger.applied_index(),
        );
        let ledger = Arc::new(Mutex::new(ledger));
        SimLedger {
            node,
            bridge: LedgerStateMachine::new(ledger.clone(), Arc::new(events)),
            ledger,
            applied: Vec::new(),
            restores: 0,
        }
    }

    /// Entries applied since the last call.
    pub fn take_applied(&mut self) -> Vec<AppliedEntry> {
        std::mem::take(&mut self.applied)
    }

    /// Snapshots restored since the last call.
    pub fn take_restores(&mut self) -> u64 {
        std::mem::take(&mut self.restores)
    }

    pub fn ledger(&self) -> parking_lot::MutexGuard<'_, Ledger<DiskStore>> {
        self.ledger.lock()
    }
}

impl StateMachine for SimLedger {
    fn apply(
        &mut self,
        entries: &[CommittedEntry<'_>],
    ) -> Result<Vec<Vec<Vec<u8>>>, StateMachineError> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            let mut results = self.bridge.apply(std::slice::from_ref(e))?;
            let results = results.pop().unwrap_or_default();
            let ledger = self.ledger.lock();
            // Money is conserved after every apply (the ledger asserts it too; this is the
            // simulator's own check of the same invariant over the trial balance).
            for (currency, t) in ledger.totals() {
                if t.debits_posted != t.credits_posted || t.debits_pending != t.credits_pending {
                    return Err(StateMachineError::new(format!(
                        "node {}: money not conserved in {currency:?} at index {}",
                        self.node, e.index
                    )));
                }
            }
            self.applied.push(AppliedEntry {
                index: e.index,
                timestamp_ns: e.timestamp_ns,
                seed: e.seed,
                proposals: e
                    .proposals
                    .iter()
                    .map(|p| (p.node_id, p.proposal_id, p.payload.to_vec()))
                    .collect(),
                results: results.clone(),
                digest: ledger.digest(),
            });
            out.push(results);
        }
        Ok(out)
    }

    fn applied_index(&self) -> u64 {
        self.bridge.applied_index()
    }

    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        self.bridge.snapshot()
    }

    fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), StateMachineError> {
        self.bridge.restore(index, data)?;
        self.restores += 1;
        Ok(())
    }
}

impl SimMachine for SimLedger {
    fn empty(node_id: u64) -> Self {
        SimLedger::open(node_id, DiskStore::default())
    }

    fn crash_image(&self, rng: &mut StdRng) -> Self {
        let ledger = self.ledger.lock();
        let store = ledger.store();
        let keep = rng.gen_range(0..=store.pending.len());
        let image = store
            .image(keep)
            .unwrap_or_else(|e| panic!("node {}: crash image: {e}", self.node));
        SimLedger::open(self.node, image)
    }

    fn flush(&mut self) {
        let node = self.node;
        self.ledger
            .lock()
            .store_mut()
            .flush()
            .unwrap_or_else(|e| panic!("node {node}: writeback: {e}"));
    }
}
