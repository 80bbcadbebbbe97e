//! Snapshots: the whole ledger state as bytes (for Raft state transfer), and restoring from them.
//!
//! A snapshot replaces a replica's whole state, so it is checked before it does: its checksum
//! (blake3 over everything before it), that it is at the index Raft says, that every currency
//! balances, and that the digest it carries is the last link of the chain it carries. A snapshot
//! that fails is refused (the node stops rather than run on state it cannot trust).

use super::*;

/// 2: the digest chain family (see `chain`) follows the others, then a blake3 checksum.
const SNAPSHOT_VERSION: u8 = 2;
const CHECKSUM_BYTES: usize = 32;

impl<S: Store> Ledger<S> {
    /// Serializes the whole ledger state (every family, including the applied index and digest).
    pub fn snapshot(&self) -> Result<Vec<u8>, LedgerError> {
        let mut e = Enc::with_capacity(1 << 16);
        e.buf.extend_from_slice(b"SPLS");
        e.u8(SNAPSHOT_VERSION);
        for cf in Cf::ALL {
            let mut rows: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            self.store.for_each(cf, &mut |k, v| {
                rows.push((k.to_vec(), v.to_vec()));
                Ok(())
            })?;
            rows.sort(); // identical bytes for identical state, whatever the store's order
            e.u8(cf as u8);
            e.u64(rows.len() as u64);
            for (k, v) in rows {
                e.bytes(&k);
                e.bytes(&v);
            }
        }
        let sum = blake3::hash(&e.buf);
        e.buf.extend_from_slice(sum.as_bytes());
        Ok(e.buf)
    }

    /// The rows of a snapshot (checksum checked for version 2).
    fn snapshot_rows(data: &[u8]) -> Result<WriteBatch, LedgerError> {
        let bad = |r: &str| LedgerError::Snapshot(r.to_string());
        if data.len() < 5 || &data[..4] != b"SPLS" || !(1..=SNAPSHOT_VERSION).contains(&data[4]) {
            return Err(bad("not a ledger snapshot"));
        }
        // Version 1 predates the digest chain (its last family) and the checksum.
        let (families, body) = if data[4] == 1 {
            (&Cf::ALL[..Cf::ALL.len() - 1], &data[5..])
        } else {
            if data.len() < 5 + CHECKSUM_BYTES {
                return Err(bad("truncated"));
            }
            let (head, sum) = data.split_at(data.len() - CHECKSUM_BYTES);
            if blake3::hash(head).as_bytes() != sum {
                return Err(bad("checksum mismatch"));
            }
            (&Cf::ALL[..], &head[5..])
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

    /// Opens the snapshot's state in memory and checks it: at `index`, every currency balanced
    /// (posted and pending), its digest the one its chain records at that index.
    fn check_snapshot(index: u64, rows: WriteBatch) -> Result<(), LedgerError> {
        let bad = |r: String| LedgerError::Snapshot(r);
        let mut m = crate::store::MemStore::new();
        m.replace_all(rows)?;
        let l = Ledger::open(m)?;
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
    /// index may jump).
    pub fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), LedgerError> {
        if self.read_only {
            return Err(LedgerError::ReadOnly(
                "a read view does not restore snapshots",
            ));
        }
        // Checked in a scratch ledger first: the real state is replaced only by a sound snapshot.
        let wb = Self::snapshot_rows(data)?;
        Self::check_snapshot(index, wb.clone())?;
        self.store.replace_all(wb)?;
        self.load()?;
        // Read back: the state now in the store is the one that was checked.
        assert_eq!(
            self.applied_index, index,
            "restored state is not at the checked index"
        );
        Ok(())
    }
}
