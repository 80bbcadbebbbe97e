//! Customer-presented payment codes: a wallet binds a device key (and a per-code limit); the app
//! signs one-time codes offline ([`crate::paycode`]); a merchant charges one. At apply time, on
//! every replica: the wallet has a bound, unrevoked key; the signature verifies; the code has not
//! expired by log time; its nonce was never consumed; the amount is within the limit. The payment
//! is then an ordinary merchant charge (an order of kind `code`, born paid, refundable), and the
//! nonce is remembered — with the merchant that used it — until the code's expiry, when its timer
//! forgets it, so the memory of consumed codes stays bounded.

use super::orders::{index_key, INDEX_PAYCODE_NONCE};
use super::*;
use crate::paycode::VALIDITY_SECONDS_MAX;

fn nonce_hex(nonce: &[u8; 16]) -> String {
    nonce.iter().map(|b| format!("{b:02x}")).collect()
}

impl<S: Store> Ledger<S> {
    fn paycode_binding(
        &self,
        ctx: &BatchCtx,
        wallet: Id,
    ) -> Result<Option<PaycodeBinding>, LedgerError> {
        match self.kv_get(ctx, Cf::Paycodes, &wallet.to_bytes())? {
            Some(b) => Ok(Some(codec::decode_paycode_binding(&b)?)),
            None => Ok(None),
        }
    }

    fn put_paycode_binding(ctx: &mut BatchCtx, b: &PaycodeBinding) {
        Self::kv_put(
            ctx,
            Cf::Paycodes,
            b.wallet.to_bytes().to_vec(),
            codec::encode_paycode_binding(b),
        );
    }

    /// A wallet's payment-code binding (reads).
    pub fn paycode(&self, wallet: Id) -> Result<Option<PaycodeBinding>, LedgerError> {
        match self.store.get(Cf::Paycodes, &wallet.to_bytes())? {
            Some(b) => Ok(Some(codec::decode_paycode_binding(&b)?)),
            None => Ok(None),
        }
    }

    pub(super) fn bind_paycode(
        &mut self,
        ctx: &mut BatchCtx,
        b: &BindPaycode,
    ) -> Result<(), Failure> {
        let a = self
            .accounts
            .get(&b.wallet)
            .ok_or(ResultCode::AccountNotFound)?;
        if a.info.kind != AccountKind::Wallet
            || ed25519_dalek::VerifyingKey::from_bytes(&b.public_key).is_err()
        {
            return Err(ResultCode::InvalidPaycodeKey.into());
        }
        let currency = a.info.currency;
        let paycode_max = match b.paycode_max {
            Some(m) => currency.to_minor(m)?,
            None => currency.to_minor(rust_decimal::Decimal::from(PAYCODE_MAX_DEFAULT))?,
        };
        Self::put_paycode_binding(
            ctx,
            &PaycodeBinding {
                wallet: b.wallet,
                public_key: b.public_key,
                paycode_max,
                revoked: false,
                bound_ns: ctx.ts,
            },
        );
        Ok(())
    }

    pub(super) fn revoke_paycode(
        &mut self,
        ctx: &mut BatchCtx,
        r: &RevokePaycode,
    ) -> Result<(), Failure> {
        let mut b = self
            .paycode_binding(ctx, r.wallet)?
            .ok_or(ResultCode::PaycodeNotBound)?;
        if b.revoked {
            return Err(ResultCode::PaycodeRevoked.into());
        }
        b.revoked = true;
        Self::put_paycode_binding(ctx, &b);
        Ok(())
    }

    pub(super) fn pay_code(
        &mut self,
        ctx: &mut BatchCtx,
        p: &PayCode,
    ) -> Result<Transfer, Failure> {
        let t = &p.token;
        let profile = self
            .merchants
            .get(&p.merchant)
            .ok_or(ResultCode::MerchantNotFound)?
            .clone();
        let currency = self.accounts[&p.merchant].info.currency;
        if p.currency.is_some_and(|d| d != currency) {
            return Err(ResultCode::CurrencyMismatch.into());
        }
        let binding = self
            .paycode_binding(ctx, t.wallet)?
            .ok_or(ResultCode::PaycodeNotBound)?;
        if binding.revoked {
            return Err(ResultCode::PaycodeRevoked.into());
        }
        if !t.verify(&binding.public_key) {
            return Err(ResultCode::PaycodeBadSignature.into());
        }
        if ctx.ts >= t.expires_ns || t.expires_ns - ctx.ts > VALIDITY_SECONDS_MAX * 1_000_000_000 {
            return Err(ResultCode::PaycodeExpired.into());
        }
        let key = index_key(INDEX_PAYCODE_NONCE, t.wallet, &t.nonce);
        if let Some(used) = self.kv_get(ctx, Cf::FlowIndex, &key)? {
            let by: [u8; 16] = used[..16]
                .try_into()
                .map_err(|_| LedgerError::Corrupt("paycode nonce entry".into()))?;
            return Err(if Id::from_bytes(by) == p.merchant {
                ResultCode::PaycodeAlreadyUsed
            } else {
                ResultCode::PaycodeUsedElsewhere
            }
            .into());
        }
        let amount = currency.to_minor(p.amount)?;
        if amount > binding.paycode_max {
            return Err(ResultCode::PaycodeLimit.into());
        }
        let reference = nonce_hex(&t.nonce);
        let (transfer, fee) = self.charge(ctx, p.id, t.wallet, &profile, amount, &reference)?;
        let o = Self::paid_order(
            ctx,
            OrderKind::Code,
            p.id,
            t.wallet,
            &profile,
            currency,
            amount,
            fee,
            &reference,
        );
        Self::put_order(ctx, &o);
        Self::emit(
            ctx,
            EventKind::PaycodeConsumed,
            p.id,
            p.id,
            "consumed",
            &[t.wallet, p.merchant],
            amount,
            currency,
        );
        Self::order_event(ctx, EventKind::OrderPaid, &o, p.id, amount);
        let mut used = Vec::with_capacity(32);
        used.extend_from_slice(&p.merchant.to_bytes());
        used.extend_from_slice(&p.id.to_bytes());
        Self::kv_put(ctx, Cf::FlowIndex, key, used);
        self.schedule_timer(ctx, t.expires_ns, TimerKind::PaycodeNonce, p.id);
        Ok(transfer)
    }

    /// A consumed code expired: forget its nonce (an expired code is refused before the nonce is
    /// looked up).
    pub(super) fn forget_paycode_nonce(
        &mut self,
        ctx: &mut BatchCtx,
        due_ns: u64,
        payment: Id,
    ) -> Result<(), LedgerError> {
        let o = self.load_order(ctx, payment)?.ok_or_else(|| {
            LedgerError::Corrupt(format!("paycode timer for {payment} without its payment"))
        })?;
        let nonce: Vec<u8> = (0..16)
            .map(|i| u8::from_str_radix(o.reference.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
            .collect::<Result<_, _>>()
            .map_err(|_| LedgerError::Corrupt(format!("payment {payment} nonce")))?;
        let wallet = o.payer.expect("a paid order has a payer");
        Self::kv_delete(
            ctx,
            Cf::FlowIndex,
            index_key(INDEX_PAYCODE_NONCE, wallet, &nonce),
        );
        self.cancel_timer(ctx, due_ns, TimerKind::PaycodeNonce, payment);
        Ok(())
    }
}
