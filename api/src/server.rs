//! The gRPC services: `Ledger` (client API), `Admin` (operations) and `Peer` (Raft transport).

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
use crate::state_machine::{encode_proposal, SharedLedger, UNDECODABLE_RESULT};
use crate::wire;
use crate::ErrorReason;

pub use crate::protocol::{PeerId, HEADER_LEADER_ADDR, HEADER_LEADER_ID};

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
    /// Per-member timeout of the `ClusterStatus` fan-out.
    pub status_fanout_timeout_ms: u64,
}

impl Default for ApiLimits {
    fn default() -> Self {
        ApiLimits {
            max_batch_commands: wire::SUBMIT_COMMANDS_MAX,
            max_request_bytes: 8 << 20,
            propose_timeout_ms: 10_000,
            read_timeout_ms: 5_000,
            status_fanout_timeout_ms: 1_000,
        }
    }
}

/// Everything the services share.
pub struct NodeContext {
    pub id: u64,
    pub advertise: String,
    pub ledger: SharedLedger,
    pub raft: NodeHandle,
    pub events: Arc<EventLog>,
    pub peers: Arc<PeerBook>,
    /// The node's admin key: signs the `ClusterStatus` fan-out.
    pub admin_key: SigningKey,
    pub limits: ApiLimits,
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
        let rx = self
            .raft
            .propose_weighted(encode_proposal(commands), commands.len() as u64);
        let (index, bytes) = self.await_outcome(rx).await?;
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

    pub fn node_info(&self) -> Result<pb::NodeInfoResponse, Status> {
        let st = self.status()?;
        let (digest, last_ts, applied) = {
            let l = self.ledger.lock();
            (l.digest(), l.last_timestamp_ns(), l.applied_index())
        };
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
        })
    }

    fn currency_lookup(&self) -> impl Fn(Id) -> Option<Currency> + '_ {
        move |id| self.ledger.lock().account(id).map(|a| a.info.currency)
    }
}

// ---------------------------------------------------------------------------------------------
// Ledger service

pub struct LedgerService {
    ctx: Arc<NodeContext>,
}

impl LedgerService {
    pub fn new(ctx: Arc<NodeContext>) -> Self {
        LedgerService { ctx }
    }
}

