//! Red packets. Creating one moves the total from the sender into the currency's escrow account and
//! fixes every slot from the packet's seed ([`crate::redpacket`]); the k-th committed claim takes
//! slot k (Dr escrow, Cr claimer), once per wallet; at expiry the unclaimed rest returns to the
//! sender. A claim touches one small record plus its own keys (the slots are read, never
//! rewritten), so a hot packet's claims stay cheap.
//!
//! Escrow accounts are real system accounts, one per currency, with a documented derived id
//! ([`escrow_account_id`]); the first packet in a currency creates it.

use super::*;
use crate::redpacket;

/// The escrow account of `currency`: the first 16 bytes of BLAKE3("suanpan/escrow/" ‖ code).
pub fn escrow_account_id(currency: Currency) -> Id {
    let h = blake3::hash(format!("suanpan/escrow/{}", currency.code()).as_bytes());
    Id::from_bytes(h.as_bytes()[..16].try_into().expect("16 bytes"))
}

fn packet_key(id: Id) -> Vec<u8> {
    id.to_bytes().to_vec()
}

fn slots_key(id: Id) -> Vec<u8> {
    let mut k = id.to_bytes().to_vec();
    k.push(0xFF);
    k
}

fn claim_key(id: Id, slot: u32) -> Vec<u8> {
    let mut k = id.to_bytes().to_vec();
    k.push(0x01);
    k.extend_from_slice(&slot.to_be_bytes());
    k
}

fn claimer_key(id: Id, wallet: Id) -> Vec<u8> {
    let mut k = id.to_bytes().to_vec();
    k.push(0x02);
    k.extend_from_slice(&wallet.to_bytes());
    k
}

impl<S: Store> Ledger<S> {
    fn load_redpacket(&self, ctx: &BatchCtx, id: Id) -> Result<Option<RedPacket>, LedgerError> {
        match self.kv_get(ctx, Cf::RedPackets, &packet_key(id))? {
            Some(b) => Ok(Some(codec::decode_redpacket(&b)?)),
            None => Ok(None),
        }
    }

    fn put_redpacket(ctx: &mut BatchCtx, r: &RedPacket) {
        Self::kv_put(
            ctx,
            Cf::RedPackets,
            packet_key(r.id),
            codec::encode_redpacket(r),
        );
    }

    /// A red packet, its slots and its claims in slot order (reads).
    pub fn redpacket(
        &self,
        id: Id,
    ) -> Result<Option<(RedPacket, Vec<u64>, Vec<RedPacketClaim>)>, LedgerError> {
        let Some(b) = self.store.get(Cf::RedPackets, &packet_key(id))? else {
            return Ok(None);
        };
        let r = codec::decode_redpacket(&b)?;
        let slots = match self.store.get(Cf::RedPackets, &slots_key(id))? {
            Some(b) => codec::decode_slots(&b)?,
            None => {
                return Err(LedgerError::Corrupt(format!(
                    "red packet {id} without slots"
                )))
            }
        };
        let keys: Vec<crate::store::Key> =
            (0..r.claimed).map(|k| claim_key(id, k).into()).collect();
        let mut claims = Vec::with_capacity(keys.len());
        for v in self.store.multi_get(Cf::RedPackets, &keys)? {
            let v = v.ok_or_else(|| LedgerError::Corrupt(format!("red packet {id} claim")))?;
            claims.push(codec::decode_claim(&v)?);
        }
        Ok(Some((r, slots, claims)))
    }

    fn redpacket_event(
        ctx: &mut BatchCtx,
        kind: EventKind,
        r: &RedPacket,
        command: Id,
        who: Option<Id>,
        amount: u128,
    ) {
        let mut accounts = vec![r.sender];
        accounts.extend(who);
        Self::emit(
            ctx,
            kind,
            r.id,
            command,
            r.state.name(),
            &accounts,
            amount,
            r.currency,
        );
    }

    pub(super) fn create_redpacket(
        &mut self,
        ctx: &mut BatchCtx,
        c: &CreateRedPacket,
    ) -> Result<Transfer, Failure> {
        let currency = self
            .accounts
            .get(&c.sender)
            .ok_or(ResultCode::AccountNotFound)?
            .info
            .currency;
        if c.currency.is_some_and(|d| d != currency) {
            return Err(ResultCode::CurrencyMismatch.into());
        }
        let total = currency.to_minor(c.total)?;
        if c.count == 0
            || c.count > REDPACKET_SLOTS_MAX
            || total < u128::from(c.count)
            || total > u128::from(u64::MAX >> 1)
        {
            return Err(ResultCode::InvalidRedPacket.into());
        }
        if let Some(g) = c.group {
            let group = self.load_group(ctx, g)?.ok_or(ResultCode::GroupNotFound)?;
            if !group.members.contains(&c.sender) {
                return Err(ResultCode::NotAGroupMember.into());
            }
        }
        let seconds = match c.expires_in_seconds {
            None => REDPACKET_EXPIRES_DEFAULT_SECONDS,
            Some(s) if s == 0 || s > PENDING_TIMEOUT_SECONDS_MAX => {
                return Err(ResultCode::InvalidTimeout.into())
            }
            Some(s) => s,
        };
        // Escrow never lends: debits stay within credits.
        let escrow = self.system_account(
            ctx,
            escrow_account_id(currency),
            currency,
            "escrow",
            true,
            NormalSide::Credit,
        )?;
        let t = self.create_transfer(
            ctx,
            &CreateTransfer {
                id: c.id,
                legs: vec![LegSpec {
                    debit: c.sender,
                    credit: escrow,
                    amount: currency.to_decimal(total),
                    currency: Some(currency),
                }],
                pending_timeout_seconds: None,
                reference: String::new(),
            },
        )?;
        let seed = redpacket::packet_seed(ctx.seed, c.id);
        let slots = redpacket::slots(seed, total as u64, c.count, c.random);
        let r = RedPacket {
            id: c.id,
            sender: c.sender,
            currency,
            total,
            count: c.count,
            random: c.random,
            seed,
            escrow,
            state: RedPacketState::Open,
            claimed: 0,
            claimed_amount: 0,
            created_ns: ctx.ts,
            expires_ns: ctx.ts + seconds * 1_000_000_000,
            updated_ns: ctx.ts,
            group: c.group,
        };
        Self::kv_put(
            ctx,
            Cf::RedPackets,
            slots_key(c.id),
            codec::encode_slots(&slots),
        );
        Self::put_redpacket(ctx, &r);
        self.schedule_timer(ctx, r.expires_ns, TimerKind::RedPacket, r.id);
        Self::redpacket_event(ctx, EventKind::RedPacketCreated, &r, c.id, None, total);
        Ok(t)
    }

