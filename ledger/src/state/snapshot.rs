//! Snapshots: the whole ledger state as a stream of bytes (for Raft state transfer), and restoring
//! from one.
//!
//! Format 4, the one written: `SPLS`, the version byte, then for each family in [`Cf::ALL`] order
//! its tag, its rows in key order (`[1][u32 key length][key][u32 value length][value]`) and an end
//! byte `0`; last, a blake3 checksum of everything before it. It is written from the store's
//! iterators and read back in one pass, so neither side holds it whole: a ledger of ten million
//! transfers is gigabytes. Identical state gives identical bytes, whatever the store.
//! Version 3 is the same without the last family ([`Cf::History`]: its command records are in
//! [`Cf::Commands`] whole); versions 1 and 2 (row counts before the rows, read whole) are still
//! read.
//!
//! A snapshot replaces a replica's whole state, so it is checked before it does, in a first pass
//! that changes nothing: the checksum, the framing (families in order, keys strictly increasing),
//! and — in a scratch ledger holding only what a ledger loads into memory — that it is at the index
//! Raft says, that every currency balances, and that its digest is the last link of the chain it
//! carries. A snapshot that fails is refused and the ledger is as it was. The second pass installs
//! it; the install is marked in the store until its last write, so a crash half way leaves a ledger
//! that opens empty (and the node restores again), never a mix of two states.

use std::io::{BufReader, Read, Write};
use std::path::Path;

use super::*;
use crate::store::MemStore;

/// 3: streamed rows with end markers (1 and 2 had row counts; 2 added the chain and checksum);
/// 4 added the per-batch history family.
const SNAPSHOT_VERSION: u8 = 4;
const CHECKSUM_BYTES: usize = 32;
const ROW: u8 = 1;
const END: u8 = 0;
/// Bounds on one row, so a corrupt length cannot ask for gigabytes.
const KEY_BYTES_MAX: usize = 64 << 10;
const VALUE_BYTES_MAX: usize = 256 << 20;
/// Rows are installed in writes of about this size.
const INSTALL_BATCH_BYTES: usize = 8 << 20;
/// In `Cf::Meta` while a restore is being installed (see the module doc).
pub(crate) const RESTORING_KEY: &[u8] = b"restoring";
/// Families a ledger loads into memory at open: the scratch check needs only these.
const LOADED: [Cf; 6] = [
    Cf::Meta,
    Cf::Accounts,
    Cf::Clients,
    Cf::Merchants,
    Cf::Timers,
    Cf::Config,
];

fn bad(reason: impl Into<String>) -> LedgerError {
    LedgerError::Snapshot(reason.into())
}

fn read_error(e: std::io::Error) -> LedgerError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        bad("truncated")
    } else {
        bad(format!("read: {e}"))
    }
}

/// Writes `store`'s whole ledger state as a snapshot to `out`; returns its length in bytes.
pub fn write_snapshot<S: Store + ?Sized>(
    store: &S,
    out: &mut dyn Write,
) -> Result<u64, LedgerError> {
    struct Hashing<'a> {
        out: &'a mut dyn Write,
        hasher: blake3::Hasher,
        bytes: u64,
    }
    impl Hashing<'_> {
        fn put(&mut self, b: &[u8]) -> Result<(), StoreError> {
            self.hasher.update(b);
            self.bytes += b.len() as u64;
            self.out
                .write_all(b)
                .map_err(|e| StoreError::Io(format!("snapshot write: {e}")))
        }
    }
    let mut w = Hashing {
        out,
        hasher: blake3::Hasher::new(),
        bytes: 0,
    };
    w.put(b"SPLS")?;
    w.put(&[SNAPSHOT_VERSION])?;
    for cf in Cf::ALL {
        w.put(&[cf as u8])?;
        store.for_each_ordered(cf, &mut |k, v| {
            w.put(&[ROW])?;
            w.put(&(k.len() as u32).to_le_bytes())?;
            w.put(k)?;
            w.put(&(v.len() as u32).to_le_bytes())?;
            w.put(v)
        })?;
        w.put(&[END])?;
    }
    let sum = w.hasher.finalize();
    w.out
        .write_all(sum.as_bytes())
        .and_then(|_| w.out.flush())
        .map_err(|e| StoreError::Io(format!("snapshot write: {e}")))?;
    Ok(w.bytes + CHECKSUM_BYTES as u64)
}

