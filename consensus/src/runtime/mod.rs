//! Thin std-thread runtime around [`Driver`]: one thread per node runs the tick timer and the
//! ready loop; everything else talks to it through bounded queues via [`NodeHandle`]. Raft frames
//! from peers have a lane of their own, drained first every cycle: client load fills the command
//! lane (and is refused as overloaded) without crowding out the messages consensus lives on.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, select, Receiver, Sender, TrySendError};
use parking_lot::{Condvar, Mutex, RwLock};
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;

use crate::chunk::{chunk_message, Reassembler};
use crate::config::Config;
use crate::driver::{
    ApplyWork, Driver, MembershipChange, NodeStatus, ProposeOutcome, ReadError, RejectReason, Role,
};
use crate::error::ConsensusError;
use crate::logging::tracing_logger;
use crate::state_machine::{Applier, StateMachine, StateMachineError};
use crate::storage::{LogStore, LogSyncer};

/// Outgoing frames, fire-and-forget. Implementations must not block (drop when a peer's queue
/// is full: raft retransmits). Frames are at most `Config::max_message_bytes`; the receiving
/// side passes each frame unchanged to [`NodeHandle::step`].
pub trait Transport: Send + Sync {
    fn send(&self, to: u64, msg: Vec<u8>);
    /// Member `id` was added at `address` (from the replicated conf change, on every member).
    fn member_address(&self, _id: u64, _address: &str) {}
    /// A snapshot message from `from` at `index` whose `data` may be a reference to state kept
    /// outside the message (see [`StateMachine::restore`]). Return `false` if `data` is the
    /// state itself (the message is stepped at once); otherwise fetch what it refers to without
    /// blocking, and call `done(true)` once it is local (the message is stepped then) or
    /// `done(false)` (dropped: the leader sends it again after `snapshot_timeout_ticks`) — from
    /// another thread, after this returns: `done` may wait for room in the node's queue, which
    /// this call's thread drains.
    fn fetch_snapshot(
        &self,
        _from: u64,
        _index: u64,
        _data: &[u8],
        _done: Box<dyn FnOnce(bool) + Send>,
    ) -> bool {
        false
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error("inbound queue full")]
    QueueFull,
    #[error("node stopped: {0}")]
    Stopped(String),
}

enum Command {
    /// A frame, and the node the transport authenticated as its sender (`None`: not known).
    Step(Option<u64>, Vec<u8>),
    /// The transport fetched (`true`) or failed to fetch the data of the snapshot at this index.
    Fetched(u64, bool),
    /// A peer is fetching the snapshot this node sent it (restarts its snapshot timeout).
    SnapshotAlive(u64),
    /// Payload, weight, where to answer.
    Propose(Vec<u8>, u64, oneshot::Sender<ProposeOutcome>),
    Read(oneshot::Sender<Result<u64, ReadError>>),
    Membership(MembershipChange, oneshot::Sender<ProposeOutcome>),
    TransferLeader(u64),
    Campaign,
    Shutdown,
}