    pub(super) fn claim_redpacket(
        &mut self,
        ctx: &mut BatchCtx,
        c: &ClaimRedPacket,
    ) -> Result<Transfer, Failure> {
        let mut r = self
            .load_redpacket(ctx, c.packet)?
            .ok_or(ResultCode::RedPacketNotFound)?;
        match r.state {
            RedPacketState::Open => {}
            RedPacketState::Emptied => return Err(ResultCode::RedPacketEmpty.into()),
            RedPacketState::Expired => return Err(ResultCode::RedPacketExpired.into()),
        }
        if ctx.ts >= r.expires_ns {
            self.expire_redpacket(ctx, r.id)?;
            return Err(ResultCode::RedPacketExpired.into());
        }
        if self
            .kv_get(ctx, Cf::RedPackets, &claimer_key(r.id, c.wallet))?
            .is_some()
        {
            return Err(ResultCode::RedPacketAlreadyClaimed.into());
        }
        if let Some(g) = r.group {
            let group = self.load_group(ctx, g)?.ok_or_else(|| {
                LedgerError::Corrupt(format!("red packet {} of a missing group", r.id))
            })?;
            if !group.members.contains(&c.wallet) {
                return Err(ResultCode::NotAGroupMember.into());
            }
        }
        let slots = match self.kv_get(ctx, Cf::RedPackets, &slots_key(r.id))? {
            Some(b) => codec::decode_slots(&b).map_err(LedgerError::from)?,
            None => return Err(LedgerError::Corrupt(format!("red packet {} slots", r.id)).into()),
        };
        let slot = r.claimed;
        let amount = u128::from(slots[slot as usize]);
        let t = self.create_transfer(
            ctx,
            &CreateTransfer {
                id: c.id,
                legs: vec![LegSpec {
                    debit: r.escrow,
                    credit: c.wallet,
                    amount: r.currency.to_decimal(amount),
                    currency: Some(r.currency),
                }],
                pending_timeout_seconds: None,
                reference: String::new(),
            },
        )?;
        let claim = RedPacketClaim {
            slot,
            wallet: c.wallet,
            claim: c.id,
            amount,
        };
        Self::kv_put(
            ctx,
            Cf::RedPackets,
            claim_key(r.id, slot),
            codec::encode_claim(&claim),
        );
        Self::kv_put(
            ctx,
            Cf::RedPackets,
            claimer_key(r.id, c.wallet),
            slot.to_be_bytes().to_vec(),
        );
        r.claimed += 1;
        r.claimed_amount += amount;
        r.updated_ns = ctx.ts;
        if r.claimed == r.count {
            r.state = RedPacketState::Emptied;
            self.cancel_timer(ctx, r.expires_ns, TimerKind::RedPacket, r.id);
        }
        Self::put_redpacket(ctx, &r);
        Self::redpacket_event(
            ctx,
            EventKind::RedPacketClaimed,
            &r,
            c.id,
            Some(c.wallet),
            amount,
        );
        Ok(t)
    }

    /// An open packet expires: the unclaimed rest returns to the sender (an ordinary posting from
    /// escrow, recorded under the packet id with the command-less marker of a timer).
    pub(super) fn expire_redpacket(
        &mut self,
        ctx: &mut BatchCtx,
        id: Id,
    ) -> Result<(), LedgerError> {
        let mut r = self.load_redpacket(ctx, id)?.ok_or_else(|| {
            LedgerError::Corrupt(format!("red packet {id} has a timer but no record"))
        })?;
        assert_eq!(r.state, RedPacketState::Open, "only open packets expire");
        let rest = r.total - r.claimed_amount;
        let mut returned = 0;
        if rest > 0 {
            let mut m = super::moves::Movement::new(ctx, id, false, 1);
            // Escrow holds at least the rest; the sender's account may be frozen but takes
            // credits. A closed sender keeps the rest in escrow (visible in the trial balance,
            // and the event reports nothing returned).
            if self
                .add_leg_minor(&mut m, r.escrow, r.sender, Some(r.currency), rest)
                .is_ok()
            {
                self.commit_movement(ctx, m);
                returned = rest;
            }
        }
        r.state = RedPacketState::Expired;
        r.updated_ns = ctx.ts;
        self.cancel_timer(ctx, r.expires_ns, TimerKind::RedPacket, r.id);
        Self::put_redpacket(ctx, &r);
        Self::redpacket_event(ctx, EventKind::RedPacketExpired, &r, id, None, returned);
        Ok(())
    }
}
