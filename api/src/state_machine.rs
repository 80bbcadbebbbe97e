//! The bridge between consensus and the ledger: one committed Raft entry = one ledger batch.

use std::sync::Arc;

use consensus::{CommittedEntry, StateMachine, StateMachineError};
use ledger::{Batch, Command, Ledger, RocksStore, Store};
use parking_lot::Mutex;

use crate::events::{AppliedBatch, EventLog};
use crate::snapshots::{descriptor, parse_descriptor, SnapshotFiles};

/// The ledger shared by the state machine (writes, on the Raft thread) and the query handlers.
pub type SharedLedger<S = RocksStore> = Arc<Mutex<Ledger<S>>>;

/// Version byte of a proposal payload; the rest is `ledger::codec::encode_commands`.
pub const PAYLOAD_V1: u8 = 1;

pub fn encode_proposal(commands: &[Command]) -> Vec<u8> {
    let body = ledger::codec::encode_commands(commands);
    let mut v = Vec::with_capacity(body.len() + 1);
    v.push(PAYLOAD_V1);
    v.extend_from_slice(&body);
    v
}

pub fn decode_proposal(payload: &[u8]) -> Option<Vec<Command>> {
    match payload.split_first() {
        Some((&PAYLOAD_V1, rest)) => ledger::codec::decode_commands(rest).ok(),
        _ => None,
    }
}

impl<S: Store + 'static> consensus::Applier for LedgerStateMachine<S> {
    fn apply(
        &mut self,
        entries: &[CommittedEntry<'_>],
    ) -> Result<Vec<Vec<Vec<u8>>>, StateMachineError> {
        StateMachine::apply(self, entries)
    }
}

/// Result bytes of a proposal that could not be decoded (never produced by this crate's own
/// proposals; deterministic on every replica because the payload is).
pub const UNDECODABLE_RESULT: &[u8] = &[0xFF];

/// Follows the applying ledger (the node's read view, see [`crate::view`]).
pub trait ApplyObserver: Send + Sync {
    /// One batch applied (called on the Raft thread: must not wait for readers).
    fn applied(&self, delta: ledger::ViewDelta) -> Result<(), ledger::LedgerError>;
    /// The whole state was replaced by a snapshot.
    fn restored(
        &self,
        currencies: &mut dyn Iterator<Item = (ledger::Id, ledger::Currency)>,
        clients: Vec<ledger::Client>,
    );
}

pub struct LedgerStateMachine<S: Store + 'static = RocksStore> {
    ledger: SharedLedger<S>,
    events: Arc<EventLog>,
    observer: Option<Arc<dyn ApplyObserver>>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// Snapshots as files written in the background (`None`: inline, the whole state in the
    /// Raft message — tests and the simulator).
    files: Option<Arc<SnapshotFiles>>,
}

/// A second handle for the apply thread (see [`StateMachine::applier`]): every part is shared.
impl<S: Store + 'static> Clone for LedgerStateMachine<S> {
    fn clone(&self) -> Self {
        LedgerStateMachine {
            ledger: self.ledger.clone(),
            events: self.events.clone(),
            observer: self.observer.clone(),
            metrics: self.metrics.clone(),
            files: self.files.clone(),
        }
    }
}

impl<S: Store + 'static> LedgerStateMachine<S> {
    pub fn new(ledger: SharedLedger<S>, events: Arc<EventLog>) -> Self {
        LedgerStateMachine {
            ledger,
            events,
            observer: None,
            metrics: None,
            files: None,
        }
    }

    /// Takes snapshots as files (see [`crate::snapshots`]).
    pub fn with_snapshot_files(mut self, files: Arc<SnapshotFiles>) -> Self {
        self.files = Some(files);
        self
    }

    /// Counts applied commands and times each batch's apply in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Hands every applied batch's changes to `observer` (turns on the ledger's view tracking).
    pub fn with_observer(mut self, observer: Arc<dyn ApplyObserver>) -> Self {
        self.ledger.lock().set_view_tracking(true);
        self.observer = Some(observer);
        self
    }
}

