//! Merchant payments, one record per payment ([`Order`]):
//! - dynamic QR orders: created `unpaid` with their own EMV payload, then `paid` once, or `closed`
//!   by the merchant, or `expired` by their timer;
//! - payments to a static code and bill payments: recorded as orders born `paid`, keyed by the
//!   payment id, so that refunds, reads and reconciliation treat every payment alike;
//! - refunds against any paid order: partial or full, never past the paid amount, the fee returned
//!   pro rata on cumulative totals (so a full refund returns exactly the whole fee).
//!
//! Postings of a payment: Dr payer `amount`; Cr merchant `amount − fee`; Cr fee account `fee`, where
//! `fee = amount × fee_bps / 10 000` rounded half up. A refund reverses them in proportion.

use super::moves::Movement;
use super::*;
use crate::emv;
use crate::money;

/// Index kinds in the `FlowIndex` family.
const INDEX_OPEN_ORDER: u8 = 1;
const INDEX_PAID_BILL: u8 = 2;
pub(super) const INDEX_PAYCODE_NONCE: u8 = 3;
pub(super) const INDEX_HOLD_FLOW: u8 = 4;

/// Key in the `FlowIndex` family: index kind, owner (merchant, biller, wallet), then the key bytes.
pub(super) fn index_key(kind: u8, owner: Id, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(17 + key.len());
    k.push(kind);
    k.extend_from_slice(&owner.to_bytes());
    k.extend_from_slice(key);
    k
}

/// A reference: 1 ..= `chars_max` characters and `bytes_max` bytes, no control characters.
fn reference_ok(s: &str, chars_max: usize, bytes_max: usize) -> bool {
    !s.is_empty()
        && s.len() <= bytes_max
        && s.chars().count() <= chars_max
        && !s.chars().any(char::is_control)
}

/// The payload of a dynamic order (what the merchant shows and the payer scans).
fn order_payload(m: &MerchantProfile, o: &Order) -> Result<String, emv::EmvError> {
    let amount = o.currency.to_decimal(o.amount).to_string();
    emv::merchant_payload(
        m,
        o.currency,
        Some(emv::OrderQr {
            id: o.id,
            amount: &amount,
            reference: &o.reference,
        }),
    )
}

impl<S: Store> Ledger<S> {
    // ---- records ------------------------------------------------------------------------------------

    pub(super) fn load_order(&self, ctx: &BatchCtx, id: Id) -> Result<Option<Order>, LedgerError> {
        match self.kv_get(ctx, Cf::Orders, &id.to_bytes())? {
            Some(b) => Ok(Some(codec::decode_order(&b)?)),
            None => Ok(None),
        }
    }

    pub(super) fn put_order(ctx: &mut BatchCtx, o: &Order) {
        Self::kv_put(
            ctx,
            Cf::Orders,
            o.id.to_bytes().to_vec(),
            codec::encode_order(o),
        );
    }

    /// The order (or merchant payment) `id`.
    pub fn order(&self, id: Id) -> Result<Option<Order>, LedgerError> {
        match self.store.get(Cf::Orders, &id.to_bytes())? {
            Some(b) => Ok(Some(codec::decode_order(&b)?)),
            None => Ok(None),
        }
    }

    /// The EMV payload of a dynamic order (`None` for other kinds).
    pub fn order_payload(&self, o: &Order) -> Option<String> {
        if o.kind != OrderKind::Dynamic {
            return None;
        }
        order_payload(self.merchants.get(&o.merchant)?, o).ok()
    }

    /// Every order, in id order (verification and reports; a full scan).
    pub(super) fn for_each_order(
        &self,
        f: &mut dyn FnMut(Order) -> Result<(), LedgerError>,
    ) -> Result<(), LedgerError> {
        let mut orders = Vec::new();
        self.store.for_each(Cf::Orders, &mut |_, v| {
            orders.push(codec::decode_order(v).map_err(|e| StoreError::Corrupt {
                cf: Cf::Orders,
                reason: e.to_string(),
            })?);
            Ok(())
        })?;
        orders.sort_by_key(|o| o.id);
        for o in orders {
            f(o)?;
        }
        Ok(())
    }

    /// An order's transition event: the merchant first, then the payer and the fee account.
    pub(super) fn order_event(
        ctx: &mut BatchCtx,
        kind: EventKind,
        o: &Order,
        command: Id,
        amount: u128,
    ) {
        let mut accounts = vec![o.merchant];
        accounts.extend(o.payer);
        accounts.extend(o.fee_account);
        Self::emit(
            ctx,
            kind,
            o.id,
            command,
            o.state.name(),
            &accounts,
            amount,
            o.currency,
        );
    }

