//! The narrow storage trait and the in-memory store.
//!
//! The ledger sees storage as a few key-value column families plus one atomic multi-key write. That is
//! all RocksDB and the in-memory map need to share, so the two are interchangeable and give equal
//! digests (a property test checks it).

use rustc_hash::FxHashMap;
use smallvec::SmallVec;

use crate::codec::{CommandRecord, RecordLoc};
use crate::types::Account;

/// Bytes of a key held inline in a [`Key`]: an id (16) and a posting key (24) fit, so the apply
/// path allocates nothing for the keys of its records (it used to allocate and free one per
/// record: a command, two postings and each touched account per transfer).
pub const KEY_INLINE_BYTES: usize = 24;

/// A record's key as a write carries it: inline up to [`KEY_INLINE_BYTES`], on the heap beyond.
pub type Key = SmallVec<[u8; KEY_INLINE_BYTES]>;

/// An id's key (its 16 big-endian bytes), without an allocation.
#[inline]
pub fn id_key(id: crate::types::Id) -> Key {
    let mut b = [0u8; KEY_INLINE_BYTES];
    b[..16].copy_from_slice(&id.to_bytes());
    Key::from_buf_and_len(b, 16)
}

/// Column families, one per record type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cf {
    /// Applied index, digest, last timestamp.
    Meta,
    /// Account id → account record.
    Accounts,
    /// Command id → where its record (fingerprint, result, and the transfer for transfer
    /// commands) is in [`Cf::History`]; in stores written before per-batch history, the record
    /// itself (both are read: `codec::decode_command_value`).
    Commands,
    /// (account id, posting sequence) → posting with the resulting balances.
    Postings,
    /// (due time, timer kind, id) → nothing: the timer index (see `state::timers`).
    Timers,
    /// Ed25519 public key → API client.
    Clients,
    /// Merchant account id → merchant profile.
    Merchants,
    /// Order id → order (QR orders and every other merchant payment, with their refunds).
    Orders,
    /// Uniqueness indexes of the flows: (index kind, owner id, key) → the id holding the key (a
    /// merchant's open order numbers, paid bills, consumed payment-code nonces).
    FlowIndex,
    /// Wallet id → its payment-code key and limit.
    Paycodes,
    /// Applied index (big-endian) → that batch's flow events (the journal behind notifications;
    /// the last `EVENT_RETAIN_BATCHES` indexes are kept).
    Events,
    /// Payment request id → request.
    Requests,
    /// Split id → split with its items.
    Splits,
    /// Red packet id → packet; (id, 0xFF) → its slots; (id, slot) → the claim of that slot.
    RedPackets,
    /// Group id → group.
    Groups,
    /// The ledger's replicated configuration: in-app currencies (`c/` + code), exchange rates
    /// (`r/` + from + `/` + to), KYC tiers (`t/` + name) and settings (`s/` + key).
    Config,
    /// Conversion command id → the conversion with the rate it used.
    Conversions,
    /// The digest chain: `d` + index → digest and log time (kept for ever); `b` + index → the
    /// journal record the link is recomputed from (the last `CHAIN_RETAIN_BATCHES` kept).
    Chain,
    /// (applied index, chunk number), both big-endian → that batch's command records, one after
    /// another (chunks of about [`HISTORY_CHUNK_BYTES`]; kept for ever). One sequential key per
    /// chunk instead of one random key per command: a command's own key in [`Cf::Commands`]
    /// holds only where its record is.
    History,
}

/// A history chunk is closed once it holds this many bytes, so a record is read back with a
/// read of one chunk, not of its whole batch.
pub const HISTORY_CHUNK_BYTES: usize = 16 << 10;

/// The key of chunk `chunk` of the history of the batch at `index`: the one writer of the layout.
pub(crate) fn history_key(index: u64, chunk: u32) -> Key {
    let mut b = [0u8; KEY_INLINE_BYTES];
    b[..8].copy_from_slice(&index.to_be_bytes());
    b[8..12].copy_from_slice(&chunk.to_be_bytes());
    Key::from_buf_and_len(b, 12)
}

