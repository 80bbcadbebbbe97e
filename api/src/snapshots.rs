//! Snapshot files: a Raft snapshot of the ledger is a RocksDB checkpoint beside the database,
//! streamed on demand, not a message.
//!
//! Raft's snapshot message carries only a descriptor (`SPLF`, a version byte, the index).
//! * **Taken** at a snapshot point: the Raft thread persists the ledger and makes a RocksDB
//!   checkpoint, `<data dir>/snapshots/checkpoint-<index>` — hard links to the immutable table
//!   files, no copy and no serialization (RocksDB builds it under a temporary name and renames
//!   it, so after a crash it is whole or absent).
//! * **Sent** on demand: a follower that receives the descriptor fetches the state from the
//!   sender (`Peer.FetchSnapshot`): the sender opens its checkpoint read-only and streams the
//!   ledger's snapshot format (`ledger::write_snapshot`: identical state gives identical bytes on
//!   every replica) in 1 MiB chunks under HTTP/2 flow control, on a blocking thread — no size
//!   limit, nothing held whole. The follower writes it to `<index>.spls`, checks its checksum
//!   as it goes, and only then lets Raft step the message. A sender without the checkpoint
//!   answers NOT_FOUND and Raft sends the message again later.
//! * **Restored** from the received file, read twice (checked, then installed). A node that
//!   received one serves that same file to others.
//! * **Kept**: the newest checkpoint or received file only (older ones are removed when a newer
//!   one is complete) — what peers fetch, and what a restore interrupted by a crash reads again.
//!   A snapshot being streamed to a peer is kept until that stream ends: RocksDB opens a
//!   checkpoint's table files lazily, so removing it would cut the stream part way, and the peer
//!   would start over on the newer one (under a high entry rate, for ever).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;

const DESCRIPTOR_MAGIC: &[u8; 4] = b"SPLF";
const DESCRIPTOR_VERSION: u8 = 1;
const DESCRIPTOR_BYTES: usize = 4 + 1 + 8;
const CHECKSUM_BYTES: usize = 32;
/// Size of one `SnapshotChunk`.
pub const CHUNK_BYTES: usize = 1 << 20;
/// The rate a node sends a snapshot at: streaming is paced so that it takes a bounded share of
/// the sender's CPU and disk while it goes on serving (a 5 GB ledger takes ~80 s).
pub const SEND_BYTES_PER_S: u64 = 64 << 20;
/// A fetch that receives nothing for this long is abandoned (Raft sends the message again).
pub const FETCH_IDLE_MS: u64 = 20_000;
/// A received snapshot file is synced every this many bytes (see `SnapshotFiles::receive`).
const RECEIVE_SYNC_BYTES: u64 = 32 << 20;

/// What Raft's snapshot message carries: a reference to the file at `index`.
pub fn descriptor(index: u64) -> Vec<u8> {
    let mut d = Vec::with_capacity(DESCRIPTOR_BYTES);
    d.extend_from_slice(DESCRIPTOR_MAGIC);
    d.push(DESCRIPTOR_VERSION);
    d.extend_from_slice(&index.to_be_bytes());
    d
}

/// The index a descriptor refers to (`None`: not a descriptor — inline snapshot data).
pub fn parse_descriptor(data: &[u8]) -> Option<u64> {
    if data.len() != DESCRIPTOR_BYTES
        || &data[..4] != DESCRIPTOR_MAGIC
        || data[4] != DESCRIPTOR_VERSION
    {
        return None;
    }
    Some(u64::from_be_bytes(data[5..].try_into().ok()?))
}

pub struct SnapshotFiles {
    dir: PathBuf,
    /// The live database the checkpoints are taken of.
    store: ledger::RocksStore,
    /// Which snapshots are being streamed (index → streams), and the index below which
    /// snapshots are stale. Held only to decide, never while removing: the Raft thread takes it.
    holds: Arc<Mutex<Holds>>,
}

#[derive(Default)]
struct Holds {
    streams: BTreeMap<u64, usize>,
    /// Received files older than this (the last prune's) are removed once not streamed.
    keep_from: u64,
    /// Likewise for checkpoints.
    keep_checkpoints_from: u64,
}

/// A snapshot being streamed: it is not removed until this is dropped.
pub struct Hold<'a> {
    files: &'a SnapshotFiles,
    index: u64,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        {
            let mut h = self.files.holds.lock();
            if let Some(n) = h.streams.get_mut(&self.index) {
                *n -= 1;
                if *n == 0 {
                    h.streams.remove(&self.index);
                }
            }
        }
        // Whatever a prune skipped while it was streamed goes now (on this sender's thread).
        remove_stale(&self.files.dir, &self.files.holds);
    }
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

