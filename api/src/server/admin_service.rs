//! The `Admin` service: node and cluster status, membership, API client keys.

use super::*;

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
pub(crate) async fn fetch_node_info(
    tls: Option<&crate::tls::NodeTls>,
    id: u64,
    addr: &str,
    key: &SigningKey,
    timeout: Duration,
) -> Result<pb::NodeInfoResponse, String> {
    let channel = crate::transport::peer_channel(tls, id, addr, timeout).await?;
    let msg = pb::NodeInfoRequest {};
    let bytes = prost::Message::encode_to_vec(&msg);
    let mut req = Request::new(msg);
    let cluster = crate::identity::cluster_id(key);
    SignedHeaders::sign_now_for(Some(&cluster), key, "/suanpan.v1.Admin/NodeInfo", &bytes)
        .apply(req.metadata_mut());
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
        let me = self.ctx.node_info().await?;
        let book = self.ctx.peers.all();
        let ids = self.ctx.member_ids(&me.voters, &me.learners);
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
                    Some(a) => {
                        match fetch_node_info(self.ctx.tls.as_deref(), id, &a, &key, timeout).await
                        {
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
                        }
                    }
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
        Ok(Response::new(self.ctx.node_info().await?))
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
            || req.address.len() > consensus::MEMBER_ADDRESS_BYTES_MAX
            || req.address.parse::<http::uri::Authority>().is_err()
        {
            return Err(Status::invalid_argument("address must be host:port"));
        }
        self.ctx.require_leader()?;
        self.ctx.peers.set(req.id, req.address.clone());
        // A new node joins as a learner (no vote, no quorum weight while it catches up); the
        // leader promotes it once its log is close to the commit index.
        let (index, _) = self
            .ctx
            .await_outcome(self.ctx.raft.add_learner(req.id, req.address))
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

    async fn backup(
        &self,
        request: Request<pb::BackupRequest>,
    ) -> Result<Response<pb::BackupResponse>, Status> {
        let req = request.into_inner();
        if req.dir.is_empty() || req.dir.len() > 4096 {
            return Err(Status::invalid_argument("dir: 1 ..= 4096 bytes"));
        }
        let out = std::path::PathBuf::from(&req.dir);
        let (store, data_dir) = (self.ctx.store.share(), self.ctx.data_dir.clone());
        let log_db = self.ctx.log_db.clone();
        // Checkpointing writes files: off the async workers.
        let info = tokio::task::spawn_blocking(move || {
            crate::backup::create(&store, log_db.as_deref(), &data_dir, &out)
        })
        .await
        .map_err(|e| Status::internal(format!("backup task: {e}")))?
        .map_err(|e| match e {
            crate::backup::BackupError::Refused(m) => Status::failed_precondition(m),
            e => Status::internal(format!("backup failed: {e}")),
        })?;
        Ok(Response::new(pb::BackupResponse {
            node_id: self.ctx.id,
            dir: info.dir.display().to_string(),
            applied_index: info.applied_index,
            digest: hex::encode(info.digest),
            bytes: info.bytes,
        }))
    }

    async fn list_clients(
        &self,
        request: Request<pb::ListClientsRequest>,
    ) -> Result<Response<pb::ListClientsResponse>, Status> {
        self.ctx
            .read_barrier(request.into_inner().allow_stale)
            .await?;
        let resp = self
            .ctx
            .read(|l| {
                Ok(pb::ListClientsResponse {
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
                })
            })
            .await?;
        Ok(Response::new(resp))
    }
}

// ---------------------------------------------------------------------------------------------
// Peer service
