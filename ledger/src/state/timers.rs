//! The timer index: everything that expires by log time — two-phase holds and QR orders today;
//! payment codes, payment requests and red packets as their flows arrive — is one entry
//! `(due_ns, kind, id)` here and in the `Timers` column family. At the start of each batch the
//! entries due by the batch's log time fire in that order, at most [`EXPIRE_PER_BATCH_MAX`] per
//! batch, so one batch never does unbounded work (the rest fire in the following batches, and a
//! command that touches an overdue object settles it on the spot).

use super::*;

/// Most timers fired at the start of one batch.
pub const EXPIRE_PER_BATCH_MAX: usize = 4_096;

/// Key in the `Timers` column family: due time (big-endian, so keys sort by time), kind, id.
fn timer_key(due_ns: u64, kind: TimerKind, id: Id) -> Vec<u8> {
    let mut k = Vec::with_capacity(25);
    k.extend_from_slice(&due_ns.to_be_bytes());
    k.push(kind as u8);
    k.extend_from_slice(&id.to_bytes());
    k
}

fn parse_timer_key(k: &[u8]) -> Option<(u64, TimerKind, Id)> {
    if k.len() != 25 {
        return None;
    }
    let due = u64::from_be_bytes(k[..8].try_into().ok()?);
    let kind = TimerKind::from_repr(k[8])?;
    let id = Id::from_bytes(k[9..].try_into().ok()?);
    Some((due, kind, id))
}

impl<S: Store> Ledger<S> {
    pub(super) fn load_timers(&mut self) -> Result<(), LedgerError> {
        let timers = &mut self.timers;
        self.store.for_each(Cf::Timers, &mut |k, v| {
            let t =
                parse_timer_key(k)
                    .filter(|_| v.is_empty())
                    .ok_or_else(|| StoreError::Corrupt {
                        cf: Cf::Timers,
                        reason: "malformed timer".into(),
                    })?;
            timers.insert(t);
            Ok(())
        })?;
        Ok(())
    }

    /// Arms a timer: `kind`'s expiry of `id` fires in the first batch at or after `due_ns`.
    pub(super) fn schedule_timer(
        &mut self,
        ctx: &mut BatchCtx,
        due_ns: u64,
        kind: TimerKind,
        id: Id,
    ) {
        self.timers.insert((due_ns, kind, id));
        ctx.wb
            .put(Cf::Timers, timer_key(due_ns, kind, id), Vec::new());
    }

    /// Disarms a timer (the object was settled before it fell due, or it fired).
    pub(super) fn cancel_timer(
        &mut self,
        ctx: &mut BatchCtx,
        due_ns: u64,
        kind: TimerKind,
        id: Id,
    ) {
        self.timers.remove(&(due_ns, kind, id));
        ctx.wb.delete(Cf::Timers, timer_key(due_ns, kind, id));
    }

    /// Open timers, soonest first (for reports and tests).
    pub fn timers(&self) -> impl Iterator<Item = &(u64, TimerKind, Id)> {
        self.timers.iter()
    }

    /// Fires the timers due at or before the batch time (bounded per batch).
    pub(super) fn expire_due(&mut self, ctx: &mut BatchCtx) -> Result<(), LedgerError> {
        let due: Vec<(u64, TimerKind, Id)> = self
            .timers
            .iter()
            .take_while(|(at, _, _)| *at <= ctx.ts)
            .take(EXPIRE_PER_BATCH_MAX)
            .copied()
            .collect();
        for (due_ns, kind, id) in due {
            match kind {
                // `release` cancels the timer along with the hold.
                TimerKind::PendingTransfer => {
                    ctx.flow = match self.hold_flow(ctx, id)? {
                        Some(super::holds::HoldFlow::Withdrawal) => FlowKind::Withdrawal,
                        Some(super::holds::HoldFlow::ChatTransfer) => FlowKind::ChatTransfer,
                        None => FlowKind::Transfer,
                    };
                    self.release(ctx, id, None)?;
                }
                // `expire_order` cancels the timer along with the order.
                TimerKind::Order => self.expire_order(ctx, id)?,
                TimerKind::PaycodeNonce => self.forget_paycode_nonce(ctx, due_ns, id)?,
                TimerKind::Request => self.expire_request(ctx, id)?,
                TimerKind::RedPacket => {
                    ctx.flow = FlowKind::RedPacket;
                    self.expire_redpacket(ctx, id)?
                }
                // `expire_split` disarms the timer along with the split.
                TimerKind::Split => self.expire_split(ctx, id)?,
            }
        }
        Ok(())
    }
}
