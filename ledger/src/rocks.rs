//! The RocksDB store: one column family per record type, in a database the node opens for the
//! ledger (older data directories also keep the Raft log's families in it). Behind a Raft log the
//! ledger's writes skip the WAL ([`RocksStore::behind_log`]): the log is the write-ahead log.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, WriteOptions, DB};

use crate::chunks;
use crate::keybounds::{self, KeyBounds};
use crate::store::{Cf, Key, Store, StoreError, WriteBatch};
use crate::writebehind::{key_head, WriteBehind, WRITE_BEHIND_BYTES_DEFAULT};

/// Exclusive upper bound of every ledger key (keys are at most 24 bytes).
const KEY_END: [u8; 32] = [0xFF; 32];

fn io(e: rocksdb::Error) -> StoreError {
    StoreError::Io(e.into_string())
}

/// Database options tuned for the ledger's write pattern (large atomic batches, point reads).
pub fn db_options() -> Options {
    let mut o = Options::default();
    o.create_if_missing(true);
    o.create_missing_column_families(true);
    o.set_max_background_jobs(2);
    o.set_bytes_per_sync(1 << 20);
    o.set_write_buffer_size(64 << 20);
    o.set_max_write_buffer_number(4);
    o.increase_parallelism(2);
    // The default (point-in-time) recovery stops at the first bad WAL record and silently drops
    // every record after it — synced Raft entries included. Only a torn last record (a write
    // cut short by a crash, never acknowledged as synced) may be dropped; corruption in the
    // middle of the log stops the node instead.
    o.set_wal_recovery_mode(rocksdb::DBRecoveryMode::TolerateCorruptedTailRecords);
    // Behind a Raft log the ledger writes without the WAL ([`RocksStore::behind_log`]): its
    // families must then reach the disk together, at one applied index, or a crash could leave
    // the accounts of one batch beside the applied index of an earlier one.
    o.set_atomic_flush(true);
    // Flushes and compactions run at the lowest CPU priority (RocksDB's pools are the process's
    // default environment's, shared by every database it opens); see [`lower_thread_priority`].
    if let Ok(mut env) = rocksdb::Env::new() {
        env.lower_thread_pool_cpu_priority();
        env.lower_high_priority_thread_pool_cpu_priority();
        o.set_env(&env);
    }
    o
}

/// Nice value of the threads that persist the ledger behind the Raft log: the write-behind
/// flusher and RocksDB's flush and compaction pools (RocksDB's own "low" priority is this one).
pub const BACKGROUND_NICE: i32 = 19;

/// Lowers the calling thread's CPU priority to [`BACKGROUND_NICE`]. Why: three replicas share
/// two cores in the benchmarks (and a production node shares its cores with its clients), and
/// these threads work in bursts — a 32 MiB generation, a memtable flush — that took the CPU
/// from the Raft and request threads exactly when a batch was waiting: at 60 000 transfers/s
/// the p99 per call fell from 605 to 229 ms with them lowered, and closed-loop throughput rose
/// (docs/performance.md, 3m). They still get every idle cycle, and the write-behind buffer's
/// backpressure makes the applying thread wait for its flusher (so it runs) rather than grow
/// without bound. Best effort: a refusal leaves the priority as it was.
pub(crate) fn lower_thread_priority() {
    // SAFETY: plain system calls on the calling thread's id; no memory is shared with them. On
    // Linux a nice value is per thread (setpriority with a thread id).
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, BACKGROUND_NICE);
    }
}

/// Options of the ledger's column families. Memtables are of a moderate size by default
/// ([`LEDGER_MEMTABLE_BYTES_DEFAULT`]): inserting random keys into a large memtable's skip list
/// missed the cache on every level, but the write-behind flusher now inserts each generation
/// sorted, and memtables smaller than a generation flushed (and fed compaction) once a
/// generation.
fn ledger_cf_options(cf: Cf, memtable_bytes: usize) -> Options {
    let mut o = Options::default();
    // Most reads of a new command's id, order number or payment-code nonce miss (that is the
    // point of the check): without a filter each miss searches every sorted run's index (8.5 %
    // of the applying thread's samples under load). Postings, the chain and the event journal
    // are read by keys that exist, so their filters would be memory for nothing.
    if !matches!(cf, Cf::Postings | Cf::Chain | Cf::Events) {
        let mut t = rocksdb::BlockBasedOptions::default();
        t.set_bloom_filter(BLOOM_BITS_PER_KEY, false);
        o.set_block_based_table_factory(&t);
    }
    o.set_write_buffer_size(memtable_bytes);
    o.set_max_write_buffer_number(4);
    // Universal compaction: the ledger's keys are random (ids) and mostly written once, and under
    // a 3-replica load on two cores RocksDB's background compaction was the largest single cost
    // (38 % of node CPU with leveled compaction); universal compaction rewrites each byte fewer
    // times (+8 % transfers/s end to end, docs/performance.md).
    o.set_compaction_style(rocksdb::DBCompactionStyle::Universal);
    // Merge sorted runs when 12 have piled up, not 4: each merge then rewrites more new data per
    // old byte (+11 to +14 % transfers/s, −11 % CPU per transfer in back-to-back 15 s and 45 s
    // runs). Writes slow down at 60 runs and stop at 108 (never reached in those runs).
    o.set_level_zero_file_num_compaction_trigger(12);
    o.set_level_zero_slowdown_writes_trigger(60);
    o.set_level_zero_stop_writes_trigger(108);
    o
}

/// Bloom filter bits per key of the families read by keys that may be missing (~1 % false
/// positives).
const BLOOM_BITS_PER_KEY: f64 = 10.0;

/// Size of one memtable of each ledger family unless the node is told otherwise: twice the
/// write-behind generation ([`crate::writebehind::WRITE_BEHIND_BYTES_DEFAULT`]). At 8 or
/// 16 MiB each generation's write filled a memtable and flushed it; at 32 MiB the closed loop
/// ran 9 % faster on 9 % less CPU per transfer, 64 MiB added nothing clear, and the node of
/// 1 M accounts and 10 M transfers peaked 47 MiB higher (docs/performance.md, 3r).
pub const LEDGER_MEMTABLE_BYTES_DEFAULT: usize = 32 << 20;
/// Bounds of a ledger family's memtable. Behind a Raft log the memtables are the only copy of
/// the state applied since the last flush: the larger they are, the fewer flushes and
/// compactions, and the longer a restart after a crash replays the log.
pub const LEDGER_MEMTABLE_BYTES_MIN: usize = 1 << 20;
pub const LEDGER_MEMTABLE_BYTES_MAX: usize = 4 << 30;
/// RocksDB's default memtable size, kept for the other families (the Raft log's).
const EXTRA_MEMTABLE_BYTES_MIN: usize = 64 << 20;

