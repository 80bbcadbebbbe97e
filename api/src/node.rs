//! Node assembly: one RocksDB, the ledger, the consensus runtime and the gRPC server on one port.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use consensus::{NodeHandle, NodeRuntime, RaftLogStore};
use ed25519_dalek::SigningKey;
use ledger::{ClientRole, Command, Id, Ledger, RocksStore};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::auth::{AuthConfig, AuthLayer, Authenticator, ClientDirectory, KeyFileError};
use crate::events::{EventLog, EventLogConfig};
use crate::server::{AdminService, ApiLimits, LedgerService, NodeContext, PeerBook, PeerService};
use crate::snapshots::SnapshotFiles;
use crate::state_machine::{encode_proposal, LedgerStateMachine, SharedLedger};
use crate::transport::{GrpcTransport, TransportConfig};
use crate::view::LedgerView;
use crate::{pb, FILE_DESCRIPTOR_SET};

/// Raft tuning (see `consensus::Config` for the meaning of each field).
#[derive(Clone, Debug)]
pub struct RaftTuning {
    pub tick_interval_ms: u64,
    pub election_tick: usize,
    pub heartbeat_tick: usize,
    pub snapshot_threshold_entries: u64,
    /// Entries kept behind a snapshot for followers that lag a little.
    pub log_retain_entries: u64,
    /// Most log bytes kept for peers catching up after a snapshot.
    pub log_hold_bytes_max: u64,
    /// Group commit: most `Submit` batches packed into one log entry.
    pub max_proposals_per_entry: usize,
    /// Largest log entry, in bytes.
    pub max_entry_bytes: usize,
    /// How far past the last log time plus its own elapsed time a leader may stamp an entry.
    pub max_clock_step_ms: u64,
    /// Persist the log on a thread of its own (see `consensus::Config::log_sync_pipelined`).
    pub log_sync_pipelined: bool,
    /// Apply on a thread of its own (see `consensus::Config::apply_pipelined`).
    pub apply_pipelined: bool,
}

impl Default for RaftTuning {
    fn default() -> Self {
        let c = consensus::Config::default();
        RaftTuning {
            tick_interval_ms: c.tick_interval_ms,
            election_tick: c.election_tick,
            heartbeat_tick: c.heartbeat_tick,
            snapshot_threshold_entries: c.snapshot_threshold_entries,
            log_retain_entries: c.log_retain_entries,
            log_hold_bytes_max: c.log_hold_bytes_max,
            max_proposals_per_entry: c.max_proposals_per_entry,
            max_entry_bytes: c.max_entry_bytes,
            max_clock_step_ms: c.max_clock_step_ms,
            log_sync_pipelined: c.log_sync_pipelined,
            apply_pipelined: c.apply_pipelined,
        }
    }
}

