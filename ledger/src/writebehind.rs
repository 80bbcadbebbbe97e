//! The write-behind buffer of a ledger that lives behind a Raft log.
//!
//! Why: a batch apply used to insert every record into RocksDB's memtables at once — random keys
//! into a skip list, the largest single cost of the apply (docs/performance.md). Behind a Raft
//! log the memtables are not durable anyway (the ledger writes without a WAL: the log is the
//! WAL), so the apply can just as well write into a hash map, and a background thread moves the
//! map into RocksDB later: sorted (the skip list inserts sequential keys cheaply), once per key
//! however often it changed (an account written by a thousand transfers is written once), as one
//! atomic RocksDB write.
//!
//! A *generation* is the set of writes of consecutive whole batches. The applying side writes
//! into the active generation; when it reaches its size bound it is frozen (immutable, still
//! readable) and handed to the flusher thread, which writes it to RocksDB in one write batch and
//! then hands it back to the writer, which empties it and reuses its maps. Postings are buffered
//! per account in sequence order and written in chunks ([`crate::chunks`]). At most one
//! generation is frozen at a time; if the active one reaches [`BACKPRESSURE_FACTOR`] times its
//! bound before the flusher is done, the writer waits for the frozen one and hands over its own
//! (so at most twice that factor times the bound is buffered: a frozen and an active one).
//!
//! Invariants:
//! - RocksDB only ever receives whole generations, each in one atomic write, in order: whatever
//!   RocksDB holds (and whatever an atomic flush persists) is the state after some batch.
//! - A read sees the newest value: active generation, then the frozen one, then RocksDB. A
//!   generation is forgotten only after RocksDB holds it.
//! - An ordered or prefix read merges a copy of the buffered records with a RocksDB iterator
//!   created under the same lock, so it never mixes two moments.
//! - A failed RocksDB write stops every later write and read with an error: the node stops
//!   rather than apply on top of state it could not store.

use std::collections::BTreeMap;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;

use rocksdb::{WriteOptions, DB};
use rustc_hash::FxHashMap;

use crate::chunks;
use crate::codec::RecordLoc;
use crate::store::{Cf, History, Key, StoreError, WriteBatch};
use crate::types::Account;

/// Size of a generation, in bytes of keys and values (plus a per-record overhead), before it is
/// handed to the flusher, unless the node is told otherwise. 16 MiB since the writer may run up
/// to [`BACKPRESSURE_FACTOR`] generations ahead: at 32 MiB a node of 1 M accounts and 10 M
/// transfers peaked at 2 188 MiB, past the 2 GiB bound; at 16 MiB 1 833–1 916, with throughput within
/// the noise (docs/performance.md, 3o).
pub const WRITE_BEHIND_BYTES_DEFAULT: usize = 16 << 20;
/// Bounds of [`WRITE_BEHIND_BYTES_DEFAULT`]'s setting.
pub const WRITE_BEHIND_BYTES_MIN: usize = 1 << 12;
pub const WRITE_BEHIND_BYTES_MAX: usize = 4 << 30;
/// The writer waits for the flusher once the active generation is this many times its bound.
pub const BACKPRESSURE_FACTOR: usize = 4;
/// What a buffered record costs beyond its key and value (hash map slot, inline key, value vector).
const RECORD_OVERHEAD_BYTES: usize = 64;
/// What a buffered command locator counts against the bound (its slot and a share of the map).
const LOC_BYTES: usize = 48;
/// What a buffered account counts against the bound: its copy (the rarely-changing info is
/// shared with the ledger's, not copied) and a share of the record the flusher encodes from it
/// (~250 bytes; the flusher's write batch is sized from the count). Counting the copy alone let a
/// generation of 1 M accounts' transfers hold more batches, and the node peaked 62 MiB higher,
/// past the 2 GiB bound (docs/performance.md, 3r).
const ACCOUNT_BYTES: usize = std::mem::size_of::<Account>() + 256;

type Map = FxHashMap<Key, Option<Vec<u8>>>;

/// Where a buffered posting's record is: a block of its generation's [`Postings`] and a range
/// in it (`None`: the posting was deleted, which only a test does: postings are append-only).
type Span = Option<BlockRange>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct BlockRange {
    block: u32,
    start: u32,
    len: u32,
}

/// Size of a block of posting records. A record longer than this gets a block of its own.
const POSTING_BLOCK_BYTES: usize = 256 << 10;

/// One account's buffered postings, in sequence order.
#[derive(Default)]
struct PostingList {
    /// The last entry's sequence number (0 while empty), kept beside the list in the map's slot:
    /// reading it from the list's end missed the cache on nearly every posting (two thirds of
    /// `WriteBehind::write`'s own time), where appending only stores there.
    last_seq: u64,
    entries: Vec<(u64, Span)>,
}