/// Opens (or creates) a database with the ledger's column families plus `extra_cfs` (for example the
/// Raft log's), ready to be shared between the ledger and the consensus layer.
pub fn open_db(path: &Path, extra_cfs: &[&str]) -> Result<Arc<DB>, StoreError> {
    open_db_tuned(path, extra_cfs, LEDGER_MEMTABLE_BYTES_DEFAULT)
}

/// [`open_db`] with the size of each ledger family's memtable (clamped to
/// [`LEDGER_MEMTABLE_BYTES_MIN`]..=[`LEDGER_MEMTABLE_BYTES_MAX`]).
pub fn open_db_tuned(
    path: &Path,
    extra_cfs: &[&str],
    ledger_memtable_bytes: usize,
) -> Result<Arc<DB>, StoreError> {
    let opts = db_options();
    let memtable_bytes =
        ledger_memtable_bytes.clamp(LEDGER_MEMTABLE_BYTES_MIN, LEDGER_MEMTABLE_BYTES_MAX);
    let descriptors = || {
        let mut cfs: Vec<ColumnFamilyDescriptor> = Cf::ALL
            .iter()
            .map(|cf| {
                ColumnFamilyDescriptor::new(cf.name(), ledger_cf_options(*cf, memtable_bytes))
            })
            .collect();
        // Every family flushes together (atomic flush), so the first full memtable of any
        // family persists the ledger: the others' (the Raft log's) are never smaller than the
        // ledger's.
        let mut extra = Options::default();
        extra.set_write_buffer_size(memtable_bytes.max(EXTRA_MEMTABLE_BYTES_MIN));
        for name in extra_cfs {
            cfs.push(ColumnFamilyDescriptor::new(*name, extra.clone()));
        }
        cfs
    };
    // Flushes and compactions write SST files with direct I/O: each byte the node persists is
    // otherwise copied into the page cache first, and that copy was the flush thread's main
    // cost (60 % of its samples; +5 % transfers/s and -6 % CPU per transfer without it,
    // docs/performance.md). A file system without direct I/O (tmpfs on older kernels) makes
    // RocksDB refuse the option at open; the database is then opened without it, which changes
    // only the speed.
    let mut direct = opts.clone();
    direct.set_use_direct_io_for_flush_and_compaction(true);
    let db = match DB::open_cf_descriptors(&direct, path, descriptors()) {
        Err(e) if e.as_ref().contains(DIRECT_IO_UNSUPPORTED) => {
            DB::open_cf_descriptors(&opts, path, descriptors())
        }
        other => other,
    }
    .map_err(io)?;
    Ok(Arc::new(db))
}

/// The column families of the database at `path` that are not the ledger's (nor RocksDB's
/// `default`); none if there is no database there yet.
pub fn extra_column_families(path: &Path) -> Result<Vec<String>, StoreError> {
    if !path.join("CURRENT").exists() {
        return Ok(Vec::new());
    }
    let names = DB::list_cf(&Options::default(), path).map_err(io)?;
    Ok(names
        .into_iter()
        .filter(|n| n != "default" && !Cf::ALL.iter().any(|cf| cf.name() == n))
        .collect())
}

/// What RocksDB says at open when the file system refuses direct I/O.
const DIRECT_IO_UNSUPPORTED: &str = "Direct I/O is not supported";

/// One record of an ordered read.
type Row = Result<(Box<[u8]>, Box<[u8]>), StoreError>;
type Rows<'a> = Box<dyn Iterator<Item = Row> + 'a>;
type RawIter<'a> = rocksdb::DBRawIteratorWithThreadMode<'a, DB>;

/// Where to open a family's iterator so that it sees every record from `start` on: a posting may
/// sit in a chunk keyed before it ([`crate::chunks`]).
fn open_at<'a>(
    cf: Cf,
    start: &[u8],
    raw: impl FnOnce() -> RawIter<'a>,
) -> Result<Vec<u8>, StoreError> {
    if cf != Cf::Postings {
        return Ok(start.to_vec());
    }
    chunks::iter_start(start, |k| {
        let mut it = raw();
        it.seek_for_prev(k);
        if !it.valid() {
            it.status().map_err(io)?;
        }
        Ok(it.key().map(Box::from))
    })
}

/// The records of an iterator opened at [`open_at`], one per ledger record, from `start` on.
fn rows<'a>(cf: Cf, start: &[u8], items: rocksdb::DBIteratorWithThreadMode<'a, DB>) -> Rows<'a> {
    if cf == Cf::Postings {
        Box::new(chunks::expand(items, start.to_vec(), io))
    } else {
        Box::new(items.map(|r| r.map_err(io)))
    }
}

/// RocksDB's batched point reads, answered in `keys`' order. RocksDB reads in key order and
/// would sort the keys itself, through its comparator and a pointer per key (6 % of the
/// applying thread's samples); sorting here by each key's first 16 bytes as an integer (a whole
/// id), ties broken bytewise, is the same order at a fraction of the cost.
fn multi_get_in_order(
    db: &DB,
    h: &rocksdb::ColumnFamily,
    keys: &[&[u8]],
) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    let mut order: Vec<(u128, usize)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (key_head(k), i))
        .collect();
    order.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| keys[a.1].cmp(keys[b.1])));
    let sorted = db.batched_multi_get_cf(h, order.iter().map(|&(_, i)| keys[i]), true);
    let mut out = vec![None; keys.len()];
    for (&(_, i), r) in order.iter().zip(sorted) {
        out[i] = r.map_err(io)?.map(|s| s.to_vec());
    }
    Ok(out)
}