    // ---- dynamic orders -----------------------------------------------------------------------------

    pub(super) fn create_order(
        &mut self,
        ctx: &mut BatchCtx,
        c: &CreateOrder,
    ) -> Result<(), Failure> {
        let profile = self
            .merchants
            .get(&c.merchant)
            .ok_or(ResultCode::MerchantNotFound)?;
        let currency = self.accounts[&c.merchant].info.currency;
        if c.currency.is_some_and(|d| d != currency) {
            return Err(ResultCode::CurrencyMismatch.into());
        }
        if currency.is_in_app() {
            // EMV QR carries an ISO 4217 numeric code: in-app money is paid by code or bill.
            return Err(ResultCode::InvalidCurrency.into());
        }
        let amount = currency.to_minor(c.amount)?;
        if !reference_ok(&c.reference, ORDER_REFERENCE_CHARS_MAX, usize::MAX) {
            return Err(ResultCode::InvalidReference.into());
        }
        let seconds = match c.expires_in_seconds {
            None => ORDER_EXPIRES_DEFAULT_SECONDS,
            Some(s) if s == 0 || s > ORDER_EXPIRES_MAX_SECONDS => {
                return Err(ResultCode::InvalidTimeout.into())
            }
            Some(s) => s,
        };
        let ref_key = index_key(INDEX_OPEN_ORDER, c.merchant, c.reference.as_bytes());
        if self.kv_get(ctx, Cf::FlowIndex, &ref_key)?.is_some() {
            return Err(ResultCode::OrderReferenceInUse.into());
        }
        let expires_ns = ctx.ts + seconds * 1_000_000_000;
        let mut order = Order::new(
            c.id,
            OrderKind::Dynamic,
            c.merchant,
            currency,
            amount,
            &c.reference,
            ctx.ts,
        );
        order.expires_ns = Some(expires_ns);
        // The amount must fit tag 54 (13 characters); the rest of the payload always fits.
        if order_payload(profile, &order).is_err() {
            return Err(ResultCode::Overflow.into());
        }
        Self::kv_put(ctx, Cf::FlowIndex, ref_key, c.id.to_bytes().to_vec());
        Self::put_order(ctx, &order);
        self.schedule_timer(ctx, expires_ns, TimerKind::Order, c.id);
        Self::order_event(ctx, EventKind::OrderCreated, &order, c.id, order.amount);
        Ok(())
    }

    /// Checks that a dynamic order can still be paid or closed. An overdue order not yet swept by
    /// its timer expires here, on the spot.
    fn unpaid_order(&mut self, ctx: &mut BatchCtx, o: &mut Order) -> Result<(), Failure> {
        match o.state {
            OrderState::Unpaid => {}
            OrderState::Paid | OrderState::PartiallyRefunded | OrderState::Refunded => {
                return Err(ResultCode::OrderAlreadyPaid.into())
            }
            OrderState::Closed => return Err(ResultCode::OrderClosed.into()),
            OrderState::Expired => return Err(ResultCode::OrderExpired.into()),
        }
        if o.expires_ns.is_some_and(|at| ctx.ts >= at) {
            self.end_unpaid(ctx, o, OrderState::Expired);
            Self::order_event(ctx, EventKind::OrderExpired, o, o.id, o.amount);
            return Err(ResultCode::OrderExpired.into());
        }
        Ok(())
    }

    /// Moves an unpaid order on (paid, closed or expired): frees its order number and disarms its
    /// timer, then writes it.
    fn end_unpaid(&mut self, ctx: &mut BatchCtx, o: &mut Order, state: OrderState) {
        assert_eq!(o.state, OrderState::Unpaid, "only unpaid orders move on");
        o.state = state;
        o.updated_ns = ctx.ts;
        Self::kv_delete(
            ctx,
            Cf::FlowIndex,
            index_key(INDEX_OPEN_ORDER, o.merchant, o.reference.as_bytes()),
        );
        if let Some(at) = o.expires_ns {
            self.cancel_timer(ctx, at, TimerKind::Order, o.id);
        }
        Self::put_order(ctx, o);
    }

    pub(super) fn close_order(
        &mut self,
        ctx: &mut BatchCtx,
        c: &CloseOrder,
    ) -> Result<(), Failure> {
        let mut o = self
            .load_order(ctx, c.order)?
            .ok_or(ResultCode::OrderNotFound)?;
        self.unpaid_order(ctx, &mut o)?;
        self.end_unpaid(ctx, &mut o, OrderState::Closed);
        Self::order_event(ctx, EventKind::OrderClosed, &o, c.id, o.amount);
        Ok(())
    }

