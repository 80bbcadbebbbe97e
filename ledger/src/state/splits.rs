//! Bill splits and AA collection. A split records what each participant owes the payer; the shares
//! are fixed at creation by the largest-remainder rule (`money::largest_remainder`) with ties broken
//! by participant order rotated by a hash of the split id, so every replica — and an auditor —
//! computes the same shares. `open → settled | cancelled`; each item `pending → paid | cancelled`.
//! Paying an item is an ordinary transfer participant → payer.

use super::*;
use crate::money;

/// The tie-break rotation of a split: the first 8 bytes of BLAKE3(split id), modulo the number of
/// participants.
pub fn split_rotation(id: Id, participants: usize) -> usize {
    let h = blake3::hash(&id.to_bytes());
    let r = u64::from_le_bytes(h.as_bytes()[..8].try_into().expect("8 bytes"));
    (r % participants.max(1) as u64) as usize
}

/// An integer value of a split (basis points, weights), if it is one within `1 ..= max`.
fn integer(v: &rust_decimal::Decimal, max: u32) -> Option<u128> {
    let v = v.normalize();
    if v.scale() != 0 || v.is_sign_negative() {
        return None;
    }
    let n = v.mantissa() as u128;
    (1..=u128::from(max)).contains(&n).then_some(n)
}

/// Each participant's share of a split, in minor units, and the split's total.
/// `cur` is the currency the amounts read in (the payer's; `c.currency` as the client declared it
/// may not carry an in-app currency's scale).
pub fn split_shares(c: &CreateSplit, cur: Currency) -> Result<(Vec<u128>, u128), ResultCode> {
    let n = c.participants.len();
    if n == 0 || n > SPLIT_PARTICIPANTS_MAX {
        return Err(ResultCode::InvalidSplit);
    }
    for (i, p) in c.participants.iter().enumerate() {
        if c.participants[..i].contains(p) {
            return Err(ResultCode::SplitParticipantTwice);
        }
    }
    let needs_values = matches!(
        c.mode,
        SplitMode::Exact | SplitMode::Percent | SplitMode::Shares
    );
    if needs_values != (c.values.len() == n) || (!needs_values && !c.values.is_empty()) {
        return Err(ResultCode::InvalidSplit);
    }
    let rotation = split_rotation(c.id, n);
    let total = cur.to_minor(c.total)?;
    let parts = match c.mode {
        SplitMode::Each => return Ok((vec![total; n], money::mul(total, n as u128)?)),
        SplitMode::Equal => money::largest_remainder(total, &vec![1; n], rotation),
        SplitMode::Exact => {
            let mut parts = Vec::with_capacity(n);
            for v in &c.values {
                parts.push(cur.to_minor_allow_zero(*v)?);
            }
            let sum = parts.iter().try_fold(0u128, |s, p| money::add(s, *p))?;
            if sum != total {
                return Err(ResultCode::SplitSumMismatch);
            }
            parts
        }
        SplitMode::Percent => {
            let bps: Vec<u128> = c
                .values
                .iter()
                .map(|v| integer(v, FEE_BPS_MAX))
                .collect::<Option<_>>()
                .ok_or(ResultCode::InvalidSplit)?;
            if bps.iter().sum::<u128>() != u128::from(FEE_BPS_MAX) {
                return Err(ResultCode::SplitSumMismatch);
            }
            money::largest_remainder(total, &bps, rotation)
        }
        SplitMode::Shares => {
            let w: Vec<u128> = c
                .values
                .iter()
                .map(|v| integer(v, SPLIT_WEIGHT_MAX))
                .collect::<Option<_>>()
                .ok_or(ResultCode::InvalidSplit)?;
            money::largest_remainder(total, &w, rotation)
        }
    };
    if parts.iter().any(|p| *p == 0) {
        return Err(ResultCode::SplitAmountTooSmall);
    }
    Ok((parts, total))
}

