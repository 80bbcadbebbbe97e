//! One RPC with signing, leader redirects and bounded retries: what every client call goes through.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use parking_lot::Mutex;
use tonic::codec::{BufferSettings, Codec, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::{ClientConfig, ClientError, CommandOutcome};
use crate::pb;
use crate::protocol::{is_submit_path, ErrorReason, HEADER_LEADER_ADDR};
use crate::signing::SignedHeaders;

/// `host:port` as a URI: `https://` when the client trusts a cluster CA, else `http://`.
pub(super) fn normalize(endpoint: &str, tls: bool) -> String {
    if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        endpoint.to_string()
    } else if tls {
        format!("https://{endpoint}")
    } else {
        format!("http://{endpoint}")
    }
}

pub(super) struct Core {
    pub(super) cfg: ClientConfig,
    pub(super) key: SigningKey,
    pub(super) endpoints: Vec<String>,
    pub(super) channels: Mutex<HashMap<String, Channel>>,
    /// Endpoint believed to be the leader (or the last that answered).
    pub(super) preferred: Mutex<String>,
    /// The cluster signatures are bound to, learnt from the first answer (`x-suanpan-cluster`);
    /// `Some("")`: the node names none (unbound v1 signatures).
    pub(super) cluster: Mutex<Option<String>>,
}

impl Core {
    pub(super) fn channel(&self, endpoint: &str) -> Result<Channel, ClientError> {
        if let Some(c) = self.channels.lock().get(endpoint) {
            return Ok(c.clone());
        }
        let mut ep = tonic::transport::Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| ClientError::Invalid(format!("bad endpoint {endpoint}: {e}")))?;
        if endpoint.starts_with("https://") {
            let ca = self.cfg.tls_ca_pem.as_deref().ok_or_else(|| {
                ClientError::Invalid(format!(
                    "{endpoint} is https: give the cluster CA (ClientConfig::tls_ca_pem, --ca)"
                ))
            })?;
            ep = ep
                .tls_config(crate::tls::client_config(ca))
                .map_err(|e| ClientError::Invalid(format!("tls: {e}")))?;
        }
        let ep = ep
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

    pub(super) fn next_endpoint(&self, current: &str) -> String {
        let i = self
            .endpoints
            .iter()
            .position(|e| e == current)
            .map_or(0, |i| (i + 1) % self.endpoints.len());
        self.endpoints[i].clone()
    }

    /// Calls one unary RPC with signing, redirects and retries. The request is encoded once: the
    /// bytes the signature covers are the bytes sent, on every attempt.
    pub(super) async fn call<Req: Rpc>(&self, msg: Req) -> Result<Req::Response, ClientError> {
        self.call_encoded::<Req>(bytes::Bytes::from(msg.encode_to_vec()))
            .await
    }

    /// [`Core::call`] of a request already encoded (`bytes` must be a `Req`).
    async fn call_encoded<Req: Rpc>(
        &self,
        bytes: bytes::Bytes,
    ) -> Result<Req::Response, ClientError> {
        let path = Req::PATH;
        self.call_with(path, bytes.clone(), |ch, r| {
            let bytes = bytes.clone();
            async move {
                let mut grpc = tonic::client::Grpc::new(ch).max_decoding_message_size(64 << 20);
                grpc.ready()
                    .await
                    .map_err(|e| Status::unavailable(format!("connection not ready: {e}")))?;
                let (metadata, extensions, ()) = r.into_parts();
                let req = Request::from_parts(metadata, extensions, bytes);
                grpc.unary(
                    req,
                    http::uri::PathAndQuery::from_static(path),
                    PreEncoded::<Req::Response>(PhantomData),
                )
                .await
            }
        })
        .await
    }