/// The index in a file or directory name `<prefix><index><suffix>`.
fn index_in(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
    name.strip_prefix(prefix)?
        .strip_suffix(suffix)?
        .parse()
        .ok()
}

impl SnapshotFiles {
    /// Opens (creates) the snapshot directory of the database behind `store` and removes what an
    /// interrupted checkpoint or fetch left (temporary directories, partial files).
    pub fn open(dir: PathBuf, store: ledger::RocksStore) -> Result<Arc<SnapshotFiles>, String> {
        std::fs::create_dir_all(&dir).map_err(|e| io_err("create", &dir, e))?;
        let entries = std::fs::read_dir(&dir).map_err(|e| io_err("read", &dir, e))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.ends_with(".tmp") && path.is_dir() {
                std::fs::remove_dir_all(&path).map_err(|e| io_err("remove", &path, e))?;
            } else if name.ends_with(".part") || name.ends_with(".tmp") {
                std::fs::remove_file(&path).map_err(|e| io_err("remove", &path, e))?;
            }
        }
        Ok(Arc::new(SnapshotFiles {
            dir,
            store,
            holds: Arc::new(Mutex::new(Holds::default())),
        }))
    }

    fn checkpoint_path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("checkpoint-{index:020}"))
    }

    fn path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("{index:020}.spls"))
    }

    /// The complete received file of the snapshot at `index`, if this node has one.
    pub fn complete(&self, index: u64) -> Option<PathBuf> {
        let p = self.path(index);
        p.is_file().then_some(p)
    }

    /// Whether this node can send the snapshot at `index` (its checkpoint or a received file).
    pub fn available(&self, index: u64) -> bool {
        self.checkpoint_path(index).is_dir() || self.complete(index).is_some()
    }

    /// Checkpoints the database as it is now (the ledger persisted at `index`): hard links, on
    /// the calling (Raft) thread. Older snapshots are removed once it exists.
    pub fn checkpoint(&self, index: u64) -> Result<(), String> {
        let path = self.checkpoint_path(index);
        if !path.is_dir() {
            let started = Instant::now();
            ledger::rocks::checkpoint(&self.store, &path).map_err(|e| e.to_string())?;
            tracing::info!(
                index,
                ms = started.elapsed().as_millis() as u64,
                "snapshot checkpoint made"
            );
        }
        self.prune(index);
        Ok(())
    }

    /// Makes a complete `.part` file the snapshot at `index`: synced, renamed, directory synced.
    fn seal(&self, file: std::fs::File, part: &Path, index: u64) -> Result<(), String> {
        file.sync_all().map_err(|e| io_err("sync", part, e))?;
        drop(file);
        let path = self.path(index);
        std::fs::rename(part, &path).map_err(|e| io_err("rename", part, e))?;
        std::fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err("sync", &self.dir, e))
    }

    /// Removes every checkpoint and received file older than `keep` (one being streamed when
    /// its stream ends), on a thread of its own: callers are the Raft thread and the runtime,
    /// and removing the last links of gigabytes of table files took the Raft thread 1.1–1.4 s
    /// on a 10 M-transfer ledger (long enough for an election).
    pub fn prune(&self, keep: u64) {
        let mut h = self.holds.lock();
        h.keep_from = keep;
        h.keep_checkpoints_from = keep;
        drop(h);
        self.remove_stale_in_background();
    }

    fn prune_received(&self, keep: u64) {
        self.holds.lock().keep_from = keep;
        self.remove_stale_in_background();
    }

    fn remove_stale_in_background(&self) {
        let (dir, holds) = (self.dir.clone(), self.holds.clone());
        let spawned = std::thread::Builder::new()
            .name("snapshot-prune".into())
            .spawn(move || remove_stale(&dir, &holds));
        if let Err(e) = spawned {
            // Nothing is lost: the next prune removes them.
            tracing::warn!("cannot start removing old snapshots: {e}");
        }
    }

    /// Keeps the snapshot at `index` while the returned hold lives (a stream reads it).
    pub fn hold(&self, index: u64) -> Hold<'_> {
        *self.holds.lock().streams.entry(index).or_default() += 1;
        Hold { files: self, index }
    }

    /// Receives the file at `index` from `chunks` (in order), checking its trailing checksum as
    /// it goes; the file becomes complete only if it matches. Returns its length.
    pub async fn receive<S>(&self, index: u64, mut chunks: S) -> Result<u64, String>
    where
        S: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin,
    {
        use futures::StreamExt;
        // Fetches are one at a time, and a received file is restored before the next fetch
        // starts: older received files are done with.
        self.prune_received(index);
        let part = self.dir.join(format!("{index:020}.spls.part"));
        let mut out = std::io::BufWriter::with_capacity(
            CHUNK_BYTES,
            std::fs::File::create(&part).map_err(|e| io_err("create", &part, e))?,
        );
        let mut check = TailChecksum::default();
        let (mut bytes, mut unsynced) = (0u64, 0u64);
        let received = async {
            let idle = std::time::Duration::from_millis(FETCH_IDLE_MS);
            while let Some(chunk) = tokio::time::timeout(idle, chunks.next())
                .await
                .map_err(|_| format!("snapshot {index}: no data for {FETCH_IDLE_MS} ms"))?
            {
                let chunk = chunk?;
                check.push(&chunk);
                bytes += chunk.len() as u64;
                out.write_all(&chunk)
                    .map_err(|e| io_err("write", &part, e))?;
                // Written back as it arrives, not in the kernel's bursts: gigabytes of dirty
                // pages flushed at once stalled the members' log fsyncs on a shared disk
                // (1.5–2 s p99 windows every ~34 s while a 6 GB snapshot streamed).
                unsynced += chunk.len() as u64;
                if unsynced >= RECEIVE_SYNC_BYTES {
                    unsynced = 0;
                    out.flush()
                        .and_then(|()| out.get_ref().sync_data())
                        .map_err(|e| io_err("sync", &part, e))?;
                }
            }
            if !check.matches() {
                return Err(format!(
                    "snapshot {index}: checksum mismatch after {bytes} bytes"
                ));
            }
            let file = out.into_inner().map_err(|e| e.to_string())?;
            self.seal(file, &part, index)
        }
        .await;
        match received {
            Ok(()) => Ok(bytes),
            Err(e) => {
                let _ = std::fs::remove_file(&part);
                Err(e)
            }
        }
    }

    /// Sends the snapshot at `index` in chunks into `tx` (a blocking sender for
    /// `Peer.FetchSnapshot`): a received file as it is, or the snapshot format streamed from the
    /// checkpoint opened read-only. Stops early if the receiver goes away.
    pub fn send_blocking(
        &self,
        index: u64,
        tx: &tokio::sync::mpsc::Sender<Result<Vec<u8>, String>>,
        alive: &mut dyn FnMut(),
    ) -> Result<(), String> {
        let _hold = self.hold(index);
        let mut out = ChunkSender {
            tx,
            buf: Vec::with_capacity(CHUNK_BYTES),
            alive,
            sent: 0,
            started: Instant::now(),
        };
        if let Some(path) = self.complete(index) {
            let mut f = std::fs::File::open(&path).map_err(|e| io_err("open", &path, e))?;
            match std::io::copy(&mut f, &mut out).and_then(|_| out.flush()) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(io_err("read", &path, e)),
            }
        }
        let path = self.checkpoint_path(index);
        if !path.is_dir() {
            return Err(format!("no snapshot at {index}"));
        }
        let store = ledger::rocks::open_read_only(&path).map_err(|e| e.to_string())?;
        match ledger::write_snapshot(&store, &mut out) {
            Ok(_) => Ok(()),
            Err(_) if out.tx.is_closed() => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Removes the stale snapshots in `dir` no stream holds. The lock is held while choosing, not
/// while removing (that can take a second; the Raft thread takes the lock to prune). A stream
/// that starts on a stale snapshot while it is being removed fails, and its peer fetches again.
fn remove_stale(dir: &Path, holds: &Mutex<Holds>) {
    let stale: Vec<(String, PathBuf, bool)> = {
        let h = holds.lock();
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let held = |i: u64| h.streams.contains_key(&i);
                let is_dir = match (
                    index_in(&name, "", ".spls"),
                    index_in(&name, "checkpoint-", ""),
                ) {
                    (Some(i), _) if i < h.keep_from && !held(i) => false,
                    (_, Some(i)) if i < h.keep_checkpoints_from && !held(i) => true,
                    _ => return None,
                };
                Some((name, e.path(), is_dir))
            })
            .collect()
    };
    for (name, path, is_dir) in stale {
        let removed = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        if let Err(err) = removed {
            tracing::warn!("cannot remove old snapshot {name}: {err}");
        }
    }
}