impl<S: Store> Ledger<S> {
    pub(super) fn load_split(&self, ctx: &BatchCtx, id: Id) -> Result<Option<Split>, LedgerError> {
        match self.kv_get(ctx, Cf::Splits, &id.to_bytes())? {
            Some(b) => Ok(Some(codec::decode_split(&b)?)),
            None => Ok(None),
        }
    }

    pub(super) fn put_split(ctx: &mut BatchCtx, x: &Split) {
        Self::kv_put(
            ctx,
            Cf::Splits,
            x.id.to_bytes().to_vec(),
            codec::encode_split(x),
        );
    }

    /// A split (reads).
    pub fn split(&self, id: Id) -> Result<Option<Split>, LedgerError> {
        match self.store.get(Cf::Splits, &id.to_bytes())? {
            Some(b) => Ok(Some(codec::decode_split(&b)?)),
            None => Ok(None),
        }
    }

    pub(super) fn split_event(
        ctx: &mut BatchCtx,
        kind: EventKind,
        x: &Split,
        command: Id,
        other: Option<Id>,
        amount: u128,
    ) {
        let mut accounts = vec![x.payer];
        accounts.extend(other);
        Self::emit(
            ctx,
            kind,
            x.id,
            command,
            x.state.name(),
            &accounts,
            amount,
            x.currency,
        );
    }

    pub(super) fn create_split(
        &mut self,
        ctx: &mut BatchCtx,
        c: &CreateSplit,
    ) -> Result<(), Failure> {
        if c.note.len() > NOTE_BYTES_MAX {
            return Err(ResultCode::TextTooLong.into());
        }
        for a in std::iter::once(&c.payer).chain(&c.participants) {
            let acct = self.accounts.get(a).ok_or(ResultCode::AccountNotFound)?;
            if acct.info.currency != c.currency {
                return Err(ResultCode::CurrencyMismatch.into());
            }
        }
        let currency = self.accounts[&c.payer].info.currency;
        let (parts, total) = split_shares(c, currency)?;
        let expires_ns = match c.expires_in_seconds {
            None => None,
            Some(s) if s == 0 || s > PENDING_TIMEOUT_SECONDS_MAX => {
                return Err(ResultCode::InvalidTimeout.into())
            }
            Some(s) => Some(ctx.ts + s * 1_000_000_000),
        };
        // A group split: everyone a member, and room in the group's list of open splits.
        let mut group = match c.group {
            None => None,
            Some(g) => {
                let group = self.load_group(ctx, g)?.ok_or(ResultCode::GroupNotFound)?;
                let members_all = std::iter::once(&c.payer)
                    .chain(&c.participants)
                    .all(|a| group.members.contains(a));
                if !members_all {
                    return Err(ResultCode::NotAGroupMember.into());
                }
                if group.open_splits.len() >= GROUP_OPEN_SPLITS_MAX {
                    return Err(ResultCode::GroupFull.into());
                }
                Some(group)
            }
        };
        let items: Vec<SplitItem> = c
            .participants
            .iter()
            .zip(parts)
            .map(|(p, amount)| SplitItem {
                participant: *p,
                amount,
                // The payer's own share is settled at creation.
                state: if *p == c.payer {
                    SplitItemState::Paid
                } else {
                    SplitItemState::Pending
                },
                payment: None,
            })
            .collect();
        let settled = items.iter().all(|i| i.state == SplitItemState::Paid);
        let x = Split {
            id: c.id,
            payer: c.payer,
            currency,
            total,
            mode: c.mode,
            state: if settled {
                SplitState::Settled
            } else {
                SplitState::Open
            },
            note: c.note.clone(),
            items,
            created_ns: ctx.ts,
            updated_ns: ctx.ts,
            group: c.group,
            expires_ns,
        };
        Self::put_split(ctx, &x);
        if let (Some(at), SplitState::Open) = (expires_ns, x.state) {
            self.schedule_timer(ctx, at, TimerKind::Split, x.id);
        }
        if let (Some(g), SplitState::Open) = (group.as_mut(), x.state) {
            g.open_splits.push(x.id);
            Self::put_group(ctx, g);
        }
        Self::split_event(ctx, EventKind::SplitCreated, &x, c.id, None, total);
        Ok(())
    }