/// A generation's postings, by account. Postings are append-only (see [`crate::chunks`]), so an
/// account's list only grows at its end: one small-map lookup per posting instead of an insert
/// into the generation's largest map, and the flusher writes each list as it is, without sorting
/// it (the postings were two thirds of a generation's records and most of the flusher's sort).
/// A key written again still replaces its value, wherever it is in the list.
///
/// The records themselves are side by side in blocks of [`POSTING_BLOCK_BYTES`]: a vector per
/// posting was an allocation on the applying thread and a free when the generation was emptied,
/// two per transfer (docs/performance.md, 3v). Blocks, not one growing buffer: no copy as it
/// grows, no room beyond the last block, and nothing kept once the generation is emptied (one
/// buffer kept for reuse stayed resident, ~35 MiB more at the memory run's peak). A replaced
/// record's bytes stay in their block until then.
#[derive(Default)]
struct Postings {
    by_account: FxHashMap<[u8; 16], PostingList>,
    blocks: Vec<Vec<u8>>,
}

impl Postings {
    fn put(&mut self, account: [u8; 16], seq: u64, value: Option<&[u8]>) {
        let span = value.map(|v| self.store(v));
        let list = self.by_account.entry(account).or_default();
        if !list.entries.is_empty() && list.last_seq >= seq {
            match list.entries.binary_search_by_key(&seq, |e| e.0) {
                Ok(i) => list.entries[i].1 = span,
                Err(i) => list.entries.insert(i, (seq, span)),
            }
        } else {
            list.entries.push((seq, span));
            list.last_seq = seq;
        }
    }

    /// Copies a record into the last block (a new one if it does not fit).
    fn store(&mut self, v: &[u8]) -> BlockRange {
        // Records are bounded far below 4 GiB: by the Raft entry's size (`max_entry_bytes`),
        // or a snapshot's by its chunk.
        let len = u32::try_from(v.len()).expect("a posting record is shorter than 4 GiB");
        if self
            .blocks
            .last()
            .is_none_or(|b| b.capacity() - b.len() < v.len())
        {
            self.blocks
                .push(Vec::with_capacity(v.len().max(POSTING_BLOCK_BYTES)));
        }
        let block = self.blocks.len() - 1;
        let b = &mut self.blocks[block];
        let start = b.len() as u32;
        b.extend_from_slice(v);
        BlockRange {
            block: block as u32,
            start,
            len,
        }
    }

    /// The record a span names.
    fn value(&self, span: &Span) -> Option<&[u8]> {
        span.map(|r| &self.blocks[r.block as usize][r.start as usize..][..r.len as usize])
    }

    fn get(&self, account: &[u8; 16], seq: u64) -> Option<Option<&[u8]>> {
        let list = &self.by_account.get(account)?.entries;
        let i = list.binary_search_by_key(&seq, |e| e.0).ok()?;
        Some(self.value(&list[i].1))
    }

    fn clear(&mut self) {
        self.by_account.clear();
        self.blocks.clear();
    }
}

#[derive(Default)]
struct Generation {
    /// Every family's records, but the posting-shaped keys of [`Cf::Postings`] and the accounts
    /// written as accounts.
    maps: [Map; Cf::ALL.len()],
    postings: Postings,
    /// Accounts as the ledger left them after each batch that touched them, in write order:
    /// an append, where a map insert per account and batch missed the cache (a tenth of the
    /// applying thread). The newest copy of an id wins; each id is encoded once, when the
    /// flusher writes the generation (or when a reader asks, which only tools and tests do: the
    /// ledger keeps its accounts in memory). A key of [`Cf::Accounts`] is here or in the
    /// family's ordinary map (written as bytes), never in both.
    accounts: Vec<Account>,
    /// Where each command's record is ([`Cf::Commands`] values, kept unencoded: an insert of 32
    /// bytes per command where a record's bytes were an allocation and a copy). The records
    /// themselves are in the [`Cf::History`] chunks of `maps`. A key of [`Cf::Commands`] is
    /// here or in the family's ordinary map (written as bytes), never in both.
    locs: FxHashMap<u128, RecordLoc>,
    bytes: usize,
}

impl Generation {
    fn is_empty(&self) -> bool {
        self.maps.iter().all(|m| m.is_empty())
            && self.postings.by_account.is_empty()
            && self.accounts.is_empty()
            && self.locs.is_empty()
    }

    /// Empties it, keeping the maps' capacity for the next generation.
    fn clear(&mut self) {
        self.maps.iter_mut().for_each(Map::clear);
        self.postings.clear();
        self.accounts.clear();
        self.locs.clear();
        self.bytes = 0;
    }

    fn put(&mut self, cf: Cf, k: Key, v: Option<Vec<u8>>) {
        self.bytes += k.len() + v.as_ref().map_or(0, Vec::len) + RECORD_OVERHEAD_BYTES;
        if cf == Cf::Accounts && !self.accounts.is_empty() {
            // Rare (an account written as bytes: tests); the newest write wins.
            self.accounts
                .retain(|a| a.info.id.to_bytes().as_slice() != k.as_slice());
        }
        if cf == Cf::Commands && !self.locs.is_empty() && k.len() == 16 {
            // Rare (a command record written as bytes: tests); the newest write wins.
            self.locs.remove(&key_head(&k));
        }
        match chunks::split(&k).filter(|_| cf == Cf::Postings) {
            Some((account, seq)) => self.postings.put(account, seq, v.as_deref()),
            None => {
                self.maps[cf as usize].insert(k, v);
            }
        }
    }

