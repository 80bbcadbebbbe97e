//! Sans-I/O replica core: `RawNode` + state machine + waiters, driven by explicit inputs.
//!
//! Nothing here reads a clock, sleeps, spawns, or does network I/O: time (`tick`, `now_ns`)
//! and randomness (`seed`) are inputs, messages are outputs. The only I/O is the log store and
//! the state machine, both behind traits. This is what makes [`crate::sim`] deterministic.

use std::collections::{BTreeMap, VecDeque};

use prost011::Message as ProstMessage;
use raft::eraftpb::{
    ConfChange, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, Message, MessageType,
    Snapshot, SnapshotMetadata,
};
use raft::{ProgressState, RawNode, SnapshotStatus, StateRole};

use crate::codec::{
    self, decode_cc_context, decode_entry_data, encode_cc_context, encode_entry_data,
};
use crate::config::Config;
use crate::error::ConsensusError;
use crate::state_machine::{CommittedEntry, Proposal, StateMachine};
use crate::storage::LogStore;

/// Final answer for one proposal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProposeOutcome {
    /// Committed and applied at `index`; `result` is what `StateMachine::apply` returned for it.
    Applied { index: u64, result: Vec<u8> },
    /// This node is not the leader; retry at `leader_id` if known. Nothing was proposed.
    NotLeader { leader_id: Option<u64> },
    /// Leadership/term changed or raft dropped the proposal after it may have entered the log:
    /// it may or may not be applied later. Retry with the same idempotency key.
    Unknown,
    /// Refused before entering the log (safe to retry unchanged where it makes sense).
    Rejected { reason: RejectReason },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    /// Payload exceeds `max_entry_bytes`.
    TooLarge,
    /// A bounded queue is full (back-pressure).
    Overloaded,
    /// Another membership change is still being applied.
    ConfChangeInProgress,
    /// The node stopped (fatal error or shutdown).
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    #[error("no known leader to confirm the read (leader hint: {leader_id:?})")]
    NotLeader { leader_id: Option<u64> },
    #[error("leadership changed before the read was confirmed")]
    LeaderChanged,
    #[error("read was not confirmed in time")]
    Timeout,
    #[error("too many pending reads")]
    Overloaded,
    #[error("node stopped")]
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    AddVoter(u64),
    /// A new node (as a learner) and its address (empty: the members learn it from its traffic).
    AddLearner(u64, String),
    Remove(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Follower,
    PreCandidate,
    Candidate,
    Leader,
}

impl From<StateRole> for Role {
    fn from(r: StateRole) -> Self {
        match r {
            StateRole::Follower => Role::Follower,
            StateRole::PreCandidate => Role::PreCandidate,
            StateRole::Candidate => Role::Candidate,
            StateRole::Leader => Role::Leader,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub id: u64,
    pub role: Role,
    pub term: u64,
    pub leader_id: Option<u64>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// Entries this node stamped earlier than its wall clock said, because the clock ran ahead
    /// of the last log time plus the node's own elapsed time by more than `max_clock_step_ms`.
    pub clock_clamps: u64,
    /// By how much the wall clock ran ahead at the last stamp (0: not clamped).
    pub clock_ahead_ns: u64,
    /// On the leader: every member's highest index known to be in its log, `(id, matched)`.
    /// Empty on other nodes.
    pub progress: Vec<(u64, u64)>,
    /// The log this node holds: `first_index ..= last_index` (empty when first > last).
    pub first_index: u64,
    pub last_index: u64,
    /// Snapshots taken (and the log compacted behind) and installed since start, with the time
    /// they took in total (metrics only: nothing in the Ready loop depends on it).
    pub snapshots: SnapshotStats,
    /// Background fsyncs of the log since start (pipelined persistence; metrics only).
    pub log_syncs: LogSyncStats,
}

/// Background log syncs since the node started: how many, and their fsync time in total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogSyncStats {
    pub syncs: u64,
    pub sync_us_total: u64,
}

/// Snapshot counts and durations since the node started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SnapshotStats {
    pub taken: u64,
    pub taken_ms_total: u64,
    pub installed: u64,
    pub installed_ms_total: u64,
}

/// A proposal that is in the raft log at `index` (proposed in `term`), awaiting apply.
#[derive(Debug, Clone, Copy)]
struct Waiter {
    index: u64,
    term: u64,
}

#[derive(Debug, Clone, Copy)]
struct PendingRead {
    /// Set once a quorum confirmed the leader's commit index (ReadState).
    index: Option<u64>,
    deadline_tick: u64,
}

/// A well-mixed 64-bit value derived from `seed`, deterministically (rand's seeded generator: this
/// crate keeps no PRNG of its own; the project's one is `ledger::rng`).
fn mix_seed(seed: u64) -> u64 {
    use rand::{RngCore, SeedableRng};
    rand::rngs::StdRng::seed_from_u64(seed).next_u64()
}

fn read_ctx(node_id: u64, read_id: u64) -> Vec<u8> {
    // Node id is part of the context because the leader keys pending reads by context.
    let mut v = Vec::with_capacity(16);
    v.extend_from_slice(&node_id.to_be_bytes());
    v.extend_from_slice(&read_id.to_be_bytes());
    v
}

/// `index` of the append rejection a follower sends when it finds it lost log entries
/// (no real log index can be this large).
const LOST_LOG_MARKER: u64 = u64::MAX;

/// Message sink used by `process_ready_with`: `(to, encoded raft message)`.
pub type SendFn<'a> = dyn FnMut(u64, Vec<u8>) + 'a;

/// The sans-I/O replica.
pub struct Driver<S: LogStore, M: StateMachine> {
    raw: RawNode<S>,
    sm: M,
    cfg: Config,
    next_proposal_id: u64,
    next_read_id: u64,
    /// Proposals accepted since the last ready cycle, packed into entries at the next one.
    /// Proposals for the next ready cycle: (proposal id, payload, weight).
    queued: VecDeque<(u64, Vec<u8>, u64)>,
    waiters: BTreeMap<u64, Waiter>,
    waiters_by_index: BTreeMap<u64, Vec<u64>>,
    reads: BTreeMap<u64, PendingRead>,
    completions: Vec<(u64, ProposeOutcome)>,
    /// Addresses of added members, learned from applied conf changes (the runtime hands them to
    /// the transport).
    member_addresses: Vec<(u64, String)>,
    read_completions: Vec<(u64, Result<u64, ReadError>)>,
    outbox: Vec<(u64, Vec<u8>)>,
    ticks: u64,
    /// The latest log time this node stamped or applied, and its tick count then.
    clock_anchor: (u64, u64),
    clock_clamps: u64,
    clock_ahead_ns: u64,
    snapshot_stats: SnapshotStats,
    /// (role, term, leader) as of the last check; changes fail waiters/reads.
    observed: (StateRole, u64, u64),
    last_snapshot_index: u64,
    /// The data of the last snapshot is gone (see `Driver::new`): take one at the next chance.
    snapshot_lost: bool,
    /// Peers we sent a snapshot to, with the tick it was sent.
    snapshots_in_flight: BTreeMap<u64, u64>,
    /// Peers sent a snapshot, with its index: the log after it, then after what they have, is
    /// kept until they have caught up (see `maybe_snapshot`).
    snapshot_holds: BTreeMap<u64, u64>,
    /// Learners of the configuration (joining nodes), with the index after which every member
    /// keeps the log for them until they are promoted; `None` once let go at the byte bound (see
    /// `maybe_snapshot`).
    learner_holds: BTreeMap<u64, Option<u64>>,
    fatal: Option<String>,
    /// Log persistence state (see [`Config::log_sync_pipelined`]).
    sync: LogSync,
    /// Where applying stands (see [`Config::apply_pipelined`]).
    apply: ApplyState,
}

/// Committed entries handed out to be applied off the Raft thread ([`Config::apply_pipelined`]),
/// in log order: the runtime's apply thread (or the simulator) applies them to the state machine
/// and reports the results back ([`Driver::on_applied`]). Never a membership change: those are
/// applied by the driver itself once everything before them is.
#[derive(Debug)]
pub struct ApplyWork {
    entries: Vec<Entry>,
}

