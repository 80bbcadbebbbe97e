//! Thin std-thread runtime around [`Driver`]: one thread per node runs the tick timer and the
//! ready loop; everything else talks to it through a bounded queue via [`NodeHandle`].

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender, TrySendError};
use parking_lot::{Mutex, RwLock};
use rand::{Rng, SeedableRng};
use tokio::sync::oneshot;

use crate::chunk::{chunk_message, Reassembler};
use crate::config::Config;
use crate::driver::{
    Driver, MembershipChange, NodeStatus, ProposeOutcome, ReadError, RejectReason, Role,
};
use crate::error::ConsensusError;
use crate::logging::tracing_logger;
use crate::state_machine::StateMachine;
use crate::storage::LogStore;

/// Outgoing frames, fire-and-forget. Implementations must not block (drop when a peer's queue
/// is full: raft retransmits). Frames are at most `Config::max_message_bytes`; the receiving
/// side passes each frame unchanged to [`NodeHandle::step`].
pub trait Transport: Send + Sync {
    fn send(&self, to: u64, msg: Vec<u8>);
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error("inbound queue full")]
    QueueFull,
    #[error("node stopped: {0}")]
    Stopped(String),
}

enum Command {
    Step(Vec<u8>),
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
    shared: Arc<Shared>,
}

pub struct NodeRuntime;

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
        // Random start so proposal ids never repeat across restarts of this node.
        let driver = Driver::new(
            config.clone(),
            log_store,
            state_machine,
            rand::random::<u64>() >> 1,
            &logger,
        )?;
        let (tx, rx) = bounded(config.inbound_queue_len);
        let shared = Arc::new(Shared {
            status: RwLock::new(driver.status()),
            stopped: Mutex::new(None),
            shutdown_requested: AtomicBool::new(false),
            thread: Mutex::new(None),
        });
        let thread_shared = shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("raft-{}", config.id))
            .spawn(move || run(driver, config, rx, transport, thread_shared))
            .map_err(|e| ConsensusError::Stopped(format!("cannot spawn raft thread: {e}")))?;
        *shared.thread.lock() = Some(handle);
        Ok(NodeHandle { id, tx, shared })
    }
}

struct Loop<S: LogStore, M: StateMachine> {
    driver: Driver<S, M>,
    cfg: Config,
    transport: Arc<dyn Transport>,
    shared: Arc<Shared>,
    reassembler: Reassembler,
    rng: rand::rngs::StdRng,
    next_message_id: u64,
    proposals: HashMap<u64, oneshot::Sender<ProposeOutcome>>,
    reads: HashMap<u64, oneshot::Sender<Result<u64, ReadError>>>,
}

