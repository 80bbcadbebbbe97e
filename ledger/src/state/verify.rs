//! The full consistency check (reconciliation, tests): every currency balances, and every
//! account's stored balances equal the sum of its postings and what its last posting recorded; every
//! order keeps its own rules (refunds within the payment, the fee within both); every command id's
//! record reads back (its locator names a history chunk that holds a record under that id's
//! transfer, if it has one).

use super::*;

/// What [`Ledger::verify`] found wrong.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{currency} does not balance: {totals:?}")]
    Unbalanced {
        currency: Currency,
        totals: CurrencyTotals,
    },
    /// A posting whose recorded balances differ from the running sum, or stored balances that
    /// differ from the sum of the account's postings.
    #[error("account {account}: {problem}")]
    Account { account: Id, problem: String },
    #[error("order {id}: {reason}")]
    Order { id: Id, reason: &'static str },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// An order's own rules: what was refunded never exceeds what was paid, the fee stays within the
/// payment, its refunded part within the fee, and the state agrees with the amounts.
fn check_order(o: &Order) -> Result<(), &'static str> {
    if o.refunded_amount > o.paid_amount {
        return Err("refunded more than paid");
    }
    if o.fee > o.paid_amount || o.fee_refunded > o.fee {
        return Err("fee outside the payment");
    }
    let paid = o.paid_amount == o.amount && o.payer.is_some() && o.payment.is_some();
    let ok = match o.state {
        OrderState::Unpaid | OrderState::Closed | OrderState::Expired => o.paid_amount == 0,
        OrderState::Paid => paid && o.refunded_amount == 0,
        OrderState::PartiallyRefunded => {
            paid && o.refunded_amount > 0 && o.refunded_amount < o.paid_amount
        }
        OrderState::Refunded => {
            paid && o.refunded_amount == o.paid_amount && o.fee_refunded == o.fee
        }
    };
    if !ok {
        return Err("state disagrees with amounts");
    }
    if o.kind != OrderKind::Dynamic && !o.state.is_paid() {
        return Err("only dynamic orders are ever unpaid");
    }
    Ok(())
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
        for id in &self.account_ids {
            let check = self
                .check_account(*id)?
                .expect("every listed account exists");
            if let Some(problem) = check.problem {
                return Err(VerifyError::Account {
                    account: *id,
                    problem,
                });
            }
        }
        let mut bad = None;
        self.for_each_order(&mut |o| {
            if bad.is_none() {
                if let Err(reason) = check_order(&o) {
                    bad = Some(VerifyError::Order { id: o.id, reason });
                } else if o.state == OrderState::Unpaid
                    && !o
                        .expires_ns
                        .is_some_and(|at| self.timers.contains(&(at, TimerKind::Order, o.id)))
                {
                    bad = Some(VerifyError::Order {
                        id: o.id,
                        reason: "unpaid without a timer",
                    });
                }
            }
            Ok(())
        })?;
        if let Some(e) = bad {
            return Err(e);
        }
        self.store
            .for_each(Cf::Commands, &mut |k, v| {
                let id = k
                    .first_chunk::<16>()
                    .filter(|_| k.len() == 16)
                    .map(|b| Id::from_bytes(*b));
                let rec = self.stored_record(v).map_err(|e| StoreError::Corrupt {
                    cf: Cf::Commands,
                    reason: format!("command {id:?}: {e}"),
                })?;
                match (id, &rec.transfer) {
                    (None, _) => Err("a command key that is not an id".to_string()),
                    (Some(id), Some(t)) if t.id != id => {
                        Err(format!("command {id}: the record of transfer {}", t.id))
                    }
                    _ => Ok(()),
                }
                .map_err(|reason| StoreError::Corrupt {
                    cf: Cf::Commands,
                    reason,
                })
            })
            .map_err(LedgerError::from)?;
        Ok(())
    }
}