impl ApplyWork {
    pub fn first_index(&self) -> u64 {
        self.entries.first().map_or(0, |e| e.index)
    }

    pub fn last_index(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.index)
    }

    /// The entries as the state machine sees them.
    pub fn committed(&self) -> Result<Vec<CommittedEntry<'_>>, ConsensusError> {
        self.entries.iter().map(committed_entry).collect()
    }
}

/// A normal entry (a leader's no-op or group-committed proposals) as the state machine sees it.
fn committed_entry(e: &Entry) -> Result<CommittedEntry<'_>, ConsensusError> {
    if e.data.is_empty() {
        // Leader no-op: still advances the state machine's applied index.
        return Ok(CommittedEntry {
            index: e.index,
            term: e.term,
            timestamp_ns: 0,
            seed: 0,
            proposals: Vec::new(),
        });
    }
    let d = decode_entry_data(&e.data).map_err(|err| ConsensusError::Codec {
        index: e.index,
        reason: err.to_string(),
    })?;
    Ok(CommittedEntry {
        index: e.index,
        term: e.term,
        timestamp_ns: d.timestamp_ns,
        seed: d.seed,
        proposals: d.proposals,
    })
}

fn is_conf_change(e: &Entry) -> bool {
    matches!(
        e.get_entry_type(),
        EntryType::EntryConfChange | EntryType::EntryConfChangeV2
    )
}

/// Where applying stands. With pipelined apply, committed entries wait in `pending` until they
/// are handed out; `handed` and `done` are the last index handed out and the last one whose
/// results came back (raft-rs's applied index follows `done`). The state machine is not
/// touched from the driver while `done < handed`: it is being applied elsewhere.
#[derive(Default)]
struct ApplyState {
    pipelined: bool,
    pending: VecDeque<Entry>,
    handed: u64,
    done: u64,
    /// A snapshot is due: hand out nothing until it is taken (it needs the state machine idle).
    hold: bool,
    /// A peer asked for a fresh snapshot while applies were out (kept until it is taken).
    snapshot_requested: bool,
}

impl ApplyState {
    fn in_flight(&self) -> bool {
        self.done < self.handed
    }

    /// Committed entries not applied yet: waiting to be handed out, or out.
    fn backlog(&self) -> u64 {
        self.pending.len() as u64 + (self.handed - self.done)
    }
}

/// Where pipelined log persistence stands. Readies are numbered by raft-rs in order; a sync
/// makes every write issued before it durable, so "durable through ready n" covers every
/// earlier ready too.
#[derive(Default)]
struct LogSync {
    pipelined: bool,
    /// The newest ready handed to raft-rs (`advance_append_async`).
    last: u64,
    /// Every write of readies up to here is durable (raft-rs was told: `on_persist_ready`).
    durable: u64,
    /// The newest ready whose writes owe a sync (entries, a term or a vote).
    owed: u64,
    /// A sync through this ready, for the runtime to start ([`Driver::take_log_sync`]).
    wanted: Option<u64>,
    /// Messages that may leave only once their ready is durable (append acks, votes), by ready.
    held: VecDeque<(u64, Vec<Message>)>,
    stats: LogSyncStats,
}

impl<S: LogStore, M: StateMachine> Driver<S, M> {
    /// Create a replica. `proposal_id_start` must make proposal ids unique across restarts of
    /// this node (the runtime uses a random start): committed entries from a previous
    /// incarnation are re-applied on restart and must not resolve new waiters.
    pub fn new(
        cfg: Config,
        mut store: S,
        mut sm: M,
        proposal_id_start: u64,
        logger: &slog::Logger,
    ) -> Result<Self, ConsensusError> {
        cfg.validate()?;
        if let Some(e) = store.read_error() {
            return Err(ConsensusError::Storage(e));
        }
        let fresh = store.hard_state() == Default::default()
            && store.conf_state() == ConfState::default()
            && store.last_index()? == 0
            && store.snapshot_metadata().is_none();
        if fresh && !cfg.initial_voters.is_empty() {
            // The initial configuration is "log index 0"; every node uses the same one.
            let mut voters = cfg.initial_voters.clone();
            voters.sort_unstable();
            voters.dedup();
            store.set_conf_state(&ConfState {
                voters,
                ..Default::default()
            })?;
        }
        // Crash recovery: a received snapshot is persisted before the state machine restores it.
        if let Some(meta) = store.snapshot_metadata() {
            if sm.applied_index() < meta.index {
                let snap = store.load_snapshot()?.ok_or_else(|| {
                    ConsensusError::Storage("snapshot metadata without data".into())
                })?;
                sm.restore(meta.index, &snap.data)?;
                if sm.applied_index() != meta.index {
                    return Err(ConsensusError::Invariant(format!(
                        "state machine applied {} after restoring snapshot {}",
                        sm.applied_index(),
                        meta.index
                    )));
                }
            }
        }
        let applied = sm.applied_index();
        let (truncated, _) = store.truncated();
        let commit = store.hard_state().commit;
        if applied < truncated {
            return Err(ConsensusError::Invariant(format!(
                "state machine applied index {applied} is behind the compacted log ({truncated})"
            )));
        }
        if applied > commit {
            // The commit index is written without fsync (`storage::commit_only`); the state
            // machine's applied index is a durable lower bound of it — unless the log itself
            // lost entries the state machine applied, which no restart can repair.
            let last = store.last_index()?;
            if applied > last {
                return Err(ConsensusError::Invariant(format!(
                    "state machine applied {applied} > last log index {last} (durable commit {commit})"
                )));
            }
            store.set_commit(applied)?;
        }
        let last_snapshot_index = store.snapshot_metadata().map_or(0, |m| m.index);
        // The state machine may have lost the data behind its last snapshot (written in the
        // background when the node crashed): take a new one before a peer needs it.
        let snapshot_lost = match store.snapshot_metadata() {
            Some(_) => store
                .load_snapshot()?
                .is_some_and(|s| !sm.snapshot_available(&s.data)),
            None => false,
        };
        let raw = RawNode::new(&cfg.raft_config(applied), store, logger)?;
        let cfg_pipelined = cfg.log_sync_pipelined;
        let cfg_apply_pipelined = cfg.apply_pipelined;
        let observed = (raw.raft.state, raw.raft.term, raw.raft.leader_id);
        Ok(Driver {
            raw,
            sm,
            cfg,
            next_proposal_id: proposal_id_start,
            next_read_id: mix_seed(proposal_id_start),
            queued: VecDeque::new(),
            waiters: BTreeMap::new(),
            waiters_by_index: BTreeMap::new(),
            reads: BTreeMap::new(),
            completions: Vec::new(),
            member_addresses: Vec::new(),
            read_completions: Vec::new(),
            outbox: Vec::new(),
            ticks: 0,
            clock_anchor: (0, 0),
            clock_clamps: 0,
            clock_ahead_ns: 0,
            snapshot_stats: SnapshotStats::default(),
            observed,
            last_snapshot_index,
            snapshot_lost,
            snapshots_in_flight: BTreeMap::new(),
            snapshot_holds: BTreeMap::new(),
            learner_holds: BTreeMap::new(),
            fatal: None,
            sync: LogSync {
                pipelined: cfg_pipelined,
                ..LogSync::default()
            },
            apply: ApplyState {
                pipelined: cfg_apply_pipelined,
                handed: applied,
                done: applied,
                ..ApplyState::default()
            },
        })
    }

