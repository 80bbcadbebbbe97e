//! The runtime on real threads and RocksDB: clusters over an in-process transport.

use super::*;
use crate::sim::SimStateMachine;
use crate::state_machine::{CommittedEntry, StateMachineError};
use crate::storage::RaftLogStore;
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
    crate::storage::open_log_db(path).unwrap()
}

fn test_config(id: u64, voters: Vec<u64>) -> Config {
    Config {
        tick_interval_ms: 10,
        // Generous: a spurious election under a loaded CI machine would fail the assertions on one leader.
        election_tick: 100,
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

/// The recording state machine behind a lock, so that an apply thread can share it.
#[derive(Clone, Default)]
struct SharedSm(Arc<Mutex<SimStateMachine>>);

impl StateMachine for SharedSm {
    fn apply(
        &mut self,
        entries: &[CommittedEntry<'_>],
    ) -> Result<Vec<Vec<Vec<u8>>>, StateMachineError> {
        self.0.lock().apply(entries)
    }
    fn applied_index(&self) -> u64 {
        self.0.lock().applied_index()
    }
    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        self.0.lock().snapshot()
    }
    fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), StateMachineError> {
        self.0.lock().restore(index, data)
    }
    fn applier(&self) -> Option<Box<dyn Applier>> {
        Some(Box::new(self.clone()))
    }
}

impl Applier for SharedSm {
    fn apply(
        &mut self,
        entries: &[CommittedEntry<'_>],
    ) -> Result<Vec<Vec<Vec<u8>>>, StateMachineError> {
        StateMachine::apply(self, entries)
    }
}

/// Starts voters 1..=n, one per database, on `net` (applying on an apply thread of their own
/// when `apply_pipelined`).
fn start_cluster(
    dbs: &[Arc<rocksdb::DB>],
    net: &Arc<LocalNet>,
    apply_pipelined: bool,
) -> Vec<NodeHandle> {
    let voters: Vec<u64> = (1..=dbs.len() as u64).collect();
    let mut handles = Vec::new();
    for (i, db) in dbs.iter().enumerate() {
        let id = i as u64 + 1;
        let h = start_node(db, id, voters.clone(), net, apply_pipelined);
        net.handles.write().insert(id, h.clone());
        handles.push(h);
    }
    handles
}

/// Starts node `id` on `db` with an empty state machine.
fn start_node(
    db: &Arc<rocksdb::DB>,
    id: u64,
    voters: Vec<u64>,
    net: &Arc<LocalNet>,
    apply_pipelined: bool,
) -> NodeHandle {
    let store = RaftLogStore::open(db.clone()).unwrap();
    let cfg = Config {
        apply_pipelined,
        ..test_config(id, voters)
    };
    let h = if apply_pipelined {
        NodeRuntime::start(cfg, store, SharedSm::default(), net.clone())
    } else {
        NodeRuntime::start(cfg, store, SimStateMachine::default(), net.clone())
    };
    h.unwrap()
}

#[test]
fn three_node_cluster_on_rocksdb_with_restart_and_snapshot() {
    three_node_cluster_run(false);
}

/// The same with each node applying on an apply thread of its own.
#[test]
fn three_node_cluster_on_rocksdb_with_restart_and_snapshot_and_an_apply_thread() {
    three_node_cluster_run(true);
}

fn three_node_cluster_run(apply_pipelined: bool) {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let dbs: Vec<Arc<rocksdb::DB>> = dirs.iter().map(|d| open_db(d.path())).collect();
    let net = Arc::new(LocalNet::default());
    let voters = vec![1, 2, 3];
    let handles = start_cluster(&dbs, &net, apply_pipelined);
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
    let restarted = start_node(
        &dbs[(victim - 1) as usize],
        victim,
        voters.clone(),
        &net,
        apply_pipelined,
    );
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

/// A state machine whose first apply waits until released: the node's thread is busy, its
/// queues fill up.
struct GatedSm {
    gate: crossbeam_channel::Receiver<()>,
    /// Told each time an apply starts (and is about to wait at the gate).
    entered: crossbeam_channel::Sender<()>,
    inner: SimStateMachine,
}

impl StateMachine for GatedSm {
    fn apply(
        &mut self,
        entries: &[CommittedEntry<'_>],
    ) -> Result<Vec<Vec<Vec<u8>>>, StateMachineError> {
        let _ = self.entered.send(());
        let _ = self.gate.recv();
        self.inner.apply(entries)
    }
    fn applied_index(&self) -> u64 {
        self.inner.applied_index()
    }
    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        self.inner.snapshot()
    }
    fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), StateMachineError> {
        self.inner.restore(index, data)
    }
}

/// Client load cannot crowd out consensus: with the command queue full (proposals refused as
/// overloaded), frames from peers still get in through their own lane.
#[test]
fn peer_frames_have_a_lane_client_load_cannot_fill() {
    let dir = tempfile::tempdir().unwrap();
    let store = RaftLogStore::open(open_db(dir.path())).unwrap();
    let (release, gate) = crossbeam_channel::unbounded();
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let sm = GatedSm {
        gate,
        entered: entered_tx,
        inner: SimStateMachine::default(),
    };
    let cfg = Config {
        inbound_queue_len: 8,
        ..test_config(1, vec![1])
    };
    let h = NodeRuntime::start(cfg, store, sm, Arc::new(LocalNet::default())).unwrap();
    // The single voter elects itself and blocks applying its first entry (waited for, not
    // slept on: a fixed 300 ms was sometimes too short for the election on a loaded machine).
    entered
        .recv_timeout(Duration::from_secs(30))
        .expect("the node never started to apply");
    let mut refused = false;
    let mut pending = Vec::new();
    for i in 0..64 {
        let mut rx = h.propose(format!("p{i}").into_bytes());
        if let Ok(ProposeOutcome::Rejected {
            reason: RejectReason::Overloaded,
        }) = rx.try_recv()
        {
            refused = true;
            break;
        }
        pending.push(rx);
    }
    assert!(refused, "the command queue never filled");
    assert!(h.step(vec![0u8; 4]).is_ok(), "a peer frame was refused");
    for _ in 0..100 {
        let _ = release.send(());
    }
    drop(release);
    h.shutdown();
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
    // The driver loop exits just after it records the fatal error: peer messages are refused
    // from then on.
    assert!(wait_for(Duration::from_secs(5), || h
        .step(vec![1, 2, 3])
        .is_err()));
    h.shutdown();
}

/// A proposal the leader put in its log but could not commit (its followers are cut off) may
/// still be committed by the next leader: when the node stops, its caller must hear "outcome
/// unknown", never "stopped" (which clients read as "not applied" and resubmit under new ids).
#[test]
fn stopping_answers_in_log_proposals_with_outcome_unknown() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let dbs: Vec<Arc<rocksdb::DB>> = dirs.iter().map(|d| open_db(d.path())).collect();
    let net = Arc::new(LocalNet::default());
    let handles = start_cluster(&dbs, &net, true);
    assert!(wait_for(Duration::from_secs(5), || leader_of(&handles).is_some()));
    let leader = leader_of(&handles).unwrap();
    // Cut the followers off, then propose: the entry is in the leader's log, uncommitted.
    for h in &handles {
        if h.id() != leader.id() {
            net.down.write().insert(h.id());
        }
    }
    let rx = leader.propose(b"pay 100".to_vec());
    // The next ready cycle (every 10 ms tick at the latest) hands it to Raft, which appends it.
    std::thread::sleep(Duration::from_millis(300));
    assert!(leader.is_leader());
    leader.shutdown();
    assert_eq!(rx.blocking_recv().unwrap(), ProposeOutcome::Unknown);
    // Proposed after the stop: never entered the log, plainly rejected.
    assert!(matches!(
        leader.propose(b"x".to_vec()).blocking_recv().unwrap(),
        ProposeOutcome::Rejected {
            reason: RejectReason::Stopped
        }
    ));
    for h in &handles {
        h.shutdown();
    }
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
    // The new leader's no-op is applied once its log sync is done (pipelined persistence).
    assert!(wait_for(Duration::from_secs(5), || h.status().is_ok_and(
        |s| s.role == Role::Leader && s.applied_index > before.applied_index
    )));
    let after = h.status().unwrap();
    assert!(after.term > before.term);
    assert!(after.applied_index > before.applied_index); // + new leader no-op
    assert!(matches!(
        h.propose(b"more".to_vec()).blocking_recv().unwrap(),
        ProposeOutcome::Applied { .. }
    ));
    h.shutdown();
}