    /// The order timer fired: an order still unpaid expires.
    pub(super) fn expire_order(&mut self, ctx: &mut BatchCtx, id: Id) -> Result<(), LedgerError> {
        let mut o = self
            .load_order(ctx, id)?
            .ok_or_else(|| LedgerError::Corrupt(format!("order {id} has a timer but no record")))?;
        self.end_unpaid(ctx, &mut o, OrderState::Expired);
        Self::order_event(ctx, EventKind::OrderExpired, &o, id, o.amount);
        Ok(())
    }

    // ---- payments -----------------------------------------------------------------------------------

    /// Charges `amount` from `payer` to a merchant: the merchant gets `amount − fee`, its fee account
    /// `fee`; all or nothing. Returns the payment transfer and the fee.
    pub(super) fn charge(
        &mut self,
        ctx: &mut BatchCtx,
        payment: Id,
        payer: Id,
        merchant: &MerchantProfile,
        amount: u128,
        reference: &str,
    ) -> Result<(Transfer, u128), Failure> {
        let fee = money::fee_half_up(amount, merchant.fee_bps);
        let mut m = Movement::new(ctx, payment, false, 2);
        if amount > fee {
            self.add_leg_minor(&mut m, payer, merchant.account, None, amount - fee)?;
        }
        if fee > 0 {
            let fee_account = merchant
                .fee_account
                .expect("a merchant with a fee has a fee account (checked at creation)");
            self.add_leg_minor(&mut m, payer, fee_account, None, fee)?;
        }
        let legs = self.commit_movement(ctx, m);
        let t = Transfer {
            id: payment,
            legs,
            state: TransferState::Posted,
            pending_id: None,
            expires_ns: None,
            posted_amount: None,
            reference: reference.to_string(),
            timestamp_ns: ctx.ts,
        };
        Ok((t, fee))
    }

    /// Records a successful charge on its order (the caller sets the state).
    fn mark_paid(
        ctx: &BatchCtx,
        o: &mut Order,
        payer: Id,
        payment: Id,
        merchant: &MerchantProfile,
        fee: u128,
    ) {
        o.payer = Some(payer);
        o.payment = Some(payment);
        o.fee_account = if fee > 0 { merchant.fee_account } else { None };
        o.paid_amount = o.amount;
        o.fee = fee;
        o.updated_ns = ctx.ts;
    }

    /// An order born paid (static code, payment code, bill), keyed by its payment id.
    pub(super) fn paid_order(
        ctx: &BatchCtx,
        kind: OrderKind,
        payment: Id,
        payer: Id,
        merchant: &MerchantProfile,
        currency: Currency,
        amount: u128,
        fee: u128,
        reference: &str,
    ) -> Order {
        let mut o = Order::new(
            payment,
            kind,
            merchant.account,
            currency,
            amount,
            reference,
            ctx.ts,
        );
        Self::mark_paid(ctx, &mut o, payer, payment, merchant, fee);
        o.state = OrderState::Paid;
        o
    }

    pub(super) fn pay_qr(&mut self, ctx: &mut BatchCtx, p: &PayQr) -> Result<Transfer, Failure> {
        let scanned = emv::scan(&p.qr).map_err(|_| ResultCode::InvalidQr)?;
        let profile = self
            .merchants
            .get(&scanned.merchant)
            .ok_or(ResultCode::MerchantNotFound)?
            .clone();
        let currency = self.accounts[&profile.account].info.currency;
        if currency.is_in_app() || scanned.currency_numeric != currency.numeric() {
            return Err(ResultCode::InvalidQr.into());
        }
        if p.currency.is_some_and(|d| d != currency) {
            return Err(ResultCode::CurrencyMismatch.into());
        }
        let Some((order_id, amount_text, reference)) = scanned.order else {
            // A static code: the payer names the amount.
            let amount = currency.to_minor(p.amount.ok_or(ResultCode::AmountRequired)?)?;
            let (t, fee) = self.charge(ctx, p.id, p.payer, &profile, amount, "")?;
            let o = Self::paid_order(
                ctx,
                OrderKind::Static,
                p.id,
                p.payer,
                &profile,
                currency,
                amount,
                fee,
                "",
            );
            Self::put_order(ctx, &o);
            Self::order_event(ctx, EventKind::OrderPaid, &o, p.id, o.amount);
            return Ok(t);
        };
        let mut o = self
            .load_order(ctx, order_id)?
            .ok_or(ResultCode::OrderNotFound)?;
        // The payload must be the order's own: nothing in it altered.
        if o.kind != OrderKind::Dynamic
            || o.merchant != profile.account
            || amount_text != currency.to_decimal(o.amount).to_string()
            || reference != o.reference
        {
            return Err(ResultCode::InvalidQr.into());
        }
        self.unpaid_order(ctx, &mut o)?;
        if let Some(a) = p.amount {
            if currency.to_minor(a)? != o.amount {
                return Err(ResultCode::AmountMismatch.into());
            }
        }
        let (t, fee) = self.charge(ctx, p.id, p.payer, &profile, o.amount, &o.reference)?;
        Self::mark_paid(ctx, &mut o, p.payer, p.id, &profile, fee);
        self.end_unpaid(ctx, &mut o, OrderState::Paid);
        Self::order_event(ctx, EventKind::OrderPaid, &o, p.id, o.amount);
        Ok(t)
    }