    pub fn id(&self) -> u64 {
        self.cfg.id
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    pub fn state_machine(&self) -> &M {
        &self.sm
    }

    /// For the simulator (writeback of a machine's unsynced writes).
    pub fn state_machine_mut(&mut self) -> &mut M {
        &mut self.sm
    }

    /// For the simulator (writeback of the log store's unsynced writes).
    pub fn store_mut(&mut self) -> &mut S {
        self.raw.mut_store()
    }

    /// For the simulator (deterministic election timeouts).
    pub fn raw_node_mut(&mut self) -> &mut RawNode<S> {
        &mut self.raw
    }

    pub fn raw_node(&self) -> &RawNode<S> {
        &self.raw
    }

    pub fn store(&self) -> &S {
        self.raw.store()
    }

    pub fn is_leader(&self) -> bool {
        self.raw.raft.state == StateRole::Leader
    }

    pub fn leader_id(&self) -> Option<u64> {
        let l = self.raw.raft.leader_id;
        (l != 0).then_some(l)
    }

    pub fn fatal_error(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// Number of proposals still waiting for an outcome (queued or in the log).
    pub fn pending_proposals(&self) -> usize {
        self.queued.len() + self.waiters.len()
    }

    pub fn status(&self) -> NodeStatus {
        let cs = self.raw.raft.prs().conf().to_conf_state();
        let mut voters = cs.voters;
        voters.sort_unstable();
        let mut learners = cs.learners;
        learners.sort_unstable();
        NodeStatus {
            id: self.cfg.id,
            role: self.raw.raft.state.into(),
            term: self.raw.raft.term,
            leader_id: self.leader_id(),
            commit_index: self.raw.raft.raft_log.committed,
            applied_index: self.applied_index(),
            voters,
            learners,
            clock_clamps: self.clock_clamps,
            clock_ahead_ns: self.clock_ahead_ns,
            first_index: raft::Storage::first_index(self.raw.store()).unwrap_or(0),
            last_index: raft::Storage::last_index(self.raw.store()).unwrap_or(0),
            snapshots: self.snapshot_stats,
            log_syncs: self.sync.stats,
            progress: if self.is_leader() {
                let mut p: Vec<(u64, u64)> = self
                    .raw
                    .raft
                    .prs()
                    .iter()
                    .map(|(id, pr)| (*id, pr.matched))
                    .collect();
                p.sort_unstable();
                p
            } else {
                Vec::new()
            },
        }
    }

    /// Encoded messages produced by `process_ready` (not `process_ready_with`).
    pub fn take_messages(&mut self) -> Vec<(u64, Vec<u8>)> {
        std::mem::take(&mut self.outbox)
    }

    /// Addresses of members added since the last call (from applied conf changes).
    pub fn take_member_addresses(&mut self) -> Vec<(u64, String)> {
        std::mem::take(&mut self.member_addresses)
    }

    /// Resolved proposals: `(proposal_id, outcome)`.
    pub fn take_completions(&mut self) -> Vec<(u64, ProposeOutcome)> {
        std::mem::take(&mut self.completions)
    }

    /// Resolved reads: `(read_id, Ok(read_index) | Err)`.
    pub fn take_read_completions(&mut self) -> Vec<(u64, Result<u64, ReadError>)> {
        std::mem::take(&mut self.read_completions)
    }

    fn stopped(&self) -> Result<(), ConsensusError> {
        match &self.fatal {
            Some(e) => Err(ConsensusError::Stopped(e.clone())),
            None => Ok(()),
        }
    }

    /// Record a fatal error: the node must stop; all waiters learn it stopped.
    fn fail<T>(&mut self, r: Result<T, ConsensusError>) -> Result<T, ConsensusError> {
        if let Err(e) = &r {
            if self.fatal.is_none() {
                tracing::error!(node = self.cfg.id, "consensus fatal error: {e}");
                self.fatal = Some(e.to_string());
                self.abandon();
            }
        }
        r
    }

    /// Answers every proposal and read this node still holds, because it is stopping: proposals
    /// not yet handed to Raft were **not** proposed (`Rejected { Stopped }`); proposals Raft took
    /// may already be in the log and be committed by the next leader, so their outcome is
    /// `Unknown` — never "not applied", or a caller resubmitting under new ids would pay twice.
    pub fn abandon(&mut self) {
        for (pid, _, _) in self.queued.drain(..) {
            self.completions.push((
                pid,
                ProposeOutcome::Rejected {
                    reason: RejectReason::Stopped,
                },
            ));
        }
        for (pid, _) in std::mem::take(&mut self.waiters) {
            self.completions.push((pid, ProposeOutcome::Unknown));
        }
        self.waiters_by_index.clear();
        for (rid, _) in std::mem::take(&mut self.reads) {
            self.read_completions.push((rid, Err(ReadError::Stopped)));
        }
    }

    fn check_store(&self) -> Result<(), ConsensusError> {
        match self.raw.store().read_error() {
            Some(e) => Err(ConsensusError::Storage(e)),
            None => Ok(()),
        }
    }

    /// Advance logical time by one tick (election/heartbeat timers, read and snapshot timeouts).
    pub fn tick(&mut self) -> Result<(), ConsensusError> {
        self.stopped()?;
        self.raw.tick();
        self.ticks += 1;
        let now = self.ticks;
        let expired: Vec<u64> = self
            .reads
            .iter()
            .filter(|(_, r)| r.deadline_tick <= now)
            .map(|(id, _)| *id)
            .collect();
        for rid in expired {
            self.reads.remove(&rid);
            self.read_completions.push((rid, Err(ReadError::Timeout)));
        }
        // A lost snapshot message would leave the follower's progress stuck in Snapshot state;
        // report failure after a timeout so the leader probes and resends.
        let timeout = self.cfg.snapshot_timeout_ticks;
        let due: Vec<u64> = self
            .snapshots_in_flight
            .iter()
            .filter(|(_, sent)| now.saturating_sub(**sent) >= timeout)
            .map(|(p, _)| *p)
            .collect();
        for peer in due {
            self.snapshots_in_flight.remove(&peer);
            let stuck = self
                .raw
                .raft
                .prs()
                .get(peer)
                .is_some_and(|p| p.state == ProgressState::Snapshot);
            if stuck && self.is_leader() {
                self.raw.report_snapshot(peer, SnapshotStatus::Failure);
            }
        }
        self.maybe_promote_learner();
        let r = self.check_store();
        self.fail(r)
    }

    /// On the leader, proposes one caught-up learner as a voter (one change at a time; nobody
    /// waits for the outcome: if it is lost, a later tick proposes it again).
    fn maybe_promote_learner(&mut self) {
        let lag = self.cfg.promote_lag_entries;
        if lag == 0 || !self.is_leader() || self.raw.raft.has_pending_conf() {
            return;
        }
        let committed = self.raw.raft.raft_log.committed;
        let prs = self.raw.raft.prs();
        let ready = prs
            .conf()
            .to_conf_state()
            .learners
            .into_iter()
            .filter(|id| {
                // It has acknowledged entries (a learner just added has matched 0) and is close.
                prs.get(*id).is_some_and(|p| {
                    p.recent_active && p.matched > 0 && p.matched + lag >= committed
                })
            })
            .min();
        if let Some(id) = ready {
            tracing::info!(
                node = self.cfg.id,
                learner = id,
                "promoting a caught-up learner"
            );
            self.propose_membership_change(MembershipChange::AddVoter(id));
        }
    }

    /// Feed one encoded raft message from a peer. Undecodable or misaddressed messages are
    /// logged and dropped (never fatal); only storage failures are returned as errors.
    pub fn step(&mut self, bytes: &[u8]) -> Result<(), ConsensusError> {
        self.step_from(None, bytes)
    }

    /// [`Driver::step`] for a message that arrived from the authenticated node `peer`: dropped
    /// unless the message says it is from `peer` and `peer` is a member (voter or learner) of
    /// the configuration this node knows. A node that knows no configuration yet (started to
    /// join, waiting for the leader) accepts any authenticated peer.
    pub fn step_from(&mut self, peer: Option<u64>, bytes: &[u8]) -> Result<(), ConsensusError> {
        self.stopped()?;
        match self.accept_from(peer, bytes) {
            Some(msg) => self.step_message(msg),
            None => Ok(()),
        }
    }

    /// Decodes a message from `peer` (the sender the transport authenticated, if any) and
    /// checks it may be stepped; `None` (logged): drop it.
    pub fn accept_from(&self, peer: Option<u64>, bytes: &[u8]) -> Option<Message> {
        let msg = match Message::decode(bytes) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(node = self.cfg.id, "dropping undecodable raft message: {e}");
                return None;
            }
        };
        if let Some(p) = peer {
            let prs = self.raw.raft.prs();
            let knows_config = prs.iter().next().is_some();
            // A leader's messages are taken from a node this one does not know as a member yet,
            // at a term it already knows: a follower that has not applied the change adding the
            // new leader must still hear from it (Raft accepts a leader outside the receiver's
            // configuration), or it never catches up. It learns the term from members (their
            // vote rejections). Anything else from a non-member — votes, responses, a higher
            // term — is dropped, so a removed node cannot disturb the cluster.
            let from_a_leader = matches!(
                msg.get_msg_type(),
                MessageType::MsgAppend | MessageType::MsgHeartbeat | MessageType::MsgSnapshot
            ) && msg.term <= self.raw.raft.term;
            if msg.from != p || (knows_config && !from_a_leader && prs.get(p).is_none()) {
                tracing::warn!(
                    node = self.cfg.id,
                    peer = p,
                    from = msg.from,
                    "dropping a raft message not from its authenticated, member sender"
                );
                return None;
            }
        }
        Some(msg)
    }