    fn put_history(&mut self, h: History) {
        for (n, c) in h.chunks.into_iter().enumerate() {
            self.put(
                Cf::History,
                crate::store::history_key(h.index, n as u32),
                Some(c),
            );
        }
        let as_bytes = &mut self.maps[Cf::Commands as usize];
        for (id, loc) in h.locs {
            if !as_bytes.is_empty() {
                as_bytes.remove(id.to_bytes().as_slice());
            }
            self.locs.insert(id.0, loc);
            self.bytes += LOC_BYTES;
        }
    }

    /// A posting from a batch's [`crate::store::PostingBatch`]: its record is copied into the
    /// generation's posting blocks.
    fn put_posting(&mut self, account: &[u8; 16], seq: u64, v: &[u8]) {
        self.bytes += crate::store::KEY_INLINE_BYTES + v.len() + RECORD_OVERHEAD_BYTES;
        self.postings.put(*account, seq, Some(v));
    }

    fn put_account(&mut self, a: Account) {
        let accounts_as_bytes = &mut self.maps[Cf::Accounts as usize];
        if !accounts_as_bytes.is_empty() {
            accounts_as_bytes.remove(a.info.id.to_bytes().as_slice());
        }
        self.bytes += ACCOUNT_BYTES;
        self.accounts.push(a);
    }

    /// The newest buffered copy of the account whose key is `key`.
    fn newest_account(&self, key: &[u8]) -> Option<&Account> {
        let id = *key.first_chunk::<16>().filter(|_| key.len() == 16)?;
        self.accounts
            .iter()
            .rev()
            .find(|a| a.info.id.to_bytes() == id)
    }

    /// The buffered value of a key, if this generation holds it (`Some(None)`: deleted).
    fn get(&self, cf: Cf, key: &[u8]) -> Option<Option<Vec<u8>>> {
        if cf == Cf::Accounts {
            if let Some(a) = self.newest_account(key) {
                return Some(crate::store::account_op(a).2);
            }
        }
        if cf == Cf::Commands && key.len() == 16 {
            if let Some(l) = self.locs.get(&key_head(key)) {
                return Some(Some(crate::codec::locator_value(l)));
            }
        }
        match chunks::split(key).filter(|_| cf == Cf::Postings) {
            Some((account, seq)) => self
                .postings
                .get(&account, seq)
                .map(|v| v.map(<[u8]>::to_vec)),
            None => self.maps[cf as usize].get(key).cloned(),
        }
    }

    /// Calls `f` with each buffered record of `cf` whose key starts with `prefix`, in no order.
    fn for_each_with_prefix(&self, cf: Cf, prefix: &[u8], mut f: impl FnMut(&[u8], Option<&[u8]>)) {
        for (k, v) in &self.maps[cf as usize] {
            if k.starts_with(prefix) {
                f(k, v.as_deref());
            }
        }
        if cf == Cf::Commands {
            for (id, l) in &self.locs {
                let key = id.to_be_bytes();
                if key.starts_with(prefix) {
                    f(&key, Some(&crate::codec::locator_value(l)));
                }
            }
        }
        if cf == Cf::Accounts {
            let mut seen = rustc_hash::FxHashSet::default();
            for a in self.accounts.iter().rev() {
                let id = a.info.id.to_bytes();
                if id.starts_with(prefix) && seen.insert(id) {
                    let (_, k, v) = crate::store::account_op(a);
                    f(&k, v.as_deref());
                }
            }
        }
        if cf != Cf::Postings {
            return;
        }
        let mut list = |account: &[u8; 16], list: &PostingList| {
            for (seq, v) in &list.entries {
                let k = crate::store::posting_key(account, *seq);
                if k.starts_with(prefix) {
                    f(&k, self.postings.value(v));
                }
            }
        };
        // A history page asks for one account's postings: look only at its list.
        match prefix.first_chunk::<16>() {
            Some(account) => {
                if let Some(l) = self.postings.by_account.get(account) {
                    list(account, l);
                }
            }
            None => self
                .postings
                .by_account
                .iter()
                .for_each(|(a, l)| list(a, l)),
        }
    }
}

#[derive(Default)]
struct Buffers {
    active: Generation,
    frozen: Option<Arc<Generation>>,
    /// The last generation RocksDB took, handed back to the writer to empty. Its records were
    /// allocated by the writer's thread, which frees them several times faster than another
    /// thread can (the allocator's thread-local free lists), and its emptied maps become the
    /// next active generation without growing again.
    retired: Option<Arc<Generation>>,
}

#[derive(Default)]
struct Control {
    /// Generations frozen so far, and written to RocksDB so far (equal when the flusher is idle).
    frozen_count: u64,
    written_count: u64,
    stop: bool,
    error: Option<String>,
}

struct Shared {
    db: Arc<DB>,
    bytes_max: usize,
    buffers: RwLock<Buffers>,
    /// An emptied generation, ready to be the next active one.
    spare: Mutex<Option<Generation>>,
    control: Mutex<Control>,
    changed: Condvar,
}

