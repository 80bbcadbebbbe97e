//! Flows that are a two-phase hold with a purpose — a withdrawal waiting for the bank, a chat
//! transfer waiting for its payee. The hold is an ordinary pending transfer (so funds, limits,
//! expiry and release are the transfer machinery's); a marker in the flow index says whose it is,
//! so each flow settles only its own holds and its expiry is reported as that flow's event.

use super::orders::{index_key, INDEX_HOLD_FLOW};
use super::*;
use crate::money;

/// Whose hold a pending transfer is (the marker's one byte).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum HoldFlow {
    Withdrawal = 1,
    ChatTransfer = 2,
}

impl<S: Store> Ledger<S> {
    /// The amount leg `debit → credit`, plus a fee leg `debit → fee_account` of
    /// `amount × fee_bps / 10 000` (half up) when there is a fee. `invalid_fee` for a fee over
    /// 100 %, a fee without its account, or a fee account that is one of the two parties.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn legs_with_fee(
        &self,
        debit: Id,
        credit: Id,
        amount: rust_decimal::Decimal,
        declared: Option<Currency>,
        fee_bps: u32,
        fee_account: Option<Id>,
    ) -> Result<Vec<LegSpec>, Failure> {
        if fee_bps > FEE_BPS_MAX
            || (fee_bps > 0 && fee_account.is_none())
            || fee_account.is_some_and(|f| f == debit || f == credit)
        {
            return Err(ResultCode::InvalidFee.into());
        }
        let currency = self
            .accounts
            .get(&debit)
            .ok_or(ResultCode::AccountNotFound)?
            .info
            .currency;
        let mut legs = vec![LegSpec {
            debit,
            credit,
            amount,
            currency: declared,
        }];
        let fee = money::fee_half_up(currency.to_minor(amount)?, fee_bps);
        if let (true, Some(fee_account)) = (fee > 0, fee_account) {
            legs.push(LegSpec {
                debit,
                credit: fee_account,
                amount: currency.to_decimal(fee),
                currency: declared,
            });
        }
        Ok(legs)
    }

    /// Holds `legs` as pending transfer `id` for `timeout_seconds`, marked as `flow`'s.
    pub(super) fn start_hold(
        &mut self,
        ctx: &mut BatchCtx,
        flow: HoldFlow,
        id: Id,
        legs: Vec<LegSpec>,
        timeout_seconds: u64,
        note: &str,
    ) -> Result<Transfer, Failure> {
        let t = self.create_transfer(
            ctx,
            &CreateTransfer {
                id,
                legs,
                pending_timeout_seconds: Some(timeout_seconds),
                reference: note.to_string(),
            },
        )?;
        Self::kv_put(
            ctx,
            Cf::FlowIndex,
            index_key(INDEX_HOLD_FLOW, id, &[]),
            vec![flow as u8],
        );
        Ok(t)
    }

    /// Whose hold `id` is, if it is a flow's.
    pub(super) fn hold_flow(
        &self,
        ctx: &BatchCtx,
        id: Id,
    ) -> Result<Option<HoldFlow>, LedgerError> {
        let v = self.kv_get(ctx, Cf::FlowIndex, &index_key(INDEX_HOLD_FLOW, id, &[]))?;
        Ok(match v.as_deref() {
            None => None,
            Some([1]) => Some(HoldFlow::Withdrawal),
            Some([2]) => Some(HoldFlow::ChatTransfer),
            Some(_) => return Err(LedgerError::Corrupt(format!("hold flow marker of {id}"))),
        })
    }

    /// Whether `id` is `flow`'s hold (reads).
    pub(super) fn is_hold_of(&self, id: Id, flow: HoldFlow) -> Result<bool, LedgerError> {
        Ok(self
            .store
            .get(Cf::FlowIndex, &index_key(INDEX_HOLD_FLOW, id, &[]))?
            .is_some_and(|v| v == [flow as u8]))
    }

    /// Settles `flow`'s hold `hold`: posts it (`post`) or voids it. `not_found` when `hold` is no
    /// hold of that flow.
    pub(super) fn settle_hold(
        &mut self,
        ctx: &mut BatchCtx,
        flow: HoldFlow,
        id: Id,
        hold: Id,
        post: bool,
        not_found: ResultCode,
    ) -> Result<Transfer, Failure> {
        if self.hold_flow(ctx, hold)? != Some(flow) {
            return Err(not_found.into());
        }
        if post {
            self.post_pending(
                ctx,
                &PostPending {
                    id,
                    pending_id: hold,
                    amount: None,
                    currency: None,
                },
            )
        } else {
            self.void_pending(
                ctx,
                &VoidPending {
                    id,
                    pending_id: hold,
                },
            )
        }
    }

    /// A hold expired: the event its flow reports.
    pub(super) fn hold_expired_event(
        &self,
        ctx: &BatchCtx,
        id: Id,
    ) -> Result<EventKind, LedgerError> {
        Ok(match self.hold_flow(ctx, id)? {
            Some(HoldFlow::Withdrawal) => EventKind::WithdrawalExpired,
            Some(HoldFlow::ChatTransfer) => EventKind::TransferReturned,
            None => EventKind::HoldExpired,
        })
    }
}
