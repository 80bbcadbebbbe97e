//! Snapshots: the whole ledger state as bytes (for Raft state transfer), and restoring from them.

use super::*;

/// 2: the digest chain family (see `chain`) follows the others.
const SNAPSHOT_VERSION: u8 = 2;

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
        Ok(e.buf)
    }

    /// Replaces the state with a snapshot taken at applied index `index` (the one place the applied
    /// index may jump).
    pub fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), LedgerError> {
        let bad = |r: &str| LedgerError::Snapshot(r.to_string());
        if data.len() < 5 || &data[..4] != b"SPLS" || !(1..=SNAPSHOT_VERSION).contains(&data[4]) {
            return Err(bad("not a ledger snapshot"));
        }
        // Version 1 predates the digest chain (its last family).
        let families = if data[4] == 1 {
            &Cf::ALL[..Cf::ALL.len() - 1]
        } else {
            &Cf::ALL[..]
        };
        let mut d = Dec::new(&data[5..]);
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
        self.store.replace_all(wb)?;
        self.load()?;
        if self.applied_index != index {
            return Err(bad(&format!(
                "snapshot is at index {}, expected {index}",
                self.applied_index
            )));
        }
        Ok(())
    }
}
