//! `WatchEvents`: a bounded in-memory ring of recently applied batches (commands, results and
//! flow events), backed by the ledger's replicated journal of flow events for what the ring no
//! longer holds — after a restart, for a slow reader, on another node.

use std::collections::VecDeque;
use std::sync::{Arc, OnceLock};

use ledger::{Command, CommandResult, Currency, FlowEvent, Id};

use parking_lot::Mutex;
use tokio::sync::{broadcast, mpsc};
use tonic::Status;

use crate::pb;

/// Bounds of the ring.
#[derive(Clone, Copy, Debug)]
pub struct EventLogConfig {
    /// Most batches kept.
    pub max_batches: usize,
    /// Most commands kept over all batches.
    pub max_commands: usize,
    /// Live fan-out buffer per watcher, in batches (a slower watcher re-reads from the ring).
    pub live_buffer_batches: usize,
    /// Most watchers at once (each holds a task and buffers); beyond: `RESOURCE_EXHAUSTED`.
    pub max_watchers: usize,
}

impl Default for EventLogConfig {
    fn default() -> Self {
        EventLogConfig {
            max_batches: 4_096,
            max_commands: 131_072,
            live_buffer_batches: 1_024,
            max_watchers: 256,
        }
    }
}

/// One applied batch as the ring keeps it: the ledger's own values, moved in from the apply at no
/// cost, turned into protobuf only when a watcher reads it (then once, shared by every watcher).
/// With no watcher, applying a batch formats nothing.
pub struct AppliedBatch {
    pub index: u64,
    pub timestamp_ns: u64,
    pub commands: Vec<Command>,
    pub results: Vec<CommandResult>,
    pub flow_events: Vec<FlowEvent>,
    pb: OnceLock<pb::WatchEvent>,
}

impl AppliedBatch {
    pub fn new(
        index: u64,
        timestamp_ns: u64,
        commands: Vec<Command>,
        results: Vec<CommandResult>,
        flow_events: Vec<FlowEvent>,
    ) -> AppliedBatch {
        AppliedBatch {
            index,
            timestamp_ns,
            commands,
            results,
            flow_events,
            pb: OnceLock::new(),
        }
    }

    /// The batch on the wire. `currency_of` names the currency of an account a command leaves
    /// implicit (accounts never change currency, so any later answer is the right one).
    pub fn to_pb(&self, currency_of: &dyn Fn(Id) -> Option<Currency>) -> &pb::WatchEvent {
        self.pb.get_or_init(|| pb::WatchEvent {
            index: self.index,
            timestamp_ns: self.timestamp_ns,
            events: self
                .commands
                .iter()
                .zip(&self.results)
                .map(|(c, r)| pb::CommandEvent {
                    command: Some(crate::wire::command_to_pb(c, currency_of)),
                    result: Some(crate::wire::result_to_pb(c.id(), r)),
                })
                .collect(),
            flow_events: flow_events_to_pb(&self.flow_events),
            from_journal: false,
        })
    }
}

/// A batch's flow events on the wire, numbered in order (the ring's and the journal's alike).
fn flow_events_to_pb(events: &[FlowEvent]) -> Vec<pb::FlowEvent> {
    events
        .iter()
        .enumerate()
        .map(|(i, e)| crate::wire::flow_event_to_pb(i, e))
        .collect()
}

struct Ring {
    events: VecDeque<Arc<AppliedBatch>>,
    commands: usize,
    /// Every batch with an index >= this is either in the ring or not applied yet.
    complete_from: u64,
}

/// Resolves once `closing` is true (or its sender is gone).
pub(crate) async fn closed(closing: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await;
}

pub struct EventLog {
    cfg: EventLogConfig,
    ring: Mutex<Ring>,
    live: broadcast::Sender<Arc<AppliedBatch>>,
    watchers: Arc<std::sync::atomic::AtomicUsize>,
}