fn check_ids(ids: &[String]) -> Result<Vec<Id>, Status> {
    if ids.is_empty() {
        return Err(Status::invalid_argument("at least one id is required"));
    }
    if ids.len() > wire::READ_IDS_MAX {
        return Err(Status::invalid_argument(format!(
            "at most {} ids per call",
            wire::READ_IDS_MAX
        )));
    }
    ids.iter()
        .enumerate()
        .map(|(i, s)| wire::parse_id(&format!("ids[{i}]"), s))
        .collect()
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl pb::ledger_server::Ledger for LedgerService {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let req = request.into_inner();
        let commands = wire::submit_from_pb(
            &req,
            self.ctx.limits.max_batch_commands,
            &self.ctx.currency_lookup(),
        )?;
        let (index, results) = self.ctx.propose(&commands).await?;
        Ok(Response::new(pb::SubmitResponse {
            results: commands
                .iter()
                .zip(&results)
                .map(|(c, r)| wire::result_to_pb(c.id(), r))
                .collect(),
            applied_index: index,
        }))
    }

    async fn get_accounts(
        &self,
        request: Request<pb::GetAccountsRequest>,
    ) -> Result<Response<pb::GetAccountsResponse>, Status> {
        let req = request.into_inner();
        let ids = check_ids(&req.ids)?;
        self.ctx.read_barrier(req.allow_stale).await?;
        let l = self.ctx.ledger.lock();
        let mut resp = pb::GetAccountsResponse {
            applied_index: l.applied_index(),
            ..Default::default()
        };
        for id in ids {
            match l.account(id) {
                Some(a) => resp.accounts.push(wire::account_to_pb(a)),
                None => resp.not_found.push(id.to_string()),
            }
        }
        Ok(Response::new(resp))
    }

    async fn get_transfers(
        &self,
        request: Request<pb::GetTransfersRequest>,
    ) -> Result<Response<pb::GetTransfersResponse>, Status> {
        let req = request.into_inner();
        let ids = check_ids(&req.ids)?;
        self.ctx.read_barrier(req.allow_stale).await?;
        let l = self.ctx.ledger.lock();
        let currency_of = |id| l.account(id).map(|a| a.info.currency);
        let mut resp = pb::GetTransfersResponse {
            applied_index: l.applied_index(),
            ..Default::default()
        };
        for id in ids {
            match l.transfer(id).map_err(internal)? {
                Some(t) => resp.transfers.push(wire::transfer_to_pb(&t, &currency_of)),
                None => resp.not_found.push(id.to_string()),
            }
        }
        Ok(Response::new(resp))
    }

    async fn list_account_history(
        &self,
        request: Request<pb::ListAccountHistoryRequest>,
    ) -> Result<Response<pb::ListAccountHistoryResponse>, Status> {
        let req = request.into_inner();
        let account = wire::parse_id("account_id", &req.account_id)?;
        let limit = match req.limit {
            0 => wire::HISTORY_PAGE_DEFAULT,
            n if n > wire::HISTORY_PAGE_MAX => {
                return Err(Status::invalid_argument(format!(
                    "limit must be at most {}",
                    wire::HISTORY_PAGE_MAX
                )))
            }
            n => n,
        };
        self.ctx.read_barrier(req.allow_stale).await?;
        let l = self.ctx.ledger.lock();
        let a = l
            .account(account)
            .ok_or_else(|| Status::not_found(format!("account {account} not found")))?;
        let currency = a.info.currency;
        let last_seq = a.state.posting_seq;
        let postings = l
            .history(account, req.after_seq, limit as usize)
            .map_err(internal)?;
        let next = postings.last().map_or(req.after_seq, |p| p.seq);
        Ok(Response::new(pb::ListAccountHistoryResponse {
            currency: currency.code().to_string(),
            postings: postings
                .iter()
                .map(|p| wire::posting_to_pb(currency, p))
                .collect(),
            next_after_seq: next,
            has_more: next < last_seq,
            applied_index: l.applied_index(),
        }))
    }

    async fn get_balance_at(
        &self,
        request: Request<pb::GetBalanceAtRequest>,
    ) -> Result<Response<pb::GetBalanceAtResponse>, Status> {
        let req = request.into_inner();
        let account = wire::parse_id("account_id", &req.account_id)?;
        self.ctx.read_barrier(req.allow_stale).await?;
        let l = self.ctx.ledger.lock();
        let a = l
            .account(account)
            .ok_or_else(|| Status::not_found(format!("account {account} not found")))?;
        let currency = a.info.currency;
        let b = l
            .balance_at(account, req.timestamp_ns)
            .map_err(internal)?
            .ok_or_else(|| Status::not_found(format!("account {account} not found")))?;
        Ok(Response::new(pb::GetBalanceAtResponse {
            currency: currency.code().to_string(),
            balances: Some(wire::balances_to_pb(currency, &b)),
            balance: wire::net_balance(currency, &b),
            applied_index: l.applied_index(),
        }))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let rx = self.ctx.events.watch(
            request.into_inner().from_index,
            self.ctx.closing.subscribe(),
        )?;
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Admin service

pub struct AdminService {
    ctx: Arc<NodeContext>,
}

impl AdminService {
    pub fn new(ctx: Arc<NodeContext>) -> Self {
        AdminService { ctx }
    }
}

fn command_id(s: &str) -> Result<Id, Status> {
    if s.is_empty() {
        Ok(Id(uuid::Uuid::new_v4().as_u128()))
    } else {
        wire::parse_id("command_id", s)
    }
}

/// Asks one member for its `NodeInfo`, signed with this node's admin key.
async fn fetch_node_info(
    addr: &str,
    key: &SigningKey,
    timeout: Duration,
) -> Result<pb::NodeInfoResponse, String> {
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(timeout)
        .timeout(timeout);
    let channel = tokio::time::timeout(timeout, endpoint.connect())
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    let msg = pb::NodeInfoRequest {};
    let bytes = prost::Message::encode_to_vec(&msg);
    let mut req = Request::new(msg);
    SignedHeaders::sign_now(key, "/suanpan.v1.Admin/NodeInfo", &bytes).apply(req.metadata_mut());
    let mut client = pb::admin_client::AdminClient::new(channel);
    match tokio::time::timeout(timeout, client.node_info(req)).await {
        Ok(Ok(r)) => Ok(r.into_inner()),
        Ok(Err(s)) => Err(format!("{:?}: {}", s.code(), s.message())),
        Err(_) => Err("timed out".into()),
    }
}

#[tonic::async_trait]
impl pb::admin_server::Admin for AdminService {
    async fn cluster_status(
        &self,
        _request: Request<pb::ClusterStatusRequest>,
    ) -> Result<Response<pb::ClusterStatusResponse>, Status> {
        let me = self.ctx.node_info()?;
        let book = self.ctx.peers.all();
        let mut ids: std::collections::BTreeSet<u64> = me
            .voters
            .iter()
            .chain(me.learners.iter())
            .copied()
            .collect();
        ids.insert(self.ctx.id);
        let timeout = Duration::from_millis(self.ctx.limits.status_fanout_timeout_ms);
        let lookups = ids.iter().map(|&id| {
            let addr = book.get(&id).cloned();
            let me = me.clone();
            let key = self.ctx.admin_key.clone();
            async move {
                if id == self.ctx.id {
                    return pb::MemberStatus {
                        id,
                        address: me.address.clone(),
                        reachable: true,
                        error: String::new(),
                        info: Some(me),
                    };
                }
                match addr {
                    None => pb::MemberStatus {
                        id,
                        address: String::new(),
                        reachable: false,
                        error: "address unknown".into(),
                        info: None,
                    },
                    Some(a) => match fetch_node_info(&a, &key, timeout).await {
                        Ok(info) => pb::MemberStatus {
                            id,
                            address: a,
                            reachable: true,
                            error: String::new(),
                            info: Some(info),
                        },
                        Err(e) => pb::MemberStatus {
                            id,
                            address: a,
                            reachable: false,
                            error: e,
                            info: None,
                        },
                    },
                }
            }
        });
        let members = futures::future::join_all(lookups).await;
        Ok(Response::new(pb::ClusterStatusResponse {
            leader_id: me.leader_id,
            members,
        }))
    }

    async fn node_info(
        &self,
        _request: Request<pb::NodeInfoRequest>,
    ) -> Result<Response<pb::NodeInfoResponse>, Status> {
        Ok(Response::new(self.ctx.node_info()?))
    }

    async fn add_node(
        &self,
        request: Request<pb::AddNodeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let req = request.into_inner();
        if req.id == 0 {
            return Err(Status::invalid_argument("node id must be non-zero"));
        }
        if req.address.is_empty()
            || req.address.len() > 256
            || req.address.parse::<http::uri::Authority>().is_err()
        {
            return Err(Status::invalid_argument("address must be host:port"));
        }
        self.ctx.require_leader()?;
        self.ctx.peers.set(req.id, req.address);
        let (index, _) = self
            .ctx
            .await_outcome(self.ctx.raft.add_node(req.id))
            .await?;
        Ok(Response::new(pb::MembershipResponse {
            applied_index: index,
        }))
    }

    async fn remove_node(
        &self,
        request: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::MembershipResponse>, Status> {
        let req = request.into_inner();
        if req.id == 0 {
            return Err(Status::invalid_argument("node id must be non-zero"));
        }
        self.ctx.require_leader()?;
        let (index, _) = self
            .ctx
            .await_outcome(self.ctx.raft.remove_node(req.id))
            .await?;
        Ok(Response::new(pb::MembershipResponse {
            applied_index: index,
        }))
    }

    async fn transfer_leader(
        &self,
        request: Request<pb::TransferLeaderRequest>,
    ) -> Result<Response<pb::TransferLeaderResponse>, Status> {
        let req = request.into_inner();
        let st = self.ctx.status()?;
        if !st.voters.contains(&req.id) {
            return Err(Status::invalid_argument(format!(
                "node {} is not a voter",
                req.id
            )));
        }
        self.ctx.require_leader()?;
        self.ctx.raft.transfer_leader(req.id).map_err(|e| {
            error(
                tonic::Code::Unavailable,
                ErrorReason::Overloaded,
                e.to_string(),
            )
        })?;
        Ok(Response::new(pb::TransferLeaderResponse {}))
    }

    async fn register_client(
        &self,
        request: Request<pb::RegisterClientRequest>,
    ) -> Result<Response<pb::ClientCommandResponse>, Status> {
        let req = request.into_inner();
        let cmd = Command::RegisterClient(ledger::RegisterClient {
            id: command_id(&req.command_id)?,
            public_key: wire::parse_public_key("public_key", &req.public_key)?,
            role: wire::parse_enum::<ledger::ClientRole>("role", "client role", req.role)?,
            name: req.name,
        });
        let (index, results) = self.ctx.propose(std::slice::from_ref(&cmd)).await?;
        Ok(Response::new(pb::ClientCommandResponse {
            result: Some(wire::result_to_pb(cmd.id(), &results[0])),
            applied_index: index,
        }))
    }

    async fn revoke_client(
        &self,
        request: Request<pb::RevokeClientRequest>,
    ) -> Result<Response<pb::ClientCommandResponse>, Status> {
        let req = request.into_inner();
        let cmd = Command::RevokeClient(ledger::RevokeClient {
            id: command_id(&req.command_id)?,
            public_key: wire::parse_public_key("public_key", &req.public_key)?,
        });
        let (index, results) = self.ctx.propose(std::slice::from_ref(&cmd)).await?;
        Ok(Response::new(pb::ClientCommandResponse {
            result: Some(wire::result_to_pb(cmd.id(), &results[0])),
            applied_index: index,
        }))
    }

    async fn list_clients(
        &self,
        request: Request<pb::ListClientsRequest>,
    ) -> Result<Response<pb::ListClientsResponse>, Status> {
        self.ctx
            .read_barrier(request.into_inner().allow_stale)
            .await?;
        let l = self.ctx.ledger.lock();
        Ok(Response::new(pb::ListClientsResponse {
            clients: l
                .clients()
                .into_iter()
                .map(|c| pb::ClientInfo {
                    public_key: c.public_key.to_vec(),
                    role: wire::enum_to_pb(c.role),
                    name: c.name,
                    revoked: c.revoked,
                    registered_ns: c.registered_ns,
                })
                .collect(),
            applied_index: l.applied_index(),
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// Peer service

pub struct PeerService {
    ctx: Arc<NodeContext>,
}

impl PeerService {
    pub fn new(ctx: Arc<NodeContext>) -> Self {
        PeerService { ctx }
    }
}

#[tonic::async_trait]
impl pb::peer_server::Peer for PeerService {
    async fn stream(
        &self,
        request: Request<Streaming<pb::PeerFrame>>,
    ) -> Result<Response<pb::PeerAck>, Status> {
        let from = request.extensions().get::<PeerId>().map(|p| p.0);
        let mut frames = request.into_inner();
        let mut dropped = 0u64;
        let mut closing = self.ctx.closing.subscribe();
        loop {
            let frame = tokio::select! {
                f = frames.next() => match f {
                    Some(f) => f?,
                    None => break,
                },
                _ = crate::events::closed(&mut closing) => break,
            };
            if let (Some(from), false) = (from, frame.from_address.is_empty()) {
                if frame.from_address.len() <= 256 && from != self.ctx.id {
                    self.ctx.peers.set(from, frame.from_address);
                }
            }
            if self.ctx.raft.step(frame.frame).is_err() {
                dropped += 1; // overloaded or stopped: Raft retransmits
            }
        }
        if dropped > 0 {
            tracing::debug!(
                node = self.ctx.id,
                ?from,
                dropped,
                "dropped inbound raft frames"
            );
        }
        Ok(Response::new(pb::PeerAck {}))
    }
}