/// The buffer and its flusher thread. Shared by every handle on the store (the applying ledger
/// and the read view); dropping the last one writes what is buffered and stops the thread.
pub struct WriteBehind {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

fn poisoned() -> StoreError {
    StoreError::Io("write-behind buffer: a thread panicked while holding it".into())
}

impl WriteBehind {
    pub fn start(db: Arc<DB>, bytes_max: usize) -> Result<WriteBehind, StoreError> {
        let shared = Arc::new(Shared {
            db,
            bytes_max: bytes_max.clamp(WRITE_BEHIND_BYTES_MIN, WRITE_BEHIND_BYTES_MAX),
            buffers: RwLock::default(),
            spare: Mutex::default(),
            control: Mutex::default(),
            changed: Condvar::new(),
        });
        let s = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ledger-flush".into())
            .spawn(move || flush_loop(&s))
            .map_err(|e| StoreError::Io(format!("starting the ledger flusher: {e}")))?;
        Ok(WriteBehind {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn check(&self) -> Result<(), StoreError> {
        let c = self.shared.control.lock().map_err(|_| poisoned())?;
        match &c.error {
            Some(e) => Err(StoreError::Io(format!("ledger flush failed earlier: {e}"))),
            None => Ok(()),
        }
    }

    /// Buffers one batch's writes (atomically: a reader sees all of them or none).
    pub fn write(&self, batch: WriteBatch) -> Result<(), StoreError> {
        self.check()?;
        let (retired, behind) = {
            let mut b = self.shared.buffers.write().map_err(|_| poisoned())?;
            for (cf, k, v) in batch.ops {
                b.active.put(cf, k, v);
            }
            for a in batch.accounts {
                b.active.put_account(a);
            }
            b.active.put_history(batch.history);
            for (account, seq, v) in batch.postings.iter() {
                b.active.put_posting(account, seq, v);
            }
            let behind = if b.active.bytes < self.shared.bytes_max {
                false
            } else if b.frozen.is_none() {
                self.freeze(&mut b)?;
                false
            } else {
                b.active.bytes >= self.shared.bytes_max * BACKPRESSURE_FACTOR
            };
            (b.retired.take(), behind)
        };
        // Outside the lock: readers do not wait for the frees.
        if let Some(mut g) = retired.and_then(|g| Arc::try_unwrap(g).ok()) {
            g.clear();
            *self.shared.spare.lock().map_err(|_| poisoned())? = Some(g);
        }
        if behind {
            // The flusher is behind: wait for the generation it is writing, then hand it this
            // one, rather than grow without bound. (Not `drain`: that would also wait for this
            // generation — four times the usual size — to be written, a stall of its own.)
            return self.hand_over();
        }
        Ok(())
    }

    /// Waits until RocksDB holds the frozen generation, then freezes the active one.
    fn hand_over(&self) -> Result<(), StoreError> {
        self.wait_frozen_written()?;
        let mut b = self.shared.buffers.write().map_err(|_| poisoned())?;
        if b.frozen.is_none() && !b.active.is_empty() {
            self.freeze(&mut b)?;
        }
        Ok(())
    }

    /// Hands the active generation to the flusher; returns its number. Holding the buffers'
    /// write lock means no batch is half-written.
    fn freeze(&self, b: &mut Buffers) -> Result<u64, StoreError> {
        debug_assert!(b.frozen.is_none());
        let next = self
            .shared
            .spare
            .lock()
            .map_err(|_| poisoned())?
            .take()
            .unwrap_or_default();
        b.frozen = Some(Arc::new(std::mem::replace(&mut b.active, next)));
        let mut c = self.shared.control.lock().map_err(|_| poisoned())?;
        c.frozen_count += 1;
        self.shared.changed.notify_all();
        Ok(c.frozen_count)
    }

    /// Waits until RocksDB holds every generation frozen so far.
    fn wait_frozen_written(&self) -> Result<(), StoreError> {
        let n = self
            .shared
            .control
            .lock()
            .map_err(|_| poisoned())?
            .frozen_count;
        self.wait_written(n)
    }

    /// Waits until RocksDB holds generation `n`.
    fn wait_written(&self, n: u64) -> Result<(), StoreError> {
        let mut c = self.shared.control.lock().map_err(|_| poisoned())?;
        while c.written_count < n && c.error.is_none() {
            c = self.shared.changed.wait(c).map_err(|_| poisoned())?;
        }
        match &c.error {
            Some(e) => Err(StoreError::Io(format!("ledger flush: {e}"))),
            None => Ok(()),
        }
    }

    /// Writes everything buffered so far to RocksDB and waits for it (batches applied meanwhile
    /// stay buffered). Afterwards a RocksDB snapshot, checkpoint or flush holds every batch
    /// buffered before the call.
    pub fn drain(&self) -> Result<(), StoreError> {
        loop {
            let mut b = self.shared.buffers.write().map_err(|_| poisoned())?;
            let (n, last) = if b.frozen.is_some() {
                (
                    self.shared
                        .control
                        .lock()
                        .map_err(|_| poisoned())?
                        .frozen_count,
                    false,
                )
            } else if b.active.is_empty() {
                return self.check();
            } else {
                (self.freeze(&mut b)?, true)
            };
            drop(b);
            self.wait_written(n)?;
            if last {
                return Ok(());
            }
        }
    }

    /// Empties the buffer (a snapshot install replaces the whole state), then runs `f` — the
    /// RocksDB replacement — before any reader can look again.
    pub fn replace(&self, f: impl FnOnce() -> Result<(), StoreError>) -> Result<(), StoreError> {
        loop {
            self.wait_frozen_written()?;
            let mut b = self.shared.buffers.write().map_err(|_| poisoned())?;
            if b.frozen.is_none() {
                b.active = Generation::default();
                return f();
            }
        }
    }

    /// The buffered value of a key: `Some(None)` if it is buffered as deleted, `None` if RocksDB
    /// must be asked.
    pub fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        let b = self.shared.buffers.read().map_err(|_| poisoned())?;
        Ok(b.active
            .get(cf, key)
            .or_else(|| b.frozen.as_ref().and_then(|f| f.get(cf, key))))
    }

    /// Like [`WriteBehind::get`], for `len` bytes at `offset` of the value (copied alone).
    pub fn get_part(
        &self,
        cf: Cf,
        key: &[u8],
        offset: usize,
        len: usize,
    ) -> Result<Option<Option<Vec<u8>>>, StoreError> {
        let cut = |v: Option<&Option<Vec<u8>>>| {
            v.map(|v| crate::store::part_of(cf, v.as_deref(), offset, len))
                .transpose()
        };
        if matches!(cf, Cf::Accounts | Cf::Postings | Cf::Commands) {
            // Held apart from the maps (see [`Generation`]): read whole.
            return cut(self.get(cf, key)?.as_ref());
        }
        let b = self.shared.buffers.read().map_err(|_| poisoned())?;
        let m = cf as usize;
        cut(b.active.maps[m]
            .get(key)
            .or_else(|| b.frozen.as_ref().and_then(|f| f.maps[m].get(key))))
    }

    /// Like [`WriteBehind::get`] for several keys under one lock.
    pub fn get_many<'k>(
        &self,
        cf: Cf,
        keys: impl Iterator<Item = &'k [u8]>,
    ) -> Result<Vec<Option<Option<Vec<u8>>>>, StoreError> {
        let b = self.shared.buffers.read().map_err(|_| poisoned())?;
        Ok(keys
            .map(|k| {
                b.active
                    .get(cf, k)
                    .or_else(|| b.frozen.as_ref().and_then(|f| f.get(cf, k)))
            })
            .collect())
    }

    /// The buffered records of `cf` with keys from `start` that start with `prefix` (newest
    /// value per key), together with whatever `open` returns — a RocksDB iterator — created
    /// under the same lock, so the two are one moment's state.
    pub fn range<R>(
        &self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
        open: impl FnOnce() -> R,
    ) -> Result<(BTreeMap<Vec<u8>, Option<Vec<u8>>>, R), StoreError> {
        let b = self.shared.buffers.read().map_err(|_| poisoned())?;
        let mut out = BTreeMap::new();
        // The frozen generation first: the active one's values are newer.
        let gens = b.frozen.as_deref().into_iter().chain([&b.active]);
        for g in gens {
            g.for_each_with_prefix(cf, prefix, |k, v| {
                if k >= start {
                    out.insert(k.to_vec(), v.map(<[u8]>::to_vec));
                }
            });
        }
        let it = open();
        Ok((out, it))
    }
}

impl Drop for WriteBehind {
    fn drop(&mut self) {
        // What is buffered reaches RocksDB, which flushes it at close: a clean stop replays
        // nothing. An error here is the same as a crash: the log replays it.
        if let Err(e) = self.drain() {
            eprintln!("ledger flush at close: {e}");
        }
        if let Ok(mut c) = self.shared.control.lock() {
            c.stop = true;
            self.shared.changed.notify_all();
        }
        if let Some(t) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = t.join();
        }
    }
}

fn flush_loop(s: &Shared) {
    crate::rocks::lower_thread_priority();
    loop {
        {
            let Ok(mut c) = s.control.lock() else { return };
            while c.written_count == c.frozen_count && !c.stop {
                let Ok(next) = s.changed.wait(c) else { return };
                c = next;
            }
            if c.written_count == c.frozen_count || c.error.is_some() {
                return;
            }
        }
        let Some(g) = s.buffers.read().ok().and_then(|b| b.frozen.clone()) else {
            return;
        };
        let result = write_generation(&s.db, &g);
        drop(g);
        let mut dropped = None;
        if result.is_ok() {
            let Ok(mut b) = s.buffers.write() else { return };
            let done = b.frozen.take();
            dropped = std::mem::replace(&mut b.retired, done);
        }
        // A generation the writer did not take back (it wrote nothing since) is freed here.
        drop(dropped);
        let Ok(mut c) = s.control.lock() else { return };
        match result {
            Ok(()) => c.written_count += 1,
            Err(e) => c.error = Some(e.to_string()),
        }
        s.changed.notify_all();
    }
}

/// A record to write with its sort key: the key's first 16 and next 8 bytes as big-endian
/// integers (zero-padded), then the key, then the value. Comparing the integers first orders
/// keys exactly as bytewise comparison does (ties fall back to it) without a `memcmp` call and two
/// pointer dereferences per comparison, which were a third of the flusher's time. The value is
/// resolved while the map is read in memory order: after the sort, rows are visited in key
/// order, and reading the map's slot then (to find the value) missed the cache on nearly every
/// record (two thirds of `flush_loop`'s own time).
type Row<'a> = (u128, u64, &'a [u8], Option<&'a [u8]>);

fn row<'a>(k: &'a [u8], v: &'a Option<Vec<u8>>) -> Row<'a> {
    let next = match k.get(16..).and_then(|t| t.first_chunk::<8>()) {
        // Keys of 24 bytes or more: one load, no copy loop (the general path's
        // `copy_from_slice` calls were a tenth of the flusher).
        Some(n) => u64::from_be_bytes(*n),
        None => {
            let mut next = [0u8; 8];
            let tail = k.get(16..).unwrap_or_default();
            next[..tail.len()].copy_from_slice(tail);
            u64::from_be_bytes(next)
        }
    };
    (key_head(k), next, k, v.as_deref())
}

/// The key of a sorted row without reading the key's own bytes (they sit in the map's slot,
/// cold by the time rows are written in key order): keys of up to 24 bytes are the sort
/// integers' leading bytes; longer ones are read.
fn row_key<'a>(r: &Row<'a>, buf: &'a mut [u8; SORT_KEY_BYTES]) -> &'a [u8] {
    let len = r.2.len();
    if len > buf.len() {
        return r.2;
    }
    buf[..16].copy_from_slice(&r.0.to_be_bytes());
    buf[16..].copy_from_slice(&r.1.to_be_bytes());
    &buf[..len]
}

/// Bytes of a key the sort integers hold: the `u128` head and the `u64` after it.
const SORT_KEY_BYTES: usize = 16 + 8;

/// Rows ahead of the one being written whose value is prefetched: the values are scattered over
/// the heap, and copying each into the write batch waited on a cache miss.
const PREFETCH_ROWS_AHEAD: usize = 8;

/// A key's first 16 bytes as a big-endian integer, zero-padded. Ordering by it, then bytewise
/// on a tie, is bytewise order: the flusher's sort and RocksDB's ordered point reads
/// (`rocks::multi_get_in_order`) both sort by it.
pub(crate) fn key_head(k: &[u8]) -> u128 {
    match k.first_chunk::<16>() {
        Some(h) => u128::from_be_bytes(*h),
        None => {
            let mut head = [0u8; 16];
            head[..k.len()].copy_from_slice(k);
            u128::from_be_bytes(head)
        }
    }
}

fn row_order(a: &Row<'_>, b: &Row<'_>) -> std::cmp::Ordering {
    (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| a.2.cmp(b.2))
}

/// Each account's buffered postings (accounts in key order), each run of consecutive ones as one
/// chunk record.
fn write_posting_chunks(
    wb: &mut rocksdb::WriteBatch,
    h: &rocksdb::ColumnFamily,
    postings: &Postings,
) -> Result<(), StoreError> {
    // The list as a slice, taken while the map is read in memory order (see [`Row`]).
    let mut accounts: Vec<(u128, &[u8; 16], &[(u64, Span)])> = postings
        .by_account
        .iter()
        .map(|(a, l)| (u128::from_be_bytes(*a), a, l.entries.as_slice()))
        .collect();
    accounts.sort_unstable_by_key(|e| e.0);
    let value = |span: &Span| {
        // Chunks may only cover postings written once and kept (see `crate::chunks`).
        postings
            .value(span)
            .ok_or_else(|| StoreError::Io("a posting was deleted: postings are append-only".into()))
    };
    for (n, &(_, account, list)) in accounts.iter().enumerate() {
        if let Some(ahead) = accounts.get(n + 1) {
            crate::prefetch(ahead.2);
        }
        for (_, span) in list.iter().take(PREFETCH_ROWS_AHEAD) {
            if let Some(v) = postings.value(span) {
                crate::prefetch(v);
            }
        }
        let mut i = 0;
        while i < list.len() {
            let first = value(&list[i].1)?;
            let mut end = i + 1;
            let mut bytes = first.len() + 4;
            while end < list.len()
                && end - i < chunks::CHUNK_POSTINGS_MAX
                && list[end - 1].0.checked_add(1) == Some(list[end].0)
            {
                let Some(v) = postings.value(&list[end].1) else {
                    break;
                };
                bytes += v.len() + 4;
                end += 1;
            }
            let key = crate::store::posting_key(account, list[i].0);
            if end - i == 1 {
                wb.put_cf(h, key, first);
            } else {
                let values = list[i..end].iter().filter_map(|e| postings.value(&e.1));
                wb.put_cf(h, key, chunks::encode(values, bytes));
            }
            i = end;
        }
    }
    Ok(())
}

/// One generation in one RocksDB write, each family's records in key order.
fn write_generation(db: &DB, g: &Generation) -> Result<(), StoreError> {
    // Sized once: a batch grown by doubling would copy the generation again and again.
    let mut wb = rocksdb::WriteBatch::with_capacity_bytes(g.bytes);
    for cf in Cf::ALL {
        let h = db
            .cf_handle(cf.name())
            .ok_or_else(|| StoreError::Io(format!("column family {} missing", cf.name())))?;
        if cf == Cf::Postings {
            write_posting_chunks(&mut wb, h, &g.postings)?;
        }
        let mut rows: Vec<Row<'_>> = g.maps[cf as usize].iter().map(|(k, v)| row(k, v)).collect();
        rows.sort_unstable_by(row_order);
        for (i, r) in rows.iter().enumerate() {
            if let Some(Some(v)) = rows.get(i + PREFETCH_ROWS_AHEAD).map(|r| r.3) {
                crate::prefetch(v);
            }
            let mut buf = [0u8; SORT_KEY_BYTES];
            crate::rocks::add_op(&mut wb, h, row_key(r, &mut buf), r.3);
        }
        if cf == Cf::Commands {
            // In id order, so RocksDB's memtable inserts them in sequence. Copied out while the
            // map is read in memory order (see [`Row`]): read through a reference after the
            // sort, each locator missed the cache.
            let mut locs: Vec<(u128, RecordLoc)> = g.locs.iter().map(|(id, l)| (*id, *l)).collect();
            locs.sort_unstable_by_key(|e| e.0);
            for (id, l) in &locs {
                let (b, len) = crate::codec::encode_locator(l);
                wb.put_cf(h, id.to_be_bytes(), &b[..len]);
            }
        }
        if cf == Cf::Accounts {
            // The newest copy of each, encoded here (off the applying thread, once per
            // generation), in key order.
            let mut copies: Vec<(u128, usize)> = g
                .accounts
                .iter()
                .enumerate()
                .map(|(i, a)| (a.info.id.0, i))
                .collect();
            copies.sort_unstable();
            for (n, &(id, i)) in copies.iter().enumerate() {
                if copies.get(n + 1).is_some_and(|next| next.0 == id) {
                    continue;
                }
                let (_, k, v) = crate::store::account_op(&g.accounts[i]);
                crate::rocks::add_op(&mut wb, h, &k, v.as_deref());
            }
        }
    }
    let mut wo = WriteOptions::default();
    wo.disable_wal(true);
    db.write_opt(wb, &wo)
        .map_err(|e| StoreError::Io(e.into_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The flusher's integer sort keys order records exactly as bytewise comparison does,
        /// for keys shorter than, as long as, and longer than the integers (zero bytes included,
        /// where padding could tie).
        #[test]
        fn sort_keys_order_as_bytes(keys in proptest::collection::vec(
            proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(255u8), any::<u8>()], 0..30),
            0..60,
        )) {
            let none = None;
            let mut by_rows: Vec<Row<'_>> = keys.iter().map(|k| row(k, &none)).collect();
            by_rows.sort_unstable_by(row_order);
            let mut by_bytes: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            by_bytes.sort_unstable();
            let rows: Vec<&[u8]> = by_rows.iter().map(|r| r.2).collect();
            // The key rebuilt from the sort integers is the key (the flusher writes that one).
            for r in &by_rows {
                let mut buf = [0u8; SORT_KEY_BYTES];
                prop_assert_eq!(row_key(r, &mut buf), r.2);
            }
            prop_assert_eq!(rows, by_bytes);
        }
    }