    fn open_split(&self, ctx: &BatchCtx, id: Id) -> Result<Split, Failure> {
        let x = self.load_split(ctx, id)?.ok_or(ResultCode::SplitNotFound)?;
        if x.state != SplitState::Open {
            return Err(ResultCode::SplitClosed.into());
        }
        Ok(x)
    }

    pub(super) fn pay_split(
        &mut self,
        ctx: &mut BatchCtx,
        p: &PaySplit,
    ) -> Result<Transfer, Failure> {
        let mut x = self.open_split(ctx, p.split)?;
        let i = x
            .items
            .iter()
            .position(|i| i.participant == p.participant)
            .ok_or(ResultCode::SplitItemNotFound)?;
        if x.items[i].state != SplitItemState::Pending {
            return Err(ResultCode::SplitItemPaid.into());
        }
        let amount = x.items[i].amount;
        let t = self.create_transfer(
            ctx,
            &CreateTransfer {
                id: p.id,
                legs: vec![LegSpec {
                    debit: p.participant,
                    credit: x.payer,
                    amount: x.currency.to_decimal(amount),
                    currency: Some(x.currency),
                }],
                pending_timeout_seconds: None,
                reference: String::new(),
            },
        )?;
        x.items[i].state = SplitItemState::Paid;
        x.items[i].payment = Some(p.id);
        x.updated_ns = ctx.ts;
        let settled = x.items.iter().all(|i| i.state == SplitItemState::Paid);
        if settled {
            x.state = SplitState::Settled;
            self.untrack_split(ctx, &x)?;
        }
        Self::put_split(ctx, &x);
        Self::split_event(
            ctx,
            EventKind::SplitItemPaid,
            &x,
            p.id,
            Some(p.participant),
            amount,
        );
        if settled {
            Self::split_event(ctx, EventKind::SplitSettled, &x, p.id, None, x.total);
        }
        Ok(t)
    }

    pub(super) fn cancel_split(
        &mut self,
        ctx: &mut BatchCtx,
        c: &CancelSplit,
    ) -> Result<(), Failure> {
        let mut x = self.open_split(ctx, c.split)?;
        x.state = SplitState::Cancelled;
        for i in &mut x.items {
            if i.state == SplitItemState::Pending {
                i.state = SplitItemState::Cancelled;
            }
        }
        x.updated_ns = ctx.ts;
        self.untrack_split(ctx, &x)?;
        Self::put_split(ctx, &x);
        Self::split_event(ctx, EventKind::SplitCancelled, &x, c.id, None, x.total);
        Ok(())
    }

    /// Disarms a split's expiry timer (it settled, was cancelled, or expired).
    pub(super) fn disarm_split(&mut self, ctx: &mut BatchCtx, x: &Split) {
        if let Some(at) = x.expires_ns {
            self.cancel_timer(ctx, at, TimerKind::Split, x.id);
        }
    }

    /// A split's expiry: items still pending are cancelled (what they owed is no longer asked).
    pub(super) fn expire_split(&mut self, ctx: &mut BatchCtx, id: Id) -> Result<(), LedgerError> {
        let mut x = self
            .load_split(ctx, id)?
            .ok_or_else(|| LedgerError::Corrupt(format!("split {id} has a timer but no record")))?;
        assert_eq!(x.state, SplitState::Open, "only open splits expire");
        let mut owed = 0u128;
        for i in &mut x.items {
            if i.state == SplitItemState::Pending {
                i.state = SplitItemState::Cancelled;
                owed += i.amount;
            }
        }
        x.state = SplitState::Expired;
        x.updated_ns = ctx.ts;
        self.untrack_split(ctx, &x)?;
        Self::put_split(ctx, &x);
        Self::split_event(ctx, EventKind::SplitExpired, &x, id, None, owed);
        Ok(())
    }
}