struct Shared {
    status: RwLock<NodeStatus>,
    /// Why the node stopped (fatal error or shutdown); `None` while running.
    stopped: Mutex<Option<String>>,
    shutdown_requested: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Cloneable, thread-safe handle to a running node.
#[derive(Clone)]
pub struct NodeHandle {
    id: u64,
    tx: Sender<Command>,
    /// The peer lane: `Command::Step` only.
    peer_tx: Sender<Command>,
    shared: Arc<Shared>,
}

pub struct NodeRuntime;

/// The log-sync thread of pipelined persistence ([`Config::log_sync_pipelined`]): it syncs the
/// log through the newest ready the Raft thread asked for and reports each finished sync on a
/// channel the Raft loop selects on. Requests that arrive during a sync are served by the next
/// one, so fsyncs group themselves: one at a time, each covering every write before it.
struct LogSyncThread {
    request: Arc<(Mutex<SyncRequest>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

#[derive(Default)]
struct SyncRequest {
    /// Sync through this ready.
    wanted: u64,
    stop: bool,
}

impl LogSyncThread {
    fn start(
        id: u64,
        syncer: LogSyncer,
        done: Sender<Result<(u64, u64), String>>,
    ) -> Result<LogSyncThread, ConsensusError> {
        let request = Arc::new((Mutex::new(SyncRequest::default()), Condvar::new()));
        let req = request.clone();
        let thread = std::thread::Builder::new()
            .name(format!("log-sync-{id}"))
            .spawn(move || {
                let mut synced = 0;
                loop {
                    let wanted = {
                        let (lock, cv) = &*req;
                        let mut r = lock.lock();
                        while r.wanted <= synced && !r.stop {
                            cv.wait(&mut r);
                        }
                        if r.stop {
                            return;
                        }
                        r.wanted
                    };
                    let began = Instant::now();
                    match syncer() {
                        Ok(()) => {
                            synced = wanted;
                            let us = began.elapsed().as_micros() as u64;
                            if done.send(Ok((wanted, us))).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            let _ = done.send(Err(e.to_string()));
                            return;
                        }
                    }
                }
            })
            .map_err(|e| ConsensusError::Stopped(format!("cannot spawn log-sync thread: {e}")))?;
        Ok(LogSyncThread {
            request,
            thread: Some(thread),
        })
    }

    fn want(&self, ready: u64) {
        let (lock, cv) = &*self.request;
        let mut r = lock.lock();
        if ready > r.wanted {
            r.wanted = ready;
            cv.notify_one();
        }
    }
}

impl Drop for LogSyncThread {
    /// Stops the thread and waits for a sync in progress (the log's database outlives it).
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.request;
            lock.lock().stop = true;
            cv.notify_one();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What the apply thread reports: the work it applied and the results, or why it failed.
type Applied = Result<(ApplyWork, Vec<Vec<Vec<u8>>>), String>;

/// The apply thread of pipelined apply ([`Config::apply_pipelined`]): it applies the committed
/// entries the Raft thread hands it, in order, and reports each work's results on a channel the
/// Raft loop selects on. Meanwhile the Raft thread appends, replicates and acknowledges.
struct ApplyThread {
    work: Option<Sender<ApplyWork>>,
    thread: Option<JoinHandle<()>>,
}

impl ApplyThread {
    fn start(
        id: u64,
        mut applier: Box<dyn Applier>,
        done: Sender<Applied>,
    ) -> Result<ApplyThread, ConsensusError> {
        // Unbounded, yet bounded: the driver has at most `max_apply_backlog_entries` entries
        // unapplied on a leader (it refuses proposals past that), and the Raft loop reads every
        // report as it comes (a bounded channel could block the loop on a full queue while the
        // apply thread waits on a full report channel).
        let (work_tx, work_rx) = crossbeam_channel::unbounded::<ApplyWork>();
        let thread = std::thread::Builder::new()
            .name(format!("apply-{id}"))
            .spawn(move || {
                for work in work_rx {
                    let r = work
                        .committed()
                        .map_err(|e| e.to_string())
                        .and_then(|batch| applier.apply(&batch).map_err(|e| e.to_string()));
                    let failed = r.is_err();
                    if done.send(r.map(|results| (work, results))).is_err() || failed {
                        return;
                    }
                }
            })
            .map_err(|e| ConsensusError::Stopped(format!("cannot spawn apply thread: {e}")))?;
        Ok(ApplyThread {
            work: Some(work_tx),
            thread: Some(thread),
        })
    }

    fn apply(&self, work: ApplyWork) -> Result<(), ConsensusError> {
        self.work
            .as_ref()
            .and_then(|w| w.send(work).ok())
            .ok_or_else(|| helper_ended("apply"))
    }
}

impl Drop for ApplyThread {
    /// Lets the thread finish what it was handed (the state machine stays consistent: each work
    /// is one apply call) and waits for it.
    fn drop(&mut self) {
        self.work.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Sends one encoded Raft message as frames of at most `max_frame` bytes.
fn send_frames(
    transport: &dyn Transport,
    (id, max_frame): (u64, usize),
    next_message_id: &mut u64,
    to: u64,
    bytes: &[u8],
) {
    *next_message_id = next_message_id.wrapping_add(1);
    for frame in chunk_message(id, *next_message_id, bytes, max_frame) {
        transport.send(to, frame);
    }
}

/// A helper thread of the Raft loop (log sync, apply), started when `wanted` and the parts it
/// needs exist (otherwise `wanted` turns false), and the channel its reports come back on.
/// Without the thread the channel never delivers (a disconnected one would wake the loop's
/// select at once, for ever). Unbounded, yet bounded in practice: one report per sync or per
/// work handed out, and the loop drains them every cycle; a bounded one could block the helper
/// on a full channel while the loop, shutting down, joins it.
fn helper_thread<P, T, R>(
    wanted: &mut bool,
    parts: Option<P>,
    start: impl FnOnce(P, Sender<R>) -> Result<T, ConsensusError>,
) -> Result<(Option<T>, Receiver<R>), ConsensusError> {
    let Some(parts) = parts.filter(|_| *wanted) else {
        *wanted = false;
        return Ok((None, crossbeam_channel::never()));
    };
    let (done_tx, done_rx) = crossbeam_channel::unbounded();
    Ok((Some(start(parts, done_tx)?), done_rx))
}

fn helper_ended(name: &str) -> ConsensusError {
    ConsensusError::Stopped(format!("the {name} thread ended"))
}

/// Commands handled per loop iteration before running a ready cycle (bounds latency of ticks).
const MAX_COMMANDS_PER_CYCLE: usize = 4_096;

fn wall_clock_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

impl NodeRuntime {
    /// Build the replica (synchronously, so startup errors are returned here) and start its
    /// thread. The DB behind `log_store` must stay open until `shutdown()` returns.
    pub fn start<S: LogStore, M: StateMachine>(
        config: Config,
        log_store: S,
        state_machine: M,
        transport: Arc<dyn Transport>,
    ) -> Result<NodeHandle, ConsensusError> {
        let id = config.id;
        let logger = tracing_logger(id);
        let mut config = config;
        let (apply, applied_rx) = helper_thread(
            &mut config.apply_pipelined,
            state_machine.applier(),
            |applier, done| ApplyThread::start(id, applier, done),
        )?;
        let (log_sync, synced_rx) = helper_thread(
            &mut config.log_sync_pipelined,
            log_store.syncer(),
            |syncer, done| LogSyncThread::start(id, syncer, done),
        )?;
        // Random start so proposal ids never repeat across restarts of this node.
        let driver = Driver::new(
            config.clone(),
            log_store,
            state_machine,
            rand::random::<u64>() >> 1,
            &logger,
        )?;
        let (tx, rx) = bounded(config.inbound_queue_len);
        let (peer_tx, peer_rx) = bounded(config.inbound_queue_len);
        let shared = Arc::new(Shared {
            status: RwLock::new(driver.status()),
            stopped: Mutex::new(None),
            shutdown_requested: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let thread_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("raft-{}", config.id))
            .spawn({
                let peer_tx = peer_tx.clone();
                move || {
                    run(
                        driver,
                        config,
                        Queues {
                            rx,
                            peer_rx,
                            peer_tx,
                            synced_rx,
                            applied_rx,
                        },
                        log_sync,
                        apply,
                        transport,
                        thread_shared,
                    )
                }
            })
            .map_err(|e| ConsensusError::Stopped(format!("cannot spawn raft thread: {e}")))?;
        *shared.thread.lock() = Some(handle);
        Ok(NodeHandle {
            id,
            tx,
            peer_tx,
            shared,
        })
    }
}

/// What the Raft thread reads from (and the sender of its own peer lane).
struct Queues {
    rx: Receiver<Command>,
    peer_rx: Receiver<Command>,
    peer_tx: Sender<Command>,
    /// Finished log syncs (pipelined persistence): the ready synced through and the fsync's
    /// time in µs, or why it failed.
    synced_rx: Receiver<Result<(u64, u64), String>>,
    /// Finished applies (pipelined apply).
    applied_rx: Receiver<Applied>,
}

struct Loop<S: LogStore, M: StateMachine> {
    driver: Driver<S, M>,
    /// `None` unless the log is persisted in the background.
    log_sync: Option<LogSyncThread>,
    /// `None` unless committed entries are applied off the Raft thread.
    apply: Option<ApplyThread>,
    cfg: Config,
    transport: Arc<dyn Transport>,
    shared: Arc<Shared>,
    reassembler: Reassembler,
    /// Where fetched snapshot messages come back (the peer lane).
    peer_tx: Sender<Command>,
    /// The snapshot message whose data is being fetched, by index (one at a time; snapshot
    /// messages that arrive meanwhile are dropped).
    fetching: HashMap<u64, raft::eraftpb::Message>,
    rng: rand::rngs::StdRng,
    next_message_id: u64,
    proposals: HashMap<u64, oneshot::Sender<ProposeOutcome>>,
    reads: HashMap<u64, oneshot::Sender<Result<u64, ReadError>>>,
}

fn run<S: LogStore, M: StateMachine>(
    driver: Driver<S, M>,
    cfg: Config,
    queues: Queues,
    log_sync: Option<LogSyncThread>,
    apply: Option<ApplyThread>,
    transport: Arc<dyn Transport>,
    shared: Arc<Shared>,
) {
    let Queues {
        rx,
        peer_rx,
        peer_tx,
        synced_rx,
        applied_rx,
    } = queues;
    let mut lp = Loop {
        driver,
        log_sync,
        apply,
        reassembler: Reassembler::new(cfg.max_inbound_message_bytes),
        peer_tx,
        fetching: HashMap::new(),
        cfg,
        transport,
        shared: shared.clone(),
        rng: rand::rngs::StdRng::from_entropy(),
        next_message_id: 0,
        proposals: HashMap::new(),
        reads: HashMap::new(),
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        lp.run(&rx, &peer_rx, &synced_rx, &applied_rx)
    }));
    let panicked = result.is_err();
    let reason = match result {
        Ok(Ok(())) => "shut down".to_string(),
        Ok(Err(e)) => {
            tracing::error!(node = lp.cfg.id, "raft node stopped on fatal error: {e}");
            e.to_string()
        }
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(node = lp.cfg.id, "raft node panicked: {msg}");
            format!("panic: {msg}")
        }
    };
    *shared.stopped.lock() = Some(reason);
    // Nobody waits forever. The driver knows which proposals Raft took (outcome unknown: they
    // may be committed by the next leader) and which it never proposed (rejected). After a
    // panic it cannot be asked: everything it held is unknown.
    if !panicked {
        lp.driver.abandon();
        lp.route_completions();
    }
    for (_, tx) in lp.proposals.drain() {
        let _ = tx.send(ProposeOutcome::Unknown);
    }
    for (_, tx) in lp.reads.drain() {
        let _ = tx.send(Err(ReadError::Stopped));
    }
    drop(lp);
    while let Ok(cmd) = rx.try_recv() {
        reject(cmd);
    }
    while peer_rx.try_recv().is_ok() {}
}

fn reject(cmd: Command) {
    match cmd {
        Command::Propose(_, _, tx) | Command::Membership(_, tx) => {
            let _ = tx.send(ProposeOutcome::Rejected {
                reason: RejectReason::Stopped,
            });
        }
        Command::Read(tx) => {
            let _ = tx.send(Err(ReadError::Stopped));
        }
        _ => {}
    }
}

impl<S: LogStore, M: StateMachine> Loop<S, M> {
    fn run(
        &mut self,
        rx: &Receiver<Command>,
        peer_rx: &Receiver<Command>,
        synced_rx: &Receiver<Result<(u64, u64), String>>,
        applied_rx: &Receiver<Applied>,
    ) -> Result<(), ConsensusError> {
        let tick = Duration::from_millis(self.cfg.tick_interval_ms);
        let mut next_tick = Instant::now() + tick;
        // Entries committed before a restart but not applied (the state machine had not
        // persisted them) are applied again first: the restart's replay, timed once.
        let start = self.driver.status();
        let mut replay = (start.commit_index > start.applied_index)
            .then(|| (start.applied_index, start.commit_index, Instant::now()));
        loop {
            if self.shared.shutdown_requested.load(Ordering::Acquire) {
                return Ok(());
            }
            let timeout = next_tick.saturating_duration_since(Instant::now());
            let first = select! {
                recv(synced_rx) -> r => {
                    self.synced(r.map_err(|_| helper_ended("log-sync"))?)?;
                    None
                }
                recv(applied_rx) -> r => {
                    self.applied(r.map_err(|_| helper_ended("apply"))?)?;
                    None
                }
                recv(peer_rx) -> c => match c {
                    Ok(c) => Some(c),
                    Err(_) => return Ok(()), // every handle dropped
                },
                recv(rx) -> c => match c {
                    Ok(c) => Some(c),
                    Err(_) => return Ok(()), // every handle dropped
                },
                default(timeout) => None,
            };
            if let Some(c) = first {
                if !self.handle(c)? {
                    return Ok(());
                }
            }
            // Drain bounded batches, finished syncs and peer frames first: everything proposed
            // meanwhile is group-committed below.
            while let Ok(r) = synced_rx.try_recv() {
                self.synced(r)?;
            }
            while let Ok(r) = applied_rx.try_recv() {
                self.applied(r)?;
            }
            for lane in [peer_rx, rx] {
                for _ in 0..MAX_COMMANDS_PER_CYCLE {
                    let Ok(c) = lane.try_recv() else { break };
                    if !self.handle(c)? {
                        return Ok(());
                    }
                }
            }
            let now = Instant::now();
            if now >= next_tick {
                self.driver.tick()?;
                next_tick += tick;
                if next_tick < now {
                    next_tick = now + tick; // we fell behind (long fsync); don't burst ticks
                }
            }
            let frame = (self.cfg.id, self.cfg.max_message_bytes);
            let transport = &*self.transport;
            let next_message_id = &mut self.next_message_id;
            self.driver
                .process_ready_with(wall_clock_ns(), self.rng.gen(), &mut |to, bytes| {
                    send_frames(transport, frame, next_message_id, to, &bytes)
                })?;
            if let Some(ready) = self.driver.take_log_sync() {
                match &self.log_sync {
                    Some(t) => t.want(ready),
                    None => {
                        return Err(ConsensusError::Invariant(
                            "a log sync is owed but there is no log-sync thread".into(),
                        ))
                    }
                }
            }
            while let Some(work) = self.driver.take_apply_work() {
                match &self.apply {
                    Some(t) => t.apply(work)?,
                    None => {
                        return Err(ConsensusError::Invariant(
                            "entries to apply elsewhere but there is no apply thread".into(),
                        ))
                    }
                }
            }
            for (member, address) in self.driver.take_member_addresses() {
                self.transport.member_address(member, &address);
            }
            let status = self.driver.status();
            // Published before the answers go out: a caller that got one reads a status that
            // has applied at least as far.
            *self.shared.status.write() = status.clone();
            self.route_completions();
            if let Some((from, to, began)) = replay {
                if status.applied_index >= to {
                    tracing::info!(
                        node = self.cfg.id,
                        from,
                        to,
                        entries = to - from,
                        ms = began.elapsed().as_millis() as u64,
                        "replayed the log committed before the restart"
                    );
                    replay = None;
                }
            }
        }
    }

    /// A sync of the log finished: what waited for it goes out (the ready cycle that follows
    /// applies what it let commit). A failed sync stops the node.
    fn synced(&mut self, r: Result<(u64, u64), String>) -> Result<(), ConsensusError> {
        let (ready, us) =
            r.map_err(|e| ConsensusError::Storage(format!("log sync failed: {e}")))?;
        self.driver.record_log_sync(us);
        let frame = (self.cfg.id, self.cfg.max_message_bytes);
        let transport = &*self.transport;
        let next_message_id = &mut self.next_message_id;
        self.driver.on_log_synced_with(ready, &mut |to, bytes| {
            send_frames(transport, frame, next_message_id, to, &bytes)
        })
    }

    /// The apply thread applied a work: answer its proposals (the ready cycle that follows
    /// hands out what came next). A failed apply stops the node.
    fn applied(&mut self, r: Applied) -> Result<(), ConsensusError> {
        let (work, results) =
            r.map_err(|e| ConsensusError::StateMachine(StateMachineError::new(e)))?;
        self.driver.on_applied(work, results)
    }

    /// Returns false on shutdown.
    fn handle(&mut self, cmd: Command) -> Result<bool, ConsensusError> {
        match cmd {
            Command::Step(peer, frame) => match self.reassembler.push(&frame) {
                Ok(Some((from, msg))) if peer.is_none_or(|p| p == from) => {
                    if let Some(msg) = self.driver.accept_from(peer, &msg) {
                        self.step_or_fetch(msg)?;
                    }
                }
                Ok(Some((from, _))) => tracing::warn!(
                    node = self.cfg.id,
                    ?peer,
                    claimed = from,
                    "dropping a frame a peer sent in another node's name"
                ),
                Ok(None) => {}
                Err(e) => tracing::debug!(node = self.cfg.id, "dropping inbound frame: {e}"),
            },
            Command::SnapshotAlive(peer) => self.driver.snapshot_alive(peer),
            Command::Fetched(index, ok) => {
                if let Some(msg) = self.fetching.remove(&index).filter(|_| ok) {
                    self.driver.step_message(msg)?;
                }
            }
            Command::Propose(payload, weight, tx) => {
                let pid = self.driver.propose_weighted(payload, weight);
                self.proposals.insert(pid, tx);
            }
            Command::Read(tx) => {
                let rid = self.driver.read_index();
                self.reads.insert(rid, tx);
            }
            Command::Membership(change, tx) => {
                let pid = self.driver.propose_membership_change(change);
                self.proposals.insert(pid, tx);
            }
            Command::TransferLeader(to) => self.driver.transfer_leader(to),
            Command::Campaign => self.driver.campaign()?,
            Command::Shutdown => return Ok(false),
        }
        self.route_completions();
        Ok(true)
    }

    /// Steps `msg`, unless it is a snapshot whose data the transport must fetch first.
    fn step_or_fetch(&mut self, msg: raft::eraftpb::Message) -> Result<(), ConsensusError> {
        if msg.get_msg_type() != raft::eraftpb::MessageType::MsgSnapshot {
            return self.driver.step_message(msg);
        }
        let index = msg.get_snapshot().get_metadata().index;
        if !self.fetching.is_empty() {
            // One fetch at a time: a resent copy, or a newer snapshot taken meanwhile, waits for
            // the leader to send it again once this one is installed.
            return Ok(());
        }
        let tx = self.peer_tx.clone();
        let done = Box::new(move |ok: bool| {
            // Blocks only while the peer lane is full; fails only when the node stopped.
            let _ = tx.send(Command::Fetched(index, ok));
        });
        if self
            .transport
            .fetch_snapshot(msg.from, index, &msg.get_snapshot().data, done)
        {
            self.fetching.insert(index, msg);
            return Ok(());
        }
        self.driver.step_message(msg)
    }

    fn route_completions(&mut self) {
        for (pid, outcome) in self.driver.take_completions() {
            if let Some(tx) = self.proposals.remove(&pid) {
                let _ = tx.send(outcome);
            }
        }
        for (rid, r) in self.driver.take_read_completions() {
            if let Some(tx) = self.reads.remove(&rid) {
                let _ = tx.send(r);
            }
        }
    }
}

impl NodeHandle {
    pub fn id(&self) -> u64 {
        self.id
    }

    fn stopped_reason(&self) -> Option<String> {
        self.shared.stopped.lock().clone()
    }

    /// Why the node stopped, if it did (fatal error message or "shut down").
    pub fn fatal_error(&self) -> Option<String> {
        self.stopped_reason()
    }

    fn submit(&self, cmd: Command) -> Result<(), (NodeError, Command)> {
        match self.tx.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(c)) => Err((NodeError::QueueFull, c)),
            Err(TrySendError::Disconnected(c)) => Err((
                NodeError::Stopped(self.stopped_reason().unwrap_or_else(|| "stopped".into())),
                c,
            )),
        }
    }

    /// A frame into the peer lane (full: dropped by the caller; Raft retransmits).
    fn submit_peer(&self, cmd: Command) -> Result<(), NodeError> {
        match self.peer_tx.try_send(cmd) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(NodeError::QueueFull),
            Err(TrySendError::Disconnected(_)) => Err(NodeError::Stopped(
                self.stopped_reason().unwrap_or_else(|| "stopped".into()),
            )),
        }
    }