    /// An account's buffered postings stay in sequence order and a key written again keeps one
    /// entry with the newest value, whether it is appended, rewritten or arrives out of order.
    #[test]
    fn posting_lists_stay_ordered_and_keep_the_newest_value() {
        let mut g = Generation::default();
        let key = |a: u8, s: u64| crate::store::posting_key(&[a; 16], s);
        for seq in [1, 2, 3, 5] {
            g.put(Cf::Postings, key(7, seq), Some(vec![seq as u8]));
        }
        g.put(Cf::Postings, key(7, 2), Some(vec![20]));
        g.put(Cf::Postings, key(7, 4), Some(vec![4]));
        g.put(Cf::Postings, key(7, 0), None);
        g.put(Cf::Postings, key(8, 9), Some(vec![9]));
        // Not posting-shaped: kept in the family's ordinary map.
        g.put(Cf::Postings, vec![7; 16].into(), Some(vec![16]));
        let list: Vec<(u64, Option<Vec<u8>>)> = g.postings.by_account[&[7; 16]]
            .entries
            .iter()
            .map(|(seq, span)| (*seq, g.postings.value(span).map(<[u8]>::to_vec)))
            .collect();
        let want: Vec<(u64, Option<Vec<u8>>)> = vec![
            (0, None),
            (1, Some(vec![1])),
            (2, Some(vec![20])),
            (3, Some(vec![3])),
            (4, Some(vec![4])),
            (5, Some(vec![5])),
        ];
        assert_eq!(list, want);
        assert_eq!(g.postings.by_account[&[7; 16]].last_seq, 5);
        assert_eq!(g.get(Cf::Postings, &key(7, 2)), Some(Some(vec![20])));
        assert_eq!(g.get(Cf::Postings, &key(7, 0)), Some(None));
        assert_eq!(g.get(Cf::Postings, &key(7, 6)), None);
        assert_eq!(g.get(Cf::Postings, &[7; 16]), Some(Some(vec![16])));
        // The same key bytes in another family are another record.
        assert_eq!(g.get(Cf::Accounts, &key(7, 2)), None);
        let mut seen = Vec::new();
        g.for_each_with_prefix(Cf::Postings, &[7; 16], |k, _| seen.push(k.to_vec()));
        seen.sort();
        let mut want: Vec<Vec<u8>> = (0..=5).map(|s| key(7, s).into_vec()).collect();
        want.insert(0, vec![7; 16]);
        assert_eq!(seen, want);
        let mut all = 0;
        g.for_each_with_prefix(Cf::Postings, &[], |_, _| all += 1);
        assert_eq!(all, 8);
        g.clear();
        assert!(g.is_empty());
    }

