//! The `Peer` service: Raft messages between replicas, as chunked opaque frames.

use super::*;

pub struct PeerService {
    ctx: Arc<NodeContext>,
}

impl PeerService {
    pub fn new(ctx: Arc<NodeContext>) -> Self {
        PeerService { ctx }
    }
}

/// The nice value of a thread sending a snapshot (0 is normal, 19 the lowest priority).
const SENDER_NICE: libc::c_int = 10;

type SnapshotChunks = std::pin::Pin<
    Box<dyn tokio_stream::Stream<Item = Result<pb::SnapshotChunk, Status>> + Send + 'static>,
>;

#[tonic::async_trait]
impl pb::peer_server::Peer for PeerService {
    type FetchSnapshotStream = SnapshotChunks;

    async fn fetch_snapshot(
        &self,
        request: Request<pb::SnapshotRequest>,
    ) -> Result<Response<SnapshotChunks>, Status> {
        let Some(from) = request.extensions().get::<PeerId>().map(|p| p.0) else {
            return Err(Status::unauthenticated(
                "snapshot fetch without an authenticated peer",
            ));
        };
        let index = request.into_inner().index;
        let files = self.ctx.snapshots.clone();
        if !files.available(index) {
            return Err(Status::not_found(format!(
                "no snapshot at index {index} (yet)"
            )));
        }
        tracing::info!(
            node = self.ctx.id,
            to = from,
            index,
            "sending a snapshot file"
        );
        // A few chunks ahead of the network: HTTP/2 flow control paces the reader.
        let (tx, rx) = tokio::sync::mpsc::channel(4);
        let raft = self.ctx.raft.clone();
        let (node, sender_tx) = (self.ctx.id, tx.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("snapshot-to-{from}"))
            .spawn(move || {
                // Below the threads that serve and replicate (Linux: a thread's own nice value).
                // SAFETY: setpriority on the calling thread; no memory is involved.
                unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, SENDER_NICE) };
                // While the stream moves, the leader does not take the snapshot for lost.
                let mut alive = || raft.snapshot_alive(from);
                if let Err(e) = files.send_blocking(index, &tx, &mut alive) {
                    tracing::warn!(node, to = from, index, "snapshot send failed: {e}");
                    let _ = tx.blocking_send(Err(e));
                }
            });
        if let Err(e) = spawned {
            let _ = sender_tx.try_send(Err(format!("snapshot sender thread: {e}")));
        }
        let chunks = tokio_stream::wrappers::ReceiverStream::new(rx).map(|c| {
            c.map(|data| pb::SnapshotChunk { data })
                .map_err(Status::internal)
        });
        Ok(Response::new(Box::pin(chunks)))
    }

    async fn stream(
        &self,
        request: Request<Streaming<pb::PeerFrame>>,
    ) -> Result<Response<pb::PeerAck>, Status> {
        let Some(from) = request.extensions().get::<PeerId>().map(|p| p.0) else {
            return Err(Status::unauthenticated(
                "peer stream without an authenticated sender",
            ));
        };
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
            if !frame.from_address.is_empty()
                && frame.from_address.len() <= 256
                && from != self.ctx.id
            {
                self.ctx.peers.set(from, frame.from_address);
            }
            // Every message must be from the node the stream authenticated as.
            if self.ctx.raft.step_from(from, frame.frame).is_err() {
                dropped += 1; // overloaded or stopped: Raft retransmits
            }
        }
        if dropped > 0 {
            tracing::debug!(
                node = self.ctx.id,
                from,
                dropped,
                "dropped inbound raft frames"
            );
        }
        Ok(Response::new(pb::PeerAck {}))
    }
}