#[derive(Clone, Debug)]
pub struct NodeConfig {
    /// Raft id, non-zero, never reused.
    pub id: u64,
    /// Holds `db/` (RocksDB: the ledger), `raft/` (RocksDB: the Raft log; see `datadir`),
    /// `snapshots/` and, unless `admin_key_file` is set, `admin.key`.
    pub data_dir: PathBuf,
    /// gRPC listen address for client, admin and peer traffic (port 0 = any free port).
    pub listen: SocketAddr,
    /// Prometheus metrics over plain HTTP at `/metrics` (port 0 = any free port); `None`: off.
    pub metrics_listen: Option<SocketAddr>,
    /// Address other nodes and redirected clients use to reach this node (default: the bound
    /// listen address).
    pub advertise: Option<String>,
    /// The other members of the cluster's INITIAL configuration as (id, host:port). With
    /// `join = false` the initial voters are these plus this node. With `join = true` this
    /// node starts as a non-member (it must be added with `AddNode`) and `peers` must list
    /// the cluster's initial voters.
    pub peers: Vec<(u64, String)>,
    pub join: bool,
    pub raft: RaftTuning,
    pub limits: ApiLimits,
    pub auth: AuthConfig,
    pub events: EventLogConfig,
    pub transport: TransportConfig,
    /// The cluster admin key (PKCS#8 PEM or hex). Must exist if set. If unset, `data_dir/admin.key`
    /// is used, generated (mode 0600) on first start. All nodes of a cluster need the same key:
    /// without TLS it also authenticates peer streams.
    pub admin_key_file: Option<PathBuf>,
    /// TLS directory (`suanpan certs init`): `ca.pem`, `node-<id>.pem`, `node-<id>.key`. With it
    /// every connection is TLS and peers authenticate by certificate; without it, plaintext.
    pub tls_dir: Option<PathBuf>,
    /// Serve plaintext without `tls_dir` (local development only: peer traffic can then be
    /// forged by anyone on the network). Without TLS and without this, the node refuses to start.
    pub insecure: bool,
    /// UNSAFE, tests only: acknowledge writes without fsync (a power loss then loses them).
    pub unsafe_no_fsync: bool,
    /// Benchmarks only: every fsync of the Raft log takes this much longer (a slower disk).
    pub emulated_log_fsync_ms: u64,
    /// Ed25519 key that signs audit checkpoints (all nodes of a cluster need the same one). Default:
    /// derived from the admin key, so it needs no distribution of its own.
    pub audit_key_file: Option<PathBuf>,
    /// Size of one memtable of each ledger column family. Behind the Raft log the ledger is
    /// written without RocksDB's WAL, so its memtables hold everything applied since the last
    /// flush: larger ones flush and compact less, use more memory and make the restart after a
    /// crash replay more of the log.
    pub ledger_memtable_bytes: usize,
    /// Size of one generation of the ledger's write-behind buffer (`ledger::writebehind`).
    pub ledger_write_behind_bytes: usize,
}

