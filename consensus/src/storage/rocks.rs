//! The durable log store: entries, hard state, conf state and snapshots in two RocksDB column
//! families — in a database of their own ([`open_log_db`]), or, in a data directory made before
//! the log moved out, beside the ledger's families.

use std::path::Path;

use rocksdb::{Direction, IteratorMode, Options, WriteBatch, WriteOptions, DB};

use super::*;

/// Opens (or creates) the Raft log's own database at `path`, with [`RAFT_COLUMN_FAMILIES`].
///
/// Why a database of its own: RocksDB serializes every write to one database through a single
/// write queue. The ledger's write-behind flusher writes a whole generation (16 MiB) as one
/// atomic batch; sharing the database, each synced log append waited behind that batch's
/// memtable inserts — 40–90 ms stalls of the Raft thread, every generation, on every node
/// (docs/performance.md, 3q). Here an append waits only for other appends.
pub fn open_log_db(path: &Path) -> Result<Arc<DB>, ConsensusError> {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_max_background_jobs(2);
    o.set_bytes_per_sync(1 << 20);
    // Only a torn last record (a write cut short by a crash, never acknowledged as synced) may
    // be dropped at recovery; corruption in the middle of the log stops the node instead of
    // silently dropping the synced entries after it (RocksDB's default does that).
    o.set_wal_recovery_mode(rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords);
    // Memtable flushes and compactions of the log below the threads that serve and replicate
    // (RocksDB's pools belong to the process's default environment, shared with the ledger's
    // database, which lowers them too).
    if let Ok(mut env) = rocksdb::Env::new() {
        env.lower_thread_pool_cpu_priority();
        env.lower_high_priority_thread_pool_cpu_priority();
        o.set_env(&env);
    }
    let db = DB::open_cf(&o, path, RAFT_COLUMN_FAMILIES)
        .map_err(|e| ConsensusError::Storage(format!("opening {}: {e}", path.display())))?;
    Ok(Arc::new(db))
}

// ---------------------------------------------------------------------------------------------
// RocksDB

/// A consistent on-disk copy of the log database `db` in `dir` (which must not exist): hard
/// links to its files after a flush of its memtables. For backups.
pub fn checkpoint_log_db(db: &DB, dir: &Path) -> Result<(), ConsensusError> {
    rocksdb::checkpoint::Checkpoint::new(db)
        .and_then(|c| c.create_checkpoint(dir))
        .map_err(|e| ConsensusError::Storage(format!("log checkpoint into {}: {e}", dir.display())))
}

/// The first index and the conf state of the log in the database at `path`, opened read-only
/// (a backup is inspected without being changed).
pub fn inspect_log_db(path: &Path) -> Result<(u64, ConfState), ConsensusError> {
    let db = DB::open_cf_for_read_only(&Options::default(), path, RAFT_COLUMN_FAMILIES, false)
        .map_err(|e| ConsensusError::Storage(format!("opening {}: {e}", path.display())))?;
    let store = RaftLogStore::open(Arc::new(db))?;
    let first = store
        .first_index()
        .map_err(|e| ConsensusError::Storage(format!("log first index: {e}")))?;
    Ok((first, LogStore::conf_state(&store)))
}

/// Durable raft log in the `raft_log` / `raft_meta` column families of a RocksDB database.
pub struct RaftLogStore {
    db: Arc<DB>,
    meta: LogMeta,
    read_error: Mutex<Option<String>>,
    snapshot_wanted: std::cell::Cell<bool>,
    /// `false` only for `--unsafe-no-fsync` (tests that show a power loss then loses data).
    sync: bool,
    /// Added to every fsync of the log: a slower disk, emulated for benchmarks (0: none).
    sync_delay: std::time::Duration,
}

