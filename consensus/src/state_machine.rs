/// One committed raft entry as seen by the state machine.
///
/// Leader no-op entries and membership-change entries are delivered too, with zero proposals,
/// so that the state machine's applied index always equals raft's applied index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedEntry<'a> {
    pub index: u64,
    pub term: u64,
    /// Wall-clock time stamped by the leader that created the entry (0 for no-op/conf entries).
    /// Use this, never the local clock, so that every replica computes the same state.
    pub timestamp_ns: u64,
    /// Per-entry random seed chosen by the leader (0 for no-op/conf entries).
    pub seed: u64,
    pub proposals: Vec<Proposal<'a>>,
}

/// One client command inside a committed entry (entries group-commit many proposals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proposal<'a> {
    /// Node that accepted the proposal from a client.
    pub node_id: u64,
    /// Id unique per proposing node incarnation; used to route the result to the waiter.
    pub proposal_id: u64,
    pub payload: &'a [u8],
}

/// Node-local, fatal state machine failure (e.g. disk error). Deterministic business
/// rejections (insufficient funds, ...) are *results*, not errors.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StateMachineError(pub String);

impl StateMachineError {
    pub fn new(msg: impl Into<String>) -> Self {
        StateMachineError(msg.into())
    }
}

pub trait StateMachine: Send + 'static {
    /// Apply committed entries in log order, deterministically, and persist state + applied
    /// index atomically. Returns for every entry one result (opaque bytes) per proposal, in
    /// order. Err = node-local fatal error.
    fn apply(
        &mut self,
        entries: &[CommittedEntry<'_>],
    ) -> Result<Vec<Vec<Vec<u8>>>, StateMachineError>;
    fn applied_index(&self) -> u64;
    /// The state as of applied_index for a Raft snapshot: the serialized state itself, or a
    /// reference to it kept outside the log (a checkpoint, fetched by peers through
    /// [`crate::Transport::fetch_snapshot`]). The state must be durable at applied_index when
    /// this returns: the driver then compacts the log up to it.
    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError>;
    /// Replace all state with a snapshot taken at `index`. `data` is what [`StateMachine::snapshot`]
    /// returned on the node that took it (delivered after [`crate::Transport::fetch_snapshot`]
    /// made whatever it refers to local).
    fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), StateMachineError>;
    /// Whether the snapshot `data` (as stored in the log) can still be sent to peers. `snapshot`
    /// may return a reference to state kept outside the log (a checkpoint); a node that lost
    /// it takes a new snapshot at start. Inline data is always available.
    fn snapshot_available(&self, _data: &[u8]) -> bool {
        true
    }
    /// An applier over this state machine's state, for an apply thread of its own
    /// ([`crate::Config::apply_pipelined`]). `None` (the default): the Raft thread applies.
    fn applier(&self) -> Option<Box<dyn Applier>> {
        None
    }
}

/// Applies committed entries on the runtime's apply thread, to the same state as the
/// [`StateMachine`] that made it. The driver never calls that state machine while work it handed
/// to the applier is out, so the two never run at once.
pub trait Applier: Send + 'static {
    /// [`StateMachine::apply`].
    fn apply(
        &mut self,
        entries: &[CommittedEntry<'_>],
    ) -> Result<Vec<Vec<Vec<u8>>>, StateMachineError>;
}
