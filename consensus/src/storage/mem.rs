//! The in-memory log store the simulator drives (same contract as the RocksDB one).

use super::*;

// ---------------------------------------------------------------------------------------------
// In-memory

/// In-memory log store with the same semantics as [`RaftLogStore`] (for the simulator/tests).
#[derive(Debug, Clone, Default)]
pub struct MemLogStore {
    meta: LogMeta,
    entries: VecDeque<Entry>,
    snapshot: Option<Snapshot>,
    snapshot_wanted: std::cell::Cell<bool>,
}

impl MemLogStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Storage for MemLogStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(self.meta.hs.clone(), self.meta.cs.clone()))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _ctx: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.meta.check_range(low, high)?;
        let off = (low - self.meta.first_index()) as usize;
        let iter = self
            .entries
            .iter()
            .skip(off)
            .take((high - low) as usize)
            .cloned()
            .map(Ok);
        limit_by_size(iter, max_size.into())
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.meta.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.meta.first_index())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.meta.last_index())
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        serve_snapshot(
            self.snapshot.clone(),
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
        Ok(())
    }

    fn set_commit(&mut self, commit: u64) -> Result<(), ConsensusError> {
        self.meta.hs.commit = commit;
        Ok(())
    }

    fn set_conf_state(&mut self, cs: &ConfState) -> Result<(), ConsensusError> {
        self.meta.cs = cs.clone();
        Ok(())
    }

    fn install_snapshot(&mut self, snap: &Snapshot) -> Result<(), ConsensusError> {
        let meta = snap.get_metadata();
        if meta.index < self.meta.truncated_index {
            return Err(ConsensusError::Invariant("stale snapshot".into()));
        }
        self.meta.snapshot_install_state(meta);
        self.entries.clear();
        self.snapshot = Some(snap.clone());
        Ok(())
    }

    fn save_snapshot_and_compact(
        &mut self,
        snap: &Snapshot,
        compact_to: u64,
    ) -> Result<(), ConsensusError> {
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
        Ok(())
    }

    fn log_meta(&self) -> &LogMeta {
        &self.meta
    }

    fn load_snapshot(&self) -> Result<Option<Snapshot>, ConsensusError> {
        Ok(self.snapshot.clone())
    }

    fn read_error(&self) -> Option<String> {
        None
    }

    fn take_snapshot_request(&self) -> bool {
        self.snapshot_wanted.replace(false)
    }
}