impl RaftLogStore {
    /// Open (or initialize) the raft log in `db`, which must have been opened with
    /// [`RAFT_COLUMN_FAMILIES`].
    pub fn open(db: Arc<DB>) -> Result<Self, ConsensusError> {
        for cf in RAFT_COLUMN_FAMILIES {
            if db.cf_handle(cf).is_none() {
                return Err(ConsensusError::Storage(format!(
                    "missing column family {cf}"
                )));
            }
        }
        let mut meta = LogMeta::default();
        {
            let cf_meta = db.cf_handle(CF_META).expect("checked");
            let get = |k: &[u8]| db.get_cf(cf_meta, k);
            let decode_err = |what: &str, e: prost011::DecodeError| {
                ConsensusError::Storage(format!("corrupt {what}: {e}"))
            };
            if let Some(v) = get(KEY_HARD_STATE)? {
                meta.hs = HardState::decode(&v[..]).map_err(|e| decode_err("hard state", e))?;
            }
            if let Some(v) = get(KEY_CONF_STATE)? {
                meta.cs = ConfState::decode(&v[..]).map_err(|e| decode_err("conf state", e))?;
            }
            if let Some(v) = get(KEY_TRUNCATED)? {
                if v.len() != 16 {
                    return Err(ConsensusError::Storage("corrupt truncated state".into()));
                }
                meta.truncated_index = u64::from_be_bytes(v[..8].try_into().expect("8"));
                meta.truncated_term = u64::from_be_bytes(v[8..].try_into().expect("8"));
            }
            if let Some(v) = get(KEY_SNAP_META)? {
                meta.snap_meta = Some(
                    SnapshotMetadata::decode(&v[..]).map_err(|e| decode_err("snapshot meta", e))?,
                );
            }
        }
        {
            let cf_log = db.cf_handle(CF_LOG).expect("checked");
            let start = log_key(meta.first_index());
            let iter = db.iterator_cf(cf_log, IteratorMode::From(&start, Direction::Forward));
            for (expect, item) in (meta.first_index()..).zip(iter) {
                let (_k, v) = item?;
                let e = Entry::decode(&v[..])
                    .map_err(|e| ConsensusError::Storage(format!("corrupt entry: {e}")))?;
                if e.index != expect {
                    return Err(ConsensusError::Storage(format!(
                        "log gap: expected {expect}, found {}",
                        e.index
                    )));
                }
                meta.push(e.term, v.len());
            }
        }
        Ok(RaftLogStore {
            db,
            meta,
            read_error: Mutex::new(None),
            snapshot_wanted: std::cell::Cell::new(false),
            sync: true,
            sync_delay: std::time::Duration::ZERO,
        })
    }

    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    fn cf(&self, name: &str) -> Result<&rocksdb::ColumnFamily, ConsensusError> {
        self.db
            .cf_handle(name)
            .ok_or_else(|| ConsensusError::Storage(format!("missing column family {name}")))
    }

    /// UNSAFE: acknowledge log writes without fsync. A power loss then loses acknowledged
    /// entries on every node at once; only the power-loss test's proof that it notices uses it.
    pub fn without_fsync(mut self) -> Self {
        self.sync = false;
        self
    }

    /// Benchmarks only: every fsync of the log takes `delay` longer (a slower disk than this
    /// machine's, to see what waits for it).
    pub fn with_emulated_sync_delay(mut self, delay: std::time::Duration) -> Self {
        self.sync_delay = delay;
        self
    }

    fn write_synced(&self, batch: WriteBatch) -> Result<(), ConsensusError> {
        self.write(batch, self.sync)
    }

    /// Through the shared WAL; `sync` fsyncs it (carrying every earlier unsynced write down).
    fn write(&self, batch: WriteBatch, sync: bool) -> Result<(), ConsensusError> {
        let mut wo = WriteOptions::default();
        wo.set_sync(sync);
        self.db.write_opt(batch, &wo)?;
        if sync && !self.sync_delay.is_zero() {
            std::thread::sleep(self.sync_delay);
        }
        Ok(())
    }

    /// Appends (see [`LogStore::append`]), synced if `sync_now` and the write needs it; returns
    /// whether it still owes a sync.
    fn write_append(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
        sync_now: bool,
    ) -> Result<bool, ConsensusError> {
        if entries.is_empty() && hard_state.is_none() {
            return Ok(false);
        }
        self.meta.check_append(entries)?;
        let mut batch = WriteBatch::default();
        if let Some(first) = entries.first() {
            let cf = self.cf(CF_LOG)?;
            if first.index <= self.meta.last_index() {
                batch.delete_range_cf(
                    cf,
                    log_key(first.index),
                    log_key(self.meta.last_index() + 1),
                );
            }
            for e in entries {
                batch.put_cf(cf, log_key(e.index), e.encode_to_vec());
            }
        }
        if let Some(hs) = hard_state {
            batch.put_cf(self.cf(CF_META)?, KEY_HARD_STATE, hs.encode_to_vec());
        }
        let owes = self.sync && !commit_only(&self.meta.hs, entries, hard_state);
        self.write(batch, owes && sync_now)?;
        self.meta.apply_append(entries);
        if let Some(hs) = hard_state {
            self.meta.hs = hs.clone();
        }
        Ok(owes && !sync_now)
    }

    fn note_read_error(&self, e: impl std::fmt::Display) -> raft::Error {
        let msg = format!("raft log read failed: {e}");
        tracing::error!("{msg}");
        *self.read_error.lock() = Some(msg.clone());
        store_err(msg)
    }
}

impl Storage for RaftLogStore {
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
        if low == high {
            return Ok(Vec::new());
        }
        let cf = self.cf(CF_LOG).map_err(|e| self.note_read_error(e))?;
        let start = log_key(low);
        let mut expect = low;
        let iter = self
            .db
            .iterator_cf(cf, IteratorMode::From(&start, Direction::Forward))
            .take((high - low) as usize)
            .map(|item| {
                let (_k, v) = item.map_err(|e| self.note_read_error(e))?;
                let e = Entry::decode(&v[..]).map_err(|e| self.note_read_error(e))?;
                if e.index != expect {
                    return Err(
                        self.note_read_error(format!("expected entry {expect}, found {}", e.index))
                    );
                }
                expect += 1;
                Ok(e)
            });
        let out = limit_by_size(iter, max_size.into())?;
        if out.is_empty() {
            return Err(self.note_read_error(format!("entries {low}..{high} missing")));
        }
        Ok(out)
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
        match self.load_snapshot() {
            Ok(s) => serve_snapshot(s, request_index, to, &self.snapshot_wanted),
            Err(e) => Err(self.note_read_error(e)),
        }
    }
}

