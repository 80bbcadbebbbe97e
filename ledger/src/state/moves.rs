//! Money-moving primitives. Every flow moves money through these and nothing else, so each check
//! (status, limits, funds, overflow) is written once:
//! - a [`Movement`] gathers the legs of one command — posted or held — each checked against the
//!   accounts as the earlier legs left them; it reaches the ledger only through
//!   [`Ledger::commit_movement`], so a failed leg leaves no trace;
//! - [`Ledger::release`] ends a hold: posts all or part of it, voids it, or expires it.

use super::*;
use crate::money::{self, MAX_MINOR};

/// Key of a posting: account id, then its sequence number (big-endian: history pages are ranges).
pub(super) fn posting_key(account: Id, seq: u64) -> crate::store::Key {
    crate::store::posting_key(&account.to_bytes(), seq)
}

/// A command's working copy of one account.
struct Work {
    id: Id,
    state: AccountState,
    /// The daily outflow count already includes this command (one per account per command).
    counted_today: bool,
    /// What this command has debited from the account so far (the per-transfer limit is per
    /// account per command, however many legs it spreads over).
    debited: u128,
}

/// The legs of one command under construction (see the module docs).
pub(super) struct Movement {
    transfer: Id,
    flow: FlowKind,
    pending: bool,
    ts: u64,
    day: u32,
    work: Vec<Work>,
    postings: Vec<Posting>,
    legs: Vec<Leg>,
}

impl Movement {
    /// Starts the legs of transfer `transfer`: posted at once, or held (`pending`) until released.
    pub(super) fn new(ctx: &BatchCtx, transfer: Id, pending: bool, legs_hint: usize) -> Movement {
        Movement {
            transfer,
            flow: ctx.flow,
            pending,
            ts: ctx.ts,
            day: ctx.day,
            work: Vec::with_capacity(2 * legs_hint.min(4)),
            postings: Vec::with_capacity(2 * legs_hint),
            legs: Vec::with_capacity(legs_hint),
        }
    }

    fn work_index(&mut self, a: &Account) -> usize {
        if let Some(i) = self.work.iter().position(|w| w.id == a.info.id) {
            return i;
        }
        let mut state = a.state;
        if state.day != self.day {
            // A new UTC day of log time: daily outflow counters restart.
            state.day = self.day;
            state.day_outflow = 0;
            state.day_outflow_count = 0;
        }
        self.work.push(Work {
            id: a.info.id,
            state,
            counted_today: false,
            debited: 0,
        });
        self.work.len() - 1
    }

    fn post(
        &mut self,
        wi: usize,
        is_debit: bool,
        amount: u128,
        counterparty: Id,
    ) -> Result<(), ResultCode> {
        let w = &mut self.work[wi];
        let b = &mut w.state.balances;
        let total = match (self.pending, is_debit) {
            (false, true) => &mut b.debits_posted,
            (false, false) => &mut b.credits_posted,
            (true, true) => &mut b.debits_pending,
            (true, false) => &mut b.credits_pending,
        };
        *total = money::add(*total, amount)?;
        w.state.posting_seq += 1;
        self.postings.push(Posting {
            account: w.id,
            seq: w.state.posting_seq,
            transfer: self.transfer,
            leg: self.legs.len() as u8,
            kind: if self.pending {
                PostingKind::PendingHold
            } else {
                PostingKind::Posted
            },
            is_debit,
            amount,
            timestamp_ns: self.ts,
            balances_after: w.state.balances,
            counterparty: Some(counterparty),
            flow: self.flow,
        });
        Ok(())
    }
}

fn debit_checks(info: &AccountInfo, w: &mut Work, amount: u128) -> Result<(), ResultCode> {
    match w.state.status {
        AccountStatus::Open => {}
        AccountStatus::Frozen => return Err(ResultCode::AccountFrozen),
        AccountStatus::Closed => return Err(ResultCode::AccountClosed),
    }
    let l = &info.limits;
    let debited = money::add(w.debited, amount)?;
    if l.per_transfer_max.is_some_and(|m| debited > m) {
        return Err(ResultCode::PerTransferLimit);
    }
    let b = &w.state.balances;
    if info.flags & FLAG_DEBITS_MUST_NOT_EXCEED_CREDITS != 0 {
        let debits = money::add(money::add(b.debits_posted, b.debits_pending)?, amount)?;
        if debits > b.credits_posted.saturating_add(info.overdraft) {
            return Err(ResultCode::InsufficientFunds);
        }
    }
    let outflow = money::add(w.state.day_outflow, amount)?;
    if l.daily_outflow_max.is_some_and(|m| outflow > m) {
        return Err(ResultCode::DailyAmountLimit);
    }
    if !w.counted_today {
        if l.daily_outflow_count_max
            .is_some_and(|m| w.state.day_outflow_count >= m)
        {
            return Err(ResultCode::DailyCountLimit);
        }
        w.state.day_outflow_count += 1;
        w.counted_today = true;
    }
    w.state.day_outflow = outflow;
    w.debited = debited;
    Ok(())
}