    fn submit_proposal(&self, cmd: Command) {
        if let Err((e, cmd)) = self.submit(cmd) {
            let reason = match e {
                NodeError::QueueFull => RejectReason::Overloaded,
                NodeError::Stopped(_) => RejectReason::Stopped,
            };
            if let Command::Propose(_, _, tx) | Command::Membership(_, tx) = cmd {
                let _ = tx.send(ProposeOutcome::Rejected { reason });
            }
        }
    }

    /// Propose a command. Resolves once applied (or with why it was not / may not have been).
    pub fn propose(&self, payload: Vec<u8>) -> oneshot::Receiver<ProposeOutcome> {
        self.propose_weighted(payload, 1)
    }

    /// Propose a command of the given weight (see `Driver::propose_weighted`).
    pub fn propose_weighted(
        &self,
        payload: Vec<u8>,
        weight: u64,
    ) -> oneshot::Receiver<ProposeOutcome> {
        let (tx, rx) = oneshot::channel();
        self.submit_proposal(Command::Propose(payload, weight, tx));
        rx
    }

    /// Linearizable read barrier: resolves to a read index once this node has applied it;
    /// then read the state machine locally.
    pub fn read_index(&self) -> oneshot::Receiver<Result<u64, ReadError>> {
        let (tx, rx) = oneshot::channel();
        if let Err((e, Command::Read(tx))) = self.submit(Command::Read(tx)) {
            let _ = tx.send(Err(match e {
                NodeError::QueueFull => ReadError::Overloaded,
                NodeError::Stopped(_) => ReadError::Stopped,
            }));
        }
        rx
    }