/// One watcher's place in `EventLog::watchers`, given back when its task ends.
struct WatcherSlot(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for WatcherSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl EventLog {
    /// `applied_index`: the state machine's applied index when the node starts (batches at or
    /// before it were applied by an earlier incarnation and are not in the ring).
    pub fn new(cfg: EventLogConfig, applied_index: u64) -> EventLog {
        let (live, _) = broadcast::channel(cfg.live_buffer_batches.max(1));
        EventLog {
            cfg,
            ring: Mutex::new(Ring {
                events: VecDeque::new(),
                commands: 0,
                complete_from: applied_index + 1,
            }),
            live,
            watchers: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        }
    }

    /// Records one applied batch (called by the state machine, in log order).
    pub fn push(&self, batch: AppliedBatch) {
        let event = Arc::new(batch);
        let mut r = self.ring.lock();
        r.commands += event.commands.len();
        r.events.push_back(event.clone());
        while r.events.len() > self.cfg.max_batches
            || (r.commands > self.cfg.max_commands && r.events.len() > 1)
        {
            if let Some(old) = r.events.pop_front() {
                r.commands -= old.commands.len();
                r.complete_from = old.index + 1;
            }
        }
        let _ = self.live.send(event); // no receivers is fine
    }

    /// A snapshot replaced the state: history before `index` is gone.
    pub fn reset(&self, index: u64) {
        let mut r = self.ring.lock();
        r.events.clear();
        r.commands = 0;
        r.complete_from = index + 1;
    }

    /// The first index the ring holds every batch from.
    fn complete_from(&self) -> u64 {
        self.ring.lock().complete_from
    }

    /// Events with index >= `from` and a live subscription that continues exactly after them, or
    /// `None` when `from` is older than the ring (read the journal first).
    fn catch_up(
        &self,
        from: u64,
    ) -> Option<(
        Vec<Arc<AppliedBatch>>,
        broadcast::Receiver<Arc<AppliedBatch>>,
    )> {
        let r = self.ring.lock();
        if from < r.complete_from {
            return None;
        }
        let rx = self.live.subscribe();
        Some((
            r.events
                .iter()
                .filter(|e| e.index >= from)
                .cloned()
                .collect(),
            rx,
        ))
    }

    /// Starts a watcher task feeding a bounded channel: batches from `from` on (0: from the next
    /// applied batch), first from the journal for what the ring no longer holds, then from the
    /// ring and live. With `accounts`, only the flow events that concern them (batches left empty
    /// are skipped). The watcher ends (with `UNAVAILABLE`) when `closing` becomes true (node
    /// shutdown). The caller says plainly, before streaming, when `from` is no longer retained
    /// (see [`retained`]): that check reads the ledger, which an async caller does off its worker.
    #[allow(clippy::result_large_err)]
    pub fn watch(
        self: &Arc<Self>,
        from: u64,
        accounts: Vec<String>,
        journal: Arc<dyn Journal>,
        mut closing: tokio::sync::watch::Receiver<bool>,
    ) -> Result<mpsc::Receiver<Result<pb::WatchEvent, Status>>, Status> {
        let max = self.cfg.max_watchers;
        let taken = self.watchers.fetch_update(
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
            |n| (n < max).then_some(n + 1),
        );
        if taken.is_err() {
            return Err(Status::resource_exhausted(format!(
                "this node already serves {max} watchers; retry later or watch another node"
            )));
        }
        let slot = WatcherSlot(self.watchers.clone());
        let (tx, out) = mpsc::channel(64);
        let log = self.clone();
        let send = move |e: &pb::WatchEvent| filter(e, &accounts);
        tokio::spawn(async move {
            let _slot = slot; // freed when the watcher ends (its client gone or the node closing)
                              // From 0: the first batch applied from now on.
            let mut next = if from == 0 {
                log.complete_from().max(1)
            } else {
                from
            };
            'outer: loop {
                // Batches the ring no longer holds come from the journal.
                let mut ring_from = log.complete_from();
                while next < ring_from {
                    // The journal is read from the ledger: off the async workers.
                    let j = journal.clone();
                    let read = tokio::task::spawn_blocking(move || j.read(next))
                        .await
                        .unwrap_or_else(|e| Err(Status::internal(format!("journal read: {e}"))));
                    let (batches, jnext) = match read {
                        Ok(r) => r,
                        Err(s) => {
                            let _ = tx.send(Err(s)).await;
                            return;
                        }
                    };
                    for b in batches.iter().filter(|b| b.index < ring_from) {
                        if let Some(e) = send(b) {
                            if tx.send(Ok(e)).await.is_err() {
                                return;
                            }
                        }
                    }
                    next = jnext.min(ring_from);
                    ring_from = log.complete_from();
                }
                let Some((mut backlog, mut rx)) = log.catch_up(next) else {
                    continue; // the ring moved on meanwhile: back to the journal
                };
                loop {
                    for e in backlog.drain(..) {
                        if e.index < next {
                            continue;
                        }
                        next = e.index + 1;
                        if let Some(e) = send(e.to_pb(&|id| journal.currency(id))) {
                            if tx.send(Ok(e)).await.is_err() {
                                return;
                            }
                        }
                    }
                    tokio::select! {
                        _ = tx.closed() => return,
                        _ = closed(&mut closing) => break 'outer,
                        got = rx.recv() => match got {
                            Ok(e) => backlog.push(e),
                            // Fell behind the live buffer: re-read from the ring or the journal.
                            Err(broadcast::error::RecvError::Lagged(_)) => continue 'outer,
                            Err(broadcast::error::RecvError::Closed) => return,
                        },
                    }
                }
            }
            let _ = tx
                .send(Err(Status::unavailable("node shutting down")))
                .await;
        });
        Ok(out)
    }
}