fn credit_checks(info: &AccountInfo, st: &AccountState, amount: u128) -> Result<(), ResultCode> {
    if st.status == AccountStatus::Closed {
        return Err(ResultCode::AccountClosed);
    }
    let b = &st.balances;
    if info.flags & FLAG_CREDITS_MUST_NOT_EXCEED_DEBITS != 0 {
        let credits = money::add(money::add(b.credits_posted, b.credits_pending)?, amount)?;
        if credits > b.debits_posted {
            return Err(ResultCode::CreditsExceedDebits);
        }
    }
    if let Some(max) = info.limits.balance_max {
        let credits = money::add(money::add(b.credits_posted, b.credits_pending)?, amount)?;
        if credits.saturating_sub(b.debits_posted) > max {
            return Err(ResultCode::BalanceLimit);
        }
    }
    Ok(())
}

/// Checks one leg against its accounts as the movement's earlier legs left them, and records it.
fn push_leg(m: &mut Movement, dr: &Account, cr: &Account, amount: u128) -> Result<(), ResultCode> {
    let di = m.work_index(dr);
    let ci = m.work_index(cr);
    debit_checks(&dr.info, &mut m.work[di], amount)?;
    credit_checks(&cr.info, &m.work[ci].state, amount)?;
    m.post(di, true, amount, cr.info.id)?;
    m.post(ci, false, amount, dr.info.id)?;
    m.legs.push(Leg {
        debit: dr.info.id,
        credit: cr.info.id,
        amount,
    });
    Ok(())
}

impl<S: Store> Ledger<S> {
    /// Adds a leg from `debit` to `credit`: both accounts must exist and share a currency, which must
    /// be the one the client declared, if it declared one (an amount is never read in another
    /// currency's unit); then the debit side passes status, per-transfer, funds and daily limits and
    /// the credit side status, credit and balance limits. Nothing reaches the ledger until
    /// [`Ledger::commit_movement`].
    pub(super) fn add_leg(
        &self,
        m: &mut Movement,
        debit: Id,
        credit: Id,
        declared: Option<Currency>,
        amount: rust_decimal::Decimal,
    ) -> Result<(), ResultCode> {
        let (dr, cr) = self.leg_accounts(debit, credit, declared)?;
        // The accounts' currency decides what a valid amount is (zero, sign, precision, range).
        let amount = dr.info.currency.to_minor(amount)?;
        push_leg(m, dr, cr, amount)
    }

    /// [`Ledger::add_leg`] for an amount already in minor units (a flow's computed fee or share).
    /// A zero amount is refused (`amount_zero`): flows leave out legs that would move nothing.
    pub(super) fn add_leg_minor(
        &self,
        m: &mut Movement,
        debit: Id,
        credit: Id,
        declared: Option<Currency>,
        amount: u128,
    ) -> Result<(), ResultCode> {
        let (dr, cr) = self.leg_accounts(debit, credit, declared)?;
        if amount == 0 {
            return Err(ResultCode::AmountZero);
        }
        if amount > MAX_MINOR {
            return Err(ResultCode::Overflow);
        }
        push_leg(m, dr, cr, amount)
    }

    /// The two accounts of a leg, distinct, existing, and in one currency (the declared one, if any).
    fn leg_accounts(
        &self,
        debit: Id,
        credit: Id,
        declared: Option<Currency>,
    ) -> Result<(&Account, &Account), ResultCode> {
        if debit == credit {
            return Err(ResultCode::SameAccount);
        }
        let (Some(dr), Some(cr)) = (self.accounts.get(&debit), self.accounts.get(&credit)) else {
            return Err(ResultCode::AccountNotFound);
        };
        let currency = dr.info.currency;
        if cr.info.currency != currency || declared.is_some_and(|d| d != currency) {
            return Err(ResultCode::CurrencyMismatch);
        }
        Ok((dr, cr))
    }

