//! The wire protocol's fixed names: metadata headers, method paths, error reasons, and the
//! authenticated peer identity. A leaf module: the client, the signing scheme and the server all
//! read these from here, and none of them from each other.

pub const HEADER_KEY: &str = "x-suanpan-key";
pub const HEADER_TS: &str = "x-suanpan-ts";
pub const HEADER_NONCE: &str = "x-suanpan-nonce";
pub const HEADER_SIG: &str = "x-suanpan-sig";
/// The cluster a request is signed for (request) / the cluster a node belongs to (every response).
pub const HEADER_CLUSTER: &str = "x-suanpan-cluster";
pub const HEADER_PEER_FROM: &str = "x-suanpan-peer-from";
pub const HEADER_PEER_TS: &str = "x-suanpan-peer-ts";
pub const HEADER_PEER_SIG: &str = "x-suanpan-peer-sig";
/// Stable machine-readable error reason (see [`crate::ErrorReason`]).
pub const HEADER_ERROR: &str = "x-suanpan-error";

pub const NONCE_CHARS_MIN: usize = 8;
pub const NONCE_CHARS_MAX: usize = 64;

pub const LEDGER_PREFIX: &str = "/suanpan.v1.Ledger/";
pub const ADMIN_PREFIX: &str = "/suanpan.v1.Admin/";
pub const PEER_PREFIX: &str = "/suanpan.v1.Peer/";
pub const SUBMIT_PATH: &str = "/suanpan.v1.Ledger/Submit";
/// The binary (v2) form of a batch of transfers.
pub const SUBMIT_TRANSFERS_PATH: &str = "/suanpan.v1.Ledger/SubmitTransfers";

/// Whether a method changes the ledger (its outcome may be unknown after a failure, and
/// read-only roles may not call it).
pub fn is_submit_path(path: &str) -> bool {
    path == SUBMIT_PATH || path == SUBMIT_TRANSFERS_PATH
}

/// Metadata naming the leader on `not_leader` errors.
pub const HEADER_LEADER_ID: &str = "x-suanpan-leader-id";
pub const HEADER_LEADER_ADDR: &str = "x-suanpan-leader-addr";

/// Sender id of an authenticated peer stream (set by the auth layer, read by the peer service).
#[derive(Clone, Copy, Debug)]
pub struct PeerId(pub u64);

/// Stable machine-readable error reasons, sent in the `x-suanpan-error` metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorReason {
    /// This node is not the leader; nothing was applied. Retry at `x-suanpan-leader-addr`.
    NotLeader,
    /// No leader is known (election in progress); nothing was applied.
    NoLeader,
    /// The batch may or may not have been applied; retry with the same ids.
    OutcomeUnknown,
    /// No client key is registered yet (the bootstrap admin is being registered).
    Bootstrapping,
    /// A bounded queue is full; nothing was applied.
    Overloaded,
    /// A linearizable read could not be confirmed; retry.
    ReadNotConfirmed,
    /// The node's Raft runtime stopped.
    Stopped,
    /// The request was signed for another cluster (`x-suanpan-cluster`); nothing was applied.
    WrongCluster,
}

impl ErrorReason {
    pub const ALL: [ErrorReason; 8] = [
        ErrorReason::NotLeader,
        ErrorReason::NoLeader,
        ErrorReason::OutcomeUnknown,
        ErrorReason::Bootstrapping,
        ErrorReason::Overloaded,
        ErrorReason::ReadNotConfirmed,
        ErrorReason::Stopped,
        ErrorReason::WrongCluster,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            ErrorReason::NotLeader => "not_leader",
            ErrorReason::NoLeader => "no_leader",
            ErrorReason::OutcomeUnknown => "outcome_unknown",
            ErrorReason::Bootstrapping => "bootstrapping",
            ErrorReason::Overloaded => "overloaded",
            ErrorReason::ReadNotConfirmed => "read_not_confirmed",
            ErrorReason::Stopped => "stopped",
            ErrorReason::WrongCluster => "wrong_cluster",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorReason> {
        ErrorReason::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The reason carried by a status, if any.
    pub fn of(status: &tonic::Status) -> Option<ErrorReason> {
        status
            .metadata()
            .get(HEADER_ERROR)
            .and_then(|v| v.to_str().ok())
            .and_then(ErrorReason::parse)
    }
}