    /// Calls one RPC through `f` (given the channel and a signed request with an empty body, to
    /// fill in), with signing, redirects and retries; `bytes` is the encoded request the
    /// signature covers. The server-streaming call uses it directly.
    pub(super) async fn call_with<Resp, F, Fut>(
        &self,
        path: &'static str,
        bytes: bytes::Bytes,
        f: F,
    ) -> Result<Resp, ClientError>
    where
        F: Fn(Channel, Request<()>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<Resp>, Status>>,
    {
        let timeout = Duration::from_millis(self.cfg.request_timeout_ms);
        let mut target = self.preferred.lock().clone();
        let mut backoff = Duration::from_millis(self.cfg.backoff_min_ms);
        let mut maybe_applied = false;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let channel = self.channel(&target)?;
            let mut req = Request::new(());
            req.set_timeout(timeout);
            let cluster = self.cluster.lock().clone();
            // Until the cluster id is known the request goes unsigned: the node refuses it
            // unread and names its cluster, and every later signature is bound to that id.
            if let Some(c) = &cluster {
                let bound = (!c.is_empty()).then_some(c.as_str());
                SignedHeaders::sign_now_for(bound, &self.key, path, &bytes)
                    .apply(req.metadata_mut());
            }
            let status = match tokio::time::timeout(timeout, f(channel, req)).await {
                Ok(Ok(resp)) => {
                    *self.preferred.lock() = target;
                    return Ok(resp.into_inner());
                }
                Ok(Err(s)) => s,
                Err(_) => Status::deadline_exceeded("request timed out"),
            };
            if cluster.is_none() && status.code() == tonic::Code::Unauthenticated {
                let named = status
                    .metadata()
                    .get(crate::protocol::HEADER_CLUSTER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                *self.cluster.lock() = Some(named.to_string());
                attempt -= 1;
                continue;
            }
            let reason = ErrorReason::of(&status);
            let mut redirect = None;
            match (status.code(), reason) {
                (tonic::Code::Unavailable, Some(ErrorReason::NotLeader)) => {
                    redirect = status
                        .metadata()
                        .get(HEADER_LEADER_ADDR)
                        .and_then(|v| v.to_str().ok())
                        .map(|a| normalize(a, self.cfg.tls_ca_pem.is_some()));
                }
                (tonic::Code::Unavailable, Some(ErrorReason::OutcomeUnknown)) => {
                    maybe_applied = true
                }
                (tonic::Code::Unavailable, Some(ErrorReason::Stopped)) => {
                    // A node that stopped may have had the batch in its log: the next leader can
                    // still commit it. Retry the same ids elsewhere; never report "not applied".
                    maybe_applied |= is_submit_path(path);
                    target = self.next_endpoint(&target);
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
                        is_submit_path(path) || status.code() != tonic::Code::Unavailable;
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

    pub(super) async fn submit_direct(
        &self,
        commands: &[pb::Command],
    ) -> Result<Vec<CommandOutcome>, ClientError> {
        let n = commands.len();
        let resp = self
            .call_encoded::<pb::SubmitRequest>(encode_submit(commands))
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

    /// One `SubmitTransfers` call (the binary form).
    pub(super) async fn submit_transfers(
        &self,
        records: &[crate::wire::TransferRecord],
    ) -> Result<Vec<CommandOutcome>, ClientError> {
        let resp = self
            .call(pb::SubmitTransfersRequest {
                transfers: crate::wire::encode_transfers(records),
            })
            .await?;
        let results =
            crate::wire::unpack_results(&resp.results, records.len()).ok_or_else(|| {
                ClientError::Status(Status::internal(
                    "server returned a result count different from the record count",
                ))
            })?;
        let idx = resp.applied_index;
        Ok(records
            .iter()
            .zip(results)
            .map(|(r, (code, ts))| CommandOutcome::from_code(r.id, code, ts, idx))
            .collect())
    }
}

/// A codec that sends bytes already encoded (the request its signature covers) and decodes the
/// answer with prost.
struct PreEncoded<Resp>(PhantomData<Resp>);

struct BytesEncoder;

impl Encoder for BytesEncoder {
    type Item = bytes::Bytes;
    type Error = Status;

    fn encode(&mut self, item: bytes::Bytes, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

impl<Resp: prost::Message + Default + Send + 'static> Codec for PreEncoded<Resp> {
    type Encode = bytes::Bytes;
    type Decode = Resp;
    type Encoder = BytesEncoder;
    type Decoder = tonic_prost::ProstDecoder<Resp>;

    fn encoder(&mut self) -> BytesEncoder {
        BytesEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstCodec::<Resp, Resp>::raw_decoder(BufferSettings::default())
    }
}

/// The encoded `SubmitRequest { commands }`, from borrowed commands: the batcher keeps each
/// caller's commands (to resend a caller's part alone if the coalesced request is refused)
/// without cloning them.
fn encode_submit(commands: &[pb::Command]) -> bytes::Bytes {
    // `SubmitRequest` is one field: `repeated Command commands = 1`.
    let len = prost::encoding::message::encoded_len_repeated(1, commands);
    let mut buf = Vec::with_capacity(len);
    for c in commands {
        prost::encoding::message::encode(1, c, &mut buf);
    }
    bytes::Bytes::from(buf)
}

/// A unary RPC: its request type names its path and its answer's type (one place for both).
pub(super) trait Rpc: prost::Message {
    type Response: prost::Message + Default + Send + 'static;
    const PATH: &'static str;
}

/// `Request => Response at "/suanpan.v1.Service/Method"`, as the .proto declares them.
macro_rules! rpc {
    ($req:ident => $resp:ident at $path:literal) => {
        impl Rpc for pb::$req {
            type Response = pb::$resp;
            const PATH: &'static str = $path;
        }
    };
}

rpc!(ClusterStatusRequest => ClusterStatusResponse at "/suanpan.v1.Admin/ClusterStatus");
rpc!(NodeInfoRequest => NodeInfoResponse at "/suanpan.v1.Admin/NodeInfo");
rpc!(AddNodeRequest => MembershipResponse at "/suanpan.v1.Admin/AddNode");
rpc!(RemoveNodeRequest => MembershipResponse at "/suanpan.v1.Admin/RemoveNode");
rpc!(TransferLeaderRequest => TransferLeaderResponse at "/suanpan.v1.Admin/TransferLeader");
rpc!(RegisterClientRequest => ClientCommandResponse at "/suanpan.v1.Admin/RegisterClient");
rpc!(RevokeClientRequest => ClientCommandResponse at "/suanpan.v1.Admin/RevokeClient");
rpc!(ListClientsRequest => ListClientsResponse at "/suanpan.v1.Admin/ListClients");
rpc!(BackupRequest => BackupResponse at "/suanpan.v1.Admin/Backup");
rpc!(SubmitRequest => SubmitResponse at "/suanpan.v1.Ledger/Submit");
rpc!(SubmitTransfersRequest => SubmitTransfersResponse at "/suanpan.v1.Ledger/SubmitTransfers");
rpc!(GetAccountsRequest => GetAccountsResponse at "/suanpan.v1.Ledger/GetAccounts");
rpc!(GetTransfersRequest => GetTransfersResponse at "/suanpan.v1.Ledger/GetTransfers");
rpc!(ListAccountHistoryRequest => ListAccountHistoryResponse at "/suanpan.v1.Ledger/ListAccountHistory");
rpc!(GetBalanceAtRequest => GetBalanceAtResponse at "/suanpan.v1.Ledger/GetBalanceAt");
rpc!(GetMerchantsRequest => GetMerchantsResponse at "/suanpan.v1.Ledger/GetMerchants");
rpc!(GetOrdersRequest => GetOrdersResponse at "/suanpan.v1.Ledger/GetOrders");
rpc!(GetRequestsRequest => GetRequestsResponse at "/suanpan.v1.Ledger/GetRequests");
rpc!(GetSplitsRequest => GetSplitsResponse at "/suanpan.v1.Ledger/GetSplits");
rpc!(GetRedPacketsRequest => GetRedPacketsResponse at "/suanpan.v1.Ledger/GetRedPackets");
rpc!(GetGroupBalancesRequest => GetGroupBalancesResponse at "/suanpan.v1.Ledger/GetGroupBalances");
rpc!(GetConfigRequest => GetConfigResponse at "/suanpan.v1.Ledger/GetConfig");
rpc!(GetConversionsRequest => GetConversionsResponse at "/suanpan.v1.Ledger/GetConversions");
rpc!(ListAccountsRequest => ListAccountsResponse at "/suanpan.v1.Ledger/ListAccounts");
rpc!(FindTransfersRequest => FindTransfersResponse at "/suanpan.v1.Ledger/FindTransfers");
rpc!(GetMerchantSettlementRequest => GetMerchantSettlementResponse at "/suanpan.v1.Ledger/GetMerchantSettlement");
rpc!(GetChainRequest => GetChainResponse at "/suanpan.v1.Ledger/GetChain");
rpc!(GetCheckpointRequest => GetCheckpointResponse at "/suanpan.v1.Ledger/GetCheckpoint");
rpc!(GetAuditKeyRequest => GetAuditKeyResponse at "/suanpan.v1.Ledger/GetAuditKey");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::cmd;
    use ledger::Id;
    use prost::Message;

    /// The batcher's encoding from borrowed commands is byte for byte the `SubmitRequest` prost
    /// encodes (the server decodes it as one), for none, one and many commands of mixed kinds.
    #[test]
    fn submit_encoded_from_borrowed_commands_is_the_submit_request() {
        let accounts = |n: u128| cmd::create_account(Id(n), "CNY", pb::AccountKind::Wallet);
        let transfer = |n: u128| {
            let amount = format!("{}.{:02}", n / 100, n % 100);
            cmd::transfer(Id(n), Id(1), Id(2), &amount, "CNY")
        };
        for n in [0u128, 1, 2, 1000] {
            let commands: Vec<pb::Command> = (0..n)
                .map(|i| {
                    if i % 3 == 0 {
                        accounts(i + 10)
                    } else {
                        transfer(i + 10)
                    }
                })
                .collect();
            let expected = pb::SubmitRequest {
                commands: commands.clone(),
            }
            .encode_to_vec();
            assert_eq!(
                encode_submit(&commands).as_ref(),
                expected.as_slice(),
                "{n} commands"
            );
        }
    }
}