    /// Peer `peer` is fetching the snapshot this node sent it: its snapshot timeout restarts.
    pub fn snapshot_alive(&self, peer: u64) {
        let _ = self.submit_peer(Command::SnapshotAlive(peer));
    }

    /// Hand one inbound transport frame to the node. Dropped (with `QueueFull`) under overload.
    pub fn step(&self, frame: Vec<u8>) -> Result<(), NodeError> {
        self.submit_peer(Command::Step(None, frame))
    }

    /// Feeds a frame that arrived on a stream authenticated as node `peer`: the frame and every
    /// Raft message in it must be from `peer`, and `peer` a member, or they are dropped.
    pub fn step_from(&self, peer: u64, frame: Vec<u8>) -> Result<(), NodeError> {
        self.submit_peer(Command::Step(Some(peer), frame))
    }

    pub fn add_node(&self, id: u64) -> oneshot::Receiver<ProposeOutcome> {
        self.membership(MembershipChange::AddVoter(id))
    }

    /// Adds node `id` as a learner; `address` (may be empty) travels in the conf change so that
    /// every member, not only this leader, can reach it.
    pub fn add_learner(&self, id: u64, address: String) -> oneshot::Receiver<ProposeOutcome> {
        self.membership(MembershipChange::AddLearner(id, address))
    }

