//! The gRPC services: `Ledger` (client API, [`ledger_service`]), `Admin` (operations, [`admin_service`]) and
//! `Peer` (Raft transport, [`peer_service`]), over one [`NodeContext`]: the Raft handle, the shared ledger,
//! the peer address book and the API limits.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use consensus::{NodeHandle, ProposeOutcome, ReadError, RejectReason, Role};
use ed25519_dalek::SigningKey;
use futures::{Stream, StreamExt};
use ledger::{Command, CommandResult, Currency, Id};
use parking_lot::RwLock;
use tonic::{Request, Response, Status, Streaming};

use crate::auth::{status_with_reason, SignedHeaders};
use crate::events::EventLog;
use crate::pb;
use crate::state_machine::{encode_proposal, UNDECODABLE_RESULT};
use crate::view::LedgerView;
use crate::wire;
use crate::ErrorReason;

pub use crate::protocol::{PeerId, HEADER_LEADER_ADDR, HEADER_LEADER_ID};

mod admin_service;
pub(crate) mod connections;
pub(crate) mod digest_watch;
mod ledger_service;
mod peer_service;

pub(crate) use self::admin_service::fetch_node_info;
pub use self::admin_service::AdminService;
pub use self::ledger_service::LedgerService;
pub use self::peer_service::PeerService;

/// Known addresses of cluster members (from the configuration, `AddNode`, and the advertised
/// address on inbound peer streams).
#[derive(Default)]
pub struct PeerBook {
    addrs: RwLock<BTreeMap<u64, String>>,
}

/// Most members remembered (bounds what inbound peer streams can make us store).
const PEER_BOOK_MAX: usize = 1_024;

impl PeerBook {
    pub fn new(initial: impl IntoIterator<Item = (u64, String)>) -> PeerBook {
        PeerBook {
            addrs: RwLock::new(initial.into_iter().collect()),
        }
    }
    pub fn get(&self, id: u64) -> Option<String> {
        self.addrs.read().get(&id).cloned()
    }
    pub fn set(&self, id: u64, addr: String) {
        let mut m = self.addrs.write();
        if m.len() < PEER_BOOK_MAX || m.contains_key(&id) {
            m.insert(id, addr);
        }
    }
    pub fn all(&self) -> BTreeMap<u64, String> {
        self.addrs.read().clone()
    }
}

/// Limits and timeouts of the API layer.
#[derive(Clone, Debug)]
pub struct ApiLimits {
    /// Most commands in one `Submit`.
    pub max_batch_commands: usize,
    /// Largest request message, in bytes.
    pub max_request_bytes: usize,
    /// How long `Submit` waits for the commit before answering `outcome_unknown`.
    pub propose_timeout_ms: u64,
    /// How long a linearizable read waits for its read index.
    pub read_timeout_ms: u64,
    /// Per-member timeout of the `ClusterStatus` fan-out (and of the digest comparison).
    pub status_fanout_timeout_ms: u64,
    /// How often the node compares its digest with every peer's (0: never).
    pub digest_check_interval_ms: u64,
    /// Most queries running at once on the blocking pool (more wait, up to `read_timeout_ms`).
    pub reads_concurrent_max: usize,
    /// Most client connections at once (more are closed on accept).
    pub connections_max: usize,
    /// Most concurrent HTTP/2 streams (calls) per connection.
    pub streams_per_connection_max: u32,
    /// Longest a unary call may take on the server (streams: until their response starts).
    pub request_timeout_ms: u64,
    /// HTTP/2 keepalive ping interval; a connection that does not answer within the same
    /// interval is closed (dead or stalled peers do not hold connections).
    pub keepalive_interval_ms: u64,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_batch_commands: wire::SUBMIT_COMMANDS_MAX,
            max_request_bytes: 8 << 20,
            propose_timeout_ms: 10_000,
            read_timeout_ms: 5_000,
            status_fanout_timeout_ms: 1_000,
            digest_check_interval_ms: 10_000,
            reads_concurrent_max: 32,
            connections_max: 4_096,
            streams_per_connection_max: 256,
            request_timeout_ms: 30_000,
            keepalive_interval_ms: 20_000,
        }
    }
}