impl NodeConfig {
    pub fn new(id: u64, data_dir: impl Into<PathBuf>, listen: SocketAddr) -> NodeConfig {
        NodeConfig {
            id,
            data_dir: data_dir.into(),
            listen,
            advertise: None,
            peers: Vec::new(),
            join: false,
            raft: RaftTuning::default(),
            limits: ApiLimits::default(),
            auth: AuthConfig::default(),
            events: EventLogConfig::default(),
            transport: TransportConfig::default(),
            admin_key_file: None,
            audit_key_file: None,
            tls_dir: None,
            insecure: false,
            unsafe_no_fsync: false,
            emulated_log_fsync_ms: 0,
            metrics_listen: None,
            ledger_memtable_bytes: ledger::LEDGER_MEMTABLE_BYTES_DEFAULT,
            ledger_write_behind_bytes: ledger::writebehind::WRITE_BEHIND_BYTES_DEFAULT,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("configuration: {0}")]
    Config(String),
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    KeyFile(#[from] KeyFileError),
    #[error("storage: {0}")]
    Store(#[from] ledger::StoreError),
    #[error("ledger: {0}")]
    Ledger(#[from] ledger::LedgerError),
    #[error("consensus: {0}")]
    Consensus(#[from] consensus::ConsensusError),
    #[error("grpc server: {0}")]
    Server(#[from] tonic::transport::Error),
    #[error("raft node stopped: {0}")]
    RaftStopped(String),
}

/// Authentication reads the clients from the read view's index (never the applying ledger).
/// Largest header block a client may send (signatures and ids are a few hundred bytes).
const HEADER_LIST_BYTES_MAX: u32 = 16 << 10;
/// Most streams a client may open and reset before the server answers them.
const RESET_STREAMS_PENDING_MAX: usize = 64;

struct LedgerDirectory(Arc<LedgerView>);

impl ClientDirectory for LedgerDirectory {
    fn lookup(&self, public_key: &[u8; 32]) -> Option<(ClientRole, bool)> {
        self.0.client(public_key)
    }
    fn is_empty(&self) -> bool {
        !self.0.has_clients()
    }
}

/// A started node. Dropping it does not stop it: call [`RunningNode::shutdown`].
pub struct RunningNode {
    pub id: u64,
    /// The bound listen address (useful with port 0).
    pub local_addr: SocketAddr,
    /// The bound metrics address, if metrics are served.
    pub metrics_addr: Option<SocketAddr>,
    /// The admin key in use (load it in a client to administer the cluster).
    pub admin_key: SigningKey,
    pub raft: NodeHandle,
    pub ledger: SharedLedger,
    ctx: Arc<NodeContext>,
    stop: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>,
    background: Vec<tokio::task::JoinHandle<()>>,
}

fn load_or_create_admin_key(cfg: &NodeConfig) -> Result<SigningKey, NodeError> {
    match &cfg.admin_key_file {
        Some(p) => Ok(crate::auth::load_key_file(p)?),
        None => {
            let p = cfg.data_dir.join("admin.key");
            if p.exists() {
                Ok(crate::auth::load_key_file(&p)?)
            } else {
                Ok(crate::auth::generate_key_file(&p)?)
            }
        }
    }
}

/// Idempotency id of the bootstrap registration of `key` (same on every node and every retry).
pub fn bootstrap_command_id(key: &[u8; 32]) -> Id {
    let mut h = Sha256::new();
    h.update(b"suanpan-bootstrap-admin\n");
    h.update(key);
    let d = h.finalize();
    Id(u128::from_be_bytes(d[..16].try_into().expect("16 bytes")) | 1)
}

/// Starts a node: opens storage, starts Raft and serves gRPC. Returns once listening.
pub async fn start(cfg: NodeConfig) -> Result<RunningNode, NodeError> {
    if cfg.id == 0 {
        return Err(NodeError::Config("node id must be non-zero".into()));
    }
    if cfg.peers.iter().any(|(id, _)| *id == 0 || *id == cfg.id) {
        return Err(NodeError::Config(
            "peers must have non-zero ids other than this node's".into(),
        ));
    }
    if !cfg.data_dir.exists() {
        std::fs::create_dir_all(&cfg.data_dir)?;
        // The new directory's name is durable only once its parent is synced.
        if let Some(parent) = cfg.data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    let admin_key = load_or_create_admin_key(&cfg)?;
    let audit_key = match &cfg.audit_key_file {
        Some(p) => crate::auth::load_key_file(p)?,
        None => crate::auth::derived_audit_key(&admin_key),
    };

    let tls = match &cfg.tls_dir {
        Some(d) => Some(Arc::new(
            crate::tls::NodeTls::load(d, cfg.id).map_err(|e| NodeError::Config(e.to_string()))?,
        )),
        None if cfg.insecure => {
            tracing::warn!(
                node = cfg.id,
                "serving PLAINTEXT (--insecure): peer traffic can be read and forged on the network"
            );
            None
        }
        None => {
            return Err(NodeError::Config(
                "no --tls-dir: refusing to serve plaintext. Make certificates with `suanpan certs \
                 init` and pass --tls-dir, or pass --insecure for local development"
                    .into(),
            ))
        }
    };

    let dbs = crate::datadir::open(&cfg.data_dir, cfg.ledger_memtable_bytes)?;
    if dbs.log.is_none() {
        tracing::info!(
            node = cfg.id,
            "this data directory keeps its Raft log inside the ledger's database (made before \
             the log moved to raft/): log appends share RocksDB's write queue with the ledger"
        );
    }
    let ledger: SharedLedger = Arc::new(Mutex::new(Ledger::open(
        RocksStore::behind_log_buffered(dbs.ledger.clone(), cfg.ledger_write_behind_bytes)?,
    )?));
    let events = Arc::new(EventLog::new(cfg.events, ledger.lock().applied_index()));

    let incoming =
        tonic::transport::server::TcpIncoming::bind(cfg.listen)?.with_nodelay(Some(true));
    let local_addr = incoming.local_addr()?;
    let advertise = cfg
        .advertise
        .clone()
        .unwrap_or_else(|| local_addr.to_string());

    let peers = Arc::new(PeerBook::new(
        cfg.peers
            .iter()
            .cloned()
            .chain([(cfg.id, advertise.clone())]),
    ));
    let mut transport_cfg = cfg.transport.clone();
    let mut raft_cfg = consensus::Config::new(cfg.id, Vec::new());
    raft_cfg.tick_interval_ms = cfg.raft.tick_interval_ms;
    raft_cfg.election_tick = cfg.raft.election_tick;
    raft_cfg.heartbeat_tick = cfg.raft.heartbeat_tick;
    raft_cfg.snapshot_threshold_entries = cfg.raft.snapshot_threshold_entries;
    raft_cfg.log_retain_entries = cfg.raft.log_retain_entries;
    raft_cfg.log_hold_bytes_max = cfg.raft.log_hold_bytes_max;
    raft_cfg.max_proposals_per_entry = cfg.raft.max_proposals_per_entry;
    raft_cfg.max_entry_bytes = cfg.raft.max_entry_bytes;
    raft_cfg.max_clock_step_ms = cfg.raft.max_clock_step_ms;
    raft_cfg.log_sync_pipelined = cfg.raft.log_sync_pipelined;
    raft_cfg.apply_pipelined = cfg.raft.apply_pipelined;
    // One entry is one ledger batch: never more commands than the ledger applies at once.
    raft_cfg.max_weight_per_entry = ledger::BATCH_COMMANDS_MAX as u64;
    raft_cfg.initial_voters = if cfg.join {
        cfg.peers.iter().map(|(id, _)| *id).collect()
    } else {
        cfg.peers
            .iter()
            .map(|(id, _)| *id)
            .chain([cfg.id])
            .collect()
    };
    transport_cfg.max_frame_bytes = transport_cfg
        .max_frame_bytes
        .max(raft_cfg.max_message_bytes);
    let single_voter = raft_cfg.initial_voters == [cfg.id];
    // Snapshots are checkpoints of the database, streamed to peers on demand (see `snapshots`).
    let snapshots = SnapshotFiles::open(
        cfg.data_dir.join("snapshots"),
        ledger.lock().store().share(),
    )
    .map_err(NodeError::Config)?;
    let transport = Arc::new(
        GrpcTransport::new(
            cfg.id,
            advertise.clone(),
            transport_cfg.clone(),
            peers.clone(),
            admin_key.clone(),
            tls.clone(),
            tokio::runtime::Handle::current(),
        )
        .with_snapshot_files(snapshots.clone()),
    );
    let mut log_store = RaftLogStore::open(dbs.log_db())?;
    if cfg.unsafe_no_fsync {
        tracing::warn!(
            node = cfg.id,
            "--unsafe-no-fsync: writes are acknowledged WITHOUT fsync; a power loss loses them"
        );
        log_store = log_store.without_fsync();
    }
    if cfg.emulated_log_fsync_ms > 0 {
        tracing::warn!(
            node = cfg.id,
            ms = cfg.emulated_log_fsync_ms,
            "--emulate-log-fsync-ms: every fsync of the Raft log is made slower (benchmarks only)"
        );
        log_store = log_store
            .with_emulated_sync_delay(std::time::Duration::from_millis(cfg.emulated_log_fsync_ms));
    }
    // Refuse to start as a member that forgot its log (see `identity`).
    let log_empty = consensus::LogStore::is_empty(&log_store) && ledger.lock().applied_index() == 0;
    crate::identity::check(
        &cfg.data_dir,
        cfg.id,
        &admin_key,
        tls.as_deref(),
        &cfg.peers,
        log_empty,
    )
    .await?;
    let view = LedgerView::start(&ledger.lock())?;
    let metrics = crate::metrics::Metrics::new(cfg.id);
    let sm = LedgerStateMachine::new(ledger.clone(), events.clone())
        .with_observer(view.clone())
        .with_metrics(metrics.clone())
        .with_snapshot_files(snapshots.clone());
    let raft = NodeRuntime::start(raft_cfg, log_store, sm, transport)?;
    if single_voter {
        let _ = raft.campaign(); // no need to wait an election timeout alone
    }

    let ctx = Arc::new(NodeContext {
        id: cfg.id,
        advertise,
        view: view.clone(),
        read_permits: Arc::new(tokio::sync::Semaphore::new(
            cfg.limits.reads_concurrent_max.max(1),
        )),
        metrics: metrics.clone(),
        store: ledger.lock().store().share(),
        log_db: dbs.log.clone(),
        data_dir: cfg.data_dir.clone(),
        raft: raft.clone(),
        events,
        peers,
        admin_key: admin_key.clone(),
        audit_key,
        tls: tls.clone(),
        divergences: Default::default(),
        limits: cfg.limits.clone(),
        snapshots,
        closing: tokio::sync::watch::channel(false).0,
    });
    let mut auth_cfg = cfg.auth.clone();
    auth_cfg.max_request_bytes = cfg.limits.max_request_bytes;
    auth_cfg.request_timeout_ms = cfg.limits.request_timeout_ms;
    auth_cfg.cluster_id = crate::identity::cluster_id(&admin_key);
    let auth = Authenticator::new(
        auth_cfg,
        Arc::new(LedgerDirectory(view.clone())),
        admin_key.verifying_key(),
        cfg.id,
    )
    .with_metrics(metrics.clone());
    let auth = Arc::new(if tls.is_some() {
        auth.with_peer_tls()
    } else {
        auth
    });

    let max_req = cfg.limits.max_request_bytes;
    let reflection_v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| NodeError::Config(format!("reflection: {e}")))?;
    let reflection_v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .build_v1alpha()
        .map_err(|e| NodeError::Config(format!("reflection: {e}")))?;
    let keepalive = Duration::from_millis(cfg.limits.keepalive_interval_ms.max(1));
    let mut builder = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        // Dead or stalled connections are found and closed; limits on what one connection may
        // hold open; an HTTP/2 reset flood ends the connection.
        .http2_keepalive_interval(Some(keepalive))
        .http2_keepalive_timeout(Some(keepalive))
        .max_concurrent_streams(Some(cfg.limits.streams_per_connection_max))
        .http2_max_header_list_size(Some(HEADER_LIST_BYTES_MAX))
        .http2_max_pending_accept_reset_streams(Some(RESET_STREAMS_PENDING_MAX));
    if let Some(t) = &tls {
        builder = builder
            .tls_config(t.server_config())
            .map_err(|e| NodeError::Config(format!("tls: {e}")))?;
    }
    let router = builder
        .layer(AuthLayer::new(auth))
        .add_service(
            pb::ledger_server::LedgerServer::new(LedgerService::new(ctx.clone()))
                .max_decoding_message_size(max_req)
                .max_encoding_message_size(64 << 20),
        )
        .add_service(
            pb::admin_server::AdminServer::new(AdminService::new(ctx.clone()))
                .max_decoding_message_size(max_req)
                .max_encoding_message_size(64 << 20),
        )
        .add_service(
            pb::peer_server::PeerServer::new(PeerService::new(ctx.clone()))
                .max_decoding_message_size(transport_cfg.max_frame_bytes + 4096),
        )
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let incoming = crate::server::connections::limit(incoming, cfg.limits.connections_max);
    let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async {
        let _ = stop_rx.await;
    }));

    let bootstrap = tokio::spawn(bootstrap_admin(
        ctx.clone(),
        admin_key.verifying_key().to_bytes(),
    ));
    let digest_watch = tokio::spawn(crate::server::digest_watch::run(ctx.clone()));
    let mut background = vec![bootstrap, digest_watch];
    let metrics_addr = match cfg.metrics_listen {
        Some(addr) => {
            let (bound, task) = serve_metrics(addr, ctx.clone()).await?;
            background.push(task);
            Some(bound)
        }
        None => None,
    };
    tracing::info!(node = cfg.id, %local_addr, "suanpan node listening");
    Ok(RunningNode {
        id: cfg.id,
        local_addr,
        metrics_addr,
        admin_key,
        raft,
        ledger,
        ctx,
        stop: Some(stop_tx),
        server: Some(server),
        background,
    })
}

/// Serves `GET /metrics` (Prometheus text format) on `addr` until the node stops.
async fn serve_metrics(
    addr: SocketAddr,
    ctx: Arc<NodeContext>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), NodeError> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let ctx = ctx.clone();
            async move {
                // Reading the Raft status waits on the Raft thread: off the async workers.
                let body = tokio::task::spawn_blocking(move || ctx.render_metrics())
                    .await
                    .unwrap_or_default();
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    body,
                )
            }
        }),
    );
    tracing::info!(%bound, "serving Prometheus metrics at /metrics");
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!("metrics server: {e}");
        }
    });
    Ok((bound, task))
}

