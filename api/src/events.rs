//! The bounded in-memory ring of recently applied batches behind `WatchEvents`.

use std::collections::VecDeque;
use std::sync::Arc;

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
}

impl Default for EventLogConfig {
    fn default() -> Self {
        EventLogConfig {
            max_batches: 4_096,
            max_commands: 131_072,
            live_buffer_batches: 1_024,
        }
    }
}

struct Ring {
    events: VecDeque<Arc<pb::WatchEvent>>,
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
    live: broadcast::Sender<Arc<pb::WatchEvent>>,
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
        }
    }

    /// Records one applied batch (called by the state machine, in log order).
    pub fn push(&self, event: pb::WatchEvent) {
        let event = Arc::new(event);
        let mut r = self.ring.lock();
        r.commands += event.events.len();
        r.events.push_back(event.clone());
        while r.events.len() > self.cfg.max_batches
            || (r.commands > self.cfg.max_commands && r.events.len() > 1)
        {
            if let Some(old) = r.events.pop_front() {
                r.commands -= old.events.len();
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

    /// Events with index >= `from` (or none if `from == 0`) and a live subscription that
    /// continues exactly after them.
    #[allow(clippy::result_large_err)]
    fn catch_up(
        &self,
        from: u64,
    ) -> Result<
        (
            Vec<Arc<pb::WatchEvent>>,
            broadcast::Receiver<Arc<pb::WatchEvent>>,
        ),
        Status,
    > {
        let r = self.ring.lock();
        let rx = self.live.subscribe();
        if from == 0 {
            return Ok((Vec::new(), rx));
        }
        if from < r.complete_from {
            return Err(Status::out_of_range(format!(
                "index {from} is older than this node's event ring (oldest available: {})",
                r.complete_from
            )));
        }
        Ok((
            r.events
                .iter()
                .filter(|e| e.index >= from)
                .cloned()
                .collect(),
            rx,
        ))
    }

    /// Starts a watcher task feeding a bounded channel.
    #[allow(clippy::result_large_err)]
    /// The watcher ends (with `UNAVAILABLE`) when `closing` becomes true (node shutdown).
    pub fn watch(
        self: &Arc<Self>,
        from: u64,
        mut closing: tokio::sync::watch::Receiver<bool>,
    ) -> Result<mpsc::Receiver<Result<pb::WatchEvent, Status>>, Status> {
        let (mut backlog, mut rx) = self.catch_up(from)?;
        let (tx, out) = mpsc::channel(64);
        let log = self.clone();
        tokio::spawn(async move {
            let mut next = from;
            'outer: loop {
                for e in backlog.drain(..) {
                    if e.index < next {
                        continue;
                    }
                    next = e.index + 1;
                    if tx.send(Ok((*e).clone())).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    _ = tx.closed() => return,
                    _ = closed(&mut closing) => break 'outer,
                    got = rx.recv() => match got {
                        Ok(e) => backlog.push(e),
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            // Fell behind the live buffer: re-read from the ring.
                            match log.catch_up(next.max(1)) {
                                Ok((b, r)) => {
                                    backlog = b;
                                    rx = r;
                                }
                                Err(s) => {
                                    let _ = tx.send(Err(s)).await;
                                    return;
                                }
                            }
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                }
            }
            let _ = tx
                .send(Err(Status::unavailable("node shutting down")))
                .await;
        });
        Ok(out)
    }
}
