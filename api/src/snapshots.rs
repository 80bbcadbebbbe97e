//! Snapshot files: a Raft snapshot of the ledger is a file beside the database, not a message.
//!
//! Raft's snapshot message carries only a descriptor (`SPLF`, a version byte, the index). The
//! state is the ledger's streamed snapshot format (`ledger::write_snapshot`: identical state
//! gives identical bytes on every replica) in `<data dir>/snapshots/<index>.spls`.
//! * **Taken** at a snapshot point: the Raft thread persists the ledger and makes a RocksDB
//!   checkpoint (hard links, no copy); a background thread writes the file from the checkpoint.
//!   The Raft thread never serializes the state, and no snapshot is taken while one is written.
//! * **Sent** on demand: a follower that receives the descriptor fetches the file from the
//!   sender (`Peer.FetchSnapshot`, 1 MiB chunks under HTTP/2 flow control, no size limit),
//!   checks its checksum while writing it, and only then lets Raft step the message. Until the
//!   sender's file is complete it answers NOT_FOUND and Raft sends the message again later.
//! * **Restored** from the file, read twice (checked, then installed) and never held whole.
//! * **Kept**: the newest complete file only — what peers fetch, and what a restore
//!   interrupted by a crash reads again.

use std::io::{Read, Write};
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
/// A fetch that receives nothing for this long is abandoned (Raft sends the message again).
pub const FETCH_IDLE_MS: u64 = 20_000;

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

/// Makes a frozen, point-in-time copy of the ledger's store in a new directory and opens it.
pub type Freeze = dyn Fn(&Path) -> Result<Box<dyn ledger::Store>, String> + Send + Sync;

pub struct SnapshotFiles {
    dir: PathBuf,
    freeze: Box<Freeze>,
    /// The index whose file the background writer is writing.
    building: Mutex<Option<u64>>,
}

fn io_err(what: &str, path: &Path, e: std::io::Error) -> String {
    format!("{what} {}: {e}", path.display())
}

impl SnapshotFiles {
    /// Opens (creates) the snapshot directory and removes what an interrupted writer or fetch
    /// left (work directories, partial files).
    pub fn open(dir: PathBuf, freeze: Box<Freeze>) -> Result<Arc<SnapshotFiles>, String> {
        std::fs::create_dir_all(&dir).map_err(|e| io_err("create", &dir, e))?;
        let entries = std::fs::read_dir(&dir).map_err(|e| io_err("read", &dir, e))?;
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with("building-") {
                std::fs::remove_dir_all(&path).map_err(|e| io_err("remove", &path, e))?;
            } else if name.ends_with(".part") {
                std::fs::remove_file(&path).map_err(|e| io_err("remove", &path, e))?;
            }
        }
        Ok(Arc::new(SnapshotFiles {
            dir,
            freeze,
            building: Mutex::new(None),
        }))
    }

    fn path(&self, index: u64) -> PathBuf {
        self.dir.join(format!("{index:020}.spls"))
    }

    /// The complete file of the snapshot at `index`, if this node has it.
    pub fn complete(&self, index: u64) -> Option<PathBuf> {
        let p = self.path(index);
        p.is_file().then_some(p)
    }

    /// Whether the file at `index` is complete or being written.
    pub fn available(&self, index: u64) -> bool {
        *self.building.lock() == Some(index) || self.complete(index).is_some()
    }

    pub fn busy(&self) -> bool {
        self.building.lock().is_some()
    }

    /// Starts writing the snapshot of the ledger as it is now (persisted, at `index`): freezes
    /// the store here, writes the file on a thread of its own.
    pub fn build(self: &Arc<Self>, index: u64) -> Result<(), String> {
        if self.complete(index).is_some() {
            return Ok(());
        }
        let work = self.dir.join(format!("building-{index}"));
        if work.exists() {
            std::fs::remove_dir_all(&work).map_err(|e| io_err("remove", &work, e))?;
        }
        let frozen = (self.freeze)(&work)?;
        *self.building.lock() = Some(index);
        let files = self.clone();
        std::thread::Builder::new()
            .name(format!("snapshot-{index}"))
            .spawn(move || {
                let started = Instant::now();
                let written = files.write(index, &*frozen);
                drop(frozen);
                let _ = std::fs::remove_dir_all(&work);
                match written {
                    Ok(bytes) => {
                        files.prune(index);
                        tracing::info!(
                            index,
                            bytes,
                            ms = started.elapsed().as_millis() as u64,
                            "snapshot file written"
                        );
                    }
                    // The node keeps running; peers are told NOT_FOUND and the next snapshot
                    // (or the next start) writes one.
                    Err(e) => tracing::error!(index, "snapshot file not written: {e}"),
                }
                *files.building.lock() = None;
            })
            .map_err(|e| format!("snapshot writer thread: {e}"))?;
        Ok(())
    }

    fn write(&self, index: u64, store: &dyn ledger::Store) -> Result<u64, String> {
        let part = self.dir.join(format!("{index:020}.spls.part"));
        let file = std::fs::File::create(&part).map_err(|e| io_err("create", &part, e))?;
        let mut out = std::io::BufWriter::with_capacity(CHUNK_BYTES, file);
        let bytes = ledger::write_snapshot(store, &mut out).map_err(|e| e.to_string())?;
        let file = out.into_inner().map_err(|e| e.to_string())?;
        self.seal(file, &part, index)?;
        Ok(bytes)
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

    /// Removes every complete file older than `keep`.
    pub fn prune(&self, keep: u64) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let older = name
                .strip_suffix(".spls")
                .and_then(|n| n.parse::<u64>().ok())
                .is_some_and(|i| i < keep);
            if older {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    /// Receives the file at `index` from `chunks` (in order), checking its trailing checksum as
    /// it goes; the file becomes complete only if it matches. Returns its length.
    pub async fn receive<S>(&self, index: u64, mut chunks: S) -> Result<u64, String>
    where
        S: futures::Stream<Item = Result<Vec<u8>, String>> + Unpin,
    {
        use futures::StreamExt;
        let part = self.dir.join(format!("{index:020}.spls.part"));
        let mut out = std::io::BufWriter::with_capacity(
            CHUNK_BYTES,
            std::fs::File::create(&part).map_err(|e| io_err("create", &part, e))?,
        );
        let mut check = TailChecksum::default();
        let mut bytes = 0u64;
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

    /// Reads the complete file at `index` in chunks into `tx` (a blocking reader for
    /// `Peer.FetchSnapshot`), until the file ends or the receiver is gone.
    pub fn send_blocking(
        &self,
        index: u64,
        tx: &tokio::sync::mpsc::Sender<Result<Vec<u8>, String>>,
    ) -> Result<(), String> {
        let path = self
            .complete(index)
            .ok_or_else(|| format!("no snapshot file at {index}"))?;
        let mut f = std::fs::File::open(&path).map_err(|e| io_err("open", &path, e))?;
        loop {
            let mut chunk = vec![0u8; CHUNK_BYTES];
            let mut n = 0;
            while n < chunk.len() {
                match f.read(&mut chunk[n..]) {
                    Ok(0) => break,
                    Ok(k) => n += k,
                    Err(e) => return Err(io_err("read", &path, e)),
                }
            }
            if n == 0 {
                return Ok(());
            }
            chunk.truncate(n);
            if tx.blocking_send(Ok(chunk)).is_err() {
                return Ok(()); // the caller went away
            }
        }
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
