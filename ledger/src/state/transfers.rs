//! Transfers: posted at once, or two-phase (a hold, later posted in full or in part, voided, or
//! expired by its timer).

use super::moves::Movement;
use super::*;
use crate::money;

impl<S: Store> Ledger<S> {
    pub(super) fn create_transfer(
        &mut self,
        ctx: &mut BatchCtx,
        t: &CreateTransfer,
    ) -> Result<Transfer, Failure> {
        if t.legs.is_empty() {
            return Err(ResultCode::NoLegs.into());
        }
        if t.legs.len() > LEGS_MAX {
            return Err(ResultCode::TooManyLegs.into());
        }
        if t.reference.len() > REFERENCE_BYTES_MAX {
            return Err(ResultCode::ReferenceTooLong.into());
        }
        let expires_ns = match t.pending_timeout_seconds {
            None => None,
            Some(s) if s == 0 || s > PENDING_TIMEOUT_SECONDS_MAX => {
                return Err(ResultCode::InvalidTimeout.into())
            }
            Some(s) => Some(ctx.ts + s * 1_000_000_000),
        };
        let pending = expires_ns.is_some();
        let mut m = Movement::new(ctx, t.id, pending, t.legs.len());
        for leg in &t.legs {
            self.add_leg(&mut m, leg.debit, leg.credit, leg.currency, leg.amount)?;
        }
        let legs = self.commit_movement(ctx, m);
        if let Some(at) = expires_ns {
            self.schedule_timer(ctx, at, TimerKind::PendingTransfer, t.id);
        }
        if !t.reference.is_empty() {
            // Found again by reference (reconciliation matches bank lines on it).
            ctx.wb.put(
                Cf::FlowIndex,
                super::reports::reference_key(&t.reference, t.id),
                Vec::new(),
            );
        }
        Ok(Transfer {
            id: t.id,
            legs,
            state: if pending {
                TransferState::Pending
            } else {
                TransferState::Posted
            },
            pending_id: None,
            expires_ns,
            posted_amount: None,
            reference: t.reference.clone(),
            timestamp_ns: ctx.ts,
        })
    }

    pub(super) fn post_pending(
        &mut self,
        ctx: &mut BatchCtx,
        p: &PostPending,
    ) -> Result<Transfer, Failure> {
        self.resolve_pending(ctx, p.id, p.pending_id, Some((p.amount, p.currency)))
    }

    pub(super) fn void_pending(
        &mut self,
        ctx: &mut BatchCtx,
        v: &VoidPending,
    ) -> Result<Transfer, Failure> {
        self.resolve_pending(ctx, v.id, v.pending_id, None)
    }

    /// The open hold `pending_id`, or why it cannot be resolved. An overdue hold not yet swept by
    /// its timer expires here, on the spot.
    fn open_hold(&mut self, ctx: &mut BatchCtx, pending_id: Id) -> Result<Transfer, Failure> {
        let rec = self.record(ctx, pending_id)?;
        let Some(CommandRecord {
            transfer: Some(p), ..
        }) = rec
        else {
            return Err(ResultCode::PendingNotFound.into());
        };
        match p.state {
            TransferState::Pending => {}
            TransferState::PendingPosted => return Err(ResultCode::PendingAlreadyPosted.into()),
            TransferState::PendingVoided => return Err(ResultCode::PendingAlreadyVoided.into()),
            TransferState::PendingExpired => return Err(ResultCode::PendingExpired.into()),
            TransferState::Posted | TransferState::Void => {
                return Err(ResultCode::PendingNotFound.into())
            }
        }
        if p.expires_ns.is_some_and(|at| ctx.ts >= at) {
            self.release(ctx, pending_id, None)?;
            return Err(ResultCode::PendingExpired.into());
        }
        Ok(p)
    }

    /// Posts (`post = Some((amount, declared currency))`) or voids (`post = None`) a pending
    /// transfer.
    fn resolve_pending(
        &mut self,
        ctx: &mut BatchCtx,
        id: Id,
        pending_id: Id,
        post: Option<(Option<rust_decimal::Decimal>, Option<Currency>)>,
    ) -> Result<Transfer, Failure> {
        let p = self.open_hold(ctx, pending_id)?;
        let posted_amount = match post {
            None => None,
            Some((amount, declared)) => {
                let currency = self.accounts[&p.legs[0].debit].info.currency;
                if declared.is_some_and(|d| d != currency) {
                    return Err(ResultCode::CurrencyMismatch.into());
                }
                match amount {
                    None => Some(p.legs.iter().map(|l| l.amount).collect::<Vec<_>>()),
                    Some(amount) => {
                        if p.legs.len() != 1 {
                            return Err(ResultCode::PartialPostMultiLeg.into());
                        }
                        let amount = currency.to_minor(amount)?;
                        if amount > p.legs[0].amount {
                            return Err(ResultCode::PostAmountExceedsPending.into());
                        }
                        Some(vec![amount])
                    }
                }
            }
        };
        // Posting can overflow a posted total; check before touching anything.
        if let Some(amounts) = &posted_amount {
            let mut sim: Vec<(Id, Balances)> = Vec::new();
            for (leg, amt) in p.legs.iter().zip(amounts) {
                for (acct, debit) in [(leg.debit, true), (leg.credit, false)] {
                    let pos = match sim.iter().position(|(a, _)| *a == acct) {
                        Some(i) => i,
                        None => {
                            sim.push((acct, self.accounts[&acct].state.balances));
                            sim.len() - 1
                        }
                    };
                    let b = &mut sim[pos].1;
                    if debit {
                        b.debits_posted = money::add(b.debits_posted, *amt)?;
                    } else {
                        b.credits_posted = money::add(b.credits_posted, *amt)?;
                    }
                }
            }
        }
        let resolved = self.release(ctx, pending_id, posted_amount.as_deref().map(|a| (id, a)))?;
        let (state, legs) = match &posted_amount {
            Some(amounts) => (
                TransferState::Posted,
                resolved
                    .legs
                    .iter()
                    .zip(amounts)
                    .map(|(l, a)| Leg { amount: *a, ..*l })
                    .collect(),
            ),
            None => (TransferState::Void, resolved.legs.clone()),
        };
        Ok(Transfer {
            id,
            legs,
            state,
            pending_id: Some(pending_id),
            expires_ns: None,
            posted_amount: None,
            reference: String::new(),
            timestamp_ns: ctx.ts,
        })
    }
}
