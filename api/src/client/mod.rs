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
//!   so one caller's bad input never fails another's commands. [`Client::submit_transfers`]
//!   coalesces the binary form (`SubmitTransfers`) the same way, in a batcher of its own.

use std::collections::HashMap;
use std::sync::Arc;

use ed25519_dalek::{SigningKey, VerifyingKey};
use ledger::{ClientRole, Id, ResultCode};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tonic::Status;

use crate::pb;
pub use crate::signing::{generate_key_file, load_key_file, save_key_file, KeyFileError};

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
    /// The cluster CA (PEM): connect with TLS and accept only nodes with a certificate from it.
    /// `None`: plaintext (a cluster started without `--tls-dir`, local development only).
    pub tls_ca_pem: Option<String>,
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
            tls_ca_pem: None,
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
    /// The outcome of a packed (v2) result.
    fn from_code(id: Id, code: u16, timestamp_ns: u64, applied_index: u64) -> Self {
        let typed = ResultCode::from_u16(code);
        CommandOutcome {
            id: id.to_string(),
            code: typed,
            code_raw: i32::from(code),
            name: typed.map_or("unknown", |c| c.name()).to_string(),
            timestamp_ns,
            applied_index,
        }
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

/// A new time-ordered id (UUIDv7: 48 bits of Unix milliseconds, then random bits), so ids made
/// in sequence sort and index well.
pub fn new_id() -> Id {
    Id(uuid::Uuid::now_v7().as_u128())
}

mod batcher;
/// Builders for commands.
pub mod cmd;
mod core;

use self::batcher::{batcher, Pending};
use self::core::{normalize, Core};

/// A cheap-to-clone handle; all clones share connections and the batcher.
#[derive(Clone)]
pub struct Client {
    core: Arc<Core>,
    batch_tx: mpsc::Sender<Pending<pb::Command>>,
    transfers_tx: mpsc::Sender<Pending<crate::wire::TransferRecord>>,
}

impl Client {
    /// Creates a client (connections are opened lazily). Must be called within a Tokio runtime.
    pub fn connect(cfg: ClientConfig, key: SigningKey) -> Result<Client, ClientError> {
        if cfg.endpoints.is_empty() {
            return Err(ClientError::Invalid(
                "at least one endpoint is required".into(),
            ));
        }
        let endpoints: Vec<String> = cfg
            .endpoints
            .iter()
            .map(|e| normalize(e, cfg.tls_ca_pem.is_some()))
            .collect();
        let core = Arc::new(Core {
            preferred: Mutex::new(endpoints[0].clone()),
            cluster: Mutex::new(None),
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
        let (transfers_tx, rx) = mpsc::channel(cfg.max_queued_submits.max(1));
        tokio::spawn(batcher(core.clone(), rx));
        Ok(Client {
            core,
            batch_tx,
            transfers_tx,
        })
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
        self.core.submit_direct(&commands).await
    }

    /// Submits single-leg transfers in the binary form (`SubmitTransfers`, wire v2), coalesced
    /// with concurrent `submit_transfers` calls like [`Client::submit`]: 1 ..=
    /// `max_batch_commands` records, results in order. Same outcomes and idempotency as the
    /// same transfers through [`Client::submit`].
    pub async fn submit_transfers(
        &self,
        records: &[crate::wire::TransferRecord],
    ) -> Result<Vec<CommandOutcome>, ClientError> {
        self.check_transfer_count(records)?;
        if records.len() == self.core.cfg.max_batch_commands {
            return self.core.submit_transfers(records).await;
        }
        let (reply, rx) = oneshot::channel();
        self.transfers_tx
            .send(Pending {
                commands: records.to_vec(),
                reply,
            })
            .await
            .map_err(|_| ClientError::Closed)?;
        rx.await.map_err(|_| ClientError::Closed)?
    }

    /// [`Client::submit_transfers`] as exactly one `SubmitTransfers` RPC (no coalescing).
    pub async fn submit_transfers_unbatched(
        &self,
        records: &[crate::wire::TransferRecord],
    ) -> Result<Vec<CommandOutcome>, ClientError> {
        self.check_transfer_count(records)?;
        self.core.submit_transfers(records).await
    }

    fn check_transfer_count(
        &self,
        records: &[crate::wire::TransferRecord],
    ) -> Result<(), ClientError> {
        if records.is_empty() || records.len() > self.core.cfg.max_batch_commands {
            return Err(ClientError::Invalid(format!(
                "{} transfer records: 1 ..= {} per call",
                records.len(),
                self.core.cfg.max_batch_commands
            )));
        }
        Ok(())
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
        self.core.call(msg).await
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
        self.core.call(msg).await
    }

    /// Merchant profiles (found ones in request order, and the ids not found).
    pub async fn get_merchants(&self, ids: &[Id]) -> Result<pb::GetMerchantsResponse, ClientError> {
        let msg = pb::GetMerchantsRequest {
            ids: ids.iter().map(Id::to_string).collect(),
            allow_stale: self.core.cfg.stale_reads,
        };
        self.core.call(msg).await
    }

    /// Orders and merchant payments (found ones in request order, and the ids not found).
    pub async fn get_orders(&self, ids: &[Id]) -> Result<pb::GetOrdersResponse, ClientError> {
        let msg = pb::GetOrdersRequest {
            ids: ids.iter().map(Id::to_string).collect(),
            allow_stale: self.core.cfg.stale_reads,
        };
        self.core.call(msg).await
    }

    /// Payment requests (found ones in request order, and the ids not found).
    pub async fn get_requests(&self, ids: &[Id]) -> Result<pb::GetRequestsResponse, ClientError> {
        let msg = pb::GetRequestsRequest {
            ids: ids.iter().map(Id::to_string).collect(),
            allow_stale: self.core.cfg.stale_reads,
        };
        self.core.call(msg).await
    }

    /// Splits (found ones in request order, and the ids not found).
    pub async fn get_splits(&self, ids: &[Id]) -> Result<pb::GetSplitsResponse, ClientError> {
        let msg = pb::GetSplitsRequest {
            ids: ids.iter().map(Id::to_string).collect(),
            allow_stale: self.core.cfg.stale_reads,
        };
        self.core.call(msg).await
    }

    /// Red packets (found ones in request order, and the ids not found).
    pub async fn get_redpackets(
        &self,
        ids: &[Id],
    ) -> Result<pb::GetRedPacketsResponse, ClientError> {
        let msg = pb::GetRedPacketsRequest {
            ids: ids.iter().map(Id::to_string).collect(),
            allow_stale: self.core.cfg.stale_reads,
        };
        self.core.call(msg).await
    }

    /// A group's members, open splits and nets.
    pub async fn get_group_balances(
        &self,
        group: Id,
    ) -> Result<pb::GetGroupBalancesResponse, ClientError> {
        let msg = pb::GetGroupBalancesRequest {
            group_id: group.to_string(),
            allow_stale: self.core.cfg.stale_reads,
        };
        self.core.call(msg).await
    }

    /// One page of accounts in id order (see `ListAccountsRequest`).
    pub async fn list_accounts(
        &self,
        mut msg: pb::ListAccountsRequest,
    ) -> Result<pb::ListAccountsResponse, ClientError> {
        msg.allow_stale = self.core.cfg.stale_reads;
        self.core.call(msg).await
    }

    /// One page of the transfers carrying `reference`.
    pub async fn find_transfers(
        &self,
        reference: &str,
        after: Option<Id>,
        limit: u32,
    ) -> Result<pb::FindTransfersResponse, ClientError> {
        let msg = pb::FindTransfersRequest {
            reference: reference.into(),
            after_id: after.map(|a| a.to_string()).unwrap_or_default(),
            limit,
            allow_stale: self.core.cfg.stale_reads,
        };
        self.core.call(msg).await
    }

    /// A merchant's settlement over log time `[from_ns, to_ns)`.
    pub async fn get_merchant_settlement(
        &self,
        merchant: Id,
        from_ns: u64,
        to_ns: u64,
    ) -> Result<pb::GetMerchantSettlementResponse, ClientError> {
        let msg = pb::GetMerchantSettlementRequest {
            merchant_id: merchant.to_string(),
            from_ns,
            to_ns,
            allow_stale: self.core.cfg.stale_reads,
        };
        self.core.call(msg).await
    }

    /// The replicated configuration: in-app currencies, rates, tiers, settings.
    /// The digest chain of the node this call reaches (build the client with one endpoint to
    /// ask a given replica), from `from_index` on, at most `limit` links (0: the most).
    pub async fn get_chain(
        &self,
        from_index: u64,
        limit: u32,
    ) -> Result<pb::GetChainResponse, ClientError> {
        let msg = pb::GetChainRequest { from_index, limit };
        self.core.call(msg).await
    }

    /// A checkpoint of the reached node's applied state, signed by the cluster's audit key.
    pub async fn get_checkpoint(&self) -> Result<pb::GetCheckpointResponse, ClientError> {
        self.core.call(pb::GetCheckpointRequest {}).await
    }

    /// The cluster's audit public key (hex).
    pub async fn get_audit_key(&self) -> Result<String, ClientError> {
        let r = self.core.call(pb::GetAuditKeyRequest {}).await?;
        Ok(r.audit_key)
    }

    pub async fn get_config(&self) -> Result<pb::GetConfigResponse, ClientError> {
        let msg = pb::GetConfigRequest {
            allow_stale: self.core.cfg.stale_reads,
        };
        self.core.call(msg).await
    }

    /// Conversions by command id (found ones in request order, and the ids not found).
    pub async fn get_conversions(
        &self,
        ids: &[Id],
    ) -> Result<pb::GetConversionsResponse, ClientError> {
        let msg = pb::GetConversionsRequest {
            ids: ids.iter().map(Id::to_string).collect(),
            allow_stale: self.core.cfg.stale_reads,
        };
        self.core.call(msg).await
    }

    /// One page of an account's history (postings with `seq > after_seq`, at most `limit`).
    pub async fn list_account_history(
        &self,
        account: Id,
        after_seq: u64,
        limit: u32,
    ) -> Result<pb::ListAccountHistoryResponse, ClientError> {
        self.list_account_history_between(account, after_seq, limit, None, None)
            .await
    }

    /// As [`Client::list_account_history`], only postings with log time in `[from_ns, to_ns)`.
    pub async fn list_account_history_between(
        &self,
        account: Id,
        after_seq: u64,
        limit: u32,
        from_ns: Option<u64>,
        to_ns: Option<u64>,
    ) -> Result<pb::ListAccountHistoryResponse, ClientError> {
        let msg = pb::ListAccountHistoryRequest {
            account_id: account.to_string(),
            after_seq,
            limit,
            allow_stale: self.core.cfg.stale_reads,
            from_ns,
            to_ns,
        };
        self.core.call(msg).await
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
        self.core.call(msg).await
    }

    /// Streams applied batches from `from_index` (0 = from now). The stream is not resumed
    /// automatically: on error, call again with the last index + 1.
    pub async fn watch_events(
        &self,
        from_index: u64,
    ) -> Result<tonic::Streaming<pb::WatchEvent>, ClientError> {
        self.watch_flow_events(from_index, &[]).await
    }

    /// As [`Client::watch_events`]; with `accounts`, only the flow events that concern them
    /// (batches with none are skipped, command events left out).
    pub async fn watch_flow_events(
        &self,
        from_index: u64,
        accounts: &[Id],
    ) -> Result<tonic::Streaming<pb::WatchEvent>, ClientError> {
        let account_ids: Vec<String> = accounts.iter().map(Id::to_string).collect();
        self.core
            .call_with(
                "/suanpan.v1.Ledger/WatchEvents",
                prost::Message::encode_to_vec(&pb::WatchEventsRequest {
                    from_index,
                    account_ids: account_ids.clone(),
                })
                .into(),
                |ch, r| {
                    let msg = pb::WatchEventsRequest {
                        from_index,
                        account_ids: account_ids.clone(),
                    };
                    async move {
                        let (mut metadata, extensions, ()) = r.into_parts();
                        // The per-attempt deadline must not cut the stream.
                        metadata.remove("grpc-timeout");
                        pb::ledger_client::LedgerClient::new(ch)
                            .max_decoding_message_size(64 << 20)
                            .watch_events(tonic::Request::from_parts(metadata, extensions, msg))
                            .await
                    }
                },
            )
            .await
    }

    pub async fn cluster_status(&self) -> Result<pb::ClusterStatusResponse, ClientError> {
        self.core.call(pb::ClusterStatusRequest {}).await
    }

    pub async fn node_info(&self) -> Result<pb::NodeInfoResponse, ClientError> {
        self.core.call(pb::NodeInfoRequest {}).await
    }

    pub async fn add_node(&self, id: u64, address: &str) -> Result<u64, ClientError> {
        let msg = pb::AddNodeRequest {
            id,
            address: address.to_string(),
        };
        let r = self.core.call(msg).await?;
        Ok(r.applied_index)
    }

    pub async fn remove_node(&self, id: u64) -> Result<u64, ClientError> {
        let r = self.core.call(pb::RemoveNodeRequest { id }).await?;
        Ok(r.applied_index)
    }

    /// An online backup of the node this client reaches first, into `dir` on that node's machine.
    pub async fn backup(&self, dir: &str) -> Result<pb::BackupResponse, ClientError> {
        self.core.call(pb::BackupRequest { dir: dir.into() }).await
    }

    pub async fn transfer_leader(&self, id: u64) -> Result<(), ClientError> {
        self.core.call(pb::TransferLeaderRequest { id }).await?;
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
            role: crate::wire::enum_to_pb(role),
            name: name.to_string(),
            command_id: new_id().to_string(),
        };
        let r = self.core.call(msg).await?;
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
        let r = self.core.call(msg).await?;
        r.result
            .map(|x| CommandOutcome::from_pb(x, r.applied_index))
            .ok_or_else(|| ClientError::Status(Status::internal("missing result")))
    }

    pub async fn list_clients(&self) -> Result<Vec<pb::ClientInfo>, ClientError> {
        let msg = pb::ListClientsRequest {
            allow_stale: self.core.cfg.stale_reads,
        };
        let r = self.core.call(msg).await?;
        Ok(r.clients)
    }
}
