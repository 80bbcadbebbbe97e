//! Reads for finance: accounts in id order, each account's postings checked against its stored
//! balances, postings in a time range, transfers by reference, a merchant's settlement for a period.
//! Reads only: nothing here changes state, and every answer is bounded (pages).

use super::*;

/// Most accounts one page of [`Ledger::account_page`] returns.
pub const ACCOUNT_PAGE_MAX: usize = 1_000;

/// Index kind in the `FlowIndex` family: transfers by their reference.
const INDEX_REFERENCE: u8 = 5;

/// Key of the reference index: kind, the reference's length and bytes, then the transfer id (so
/// one reference lists every transfer that carries it, in id order).
pub(super) fn reference_key(reference: &str, transfer: Id) -> Vec<u8> {
    let mut k = reference_prefix(reference);
    k.extend_from_slice(&transfer.to_bytes());
    k
}

fn reference_prefix(reference: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(2 + reference.len() + 16);
    k.push(INDEX_REFERENCE);
    k.push(reference.len() as u8);
    k.extend_from_slice(reference.as_bytes());
    k
}

/// An account's postings summed and compared with what the account stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountCheck {
    /// The balances the postings add up to.
    pub sum: Balances,
    /// The first disagreement, if any: a posting whose recorded balances differ from the running
    /// sum, or a final sum that differs from the stored balances.
    pub problem: Option<String>,
}

/// A merchant's payments, refunds and fees over a period, from its postings and their transfers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settlement {
    /// Payments (QR, code, bill, or plain transfers into the merchant account): count and gross
    /// amount (what the payers paid, fees included).
    pub payments: u64,
    pub gross: u128,
    /// Fees charged on those payments (to the merchant's fee account).
    pub fees: u128,
    /// Refunds: count, the amount returned to payers (fee part included), and the fee part.
    pub refunds: u64,
    pub refunded: u128,
    pub fees_refunded: u128,
    /// Anything else that moved the merchant account (payouts to a bank, adjustments).
    pub other_in: u128,
    pub other_out: u128,
    /// The change of the merchant account's posted balance over the period.
    pub net: i128,
}

/// Adds one posting to a running sum of balances.
pub(super) fn apply_posting(sum: &mut Balances, p: &Posting) {
    let a = p.amount;
    match (p.kind, p.is_debit) {
        (PostingKind::Posted, true) => sum.debits_posted += a,
        (PostingKind::Posted, false) => sum.credits_posted += a,
        (PostingKind::PendingHold, true) => sum.debits_pending += a,
        (PostingKind::PendingHold, false) => sum.credits_pending += a,
        (PostingKind::PendingVoid | PostingKind::PendingExpire, true) => sum.debits_pending -= a,
        (PostingKind::PendingVoid | PostingKind::PendingExpire, false) => sum.credits_pending -= a,
        // A post moves `amount` into posted and releases the whole hold (which a partial post
        // exceeds); the released hold is not on the posting, so take the pending total it recorded.
        (PostingKind::PendingPost, true) => {
            sum.debits_posted += a;
            sum.debits_pending = p.balances_after.debits_pending;
        }
        (PostingKind::PendingPost, false) => {
            sum.credits_posted += a;
            sum.credits_pending = p.balances_after.credits_pending;
        }
    }
}

