//! Groups and netted settle-up. A group lists its members and the open splits created for it;
//! `group balances` nets every pending item among the members (per currency: what each is owed
//! minus what each owes), and `SettleGroup` settles all of them at once with at most (n − 1)
//! transfers per currency: repeatedly the largest creditor is paid by the largest debtor (ties by
//! account id), all legs in one atomic movement — or nothing moves (the first refused leg's code).
//! The items are then paid and the splits settled.

use std::collections::BTreeMap;

use super::moves::Movement;
use super::*;

/// Per currency, each member's net: positive is owed to it, negative it owes.
pub type GroupNets = BTreeMap<Currency, BTreeMap<Id, i128>>;

/// The netted transfers that settle `nets` (debtor, creditor, amount), at most n − 1 per currency.
pub fn settle_plan(nets: &GroupNets) -> Vec<(Currency, Id, Id, u128)> {
    let mut plan = Vec::new();
    for (cur, members) in nets {
        let mut bal: Vec<(Id, i128)> = members
            .iter()
            .map(|(a, n)| (*a, *n))
            .filter(|(_, n)| *n != 0)
            .collect();
        loop {
            // Largest creditor and largest debtor; ties by account id (deterministic).
            let cred = bal
                .iter()
                .enumerate()
                .filter(|(_, (_, n))| *n > 0)
                .max_by(|(_, (a, x)), (_, (b, y))| x.cmp(y).then(b.cmp(a)))
                .map(|(i, _)| i);
            let debt = bal
                .iter()
                .enumerate()
                .filter(|(_, (_, n))| *n < 0)
                .max_by(|(_, (a, x)), (_, (b, y))| (-x).cmp(&-y).then(b.cmp(a)))
                .map(|(i, _)| i);
            let (Some(c), Some(d)) = (cred, debt) else {
                break;
            };
            let x = bal[c].1.min(-bal[d].1);
            plan.push((*cur, bal[d].0, bal[c].0, x as u128));
            bal[c].1 -= x;
            bal[d].1 += x;
        }
    }
    plan
}

impl<S: Store> Ledger<S> {
    pub(super) fn load_group(&self, ctx: &BatchCtx, id: Id) -> Result<Option<Group>, LedgerError> {
        match self.kv_get(ctx, Cf::Groups, &id.to_bytes())? {
            Some(b) => Ok(Some(codec::decode_group(&b)?)),
            None => Ok(None),
        }
    }

    pub(super) fn put_group(ctx: &mut BatchCtx, g: &Group) {
        Self::kv_put(
            ctx,
            Cf::Groups,
            g.id.to_bytes().to_vec(),
            codec::encode_group(g),
        );
    }

    /// A group (reads).
    pub fn group(&self, id: Id) -> Result<Option<Group>, LedgerError> {
        match self.store.get(Cf::Groups, &id.to_bytes())? {
            Some(b) => Ok(Some(codec::decode_group(&b)?)),
            None => Ok(None),
        }
    }

    /// A split left `open`: its expiry timer is disarmed and its group stops tracking it.
    pub(super) fn untrack_split(
        &mut self,
        ctx: &mut BatchCtx,
        x: &Split,
    ) -> Result<(), LedgerError> {
        self.disarm_split(ctx, x);
        if let Some(gid) = x.group {
            let mut g = self.load_group(ctx, gid)?.ok_or_else(|| {
                LedgerError::Corrupt(format!("split {} of a missing group", x.id))
            })?;
            g.open_splits.retain(|s| *s != x.id);
            Self::put_group(ctx, &g);
        }
        Ok(())
    }

    pub(super) fn create_group(
        &mut self,
        ctx: &mut BatchCtx,
        c: &CreateGroup,
    ) -> Result<(), Failure> {
        let n = c.members.len();
        let distinct = c
            .members
            .iter()
            .enumerate()
            .all(|(i, m)| !c.members[..i].contains(m));
        if !(2..=GROUP_MEMBERS_MAX).contains(&n)
            || !distinct
            || c.name.is_empty()
            || c.name.len() > GROUP_NAME_BYTES_MAX
        {
            return Err(ResultCode::InvalidGroup.into());
        }
        if c.members.iter().any(|m| !self.accounts.contains_key(m)) {
            return Err(ResultCode::AccountNotFound.into());
        }
        let g = Group {
            id: c.id,
            name: c.name.clone(),
            members: c.members.clone(),
            open_splits: Vec::new(),
            created_ns: ctx.ts,
        };
        Self::put_group(ctx, &g);
        let first = self.accounts[&c.members[0]].info.currency;
        Self::emit(
            ctx,
            EventKind::GroupCreated,
            g.id,
            c.id,
            "open",
            &g.members,
            0,
            first,
        );
        Ok(())
    }

