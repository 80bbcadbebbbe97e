use crate::error::ConsensusError;

/// Node configuration. Units are in the field names; `Default` gives production-ish values
/// except `id` / `initial_voters`, which the caller must set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// This node's raft id (non-zero, unique in the cluster, never reused after removal).
    pub id: u64,
    /// Voters of the cluster's *initial* configuration. Every node (including nodes added later
    /// and wiped nodes) must be given the same list: it is the configuration at log index 0, and
    /// later changes are replayed from the log / taken from snapshots.
    pub initial_voters: Vec<u64>,
    pub tick_interval_ms: u64,
    /// Election timeout in ticks (randomized in `[min_election_tick, max_election_tick)`).
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    /// 0 = raft default (`election_tick`).
    pub min_election_tick: usize,
    /// 0 = raft default (`2 * election_tick`).
    pub max_election_tick: usize,
    pub pre_vote: bool,
    pub check_quorum: bool,
    /// Take a state machine snapshot and compact the log every this many applied entries.
    pub snapshot_threshold_entries: u64,
    /// Entries kept in the log behind a snapshot, so slightly lagging followers can catch up
    /// from the log instead of receiving a full snapshot.
    pub log_retain_entries: u64,
    /// Most log bytes the leader keeps for peers catching up after a snapshot (see
    /// `Driver::maybe_snapshot`): past this a peer that is too slow, or gone, is let go and gets
    /// a newer snapshot when it comes back.
    pub log_hold_bytes_max: u64,
    /// Group commit bounds: proposals packed into one raft entry.
    pub max_proposals_per_entry: usize,
    pub max_entry_bytes: usize,
    /// Most total weight (see `Driver::propose_weighted`; the ledger weighs commands) in one entry.
    pub max_weight_per_entry: u64,
    /// Proposals waiting for the next ready cycle (beyond this: `Rejected(Overloaded)`).
    pub max_queued_proposals: usize,
    /// Outstanding ReadIndex requests (beyond this: `ReadError::Overloaded`).
    pub max_pending_reads: usize,
    /// ReadIndex requests not confirmed within this many ticks fail with `Timeout`.
    pub read_timeout_ticks: u64,
    /// If a follower is still waiting for a snapshot after this many ticks, the snapshot is
    /// reported failed so the leader resends it (covers lost snapshot messages).
    pub snapshot_timeout_ticks: u64,
    /// Bounded inbound queue of the runtime thread (messages, proposals, reads, admin).
    pub inbound_queue_len: usize,
    /// Maximum size of one frame handed to the transport (messages are chunked to this).
    pub max_message_bytes: usize,
    /// Maximum size of one reassembled inbound message (bounds an inline snapshot in memory; a
    /// snapshot sent as a reference travels outside Raft messages, without this limit).
    pub max_inbound_message_bytes: usize,
    /// Raft's soft limit on the entries carried by one append message.
    pub max_append_bytes: u64,
    /// Append messages in flight to one peer. raft-rs fills this window in one step when a
    /// lagging peer acks (`send_append_aggressively`), reading `max_inflight_msgs ×
    /// max_append_bytes` of log on the Raft thread: at 256 × 1 MiB a newcomer's catch-up after
    /// a snapshot stalled the leader past an election timeout. 16 MiB in flight still covers far
    /// more than a LAN's bandwidth-delay product.
    pub max_inflight_msgs: usize,
    /// Bound on committed entries handed to one `StateMachine::apply` call batch.
    pub max_apply_batch_bytes: u64,
    /// How far past the last log time plus this node's own elapsed time (ticks) the leader may
    /// stamp an entry: a wall clock that jumps ahead cannot drag log time (and every expiry
    /// with it) forward faster than this per entry.
    pub max_clock_step_ms: u64,
    /// The leader promotes a learner to voter once its log is within this many entries of the
    /// commit index (new nodes join as learners: no vote and no quorum weight while they catch
    /// up). 0: learners stay learners.
    pub promote_lag_entries: u64,
    /// Pipelined log persistence (raft-rs's asynchronous persistence): the ready loop writes
    /// entries and hard state without waiting for the disk and goes on replicating, applying
    /// what is durable and taking proposals, while the log is fsynced elsewhere (the runtime's
    /// log-sync thread; the simulator's schedule); acknowledgements and votes leave only once
    /// their writes are durable. `false`: every ready waits for its own fsync on the Raft thread.
    /// The runtime falls back to `false` for a store that cannot sync from another thread.
    pub log_sync_pipelined: bool,
    /// Pipelined apply: committed entries are applied off the Raft thread (the runtime's apply
    /// thread; the simulator's schedule) while the Raft thread goes on appending, replicating
    /// and acknowledging; results come back in log order ([`crate::Driver::take_apply_work`],
    /// [`crate::Driver::on_applied`]). Membership changes and snapshots wait until nothing is
    /// out. `false` (the default): the Raft thread applies each ready's committed entries
    /// itself. On a machine where the replicas share two cores the apply thread gained nothing
    /// and cost ~10 % more CPU per transfer at 30 000/s (docs/performance.md, 3t); it is for machines with
    /// a core to spare per replica. The runtime falls back to `false` for a state machine
    /// without an [`crate::Applier`]. The simulator runs both.
    pub apply_pipelined: bool,
    /// Pipelined apply: committed entries waiting to be applied or being applied, past which
    /// the leader refuses new proposals (`Rejected(Overloaded)`) until its apply thread catches
    /// up. An apply thread slower than the log would otherwise let the backlog, and every
    /// caller's wait, grow without bound (inline, the Raft thread's own apply throttles it).
    pub max_apply_backlog_entries: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: 0,
            initial_voters: Vec::new(),
            tick_interval_ms: 100,
            election_tick: 10,
            heartbeat_tick: 3,
            min_election_tick: 0,
            max_election_tick: 0,
            pre_vote: true,
            check_quorum: true,
            snapshot_threshold_entries: 10_000,
            log_retain_entries: 1_000,
            log_hold_bytes_max: 1 << 30,
            max_proposals_per_entry: 1_024,
            max_entry_bytes: 8 << 20,
            max_weight_per_entry: u64::MAX,
            max_queued_proposals: 16_384,
            max_pending_reads: 16_384,
            read_timeout_ticks: 30,
            snapshot_timeout_ticks: 50,
            inbound_queue_len: 8_192,
            max_message_bytes: 1 << 20,
            max_inbound_message_bytes: 1 << 30,
            max_append_bytes: 1 << 20,
            max_inflight_msgs: 16,
            max_apply_batch_bytes: 64 << 20,
            max_clock_step_ms: 2_000,
            promote_lag_entries: 100,
            log_sync_pipelined: true,
            apply_pipelined: false,
            max_apply_backlog_entries: 256,
        }
    }
}