impl LogStore for RaftLogStore {
    fn append(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), ConsensusError> {
        self.write_append(entries, hard_state, true).map(|_| ())
    }

    fn append_unsynced(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<bool, ConsensusError> {
        self.write_append(entries, hard_state, false)
    }

    fn syncer(&self) -> Option<super::LogSyncer> {
        let (db, sync, delay) = (self.db.clone(), self.sync, self.sync_delay);
        Some(Arc::new(move || {
            if sync {
                db.flush_wal(true)?;
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
            }
            Ok(())
        }))
    }

    fn set_commit(&mut self, commit: u64) -> Result<(), ConsensusError> {
        let mut hs = self.meta.hs.clone();
        hs.commit = commit;
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, KEY_HARD_STATE, hs.encode_to_vec());
        self.write(batch, false)?;
        self.meta.hs = hs;
        Ok(())
    }

    fn set_conf_state(&mut self, cs: &ConfState) -> Result<(), ConsensusError> {
        let mut batch = WriteBatch::default();
        batch.put_cf(self.cf(CF_META)?, KEY_CONF_STATE, cs.encode_to_vec());
        self.write_synced(batch)?;
        self.meta.cs = cs.clone();
        Ok(())
    }

    fn install_snapshot(&mut self, snap: &Snapshot) -> Result<(), ConsensusError> {
        let meta = snap.get_metadata().clone();
        if meta.index < self.meta.truncated_index {
            return Err(ConsensusError::Invariant(format!(
                "snapshot at {} older than truncated index {}",
                meta.index, self.meta.truncated_index
            )));
        }
        let mut next = self.meta.clone();
        next.snapshot_install_state(&meta);
        let mut batch = WriteBatch::default();
        let (cf_log, cf_meta) = (self.cf(CF_LOG)?, self.cf(CF_META)?);
        batch.delete_range_cf(cf_log, log_key(0), log_key(u64::MAX));
        batch.put_cf(
            cf_meta,
            KEY_TRUNCATED,
            encode_truncated(meta.index, meta.term),
        );
        batch.put_cf(cf_meta, KEY_HARD_STATE, next.hs.encode_to_vec());
        batch.put_cf(cf_meta, KEY_CONF_STATE, next.cs.encode_to_vec());
        batch.put_cf(cf_meta, KEY_SNAP_META, meta.encode_to_vec());
        batch.put_cf(cf_meta, KEY_SNAP_DATA, &snap.data);
        self.write_synced(batch)?;
        self.meta = next;
        Ok(())
    }

    fn save_snapshot_and_compact(
        &mut self,
        snap: &Snapshot,
        compact_to: u64,
    ) -> Result<(), ConsensusError> {
        let meta = snap.get_metadata();
        if compact_to > meta.index {
            return Err(ConsensusError::Invariant(
                "compacting beyond the snapshot".into(),
            ));
        }
        let compact_term = self.meta.check_compact(compact_to)?;
        let mut batch = WriteBatch::default();
        let (cf_log, cf_meta) = (self.cf(CF_LOG)?, self.cf(CF_META)?);
        batch.put_cf(cf_meta, KEY_SNAP_META, meta.encode_to_vec());
        batch.put_cf(cf_meta, KEY_SNAP_DATA, &snap.data);
        if compact_to > self.meta.truncated_index {
            batch.delete_range_cf(cf_log, log_key(0), log_key(compact_to + 1));
            batch.put_cf(
                cf_meta,
                KEY_TRUNCATED,
                encode_truncated(compact_to, compact_term),
            );
        }
        self.write_synced(batch)?;
        self.meta.apply_compact(compact_to, compact_term);
        self.meta.snap_meta = Some(meta.clone());
        Ok(())
    }

    fn log_meta(&self) -> &LogMeta {
        &self.meta
    }

    fn load_snapshot(&self) -> Result<Option<Snapshot>, ConsensusError> {
        let Some(meta) = self.meta.snap_meta.clone() else {
            return Ok(None);
        };
        let data = self
            .db
            .get_cf(self.cf(CF_META)?, KEY_SNAP_DATA)?
            .ok_or_else(|| ConsensusError::Storage("snapshot data missing".into()))?;
        Ok(Some(Snapshot {
            data,
            metadata: Some(meta),
        }))
    }

    fn read_error(&self) -> Option<String> {
        self.read_error.lock().clone()
    }

    fn take_snapshot_request(&self) -> bool {
        self.snapshot_wanted.replace(false)
    }
}