/// Reads a format-3 snapshot from `r` in one pass, handing every row to `f` in order, and checks
/// the framing and the checksum (which is only known at the end: `f` must not commit anything
/// before this returns `Ok`).
fn read_rows(
    r: &mut dyn Read,
    f: &mut dyn FnMut(Cf, &[u8], &[u8]) -> Result<(), LedgerError>,
) -> Result<(), LedgerError> {
    struct Reader<'a> {
        r: BufReader<&'a mut dyn Read>,
        hasher: blake3::Hasher,
    }
    impl Reader<'_> {
        fn fill(&mut self, buf: &mut Vec<u8>, n: usize) -> Result<(), LedgerError> {
            buf.resize(n, 0);
            self.r.read_exact(buf).map_err(read_error)?;
            self.hasher.update(buf);
            Ok(())
        }
        fn u8(&mut self) -> Result<u8, LedgerError> {
            let mut b = [0u8; 1];
            self.r.read_exact(&mut b).map_err(read_error)?;
            self.hasher.update(&b);
            Ok(b[0])
        }
        fn len(&mut self, max: usize, what: &str) -> Result<usize, LedgerError> {
            let mut b = [0u8; 4];
            self.r.read_exact(&mut b).map_err(read_error)?;
            self.hasher.update(&b);
            let n = u32::from_le_bytes(b) as usize;
            if n > max {
                return Err(bad(format!("{what} of {n} bytes, over {max}")));
            }
            Ok(n)
        }
    }
    let mut r = Reader {
        r: BufReader::with_capacity(1 << 20, r),
        hasher: blake3::Hasher::new(),
    };
    let (mut key, mut value, mut prev) = (Vec::new(), Vec::new(), Vec::new());
    r.fill(&mut key, 5)?;
    if &key[..4] != b"SPLS" || !(3..=SNAPSHOT_VERSION).contains(&key[4]) {
        return Err(bad("not a version 3 or 4 ledger snapshot"));
    }
    for &cf in families(key[4]) {
        if r.u8()? != cf as u8 {
            return Err(bad("column family order"));
        }
        let mut first = true;
        loop {
            match r.u8()? {
                END => break,
                ROW => {}
                _ => return Err(bad("row tag")),
            }
            let n = r.len(KEY_BYTES_MAX, "key")?;
            r.fill(&mut key, n)?;
            let n = r.len(VALUE_BYTES_MAX, "value")?;
            r.fill(&mut value, n)?;
            if !first && key <= prev {
                return Err(bad(format!("{cf:?} keys out of order")));
            }
            first = false;
            f(cf, &key, &value)?;
            std::mem::swap(&mut prev, &mut key);
        }
    }
    let expect = r.hasher.finalize();
    let mut sum = [0u8; CHECKSUM_BYTES];
    r.r.read_exact(&mut sum).map_err(read_error)?;
    if expect.as_bytes() != &sum {
        return Err(bad("checksum mismatch"));
    }
    if r.r.read(&mut [0u8; 1]).map_err(read_error)? != 0 {
        return Err(bad("bytes after the checksum"));
    }
    Ok(())
}

/// The families a snapshot of `version` holds, in order: each version added one at the end (2 the
/// digest chain, 4 the per-batch history).
fn families(version: u8) -> &'static [Cf] {
    match version {
        1 => &Cf::ALL[..Cf::ALL.len() - 2],
        2 | 3 => &Cf::ALL[..Cf::ALL.len() - 1],
        _ => &Cf::ALL[..],
    }
}