impl Cf {
    pub const ALL: [Cf; 19] = [
        Cf::Meta,
        Cf::Accounts,
        Cf::Commands,
        Cf::Postings,
        Cf::Timers,
        Cf::Clients,
        Cf::Merchants,
        Cf::Orders,
        Cf::FlowIndex,
        Cf::Paycodes,
        Cf::Events,
        Cf::Requests,
        Cf::Splits,
        Cf::RedPackets,
        Cf::Groups,
        Cf::Config,
        Cf::Conversions,
        Cf::Chain,
        Cf::History,
    ];

    /// Column family name in RocksDB (prefixed so the Raft log's families can share the database).
    pub fn name(self) -> &'static str {
        match self {
            Cf::Meta => "ledger_meta",
            Cf::Accounts => "ledger_accounts",
            Cf::Commands => "ledger_commands",
            Cf::Postings => "ledger_postings",
            Cf::Timers => "ledger_timers",
            Cf::Clients => "ledger_clients",
            Cf::Merchants => "ledger_merchants",
            Cf::Orders => "ledger_orders",
            Cf::FlowIndex => "ledger_flow_index",
            Cf::Paycodes => "ledger_paycodes",
            Cf::Events => "ledger_events",
            Cf::Requests => "ledger_requests",
            Cf::Splits => "ledger_splits",
            Cf::RedPackets => "ledger_redpackets",
            Cf::Groups => "ledger_groups",
            Cf::Config => "ledger_config",
            Cf::Conversions => "ledger_conversions",
            Cf::Chain => "ledger_chain",
            Cf::History => "ledger_history",
        }
    }
}

/// Node-local storage failure. The node must stop: it can no longer prove what it applied.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage I/O: {0}")]
    Io(String),
    #[error("corrupt record in {cf:?}: {reason}")]
    Corrupt { cf: Cf, reason: String },
}

/// The key of `account`'s posting number `seq` (a 16-byte account id, then the big-endian
/// sequence number, so an account's history is one key range): the one writer of the layout.
pub(crate) fn posting_key(account: &[u8], seq: u64) -> Key {
    debug_assert_eq!(account.len(), 16);
    let mut b = [0u8; KEY_INLINE_BYTES];
    b[..16].copy_from_slice(account);
    b[16..].copy_from_slice(&seq.to_be_bytes());
    Key::from_buf(b)
}

/// Puts and deletes applied together or not at all.
#[derive(Clone, Default, Debug)]
pub struct WriteBatch {
    pub ops: Vec<(Cf, Key, Option<Vec<u8>>)>,
    /// Accounts to write to [`Cf::Accounts`] as they are, not yet encoded: the store encodes
    /// each when and where it writes it. Behind the write-behind buffer that is once per
    /// generation, on the flusher's thread, however many batches touched the account; encoding
    /// every touched account in every batch (an allocation and ~250 bytes each) was a tenth of
    /// the applying thread (docs/performance.md, 3r). Written after `ops`.
    pub accounts: Vec<Account>,
    /// The batch's command records, appended to its history chunks. Written after `accounts`.
    pub history: History,
    /// The batch's postings to [`Cf::Postings`], encoded into one buffer. Written after
    /// `history`.
    pub postings: PostingBatch,
}

/// One batch's postings, their records side by side in one buffer. Postings are most of a
/// batch's records (two or more per transfer); a value of its own was an allocation per posting
/// on the applying thread, and a free per posting when the write-behind buffer emptied a
/// generation (docs/performance.md, 3v).
#[derive(Clone, Default, Debug)]
pub struct PostingBatch {
    /// Account id bytes, sequence number, and the record's range in `bytes`.
    rows: Vec<([u8; 16], u64, std::ops::Range<usize>)>,
    bytes: Vec<u8>,
}

