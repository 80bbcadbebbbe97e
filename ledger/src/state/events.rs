//! Flow events and their journal. Each flow transition emits one [`FlowEvent`] from the apply
//! itself; the batch's events are written with the batch (one key per applied index in the
//! `Events` family, in the same atomic write), so every replica journals the same events and a
//! node serves them after a restart. The journal keeps the last [`EVENT_RETAIN_BATCHES`] indexes:
//! applying index `i` deletes index `i − EVENT_RETAIN_BATCHES` — deterministic, so replicas and
//! snapshots agree on what is retained.

use super::*;

/// Applied indexes whose events the journal keeps.
pub const EVENT_RETAIN_BATCHES: u64 = 100_000;
/// Most indexes one [`Ledger::events`] call scans.
pub const EVENT_SCAN_INDEXES_MAX: u64 = 4_096;

/// One batch's journaled events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalBatch {
    pub index: u64,
    pub timestamp_ns: u64,
    pub events: Vec<FlowEvent>,
}

fn event_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

impl<S: Store> Ledger<S> {
    /// Emits one flow event (accounts deduplicated, at most [`EVENT_ACCOUNTS_MAX`]).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn emit(
        ctx: &mut BatchCtx,
        kind: EventKind,
        flow: Id,
        command: Id,
        state: &str,
        accounts: &[Id],
        amount: u128,
        currency: Currency,
    ) {
        let mut a: Vec<Id> = Vec::with_capacity(accounts.len());
        for id in accounts {
            if !a.contains(id) && a.len() < EVENT_ACCOUNTS_MAX {
                a.push(*id);
            }
        }
        ctx.events.push(FlowEvent {
            kind,
            flow,
            command,
            state: state.to_string(),
            accounts: a,
            amount,
            currency,
        });
    }

    /// Journals the batch's events and drops the index that fell out of retention.
    pub(super) fn journal_events(ctx: &mut BatchCtx, index: u64) {
        if !ctx.events.is_empty() {
            let v = codec::encode_events(ctx.ts, &ctx.events);
            ctx.wb.put(Cf::Events, event_key(index).to_vec(), v);
        }
        if index > EVENT_RETAIN_BATCHES {
            ctx.wb
                .delete(Cf::Events, event_key(index - EVENT_RETAIN_BATCHES).to_vec());
        }
    }

    /// The oldest applied index whose events are still journaled.
    pub fn first_journaled_index(&self) -> u64 {
        self.applied_index
            .saturating_sub(EVENT_RETAIN_BATCHES - 1)
            .max(1)
    }

    /// Journaled batches with events from index `from` on, scanning at most
    /// [`EVENT_SCAN_INDEXES_MAX`] indexes; returns them and the next index to ask for. An index
    /// older than [`Ledger::first_journaled_index`] is the caller's error to report.
    pub fn events(&self, from: u64) -> Result<(Vec<JournalBatch>, u64), LedgerError> {
        let from = from.max(1);
        if from > self.applied_index {
            return Ok((Vec::new(), from));
        }
        let to = self
            .applied_index
            .min(from.saturating_add(EVENT_SCAN_INDEXES_MAX - 1));
        let keys: Vec<crate::store::Key> = (from..=to).map(|i| event_key(i)[..].into()).collect();
        let values = self.store.multi_get(Cf::Events, &keys)?;
        let mut out = Vec::new();
        for (i, v) in (from..=to).zip(values) {
            if let Some(v) = v {
                let (timestamp_ns, events) = codec::decode_events(&v)?;
                out.push(JournalBatch {
                    index: i,
                    timestamp_ns,
                    events,
                });
            }
        }
        Ok((out, to + 1))
    }
}
