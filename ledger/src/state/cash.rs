//! Cash-in and cash-out through the custodial bank account (an asset account: credits never exceed
//! debits, so the ledger never pays out more than came in).
//! - Top-up: Dr bank, Cr wallet, at once.
//! - Withdrawal: the wallet's money (the amount to the bank, plus any fee to the fee account) is
//!   held as an ordinary two-phase transfer until the bank confirms (`complete`: the hold is
//!   posted), refuses (`fail`: voided) or never answers (the hold expires back to the wallet).
//!   The withdrawal's state is its hold's: pending → posted | voided | expired.

use super::holds::HoldFlow;
use super::*;

impl<S: Store> Ledger<S> {
    /// The bank account must be an asset account of this ledger.
    fn bank_account(&self, bank: Id) -> Result<(), ResultCode> {
        let a = self
            .accounts
            .get(&bank)
            .ok_or(ResultCode::AccountNotFound)?;
        if a.info.flags & FLAG_CREDITS_MUST_NOT_EXCEED_DEBITS == 0 {
            return Err(ResultCode::InvalidBankAccount);
        }
        Ok(())
    }

    pub(super) fn topup(&mut self, ctx: &mut BatchCtx, t: &Topup) -> Result<Transfer, Failure> {
        self.bank_account(t.bank)?;
        let done = self.create_transfer(
            ctx,
            &CreateTransfer {
                id: t.id,
                legs: vec![LegSpec {
                    debit: t.bank,
                    credit: t.wallet,
                    amount: t.amount,
                    currency: t.currency,
                }],
                pending_timeout_seconds: None,
                reference: String::new(),
            },
        )?;
        Self::transfer_event(
            self,
            ctx,
            EventKind::TopupCompleted,
            &done,
            t.id,
            "completed",
        );
        Ok(done)
    }

    /// A cash flow's event: its accounts (wallet first) and total amount.
    pub(super) fn transfer_event(
        &self,
        ctx: &mut BatchCtx,
        kind: EventKind,
        t: &Transfer,
        command: Id,
        state: &str,
    ) {
        let mut accounts = Vec::with_capacity(4);
        for l in &t.legs {
            // The wallet (debited on the way out, credited on the way in) first.
            if kind == EventKind::TopupCompleted {
                accounts.extend([l.credit, l.debit]);
            } else {
                accounts.extend([l.debit, l.credit]);
            }
        }
        let Some(first) = t.legs.first() else { return };
        let currency = self.accounts[&first.debit].info.currency;
        let amount = t.legs.iter().map(|l| l.amount).sum();
        Self::emit(
            ctx,
            kind,
            t.pending_id.unwrap_or(t.id),
            command,
            state,
            &accounts,
            amount,
            currency,
        );
    }

    pub(super) fn withdraw(
        &mut self,
        ctx: &mut BatchCtx,
        w: &Withdraw,
    ) -> Result<Transfer, Failure> {
        self.bank_account(w.bank)?;
        let legs = self.legs_with_fee(
            w.wallet,
            w.bank,
            w.amount,
            w.currency,
            w.fee_bps,
            w.fee_account,
        )?;
        let timeout = w
            .expires_in_seconds
            .unwrap_or(WITHDRAWAL_EXPIRES_DEFAULT_SECONDS);
        let t = self.start_hold(ctx, HoldFlow::Withdrawal, w.id, legs, timeout, "")?;
        self.transfer_event(ctx, EventKind::WithdrawalRequested, &t, w.id, "pending");
        Ok(t)
    }

    /// A withdrawal (reads): its hold transfer.
    pub fn withdrawal(&self, id: Id) -> Result<Option<Transfer>, LedgerError> {
        if !self.is_hold_of(id, HoldFlow::Withdrawal)? {
            return Ok(None);
        }
        self.transfer(id)
    }

    pub(super) fn complete_withdrawal(
        &mut self,
        ctx: &mut BatchCtx,
        c: &CompleteWithdrawal,
    ) -> Result<Transfer, Failure> {
        let t = self.settle_hold(
            ctx,
            HoldFlow::Withdrawal,
            c.id,
            c.withdrawal,
            true,
            ResultCode::WithdrawalNotFound,
        )?;
        self.transfer_event(ctx, EventKind::WithdrawalCompleted, &t, c.id, "completed");
        Ok(t)
    }

    pub(super) fn fail_withdrawal(
        &mut self,
        ctx: &mut BatchCtx,
        f: &FailWithdrawal,
    ) -> Result<Transfer, Failure> {
        let t = self.settle_hold(
            ctx,
            HoldFlow::Withdrawal,
            f.id,
            f.withdrawal,
            false,
            ResultCode::WithdrawalNotFound,
        )?;
        self.transfer_event(ctx, EventKind::WithdrawalFailed, &t, f.id, "failed");
        Ok(t)
    }
}
