use crate::state_machine::StateMachineError;

/// Fatal errors of the consensus layer. Any of these stops the node: the caller must not keep
/// driving a replica after an error, because its durable state may no longer match what it
/// has acknowledged to peers or clients.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    #[error("raft log storage error: {0}")]
    Storage(String),
    #[error("state machine error: {0}")]
    StateMachine(#[from] StateMachineError),
    #[error("raft error: {0}")]
    Raft(#[from] raft::Error),
    #[error("corrupt or unsupported log entry at index {index}: {reason}")]
    Codec { index: u64, reason: String },
    #[error("invariant violated: {0}")]
    Invariant(String),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("node stopped: {0}")]
    Stopped(String),
}

impl From<rocksdb::Error> for ConsensusError {
    fn from(e: rocksdb::Error) -> Self {
        ConsensusError::Storage(e.to_string())
    }
}