    /// Applies every leg of a movement whose legs all passed: account states and postings.
    pub(super) fn commit_movement(&mut self, ctx: &mut BatchCtx, m: Movement) -> Vec<Leg> {
        for mut w in m.work {
            if m.pending {
                w.state.pending_count += 1;
            }
            self.commit_state(ctx, w.id, w.state);
        }
        for p in &m.postings {
            ctx.wb.put_posting(p);
        }
        m.legs
    }

    /// Ends the hold of pending transfer `pending_id`: with `post = Some((post_id, amounts))` posts
    /// `amounts` per leg, else voids it (or, when it is overdue, expires it). The part of a hold that
    /// is not posted is given back to the debited account's daily outflow (the whole hold, and its
    /// count, when nothing is posted). Updates the pending record and cancels its timer. Returns the
    /// updated pending transfer.
    pub(super) fn release(
        &mut self,
        ctx: &mut BatchCtx,
        pending_id: Id,
        post: Option<(Id, &[u128])>,
    ) -> Result<Transfer, LedgerError> {
        let Some(mut rec) = self.record(ctx, pending_id)? else {
            return Err(LedgerError::Corrupt(format!(
                "pending {pending_id} vanished"
            )));
        };
        let mut p = rec
            .transfer
            .take()
            .ok_or_else(|| LedgerError::Corrupt("pending without transfer".into()))?;
        assert_eq!(
            p.state,
            TransferState::Pending,
            "only open holds are released"
        );
        let overdue = p.expires_ns.is_some_and(|at| ctx.ts >= at);
        let (kind, new_state, posting_id) = match post {
            Some((post_id, _)) => (
                PostingKind::PendingPost,
                TransferState::PendingPosted,
                post_id,
            ),
            None if overdue => (
                PostingKind::PendingExpire,
                TransferState::PendingExpired,
                pending_id,
            ),
            None => (
                PostingKind::PendingVoid,
                TransferState::PendingVoided,
                pending_id,
            ),
        };
        let hold_day = self.config.settings.day_of(p.timestamp_ns);
        let mut touched: Vec<Id> = Vec::with_capacity(2);
        let mut count_returned: Vec<Id> = Vec::new();
        for (i, leg) in p.legs.iter().enumerate() {
            let amt_post = post.map_or(0, |(_, a)| a[i]);
            assert!(amt_post <= leg.amount, "post within the hold");
            for (acct, debit) in [(leg.debit, true), (leg.credit, false)] {
                let mut st = self.accounts[&acct].state;
                let b = &mut st.balances;
                let (pending, posted) = if debit {
                    (&mut b.debits_pending, &mut b.debits_posted)
                } else {
                    (&mut b.credits_pending, &mut b.credits_posted)
                };
                *pending = pending
                    .checked_sub(leg.amount)
                    .expect("hold is counted in pending");
                // The caller checked the posted totals stay within MAX_MINOR.
                *posted = money::add(*posted, amt_post).expect("post bound checked by the caller");
                if !touched.contains(&acct) {
                    touched.push(acct);
                    st.pending_count = st
                        .pending_count
                        .checked_sub(1)
                        .expect("pending count covers the hold");
                }
                if debit && st.day == hold_day {
                    // The hold counted toward today's outflow: what is not posted never left.
                    st.day_outflow = st.day_outflow.saturating_sub(leg.amount - amt_post);
                    if post.is_none() && !count_returned.contains(&acct) {
                        count_returned.push(acct);
                        st.day_outflow_count = st.day_outflow_count.saturating_sub(1);
                    }
                }
                st.posting_seq += 1;
                let posting = Posting {
                    account: acct,
                    seq: st.posting_seq,
                    transfer: posting_id,
                    leg: i as u8,
                    kind,
                    is_debit: debit,
                    amount: if post.is_some() { amt_post } else { leg.amount },
                    timestamp_ns: ctx.ts,
                    balances_after: st.balances,
                    counterparty: Some(if debit { leg.credit } else { leg.debit }),
                    flow: ctx.flow,
                };
                ctx.wb.put_posting(&posting);
                self.commit_state(ctx, acct, st);
            }
        }
        if let Some(at) = p.expires_ns {
            self.cancel_timer(ctx, at, TimerKind::PendingTransfer, pending_id);
        }
        p.state = new_state;
        if kind == PostingKind::PendingExpire {
            let event = self.hold_expired_event(ctx, pending_id)?;
            self.transfer_event(ctx, event, &p, pending_id, "expired");
        }
        if let Some((_, amounts)) = post {
            p.posted_amount = Some(amounts.iter().sum());
        }
        rec.transfer = Some(p.clone());
        self.put_record(ctx, pending_id, rec);
        Ok(p)
    }
}
