//! raft-rs [`Storage`] implementations: durable on RocksDB, and in-memory for the simulator.
//!
//! Both keep a small in-memory cache (hard state, conf state, truncated index/term and the
//! term of every live entry) so that raft's frequent `term()`/`last_index()` calls never touch
//! the disk; entries themselves are read from RocksDB on demand.

use std::collections::VecDeque;
use std::sync::Arc;

use parking_lot::Mutex;
use prost011::Message as ProstMessage;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage, StorageError};

use crate::error::ConsensusError;

mod mem;
mod rocks;

pub use self::mem::MemLogStore;
pub use self::rocks::{checkpoint_log_db, inspect_log_db, open_log_db, RaftLogStore};

const CF_LOG: &str = "raft_log";
const CF_META: &str = "raft_meta";

/// Column families of the Raft log. [`open_log_db`] opens a database of its own with them; a
/// caller may instead open them beside its own families and pass that database to
/// [`RaftLogStore::open`] (older data directories do).
pub const RAFT_COLUMN_FAMILIES: &[&str] = &[CF_LOG, CF_META];

const KEY_HARD_STATE: &[u8] = b"hard_state";
const KEY_CONF_STATE: &[u8] = b"conf_state";
/// 16 bytes: first_index-1 and its term (retained for log matching after compaction).
const KEY_TRUNCATED: &[u8] = b"truncated";
const KEY_SNAP_META: &[u8] = b"snapshot_meta";
const KEY_SNAP_DATA: &[u8] = b"snapshot_data";

/// What the driver needs from a raft log store beyond raft-rs's read-only [`Storage`].
/// Every mutating method is durable when it returns `Ok`, except a write that only moves the
/// commit index (see [`commit_only`]): the commit index is a hint Raft can always recompute,
/// so it rides on the next synced write instead of paying an fsync of its own; on restart the
/// driver raises a lost commit to the state machine's applied index. Any `Err` is fatal to the
/// node.
pub trait LogStore: Storage + Send + 'static {
    /// Append entries, first deleting any existing entries at/after `entries[0].index`
    /// (a conflicting suffix from an old leader), and store the hard state — atomically; synced
    /// unless it only moves the commit index ([`commit_only`]).
    fn append(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), ConsensusError>;
    /// [`LogStore::append`] without waiting for the disk: readable at once (raft-rs reads what
    /// it hands over through `Storage` before it is durable), durable at the next sync
    /// ([`LogStore::syncer`], [`MemLogStore::sync`]) or synced write, whichever comes first.
    /// Returns whether the write owes a sync (`false`: it only moved the commit index, see
    /// [`commit_only`], or the store never syncs).
    fn append_unsynced(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<bool, ConsensusError>;
    /// A handle that makes every write issued before it is called durable, callable from another
    /// thread (the runtime's log-sync thread). `None`: this store syncs only on the thread that
    /// owns it (the simulator's, [`MemLogStore::sync`]).
    fn syncer(&self) -> Option<LogSyncer> {
        None
    }
    /// Persist a new commit index (not synced: it reaches the disk with the next synced write).
    fn set_commit(&mut self, commit: u64) -> Result<(), ConsensusError>;
    /// Persist the membership configuration (synced).
    fn set_conf_state(&mut self, cs: &ConfState) -> Result<(), ConsensusError>;
    /// Install a snapshot received from the leader: drop the whole log, set truncated index/term
    /// to the snapshot's, adopt its conf state, bump commit, and keep the snapshot (so this node
    /// can serve it later and recover a state machine that crashed mid-restore).
    fn install_snapshot(&mut self, snap: &Snapshot) -> Result<(), ConsensusError>;
    /// Store a locally taken snapshot and drop entries `<= compact_to` (`compact_to <=`
    /// snapshot index), atomically.
    fn save_snapshot_and_compact(
        &mut self,
        snap: &Snapshot,
        compact_to: u64,
    ) -> Result<(), ConsensusError>;
    /// The cached log metadata both stores keep (the accessors below read it).
    #[doc(hidden)]
    fn log_meta(&self) -> &LogMeta;
    fn hard_state(&self) -> HardState {
        self.log_meta().hs.clone()
    }
    fn conf_state(&self) -> ConfState {
        self.log_meta().cs.clone()
    }
    /// `(first_index - 1, its term)`.
    fn truncated(&self) -> (u64, u64) {
        (
            self.log_meta().truncated_index,
            self.log_meta().truncated_term,
        )
    }
    fn snapshot_metadata(&self) -> Option<SnapshotMetadata> {
        self.log_meta().snap_meta.clone()
    }
    /// Encoded bytes of the stored log entries after `index`: what keeping the log from there
    /// costs (the driver bounds the log it holds for a peer catching up by this).
    fn log_bytes_after(&self, index: u64) -> u64 {
        self.log_meta().bytes_after(index)
    }
    /// Nothing stored yet: no entry, no vote or term, no snapshot (a brand-new, or lost, log).
    fn is_empty(&self) -> bool {
        let m = self.log_meta();
        m.last_index() == 0 && m.hs == HardState::default() && m.snap_meta.is_none()
    }
    /// Latest stored snapshot including its data.
    fn load_snapshot(&self) -> Result<Option<Snapshot>, ConsensusError>;
    /// A read error that happened inside a `Storage` method (raft-rs cannot propagate those);
    /// the driver checks this after every call into raft and stops the node.
    fn read_error(&self) -> Option<String>;
    /// Whether raft asked for a snapshot the stored one cannot serve (its configuration lacks
    /// the peer: a node added after it was taken); reading clears it. The driver then takes a
    /// fresh snapshot, whatever the threshold.
    fn take_snapshot_request(&self) -> bool;
}