impl PostingBatch {
    /// Appends posting `p`'s record under its account and sequence number.
    pub(crate) fn put(&mut self, p: &crate::types::Posting) {
        self.put_with(p.account.to_bytes(), p.seq, |b| {
            crate::codec::encode_posting_into(b, p)
        });
    }

    /// Appends a record already encoded (tests of the stores).
    #[cfg(test)]
    pub(crate) fn put_bytes(&mut self, account: [u8; 16], seq: u64, v: &[u8]) {
        self.put_with(account, seq, |b| b.extend_from_slice(v));
    }

    fn put_with(&mut self, account: [u8; 16], seq: u64, encode: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len();
        encode(&mut self.bytes);
        self.rows.push((account, seq, start..self.bytes.len()));
    }

    /// Every posting as an ordinary put, by reference (a store that writes bytes).
    pub(crate) fn for_each_op(&self, mut f: impl FnMut(Cf, &[u8], &[u8])) {
        for (a, seq, v) in self.iter() {
            f(Cf::Postings, &posting_key(a, seq), v);
        }
    }

    /// Each posting's account id bytes, sequence number and record, in the order put.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&[u8; 16], u64, &[u8])> {
        self.rows
            .iter()
            .map(|(a, seq, r)| (a, *seq, &self.bytes[r.clone()]))
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }
}

/// One batch's command records: the chunks of [`Cf::History`] under its index, and each
/// command id's locator in [`Cf::Commands`]. A record written again (a hold posted in the batch
/// that created it) is appended again, and its id's last locator wins.
#[derive(Clone, Default, Debug)]
pub struct History {
    pub(crate) index: u64,
    pub(crate) chunks: Vec<Vec<u8>>,
    pub(crate) locs: Vec<(crate::types::Id, RecordLoc)>,
}

impl History {
    pub fn is_empty(&self) -> bool {
        self.locs.is_empty()
    }

    /// Appends `rec`, the record of command `id` applied at `index`.
    pub(crate) fn put(&mut self, index: u64, id: crate::types::Id, rec: &CommandRecord) {
        if self.locs.is_empty() {
            self.index = index;
            self.chunks.clear();
        }
        assert_eq!(self.index, index, "one batch's history has one index");
        let need = crate::codec::command_record_bytes_max(rec);
        if self
            .chunks
            .last()
            .is_none_or(|c| !c.is_empty() && c.len() + need > HISTORY_CHUNK_BYTES)
        {
            self.chunks.push(Vec::new());
        }
        let chunk = self.chunks.len() - 1;
        let buf = &mut self.chunks[chunk];
        let offset = buf.len();
        if buf.capacity() < offset + need {
            // Doubling, but never past the chunk's bound (a record larger than the bound gets a
            // chunk of its own size): a batch of ten commands holds ~1 KiB, not 16.
            let cap = (buf.capacity() * 2)
                .clamp(1024, HISTORY_CHUNK_BYTES)
                .max(offset + need);
            buf.reserve_exact(cap - offset);
        }
        crate::codec::encode_command_record_into(buf, rec);
        let loc = RecordLoc {
            index,
            chunk: chunk as u32,
            offset: offset as u32,
            len: (buf.len() - offset) as u32,
        };
        self.locs.push((id, loc));
    }

    /// Every chunk and locator as an ordinary put, by reference (a store that writes bytes).
    pub(crate) fn for_each_op(&self, mut f: impl FnMut(Cf, &[u8], &[u8])) {
        for (n, c) in self.chunks.iter().enumerate() {
            f(Cf::History, &history_key(self.index, n as u32), c);
        }
        for (id, loc) in &self.locs {
            let (b, len) = crate::codec::encode_locator(loc);
            f(Cf::Commands, &id.to_bytes(), &b[..len]);
        }
    }
}