/// Everything the services share.
pub struct NodeContext {
    pub id: u64,
    pub advertise: String,
    /// The read side: queries, authentication and validation never touch the applying ledger.
    pub view: Arc<LedgerView>,
    /// Bounds the queries running on the blocking pool.
    pub read_permits: Arc<tokio::sync::Semaphore>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The applying ledger's store (shares its write-behind buffer) and the data directory:
    /// backups and the flush at shutdown.
    pub store: ledger::RocksStore,
    /// The Raft log's own database (`None`: it lives in the ledger's): backups copy it too.
    pub log_db: Option<Arc<consensus::RocksDb>>,
    pub data_dir: std::path::PathBuf,
    pub raft: NodeHandle,
    pub events: Arc<EventLog>,
    pub peers: Arc<PeerBook>,
    /// The node's admin key: signs the `ClusterStatus` fan-out.
    pub admin_key: SigningKey,
    /// Signs audit checkpoints (`GetCheckpoint`).
    pub audit_key: SigningKey,
    /// The node's TLS material (`None`: plaintext, insecure).
    pub tls: Option<Arc<crate::tls::NodeTls>>,
    /// Peers whose digest differed from ours at the same applied index (peer → index).
    pub divergences: parking_lot::Mutex<BTreeMap<u64, u64>>,
    pub limits: ApiLimits,
    /// The snapshot files peers fetch (`Peer.FetchSnapshot`).
    pub snapshots: Arc<crate::snapshots::SnapshotFiles>,
    /// Becomes true when the node shuts down: long-lived streams end so the server can stop.
    pub closing: tokio::sync::watch::Sender<bool>,
}

pub(crate) fn error(code: tonic::Code, reason: ErrorReason, msg: impl Into<String>) -> Status {
    status_with_reason(code, msg, reason.as_str())
}

impl NodeContext {
    fn not_leader(&self, leader_id: Option<u64>) -> Status {
        match leader_id.filter(|l| *l != 0 && *l != self.id) {
            None => error(
                tonic::Code::Unavailable,
                ErrorReason::NoLeader,
                "no leader known yet; retry shortly",
            ),
            Some(l) => {
                let mut s = error(
                    tonic::Code::Unavailable,
                    ErrorReason::NotLeader,
                    format!("node {} is not the leader; node {l} is", self.id),
                );
                if let Ok(v) = l.to_string().parse() {
                    s.metadata_mut().insert(HEADER_LEADER_ID, v);
                }
                if let Some(addr) = self.peers.get(l) {
                    if let Ok(v) = addr.parse() {
                        s.metadata_mut().insert(HEADER_LEADER_ADDR, v);
                    }
                }
                s
            }
        }
    }

    fn status(&self) -> Result<consensus::NodeStatus, Status> {
        self.raft.status().map_err(|e| {
            error(
                tonic::Code::Unavailable,
                ErrorReason::Stopped,
                format!("raft node stopped: {e}"),
            )
        })
    }

    fn require_leader(&self) -> Result<(), Status> {
        let st = self.status()?;
        if st.role != Role::Leader {
            return Err(self.not_leader(st.leader_id));
        }
        Ok(())
    }

    fn map_outcome(&self, outcome: ProposeOutcome) -> Result<(u64, Vec<u8>), Status> {
        match outcome {
            ProposeOutcome::Applied { index, result } => Ok((index, result)),
            ProposeOutcome::NotLeader { leader_id } => Err(self.not_leader(leader_id)),
            ProposeOutcome::Unknown => Err(error(
                tonic::Code::Unavailable,
                ErrorReason::OutcomeUnknown,
                "outcome unknown (leadership changed); retry with the same ids",
            )),
            ProposeOutcome::Rejected { reason } => Err(match reason {
                RejectReason::TooLarge => {
                    Status::invalid_argument("batch too large for one log entry")
                }
                RejectReason::Overloaded => error(
                    tonic::Code::Unavailable,
                    ErrorReason::Overloaded,
                    "node overloaded; nothing applied, retry later",
                ),
                RejectReason::ConfChangeInProgress => Status::failed_precondition(
                    "another membership change is in progress; retry when it completes",
                ),
                RejectReason::Stopped => error(
                    tonic::Code::Unavailable,
                    ErrorReason::Stopped,
                    "raft node stopped",
                ),
            }),
        }
    }

    async fn await_outcome(
        &self,
        rx: tokio::sync::oneshot::Receiver<ProposeOutcome>,
    ) -> Result<(u64, Vec<u8>), Status> {
        let unknown = || {
            error(
                tonic::Code::Unavailable,
                ErrorReason::OutcomeUnknown,
                "outcome unknown; retry with the same ids",
            )
        };
        match tokio::time::timeout(Duration::from_millis(self.limits.propose_timeout_ms), rx).await
        {
            Ok(Ok(outcome)) => self.map_outcome(outcome),
            Ok(Err(_)) | Err(_) => Err(unknown()),
        }
    }

    /// Proposes commands as one log entry and returns their results and the entry index.
    pub async fn propose(&self, commands: &[Command]) -> Result<(u64, Vec<CommandResult>), Status> {
        self.require_leader()?;
        let started = std::time::Instant::now();
        let rx = self
            .raft
            .propose_weighted(encode_proposal(commands), commands.len() as u64);
        let (index, bytes) = self.await_outcome(rx).await?;
        self.metrics.committed(started.elapsed().as_secs_f64());
        if bytes == UNDECODABLE_RESULT {
            return Err(Status::internal(
                "the state machine could not decode the proposal",
            ));
        }
        let results = ledger::codec::decode_results(&bytes)
            .map_err(|e| Status::internal(format!("undecodable results: {e}")))?;
        if results.len() != commands.len() {
            return Err(Status::internal(
                "result count does not match command count",
            ));
        }
        Ok((index, results))
    }

