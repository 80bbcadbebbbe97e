//! The Rust client library.
//!
//! * Connects to any endpoint; follows `not_leader` redirects (`x-suanpan-leader-addr`) and
//!   remembers the leader.
//! * Retries `UNAVAILABLE` (not leader, no leader, outcome unknown, overloaded, bootstrapping,
//!   transport errors) and timeouts with bounded exponential backoff, resending the SAME request
//!   (same command ids) so retries are idempotent; every attempt is freshly signed.
//! * Signs every request with an `ed25519_dalek::SigningKey` (see [`crate::auth`]).
//! * [`Client::submit`] coalesces concurrent calls issued within `batch_linger_us` into one
//!   `Submit` RPC (up to `max_batch_commands`), like TigerBeetle's clients; each caller gets its
//!   own results. If a coalesced batch is rejected as invalid, each caller's part is retried alone,
//!   so one caller's bad input never fails another's commands.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::{SigningKey, VerifyingKey};
use ledger::{ClientRole, Id, ResultCode};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tonic::transport::Channel;
use tonic::{Request, Status};

use crate::auth::SignedHeaders;
pub use crate::auth::{generate_key_file, load_key_file, save_key_file, KeyFileError};
use crate::pb;
use crate::server::HEADER_LEADER_ADDR;
use crate::ErrorReason;

#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `host:port` or `http://host:port` of one or more nodes.
    pub endpoints: Vec<String>,
    /// Per-attempt deadline.
    pub request_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
    /// How long the batcher waits for more concurrent `submit` calls, in microseconds.
    pub batch_linger_us: u64,
    /// Most commands per coalesced `Submit` (the server's limit is 8 192).
    pub max_batch_commands: usize,
    /// Most `submit` calls waiting for the batcher (back-pressure beyond).
    pub max_queued_submits: usize,
    /// Most coalesced batches in flight at once.
    pub max_in_flight_batches: usize,
    /// Serve reads from any replica without a leadership check.
    pub stale_reads: bool,
}

impl ClientConfig {
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> ClientConfig {
        ClientConfig {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            request_timeout_ms: 10_000,
            connect_timeout_ms: 2_000,
            max_attempts: 10,
            backoff_min_ms: 20,
            backoff_max_ms: 1_000,
            batch_linger_us: 1_000,
            max_batch_commands: crate::wire::SUBMIT_COMMANDS_MAX,
            max_queued_submits: 16_384,
            max_in_flight_batches: 64,
            stale_reads: false,
        }
    }
}

#[derive(Clone, Debug, thiserror::Error)]
pub enum ClientError {
    /// Rejected before sending (empty or oversize batch, no endpoint).
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A non-retryable status from the server (INVALID_ARGUMENT, UNAUTHENTICATED, ...).
    #[error("server: {}: {}", .0.code(), .0.message())]
    Status(Status),
    /// Retries exhausted after at least one attempt whose outcome is unknown: the commands may
    /// or may not be applied. Retry later with the same ids.
    #[error("outcome unknown after {attempts} attempts: {}", .last.message())]
    OutcomeUnknown { attempts: u32, last: Status },
    /// Retries exhausted; nothing was applied.
    #[error("unavailable after {attempts} attempts: {}", .last.message())]
    Unavailable { attempts: u32, last: Status },
    /// The client was shut down.
    #[error("client closed")]
    Closed,
}

impl ClientError {
    /// The gRPC status behind the error, if any.
    pub fn status(&self) -> Option<&Status> {
        match self {
            ClientError::Status(s)
            | ClientError::OutcomeUnknown { last: s, .. }
            | ClientError::Unavailable { last: s, .. } => Some(s),
            _ => None,
        }
    }
    pub fn code(&self) -> Option<tonic::Code> {
        self.status().map(|s| s.code())
    }
}

/// The typed outcome of one command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandOutcome {
    pub id: String,
    /// `None` for a code this library does not know (a newer server); see `code_raw`/`name`.
    pub code: Option<ResultCode>,
    pub code_raw: i32,
    pub name: String,
    pub timestamp_ns: u64,
    /// Log index of the entry that carried the batch.
    pub applied_index: u64,
}

