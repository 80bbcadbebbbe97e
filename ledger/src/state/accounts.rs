//! Account commands: create, and change status (freeze, reopen, close).

use super::*;

impl<S: Store> Ledger<S> {
    pub(super) fn create_account(
        &mut self,
        ctx: &mut BatchCtx,
        c: &CreateAccount,
    ) -> Result<(), Failure> {
        let currency = self
            .resolve_currency(&c.currency)
            .ok_or(ResultCode::InvalidCurrency)?;
        if self.accounts.contains_key(&c.id) {
            // Unreachable through idempotency (the account id is the command id), kept as a guard.
            return Err(ResultCode::IdempotencyConflict.into());
        }
        if c.debits_must_not_exceed_credits && c.credits_must_not_exceed_debits {
            return Err(ResultCode::InvalidFlags.into());
        }
        let mut flags = 0;
        // A wallet may never go below zero unless it has an explicit overdraft.
        if c.debits_must_not_exceed_credits || c.kind == AccountKind::Wallet {
            flags |= FLAG_DEBITS_MUST_NOT_EXCEED_CREDITS;
        }
        if c.credits_must_not_exceed_debits {
            if c.kind == AccountKind::Wallet {
                return Err(ResultCode::InvalidFlags.into());
            }
            flags |= FLAG_CREDITS_MUST_NOT_EXCEED_DEBITS;
        }
        let conv = |d: Option<rust_decimal::Decimal>| {
            d.map(|d| currency.to_minor_allow_zero(d)).transpose()
        };
        let overdraft = conv(c.overdraft)?.unwrap_or(0);
        if overdraft > 0 && flags & FLAG_DEBITS_MUST_NOT_EXCEED_CREDITS == 0 {
            // An overdraft bounds how far debits may pass credits: it needs that check on.
            return Err(ResultCode::InvalidFlags.into());
        }
        let limits = Limits {
            per_transfer_max: conv(c.limits.per_transfer_max)?,
            daily_outflow_max: conv(c.limits.daily_outflow_max)?,
            daily_outflow_count_max: c.limits.daily_outflow_count_max,
            balance_max: conv(c.limits.balance_max)?,
        };
        if c.reference.len() > REFERENCE_BYTES_MAX {
            return Err(ResultCode::ReferenceTooLong.into());
        }
        if c.metadata.len() > METADATA_ENTRIES_MAX
            || c.metadata.iter().any(|(k, v)| {
                k.is_empty()
                    || k.len() > METADATA_KEY_BYTES_MAX
                    || v.len() > METADATA_VALUE_BYTES_MAX
            })
        {
            return Err(ResultCode::MetadataTooLarge.into());
        }
        let mut account = Account::new(
            std::sync::Arc::new(AccountInfo {
                id: c.id,
                currency,
                kind: c.kind,
                flags,
                overdraft,
                limits,
                reference: c.reference.clone(),
                metadata: c.metadata.clone(),
                created_ns: ctx.ts,
                tier: None,
                normal_side: c.normal_side.unwrap_or(
                    if flags & FLAG_CREDITS_MUST_NOT_EXCEED_DEBITS != 0 {
                        NormalSide::Debit
                    } else {
                        NormalSide::Credit
                    },
                ),
            }),
            AccountState {
                status: AccountStatus::Open,
                day: ctx.day,
                ..Default::default()
            },
        );
        // A zero "before", so the conservation check and the batch write see the new account.
        account.touched_in = ctx.index;
        ctx.before.push((c.id, AccountState::default()));
        ctx.infos.push(c.id);
        self.accounts.insert(c.id, account);
        self.account_ids.insert(c.id);
        Ok(())
    }

    pub(super) fn set_status(
        &mut self,
        ctx: &mut BatchCtx,
        s: &SetAccountStatus,
    ) -> Result<(), Failure> {
        let a = self
            .accounts
            .get(&s.account)
            .ok_or(ResultCode::AccountNotFound)?;
        let cur = a.status();
        if cur == AccountStatus::Closed && s.status != AccountStatus::Closed {
            return Err(ResultCode::InvalidStatusChange.into());
        }
        if s.status == AccountStatus::Closed && cur != AccountStatus::Closed {
            let b = &a.state.balances;
            if a.state.pending_count > 0 || b.debits_pending > 0 || b.credits_pending > 0 {
                return Err(ResultCode::PendingTransfersOpen.into());
            }
            if b.debits_posted != b.credits_posted {
                return Err(ResultCode::BalanceNotZero.into());
            }
        }
        let mut st = a.state;
        st.status = s.status;
        self.commit_state(ctx, s.account, st);
        Ok(())
    }
}