    pub fn step_message(&mut self, mut msg: Message) -> Result<(), ConsensusError> {
        self.stopped()?;
        if msg.to != self.cfg.id {
            tracing::warn!(
                node = self.cfg.id,
                to = msg.to,
                "dropping misaddressed raft message"
            );
            return Ok(());
        }
        // A heartbeat carries commit = min(leader's view of our match, committed). If our log is
        // shorter than that (this node's data dir was wiped), raft-rs would panic in commit_to.
        // Not advancing commit from this heartbeat is always safe: the leader's next append
        // probes our real log, and falls back to a snapshot.
        let last = self.raw.raft.raft_log.last_index();
        let mut lost_log = false;
        if msg.get_msg_type() == MessageType::MsgHeartbeat && msg.commit > last {
            tracing::debug!(
                node = self.cfg.id,
                commit = msg.commit,
                last,
                "heartbeat commit beyond our log; not advancing commit"
            );
            msg.commit = self.raw.raft.raft_log.committed;
            lost_log = true;
        }
        if msg.get_msg_type() == MessageType::MsgAppendResponse
            && msg.reject
            && msg.index == LOST_LOG_MARKER
        {
            self.handle_lost_log_report(&msg);
            let r = self.check_store();
            return self.fail(r);
        }
        let (from, term) = (msg.from, msg.term);
        if let Err(e) = self.raw.step(msg) {
            tracing::debug!(node = self.cfg.id, "raft step rejected message: {e}");
        }
        if lost_log && self.raw.raft.leader_id == from && self.raw.raft.term == term {
            // The leader believes we hold entries we no longer have (empty data dir). Its
            // progress for us is in Replicate state, where it ignores our normal rejections as
            // stale (rejected index <= matched). A rejection with an index above anything it
            // can have matched makes it fall back to probing, which walks back to our real
            // last index and, behind its compacted log, sends a snapshot.
            let reply = Message {
                msg_type: MessageType::MsgAppendResponse as i32,
                to: from,
                from: self.cfg.id,
                term,
                index: LOST_LOG_MARKER,
                reject: true,
                reject_hint: last,
                log_term: 0,
                commit: self.raw.raft.raft_log.committed,
                ..Default::default()
            };
            self.raw.raft.msgs.push(reply);
        }
        let r = self.check_store();
        self.fail(r)
    }

    /// Leader side of wiped-follower recovery (see `step_message`): the follower's log ends
    /// at `reject_hint`, below what it once acknowledged. raft-rs never lowers `matched`, so we
    /// reset the progress ourselves. Lowering `matched` is safe: the commit index never
    /// decreases, it only delays further commits until the follower re-acknowledges.
    fn handle_lost_log_report(&mut self, msg: &Message) {
        if !self.is_leader() || msg.term != self.raw.raft.term {
            return;
        }
        let (from, hint) = (msg.from, msg.reject_hint);
        let Some(pr) = self.raw.raft.mut_prs().get_mut(from) else {
            return;
        };
        // A snapshot in flight will fix the follower; resetting would restart the transfer.
        if pr.matched <= hint || pr.state == ProgressState::Snapshot {
            return;
        }
        tracing::warn!(
            node = self.cfg.id,
            peer = from,
            matched = pr.matched,
            peer_last = hint,
            "peer lost acknowledged log entries; re-probing it"
        );
        pr.become_probe();
        pr.matched = 0;
        pr.next_idx = hint + 1;
        self.raw.raft.send_append(from);
    }

    fn alloc_proposal_id(&mut self) -> u64 {
        let id = self.next_proposal_id;
        self.next_proposal_id = self.next_proposal_id.wrapping_add(1);
        id
    }

    fn admission(&self) -> Option<ProposeOutcome> {
        if self.fatal.is_some() {
            return Some(ProposeOutcome::Rejected {
                reason: RejectReason::Stopped,
            });
        }
        if !self.is_leader() {
            return Some(ProposeOutcome::NotLeader {
                leader_id: self.leader_id(),
            });
        }
        None
    }

    /// Queue a proposal for the next ready cycle; returns its proposal id. The outcome is
    /// reported through `take_completions` (possibly immediately, e.g. `NotLeader`).
    pub fn propose(&mut self, payload: Vec<u8>) -> u64 {
        self.propose_weighted(payload, 1)
    }

    /// As [`Driver::propose`], with the proposal's weight in the state machine's unit (the
    /// ledger: commands). An entry never carries more than `max_weight_per_entry`; a heavier
    /// single proposal is rejected as too large.
    pub fn propose_weighted(&mut self, payload: Vec<u8>, weight: u64) -> u64 {
        let pid = self.alloc_proposal_id();
        let outcome = self.admission().or_else(|| {
            if codec::encoded_len([payload.len()]) > self.cfg.max_entry_bytes
                || weight > self.cfg.max_weight_per_entry
            {
                Some(ProposeOutcome::Rejected {
                    reason: RejectReason::TooLarge,
                })
            } else if self.queued.len() >= self.cfg.max_queued_proposals
                || self.apply.backlog() >= self.cfg.max_apply_backlog_entries
            {
                Some(ProposeOutcome::Rejected {
                    reason: RejectReason::Overloaded,
                })
            } else {
                None
            }
        });
        match outcome {
            Some(o) => self.completions.push((pid, o)),
            None => self.queued.push_back((pid, payload, weight)),
        }
        pid
    }

    /// Propose a membership change through the log. Completes with `Applied { result: [] }`
    /// once the change is applied on this node.
    pub fn propose_membership_change(&mut self, change: MembershipChange) -> u64 {
        let pid = self.alloc_proposal_id();
        if let Some(o) = self.admission() {
            self.completions.push((pid, o));
            return pid;
        }
        if self.raw.raft.has_pending_conf() {
            self.completions.push((
                pid,
                ProposeOutcome::Rejected {
                    reason: RejectReason::ConfChangeInProgress,
                },
            ));
            return pid;
        }
        let (change_type, node_id, address) = match change {
            MembershipChange::AddVoter(id) => (ConfChangeType::AddNode, id, String::new()),
            MembershipChange::AddLearner(id, address) => {
                (ConfChangeType::AddLearnerNode, id, address)
            }
            MembershipChange::Remove(id) => (ConfChangeType::RemoveNode, id, String::new()),
        };
        let cc = ConfChange {
            change_type: change_type as i32,
            node_id,
            context: encode_cc_context(self.cfg.id, pid, &address),
            id: 0,
        };
        let before = self.raw.raft.raft_log.last_index();
        match self.raw.propose_conf_change(Vec::new(), cc) {
            Ok(()) => self.register_waiter(pid, before),
            Err(e) => {
                tracing::debug!(node = self.cfg.id, "conf change dropped: {e}");
                self.completions.push((pid, ProposeOutcome::Unknown));
            }
        }
        pid
    }

    /// Ask raft to hand leadership to `to` (only meaningful on the leader).
    pub fn transfer_leader(&mut self, to: u64) {
        if self.fatal.is_none() && self.is_leader() {
            self.raw.transfer_leader(to);
        }
    }

    /// Start an election now (tests, operator tooling).
    pub fn campaign(&mut self) -> Result<(), ConsensusError> {
        self.stopped()?;
        self.raw.campaign()?;
        Ok(())
    }