/// Point reads of postings through their chunks, with one raw iterator.
fn get_postings<'k>(
    mut it: RawIter<'_>,
    keys: impl Iterator<Item = &'k [u8]>,
) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
    keys.map(|key| {
        // Consecutive keys (a history page) often lie in the record just read: records never
        // overlap, so one that covers `key` is the one a seek would find.
        if let (Some(at), Some(v)) = (it.key(), it.value()) {
            if at <= key {
                if let Some(found) = chunks::find(key, at, v)? {
                    return Ok(Some(found));
                }
            }
        }
        it.seek_for_prev(key);
        match (it.key(), it.value()) {
            (Some(at), Some(v)) => chunks::find(key, at, v),
            _ => it.status().map(|()| None).map_err(io),
        }
    })
    .collect()
}

/// Visits, in key order, the records under `prefix` that RocksDB's `items` (in key order, from
/// the start of the range) and the write-behind buffer's `buffered` records of the same range
/// hold together — a buffered record replaces RocksDB's, a buffered deletion hides it — until
/// `f` returns `false`. One writer for every ordered read of the live and the snapshot store.
fn visit_merged(
    items: impl Iterator<Item = Row>,
    buffered: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    prefix: &[u8],
    f: &mut dyn FnMut(&[u8], &[u8]) -> Result<bool, StoreError>,
) -> Result<(), StoreError> {
    use std::cmp::Ordering;
    let mut items = items.peekable();
    let mut buffered = buffered.into_iter().peekable();
    loop {
        if let Some(Err(_)) = items.peek() {
            if let Some(Err(e)) = items.next() {
                return Err(e);
            }
        }
        let stored = match items.peek() {
            Some(Ok((k, _))) if k.starts_with(prefix) => Some(&**k),
            _ => None,
        };
        let order = match (stored, buffered.peek()) {
            (None, None) => return Ok(()),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(s), Some((b, _))) => s.cmp(b.as_slice()),
        };
        let go_on = if order == Ordering::Less {
            match items.next() {
                Some(Ok((k, v))) => f(&k, &v)?,
                _ => return Ok(()),
            }
        } else {
            if order == Ordering::Equal {
                items.next(); // replaced or hidden by the buffered record
            }
            match buffered.next() {
                Some((k, Some(v))) => f(&k, &v)?,
                Some((_, None)) => true,
                None => return Ok(()),
            }
        };
        if !go_on {
            return Ok(());
        }
    }
}

/// The records [`visit_merged`] visits, at most `limit`.
fn collect_merged(
    items: impl Iterator<Item = Row>,
    buffered: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    prefix: &[u8],
    limit: usize,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    visit_merged(items, buffered, prefix, &mut |k, v| {
        out.push((k.to_vec(), v.to_vec()));
        Ok(out.len() < limit)
    })?;
    Ok(out)
}

pub struct RocksStore {
    db: Arc<DB>,
    sync: bool,
    /// `false` behind a Raft log: the log is the write-ahead log (see [`RocksStore::behind_log`]).
    wal: bool,
    /// Behind a Raft log: the writes not yet in RocksDB (shared by every handle on the store).
    buffer: Option<Arc<WriteBehind>>,
    /// Behind a Raft log: keys known to be absent without a lookup (shared by every handle).
    bounds: Option<Arc<KeyBounds>>,
}

/// The bounds of the command ids `db` holds now: its last [`keybounds::OPEN_KEYS`] ids, and the
/// floor at the id just before them.
fn read_key_bounds(db: &DB) -> Result<KeyBounds, StoreError> {
    let h = db
        .cf_handle(keybounds::CF.name())
        .expect("column families checked at open");
    let mut it = db.raw_iterator_cf(h);
    it.seek_to_last();
    let (mut above, mut floor) = (Vec::with_capacity(keybounds::OPEN_KEYS), 0);
    while let Some(k) = it.key() {
        if above.len() == keybounds::OPEN_KEYS {
            floor = key_head(k);
            break;
        }
        above.push(key_head(k));
        it.prev();
    }
    it.status().map_err(io)?;
    Ok(KeyBounds::new(floor, above, keybounds::ABOVE_KEYS_MAX))
}

impl RocksStore {
    /// Uses the ledger's families of a database opened by [`open_db`]. Writes go through the
    /// RocksDB WAL but are not fsynced (see [`RocksStore::set_sync`]).
    pub fn new(db: Arc<DB>) -> Result<RocksStore, StoreError> {
        for cf in Cf::ALL {
            if db.cf_handle(cf.name()).is_none() {
                return Err(StoreError::Io(format!(
                    "column family {} missing",
                    cf.name()
                )));
            }
        }
        Ok(RocksStore {
            db,
            sync: false,
            wal: true,
            buffer: None,
            bounds: None,
        })
    }

    /// The ledger of a replica: writes skip the RocksDB WAL, because the Raft log already is
    /// the write-ahead log — every batch is in the (synced) log before it is applied, and the
    /// applied index stored with the state says where to resume. Writes go to a write-behind
    /// buffer ([`crate::writebehind`]) of `write_behind_bytes` per generation, which a
    /// background thread moves into RocksDB; the state reaches the disk when RocksDB flushes its
    /// memtables (atomically over all families, [`db_options`]) or on [`Store::persist`]; a
    /// crash loses the applies since, and the node replays them from the log. The log must
    /// therefore never be compacted past a persisted applied index: the state machine persists
    /// before every snapshot that compacts it.
    pub fn behind_log_buffered(
        db: Arc<DB>,
        write_behind_bytes: usize,
    ) -> Result<RocksStore, StoreError> {
        let mut s = RocksStore::new(db)?;
        s.wal = false;
        s.bounds = Some(Arc::new(read_key_bounds(&s.db)?));
        s.buffer = Some(Arc::new(WriteBehind::start(
            s.db.clone(),
            write_behind_bytes,
        )?));
        Ok(s)
    }

    /// [`RocksStore::behind_log_buffered`] with the default generation size.
    pub fn behind_log(db: Arc<DB>) -> Result<RocksStore, StoreError> {
        RocksStore::behind_log_buffered(db, WRITE_BEHIND_BYTES_DEFAULT)
    }

