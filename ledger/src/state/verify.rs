//! The full consistency check (reconciliation, tests): every currency balances, and every
//! account's stored balances equal the sum of its postings and what its last posting recorded.

use super::*;

/// What [`Ledger::verify`] found wrong.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{currency} does not balance: {totals:?}")]
    Unbalanced {
        currency: Currency,
        totals: CurrencyTotals,
    },
    #[error("account {account} posting {seq} records {recorded:?}, its postings sum to {sum:?}")]
    PostingMismatch {
        account: Id,
        seq: u64,
        recorded: Balances,
        sum: Balances,
    },
    #[error("account {account} balances {stored:?} != the sum of its postings {sum:?}")]
    BalanceMismatch {
        account: Id,
        stored: Balances,
        sum: Balances,
    },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl<S: Store> Ledger<S> {
    pub fn verify(&self) -> Result<(), VerifyError> {
        for (currency, totals) in self.totals() {
            if totals.debits_posted != totals.credits_posted
                || totals.debits_pending != totals.credits_pending
            {
                return Err(VerifyError::Unbalanced { currency, totals });
            }
        }
        for a in self.accounts.values() {
            let mut sum = Balances::default();
            let mut after = 0;
            loop {
                let page = self.history(a.info.id, after, HISTORY_PAGE_MAX)?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for p in &page {
                    apply_posting(&mut sum, p);
                    if sum != p.balances_after {
                        return Err(VerifyError::PostingMismatch {
                            account: a.info.id,
                            seq: p.seq,
                            recorded: p.balances_after,
                            sum,
                        });
                    }
                }
            }
            if sum != a.state.balances {
                return Err(VerifyError::BalanceMismatch {
                    account: a.info.id,
                    stored: a.state.balances,
                    sum,
                });
            }
        }
        Ok(())
    }
}

fn apply_posting(sum: &mut Balances, p: &Posting) {
    let a = p.amount;
    match (p.kind, p.is_debit) {
        (PostingKind::Posted, true) => sum.debits_posted += a,
        (PostingKind::Posted, false) => sum.credits_posted += a,
        (PostingKind::PendingHold, true) => sum.debits_pending += a,
        (PostingKind::PendingHold, false) => sum.credits_pending += a,
        (PostingKind::PendingVoid | PostingKind::PendingExpire, true) => sum.debits_pending -= a,
        (PostingKind::PendingVoid | PostingKind::PendingExpire, false) => sum.credits_pending -= a,
        // A post moves `amount` into posted and releases the whole hold (which a partial post exceeds);
        // the released hold is not on the posting, so take the pending total it recorded.
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