    /// Start a linearizable read; returns a read id. Resolves (via `take_read_completions`) to
    /// the confirmed read index once this node has applied at least that index.
    pub fn read_index(&mut self) -> u64 {
        let rid = self.next_read_id;
        self.next_read_id = self.next_read_id.wrapping_add(1);
        let err = if self.fatal.is_some() {
            Some(ReadError::Stopped)
        } else if self.reads.len() >= self.cfg.max_pending_reads {
            Some(ReadError::Overloaded)
        } else if self.raw.raft.leader_id == 0 {
            Some(ReadError::NotLeader { leader_id: None })
        } else {
            None
        };
        if let Some(e) = err {
            self.read_completions.push((rid, Err(e)));
            return rid;
        }
        self.raw.read_index(read_ctx(self.cfg.id, rid));
        self.reads.insert(
            rid,
            PendingRead {
                index: None,
                deadline_tick: self.ticks + self.cfg.read_timeout_ticks,
            },
        );
        rid
    }

    fn register_waiter(&mut self, pid: u64, last_index_before: u64) {
        let index = self.raw.raft.raft_log.last_index();
        if index <= last_index_before {
            // raft accepted but did not append (should not happen); the outcome is unknowable.
            self.completions.push((pid, ProposeOutcome::Unknown));
            return;
        }
        self.waiters.insert(
            pid,
            Waiter {
                index,
                term: self.raw.raft.term,
            },
        );
        self.waiters_by_index.entry(index).or_default().push(pid);
    }

    /// Detect leadership loss / term change: in-flight proposals become `Unknown` (they may
    /// still commit under the new leader — the client retries idempotently), unconfirmed reads
    /// fail fast.
    fn check_leadership(&mut self) {
        let now = (
            self.raw.raft.state,
            self.raw.raft.term,
            self.raw.raft.leader_id,
        );
        if now == self.observed {
            return;
        }
        let leader_now = now.0 == StateRole::Leader;
        let stale: Vec<u64> = self
            .waiters
            .iter()
            .filter(|(_, w)| !leader_now || w.term != now.1)
            .map(|(pid, _)| *pid)
            .collect();
        for pid in stale {
            self.waiters.remove(&pid);
            self.completions.push((pid, ProposeOutcome::Unknown));
        }
        if !leader_now {
            let hint = self.leader_id();
            for (pid, _, _) in self.queued.drain(..) {
                self.completions
                    .push((pid, ProposeOutcome::NotLeader { leader_id: hint }));
            }
        }
        if now.1 != self.observed.1 || now.2 != self.observed.2 {
            let unconfirmed: Vec<u64> = self
                .reads
                .iter()
                .filter(|(_, r)| r.index.is_none())
                .map(|(id, _)| *id)
                .collect();
            for rid in unconfirmed {
                self.reads.remove(&rid);
                self.read_completions
                    .push((rid, Err(ReadError::LeaderChanged)));
            }
        }
        self.observed = now;
    }

    /// Group commit: pack queued proposals into as few entries as the bounds allow.
    /// The log time to stamp a new entry with: the wall clock, but never further than
    /// `max_clock_step_ms` past the last log time this node saw plus the time its own ticks say
    /// has passed since (the ledger keeps log time strictly increasing on the other side).
    fn stamp(&mut self, now_ns: u64) -> u64 {
        let (last_ns, at_tick) = self.clock_anchor;
        if last_ns == 0 {
            self.clock_anchor = (now_ns, self.ticks);
            return now_ns; // nothing seen yet: no reference to bound against
        }
        let elapsed_ns = self
            .ticks
            .saturating_sub(at_tick)
            .saturating_mul(self.cfg.tick_interval_ms)
            .saturating_mul(1_000_000);
        let bound = last_ns
            .saturating_add(elapsed_ns)
            .saturating_add(self.cfg.max_clock_step_ms.saturating_mul(1_000_000));
        let stamp = if now_ns > bound {
            self.clock_clamps += 1;
            self.clock_ahead_ns = now_ns - bound;
            tracing::warn!(
                node = self.cfg.id,
                ahead_ms = self.clock_ahead_ns / 1_000_000,
                "wall clock ahead of log time; stamping the bound"
            );
            bound
        } else {
            self.clock_ahead_ns = 0;
            now_ns
        };
        self.observe_log_time(stamp);
        stamp
    }

    /// Moves the clock anchor to a later log time (stamped here or applied from the log).
    fn observe_log_time(&mut self, ts: u64) {
        if ts > self.clock_anchor.0 {
            self.clock_anchor = (ts, self.ticks);
        }
    }

    fn flush_proposals(&mut self, now_ns: u64, seed: u64) {
        if self.queued.is_empty() {
            return;
        }
        let mut k = 0u64;
        while !self.queued.is_empty() {
            let mut n = 0usize;
            let mut bytes = codec::header_bytes();
            let mut weight = 0u64;
            for (_, p, w) in self.queued.iter() {
                let add = codec::proposal_overhead_bytes() + p.len();
                if n > 0
                    && (n >= self.cfg.max_proposals_per_entry
                        || bytes + add > self.cfg.max_entry_bytes
                        || weight.saturating_add(*w) > self.cfg.max_weight_per_entry)
                {
                    break;
                }
                n += 1;
                bytes += add;
                weight = weight.saturating_add(*w);
            }
            let group: Vec<(u64, Vec<u8>)> =
                self.queued.drain(..n).map(|(pid, p, _)| (pid, p)).collect();
            let entry_seed = mix_seed(seed ^ k.wrapping_mul(0xD6E8_FEB8_6659_FD93));
            k += 1;
            let proposals: Vec<Proposal<'_>> = group
                .iter()
                .map(|(pid, p)| Proposal {
                    node_id: self.cfg.id,
                    proposal_id: *pid,
                    payload: p,
                })
                .collect();
            let stamp_ns = self.stamp(now_ns);
            let data = encode_entry_data(stamp_ns, entry_seed, &proposals);
            let before = self.raw.raft.raft_log.last_index();
            match self.raw.propose(Vec::new(), data) {
                Ok(()) => {
                    for (pid, _) in &group {
                        self.register_waiter(*pid, before);
                    }
                }
                Err(e) => {
                    // ProposalDropped: leader transfer in progress, uncommitted-size limit, ...
                    tracing::debug!(node = self.cfg.id, "proposal dropped: {e}");
                    let outcome = if self.is_leader() {
                        ProposeOutcome::Unknown
                    } else {
                        ProposeOutcome::NotLeader {
                            leader_id: self.leader_id(),
                        }
                    };
                    for (pid, _) in group {
                        self.completions.push((pid, outcome.clone()));
                    }
                }
            }
        }
    }

    /// Run one ready cycle, collecting outgoing messages in the outbox (`take_messages`).
    pub fn process_ready(&mut self, now_ns: u64, seed: u64) -> Result<(), ConsensusError> {
        let mut out = Vec::new();
        let r = self.process_ready_with(now_ns, seed, &mut |to, m| out.push((to, m)));
        self.outbox.extend(out);
        r
    }

    /// Run one ready cycle, handing each outgoing message to `send` as soon as it may be sent
    /// (leader messages before the local fsync, others after). `now_ns`/`seed` are only used
    /// to stamp entries created from queued proposals.
    pub fn process_ready_with(
        &mut self,
        now_ns: u64,
        seed: u64,
        send: &mut SendFn<'_>,
    ) -> Result<(), ConsensusError> {
        self.stopped()?;
        let r = self.ready_cycle(now_ns, seed, send);
        self.fail(r)
    }