    pub(super) fn pay_bill(
        &mut self,
        ctx: &mut BatchCtx,
        b: &PayBill,
    ) -> Result<Transfer, Failure> {
        if !reference_ok(&b.bill_ref, usize::MAX, BILL_REFERENCE_BYTES_MAX) {
            return Err(ResultCode::InvalidReference.into());
        }
        let profile = self
            .merchants
            .get(&b.biller)
            .ok_or(ResultCode::MerchantNotFound)?
            .clone();
        let currency = self.accounts[&b.biller].info.currency;
        if b.currency.is_some_and(|d| d != currency) {
            return Err(ResultCode::CurrencyMismatch.into());
        }
        let key = index_key(INDEX_PAID_BILL, b.biller, b.bill_ref.as_bytes());
        if self.kv_get(ctx, Cf::FlowIndex, &key)?.is_some() {
            return Err(ResultCode::BillAlreadyPaid.into());
        }
        let amount = currency.to_minor(b.amount)?;
        let (t, fee) = self.charge(ctx, b.id, b.payer, &profile, amount, &b.bill_ref)?;
        let o = Self::paid_order(
            ctx,
            OrderKind::Bill,
            b.id,
            b.payer,
            &profile,
            currency,
            amount,
            fee,
            &b.bill_ref,
        );
        Self::put_order(ctx, &o);
        Self::kv_put(ctx, Cf::FlowIndex, key, b.id.to_bytes().to_vec());
        Self::order_event(ctx, EventKind::OrderPaid, &o, b.id, o.amount);
        Ok(t)
    }

    // ---- refunds ------------------------------------------------------------------------------------

    pub(super) fn refund(&mut self, ctx: &mut BatchCtx, r: &Refund) -> Result<Transfer, Failure> {
        if r.reason.len() > REFUND_REASON_BYTES_MAX {
            return Err(ResultCode::TextTooLong.into());
        }
        let mut o = self
            .load_order(ctx, r.order)?
            .ok_or(ResultCode::OrderNotFound)?;
        if !o.state.is_paid() {
            return Err(ResultCode::OrderNotPaid.into());
        }
        if r.currency.is_some_and(|d| d != o.currency) {
            return Err(ResultCode::CurrencyMismatch.into());
        }
        let amount = o.currency.to_minor(r.amount)?;
        let refunded = money::add(o.refunded_amount, amount)?;
        if refunded > o.paid_amount {
            return Err(ResultCode::RefundExceedsPaid.into());
        }
        // Cumulative: the fee returned so far is always round(fee × refunded / paid), so the
        // parts of any sequence of refunds add up to the whole fee at a full refund.
        let fee_target = money::mul_div_half_up(o.fee, refunded, o.paid_amount);
        let fee_back = fee_target - o.fee_refunded;
        assert!(
            fee_back <= amount,
            "a refund's fee share is within the refund"
        );
        let payer = o.payer.expect("a paid order has a payer");
        let mut m = Movement::new(ctx, r.id, false, 2);
        if amount > fee_back {
            self.add_leg_minor(&mut m, o.merchant, payer, None, amount - fee_back)?;
        }
        if fee_back > 0 {
            let fee_account = o
                .fee_account
                .expect("an order with a fee has a fee account");
            self.add_leg_minor(&mut m, fee_account, payer, None, fee_back)?;
        }
        let legs = self.commit_movement(ctx, m);
        o.refunded_amount = refunded;
        o.fee_refunded = fee_target;
        o.state = if refunded == o.paid_amount {
            OrderState::Refunded
        } else {
            OrderState::PartiallyRefunded
        };
        o.updated_ns = ctx.ts;
        Self::put_order(ctx, &o);
        Self::order_event(ctx, EventKind::OrderRefunded, &o, r.id, amount);
        Ok(Transfer {
            id: r.id,
            legs,
            state: TransferState::Posted,
            pending_id: None,
            expires_ns: None,
            posted_amount: None,
            reference: r.reason.clone(),
            timestamp_ns: ctx.ts,
        })
    }
}