fn run<S: LogStore, M: StateMachine>(
    driver: Driver<S, M>,
    cfg: Config,
    rx: Receiver<Command>,
    transport: Arc<dyn Transport>,
    shared: Arc<Shared>,
) {
    let mut lp = Loop {
        driver,
        reassembler: Reassembler::new(cfg.max_inbound_message_bytes),
        cfg,
        transport,
        shared: shared.clone(),
        rng: rand::rngs::StdRng::from_entropy(),
        next_message_id: 0,
        proposals: HashMap::new(),
        reads: HashMap::new(),
    };
    let result = catch_unwind(AssertUnwindSafe(|| lp.run(&rx)));
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
    // Nobody waits forever: answer everything still pending or queued.
    let stopped = ProposeOutcome::Rejected {
        reason: RejectReason::Stopped,
    };
    for (_, tx) in lp.proposals.drain() {
        let _ = tx.send(stopped.clone());
    }
    for (_, tx) in lp.reads.drain() {
        let _ = tx.send(Err(ReadError::Stopped));
    }
    drop(lp);
    while let Ok(cmd) = rx.try_recv() {
        reject(cmd);
    }
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
    fn run(&mut self, rx: &Receiver<Command>) -> Result<(), ConsensusError> {
        let tick = Duration::from_millis(self.cfg.tick_interval_ms);
        let mut next_tick = Instant::now() + tick;
        loop {
            if self.shared.shutdown_requested.load(Ordering::Acquire) {
                return Ok(());
            }
            let timeout = next_tick.saturating_duration_since(Instant::now());
            let mut cmd = match rx.recv_timeout(timeout) {
                Ok(c) => Some(c),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            };
            // Drain a bounded batch: everything proposed meanwhile is group-committed below.
            let mut handled = 0;
            while let Some(c) = cmd.take() {
                if !self.handle(c)? {
                    return Ok(());
                }
                handled += 1;
                if handled < MAX_COMMANDS_PER_CYCLE {
                    cmd = rx.try_recv().ok();
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
            let (id, max_frame) = (self.cfg.id, self.cfg.max_message_bytes);
            let transport = &self.transport;
            let next_message_id = &mut self.next_message_id;
            self.driver
                .process_ready_with(wall_clock_ns(), self.rng.gen(), &mut |to, bytes| {
                    *next_message_id = next_message_id.wrapping_add(1);
                    for frame in chunk_message(id, *next_message_id, &bytes, max_frame) {
                        transport.send(to, frame);
                    }
                })?;
            self.route_completions();
            *self.shared.status.write() = self.driver.status();
        }
    }

    /// Returns false on shutdown.
    fn handle(&mut self, cmd: Command) -> Result<bool, ConsensusError> {
        match cmd {
            Command::Step(frame) => match self.reassembler.push(&frame) {
                Ok(Some((_from, msg))) => self.driver.step(&msg)?,
                Ok(None) => {}
                Err(e) => tracing::debug!(node = self.cfg.id, "dropping inbound frame: {e}"),
            },
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

    /// Hand one inbound transport frame to the node. Dropped (with `QueueFull`) under overload.
    pub fn step(&self, frame: Vec<u8>) -> Result<(), NodeError> {
        self.submit(Command::Step(frame)).map_err(|(e, _)| e)
    }

    pub fn add_node(&self, id: u64) -> oneshot::Receiver<ProposeOutcome> {
        self.membership(MembershipChange::AddVoter(id))
    }

    pub fn add_learner(&self, id: u64) -> oneshot::Receiver<ProposeOutcome> {
        self.membership(MembershipChange::AddLearner(id))
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
mod tests {
    use super::*;
    use crate::sim::SimStateMachine;
    use crate::state_machine::{CommittedEntry, StateMachineError};
    use crate::storage::{RaftLogStore, RAFT_COLUMN_FAMILIES};
    use std::collections::HashSet;

    /// In-process transport: frames go straight into the peer's bounded queue.
    #[derive(Default)]
    struct LocalNet {
        handles: RwLock<HashMap<u64, NodeHandle>>,
        frames: std::sync::atomic::AtomicU64,
        max_frame: std::sync::atomic::AtomicUsize,
        down: RwLock<HashSet<u64>>,
    }

    impl Transport for LocalNet {
        fn send(&self, to: u64, msg: Vec<u8>) {
            self.frames.fetch_add(1, Ordering::Relaxed);
            self.max_frame.fetch_max(msg.len(), Ordering::Relaxed);
            if self.down.read().contains(&to) {
                return;
            }
            if let Some(h) = self.handles.read().get(&to) {
                let _ = h.step(msg);
            }
        }
    }

    fn open_db(path: &std::path::Path) -> Arc<rocksdb::DB> {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        Arc::new(rocksdb::DB::open_cf(&opts, path, RAFT_COLUMN_FAMILIES).unwrap())
    }

    fn test_config(id: u64, voters: Vec<u64>) -> Config {
        Config {
            tick_interval_ms: 10,
            election_tick: 30,
            heartbeat_tick: 3,
            snapshot_threshold_entries: 30,
            log_retain_entries: 5,
            max_message_bytes: 512, // force chunking of appends and snapshots
            ..Config::new(id, voters)
        }
    }

    fn wait_for(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        f()
    }

    fn leader_of(handles: &[NodeHandle]) -> Option<NodeHandle> {
        handles.iter().find(|h| h.is_leader()).cloned()
    }

    #[test]
    fn three_node_cluster_on_rocksdb_with_restart_and_snapshot() {
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let dbs: Vec<Arc<rocksdb::DB>> = dirs.iter().map(|d| open_db(d.path())).collect();
        let net = Arc::new(LocalNet::default());
        let voters = vec![1, 2, 3];
        let mut handles = Vec::new();
        for (i, db) in dbs.iter().enumerate() {
            let id = i as u64 + 1;
            let store = RaftLogStore::open(db.clone()).unwrap();
            let h = NodeRuntime::start(
                test_config(id, voters.clone()),
                store,
                SimStateMachine::default(),
                net.clone(),
            )
            .unwrap();
            net.handles.write().insert(id, h.clone());
            handles.push(h);
        }
        assert!(
            wait_for(Duration::from_secs(5), || leader_of(&handles).is_some()),
            "no leader"
        );
        let leader = leader_of(&handles).unwrap();
        let mut last = 0;
        let rxs: Vec<_> = (0..60)
            .map(|i| leader.propose(format!("cmd-{i}").into_bytes()))
            .collect();
        for rx in rxs {
            match rx.blocking_recv().unwrap() {
                ProposeOutcome::Applied { index, result } => {
                    assert_eq!(result.len(), 8);
                    last = last.max(index);
                }
                o => panic!("unexpected {o:?}"),
            }
        }
        // Group commit: 60 concurrent proposals need far fewer than 60 entries.
        assert!(last < 60, "no batching: last index {last}");
        let follower = handles
            .iter()
            .find(|h| h.id() != leader.id())
            .unwrap()
            .clone();
        let read = follower.read_index().blocking_recv().unwrap().unwrap();
        assert!(read >= last);
        assert!(follower.status().unwrap().applied_index >= read);
        // Non-leader proposals are redirected.
        match follower.propose(b"x".to_vec()).blocking_recv().unwrap() {
            ProposeOutcome::NotLeader { leader_id } => assert_eq!(leader_id, Some(leader.id())),
            o => panic!("unexpected {o:?}"),
        }

        // Take a follower down, write enough to trigger snapshot + compaction, restart it.
        let victim = follower.id();
        net.down.write().insert(victim);
        follower.shutdown();
        assert!(matches!(follower.status(), Err(NodeError::Stopped(_))));
        assert!(matches!(
            follower.propose(b"y".to_vec()).blocking_recv().unwrap(),
            ProposeOutcome::Rejected {
                reason: RejectReason::Stopped
            }
        ));
        for i in 0..80 {
            let rx = leader.propose(vec![i as u8; 100]);
            assert!(matches!(
                rx.blocking_recv().unwrap(),
                ProposeOutcome::Applied { .. }
            ));
        }
        let store = RaftLogStore::open(dbs[(victim - 1) as usize].clone()).unwrap();
        let restarted = NodeRuntime::start(
            test_config(victim, voters.clone()),
            store,
            SimStateMachine::default(),
            net.clone(),
        )
        .unwrap();
        net.handles.write().insert(victim, restarted.clone());
        net.down.write().remove(&victim);
        let target = leader.status().unwrap().commit_index;
        assert!(
            wait_for(Duration::from_secs(10), || restarted
                .status()
                .is_ok_and(|s| s.applied_index >= target)),
            "restarted follower did not catch up: {:?}",
            restarted.status()
        );
        assert!(
            net.max_frame.load(Ordering::Relaxed) <= 512,
            "frame exceeded max_message_bytes"
        );

        // Membership: remove the restarted node, then add it back as a learner.
        assert!(matches!(
            leader.remove_node(victim).blocking_recv().unwrap(),
            ProposeOutcome::Applied { .. }
        ));
        assert!(wait_for(Duration::from_secs(5), || leader
            .status()
            .unwrap()
            .voters
            .len()
            == 2));
        for h in [&leader, &restarted] {
            h.shutdown();
        }
        for h in &handles {
            h.shutdown();
        }
    }

    struct FailingSm;

    impl StateMachine for FailingSm {
        fn apply(
            &mut self,
            _entries: &[CommittedEntry<'_>],
        ) -> Result<Vec<Vec<Vec<u8>>>, StateMachineError> {
            Err(StateMachineError::new("disk on fire"))
        }
        fn applied_index(&self) -> u64 {
            0
        }
        fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
            Ok(Vec::new())
        }
        fn restore(&mut self, _index: u64, _data: &[u8]) -> Result<(), StateMachineError> {
            Ok(())
        }
    }

    #[test]
    fn fatal_state_machine_error_stops_node_without_panicking_callers() {
        let dir = tempfile::tempdir().unwrap();
        let store = RaftLogStore::open(open_db(dir.path())).unwrap();
        let net = Arc::new(LocalNet::default());
        let h = NodeRuntime::start(test_config(1, vec![1]), store, FailingSm, net).unwrap();
        // Single voter: elects itself, applies its no-op, the state machine fails.
        assert!(wait_for(Duration::from_secs(5), || h.status().is_err()));
        let err = h.fatal_error().unwrap();
        assert!(err.contains("disk on fire"), "{err}");
        assert!(matches!(
            h.propose(b"x".to_vec()).blocking_recv().unwrap(),
            ProposeOutcome::Rejected {
                reason: RejectReason::Stopped
            }
        ));
        assert_eq!(
            h.read_index().blocking_recv().unwrap(),
            Err(ReadError::Stopped)
        );
        assert!(h.step(vec![1, 2, 3]).is_err());
        h.shutdown();
    }

    #[test]
    fn single_node_restart_resumes_from_durable_state() {
        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path());
        let net = Arc::new(LocalNet::default());
        let h = NodeRuntime::start(
            test_config(1, vec![1]),
            RaftLogStore::open(db.clone()).unwrap(),
            SimStateMachine::default(),
            net.clone(),
        )
        .unwrap();
        assert!(wait_for(Duration::from_secs(5), || h.is_leader()));
        let mut last = 0;
        for i in 0..50u8 {
            match h.propose(vec![i]).blocking_recv().unwrap() {
                ProposeOutcome::Applied { index, .. } => last = index,
                o => panic!("{o:?}"),
            }
        }
        // Linearizable: the read index covers every acknowledged write.
        assert_eq!(h.read_index().blocking_recv().unwrap(), Ok(last));
        assert!(wait_for(Duration::from_secs(1), || h
            .status()
            .unwrap()
            .applied_index
            == last));
        let before = h.status().unwrap();
        h.shutdown();
        // New (empty, in-memory) state machine: restored from the stored snapshot + log replay.
        let h = NodeRuntime::start(
            test_config(1, vec![1]),
            RaftLogStore::open(db).unwrap(),
            SimStateMachine::default(),
            net,
        )
        .unwrap();
        assert!(wait_for(Duration::from_secs(5), || h.is_leader()));
        let after = h.status().unwrap();
        assert!(after.term > before.term);
        assert!(after.applied_index > before.applied_index); // + new leader no-op
        assert!(matches!(
            h.propose(b"more".to_vec()).blocking_recv().unwrap(),
            ProposeOutcome::Applied { .. }
        ));
        h.shutdown();
    }
}