/// Makes every log write issued before the call durable (an fsync of the log's WAL).
pub type LogSyncer = Arc<dyn Fn() -> Result<(), ConsensusError> + Send + Sync>;

/// Whether an append changes nothing durable but the commit index: no entries, and a hard state
/// with the stored term and vote. Such a write is not synced (term and vote must be, before any
/// message that depends on them; entries must be, before they are acknowledged).
pub fn commit_only(stored: &HardState, entries: &[Entry], hard_state: Option<&HardState>) -> bool {
    entries.is_empty()
        && hard_state.is_none_or(|hs| hs.term == stored.term && hs.vote == stored.vote)
}

/// `Storage::snapshot` for both stores: the stored snapshot if it is recent enough and its
/// configuration has `to` (raft-rs ignores a snapshot that does not name the receiver), else
/// "temporarily unavailable" — noting the request when the configuration was the reason.
pub(crate) fn serve_snapshot(
    stored: Option<Snapshot>,
    request_index: u64,
    to: u64,
    wanted: &std::cell::Cell<bool>,
) -> raft::Result<Snapshot> {
    let unavailable = || {
        Err(raft::Error::Store(
            StorageError::SnapshotTemporarilyUnavailable,
        ))
    };
    let Some(s) = stored else {
        return unavailable();
    };
    if s.get_metadata().index < request_index {
        return unavailable();
    }
    let cs = s.get_metadata().get_conf_state();
    let names_peer = cs
        .voters
        .iter()
        .chain(&cs.learners)
        .chain(&cs.voters_outgoing)
        .chain(&cs.learners_next)
        .any(|id| *id == to);
    if !names_peer {
        wanted.set(true);
        return unavailable();
    }
    Ok(s)
}

fn log_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn store_err(e: impl std::fmt::Display) -> raft::Error {
    raft::Error::Store(StorageError::Other(e.to_string().into()))
}

/// Cached metadata shared by both implementations.
#[derive(Debug, Clone, Default)]
#[doc(hidden)]
pub struct LogMeta {
    hs: HardState,
    cs: ConfState,
    truncated_index: u64,
    truncated_term: u64,
    /// Term and encoded size of entries `first_index()..=last_index()`.
    terms: VecDeque<u64>,
    sizes: VecDeque<u32>,
    snap_meta: Option<SnapshotMetadata>,
}

impl LogMeta {
    fn first_index(&self) -> u64 {
        self.truncated_index + 1
    }

    /// Record the next entry (its term and encoded size, the bytes it takes in the log).
    fn push(&mut self, term: u64, encoded_bytes: usize) {
        self.terms.push_back(term);
        self.sizes
            .push_back(u32::try_from(encoded_bytes).unwrap_or(u32::MAX));
    }

