//! Outbound Raft transport over the `Peer` gRPC service.
//!
//! One task per destination owns a bounded queue of frames and one long-lived client stream to
//! the peer. `send` never blocks: when a queue is full the frame is dropped (Raft retransmits).
//! A broken stream is reopened with exponential backoff; frames queued while disconnected are
//! discarded before reconnecting (they are stale, and a partial chunked message is discarded by
//! the receiver's reassembler anyway).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::auth::{peer_headers, HEADER_PEER_FROM};
use crate::pb;
use crate::server::PeerBook;
use crate::snapshots::{parse_descriptor, SnapshotFiles};

#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// Frames queued per destination.
    pub queue_frames: usize,
    /// Largest frame sent, in bytes (consensus chunks messages below this).
    pub max_frame_bytes: usize,
    pub connect_timeout_ms: u64,
    pub backoff_min_ms: u64,
    pub backoff_max_ms: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        TransportConfig {
            queue_frames: 4_096,
            max_frame_bytes: 2 << 20,
            connect_timeout_ms: 1_000,
            backoff_min_ms: 50,
            backoff_max_ms: 2_000,
        }
    }
}

pub struct GrpcTransport {
    me: u64,
    /// Mutual TLS to peers (`None`: plaintext with admin-key-signed stream opens, insecure).
    tls: Option<Arc<crate::tls::NodeTls>>,
    advertise: String,
    cfg: TransportConfig,
    book: Arc<PeerBook>,
    key: SigningKey,
    rt: tokio::runtime::Handle,
    queues: Mutex<HashMap<u64, mpsc::Sender<Vec<u8>>>>,
    dropped_frames: AtomicU64,
    /// Where fetched snapshot files go (`None`: snapshots travel inline).
    snapshots: Option<Arc<SnapshotFiles>>,
}

impl GrpcTransport {
    pub fn new(
        me: u64,
        advertise: String,
        cfg: TransportConfig,
        book: Arc<PeerBook>,
        key: SigningKey,
        tls: Option<Arc<crate::tls::NodeTls>>,
        rt: tokio::runtime::Handle,
    ) -> Self {
        GrpcTransport {
            me,
            tls,
            advertise,
            cfg,
            book,
            key,
            rt,
            queues: Mutex::new(HashMap::new()),
            dropped_frames: AtomicU64::new(0),
            snapshots: None,
        }
    }

    /// Fetches the files behind snapshot descriptors into `files` (see [`crate::snapshots`]).
    pub fn with_snapshot_files(mut self, files: Arc<SnapshotFiles>) -> Self {
        self.snapshots = Some(files);
        self
    }

    /// Frames dropped because a destination's queue was full or the peer is unknown.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames.load(Ordering::Relaxed)
    }

    fn queue(&self, to: u64) -> mpsc::Sender<Vec<u8>> {
        let mut q = self.queues.lock();
        if let Some(tx) = q.get(&to) {
            if !tx.is_closed() {
                return tx.clone();
            }
        }
        let (tx, rx) = mpsc::channel(self.cfg.queue_frames.max(1));
        let link = Link {
            me: self.me,
            tls: self.tls.clone(),
            to,
            advertise: self.advertise.clone(),
            cfg: self.cfg.clone(),
            book: self.book.clone(),
            key: self.key.clone(),
        };
        self.rt.spawn(link.run(rx));
        q.insert(to, tx.clone());
        tx
    }
}