    fn ready_cycle(
        &mut self,
        now_ns: u64,
        seed: u64,
        send: &mut SendFn<'_>,
    ) -> Result<(), ConsensusError> {
        self.check_leadership();
        if self.is_leader() {
            self.flush_proposals(now_ns, seed);
        } else if !self.queued.is_empty() {
            let hint = self.leader_id();
            for (pid, _, _) in self.queued.drain(..) {
                self.completions
                    .push((pid, ProposeOutcome::NotLeader { leader_id: hint }));
            }
        }
        // A snapshot to install replaces the state machine: not while entries are applied
        // elsewhere (they finish first; the snapshot waits in raft-rs).
        let snapshot_waits = self.apply.in_flight() && self.raw.snap().is_some();
        if snapshot_waits || !self.raw.has_ready() {
            self.check_store()?;
            self.complete_reads();
            // A peer may be waiting for a snapshot that names it (see `maybe_snapshot`).
            return self.maybe_snapshot();
        }
        let mut rd = self.raw.ready();

        // 1. Leader messages: may be sent before the leader's own append is durable.
        self.send_all(rd.take_messages(), send);

        // ReadIndex confirmations.
        for rs in rd.take_read_states() {
            if rs.request_ctx.len() == 16 && rs.request_ctx[..8] == self.cfg.id.to_be_bytes() {
                let rid = u64::from_be_bytes(rs.request_ctx[8..].try_into().expect("8 bytes"));
                if let Some(r) = self.reads.get_mut(&rid) {
                    r.index = Some(rs.index);
                }
            }
        }

        // 2. Snapshot from the leader: persist it (log reset), then restore the state machine.
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            self.install_snapshot(&snap)?;
        }

        if self.sync.pipelined {
            let installed = !rd.snapshot().is_empty();
            return self.ready_pipelined(rd, installed, send);
        }

        // 3. Entries + hard state, one synced batch (unsynced if it only moves the commit
        //    index). Done *before* applying so the commit index is never behind the state
        //    machine's applied index (see crate docs).
        self.raw.mut_store().append(rd.entries(), rd.hs())?;

        // 4. Messages that must wait for persistence (votes, append responses): durable now,
        //    so the leader can count this node's ack while it applies.
        self.send_all(rd.take_persisted_messages(), send);

        // 5. Apply committed entries (all durable already: raft only hands out persisted ones).
        self.apply_committed(rd.take_committed_entries())?;