    /// Writes whatever the write-behind buffer holds to RocksDB and waits for it (a RocksDB
    /// snapshot, checkpoint or flush taken afterwards holds every batch applied before the call).
    pub fn drain(&self) -> Result<(), StoreError> {
        match &self.buffer {
            Some(b) => b.drain(),
            None => Ok(()),
        }
    }

    /// The buffered records of a range and a RocksDB iterator over it, one moment's state.
    fn range(
        &self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
    ) -> Result<(BTreeMap<Vec<u8>, Option<Vec<u8>>>, Rows<'_>), StoreError> {
        let h = self.handle(cf);
        let from = open_at(cf, start, || self.db.raw_iterator_cf(h))?;
        let mode = rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward);
        let open = || rows(cf, start, self.db.iterator_cf(h, mode));
        match &self.buffer {
            Some(b) => b.range(cf, prefix, start, open),
            None => Ok((BTreeMap::new(), open())),
        }
    }

    /// Opens a database of its own at `path`.
    pub fn open(path: &Path) -> Result<RocksStore, StoreError> {
        RocksStore::new(open_db(path, &[])?)
    }

    /// fsync every write (for use without a Raft log in front).
    pub fn set_sync(&mut self, sync: bool) {
        self.sync = sync;
        self.wal |= sync;
    }

    pub fn db(&self) -> &Arc<DB> {
        &self.db
    }

    fn handle(&self, cf: Cf) -> &rocksdb::ColumnFamily {
        self.db
            .cf_handle(cf.name())
            .expect("column families checked at open")
    }

    /// The key bounds that speak for `cf`: only the command-id family has them, so reads of every
    /// other family take no lock.
    fn bounds_of(&self, cf: Cf) -> Option<&KeyBounds> {
        self.bounds.as_deref().filter(|_| cf == keybounds::CF)
    }

    /// False only if `cf` cannot hold `key` ([`KeyBounds`]).
    fn may_hold(&self, cf: Cf, key: &[u8]) -> bool {
        self.bounds_of(cf)
            .is_none_or(|x| x.lock().may_hold(cf, key))
    }

    fn cover(&self, batch: &WriteBatch) {
        if let Some(x) = &self.bounds {
            x.lock().cover(batch);
        }
    }

    /// One RocksDB write of `batch`, after clearing every ledger family if `clear`.
    fn write_direct(&self, clear: bool, batch: &WriteBatch) -> Result<(), StoreError> {
        let mut wb = rocksdb::WriteBatch::default();
        if clear {
            for cf in Cf::ALL {
                wb.delete_range_cf(self.handle(cf), &[][..], &KEY_END[..]);
            }
        }
        for (cf, k, v) in &batch.ops {
            add_op(&mut wb, self.handle(*cf), k, v.as_deref());
        }
        for a in &batch.accounts {
            let (cf, k, v) = crate::store::account_op(a);
            add_op(&mut wb, self.handle(cf), &k, v.as_deref());
        }
        batch.for_each_appended_op(|cf, k, v| wb.put_cf(self.handle(cf), k, v));
        self.db.write_opt(wb, &self.write_opts()).map_err(io)
    }

    fn write_opts(&self) -> WriteOptions {
        let mut w = WriteOptions::default();
        w.set_sync(self.sync && self.wal);
        w.disable_wal(!self.wal);
        w
    }
}

impl Store for RocksStore {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        if !self.may_hold(cf, key) {
            return Ok(None);
        }
        if let Some(b) = &self.buffer {
            if let Some(v) = b.get(cf, key)? {
                return Ok(v);
            }
        }
        if cf == Cf::Postings {
            let it = self.db.raw_iterator_cf(self.handle(cf));
            return Ok(get_postings(it, [key].into_iter())?.pop().flatten());
        }
        self.db.get_cf(self.handle(cf), key).map_err(io)
    }

    /// From the buffer, or in place in RocksDB (a history chunk is not copied whole).
    fn get_part(
        &self,
        cf: Cf,
        key: &[u8],
        offset: usize,
        len: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        use crate::store::part_of;
        if cf == Cf::Postings {
            // Chunked postings are read as one record each (`get`).
            return part_of(cf, self.get(cf, key)?.as_deref(), offset, len);
        }
        if !self.may_hold(cf, key) {
            return Ok(None);
        }
        if let Some(b) = &self.buffer {
            if let Some(v) = b.get_part(cf, key, offset, len)? {
                return Ok(v);
            }
        }
        let pinned = self.db.get_pinned_cf(self.handle(cf), key).map_err(io)?;
        part_of(cf, pinned.as_deref(), offset, len)
    }

    /// Command ids the bounds rule out ([`KeyBounds`]) are absent; the rest are read from the
    /// buffer, and what it does not hold from RocksDB in one ordered read.
    fn multi_get(&self, cf: Cf, keys: &[Key]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        // `found[i]`: `None` while key i is still to be read, then its value or absence.
        let mut found: Vec<Option<Option<Vec<u8>>>> = vec![None; keys.len()];
        let mut open = Vec::with_capacity(keys.len());
        let bounds = self.bounds_of(cf).map(|x| x.lock());
        for (i, k) in keys.iter().enumerate() {
            if bounds.as_ref().is_none_or(|b| b.may_hold(cf, k)) {
                open.push(i);
            } else {
                found[i] = Some(None);
            }
        }
        drop(bounds);
        if let Some(b) = &self.buffer {
            let buffered = b.get_many(cf, open.iter().map(|&i| keys[i].as_slice()))?;
            for (&i, v) in open.iter().zip(buffered) {
                found[i] = v;
            }
            open.retain(|&i| found[i].is_none());
        }
        if !open.is_empty() {
            let h = self.handle(cf);
            let wanted = open.iter().map(|&i| keys[i].as_slice());
            let stored = if cf == Cf::Postings {
                get_postings(self.db.raw_iterator_cf(h), wanted)?
            } else {
                multi_get_in_order(&self.db, h, &wanted.collect::<Vec<_>>())?
            };
            for (&i, v) in open.iter().zip(stored) {
                found[i] = Some(v);
            }
        }
        Ok(found.into_iter().map(Option::flatten).collect())
    }

    fn for_each(
        &self,
        cf: Cf,
        f: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        self.for_each_ordered(cf, f)
    }

    /// RocksDB iterates in key order already.
    fn for_each_ordered(
        &self,
        cf: Cf,
        f: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let (buffered, items) = self.range(cf, &[], &[])?;
        visit_merged(items, buffered, &[], &mut |k, v| f(k, v).map(|()| true))
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let (buffered, items) = self.range(cf, prefix, start)?;
        collect_merged(items, buffered, prefix, limit)
    }

    fn write(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        self.cover(&batch);
        if let Some(b) = &self.buffer {
            return b.write(batch);
        }
        self.write_direct(false, &batch)
    }

    /// Straight to RocksDB once the buffer is empty: a bulk load gains nothing from the buffer's
    /// maps (each key is written once) and would only wait on its flusher.
    fn write_bulk(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        self.drain()?;
        self.cover(&batch);
        self.write_direct(false, &batch)
    }

    fn replace_all(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        self.cover(&batch);
        let replace = || self.write_direct(true, &batch);
        match &self.buffer {
            Some(b) => b.replace(replace),
            None => replace(),
        }
    }

    /// Writes the write-behind buffer to RocksDB, then flushes the ledger's memtables to disk
    /// (all families at once) and waits for it.
    fn persist(&mut self) -> Result<(), StoreError> {
        self.drain()?;
        let cfs: Vec<&rocksdb::ColumnFamily> = Cf::ALL.iter().map(|cf| self.handle(*cf)).collect();
        let mut fo = rocksdb::FlushOptions::default();
        fo.set_wait(true);
        self.db.flush_cfs_opt(&cfs, &fo).map_err(io)
    }
}