impl WriteBatch {
    pub fn with_capacity(n: usize) -> WriteBatch {
        WriteBatch {
            ops: Vec::with_capacity(n),
            accounts: Vec::new(),
            history: History::default(),
            postings: PostingBatch::default(),
        }
    }
    /// Writes `a` to [`Cf::Accounts`] under its id (encoded by the store).
    #[inline]
    pub fn put_account(&mut self, a: Account) {
        self.accounts.push(a);
    }
    /// Writes the record of command `id`, applied at log index `index`, to the batch's history.
    #[inline]
    pub(crate) fn put_command(&mut self, index: u64, id: crate::types::Id, rec: &CommandRecord) {
        self.history.put(index, id, rec);
    }
    /// Writes posting `p` to [`Cf::Postings`] under its account and sequence number.
    #[inline]
    pub(crate) fn put_posting(&mut self, p: &crate::types::Posting) {
        self.postings.put(p);
    }
    /// The accounts' records, the history and the postings as ordinary puts, after the other
    /// operations (a store that writes records as bytes at once).
    pub fn into_ops(mut self) -> Vec<(Cf, Key, Option<Vec<u8>>)> {
        self.ops.extend(self.accounts.iter().map(account_op));
        let mut ops = std::mem::take(&mut self.ops);
        self.for_each_appended_op(|cf, k, v| ops.push((cf, k.into(), Some(v.to_vec()))));
        ops
    }
    /// The history and the postings as ordinary puts, by reference, in that order (written
    /// after `ops` and `accounts`).
    pub(crate) fn for_each_appended_op(&self, mut f: impl FnMut(Cf, &[u8], &[u8])) {
        self.history.for_each_op(&mut f);
        self.postings.for_each_op(f);
    }
    #[inline]
    pub fn put(&mut self, cf: Cf, key: impl Into<Key>, value: Vec<u8>) {
        self.ops.push((cf, key.into(), Some(value)));
    }
    #[inline]
    pub fn delete(&mut self, cf: Cf, key: impl Into<Key>) {
        self.ops.push((cf, key.into(), None));
    }
    pub fn len(&self) -> usize {
        self.ops.len() + self.accounts.len() + self.history.locs.len() + self.postings.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
            && self.accounts.is_empty()
            && self.history.is_empty()
            && self.postings.is_empty()
    }
}

/// `len` bytes at `offset` of `value`, or a corrupt-record error if it is shorter.
pub(crate) fn part(cf: Cf, value: &[u8], offset: usize, len: usize) -> Result<&[u8], StoreError> {
    offset
        .checked_add(len)
        .and_then(|end| value.get(offset..end))
        .ok_or_else(|| StoreError::Corrupt {
            cf,
            reason: format!("a part {offset}+{len} of a value of {} bytes", value.len()),
        })
}

/// [`part`] of a value read whole (`None`: the key is absent), copied: what every store's
/// `get_part` returns.
pub(crate) fn part_of(
    cf: Cf,
    value: Option<&[u8]>,
    offset: usize,
    len: usize,
) -> Result<Option<Vec<u8>>, StoreError> {
    value
        .map(|v| part(cf, v, offset, len).map(<[u8]>::to_vec))
        .transpose()
}

/// An account's record as a put: the one writer of the accounts family's layout.
pub(crate) fn account_op(a: &Account) -> (Cf, Key, Option<Vec<u8>>) {
    (
        Cf::Accounts,
        id_key(a.info.id),
        Some(crate::codec::encode_account(a)),
    )
}