    fn account(id: u128, credits: u128) -> Account {
        use crate::types::*;
        let info = AccountInfo {
            id: Id(id),
            currency: crate::money::Currency::from_code("CNY").unwrap(),
            kind: AccountKind::Wallet,
            flags: 0,
            overdraft: 0,
            limits: Limits::default(),
            reference: "r".into(),
            metadata: Default::default(),
            created_ns: 7,
            tier: None,
            normal_side: NormalSide::Credit,
        };
        let mut state = AccountState::default();
        state.balances.credits_posted = credits;
        state.posting_seq = 1;
        Account::new(std::sync::Arc::new(info), state)
    }

    /// Accounts are buffered as the ledger holds them and read as their encoded records; the
    /// newest copy wins; an account written as bytes replaces the buffered one, and the other
    /// way round.
    #[test]
    fn accounts_are_buffered_unencoded_and_read_as_their_records() {
        let enc = crate::codec::encode_account;
        let key = |id: u128| id.to_be_bytes();
        let mut g = Generation::default();
        g.put_account(account(5, 10));
        g.put_account(account(5, 30));
        g.put_account(account(6, 1));
        assert!(!g.is_empty());
        assert_eq!(
            g.get(Cf::Accounts, &key(5)),
            Some(Some(enc(&account(5, 30))))
        );
        assert_eq!(g.get(Cf::Accounts, &key(9)), None);
        // Another family's key of the same bytes is another record.
        assert_eq!(g.get(Cf::Commands, &key(5)), None);
        let mut seen = Vec::new();
        g.for_each_with_prefix(Cf::Accounts, &[], |k, v| {
            seen.push((k.to_vec(), v.map(<[u8]>::to_vec)))
        });
        seen.sort();
        let want = vec![
            (key(5).to_vec(), Some(enc(&account(5, 30)))),
            (key(6).to_vec(), Some(enc(&account(6, 1)))),
        ];
        assert_eq!(seen, want);

        g.put(Cf::Accounts, key(5).to_vec().into(), Some(vec![1, 2]));
        assert_eq!(g.get(Cf::Accounts, &key(5)), Some(Some(vec![1, 2])));
        assert_eq!(g.accounts.len(), 1);
        g.put_account(account(5, 40));
        assert_eq!(
            g.get(Cf::Accounts, &key(5)),
            Some(Some(enc(&account(5, 40))))
        );
        assert!(g.maps[Cf::Accounts as usize].is_empty());
        let mut n = 0;
        g.for_each_with_prefix(Cf::Accounts, &key(5), |_, _| n += 1);
        assert_eq!(n, 1);
        g.clear();
        assert!(g.is_empty());
    }

    /// The flusher writes buffered accounts as their records, and a drained buffer leaves
    /// RocksDB holding exactly what the buffer answered.
    #[test]
    fn flushed_accounts_are_their_records_in_rocksdb() {
        let dir = tempfile::tempdir().unwrap();
        let db = crate::rocks::open_db(dir.path(), &[]).unwrap();
        let wb = WriteBehind::start(db.clone(), WRITE_BEHIND_BYTES_MIN).unwrap();
        for round in 0..50u128 {
            let mut batch = WriteBatch::default();
            for id in 1..=20 {
                batch.put_account(account(id, round * 100 + id));
            }
            wb.write(batch).unwrap();
        }
        let buffered = wb.get(Cf::Accounts, &3u128.to_be_bytes()).unwrap();
        wb.drain().unwrap();
        let h = db.cf_handle(Cf::Accounts.name()).unwrap();
        for id in 1..=20u128 {
            let stored = db.get_cf(h, id.to_be_bytes()).unwrap();
            assert_eq!(
                stored,
                Some(crate::codec::encode_account(&account(id, 4900 + id)))
            );
        }
        assert_eq!(
            buffered,
            Some(Some(crate::codec::encode_account(&account(3, 4903))))
        );
    }
}