/// The batch as a watcher filtering by `accounts` sees it (`None`: nothing left).
fn filter(e: &pb::WatchEvent, accounts: &[String]) -> Option<pb::WatchEvent> {
    if accounts.is_empty() {
        return Some(e.clone());
    }
    let flow_events: Vec<pb::FlowEvent> = e
        .flow_events
        .iter()
        .filter(|f| f.account_ids.iter().any(|a| accounts.contains(a)))
        .cloned()
        .collect();
    if flow_events.is_empty() {
        return None;
    }
    Some(pb::WatchEvent {
        index: e.index,
        timestamp_ns: e.timestamp_ns,
        events: Vec::new(),
        flow_events,
        from_journal: e.from_journal,
    })
}

/// `OUT_OF_RANGE` when `from` is older than `first`, the first index the journal keeps.
#[allow(clippy::result_large_err)]
pub fn retained(first: u64, from: u64) -> Result<(), Status> {
    if from < first {
        return Err(Status::out_of_range(format!(
            "events before index {first} are no longer retained (the journal keeps the last \
             {} applied indexes); resume from {first}",
            ledger::EVENT_RETAIN_BATCHES
        )));
    }
    Ok(())
}

/// The replicated journal of flow events, as the watcher reads it (blocking: it reads storage).
pub trait Journal: Send + Sync + 'static {
    /// Batches with flow events from `from` on (a bounded scan) and the next index to read.
    #[allow(clippy::result_large_err)]
    fn read(&self, from: u64) -> Result<(Vec<pb::WatchEvent>, u64), Status>;
    /// An account's currency (to put a command on the wire when a watcher reads it).
    fn currency(&self, id: Id) -> Option<Currency>;
}

/// The journal of a node's ledger, read through its read view.
pub struct LedgerJournal(pub Arc<crate::view::LedgerView>);

impl Journal for LedgerJournal {
    fn read(&self, from: u64) -> Result<(Vec<pb::WatchEvent>, u64), Status> {
        let l = self
            .0
            .read()
            .map_err(|e| Status::internal(format!("read view: {e}")))?;
        retained(l.first_journaled_index(), from)?;
        let (batches, next) = l
            .events(from)
            .map_err(|e| Status::internal(format!("reading the event journal: {e}")))?;
        drop(l);
        let events = batches
            .into_iter()
            .map(|b| pb::WatchEvent {
                index: b.index,
                timestamp_ns: b.timestamp_ns,
                events: Vec::new(),
                flow_events: flow_events_to_pb(&b.events),
                from_journal: true,
            })
            .collect();
        Ok((events, next))
    }

    fn currency(&self, id: Id) -> Option<Currency> {
        self.0.currency(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoJournal;
    impl Journal for NoJournal {
        fn read(&self, from: u64) -> Result<(Vec<pb::WatchEvent>, u64), Status> {
            Ok((Vec::new(), from))
        }
        fn currency(&self, _id: Id) -> Option<Currency> {
            None
        }
    }

    /// Watchers are bounded: beyond `max_watchers` a watch is refused, and a watcher whose client
    /// went away gives its place back.
    #[test]
    fn watchers_are_bounded_and_their_places_come_back() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let log = Arc::new(EventLog::new(
                EventLogConfig {
                    max_watchers: 2,
                    ..EventLogConfig::default()
                },
                0,
            ));
            let (_closing_tx, closing) = tokio::sync::watch::channel(false);
            let watch = || log.watch(0, Vec::new(), Arc::new(NoJournal), closing.clone());
            let a = watch().expect("first");
            let _b = watch().expect("second");
            let err = watch().expect_err("a third is over the limit");
            assert_eq!(err.code(), tonic::Code::ResourceExhausted);
            drop(a);
            // The watcher notices its client is gone at its next event.
            log.push(AppliedBatch::new(1, 1, Vec::new(), Vec::new(), Vec::new()));
            for _ in 0..100 {
                tokio::task::yield_now().await;
                if watch().is_ok() {
                    return;
                }
            }
            panic!("the place of a closed watcher was not given back");
        });
    }
}