/// Opens a snapshot's bytes again for each pass.
type Open<'a> = dyn FnMut() -> std::io::Result<Box<dyn Read + 'a>> + 'a;

impl<S: Store> Ledger<S> {
    /// Serializes the whole ledger state (every family, including the applied index and digest).
    pub fn snapshot(&self) -> Result<Vec<u8>, LedgerError> {
        let mut out = Vec::with_capacity(1 << 16);
        write_snapshot(&self.store, &mut out)?;
        Ok(out)
    }

    /// The rows of a version 1 or 2 snapshot (checksum checked for version 2).
    fn legacy_snapshot_rows(data: &[u8]) -> Result<WriteBatch, LedgerError> {
        // Version 1 predates the digest chain (its last family) and the checksum.
        let (families, body) = if data[4] == 1 {
            (families(1), &data[5..])
        } else {
            if data.len() < 5 + CHECKSUM_BYTES {
                return Err(bad("truncated"));
            }
            let (head, sum) = data.split_at(data.len() - CHECKSUM_BYTES);
            if blake3::hash(head).as_bytes() != sum {
                return Err(bad("checksum mismatch"));
            }
            (families(2), &head[5..])
        };
        let mut d = Dec::new(body);
        let mut wb = WriteBatch::default();
        for &cf in families {
            if d.u8()? != cf as u8 {
                return Err(bad("column family order"));
            }
            let n = d.u64()?;
            for _ in 0..n {
                let k = d.bytes()?.to_vec();
                let v = d.bytes()?.to_vec();
                wb.put(cf, k, v);
            }
        }
        d.finish()?;
        Ok(wb)
    }

    /// Opens a snapshot's state (or the part of it a ledger loads into memory) and checks it: at
    /// `index`, every currency balanced (posted and pending), its digest the one its chain records
    /// at that index.
    fn check_snapshot(index: u64, state: MemStore) -> Result<(), LedgerError> {
        let l = Ledger::open(state)?;
        if l.applied_index != index {
            return Err(bad(format!(
                "snapshot is at index {}, expected {index}",
                l.applied_index
            )));
        }
        for (currency, t) in l.totals() {
            if t.debits_posted != t.credits_posted || t.debits_pending != t.credits_pending {
                return Err(bad(format!("{currency} does not balance: {t:?}")));
            }
        }
        if let Some(link) = l.chain(index, 1)?.links.first() {
            if link.digest.is_some_and(|d| d != l.digest) {
                return Err(bad(format!(
                    "its digest is not the one its chain records at index {index}"
                )));
            }
        }
        Ok(())
    }