/// A writer that sends what it is given as chunks of `CHUNK_BYTES` (the last one shorter).
struct ChunkSender<'a> {
    tx: &'a tokio::sync::mpsc::Sender<Result<Vec<u8>, String>>,
    buf: Vec<u8>,
    /// Called every `ALIVE_CHUNKS` chunks: the transfer is progressing.
    alive: &'a mut dyn FnMut(),
    sent: u64,
    started: Instant,
}

const ALIVE_CHUNKS: u64 = 64;

impl Write for ChunkSender<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let n = b.len().min(CHUNK_BYTES - self.buf.len());
        self.buf.extend_from_slice(&b[..n]);
        if self.buf.len() == CHUNK_BYTES {
            self.flush()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        // Paced: chunk n leaves no earlier than n chunks' worth of time after the start.
        let due = std::time::Duration::from_secs_f64(
            (self.sent * CHUNK_BYTES as u64) as f64 / SEND_BYTES_PER_S as f64,
        );
        if let Some(wait) = due.checked_sub(self.started.elapsed()) {
            std::thread::sleep(wait);
        }
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK_BYTES));
        self.sent += 1;
        if self.sent % ALIVE_CHUNKS == 0 {
            (self.alive)();
        }
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "receiver gone"))
    }
}

/// blake3 of everything but the last 32 bytes, compared with those bytes (the snapshot format's
/// trailer), over a stream of chunks.
#[derive(Default)]
struct TailChecksum {
    hasher: blake3::Hasher,
    tail: Vec<u8>,
}