/// Once this node leads and the admin key is not registered yet, registers it through the log.
async fn bootstrap_admin(ctx: Arc<NodeContext>, key: [u8; 32]) {
    let cmd = Command::RegisterClient(ledger::RegisterClient {
        id: bootstrap_command_id(&key),
        public_key: key,
        role: ClientRole::Admin,
        name: "bootstrap-admin".into(),
    });
    loop {
        if ctx.view.client(&key).is_some() {
            return; // registered (or deliberately revoked later): nothing to do
        }
        if ctx.raft.status().is_err() {
            return;
        }
        if ctx.raft.is_leader() {
            let rx = ctx
                .raft
                .propose(encode_proposal(std::slice::from_ref(&cmd)));
            match tokio::time::timeout(Duration::from_secs(5), rx).await {
                Ok(Ok(consensus::ProposeOutcome::Applied { .. })) => {
                    tracing::info!(node = ctx.id, "registered the bootstrap admin key");
                }
                other => tracing::debug!(
                    node = ctx.id,
                    "bootstrap admin registration not applied yet: {other:?}"
                ),
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// How long shutdown waits for in-flight calls before cutting them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

impl RunningNode {
    /// The node's read view (what queries, authentication and validation read).
    pub fn view(&self) -> &Arc<LedgerView> {
        &self.ctx.view
    }

    /// Stops serving, stops Raft, and waits for both.
    pub async fn shutdown(mut self) -> Result<(), NodeError> {
        for b in self.background.drain(..) {
            b.abort();
        }
        self.ctx.closing.send_replace(true);
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        let served = match self.server.take() {
            Some(mut h) => match tokio::time::timeout(SHUTDOWN_GRACE, &mut h).await {
                Ok(r) => r.unwrap_or(Ok(())),
                Err(_) => {
                    tracing::warn!(
                        node = self.id,
                        "server did not stop within the grace period; aborting it"
                    );
                    h.abort();
                    Ok(())
                }
            },
            None => Ok(()),
        };
        let raft = self.raft.clone();
        let _ = tokio::task::spawn_blocking(move || raft.shutdown()).await;
        // The ledger writes behind the log (no WAL): a clean stop leaves it on disk, so the
        // next start has nothing to replay.
        let mut store = self.ctx.store.share();
        let persisted =
            tokio::task::spawn_blocking(move || ledger::Store::persist(&mut store)).await;
        if !matches!(persisted, Ok(Ok(()))) {
            tracing::warn!(node = self.id, "flushing the ledger at shutdown failed: {persisted:?}; the next start replays the log");
        }
        let view = self.ctx.view.clone();
        let _ = tokio::task::spawn_blocking(move || view.stop()).await;
        served?;
        Ok(())
    }

    /// Resolves when the Raft node stops on its own (fatal error), with the reason.
    pub async fn stopped(&self) -> String {
        loop {
            if let Some(r) = self.raft.fatal_error() {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// Runs a node until `shutdown` resolves (or Raft stops on a fatal error), then stops it cleanly.
pub async fn run(cfg: NodeConfig, shutdown: impl Future<Output = ()>) -> Result<(), NodeError> {
    let node = start(cfg).await?;
    let fatal = tokio::select! {
        _ = shutdown => None,
        r = node.stopped() => Some(r),
    };
    node.shutdown().await?;
    match fatal {
        Some(r) => Err(NodeError::RaftStopped(r)),
        None => Ok(()),
    }
}