/// Adds one store operation to a RocksDB batch: a value is a put, `None` a delete.
pub(crate) fn add_op(
    wb: &mut rocksdb::WriteBatch,
    cf: &rocksdb::ColumnFamily,
    key: &[u8],
    value: Option<&[u8]>,
) {
    match value {
        Some(v) => wb.put_cf(cf, key, v),
        None => wb.delete_cf(cf, key),
    }
}

/// A consistent point-in-time copy of the whole database (every column family: the ledger's and
/// the Raft log's) at `dir`, which must not exist: hard links to the immutable files, copies of
/// the rest. The node keeps running.
pub fn checkpoint(store: &RocksStore, dir: &Path) -> Result<(), StoreError> {
    store.drain()?;
    rocksdb::checkpoint::Checkpoint::new(&store.db)
        .and_then(|c| c.create_checkpoint(dir))
        .map_err(io)
}

/// Opens the database at `path` read-only, with whatever column families it has (a backup is
/// inspected without being changed).
pub fn open_read_only(path: &Path) -> Result<RocksStore, StoreError> {
    let opts = db_options();
    let cfs = DB::list_cf(&opts, path).map_err(io)?;
    let db = DB::open_cf_for_read_only(&opts, path, cfs, false).map_err(io)?;
    RocksStore::new(Arc::new(db))
}

/// A read-only store over a point-in-time snapshot of the database: every family read as of one
/// moment (a read view is loaded from one, so it never mixes two batches).
pub struct SnapshotStore<'a> {
    store: &'a RocksStore,
    snap: rocksdb::SnapshotWithThreadMode<'a, DB>,
}

impl<'a> SnapshotStore<'a> {
    /// Drains `store`'s write-behind buffer first: the snapshot holds every batch applied before
    /// the call.
    pub fn new(store: &'a RocksStore) -> Result<SnapshotStore<'a>, StoreError> {
        store.drain()?;
        Ok(SnapshotStore {
            store,
            snap: store.db.snapshot(),
        })
    }
}

fn read_only() -> StoreError {
    StoreError::Io("a snapshot store is read-only".into())
}

impl Store for SnapshotStore<'_> {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let h = self.store.handle(cf);
        if cf == Cf::Postings {
            let it = self.snap.raw_iterator_cf(h);
            return Ok(get_postings(it, [key].into_iter())?.pop().flatten());
        }
        self.snap.get_cf(h, key).map_err(io)
    }

    fn multi_get(&self, cf: Cf, keys: &[Key]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let h = self.store.handle(cf);
        if cf == Cf::Postings {
            let it = self.snap.raw_iterator_cf(h);
            return get_postings(it, keys.iter().map(|k| k.as_slice()));
        }
        keys.iter()
            .map(|k| self.snap.get_cf(h, k).map_err(io))
            .collect()
    }

    fn for_each(
        &self,
        cf: Cf,
        f: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let items = self
            .snap
            .iterator_cf(self.store.handle(cf), rocksdb::IteratorMode::Start);
        visit_merged(rows(cf, &[], items), BTreeMap::new(), &[], &mut |k, v| {
            f(k, v).map(|()| true)
        })
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        let h = self.store.handle(cf);
        let from = open_at(cf, start, || self.snap.raw_iterator_cf(h))?;
        let mode = rocksdb::IteratorMode::From(&from, rocksdb::Direction::Forward);
        collect_merged(
            rows(cf, start, self.snap.iterator_cf(h, mode)),
            BTreeMap::new(),
            prefix,
            limit,
        )
    }

    fn write(&mut self, _: WriteBatch) -> Result<(), StoreError> {
        Err(read_only())
    }

    fn replace_all(&mut self, _: WriteBatch) -> Result<(), StoreError> {
        Err(read_only())
    }
}

impl RocksStore {
    /// Another handle on the same database (a read view reads through it).
    pub fn share(&self) -> RocksStore {
        RocksStore {
            db: self.db.clone(),
            sync: self.sync,
            wal: self.wal,
            buffer: self.buffer.clone(),
            bounds: self.bounds.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wal_file(dir: &Path) -> std::path::PathBuf {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "log"))
            .expect("a WAL file")
    }

    fn write_synced(dir: &Path, n: u8) {
        let mut s = RocksStore::open(dir).unwrap();
        s.set_sync(true);
        for i in 0..n {
            let mut b = WriteBatch::default();
            b.put(Cf::Meta, vec![i], vec![i; 4_000]);
            s.write(b).unwrap();
        }
    }