impl Config {
    pub fn new(id: u64, initial_voters: Vec<u64>) -> Self {
        Config {
            id,
            initial_voters,
            ..Config::default()
        }
    }

    pub fn validate(&self) -> Result<(), ConsensusError> {
        let err = |m: &str| Err(ConsensusError::Config(m.to_string()));
        if self.id == 0 {
            return err("id must be non-zero");
        }
        if self.initial_voters.contains(&0) {
            return err("initial_voters must not contain 0");
        }
        if self.tick_interval_ms == 0 {
            return err("tick_interval_ms must be > 0");
        }
        if self.max_clock_step_ms == 0 {
            return err("max_clock_step_ms must be > 0");
        }
        if self.heartbeat_tick == 0 || self.election_tick <= self.heartbeat_tick {
            return err("need 0 < heartbeat_tick < election_tick");
        }
        if self.max_proposals_per_entry == 0
            || self.max_entry_bytes < 64
            || self.max_weight_per_entry == 0
        {
            return err(
                "max_proposals_per_entry and max_weight_per_entry must be > 0, max_entry_bytes >= 64",
            );
        }
        if self.max_message_bytes <= crate::chunk::CHUNK_HEADER_BYTES {
            return err("max_message_bytes too small");
        }
        if self.snapshot_threshold_entries == 0 {
            return err("snapshot_threshold_entries must be > 0");
        }
        if self.inbound_queue_len == 0
            || self.max_queued_proposals == 0
            || self.max_pending_reads == 0
            || self.max_apply_backlog_entries == 0
        {
            return err("queue bounds must be > 0");
        }
        self.raft_config(0)
            .validate()
            .map_err(|e| ConsensusError::Config(e.to_string()))
    }

    pub(crate) fn raft_config(&self, applied: u64) -> raft::Config {
        raft::Config {
            id: self.id,
            election_tick: self.election_tick,
            heartbeat_tick: self.heartbeat_tick,
            applied,
            max_size_per_msg: self.max_append_bytes,
            max_inflight_msgs: self.max_inflight_msgs,
            check_quorum: self.check_quorum,
            pre_vote: self.pre_vote,
            min_election_tick: self.min_election_tick,
            max_election_tick: self.max_election_tick,
            read_only_option: raft::ReadOnlyOption::Safe,
            max_committed_size_per_ready: self.max_apply_batch_bytes,
            // Bound memory of uncommitted entries on a leader that cannot reach a quorum.
            max_uncommitted_size: (self.max_entry_bytes as u64).saturating_mul(64),
            ..raft::Config::default()
        }
    }
}