    /// Replaces the state with a snapshot taken at applied index `index` (the one place the applied
    /// index may jump). A refused snapshot changes nothing.
    pub fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), LedgerError> {
        if data.len() >= 5 && &data[..4] == b"SPLS" && (1..=2).contains(&data[4]) {
            self.ensure_writable()?;
            // Checked in a scratch ledger first: the real state is replaced only by a sound one.
            let wb = Self::legacy_snapshot_rows(data)?;
            let mut scratch = MemStore::new();
            scratch.replace_all(wb.clone())?;
            Self::check_snapshot(index, scratch)?;
            self.store.replace_all(wb)?;
            return self.restored(index);
        }
        self.restore_from(index, &mut || Ok(Box::new(data)))
    }

    /// [`Ledger::restore`] from a snapshot file, read twice (checked, then installed) and never
    /// held in memory whole.
    pub fn restore_file(&mut self, index: u64, path: &Path) -> Result<(), LedgerError> {
        self.restore_from(index, &mut || Ok(Box::new(std::fs::File::open(path)?)))
    }

    fn ensure_writable(&self) -> Result<(), LedgerError> {
        if self.read_only {
            return Err(LedgerError::ReadOnly(
                "a read view does not restore snapshots",
            ));
        }
        Ok(())
    }

    fn restore_from(&mut self, index: u64, open: &mut Open<'_>) -> Result<(), LedgerError> {
        self.ensure_writable()?;
        // Pass 1: check, changing nothing. The chain check reads the links at index - 1 and index
        // and the journal body at index.
        let chain_keys = [
            chain::chain_key(chain::DIGEST_TAG, index.saturating_sub(1)),
            chain::chain_key(chain::DIGEST_TAG, index),
            chain::chain_key(chain::BODY_TAG, index),
        ];
        let mut scratch = MemStore::new();
        let mut wb = WriteBatch::default();
        read_rows(
            &mut open().map_err(|e| bad(format!("open: {e}")))?,
            &mut |cf, k, v| {
                if cf == Cf::Meta && k == RESTORING_KEY {
                    return Err(bad("it carries an unfinished restore's marker"));
                }
                if LOADED.contains(&cf) || (cf == Cf::Chain && chain_keys.iter().any(|c| c == k)) {
                    wb.put(cf, k.to_vec(), v.to_vec());
                    if wb.len() >= 4_096 {
                        scratch.write(std::mem::take(&mut wb))?;
                    }
                }
                Ok(())
            },
        )?;
        scratch.write(wb)?;
        Self::check_snapshot(index, scratch)?;

        // Pass 2: install. Everything is cleared and marked first; the meta family (the applied
        // index) is written last, with the marker's removal.
        let mut marker = WriteBatch::default();
        marker.put(
            Cf::Meta,
            RESTORING_KEY.to_vec(),
            index.to_le_bytes().to_vec(),
        );
        self.store.replace_all(marker)?;
        let (mut meta, mut wb, mut bytes) = (WriteBatch::default(), WriteBatch::default(), 0);
        let store = &mut self.store;
        read_rows(
            &mut open().map_err(|e| bad(format!("open: {e}")))?,
            &mut |cf, k, v| {
                if cf == Cf::Meta {
                    meta.put(cf, k.to_vec(), v.to_vec());
                    return Ok(());
                }
                bytes += k.len() + v.len();
                wb.put(cf, k.to_vec(), v.to_vec());
                if bytes >= INSTALL_BATCH_BYTES {
                    bytes = 0;
                    store.write_bulk(std::mem::take(&mut wb))?;
                }
                Ok(())
            },
        )?;
        self.store.write_bulk(wb)?;
        meta.delete(Cf::Meta, RESTORING_KEY.to_vec());
        self.store.write(meta)?;
        self.store.persist()?;
        self.restored(index)
    }

    /// Loads the state just installed and reads it back: it is the one that was checked.
    fn restored(&mut self, index: u64) -> Result<(), LedgerError> {
        self.load()?;
        assert_eq!(
            self.applied_index, index,
            "restored state is not at the checked index"
        );
        Ok(())
    }

    /// A restore interrupted by a crash left a marked, partial state: clear it (the ledger opens
    /// empty, and the consensus layer restores the snapshot again).
    pub(super) fn clear_interrupted_restore(&mut self) -> Result<(), LedgerError> {
        if self.store.get(Cf::Meta, RESTORING_KEY)?.is_some() {
            self.store.replace_all(WriteBatch::default())?;
            self.store.persist()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountKind, Batch, CreateAccount, CreateTransfer};

    /// A ledger with two funded wallets after `n` transfer batches.
    fn ledger(n: u64) -> Ledger<MemStore> {
        let account =
            |id: u128, kind| Command::CreateAccount(CreateAccount::basic(Id(id), "CNY", kind));
        let mut l = Ledger::open(MemStore::new()).unwrap();
        for i in 0..n {
            let commands = if i == 0 {
                vec![
                    account(1, AccountKind::System),
                    account(2, AccountKind::Wallet),
                    account(3, AccountKind::Wallet),
                ]
            } else {
                (0..50u128)
                    .map(|j| {
                        let id = 1_000 * i as u128 + j;
                        Command::CreateTransfer(CreateTransfer::single(
                            Id(id),
                            Id(1),
                            Id(2 + id % 2),
                            rust_decimal::Decimal::new(id as i64, 2),
                            None,
                        ))
                    })
                    .collect()
            };
            let batch = Batch {
                timestamp_ns: 1_000 + i,
                seed: 0,
                commands,
            };
            l.apply(i + 1, &batch).unwrap();
        }
        l
    }

    /// The format before streaming: row counts before the rows, checksum over everything; and
    /// before per-batch history: command records whole under their ids.
    fn version_2(store: &MemStore) -> Vec<u8> {
        let mut e = Enc::default();
        e.buf.extend_from_slice(b"SPLS");
        e.u8(2);
        for &cf in families(2) {
            let mut rows = Vec::new();
            store
                .for_each_ordered(cf, &mut |k, v| {
                    rows.push((k.to_vec(), record_whole(store, cf, v)));
                    Ok(())
                })
                .unwrap();
            e.u8(cf as u8);
            e.u64(rows.len() as u64);
            for (k, v) in rows {
                e.bytes(&k);
                e.bytes(&v);
            }
        }
        let sum = blake3::hash(&e.buf);
        e.buf.extend_from_slice(sum.as_bytes());
        e.buf
    }

    #[test]
    fn a_snapshot_file_restores_to_the_same_state_and_bytes() {
        let l = ledger(20);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("20.spls");
        let mut f = std::fs::File::create(&path).unwrap();
        let bytes = write_snapshot(l.store(), &mut f).unwrap();
        drop(f);
        assert_eq!(bytes, std::fs::metadata(&path).unwrap().len());
        let mut r = Ledger::open(MemStore::new()).unwrap();
        r.restore_file(20, &path).unwrap();
        assert_eq!((r.applied_index(), r.digest()), (20, l.digest()));
        assert_eq!(r.snapshot().unwrap(), std::fs::read(&path).unwrap());
        // Truncated, or one byte more: refused, nothing changed.
        let data = std::fs::read(&path).unwrap();
        let mut fresh = Ledger::open(MemStore::new()).unwrap();
        for bad in [&data[..data.len() - 1], &[&data[..], &[0][..]].concat()[..]] {
            assert!(fresh.restore(20, bad).is_err());
            assert_eq!(fresh.applied_index(), 0);
        }
    }

    /// A command id's value as stores held it before per-batch history: the record itself.
    fn record_whole(store: &MemStore, cf: Cf, v: &[u8]) -> Vec<u8> {
        match (cf, codec::decode_command_value(v).ok()) {
            (Cf::Commands, Some(codec::StoredCommand::At(l))) => store
                .get_part(
                    Cf::History,
                    &crate::store::history_key(l.index, l.chunk),
                    l.offset as usize,
                    l.len as usize,
                )
                .unwrap()
                .unwrap(),
            _ => v.to_vec(),
        }
    }

    /// Every command id `l` holds, with its record as `l` reads it.
    fn records(l: &Ledger<MemStore>) -> Vec<(Vec<u8>, CommandRecord)> {
        let mut out = Vec::new();
        l.store()
            .for_each_ordered(Cf::Commands, &mut |k, v| {
                out.push((k.to_vec(), l.stored_record(v).unwrap()));
                Ok(())
            })
            .unwrap();
        out
    }

    /// A version-2 snapshot (records whole, no history family) restores to the same state: the
    /// same digest and the same record for every command.
    #[test]
    fn a_version_2_snapshot_still_restores() {
        let l = ledger(5);
        let mut r = Ledger::open(MemStore::new()).unwrap();
        r.restore(5, &version_2(l.store())).unwrap();
        assert_eq!(r.digest(), l.digest());
        let want = records(&l);
        assert!(want.len() > 5, "the ledger has command records");
        assert_eq!(records(&r), want);
        // Both go on alike: a retry of an old command is answered from its old-format record,
        // a changed body under its id is a conflict, a new command is applied.
        let mut l = l;
        let transfer = |id: u128, cents| {
            Command::CreateTransfer(CreateTransfer::single(
                Id(id),
                Id(1),
                Id(2 + id % 2),
                rust_decimal::Decimal::new(cents, 2),
                None,
            ))
        };
        let batch = Batch {
            timestamp_ns: 9_000,
            seed: 0,
            commands: vec![
                transfer(1_001, 1_001),
                transfer(2_002, 1),
                transfer(9_999, 7),
            ],
        };
        let (a, b) = (l.apply(6, &batch).unwrap(), r.apply(6, &batch).unwrap());
        assert_eq!(a.results, b.results);
        assert_eq!(a.digest, b.digest);
        let codes: Vec<_> = b.results.iter().map(|r| r.code).collect();
        use crate::result::ResultCode;
        assert_eq!(
            codes,
            [
                ResultCode::Ok,
                ResultCode::IdempotencyConflict,
                ResultCode::Ok
            ]
        );
        assert_eq!(
            b.results[0].timestamp_ns, 1_001,
            "the first outcome, replayed"
        );
    }

    /// A version-3 snapshot (streamed, records whole, no history family) restores the same way.
    #[test]
    fn a_version_3_snapshot_still_restores() {
        let l = ledger(6);
        let mut e = Enc::default();
        e.buf.extend_from_slice(b"SPLS");
        e.u8(3);
        for &cf in families(3) {
            e.u8(cf as u8);
            l.store()
                .for_each_ordered(cf, &mut |k, v| {
                    let v = record_whole(l.store(), cf, v);
                    e.u8(ROW);
                    e.buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
                    e.buf.extend_from_slice(k);
                    e.buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    e.buf.extend_from_slice(&v);
                    Ok(())
                })
                .unwrap();
            e.u8(END);
        }
        let sum = blake3::hash(&e.buf);
        e.buf.extend_from_slice(sum.as_bytes());
        let mut r = Ledger::open(MemStore::new()).unwrap();
        r.restore(6, &e.buf).unwrap();
        assert_eq!(r.digest(), l.digest());
        assert_eq!(records(&r), records(&l));
    }

    /// A crash half way through an install leaves the marker and part of the rows: the ledger
    /// opens empty rather than as a mix, and the snapshot installs again.
    #[test]
    fn an_interrupted_restore_opens_empty_and_restores_again() {
        let l = ledger(8);
        let snap = l.snapshot().unwrap();
        let mut store = MemStore::new();
        let mut wb = WriteBatch::default();
        wb.put(
            Cf::Meta,
            RESTORING_KEY.to_vec(),
            8u64.to_le_bytes().to_vec(),
        );
        l.store()
            .for_each_ordered(Cf::Accounts, &mut |k, v| {
                wb.put(Cf::Accounts, k.to_vec(), v.to_vec());
                Ok(())
            })
            .unwrap();
        store.write(wb).unwrap();
        let mut r = Ledger::open(store).unwrap();
        assert_eq!((r.applied_index(), r.accounts().count()), (0, 0));
        r.restore(8, &snap).unwrap();
        assert_eq!(r.digest(), l.digest());
        let carries_marker = {
            let mut s = l.store().clone();
            let mut wb = WriteBatch::default();
            wb.put(Cf::Meta, RESTORING_KEY.to_vec(), vec![]);
            s.write(wb).unwrap();
            let mut out = Vec::new();
            write_snapshot(&s, &mut out).unwrap();
            out
        };
        let e = Ledger::open(MemStore::new())
            .unwrap()
            .restore(8, &carries_marker)
            .unwrap_err();
        assert!(e.to_string().contains("marker"), "{e}");
    }
}