    /// Encoded bytes of the stored entries after `index` (all of them when `index` precedes
    /// the log).
    fn bytes_after(&self, index: u64) -> u64 {
        let skip = index.saturating_sub(self.truncated_index);
        let skip = usize::try_from(skip).unwrap_or(usize::MAX);
        self.sizes.iter().skip(skip).map(|b| u64::from(*b)).sum()
    }

    fn last_index(&self) -> u64 {
        self.truncated_index + self.terms.len() as u64
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        if idx == self.truncated_index {
            return Ok(self.truncated_term);
        }
        if idx < self.truncated_index {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last_index() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.terms[(idx - self.first_index()) as usize])
    }

    fn check_range(&self, low: u64, high: u64) -> raft::Result<()> {
        if low < self.first_index() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if high > self.last_index() + 1 || low > high {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(())
    }

    fn check_append(&self, entries: &[Entry]) -> Result<(), ConsensusError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index < self.first_index() {
            return Err(ConsensusError::Invariant(format!(
                "append at {} would overwrite compacted log (first index {})",
                first.index,
                self.first_index()
            )));
        }
        if first.index > self.last_index() + 1 {
            return Err(ConsensusError::Invariant(format!(
                "append at {} leaves a gap after last index {}",
                first.index,
                self.last_index()
            )));
        }
        for w in entries.windows(2) {
            if w[1].index != w[0].index + 1 {
                return Err(ConsensusError::Invariant("non-contiguous entries".into()));
            }
        }
        Ok(())
    }

    fn apply_append(&mut self, entries: &[Entry]) {
        if let Some(first) = entries.first() {
            let keep = (first.index - self.first_index()) as usize;
            self.terms.truncate(keep);
            self.sizes.truncate(keep);
            for e in entries {
                self.push(e.term, e.encoded_len());
            }
        }
    }

    fn check_compact(&self, compact_to: u64) -> Result<u64, ConsensusError> {
        if compact_to > self.last_index() {
            return Err(ConsensusError::Invariant(format!(
                "compact to {compact_to} beyond last index {}",
                self.last_index()
            )));
        }
        self.term(compact_to)
            .map_err(|e| ConsensusError::Storage(e.to_string()))
    }

    fn apply_compact(&mut self, compact_to: u64, term: u64) {
        if compact_to <= self.truncated_index {
            return;
        }
        let drop = (compact_to - self.truncated_index) as usize;
        self.terms.drain(..drop);
        self.sizes.drain(..drop);
        self.truncated_index = compact_to;
        self.truncated_term = term;
    }

    fn snapshot_install_state(&mut self, meta: &SnapshotMetadata) {
        self.terms.clear();
        self.sizes.clear();
        self.truncated_index = meta.index;
        self.truncated_term = meta.term;
        self.hs.term = self.hs.term.max(meta.term);
        self.hs.commit = self.hs.commit.max(meta.index);
        self.cs = meta.conf_state.clone().unwrap_or_default();
        self.snap_meta = Some(meta.clone());
    }
}

fn limit_by_size(
    iter: impl Iterator<Item = raft::Result<Entry>>,
    max_size: Option<u64>,
) -> raft::Result<Vec<Entry>> {
    let max = max_size.unwrap_or(u64::MAX);
    let mut out = Vec::new();
    let mut size = 0u64;
    for e in iter {
        let e = e?;
        let s = e.encoded_len() as u64;
        // raft-rs contract: at least one entry even if it alone exceeds max_size.
        if !out.is_empty() && size + s > max {
            break;
        }
        size += s;
        out.push(e);
    }
    Ok(out)
}