impl TailChecksum {
    fn push(&mut self, chunk: &[u8]) {
        self.tail.extend_from_slice(chunk);
        if self.tail.len() > CHECKSUM_BYTES {
            let cut = self.tail.len() - CHECKSUM_BYTES;
            self.hasher.update(&self.tail[..cut]);
            self.tail.drain(..cut);
        }
    }
    fn matches(&self) -> bool {
        self.tail.len() == CHECKSUM_BYTES && self.hasher.finalize().as_bytes()[..] == self.tail[..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_round_trip_and_inline_data_is_not_one() {
        assert_eq!(parse_descriptor(&descriptor(42)), Some(42));
        assert_eq!(parse_descriptor(b"SPLS\x03rest"), None);
        assert_eq!(parse_descriptor(&descriptor(42)[..12]), None);
    }

    /// Snapshot files beside a new, empty database in `dir`.
    fn files_in(dir: &Path) -> Arc<SnapshotFiles> {
        let db = ledger::open_db(&dir.join("db"), &[]).unwrap();
        SnapshotFiles::open(dir.join("snapshots"), ledger::RocksStore::new(db).unwrap()).unwrap()
    }

    #[test]
    fn a_snapshot_being_streamed_outlives_a_prune_and_goes_when_its_stream_ends() {
        let dir = tempfile::tempdir().unwrap();
        let files = files_in(dir.path());
        // Held before the file exists: the prune `checkpoint(5)` started runs on a thread of its
        // own and would otherwise race the write below.
        let (streaming, received) = (files.hold(5), files.hold(4));
        files.checkpoint(5).unwrap();
        std::fs::write(files.path(4), b"received").unwrap();
        let also_streaming = files.hold(5);
        files.checkpoint(9).unwrap();
        assert!(files.available(5) && files.available(4) && files.available(9));
        drop(received);
        assert!(
            !files.available(4),
            "a stale file no stream holds goes at once"
        );
        drop(streaming);
        assert!(files.available(5), "another stream still reads it");
        drop(also_streaming);
        assert!(
            !files.available(5),
            "the stale checkpoint goes when its last stream ends"
        );
        assert!(files.available(9));
        // A hold on the newest one keeps nothing stale alive.
        drop(files.hold(9));
        assert!(files.available(9));
    }

    #[test]
    fn a_newer_checkpoint_removes_the_older_ones_off_the_calling_thread() {
        let dir = tempfile::tempdir().unwrap();
        let files = files_in(dir.path());
        files.checkpoint(5).unwrap();
        std::fs::write(files.path(7), b"received").unwrap();
        files.checkpoint(9).unwrap();
        let gone = (0..500).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(10));
            !files.available(5) && !files.available(7)
        });
        assert!(gone, "older snapshots still there after 5 s");
        assert!(files.available(9));
    }

    #[test]
    fn the_tail_checksum_holds_back_the_trailer_across_chunk_boundaries() {
        let body = vec![7u8; 3_000];
        let mut file = body.clone();
        file.extend_from_slice(blake3::hash(&body).as_bytes());
        for split in [1, 31, 32, 33, 1_000, 3_031] {
            let mut c = TailChecksum::default();
            for part in file.chunks(split) {
                c.push(part);
            }
            assert!(c.matches(), "chunks of {split}");
        }
        let mut c = TailChecksum::default();
        file[10] ^= 1;
        c.push(&file);
        assert!(!c.matches());
    }
}