    /// Linearizable read barrier unless `allow_stale`.
    pub async fn read_barrier(&self, allow_stale: bool) -> Result<(), Status> {
        if allow_stale {
            return Ok(());
        }
        let rx = self.raft.read_index();
        let r = tokio::time::timeout(Duration::from_millis(self.limits.read_timeout_ms), rx).await;
        let unconfirmed = |m: &str| {
            error(
                tonic::Code::Unavailable,
                ErrorReason::ReadNotConfirmed,
                format!("read not confirmed: {m}; retry"),
            )
        };
        match r {
            Ok(Ok(Ok(_index))) => Ok(()),
            Ok(Ok(Err(ReadError::NotLeader { leader_id }))) => Err(self.not_leader(leader_id)),
            Ok(Ok(Err(ReadError::Overloaded))) => Err(error(
                tonic::Code::Unavailable,
                ErrorReason::Overloaded,
                "too many pending reads",
            )),
            Ok(Ok(Err(ReadError::Stopped))) => Err(error(
                tonic::Code::Unavailable,
                ErrorReason::Stopped,
                "raft node stopped",
            )),
            Ok(Ok(Err(e))) => Err(unconfirmed(&e.to_string())),
            Ok(Err(_)) => Err(unconfirmed("dropped")),
            Err(_) => Err(unconfirmed("timed out")),
        }
    }

    /// Runs a query against the read view on the blocking pool (never on an async worker, never
    /// under the applying ledger's lock). At most `reads_concurrent_max` run at once; the rest
    /// wait up to `read_timeout_ms`, then get `UNAVAILABLE overloaded`.
    pub async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ledger::Ledger<ledger::RocksStore>) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let wait = Duration::from_millis(self.limits.read_timeout_ms);
        let permit =
            match tokio::time::timeout(wait, self.read_permits.clone().acquire_owned()).await {
                Ok(Ok(p)) => p,
                _ => {
                    return Err(error(
                        tonic::Code::Unavailable,
                        ErrorReason::Overloaded,
                        "too many queries in progress; retry",
                    ))
                }
            };
        let view = self.view.clone();
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let l = view
                .read()
                .map_err(|e| Status::internal(format!("read view: {e}")))?;
            f(&l)
        })
        .await
        .map_err(|e| Status::internal(format!("query task: {e}")))?
    }

    /// The metrics text exposition (`GET /metrics`).
    pub fn render_metrics(&self) -> String {
        let st = self.raft.status().ok();
        let divergences = self.divergences.lock().len();
        self.metrics
            .render(st.as_ref(), divergences, self.view.reloads())
    }

    pub async fn node_info(&self) -> Result<pb::NodeInfoResponse, Status> {
        let st = self.status()?;
        let (digest, last_ts, applied) = self
            .read(|l| Ok((l.digest(), l.last_timestamp_ns(), l.applied_index())))
            .await?;
        Ok(pb::NodeInfoResponse {
            id: self.id,
            address: self.advertise.clone(),
            role: match st.role {
                Role::Follower => pb::NodeRole::Follower,
                Role::PreCandidate => pb::NodeRole::PreCandidate,
                Role::Candidate => pb::NodeRole::Candidate,
                Role::Leader => pb::NodeRole::Leader,
            } as i32,
            term: st.term,
            leader_id: st.leader_id.unwrap_or(0),
            commit_index: st.commit_index,
            applied_index: applied,
            digest: hex::encode(digest),
            voters: st.voters,
            learners: st.learners,
            last_timestamp_ns: last_ts,
            clock_clamps: st.clock_clamps,
            clock_ahead_ns: st.clock_ahead_ns,
            progress: st
                .progress
                .iter()
                .map(|&(id, matched)| pb::PeerProgress { id, matched })
                .collect(),
            divergences: self
                .divergences
                .lock()
                .iter()
                .map(|(&peer, &index)| pb::Divergence { peer, index })
                .collect(),
        })
    }

    /// Voters and learners, this node included (a node not yet added still answers for itself).
    fn member_ids(&self, voters: &[u64], learners: &[u64]) -> std::collections::BTreeSet<u64> {
        let mut ids: std::collections::BTreeSet<u64> =
            voters.iter().chain(learners).copied().collect();
        ids.insert(self.id);
        ids
    }

    fn currency_lookup(&self) -> impl Fn(Id) -> Option<Currency> + '_ {
        self.view.currencies()
    }
}

// ---------------------------------------------------------------------------------------------
// Ledger service