pub trait Store: Send {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;
    /// `len` bytes at `offset` of the value of `key` (a record in a history chunk): `None` if
    /// the key is absent, an error if the value is shorter. A store that can read a value in
    /// place copies only the part.
    fn get_part(
        &self,
        cf: Cf,
        key: &[u8],
        offset: usize,
        len: usize,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        part_of(cf, self.get(cf, key)?.as_deref(), offset, len)
    }
    /// Several point reads at once (RocksDB batches them); results in key order.
    fn multi_get(&self, cf: Cf, keys: &[Key]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        keys.iter().map(|k| self.get(cf, k)).collect()
    }
    /// Whether one `multi_get` per batch beats point reads per command (true for RocksDB; an
    /// in-memory map answers point reads faster than it builds the key list).
    fn batched_reads_pay(&self) -> bool {
        true
    }
    /// Visits every record of a family (in no particular order).
    fn for_each(
        &self,
        cf: Cf,
        f: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError>;
    /// Visits every record of a family in key order (bytewise), as a snapshot writes them.
    fn for_each_ordered(
        &self,
        cf: Cf,
        f: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let mut rows: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        self.for_each(cf, &mut |k, v| {
            rows.push((k.to_vec(), v.to_vec()));
            Ok(())
        })?;
        rows.sort_unstable();
        rows.iter().try_for_each(|(k, v)| f(k, v))
    }
    /// Records whose keys start with `prefix`, from `start` (inclusive; it must itself start with
    /// `prefix`) in key order, at most `limit` (reports page through indexes with it).
    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError>;
    /// Applies every operation atomically.
    fn write(&mut self, batch: WriteBatch) -> Result<(), StoreError>;
    /// Like [`Store::write`], for a bulk load that no reader follows batch by batch (a snapshot
    /// install): a store with a write buffer in front of its storage writes it straight through.
    fn write_bulk(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        self.write(batch)
    }
    /// Atomically replaces the whole ledger state with `batch` (snapshot install).
    fn replace_all(&mut self, batch: WriteBatch) -> Result<(), StoreError>;
    /// Makes every write so far durable (a store whose writes are durable at once does nothing).
    fn persist(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// The in-memory store: hash maps, no ordering needed (postings are read by dense sequence number).
#[derive(Default, Clone)]
pub struct MemStore {
    maps: [FxHashMap<Key, Vec<u8>>; Cf::ALL.len()],
}

impl MemStore {
    pub fn new() -> MemStore {
        MemStore::default()
    }
    fn idx(cf: Cf) -> usize {
        cf as usize
    }
}

impl Store for MemStore {
    fn batched_reads_pay(&self) -> bool {
        false
    }
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.maps[Self::idx(cf)].get(key).cloned())
    }
    fn for_each(
        &self,
        cf: Cf,
        f: &mut dyn FnMut(&[u8], &[u8]) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        for (k, v) in &self.maps[Self::idx(cf)] {
            f(k, v)?;
        }
        Ok(())
    }
    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, StoreError> {
        // A hash map has no order: filter, then sort (the in-memory store serves tests and the
        // simulator, not reports over millions of keys).
        let mut v: Vec<(Vec<u8>, Vec<u8>)> = self.maps[Self::idx(cf)]
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && k.as_slice() >= start)
            .map(|(k, v)| (k.to_vec(), v.clone()))
            .collect();
        v.sort();
        v.truncate(limit);
        Ok(v)
    }
    fn write(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        for (cf, k, v) in batch.into_ops() {
            let m = &mut self.maps[Self::idx(cf)];
            match v {
                Some(v) => {
                    m.insert(k, v);
                }
                None => {
                    m.remove(&k);
                }
            }
        }
        Ok(())
    }
    fn replace_all(&mut self, batch: WriteBatch) -> Result<(), StoreError> {
        for m in &mut self.maps {
            m.clear();
        }
        self.write(batch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Id;

    /// The inline keys are the bytes the stores always had: an id's 16 big-endian bytes; an
    /// account's 16 then the sequence's 8 big-endian bytes. Neither spills to the heap.
    #[test]
    fn inline_keys_keep_the_stored_layout() {
        let id = Id(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);
        let k = id_key(id);
        assert_eq!(k.as_slice(), &id.to_bytes()[..]);
        assert!(!k.spilled());
        let p = posting_key(&id.to_bytes(), 0x0102_0304_0506_0708);
        let mut want = id.to_bytes().to_vec();
        want.extend_from_slice(&0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(p.as_slice(), want.as_slice());
        assert!(!p.spilled());
        // A longer key is kept whole, on the heap.
        let long: Key = vec![7u8; KEY_INLINE_BYTES + 9].into();
        assert_eq!(long.len(), KEY_INLINE_BYTES + 9);
        assert!(long.spilled());
    }
}