        // 6. Advance; the LightReady carries what became valid after persisting. (What is
        //    applied is told separately: with pipelined apply it comes back later.)
        let mut light = self.raw.advance_append(rd);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        self.send_all(light.take_messages(), send);
        self.apply_committed(light.take_committed_entries())?;
        self.advance_applied();
        self.end_cycle()
    }

    /// Steps 3–6 of the ready loop with pipelined persistence: the entries and hard state are
    /// written without waiting for the disk; the messages that vouch for them (append acks,
    /// votes) are held until a sync covers them ([`Driver::on_log_synced`]). What is applied was
    /// durable before (raft-rs hands out committed entries only up to what this node persisted),
    /// and a leader's commit counts its own copy only once durable, so applying and
    /// acknowledging never run ahead of the disk; the Raft thread just does not wait for it.
    fn ready_pipelined(
        &mut self,
        mut rd: raft::Ready,
        installed_snapshot: bool,
        send: &mut SendFn<'_>,
    ) -> Result<(), ConsensusError> {
        let number = rd.number();
        if installed_snapshot {
            // The install was synced, carrying every earlier write down; sync this one too.
            self.raw.mut_store().append(rd.entries(), rd.hs())?;
        } else if self
            .raw
            .mut_store()
            .append_unsynced(rd.entries(), rd.hs())?
        {
            self.sync.owed = number;
            self.sync.wanted = Some(number);
        }
        // Durable now if it owes nothing and nothing before it is still owed.
        let durable_now = installed_snapshot || self.sync.owed <= self.sync.durable;
        let persisted = rd.take_persisted_messages();
        if durable_now && self.sync.held.is_empty() {
            // Before applying, so the leader counts this node's ack while it applies.
            self.send_all(persisted, send);
        } else if !persisted.is_empty() {
            // Behind earlier held messages (a synced snapshot install releases them all at
            // once below, in order).
            self.sync.held.push_back((number, persisted));
        }
        self.apply_committed(rd.take_committed_entries())?;
        self.raw.advance_append_async(rd);
        self.sync.last = number;
        if durable_now {
            self.mark_durable(number, send);
        }
        self.advance_applied();
        self.end_cycle()
    }

    /// The end of a ready cycle: checks, then what the applied entries made possible.
    fn end_cycle(&mut self) -> Result<(), ConsensusError> {
        self.check_store()?;
        self.check_invariants()?;
        self.check_leadership();
        self.maybe_snapshot()?;
        self.complete_reads();
        Ok(())
    }

    /// Every write of readies up to `number` is durable: release what waited for it.
    fn mark_durable(&mut self, number: u64, send: &mut SendFn<'_>) {
        let number = number.min(self.sync.last);
        if number <= self.sync.durable {
            return;
        }
        // Readies after the last one that owed a sync wrote nothing that needs one.
        self.sync.durable = if self.sync.owed <= number {
            self.sync.last
        } else {
            number
        };
        while let Some((n, _)) = self.sync.held.front() {
            if *n > self.sync.durable {
                break;
            }
            let (_, msgs) = self.sync.held.pop_front().expect("front exists");
            self.send_all(msgs, send);
        }
        self.raw.on_persist_ready(self.sync.durable);
    }

    /// The ready through which the log must be synced, if a new sync is needed (pipelined
    /// persistence): the runtime syncs it off the Raft thread, then calls
    /// [`Driver::on_log_synced_with`].
    pub fn take_log_sync(&mut self) -> Option<u64> {
        self.sync.wanted.take()
    }

    /// The log is durable through ready `number` (a sync asked for by [`Driver::take_log_sync`]
    /// finished): send the acknowledgements and votes that waited for it, and let raft-rs count
    /// this node's copy. Run a ready cycle after it.
    pub fn on_log_synced_with(
        &mut self,
        number: u64,
        send: &mut SendFn<'_>,
    ) -> Result<(), ConsensusError> {
        self.stopped()?;
        self.mark_durable(number, send);
        let r = self.check_store();
        self.fail(r)
    }

    /// Counts a finished background sync and the time its fsync took (for metrics).
    pub fn record_log_sync(&mut self, sync_us: u64) {
        self.sync.stats.syncs += 1;
        self.sync.stats.sync_us_total = self.sync.stats.sync_us_total.saturating_add(sync_us);
    }

    /// [`Driver::on_log_synced_with`], queueing the messages for [`Driver::take_messages`].
    pub fn on_log_synced(&mut self, number: u64) -> Result<(), ConsensusError> {
        let mut out = Vec::new();
        let r = self.on_log_synced_with(number, &mut |to, m| out.push((to, m)));
        self.outbox.extend(out);
        r
    }

    fn check_invariants(&self) -> Result<(), ConsensusError> {
        let log = &self.raw.raft.raft_log;
        if log.applied > log.committed {
            return Err(ConsensusError::Invariant(format!(
                "applied {} > committed {}",
                log.applied, log.committed
            )));
        }
        if log.applied != self.apply.done {
            return Err(ConsensusError::Invariant(format!(
                "raft applied {} != applied results {}",
                log.applied, self.apply.done
            )));
        }
        // The state machine is asked only while nothing is applied elsewhere.
        if !self.apply.in_flight() {
            let sm_applied = self.sm.applied_index();
            if sm_applied != log.applied {
                return Err(ConsensusError::Invariant(format!(
                    "state machine applied {sm_applied} != raft applied {}",
                    log.applied
                )));
            }
        }
        let durable_commit = self.raw.store().hard_state().commit;
        if self.apply.handed > durable_commit {
            return Err(ConsensusError::Invariant(format!(
                "applied (or handed out) {} > durable commit {durable_commit}",
                self.apply.handed
            )));
        }
        Ok(())
    }

    /// Peer `peer` is still fetching the snapshot it was sent (the transport saw it): restart
    /// its snapshot timeout, so a long transfer is not taken for a lost message.
    pub fn snapshot_alive(&mut self, peer: u64) {
        if let Some(sent) = self.snapshots_in_flight.get_mut(&peer) {
            *sent = self.ticks;
        }
    }

    fn send_all(&mut self, msgs: Vec<Message>, send: &mut SendFn<'_>) {
        for m in msgs {
            if m.get_msg_type() == MessageType::MsgSnapshot {
                self.snapshots_in_flight.insert(m.to, self.ticks);
                // A resent (newer) snapshot does not move a hold forward: the peer may still be
                // installing the first one (its probe answers, sent before the install, are what
                // made the leader resend), and after it needs the log from there.
                let at = m.get_snapshot().get_metadata().index;
                let hold = self.snapshot_holds.entry(m.to).or_insert(at);
                *hold = (*hold).min(at);
            }
            let to = m.to;
            send(to, m.encode_to_vec());
        }
    }

    fn install_snapshot(&mut self, snap: &Snapshot) -> Result<(), ConsensusError> {
        let index = snap.get_metadata().index;
        let started = std::time::Instant::now();
        self.raw.mut_store().install_snapshot(snap)?;
        self.sm.restore(index, &snap.data)?;
        if self.sm.applied_index() != index {
            return Err(ConsensusError::Invariant(format!(
                "state machine applied {} after restoring snapshot {index}",
                self.sm.applied_index()
            )));
        }
        tracing::info!(
            node = self.cfg.id,
            index,
            bytes = snap.data.len(),
            "snapshot installed"
        );
        self.snapshot_stats.installed += 1;
        self.snapshot_stats.installed_ms_total += started.elapsed().as_millis() as u64;
        self.last_snapshot_index = index;
        // Committed entries not yet applied are older than the snapshot (raft-rs takes one only
        // past its commit index): the snapshot holds them.
        self.apply.pending.retain(|e| e.index > index);
        self.apply.handed = index;
        self.apply.done = index;
        self.resolve_overwritten(index);
        Ok(())
    }

    fn apply_committed(&mut self, entries: Vec<Entry>) -> Result<(), ConsensusError> {
        if entries.is_empty() {
            return Ok(());
        }
        if self.apply.pipelined {
            // Handed out by `take_apply_work`; a membership change waits for what is before it.
            self.apply.pending.extend(entries);
            return self.apply_conf_changes();
        }
        let mut batch: Vec<CommittedEntry<'_>> = Vec::new();
        for e in &entries {
            if is_conf_change(e) {
                self.apply_batch(&mut batch)?;
                self.apply_conf_change_entry(e)?;
            } else {
                let ce = committed_entry(e)?;
                self.observe_log_time(ce.timestamp_ns);
                batch.push(ce);
            }
        }
        self.apply_batch(&mut batch)
    }

    /// The index up to which this node applied committed entries (raft-rs's applied index; the
    /// state machine's too whenever nothing is being applied elsewhere).
    fn applied_index(&self) -> u64 {
        self.raw.raft.raft_log.applied
    }

    /// Tells raft-rs what is applied: everything handed out, or (pipelined) what came back.
    fn advance_applied(&mut self) {
        if !self.apply.pipelined {
            self.raw.advance_apply();
            self.apply.handed = self.applied_index();
            self.apply.done = self.apply.handed;
        } else if self.apply.done > self.applied_index() {
            self.raw.advance_apply_to(self.apply.done);
        }
    }

    /// Membership changes at the head of the pending entries, applied here once every entry
    /// before them is (pipelined apply).
    fn apply_conf_changes(&mut self) -> Result<(), ConsensusError> {
        while !self.apply.in_flight() {
            match self.apply.pending.front() {
                Some(e) if is_conf_change(e) => {}
                _ => break,
            }
            let e = self.apply.pending.pop_front().expect("front exists");
            self.apply_conf_change_entry(&e)?;
            self.apply.handed = e.index;
            self.apply.done = e.index;
            self.advance_applied();
        }
        Ok(())
    }

    /// Committed entries to apply off the Raft thread, in log order (pipelined apply): apply
    /// them to the state machine — nothing else may touch it meanwhile — and report the results
    /// with [`Driver::on_applied`], in the order they were handed out. `None` while there is
    /// nothing to hand out, a membership change waits for the entries before it, or a snapshot
    /// is due.
    pub fn take_apply_work(&mut self) -> Option<ApplyWork> {
        if !self.apply.pipelined || self.apply.hold || self.fatal.is_some() {
            return None;
        }
        let mut entries = Vec::new();
        let mut bytes = 0u64;
        while let Some(e) = self.apply.pending.front() {
            let size = e.data.len() as u64;
            if is_conf_change(e)
                || (!entries.is_empty() && bytes + size > self.cfg.max_apply_batch_bytes)
            {
                break;
            }
            bytes += size;
            entries.push(self.apply.pending.pop_front().expect("front exists"));
        }
        let last = entries.last()?.index;
        self.apply.handed = last;
        Some(ApplyWork { entries })
    }

    /// The state machine applied `work` (handed out by [`Driver::take_apply_work`], reported in
    /// the same order) with these results: answer the proposals, advance the applied index, and
    /// do what it made possible (membership changes, reads, snapshots). Run a ready cycle after.
    pub fn on_applied(
        &mut self,
        work: ApplyWork,
        results: Vec<Vec<Vec<u8>>>,
    ) -> Result<(), ConsensusError> {
        self.stopped()?;
        let r = self.finish_apply(&work, results);
        self.fail(r)
    }

    /// Applies `work` with this driver's own state machine, then [`Driver::on_applied`] (the
    /// simulator; a runtime without an apply thread never pipelines).
    pub fn apply_work_inline(&mut self, work: ApplyWork) -> Result<(), ConsensusError> {
        self.stopped()?;
        let r = work
            .committed()
            .and_then(|batch| Ok(self.sm.apply(&batch)?))
            .and_then(|results| {
                self.check_sm_applied(work.last_index())?;
                self.finish_apply(&work, results)
            });
        self.fail(r)
    }

    fn finish_apply(
        &mut self,
        work: &ApplyWork,
        results: Vec<Vec<Vec<u8>>>,
    ) -> Result<(), ConsensusError> {
        let (first, last) = (work.first_index(), work.last_index());
        if !self.apply.pipelined || first != self.apply.done + 1 || last > self.apply.handed {
            return Err(ConsensusError::Invariant(format!(
                "applied entries {first}..={last} reported after {} (handed out up to {})",
                self.apply.done, self.apply.handed
            )));
        }
        let batch = work.committed()?;
        for ce in &batch {
            self.observe_log_time(ce.timestamp_ns);
        }
        self.resolve_applied(&batch, results)?;
        self.apply.done = last;
        self.advance_applied();
        self.apply_conf_changes()?;
        self.check_store()?;
        self.check_invariants()?;
        self.maybe_snapshot()?;
        self.complete_reads();
        Ok(())
    }

    fn apply_conf_change_entry(&mut self, e: &Entry) -> Result<(), ConsensusError> {
        let codec_err = |err: prost011::DecodeError| ConsensusError::Codec {
            index: e.index,
            reason: err.to_string(),
        };
        let (cs, ctx, added) = if e.get_entry_type() == EntryType::EntryConfChange {
            let cc = ConfChange::decode(&e.data[..]).map_err(codec_err)?;
            let added = (cc.change_type != ConfChangeType::RemoveNode as i32).then_some(cc.node_id);
            (self.raw.apply_conf_change(&cc)?, cc.context, added)
        } else {
            let cc = ConfChangeV2::decode(&e.data[..]).map_err(codec_err)?;
            (self.raw.apply_conf_change(&cc)?, cc.context, None)
        };
        // Every member learns an added node's address from the log: the leader that took the
        // request may lose leadership before the node has said a word to anyone else.
        if let (Some(id), Some((_, _, address))) = (added, decode_cc_context(&ctx)) {
            if !address.is_empty() && id != self.cfg.id {
                self.member_addresses.push((id, address.to_string()));
            }
        }
        // Persist membership before the state machine records the index as applied, so a
        // restart never skips a conf change (re-applying one is idempotent).
        self.raw.mut_store().set_conf_state(&cs)?;
        // Take our waiter out first: apply_batch resolves leftover waiters at this index as
        // overwritten.
        let waiter = decode_cc_context(&ctx)
            .filter(|(node, _, _)| *node == self.cfg.id)
            .and_then(|(_, pid, _)| self.waiters.remove(&pid).map(|_| pid));
        let mut one = vec![CommittedEntry {
            index: e.index,
            term: e.term,
            timestamp_ns: 0,
            seed: 0,
            proposals: Vec::new(),
        }];
        self.apply_batch(&mut one)?;
        if let Some(pid) = waiter {
            self.completions.push((
                pid,
                ProposeOutcome::Applied {
                    index: e.index,
                    result: Vec::new(),
                },
            ));
        }
        tracing::info!(node = self.cfg.id, index = e.index, voters = ?cs.voters, learners = ?cs.learners, "membership changed");
        Ok(())
    }

    fn apply_batch(&mut self, batch: &mut Vec<CommittedEntry<'_>>) -> Result<(), ConsensusError> {
        let Some(last) = batch.last().map(|e| e.index) else {
            return Ok(());
        };
        let results = self.sm.apply(batch)?;
        self.check_sm_applied(last)?;
        self.resolve_applied(batch, results)?;
        batch.clear();
        Ok(())
    }

    /// The state machine reports `last` applied after applying up to it.
    fn check_sm_applied(&self, last: u64) -> Result<(), ConsensusError> {
        let applied = self.sm.applied_index();
        if applied != last {
            return Err(ConsensusError::Invariant(format!(
                "state machine applied index {applied} after applying up to {last}"
            )));
        }
        Ok(())
    }

    /// Answers the proposals of applied entries with their results.
    fn resolve_applied(
        &mut self,
        batch: &[CommittedEntry<'_>],
        results: Vec<Vec<Vec<u8>>>,
    ) -> Result<(), ConsensusError> {
        let Some(last) = batch.last().map(|e| e.index) else {
            return Ok(());
        };
        if results.len() != batch.len() {
            return Err(ConsensusError::Invariant(format!(
                "state machine returned {} results for {} entries",
                results.len(),
                batch.len()
            )));
        }
        for (ce, res) in batch.iter().zip(results) {
            if res.len() != ce.proposals.len() {
                return Err(ConsensusError::Invariant(format!(
                    "entry {}: {} results for {} proposals",
                    ce.index,
                    res.len(),
                    ce.proposals.len()
                )));
            }
            for (p, result) in ce.proposals.iter().zip(res) {
                if p.node_id != self.cfg.id {
                    continue;
                }
                if let Some(w) = self.waiters.remove(&p.proposal_id) {
                    if w.index != ce.index {
                        tracing::warn!(
                            node = self.cfg.id,
                            pid = p.proposal_id,
                            expected = w.index,
                            got = ce.index,
                            "proposal applied at unexpected index"
                        );
                    }
                    self.completions.push((
                        p.proposal_id,
                        ProposeOutcome::Applied {
                            index: ce.index,
                            result,
                        },
                    ));
                }
            }
        }
        self.resolve_overwritten(last);
        Ok(())
    }

    /// Waiters whose log slot is now applied without containing their proposal lost the slot
    /// to another leader's entry.
    fn resolve_overwritten(&mut self, upto: u64) {
        while let Some((&idx, _)) = self.waiters_by_index.first_key_value() {
            if idx > upto {
                break;
            }
            let (_, pids) = self.waiters_by_index.pop_first().expect("non-empty");
            for pid in pids {
                if self.waiters.remove(&pid).is_some() {
                    self.completions.push((pid, ProposeOutcome::Unknown));
                }
            }
        }
    }

    fn complete_reads(&mut self) {
        let applied = self.applied_index();
        let done: Vec<(u64, u64)> = self
            .reads
            .iter()
            .filter_map(|(rid, r)| r.index.filter(|i| *i <= applied).map(|i| (*rid, i)))
            .collect();
        for (rid, idx) in done {
            self.reads.remove(&rid);
            self.read_completions.push((rid, Ok(idx)));
        }
    }

    fn maybe_snapshot(&mut self) -> Result<(), ConsensusError> {
        let applied = self.applied_index();
        // A peer needs a snapshot whose configuration names it (it was added after the last
        // one): take one now if anything was applied since.
        let requested = self.raw.store().take_snapshot_request()
            || std::mem::take(&mut self.apply.snapshot_requested);
        let wanted = (requested && applied > self.last_snapshot_index)
            || (self.snapshot_lost && applied > 0);
        if !wanted
            && applied
                < self
                    .last_snapshot_index
                    .saturating_add(self.cfg.snapshot_threshold_entries)
        {
            self.apply.hold = false;
            return Ok(());
        }
        if self.apply.in_flight() {
            // The state machine is being applied elsewhere: hand out nothing more, and take the
            // snapshot once what is out comes back.
            self.apply.hold = true;
            self.apply.snapshot_requested |= requested;
            return Ok(());
        }
        self.apply.hold = false;
        let started = std::time::Instant::now();
        let data = self.sm.snapshot()?;
        let term = self.raw.store().term(applied)?;
        let conf_state = self.raw.store().conf_state();
        let learners = conf_state.learners.clone();
        let snap = Snapshot {
            data,
            metadata: Some(SnapshotMetadata {
                conf_state: Some(conf_state),
                index: applied,
                term,
            }),
        };
        let (truncated, _) = self.raw.store().truncated();
        // A peer sent a snapshot continues from the log after it once installed: keep that part,
        // then the part after what it has, until it has caught up to the entries every follower
        // keeps (`log_retain_entries`). Otherwise it needs another snapshot as soon as it has
        // installed this one, and never catches up when fetching, installing and replaying take
        // longer than the log lasts (they do on a large ledger). A hold ends when the peer has
        // caught up, leaves, this node stops leading, or the log kept for it passes
        // `log_hold_bytes_max` (a peer that is gone or too slow does not keep the log for ever).
        let caught_up = applied.saturating_sub(self.cfg.log_retain_entries);
        let bytes_max = self.cfg.log_hold_bytes_max;
        let leading = self.is_leader();
        let (store, prs) = (self.raw.store(), self.raw.raft.prs());
        let node = self.cfg.id;
        self.snapshot_holds.retain(|peer, at| {
            let Some(pr) = prs.get(*peer).filter(|_| leading) else {
                return false;
            };
            *at = (*at).max(pr.matched);
            if *at >= caught_up {
                return false;
            }
            let bytes = store.log_bytes_after(*at);
            if bytes > bytes_max {
                tracing::warn!(
                    node,
                    peer = *peer,
                    from = *at,
                    bytes,
                    bytes_max,
                    "log hold for a catching-up peer let go: it will need a newer snapshot"
                );
            }
            bytes <= bytes_max
        });
        // A leader's holds die with its leadership, and a joining node's fetch and install
        // outlast many snapshot points: a new leader would have compacted the log the newcomer
        // continues from and must send it another snapshot (seen in a 10 M-transfer join). So
        // every member keeps the log for a learner from about where it was added (the log this
        // member had when it first saw the learner) until it is promoted or removed — the
        // configuration is in the log, so all members agree — or the log kept for it passes
        // `log_hold_bytes_max` (a newcomer that died does not keep the log for ever).
        self.learner_holds
            .retain(|id, _| learners.contains(id) && *id != node);
        for id in learners.iter().filter(|id| **id != node) {
            self.learner_holds.entry(*id).or_insert(Some(truncated));
        }
        for (learner, hold) in &mut self.learner_holds {
            let Some(from) = *hold else { continue };
            let bytes = store.log_bytes_after(from);
            if bytes > bytes_max {
                tracing::warn!(
                    node,
                    learner = *learner,
                    from,
                    bytes,
                    bytes_max,
                    "log hold for a joining learner let go: it will need a newer snapshot"
                );
                *hold = None;
            }
        }
        let held = self
            .snapshot_holds
            .values()
            .chain(self.learner_holds.values().flatten())
            .copied()
            .min()
            .unwrap_or(u64::MAX);
        let compact_to = applied
            .saturating_sub(self.cfg.log_retain_entries)
            .min(held)
            .max(truncated);
        self.raw
            .mut_store()
            .save_snapshot_and_compact(&snap, compact_to)?;
        self.last_snapshot_index = applied;
        self.snapshot_lost = false;
        tracing::info!(
            node = self.cfg.id,
            index = applied,
            compact_to,
            bytes = snap.data.len(),
            "snapshot taken"
        );
        self.snapshot_stats.taken += 1;
        self.snapshot_stats.taken_ms_total += started.elapsed().as_millis() as u64;
        Ok(())
    }
}