impl CommandOutcome {
    pub fn is_ok(&self) -> bool {
        self.code_raw == 0
    }
    fn from_pb(r: pb::CommandResult, applied_index: u64) -> Self {
        CommandOutcome {
            id: r.id,
            code: crate::wire::result_code_from_wire(r.code),
            code_raw: r.code,
            name: r.name,
            timestamp_ns: r.timestamp_ns,
            applied_index,
        }
    }
}

/// A new random (v4) id.
pub fn new_id() -> Id {
    Id(uuid::Uuid::new_v4().as_u128())
}

/// Builders for commands.
pub mod cmd {
    use super::*;

    fn wrap(kind: pb::command::Kind) -> pb::Command {
        pb::Command { kind: Some(kind) }
    }

    pub fn create_account(id: Id, currency: &str, kind: pb::AccountKind) -> pb::Command {
        create_account_with(pb::CreateAccount {
            id: id.to_string(),
            currency: currency.into(),
            kind: kind as i32,
            ..Default::default()
        })
    }

    pub fn create_account_with(a: pb::CreateAccount) -> pb::Command {
        wrap(pb::command::Kind::CreateAccount(a))
    }

    pub fn leg(debit: Id, credit: Id, amount: &str, currency: &str) -> pb::Leg {
        pb::Leg {
            debit_account_id: debit.to_string(),
            credit_account_id: credit.to_string(),
            amount: amount.into(),
            currency: currency.into(),
        }
    }

    pub fn transfer(id: Id, debit: Id, credit: Id, amount: &str, currency: &str) -> pb::Command {
        transfer_legs(id, vec![leg(debit, credit, amount, currency)], None)
    }

    pub fn pending_transfer(
        id: Id,
        debit: Id,
        credit: Id,
        amount: &str,
        currency: &str,
        timeout_seconds: u64,
    ) -> pb::Command {
        transfer_legs(
            id,
            vec![leg(debit, credit, amount, currency)],
            Some(timeout_seconds),
        )
    }

    pub fn transfer_legs(
        id: Id,
        legs: Vec<pb::Leg>,
        pending_timeout_seconds: Option<u64>,
    ) -> pb::Command {
        wrap(pb::command::Kind::CreateTransfer(pb::CreateTransfer {
            id: id.to_string(),
            legs,
            pending_timeout_seconds,
            reference: String::new(),
        }))
    }

    /// `amount`: `Some((amount, currency))` for a partial post.
    pub fn post_pending(id: Id, pending_id: Id, amount: Option<(&str, &str)>) -> pb::Command {
        wrap(pb::command::Kind::PostPending(pb::PostPending {
            id: id.to_string(),
            pending_id: pending_id.to_string(),
            amount: amount.map(|(a, _)| a.to_string()),
            currency: amount.map(|(_, c)| c.to_string()).unwrap_or_default(),
        }))
    }

    pub fn void_pending(id: Id, pending_id: Id) -> pb::Command {
        wrap(pb::command::Kind::VoidPending(pb::VoidPending {
            id: id.to_string(),
            pending_id: pending_id.to_string(),
        }))
    }

    pub fn set_account_status(id: Id, account: Id, status: pb::AccountStatus) -> pb::Command {
        wrap(pb::command::Kind::SetAccountStatus(pb::SetAccountStatus {
            id: id.to_string(),
            account_id: account.to_string(),
            status: status as i32,
        }))
    }
}

fn normalize(endpoint: &str) -> String {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.to_string()
    } else {
        format!("http://{endpoint}")
    }
}

struct Core {
    cfg: ClientConfig,
    key: SigningKey,
    endpoints: Vec<String>,
    channels: Mutex<HashMap<String, Channel>>,
    /// Endpoint believed to be the leader (or the last that answered).
    preferred: Mutex<String>,
}

const PATH_SUBMIT: &str = "/suanpan.v1.Ledger/Submit";