fn encode_truncated(index: u64, term: u64) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&index.to_be_bytes());
    b[8..].copy_from_slice(&term.to_be_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use rocksdb::DB;

    fn ent(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![index as u8; 3],
            ..Default::default()
        }
    }

    fn open_db(path: &std::path::Path) -> Arc<DB> {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.create_missing_column_families(true);
        let mut cfs: Vec<&str> = RAFT_COLUMN_FAMILIES.to_vec();
        cfs.push("ledger_accounts"); // the ledger's own CFs live in the same DB
        Arc::new(DB::open_cf(&opts, path, cfs).unwrap())
    }

    fn ctx() -> GetEntriesContext {
        GetEntriesContext::empty(false)
    }

    fn exercise<S: LogStore>(s: &mut S) {
        assert_eq!(s.first_index().unwrap(), 1);
        assert_eq!(s.last_index().unwrap(), 0);
        assert_eq!(s.term(0).unwrap(), 0);
        // append 1..=5
        let hs = HardState {
            term: 2,
            vote: 1,
            commit: 3,
        };
        s.append(
            &(1..=5)
                .map(|i| ent(i, if i < 4 { 1 } else { 2 }))
                .collect::<Vec<_>>(),
            Some(&hs),
        )
        .unwrap();
        assert_eq!(s.last_index().unwrap(), 5);
        assert_eq!(s.term(5).unwrap(), 2);
        let size = |i: u64, t: u64| ent(i, t).encoded_len() as u64;
        let all: u64 = (1..=5).map(|i| size(i, if i < 4 { 1 } else { 2 })).sum();
        assert_eq!(s.log_bytes_after(0), all);
        assert_eq!(s.log_bytes_after(3), size(4, 2) + size(5, 2));
        assert_eq!(s.log_bytes_after(5), 0);
        assert_eq!(s.log_bytes_after(99), 0);
        assert_eq!(
            s.entries(2, 5, None, ctx())
                .unwrap()
                .iter()
                .map(|e| e.index)
                .collect::<Vec<_>>(),
            vec![2, 3, 4]
        );
        // size limit returns at least one entry
        assert_eq!(s.entries(2, 5, Some(0), ctx()).unwrap().len(), 1);
        assert!(s.entries(2, 7, None, ctx()).is_err());
        assert!(matches!(
            s.term(6),
            Err(raft::Error::Store(StorageError::Unavailable))
        ));
        // overwrite conflict at 4: entries 4,5 replaced, log ends at 4
        s.append(&[ent(4, 3)], None).unwrap();
        assert_eq!(s.last_index().unwrap(), 4);
        assert_eq!(s.term(4).unwrap(), 3);
        assert_eq!(s.entries(4, 5, None, ctx()).unwrap()[0].term, 3);
        // gap is rejected
        assert!(s.append(&[ent(9, 3)], None).is_err());
        s.append(&[ent(5, 3), ent(6, 3)], None).unwrap();
        // compaction keeps term of the truncated index
        let snap = Snapshot {
            data: b"state".to_vec(),
            metadata: Some(SnapshotMetadata {
                index: 4,
                term: 3,
                conf_state: Some(ConfState {
                    voters: vec![1, 2, 3],
                    ..Default::default()
                }),
            }),
        };
        s.save_snapshot_and_compact(&snap, 3).unwrap();
        assert_eq!(s.first_index().unwrap(), 4);
        assert_eq!(s.term(3).unwrap(), 1);
        // the overwritten suffix and the compacted prefix no longer count
        let kept = size(4, 3) + size(5, 3) + size(6, 3);
        assert_eq!(s.log_bytes_after(0), kept);
        assert_eq!(s.log_bytes_after(4), kept - size(4, 3));
        assert!(matches!(
            s.term(2),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert!(matches!(
            s.entries(3, 5, None, ctx()),
            Err(raft::Error::Store(StorageError::Compacted))
        ));
        assert_eq!(s.entries(4, 7, None, ctx()).unwrap().len(), 3);
        assert_eq!(s.snapshot(0, 2).unwrap().data, b"state");
        assert!(s.snapshot(5, 2).is_err());
        // cannot overwrite compacted entries
        assert!(s.append(&[ent(3, 9)], None).is_err());
        s.set_commit(6).unwrap();
        assert_eq!(s.hard_state().commit, 6);
        s.set_conf_state(&ConfState {
            voters: vec![1, 2],
            ..Default::default()
        })
        .unwrap();
    }

    #[test]
    fn mem_store_semantics() {
        exercise(&mut MemLogStore::new());
    }

    #[test]
    fn rocksdb_store_semantics_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = open_db(dir.path());
            let mut s = RaftLogStore::open(db).unwrap();
            exercise(&mut s);
        }
        // reopen: everything survives
        let db = open_db(dir.path());
        let mut s = RaftLogStore::open(db.clone()).unwrap();
        assert_eq!(s.first_index().unwrap(), 4);
        assert_eq!(s.last_index().unwrap(), 6);
        assert_eq!(s.term(3).unwrap(), 1);
        assert_eq!(s.term(6).unwrap(), 3);
        // entry sizes are read back with the log
        let kept: u64 = (4..=6).map(|i| ent(i, 3).encoded_len() as u64).sum();
        assert_eq!(s.log_bytes_after(3), kept);
        assert_eq!(
            s.hard_state(),
            HardState {
                term: 2,
                vote: 1,
                commit: 6
            }
        );
        assert_eq!(s.conf_state().voters, vec![1, 2]);
        assert_eq!(s.snapshot_metadata().unwrap().index, 4);
        assert_eq!(s.load_snapshot().unwrap().unwrap().data, b"state");
        assert_eq!(
            s.entries(4, 7, None, ctx())
                .unwrap()
                .iter()
                .map(|e| e.term)
                .collect::<Vec<_>>(),
            vec![3, 3, 3]
        );
        // install a newer snapshot from a leader: log reset
        let snap = Snapshot {
            data: b"newer".to_vec(),
            metadata: Some(SnapshotMetadata {
                index: 20,
                term: 5,
                conf_state: Some(ConfState {
                    voters: vec![1, 2, 3],
                    ..Default::default()
                }),
            }),
        };
        s.install_snapshot(&snap).unwrap();
        assert_eq!(
            (s.first_index().unwrap(), s.last_index().unwrap()),
            (21, 20)
        );
        assert_eq!(s.term(20).unwrap(), 5);
        assert_eq!(s.hard_state().commit, 20);
        s.append(&[ent(21, 5)], None).unwrap();
        drop(s);
        let s = RaftLogStore::open(db).unwrap();
        assert_eq!(
            (s.first_index().unwrap(), s.last_index().unwrap()),
            (21, 21)
        );
        assert_eq!(s.term(20).unwrap(), 5);
        assert_eq!(s.conf_state().voters, vec![1, 2, 3]);
        assert_eq!(s.load_snapshot().unwrap().unwrap().data, b"newer");
        assert!(s.read_error().is_none());
    }

    /// Pipelined persistence's store half: an unsynced append is readable at once and says
    /// whether it owes a sync; the syncer makes it durable from another thread.
    #[test]
    fn unsynced_appends_are_readable_at_once_and_owe_a_sync() {
        fn check<S: LogStore>(s: &mut S) {
            let hs = HardState {
                term: 1,
                vote: 1,
                commit: 0,
            };
            let owes = s
                .append_unsynced(&[ent(1, 1), ent(2, 1)], Some(&hs))
                .unwrap();
            assert!(owes, "entries owe a sync");
            assert_eq!(s.last_index().unwrap(), 2, "readable before any sync");
            let commit = HardState { commit: 2, ..hs };
            let owes = s.append_unsynced(&[], Some(&commit)).unwrap();
            assert!(!owes, "a commit index alone owes none");
            let owes = s
                .append_unsynced(&[], Some(&HardState { term: 2, ..commit }))
                .unwrap();
            assert!(owes, "a term does");
        }
        let mut mem = MemLogStore::new();
        check(&mut mem);
        assert!(mem.pending_writes() > 0);
        assert_eq!(mem.crash_image(0).last_index().unwrap(), 0, "lost unsynced");
        mem.sync();
        assert_eq!(mem.pending_writes(), 0);
        assert_eq!(
            mem.crash_image(0).last_index().unwrap(),
            2,
            "kept once synced"
        );

        let dir = tempfile::tempdir().unwrap();
        let db = open_db(dir.path());
        let mut rocks = RaftLogStore::open(db.clone()).unwrap();
        let syncer = rocks.syncer().expect("RocksDB syncs from any thread");
        check(&mut rocks);
        std::thread::spawn(move || syncer().unwrap())
            .join()
            .unwrap();
        drop(rocks);
        let s = RaftLogStore::open(db).unwrap();
        assert_eq!(s.last_index().unwrap(), 2);
        assert_eq!(s.hard_state().term, 2);
    }

    #[test]
    fn missing_column_family_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        let db = Arc::new(DB::open(&opts, dir.path()).unwrap());
        assert!(RaftLogStore::open(db).is_err());
    }
}