impl<S: Store + 'static> StateMachine for LedgerStateMachine<S> {
    fn apply(
        &mut self,
        entries: &[CommittedEntry<'_>],
    ) -> Result<Vec<Vec<Vec<u8>>>, StateMachineError> {
        let mut out = Vec::with_capacity(entries.len());
        let mut ledger = self.ledger.lock();
        for e in entries {
            if e.index <= ledger.applied_index() {
                // Already applied by an earlier incarnation (should not happen: the driver starts
                // after the applied index). Nobody waits for these results.
                out.push(vec![Vec::new(); e.proposals.len()]);
                continue;
            }
            let mut commands = Vec::new();
            let mut spans = Vec::with_capacity(e.proposals.len());
            for p in &e.proposals {
                match decode_proposal(p.payload) {
                    Some(cmds) => {
                        spans.push(Some((commands.len(), cmds.len())));
                        commands.extend(cmds);
                    }
                    None => {
                        tracing::warn!(
                            index = e.index,
                            "undecodable proposal payload; answering with an error marker"
                        );
                        spans.push(None);
                    }
                }
            }
            let batch = Batch {
                timestamp_ns: e.timestamp_ns,
                seed: e.seed,
                commands,
            };
            let started = std::time::Instant::now();
            let output = ledger.apply(e.index, &batch).map_err(|err| {
                StateMachineError::new(format!("ledger apply at {}: {err}", e.index))
            })?;
            if let Some(m) = &self.metrics {
                m.applied(
                    started.elapsed().as_secs_f64(),
                    batch
                        .commands
                        .iter()
                        .map(Command::kind)
                        .zip(&output.results),
                );
            }
            if let (Some(o), Some(d)) = (&self.observer, ledger.take_view_delta()) {
                o.applied(d).map_err(|err| {
                    StateMachineError::new(format!("read view at {}: {err}", e.index))
                })?;
            }
            let per_proposal = spans
                .iter()
                .map(|s| match s {
                    Some((start, len)) => {
                        ledger::codec::encode_results(&output.results[*start..*start + *len])
                    }
                    None => UNDECODABLE_RESULT.to_vec(),
                })
                .collect();
            out.push(per_proposal);
            if !batch.commands.is_empty() || !output.events.is_empty() {
                // Moved, not formatted: the ring turns it into protobuf for watchers only.
                self.events.push(AppliedBatch::new(
                    e.index,
                    output.timestamp_ns,
                    batch.commands,
                    output.results,
                    output.events,
                ));
            }
        }
        Ok(out)
    }

    fn applied_index(&self) -> u64 {
        self.ledger.lock().applied_index()
    }

    /// The same ledger, events and observer: the apply thread applies, the Raft thread takes
    /// snapshots and restores (never at once: see [`consensus::Applier`]).
    fn applier(&self) -> Option<Box<dyn consensus::Applier>> {
        Some(Box::new(self.clone()))
    }

    /// Persists the ledger first: the driver compacts the log up to this snapshot, and a
    /// ledger writing behind the log (no WAL) must not lose applies the log no longer holds.
    /// With snapshot files, the snapshot is a checkpoint streamed to peers on demand, and this
    /// returns its descriptor.
    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        let mut ledger = self.ledger.lock();
        ledger
            .store_mut()
            .persist()
            .map_err(|e| StateMachineError::new(format!("ledger persist: {e}")))?;
        match &self.files {
            Some(files) => {
                let index = ledger.applied_index();
                files
                    .checkpoint(index)
                    .map_err(|e| StateMachineError::new(format!("snapshot checkpoint: {e}")))?;
                Ok(descriptor(index))
            }
            None => ledger
                .snapshot()
                .map_err(|e| StateMachineError::new(format!("ledger snapshot: {e}"))),
        }
    }

    fn snapshot_available(&self, data: &[u8]) -> bool {
        match (parse_descriptor(data), &self.files) {
            (Some(index), Some(files)) => files.available(index),
            (Some(_), None) => false,
            (None, _) => true,
        }
    }

    fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), StateMachineError> {
        let mut ledger = self.ledger.lock();
        let restored = match parse_descriptor(data) {
            Some(at) => {
                let path = self
                    .files
                    .as_ref()
                    .filter(|_| at == index)
                    .and_then(|f| f.complete(index))
                    .ok_or_else(|| {
                        StateMachineError::new(format!(
                            "no snapshot file for the snapshot at {index} (descriptor at {at})"
                        ))
                    })?;
                ledger.restore_file(index, &path)
            }
            None => ledger.restore(index, data),
        };
        restored.map_err(|e| StateMachineError::new(format!("ledger restore: {e}")))?;
        if let Some(files) = &self.files {
            files.prune(index);
        }
        if let Some(o) = &self.observer {
            o.restored(
                &mut ledger.accounts().map(|a| (a.info.id, a.info.currency)),
                ledger.clients(),
            );
        }
        drop(ledger);
        self.events.reset(index);
        Ok(())
    }
}