    /// The group's open splits (as this batch sees them).
    fn group_splits(&self, ctx: &BatchCtx, g: &Group) -> Result<Vec<Split>, LedgerError> {
        let mut v = Vec::with_capacity(g.open_splits.len());
        for id in &g.open_splits {
            v.push(self.load_split(ctx, *id)?.ok_or_else(|| {
                LedgerError::Corrupt(format!("group {} tracks a missing split {id}", g.id))
            })?);
        }
        Ok(v)
    }

    fn nets_of(splits: &[Split]) -> GroupNets {
        let mut nets: GroupNets = BTreeMap::new();
        for x in splits {
            let m = nets.entry(x.currency).or_default();
            for i in x
                .items
                .iter()
                .filter(|i| i.state == SplitItemState::Pending)
            {
                *m.entry(i.participant).or_default() -= i.amount as i128;
                *m.entry(x.payer).or_default() += i.amount as i128;
            }
        }
        nets
    }

    /// Each member's net over the group's pending split items, per currency (reads).
    pub fn group_balances(&self, id: Id) -> Result<Option<GroupNets>, LedgerError> {
        let Some(g) = self.group(id)? else {
            return Ok(None);
        };
        let ctx_free: Vec<Split> = g
            .open_splits
            .iter()
            .map(|s| {
                self.split(*s)?
                    .ok_or_else(|| LedgerError::Corrupt(format!("split {s}")))
            })
            .collect::<Result<_, _>>()?;
        let mut nets = Self::nets_of(&ctx_free);
        // Every member appears, even at zero.
        for m in nets.values_mut() {
            for member in &g.members {
                m.entry(*member).or_default();
            }
        }
        Ok(Some(nets))
    }

    pub(super) fn settle_group(
        &mut self,
        ctx: &mut BatchCtx,
        c: &SettleGroup,
    ) -> Result<Transfer, Failure> {
        let mut g = self
            .load_group(ctx, c.group)?
            .ok_or(ResultCode::GroupNotFound)?;
        let splits = self.group_splits(ctx, &g)?;
        let plan = settle_plan(&Self::nets_of(&splits));
        // Leg numbers are one byte (several currencies of 100 members could pass it).
        if plan.len() > usize::from(u8::MAX) {
            return Err(ResultCode::TooManyLegs.into());
        }
        let mut m = Movement::new(ctx, c.id, false, plan.len());
        for (cur, debtor, creditor, amount) in &plan {
            self.add_leg_minor(&mut m, *debtor, *creditor, Some(*cur), *amount)?;
        }
        let legs = self.commit_movement(ctx, m);
        let moved: u128 = plan.iter().map(|p| p.3).sum();
        for mut x in splits {
            for i in x
                .items
                .iter_mut()
                .filter(|i| i.state == SplitItemState::Pending)
            {
                i.state = SplitItemState::Paid;
                i.payment = Some(c.id);
            }
            x.state = SplitState::Settled;
            x.updated_ns = ctx.ts;
            self.disarm_split(ctx, &x);
            Self::put_split(ctx, &x);
            Self::split_event(ctx, EventKind::SplitSettled, &x, c.id, None, x.total);
        }
        g.open_splits.clear();
        Self::put_group(ctx, &g);
        let currency = plan
            .first()
            .map(|p| p.0)
            .unwrap_or_else(|| self.accounts[&g.members[0]].info.currency);
        Self::emit(
            ctx,
            EventKind::GroupSettled,
            g.id,
            c.id,
            "settled",
            &g.members,
            moved,
            currency,
        );
        Ok(Transfer {
            id: c.id,
            legs,
            state: TransferState::Posted,
            pending_id: None,
            expires_ns: None,
            posted_amount: None,
            reference: String::new(),
            timestamp_ns: ctx.ts,
        })
    }
}