impl consensus::Transport for GrpcTransport {
    fn send(&self, to: u64, msg: Vec<u8>) {
        if to == self.me || msg.len() > self.cfg.max_frame_bytes {
            self.dropped_frames.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.queue(to).try_send(msg).is_err() {
            self.dropped_frames.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn member_address(&self, id: u64, address: &str) {
        if id != self.me {
            self.book.set(id, address.to_string());
        }
    }

    fn fetch_snapshot(
        &self,
        from: u64,
        index: u64,
        data: &[u8],
        done: Box<dyn FnOnce(bool) + Send>,
    ) -> bool {
        let (Some(files), Some(at)) = (self.snapshots.clone(), parse_descriptor(data)) else {
            return false;
        };
        // `done` hands the message back through the node's queue: never from inside this call,
        // which runs on the node's own thread.
        if at != index {
            tracing::warn!(from, index, at, "snapshot descriptor names another index");
            self.rt.spawn(async move { done(false) });
            return true;
        }
        if files.complete(index).is_some() {
            // Fetched before (the message was resent).
            self.rt.spawn(async move { done(true) });
            return true;
        }
        let (me, book, tls) = (self.me, self.book.clone(), self.tls.clone());
        let (headers, connect_ms) = (
            auth_headers(self.tls.is_some(), &self.key, self.me, from),
            self.cfg.connect_timeout_ms,
        );
        self.rt.spawn(async move {
            let started = std::time::Instant::now();
            let fetched = async {
                let addr = book.get(from).ok_or("no address for the sender")?;
                let channel = peer_endpoint(tls.as_deref(), from, &addr)?
                    .connect_timeout(Duration::from_millis(connect_ms))
                    .tcp_nodelay(true)
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?;
                let mut req = tonic::Request::new(pb::SnapshotRequest { index });
                for (k, v) in headers {
                    if let Ok(v) = v.parse() {
                        req.metadata_mut().insert(k, v);
                    }
                }
                let idle = Duration::from_millis(crate::snapshots::FETCH_IDLE_MS);
                let mut client = pb::peer_client::PeerClient::new(channel)
                    .max_decoding_message_size(crate::snapshots::CHUNK_BYTES + 4096);
                let stream = tokio::time::timeout(idle, client.fetch_snapshot(req))
                    .await
                    .map_err(|_| "no answer".to_string())?
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
                    .into_inner();
                use futures::StreamExt;
                let chunks = stream.map(|c| c.map(|c| c.data).map_err(|s| s.to_string()));
                files.receive(index, chunks).await
            }
            .await;
            match fetched {
                Ok(bytes) => {
                    tracing::info!(
                        node = me,
                        from,
                        index,
                        bytes,
                        ms = started.elapsed().as_millis() as u64,
                        "snapshot file fetched"
                    );
                    done(true);
                }
                Err(e) => {
                    let e: String = e;
                    tracing::info!(node = me, from, index, "snapshot fetch failed: {e}");
                    done(false);
                }
            }
        });
        true
    }
}

struct Link {
    me: u64,
    tls: Option<Arc<crate::tls::NodeTls>>,
    to: u64,
    advertise: String,
    cfg: TransportConfig,
    book: Arc<PeerBook>,
    key: SigningKey,
}

impl Link {
    async fn run(self, mut rx: mpsc::Receiver<Vec<u8>>) {
        let mut backoff = Duration::from_millis(self.cfg.backoff_min_ms);
        let max_backoff = Duration::from_millis(self.cfg.backoff_max_ms);
        // Wait for the first frame before connecting.
        let Some(mut pending) = rx.recv().await else {
            return;
        };
        loop {
            let Some(addr) = self.book.get(self.to) else {
                tracing::debug!(
                    from = self.me,
                    to = self.to,
                    "no address for peer; dropping frame"
                );
                pending = match rx.recv().await {
                    Some(f) => f,
                    None => return,
                };
                continue;
            };
            let connected = async {
                let ep = peer_endpoint(self.tls.as_deref(), self.to, &addr)?
                    .connect_timeout(Duration::from_millis(self.cfg.connect_timeout_ms))
                    .tcp_nodelay(true)
                    .http2_keep_alive_interval(Duration::from_secs(10))
                    .keep_alive_while_idle(true);
                ep.connect().await.map_err(|e| e.to_string())
            }
            .await;
            let channel = match connected {
                Ok(c) => c,
                Err(e) => {
                    tracing::debug!(from = self.me, to = self.to, %addr, "peer connect failed: {e}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(max_backoff);
                    // Discard what queued up meanwhile, keep the newest frame.
                    while let Ok(f) = rx.try_recv() {
                        pending = f;
                    }
                    continue;
                }
            };
            backoff = Duration::from_millis(self.cfg.backoff_min_ms);
            let (stx, srx) = mpsc::channel::<pb::PeerFrame>(64);
            let mut req = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(srx));
            for (k, v) in auth_headers(self.tls.is_some(), &self.key, self.me, self.to) {
                if let Ok(v) = v.parse() {
                    req.metadata_mut().insert(k, v);
                }
            }
            let mut client = pb::peer_client::PeerClient::new(channel)
                .max_encoding_message_size(self.cfg.max_frame_bytes + 4096);
            let call = client.stream(req);
            tokio::pin!(call);
            let mut first = Some(self.advertise.clone());
            let mut next = Some(std::mem::take(&mut pending));
            let ended = loop {
                if let Some(frame) = next.take() {
                    let msg = pb::PeerFrame {
                        frame,
                        from_address: first.take().unwrap_or_default(),
                    };
                    tokio::select! {
                        r = stx.send(msg) => if r.is_err() { break "stream closed".to_string() },
                        r = &mut call => break format!("stream ended: {:?}", r.err()),
                    }
                }
                tokio::select! {
                    f = rx.recv() => match f {
                        Some(f) => next = Some(f),
                        None => return, // transport dropped: node shutting down
                    },
                    r = &mut call => break format!("stream ended: {:?}", r.err()),
                }
            };
            tracing::debug!(from = self.me, to = self.to, "peer stream broke: {ended}");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(max_backoff);
            pending = match rx.recv().await {
                Some(f) => f,
                None => return,
            };
            while let Ok(f) = rx.try_recv() {
                pending = f;
            }
        }
    }
}

/// The metadata proving to peer `to` that a call is from node `me`. With TLS the connection
/// proves it, and the admin key is not sent anywhere.
fn auth_headers(tls: bool, key: &SigningKey, me: u64, to: u64) -> Vec<(&'static str, String)> {
    if tls {
        vec![(HEADER_PEER_FROM, me.to_string())]
    } else {
        peer_headers(key, me, to).to_vec()
    }
}

/// The endpoint of peer `to` at `addr`: mutual TLS as this node when configured, else plaintext.
pub(crate) fn peer_endpoint(
    tls: Option<&crate::tls::NodeTls>,
    to: u64,
    addr: &str,
) -> Result<tonic::transport::Endpoint, String> {
    match tls {
        Some(t) => tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
            .map_err(|e| e.to_string())?
            .tls_config(t.peer_client_config(to))
            .map_err(|e| e.to_string()),
        None => tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string()),
    }
}

/// A connection to peer `to` at `addr` for one admin call (status fan-out, digest comparison),
/// every step bounded by `timeout`.
pub(crate) async fn peer_channel(
    tls: Option<&crate::tls::NodeTls>,
    to: u64,
    addr: &str,
    timeout: Duration,
) -> Result<tonic::transport::Channel, String> {
    let endpoint = peer_endpoint(tls, to, addr)?
        .connect_timeout(timeout)
        .timeout(timeout);
    tokio::time::timeout(timeout, endpoint.connect())
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())
}