impl Core {
    fn channel(&self, endpoint: &str) -> Result<Channel, ClientError> {
        if let Some(c) = self.channels.lock().get(endpoint) {
            return Ok(c.clone());
        }
        let ep = tonic::transport::Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| ClientError::Invalid(format!("bad endpoint {endpoint}: {e}")))?
            .connect_timeout(Duration::from_millis(self.cfg.connect_timeout_ms))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        let ch = ep.connect_lazy();
        let mut m = self.channels.lock();
        if m.len() >= 64 {
            m.clear(); // bounded: a redirect storm cannot grow this without limit
        }
        m.insert(endpoint.to_string(), ch.clone());
        Ok(ch)
    }

    fn next_endpoint(&self, current: &str) -> String {
        let i = self
            .endpoints
            .iter()
            .position(|e| e == current)
            .map_or(0, |i| (i + 1) % self.endpoints.len());
        self.endpoints[i].clone()
    }

    /// Calls one RPC with signing, redirects and retries.
    async fn call<Req, Resp, F, Fut>(
        &self,
        path: &'static str,
        msg: Req,
        f: F,
    ) -> Result<Resp, ClientError>
    where
        Req: prost::Message + Clone,
        F: Fn(Channel, Request<Req>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let bytes = msg.encode_to_vec();
        let timeout = Duration::from_millis(self.cfg.request_timeout_ms);
        let mut target = self.preferred.lock().clone();
        let mut backoff = Duration::from_millis(self.cfg.backoff_min_ms);
        let mut maybe_applied = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let channel = self.channel(&target)?;
            let mut req = Request::new(msg.clone());
            req.set_timeout(timeout);
            SignedHeaders::sign_now(&self.key, path, &bytes).apply(req.metadata_mut());
            let status = match tokio::time::timeout(timeout, f(channel, req)).await {
                Ok(Ok(resp)) => {
                    *self.preferred.lock() = target;
                    return Ok(resp.into_inner());
                }
                Ok(Err(s)) => s,
                Err(_) => Status::deadline_exceeded("request timed out"),
            };
            let reason = ErrorReason::of(&status);
            let mut redirect = None;
            match (status.code(), reason) {
                (tonic::Code::Unavailable, Some(ErrorReason::NotLeader)) => {
                    redirect = status
                        .metadata()
                        .get(HEADER_LEADER_ADDR)
                        .and_then(|v| v.to_str().ok())
                        .map(normalize);
                }
                (tonic::Code::Unavailable, Some(ErrorReason::OutcomeUnknown)) => {
                    maybe_applied = true
                }
                (tonic::Code::Unavailable, Some(_)) => {}
                (
                    tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Cancelled
                    | tonic::Code::Unknown,
                    None,
                ) => {
                    // Transport failure or timeout: the request may have been delivered.
                    maybe_applied |=
                        path == PATH_SUBMIT || status.code() != tonic::Code::Unavailable;
                    target = self.next_endpoint(&target);
                }
                _ => return Err(ClientError::Status(status)),
            }
            if attempt >= self.cfg.max_attempts {
                return Err(if maybe_applied {
                    ClientError::OutcomeUnknown {
                        attempts: attempt,
                        last: status,
                    }
                } else {
                    ClientError::Unavailable {
                        attempts: attempt,
                        last: status,
                    }
                });
            }
            if let Some(leader) = redirect {
                if leader != target {
                    target = leader;
                    continue; // follow the redirect at once
                }
            }
            let jitter =
                Duration::from_micros(rand::random::<u64>() % (backoff.as_micros() as u64 / 2 + 1));
            tokio::time::sleep(backoff + jitter).await;
            backoff = (backoff * 2).min(Duration::from_millis(self.cfg.backoff_max_ms));
        }
    }

    async fn submit_direct(
        &self,
        commands: Vec<pb::Command>,
    ) -> Result<Vec<CommandOutcome>, ClientError> {
        let n = commands.len();
        let resp = self
            .call(
                PATH_SUBMIT,
                pb::SubmitRequest { commands },
                |ch, r| async move {
                    pb::ledger_client::LedgerClient::new(ch)
                        .max_decoding_message_size(64 << 20)
                        .submit(r)
                        .await
                },
            )
            .await?;
        if resp.results.len() != n {
            return Err(ClientError::Status(Status::internal(
                "server returned a result count different from the command count",
            )));
        }
        let idx = resp.applied_index;
        Ok(resp
            .results
            .into_iter()
            .map(|r| CommandOutcome::from_pb(r, idx))
            .collect())
    }
}