impl<S: Store> Ledger<S> {
    /// Accounts with ids after `after` (from the first with `None`), in id order, at most `limit`
    /// (capped at [`ACCOUNT_PAGE_MAX`]).
    pub fn account_page(&self, after: Option<Id>, limit: usize) -> Vec<&Account> {
        let limit = limit.min(ACCOUNT_PAGE_MAX);
        let range = match after {
            Some(a) => self
                .account_ids
                .range((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => self.account_ids.range(..),
        };
        range.take(limit).map(|id| &self.accounts[id]).collect()
    }

    /// Sums every posting of an account and compares each step with the balances the posting
    /// recorded, and the total with the stored balances. `None` for an unknown account.
    pub fn check_account(&self, id: Id) -> Result<Option<AccountCheck>, LedgerError> {
        let Some(a) = self.accounts.get(&id) else {
            return Ok(None);
        };
        let mut sum = Balances::default();
        let mut after = 0;
        loop {
            let page = self.history(id, after, HISTORY_PAGE_MAX)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for p in &page {
                apply_posting(&mut sum, p);
                if sum != p.balances_after {
                    return Ok(Some(AccountCheck {
                        sum,
                        problem: Some(format!(
                            "posting {} records {:?} but the postings up to it sum to {:?}",
                            p.seq, p.balances_after, sum
                        )),
                    }));
                }
            }
        }
        let problem = (sum != a.state.balances).then(|| {
            format!(
                "stored balances {:?} but the postings sum to {sum:?}",
                a.state.balances
            )
        });
        Ok(Some(AccountCheck { sum, problem }))
    }

    /// The sequence number of the account's first posting at or after log time `ts` (one past the
    /// last posting when there is none): a binary search, postings being in time order.
    pub fn first_posting_at(&self, account: Id, ts: u64) -> Result<u64, LedgerError> {
        let Some(a) = self.accounts.get(&account) else {
            return Ok(1);
        };
        let (mut lo, mut hi) = (1u64, a.state.posting_seq + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.posting(account, mid)?.timestamp_ns < ts {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo)
    }

    /// Postings of `account` with log time in `[from_ns, to_ns)` and sequence after `after_seq`,
    /// oldest first, at most `limit` (capped at [`HISTORY_PAGE_MAX`]).
    pub fn history_between(
        &self,
        account: Id,
        from_ns: u64,
        to_ns: u64,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Posting>, LedgerError> {
        let first = self.first_posting_at(account, from_ns)?;
        let mut page = self.history(account, after_seq.max(first.saturating_sub(1)), limit)?;
        if let Some(cut) = page.iter().position(|p| p.timestamp_ns >= to_ns) {
            page.truncate(cut);
        }
        Ok(page)
    }

    /// Ids of the transfers carrying `reference`, after `after` in id order, at most `limit`
    /// (capped at [`HISTORY_PAGE_MAX`]).
    pub fn transfers_by_reference(
        &self,
        reference: &str,
        after: Option<Id>,
        limit: usize,
    ) -> Result<Vec<Id>, LedgerError> {
        if reference.is_empty() || reference.len() > REFERENCE_BYTES_MAX {
            return Ok(Vec::new());
        }
        let prefix = reference_prefix(reference);
        let start = match after {
            // The first key past `after`: its successor id.
            Some(a) => match a.0.checked_add(1) {
                Some(next) => reference_key(reference, Id(next)),
                None => return Ok(Vec::new()),
            },
            None => prefix.clone(),
        };
        let rows = self
            .store
            .scan(Cf::FlowIndex, &prefix, &start, limit.min(HISTORY_PAGE_MAX))?;
        rows.iter()
            .map(|(k, _)| {
                let id: [u8; 16] = k[prefix.len()..]
                    .try_into()
                    .map_err(|_| LedgerError::Corrupt("reference index key".into()))?;
                Ok(Id::from_bytes(id))
            })
            .collect()
    }

    /// A merchant's settlement over log time `[from_ns, to_ns)`: every posting of its account in
    /// the period, with the fee legs of the payments and refunds they belong to. `None` for an
    /// unknown merchant.
    pub fn merchant_settlement(
        &self,
        merchant: Id,
        from_ns: u64,
        to_ns: u64,
    ) -> Result<Option<Settlement>, LedgerError> {
        let Some(profile) = self.merchants.get(&merchant) else {
            return Ok(None);
        };
        let mut s = Settlement::default();
        let mut after = 0;
        loop {
            let page = self.history_between(merchant, from_ns, to_ns, after, HISTORY_PAGE_MAX)?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            for p in &page {
                // Holds move no money yet; their post (or nothing) does.
                if matches!(
                    p.kind,
                    PostingKind::PendingHold
                        | PostingKind::PendingVoid
                        | PostingKind::PendingExpire
                ) {
                    continue;
                }
                let amount = p.amount as i128;
                s.net += if p.is_debit { -amount } else { amount };
                // The fee legs of the same transfer (to or from the merchant's fee account).
                let (mut fee_in, mut fee_out) = (0u128, 0u128);
                if let (Some(fee_account), Some(t)) =
                    (profile.fee_account, self.transfer(p.transfer)?)
                {
                    for l in &t.legs {
                        if l.credit == fee_account {
                            fee_in += l.amount;
                        } else if l.debit == fee_account {
                            fee_out += l.amount;
                        }
                    }
                }
                match (p.flow, p.is_debit) {
                    (FlowKind::Refund, true) => {
                        s.refunds += 1;
                        s.refunded += p.amount + fee_out;
                        s.fees_refunded += fee_out;
                    }
                    (
                        FlowKind::QrPayment
                        | FlowKind::CodePayment
                        | FlowKind::BillPayment
                        | FlowKind::Transfer,
                        false,
                    ) => {
                        s.payments += 1;
                        s.gross += p.amount + fee_in;
                        s.fees += fee_in;
                    }
                    (_, false) => s.other_in += p.amount,
                    (_, true) => s.other_out += p.amount,
                }
            }
        }
        Ok(Some(s))
    }
}
