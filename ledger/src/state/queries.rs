//! Reads: accounts, clients, transfers and command outcomes, history pages, balances at a time,
//! the trial balance.

use super::moves::posting_key;
use super::*;

impl<S: Store> Ledger<S> {
    pub fn account(&self, id: Id) -> Option<&Account> {
        self.accounts.get(&id)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    pub fn client(&self, public_key: &[u8; 32]) -> Option<&Client> {
        self.clients.get(public_key)
    }

    pub fn clients(&self) -> Vec<Client> {
        let mut v: Vec<Client> = self.clients.values().cloned().collect();
        v.sort_by(|a, b| {
            a.registered_ns
                .cmp(&b.registered_ns)
                .then(a.public_key.cmp(&b.public_key))
        });
        v
    }

    /// The transfer created by the command `id` (a transfer, a post or a void).
    pub fn transfer(&self, id: Id) -> Result<Option<Transfer>, LedgerError> {
        Ok(self.read_record(id)?.and_then(|r| r.transfer))
    }

    /// The stored outcome of the command `id`, if it was ever applied.
    pub fn command_result(&self, id: Id) -> Result<Option<CommandResult>, LedgerError> {
        Ok(self.read_record(id)?.map(|r| r.result))
    }

    /// Postings of `account` with sequence numbers after `after_seq`, oldest first, at most `limit`
    /// (capped at [`HISTORY_PAGE_MAX`]). The last posting's `seq` is the cursor for the next page.
    pub fn history(
        &self,
        account: Id,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Posting>, LedgerError> {
        let Some(a) = self.accounts.get(&account) else {
            return Ok(Vec::new());
        };
        let last = a.state.posting_seq;
        let first = after_seq.saturating_add(1);
        if first > last {
            return Ok(Vec::new());
        }
        let n = (last - first + 1).min(limit.min(HISTORY_PAGE_MAX) as u64);
        let keys: Vec<crate::store::Key> = (first..first + n)
            .map(|s| posting_key(account, s))
            .collect();
        let values = self.store.multi_get(Cf::Postings, &keys)?;
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.into_iter().enumerate() {
            let seq = first + i as u64;
            let v =
                v.ok_or_else(|| LedgerError::Corrupt(format!("posting {account}/{seq} missing")))?;
            out.push(codec::decode_posting(account, seq, &v)?);
        }
        Ok(out)
    }

    /// One posting of `account`; missing is corruption (sequence numbers are dense).
    pub(super) fn posting(&self, account: Id, seq: u64) -> Result<Posting, LedgerError> {
        let v = self
            .store
            .get(Cf::Postings, &posting_key(account, seq))?
            .ok_or_else(|| LedgerError::Corrupt(format!("posting {account}/{seq} missing")))?;
        Ok(codec::decode_posting(account, seq, &v)?)
    }

    /// The account's balances as of log time `timestamp_ns` (after every posting at or before it): a
    /// binary search over its postings, each of which carries the balances it produced.
    pub fn balance_at(
        &self,
        account: Id,
        timestamp_ns: u64,
    ) -> Result<Option<Balances>, LedgerError> {
        let Some(a) = self.accounts.get(&account) else {
            return Ok(None);
        };
        let (mut lo, mut hi) = (1u64, a.state.posting_seq + 1); // first seq with ts > timestamp in [lo, hi]
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.posting(account, mid)?.timestamp_ns <= timestamp_ns {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 1 {
            return Ok(Some(Balances::default()));
        }
        Ok(Some(self.posting(account, lo - 1)?.balances_after))
    }

    /// The trial balance: per currency, the four totals over all accounts.
    pub fn totals(&self) -> BTreeMap<Currency, CurrencyTotals> {
        let mut m: BTreeMap<Currency, CurrencyTotals> = BTreeMap::new();
        for a in self.accounts.values() {
            let t = m.entry(a.info.currency).or_default();
            let b = &a.state.balances;
            t.debits_posted += b.debits_posted;
            t.credits_posted += b.credits_posted;
            t.debits_pending += b.debits_pending;
            t.credits_pending += b.credits_pending;
            t.accounts += 1;
        }
        m
    }
}