struct Pending {
    commands: Vec<pb::Command>,
    reply: oneshot::Sender<Result<Vec<CommandOutcome>, ClientError>>,
}

/// A cheap-to-clone handle; all clones share connections and the batcher.
#[derive(Clone)]
pub struct Client {
    core: Arc<Core>,
    batch_tx: mpsc::Sender<Pending>,
}

impl Client {
    /// Creates a client (connections are opened lazily). Must be called within a Tokio runtime.
    pub fn connect(cfg: ClientConfig, key: SigningKey) -> Result<Client, ClientError> {
        if cfg.endpoints.is_empty() {
            return Err(ClientError::Invalid(
                "at least one endpoint is required".into(),
            ));
        }
        let endpoints: Vec<String> = cfg.endpoints.iter().map(|e| normalize(e)).collect();
        let core = Arc::new(Core {
            preferred: Mutex::new(endpoints[0].clone()),
            endpoints,
            key,
            channels: Mutex::new(HashMap::new()),
            cfg: cfg.clone(),
        });
        for e in &core.endpoints {
            core.channel(e)?;
        }
        let (batch_tx, rx) = mpsc::channel(cfg.max_queued_submits.max(1));
        tokio::spawn(batcher(core.clone(), rx));
        Ok(Client { core, batch_tx })
    }

    pub fn public_key(&self) -> VerifyingKey {
        self.core.key.verifying_key()
    }