    /// What a crash leaves of a live database: a copy of its files taken while it is open (what
    /// is on disk: flushed tables, the manifest, the WAL), opened on its own.
    fn crash_copy(from: &Path) -> tempfile::TempDir {
        let to = tempfile::tempdir().unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            if e.file_name() != "LOCK" {
                std::fs::copy(e.path(), to.path().join(e.file_name())).unwrap();
            }
        }
        to
    }

    /// Behind a Raft log the ledger writes without a WAL: a crash leaves it at its last persist,
    /// with the applied index that matches the state beside it (every family flushed together),
    /// and replaying the batches after it reaches the same digest as before the crash.
    #[test]
    fn a_ledger_behind_the_log_crashes_back_to_its_last_persist_and_replays() {
        use crate::{AccountKind, Batch, Command, CreateAccount, CreateTransfer, Id, Ledger};
        let account =
            |id: u128, kind| Command::CreateAccount(CreateAccount::basic(Id(id), "CNY", kind));
        let transfer = |id: u128, to: u128| {
            Command::CreateTransfer(CreateTransfer::single(
                Id(id),
                Id(1),
                Id(to),
                rust_decimal::Decimal::new(id as i64, 2),
                None,
            ))
        };
        let batches: Vec<Batch> = (0..6u64)
            .map(|i| Batch {
                timestamp_ns: 1_000 + i,
                seed: 0,
                commands: if i == 0 {
                    vec![
                        account(1, AccountKind::System),
                        account(2, AccountKind::Wallet),
                        account(3, AccountKind::Wallet),
                    ]
                } else {
                    (0..50)
                        .map(|k| transfer(1_000 * u128::from(i) + k, 2 + k % 2))
                        .collect()
                },
            })
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let mut l =
            Ledger::open(RocksStore::behind_log(open_db(dir.path(), &[]).unwrap()).unwrap())
                .unwrap();
        let mut digests = vec![l.digest()];
        for (i, b) in batches.iter().enumerate() {
            l.apply(i as u64 + 1, b).unwrap();
            digests.push(l.digest());
            if i + 1 == 2 {
                l.store_mut().persist().unwrap();
            }
        }
        // Crash after batch 6, last persisted at batch 2.
        let image = crash_copy(dir.path());
        let mut r =
            Ledger::open(RocksStore::behind_log(open_db(image.path(), &[]).unwrap()).unwrap())
                .unwrap();
        assert_eq!(
            r.applied_index(),
            2,
            "the ledger is back at its last persist"
        );
        assert_eq!(r.digest(), digests[2], "with the state of that index");
        for (i, b) in batches.iter().enumerate().skip(2) {
            r.apply(i as u64 + 1, b).unwrap();
        }
        assert_eq!(
            r.digest(),
            digests[6],
            "replay reaches the digest the crash lost"
        );
        // Persisted now: a crash keeps everything.
        l.store_mut().persist().unwrap();
        let image = crash_copy(dir.path());
        let r = Ledger::open(RocksStore::behind_log(open_db(image.path(), &[]).unwrap()).unwrap())
            .unwrap();
        assert_eq!((r.applied_index(), r.digest()), (6, digests[6]));
    }

    /// Every record of a family, in key order.
    fn rows(store: &dyn Store, cf: Cf) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        store
            .for_each_ordered(cf, &mut |k, v| {
                out.push((k.to_vec(), v.to_vec()));
                Ok(())
            })
            .unwrap();
        out
    }

    /// Reads of command ids the bounds rule out end without a lookup; every stored id is still
    /// found — after writes through the buffer, a delete, a bulk write, a reopen (the bounds
    /// read back from RocksDB, past `OPEN_KEYS` ids) and a replacement of everything.
    #[test]
    fn ids_outside_the_key_bounds_are_absent_and_stored_ids_are_found() {
        let dir = tempfile::tempdir().unwrap();
        let id = |n: u128| n.to_be_bytes().to_vec();
        let put = |keys: &[u128]| {
            let mut wb = WriteBatch::default();
            for &k in keys {
                wb.put(Cf::Commands, id(k), vec![k as u8]);
            }
            wb
        };
        // `stored` are found; `ruled_out` are absent without a lookup; 0 is read and missing.
        let check = |s: &RocksStore, stored: &[u128], ruled_out: &[u128]| {
            let mut keys: Vec<Key> = stored.iter().map(|&k| id(k).into()).collect();
            keys.extend(ruled_out.iter().map(|&k| Key::from(id(k))));
            keys.push(id(0).into());
            let got = s.multi_get(Cf::Commands, &keys).unwrap();
            for (k, v) in stored.iter().zip(&got) {
                assert_eq!(v.as_deref(), Some(&[*k as u8][..]), "stored key {k}");
                assert_eq!(s.get(Cf::Commands, &id(*k)).unwrap(), v.clone());
            }
            assert!(got[stored.len()..].iter().all(Option::is_none));
            for &k in ruled_out {
                assert!(!s.may_hold(Cf::Commands, &id(k)), "{k} ruled out");
            }
            assert!(s.may_hold(Cf::Commands, &id(0)));
        };
        let many: Vec<u128> = (1..=keybounds::OPEN_KEYS as u128 + 10)
            .map(|i| 1_000 + 2 * i)
            .collect();
        {
            let mut s = RocksStore::behind_log(open_db(dir.path(), &[]).unwrap()).unwrap();
            check(&s, &[], &[1, 5, u128::MAX]);
            s.write(put(&[7, 3])).unwrap();
            check(&s, &[3, 7], &[5, 8, u128::MAX]);
            // A delete keeps the id known: it is read, and not found.
            let mut wb = put(&[]);
            wb.delete(Cf::Commands, id(7));
            s.write(wb).unwrap();
            assert!(s.may_hold(Cf::Commands, &id(7)));
            assert_eq!(s.get(Cf::Commands, &id(7)).unwrap(), None);
            s.write_bulk(put(&many)).unwrap();
            let reader = s.share();
            s.write(put(&[9])).unwrap();
            check(
                &reader,
                &[3, 9, many[0], many[many.len() - 1]],
                &[5, many[0] + 1],
            );
            s.persist().unwrap();
        }
        // Reopened: the last OPEN_KEYS ids are known, the floor is the id before them.
        let mut s = RocksStore::behind_log(open_db(dir.path(), &[]).unwrap()).unwrap();
        let floor = many[many.len() - 1 - keybounds::OPEN_KEYS];
        assert_eq!(s.bounds.as_ref().unwrap().lock().floor(), floor);
        check(
            &s,
            &[3, 9, floor, many[many.len() - 1]],
            &[floor + 1, u128::MAX],
        );
        assert!(s.may_hold(Cf::Commands, &id(5)), "below the floor: read");
        s.replace_all(put(&[5])).unwrap();
        check(&s, &[5], &[floor + 1]);
        assert_eq!(s.get(Cf::Commands, &id(9)).unwrap(), None);
        s.persist().unwrap();
        drop(s);
        let s = RocksStore::behind_log(open_db(dir.path(), &[]).unwrap()).unwrap();
        check(&s, &[5], &[4, 6, floor]);
    }

    /// The write-behind store answers every read as a store without a buffer would, while
    /// generations of a few kilobytes are frozen and flushed behind it: point reads, batched
    /// reads, prefix scans from a start key with a limit, and whole-family iteration, after
    /// puts, overwrites and deletes of keys that are buffered, frozen or already in RocksDB,
    /// appended postings (stored in chunks; put as a batch's posting buffer or as bytes),
    /// command records (appended to a batch's history chunks, the id holding a locator; or
    /// written whole, as stores did before), and bulk writes that go past the buffer. A reader
    /// on another handle and a snapshot store see the same. The seed is printed by proptest on
    /// failure.
    #[test]
    fn write_behind_reads_equal_an_unbuffered_store() {
        use proptest::prelude::*;
        use proptest::test_runner::{Config, TestRunner};
        let op = (0u8..10, 0u8..4, 0u16..400, 0usize..300);
        let mut runner = TestRunner::new(Config {
            cases: 24,
            ..Config::default()
        });
        runner
            .run(&proptest::collection::vec(op, 1..1500), |ops| {
                let dir = tempfile::tempdir().unwrap();
                let db = open_db(dir.path(), &[]).unwrap();
                let mut s =
                    RocksStore::behind_log_buffered(db, crate::writebehind::WRITE_BEHIND_BYTES_MIN)
                        .unwrap();
                let reader = s.share();
                let mut model = crate::MemStore::new();
                let cfs = [Cf::Postings, Cf::FlowIndex, Cf::Accounts, Cf::Commands];
                // Postings are append-only (each account's next sequence number); command ids
                // are 16 bytes; the other families take any key.
                let mut next_seq = [1u64; 4];
                let posting = |a: u16, seq: u64| crate::store::posting_key(&[a as u8; 16], seq);
                let key = |cf: Cf, k: u16, next_seq: &[u64; 4]| {
                    if cf == Cf::Postings {
                        let a = k % 4;
                        posting(a, u64::from(k / 4) % (next_seq[a as usize] + 2))
                    } else if cf == Cf::Commands {
                        crate::store::id_key(crate::types::Id(u128::from(k % 64) << 120 | 7))
                    } else {
                        vec![(k % 4) as u8, (k >> 8) as u8, k as u8].into()
                    }
                };
                let record = |k: u16, len: usize| crate::codec::CommandRecord {
                    fingerprint: [k as u8; 16],
                    result: crate::result::CommandResult {
                        code: crate::result::ResultCode::Ok,
                        timestamp_ns: len as u64,
                    },
                    transfer: None,
                };
                // Each write is one applied batch: its history goes under the next index.
                let mut index = 1u64;
                let mut batch = WriteBatch::default();
                for (kind, cf, k, len) in ops {
                    let cf = cfs[cf as usize];
                    match kind {
                        0..=5 if cf == Cf::Commands => {
                            let id = crate::types::Id(crate::writebehind::key_head(&key(
                                cf, k, &next_seq,
                            )));
                            if k % 5 == 0 {
                                // Stored whole, as before per-batch history.
                                let v = crate::codec::encode_command_record(&record(k, len));
                                batch.put(cf, crate::store::id_key(id), v);
                            } else {
                                batch.put_command(index, id, &record(k, len));
                            }
                        }
                        0..=5 if cf == Cf::Postings => {
                            let a = k % 4;
                            let seq = next_seq[a as usize];
                            next_seq[a as usize] += 1;
                            // A posting's first byte is its codec version.
                            let mut v = vec![k as u8; len];
                            if let Some(b) = v.first_mut() {
                                *b = 1;
                            }
                            if k % 3 == 0 {
                                // As bytes among the other records (a snapshot's rows).
                                batch.put(cf, posting(a, seq), v);
                            } else {
                                // As the ledger writes them: a batch's postings in one buffer.
                                batch.postings.put_bytes([a as u8; 16], seq, &v);
                            }
                        }
                        0..=5 => batch.put(cf, key(cf, k, &next_seq), vec![k as u8; len]),
                        6 | 7 if cf == Cf::Postings => {}
                        6 | 7 => batch.delete(cf, key(cf, k, &next_seq)),
                        // A bulk write (snapshot install) goes past the buffer: it must still
                        // land after the buffered writes before it.
                        8 if k % 5 == 0 => {
                            s.write_bulk(batch.clone()).unwrap();
                            model.write(std::mem::take(&mut batch)).unwrap();
                            index += 1;
                        }
                        8 => {
                            s.write(batch.clone()).unwrap();
                            model.write(std::mem::take(&mut batch)).unwrap();
                            index += 1;
                        }
                        _ => {
                            let snap = if k % 7 == 0 {
                                s.drain().unwrap();
                                Some(SnapshotStore::new(&s).unwrap())
                            } else {
                                None
                            };
                            let mut stores = vec![&s as &dyn Store, &reader];
                            stores.extend(snap.as_ref().map(|x| x as &dyn Store));
                            let at = key(cf, k, &next_seq);
                            for store in stores {
                                prop_assert_eq!(
                                    store.get(cf, &at).unwrap(),
                                    model.get(cf, &at).unwrap()
                                );
                                let mut keys: Vec<Key> = (0..8u16)
                                    .map(|i| {
                                        if cf == Cf::Postings {
                                            let seq =
                                                u64::from_be_bytes(at[16..].try_into().unwrap());
                                            posting(k % 4, seq + u64::from(i))
                                        } else {
                                            key(cf, k.wrapping_add(i * 37) % 400, &next_seq)
                                        }
                                    })
                                    .collect();
                                // Out of order, a repeat, and keys that tie on their zero-padded
                                // head (one a prefix of another).
                                keys.push(keys[0].clone());
                                keys.push(at[..at.len() - 1].into());
                                keys.push([at.as_slice(), &[0]].concat().into());
                                prop_assert_eq!(
                                    store.multi_get(cf, &keys).unwrap(),
                                    model.multi_get(cf, &keys).unwrap()
                                );
                                let prefix = if cf == Cf::Postings && len % 2 == 0 {
                                    at[..16].to_vec()
                                } else {
                                    at[..1].to_vec()
                                };
                                let limit = len % 40;
                                prop_assert_eq!(
                                    store.scan(cf, &prefix, &at, limit).unwrap(),
                                    model.scan(cf, &prefix, &at, limit).unwrap()
                                );
                                let all = rows(store, cf);
                                let want = rows(&model, cf);
                                prop_assert_eq!(all, want);
                                // Every record's part of its history chunk.
                                for (k, v) in rows(&model, Cf::Commands) {
                                    let Ok(crate::codec::StoredCommand::At(l)) =
                                        crate::codec::decode_command_value(&v)
                                    else {
                                        continue;
                                    };
                                    let chunk = crate::store::history_key(l.index, l.chunk);
                                    let (at, n) = (l.offset as usize, l.len as usize);
                                    let got = store.get_part(Cf::History, &chunk, at, n).unwrap();
                                    prop_assert!(got.is_some(), "{:?}: no chunk", k);
                                    prop_assert_eq!(
                                        got,
                                        model.get_part(Cf::History, &chunk, at, n).unwrap()
                                    );
                                }
                            }
                        }
                    }
                }
                // Whatever was written reaches RocksDB by a clean close.
                s.write(batch.clone()).unwrap();
                model.write(batch).unwrap();
                drop((s, reader));
                let reopened = RocksStore::open(dir.path()).unwrap();
                for cf in cfs.into_iter().chain([Cf::History]) {
                    let all = rows(&reopened, cf);
                    let want = rows(&model, cf);
                    prop_assert_eq!(all, want);
                }
                Ok(())
            })
            .unwrap();
    }

    /// A generation's consecutive postings of an account become one RocksDB record of at most
    /// `CHUNK_POSTINGS_MAX`, and every read still sees one record per posting: the live store,
    /// a snapshot store, and the database reopened.
    #[test]
    fn postings_are_stored_in_chunks_and_read_one_by_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = RocksStore::behind_log(open_db(dir.path(), &[]).unwrap()).unwrap();
        let mut model = crate::MemStore::new();
        let key = |a: u8, seq: u64| crate::store::posting_key(&[a; 16], seq);
        // Two accounts interleaved, 100 postings each, over two batches; a third with one.
        for half in 0..2u64 {
            let mut b = WriteBatch::default();
            for seq in 1 + half * 50..=50 + half * 50 {
                for a in [3u8, 9] {
                    b.put(Cf::Postings, key(a, seq), vec![1, a, seq as u8]);
                }
            }
            if half == 1 {
                b.put(Cf::Postings, key(5, 1), vec![1, 5]);
            }
            s.write(b.clone()).unwrap();
            model.write(b).unwrap();
        }
        s.drain().unwrap();
        let physical = s
            .db()
            .iterator_cf(s.handle(Cf::Postings), rocksdb::IteratorMode::Start)
            .count();
        // 100 = 64 + 36 for each of the two accounts, and the single one.
        assert_eq!(physical, 5);
        let check = |store: &dyn Store| {
            assert_eq!(rows(store, Cf::Postings), rows(&model, Cf::Postings));
            for a in [3u8, 5, 9, 4] {
                for seq in [0, 1, 2, 63, 64, 65, 66, 99, 100, 101] {
                    let k = key(a, seq);
                    assert_eq!(
                        store.get(Cf::Postings, &k).unwrap(),
                        model.get(Cf::Postings, &k).unwrap(),
                        "{a}/{seq}"
                    );
                    // In order (a history page, read from the chunk already at hand), and
                    // backwards and across accounts (a seek each time).
                    let mut keys: Vec<Key> = (seq..seq + 70).map(|s| key(a, s)).collect();
                    for _ in 0..2 {
                        assert_eq!(
                            store.multi_get(Cf::Postings, &keys).unwrap(),
                            model.multi_get(Cf::Postings, &keys).unwrap()
                        );
                        keys.reverse();
                        keys.push(key(3, seq + 1));
                    }
                    for prefix in [&k[..16], &k[..1], &[][..]] {
                        assert_eq!(
                            store.scan(Cf::Postings, prefix, &k, 30).unwrap(),
                            model.scan(Cf::Postings, prefix, &k, 30).unwrap(),
                            "{a}/{seq}"
                        );
                    }
                }
            }
        };
        check(&s);
        check(&SnapshotStore::new(&s).unwrap());
        drop(s);
        check(&RocksStore::open(dir.path()).unwrap());
    }

    /// A synced record corrupted in the middle of the WAL stops the open; it is not silently cut
    /// off with everything after it. A torn last record (a crash mid-write) is still tolerated.
    #[test]
    fn mid_log_wal_corruption_refuses_to_open_a_torn_tail_does_not() {
        let dir = tempfile::tempdir().unwrap();
        write_synced(dir.path(), 20);
        let wal = wal_file(dir.path());
        let mut bytes = std::fs::read(&wal).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xFF;
        std::fs::write(&wal, &bytes).unwrap();
        let err = RocksStore::open(dir.path())
            .err()
            .expect("corruption must not open");
        assert!(format!("{err}").to_lowercase().contains("corrupt"), "{err}");

        let dir = tempfile::tempdir().unwrap();
        write_synced(dir.path(), 20);
        let wal = wal_file(dir.path());
        let bytes = std::fs::read(&wal).unwrap();
        std::fs::write(&wal, &bytes[..bytes.len() - 100]).unwrap();
        let s = RocksStore::open(dir.path()).expect("a torn tail opens");
        assert!(s.get(Cf::Meta, &[18]).unwrap().is_some());
        assert!(s.get(Cf::Meta, &[19]).unwrap().is_none());
    }
}
