//! The in-memory log store the simulator drives (same contract as the RocksDB one).
//!
//! Writes the RocksDB store syncs are durable at once; writes it does not sync (those that only
//! move the commit index) reach the "disk" only at the next synced write or writeback
//! ([`MemLogStore::flush`]); a crash keeps the durable image plus a prefix of the pending writes
//! ([`MemLogStore::crash_image`]). For the simulator's injected-bug run,
//! [`MemLogStore::with_unsynced_appends`] leaves appends unsynced too: the store of a node that
//! acknowledges entries before they are fsynced.

use super::*;

/// One write as it would reach the disk.
#[derive(Debug, Clone)]
enum Op {
    Append(Vec<Entry>, Option<HardState>),
    Commit(u64),
    Conf(ConfState),
    Install(Snapshot),
    Compact(Snapshot, u64),
}

/// The log's contents (live, or as of the last sync).
#[derive(Debug, Clone, Default)]
struct MemLog {
    meta: LogMeta,
    entries: VecDeque<Entry>,
    snapshot: Option<Snapshot>,
}

impl MemLog {
    fn apply(&mut self, op: &Op) -> Result<(), ConsensusError> {
        match op {
            Op::Append(entries, hard_state) => {
                self.meta.check_append(entries)?;
                if let Some(first) = entries.first() {
                    self.entries
                        .truncate((first.index - self.meta.first_index()) as usize);
                    self.entries.extend(entries.iter().cloned());
                }
                self.meta.apply_append(entries);
                if let Some(hs) = hard_state {
                    self.meta.hs = hs.clone();
                }
            }
            Op::Commit(commit) => self.meta.hs.commit = *commit,
            Op::Conf(cs) => self.meta.cs = cs.clone(),
            Op::Install(snap) => {
                let meta = snap.get_metadata();
                if meta.index < self.meta.truncated_index {
                    return Err(ConsensusError::Invariant("stale snapshot".into()));
                }
                self.meta.snapshot_install_state(meta);
                self.entries.clear();
                self.snapshot = Some(snap.clone());
            }
            Op::Compact(snap, compact_to) => {
                let compact_to = *compact_to;
                if compact_to > snap.get_metadata().index {
                    return Err(ConsensusError::Invariant(
                        "compacting beyond the snapshot".into(),
                    ));
                }
                let term = self.meta.check_compact(compact_to)?;
                if compact_to > self.meta.truncated_index {
                    self.entries
                        .drain(..(compact_to - self.meta.truncated_index) as usize);
                }
                self.meta.apply_compact(compact_to, term);
                self.meta.snap_meta = Some(snap.get_metadata().clone());
                self.snapshot = Some(snap.clone());
            }
        }
        Ok(())
    }
}

/// In-memory log store with the same semantics as [`RaftLogStore`] (for the simulator/tests).
/// Keeps the live log and a "disk" image: synced writes reach the disk at once (carrying every
/// earlier pending write down, as a shared WAL does); unsynced ones wait in `pending`.
#[derive(Debug, Clone, Default)]
pub struct MemLogStore {
    live: MemLog,
    disk: MemLog,
    /// Writes not yet on the disk, in order.
    pending: Vec<Op>,
    /// The injected bug: appends are not synced either.
    appends_unsynced: bool,
    snapshot_wanted: std::cell::Cell<bool>,
}

impl MemLogStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose appends are not synced (a deliberately broken store, to show that the
    /// simulator catches acknowledging before fsync).
    pub fn with_unsynced_appends() -> Self {
        MemLogStore {
            appends_unsynced: true,
            ..Self::default()
        }
    }

    /// Writes not yet durable.
    pub fn pending_writes(&self) -> usize {
        self.pending.len()
    }

    /// Writeback: every pending write reaches the disk.
    pub fn flush(&mut self) {
        for op in self.pending.drain(..) {
            self.disk
                .apply(&op)
                .expect("sim: a write accepted live fails on disk");
        }
    }

    /// The log's fsync, on the simulator's schedule (pipelined persistence): every pending write
    /// reaches the disk — except with the injected bug, whose sync makes nothing durable.
    pub fn sync(&mut self) {
        if !self.appends_unsynced {
            self.flush();
        }
    }

    /// What a crash leaves: the disk image plus the first `keep` pending writes (writes reach a
    /// disk in order; the rest are lost).
    pub fn crash_image(&self, keep: usize) -> MemLogStore {
        let mut disk = self.disk.clone();
        for op in self.pending.iter().take(keep) {
            disk.apply(op)
                .expect("sim: a write accepted live fails on disk");
        }
        MemLogStore {
            live: disk.clone(),
            disk,
            appends_unsynced: self.appends_unsynced,
            ..Self::default()
        }
    }

    /// Applies a write live, then to the disk: at once for a synced write, later for an
    /// unsynced one (a commit-only write always; every append with the injected bug).
    fn write(&mut self, op: Op) -> Result<(), ConsensusError> {
        let synced = match &op {
            Op::Commit(_) => false,
            Op::Append(entries, hs) => {
                !self.appends_unsynced && !commit_only(&self.live.meta.hs, entries, hs.as_ref())
            }
            _ => true,
        };
        self.live.apply(&op)?;
        if synced {
            self.flush();
            self.disk.apply(&op)?;
        } else {
            self.pending.push(op);
        }
        Ok(())
    }
}

impl Storage for MemLogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.live.meta.hs.clone(),
            self.live.meta.cs.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _ctx: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.live.meta.check_range(low, high)?;
        let off = (low - self.live.meta.first_index()) as usize;
        let iter = self
            .live
            .entries
            .iter()
            .skip(off)
            .take((high - low) as usize)
            .cloned()
            .map(Ok);
        limit_by_size(iter, max_size.into())
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.live.meta.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.live.meta.first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.live.meta.last_index())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        serve_snapshot(
            self.live.snapshot.clone(),
            request_index,
            to,
            &self.snapshot_wanted,
        )
    }
}

impl LogStore for MemLogStore {
    fn append(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), ConsensusError> {
        self.write(Op::Append(entries.to_vec(), hard_state.cloned()))
    }

    fn append_unsynced(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<bool, ConsensusError> {
        let owes = !commit_only(&self.live.meta.hs, entries, hard_state);
        let op = Op::Append(entries.to_vec(), hard_state.cloned());
        self.live.apply(&op)?;
        self.pending.push(op);
        Ok(owes)
    }

    fn set_commit(&mut self, commit: u64) -> Result<(), ConsensusError> {
        self.write(Op::Commit(commit))
    }

    fn set_conf_state(&mut self, cs: &ConfState) -> Result<(), ConsensusError> {
        self.write(Op::Conf(cs.clone()))
    }

    fn install_snapshot(&mut self, snap: &Snapshot) -> Result<(), ConsensusError> {
        self.write(Op::Install(snap.clone()))
    }

    fn save_snapshot_and_compact(
        &mut self,
        snap: &Snapshot,
        compact_to: u64,
    ) -> Result<(), ConsensusError> {
        self.write(Op::Compact(snap.clone(), compact_to))
    }

    fn log_meta(&self) -> &LogMeta {
        &self.live.meta
    }

    fn load_snapshot(&self) -> Result<Option<Snapshot>, ConsensusError> {
        Ok(self.live.snapshot.clone())
    }

    fn read_error(&self) -> Option<String> {
        None
    }

    fn take_snapshot_request(&self) -> bool {
        self.snapshot_wanted.replace(false)
    }
}