    /// Submits commands, coalesced with concurrent `submit` calls. Results are in order.
    pub async fn submit(
        &self,
        commands: Vec<pb::Command>,
    ) -> Result<Vec<CommandOutcome>, ClientError> {
        if commands.is_empty() {
            return Err(ClientError::Invalid("empty batch".into()));
        }
        if commands.len() >= self.core.cfg.max_batch_commands {
            return self.submit_unbatched(commands).await;
        }
        let (reply, rx) = oneshot::channel();
        self.batch_tx
            .send(Pending { commands, reply })
            .await
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// Submits commands as exactly one `Submit` RPC (no coalescing).
    pub async fn submit_unbatched(
        &self,
        commands: Vec<pb::Command>,
    ) -> Result<Vec<CommandOutcome>, ClientError> {
        self.core.submit_direct(commands).await
    }

    /// Submits one command.
    pub async fn submit_one(&self, command: pb::Command) -> Result<CommandOutcome, ClientError> {
        let mut v = self.submit(vec![command]).await?;
        v.pop()
            .ok_or_else(|| ClientError::Status(Status::internal("no result")))
    }

    pub async fn get_accounts(&self, ids: &[Id]) -> Result<pb::GetAccountsResponse, ClientError> {
        let msg = pb::GetAccountsRequest {
            ids: ids.iter().map(Id::to_string).collect(),
            allow_stale: self.core.cfg.stale_reads,
        };
        self.core
            .call("/suanpan.v1.Ledger/GetAccounts", msg, |ch, r| async move {
                pb::ledger_client::LedgerClient::new(ch)
                    .max_decoding_message_size(64 << 20)
                    .get_accounts(r)
                    .await
            })
            .await
    }

    /// One account, or `None` if it does not exist.
    pub async fn get_account(&self, id: Id) -> Result<Option<pb::Account>, ClientError> {
        Ok(self.get_accounts(&[id]).await?.accounts.pop())
    }

    pub async fn get_transfers(&self, ids: &[Id]) -> Result<pb::GetTransfersResponse, ClientError> {
        let msg = pb::GetTransfersRequest {
            ids: ids.iter().map(Id::to_string).collect(),
            allow_stale: self.core.cfg.stale_reads,
        };
        self.core
            .call("/suanpan.v1.Ledger/GetTransfers", msg, |ch, r| async move {
                pb::ledger_client::LedgerClient::new(ch)
                    .max_decoding_message_size(64 << 20)
                    .get_transfers(r)
                    .await
            })
            .await
    }

    /// One page of an account's history (postings with `seq > after_seq`, at most `limit`).
    pub async fn list_account_history(
        &self,
        account: Id,
        after_seq: u64,
        limit: u32,
    ) -> Result<pb::ListAccountHistoryResponse, ClientError> {
        let msg = pb::ListAccountHistoryRequest {
            account_id: account.to_string(),
            after_seq,
            limit,
            allow_stale: self.core.cfg.stale_reads,
        };
        self.core
            .call(
                "/suanpan.v1.Ledger/ListAccountHistory",
                msg,
                |ch, r| async move {
                    pb::ledger_client::LedgerClient::new(ch)
                        .max_decoding_message_size(64 << 20)
                        .list_account_history(r)
                        .await
                },
            )
            .await
    }

    pub async fn get_balance_at(
        &self,
        account: Id,
        timestamp_ns: u64,
    ) -> Result<pb::GetBalanceAtResponse, ClientError> {
        let msg = pb::GetBalanceAtRequest {
            account_id: account.to_string(),
            timestamp_ns,
            allow_stale: self.core.cfg.stale_reads,
        };
        self.core
            .call("/suanpan.v1.Ledger/GetBalanceAt", msg, |ch, r| async move {
                pb::ledger_client::LedgerClient::new(ch)
                    .get_balance_at(r)
                    .await
            })
            .await
    }

    /// Streams applied batches from `from_index` (0 = from now). The stream is not resumed
    /// automatically: on error, call again with the last index + 1.
    pub async fn watch_events(
        &self,
        from_index: u64,
    ) -> Result<tonic::Streaming<pb::WatchEvent>, ClientError> {
        self.core
            .call(
                "/suanpan.v1.Ledger/WatchEvents",
                pb::WatchEventsRequest { from_index },
                |ch, mut r| async move {
                    // The per-attempt deadline must not cut the stream.
                    r.metadata_mut().remove("grpc-timeout");
                    pb::ledger_client::LedgerClient::new(ch)
                        .max_decoding_message_size(64 << 20)
                        .watch_events(r)
                        .await
                },
            )
            .await
    }

    pub async fn cluster_status(&self) -> Result<pb::ClusterStatusResponse, ClientError> {
        self.core
            .call(
                "/suanpan.v1.Admin/ClusterStatus",
                pb::ClusterStatusRequest {},
                |ch, r| async move {
                    pb::admin_client::AdminClient::new(ch)
                        .cluster_status(r)
                        .await
                },
            )
            .await
    }

    pub async fn node_info(&self) -> Result<pb::NodeInfoResponse, ClientError> {
        self.core
            .call(
                "/suanpan.v1.Admin/NodeInfo",
                pb::NodeInfoRequest {},
                |ch, r| async move { pb::admin_client::AdminClient::new(ch).node_info(r).await },
            )
            .await
    }

    pub async fn add_node(&self, id: u64, address: &str) -> Result<u64, ClientError> {
        let msg = pb::AddNodeRequest {
            id,
            address: address.to_string(),
        };
        let r = self
            .core
            .call("/suanpan.v1.Admin/AddNode", msg, |ch, r| async move {
                pb::admin_client::AdminClient::new(ch).add_node(r).await
            })
            .await?;
        Ok(r.applied_index)
    }

    pub async fn remove_node(&self, id: u64) -> Result<u64, ClientError> {
        let r = self
            .core
            .call(
                "/suanpan.v1.Admin/RemoveNode",
                pb::RemoveNodeRequest { id },
                |ch, r| async move { pb::admin_client::AdminClient::new(ch).remove_node(r).await },
            )
            .await?;
        Ok(r.applied_index)
    }

    pub async fn transfer_leader(&self, id: u64) -> Result<(), ClientError> {
        self.core
            .call(
                "/suanpan.v1.Admin/TransferLeader",
                pb::TransferLeaderRequest { id },
                |ch, r| async move {
                    pb::admin_client::AdminClient::new(ch)
                        .transfer_leader(r)
                        .await
                },
            )
            .await?;
        Ok(())
    }

    pub async fn register_client(
        &self,
        public_key: &VerifyingKey,
        role: ClientRole,
        name: &str,
    ) -> Result<CommandOutcome, ClientError> {
        let msg = pb::RegisterClientRequest {
            public_key: public_key.as_bytes().to_vec(),
            role: crate::wire::client_role_to_pb(role) as i32,
            name: name.to_string(),
            command_id: new_id().to_string(),
        };
        let r = self
            .core
            .call(
                "/suanpan.v1.Admin/RegisterClient",
                msg,
                |ch, r| async move {
                    pb::admin_client::AdminClient::new(ch)
                        .register_client(r)
                        .await
                },
            )
            .await?;
        r.result
            .map(|x| CommandOutcome::from_pb(x, r.applied_index))
            .ok_or_else(|| ClientError::Status(Status::internal("missing result")))
    }

    pub async fn revoke_client(
        &self,
        public_key: &VerifyingKey,
    ) -> Result<CommandOutcome, ClientError> {
        let msg = pb::RevokeClientRequest {
            public_key: public_key.as_bytes().to_vec(),
            command_id: new_id().to_string(),
        };
        let r = self
            .core
            .call("/suanpan.v1.Admin/RevokeClient", msg, |ch, r| async move {
                pb::admin_client::AdminClient::new(ch)
                    .revoke_client(r)
                    .await
            })
            .await?;
        r.result
            .map(|x| CommandOutcome::from_pb(x, r.applied_index))
            .ok_or_else(|| ClientError::Status(Status::internal("missing result")))
    }

    pub async fn list_clients(&self) -> Result<Vec<pb::ClientInfo>, ClientError> {
        let msg = pb::ListClientsRequest {
            allow_stale: self.core.cfg.stale_reads,
        };
        let r = self
            .core
            .call("/suanpan.v1.Admin/ListClients", msg, |ch, r| async move {
                pb::admin_client::AdminClient::new(ch).list_clients(r).await
            })
            .await?;
        Ok(r.clients)
    }
}

/// Coalesces concurrent `submit` calls.
async fn batcher(core: Arc<Core>, mut rx: mpsc::Receiver<Pending>) {
    let linger = Duration::from_micros(core.cfg.batch_linger_us);
    let max = core.cfg.max_batch_commands.max(1);
    let in_flight = Arc::new(Semaphore::new(core.cfg.max_in_flight_batches.max(1)));
    let mut carry: Option<Pending> = None;
    let mut closed = false;
    while !closed || carry.is_some() {
        let first = match carry.take() {
            Some(p) => p,
            None => match rx.recv().await {
                Some(p) => p,
                None => return,
            },
        };
        let mut n = first.commands.len();
        let mut group = vec![first];
        let deadline = tokio::time::Instant::now() + linger;
        while n < max && !closed {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(p)) => {
                    if n + p.commands.len() > max {
                        carry = Some(p);
                        break;
                    }
                    n += p.commands.len();
                    group.push(p);
                }
                Ok(None) => closed = true,
                Err(_) => break,
            }
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let core = core.clone();
        tokio::spawn(async move {
            send_group(&core, group).await;
            drop(permit);
        });
    }
}

async fn send_group(core: &Core, group: Vec<Pending>) {
    let lens: Vec<usize> = group.iter().map(|p| p.commands.len()).collect();
    let mut replies = Vec::with_capacity(group.len());
    let mut all = Vec::with_capacity(lens.iter().sum());
    let mut parts = Vec::with_capacity(group.len());
    for p in group {
        replies.push(p.reply);
        parts.push(p.commands.clone());
        all.extend(p.commands);
    }
    match core.submit_direct(all).await {
        Ok(mut results) => {
            for (reply, len) in replies.into_iter().zip(lens).rev() {
                let mine = results.split_off(results.len() - len);
                let _ = reply.send(Ok(mine));
            }
        }
        Err(ClientError::Status(s))
            if s.code() == tonic::Code::InvalidArgument && replies.len() > 1 =>
        {
            // Someone's input is invalid: isolate it by sending each caller's part alone.
            let each = parts.into_iter().map(|cmds| core.submit_direct(cmds));
            let outcomes = futures::future::join_all(each).await;
            for (reply, r) in replies.into_iter().zip(outcomes) {
                let _ = reply.send(r);
            }
        }
        Err(e) => {
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