    pub fn remove_node(&self, id: u64) -> oneshot::Receiver<ProposeOutcome> {
        self.membership(MembershipChange::Remove(id))
    }

    fn membership(&self, change: MembershipChange) -> oneshot::Receiver<ProposeOutcome> {
        let (tx, rx) = oneshot::channel();
        self.submit_proposal(Command::Membership(change, tx));
        rx
    }

    /// Ask the leader (this node must be it) to transfer leadership to `id`.
    pub fn transfer_leader(&self, id: u64) -> Result<(), NodeError> {
        self.submit(Command::TransferLeader(id)).map_err(|(e, _)| e)
    }

    /// Start an election on this node now.
    pub fn campaign(&self) -> Result<(), NodeError> {
        self.submit(Command::Campaign).map_err(|(e, _)| e)
    }

    /// Latest status published by the node thread (cheap; no round trip).
    pub fn status(&self) -> Result<NodeStatus, NodeError> {
        if let Some(r) = self.stopped_reason() {
            return Err(NodeError::Stopped(r));
        }
        Ok(self.shared.status.read().clone())
    }

    pub fn is_leader(&self) -> bool {
        self.status().is_ok_and(|s| s.role == Role::Leader)
    }

    /// Stop the node thread and wait for it (unless called from that thread). Idempotent.
    pub fn shutdown(&self) {
        self.shared
            .shutdown_requested
            .store(true, Ordering::Release);
        let _ = self.tx.try_send(Command::Shutdown);
        let handle = self.shared.thread.lock().take();
        if let Some(h) = handle {
            if h.thread().id() != std::thread::current().id() {
                let _ = h.join();
            }
        }
    }
}

#[cfg(test)]
mod tests;
