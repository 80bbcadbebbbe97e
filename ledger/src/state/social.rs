//! Money between people:
//! - chat transfers (`send`): at once, or held for the payee until received, returned by the
//!   sender, or returned when unaccepted in time — a [`HoldFlow::ChatTransfer`] hold;
//! - payment requests (collect): `open → paid | declined | cancelled | expired`, paid by an
//!   ordinary transfer payer → payee.

use super::holds::HoldFlow;
use super::*;

fn note_ok(note: &str) -> Result<(), ResultCode> {
    if note.len() > NOTE_BYTES_MAX {
        return Err(ResultCode::TextTooLong);
    }
    Ok(())
}

impl<S: Store> Ledger<S> {
    // ---- chat transfers -------------------------------------------------------------------------

    pub(super) fn send(&mut self, ctx: &mut BatchCtx, s: &Send) -> Result<Transfer, Failure> {
        note_ok(&s.note)?;
        let legs =
            self.legs_with_fee(s.from, s.to, s.amount, s.currency, s.fee_bps, s.fee_account)?;
        match s.accept_within_seconds {
            None => {
                let t = self.create_transfer(
                    ctx,
                    &CreateTransfer {
                        id: s.id,
                        legs,
                        pending_timeout_seconds: None,
                        reference: s.note.clone(),
                    },
                )?;
                self.transfer_event(ctx, EventKind::TransferSent, &t, s.id, "received");
                Ok(t)
            }
            Some(seconds) => {
                let t =
                    self.start_hold(ctx, HoldFlow::ChatTransfer, s.id, legs, seconds, &s.note)?;
                self.transfer_event(ctx, EventKind::TransferSent, &t, s.id, "pending");
                Ok(t)
            }
        }
    }

    pub(super) fn receive_transfer(
        &mut self,
        ctx: &mut BatchCtx,
        r: &ReceiveTransfer,
    ) -> Result<Transfer, Failure> {
        let t = self.settle_hold(
            ctx,
            HoldFlow::ChatTransfer,
            r.id,
            r.transfer,
            true,
            ResultCode::ChatTransferNotFound,
        )?;
        self.transfer_event(ctx, EventKind::TransferReceived, &t, r.id, "received");
        Ok(t)
    }

    pub(super) fn return_transfer(
        &mut self,
        ctx: &mut BatchCtx,
        r: &ReturnTransfer,
    ) -> Result<Transfer, Failure> {
        let t = self.settle_hold(
            ctx,
            HoldFlow::ChatTransfer,
            r.id,
            r.transfer,
            false,
            ResultCode::ChatTransferNotFound,
        )?;
        self.transfer_event(ctx, EventKind::TransferReturned, &t, r.id, "returned");
        Ok(t)
    }

    // ---- payment requests -----------------------------------------------------------------------

    fn load_request(&self, ctx: &BatchCtx, id: Id) -> Result<Option<PaymentRequest>, LedgerError> {
        match self.kv_get(ctx, Cf::Requests, &id.to_bytes())? {
            Some(b) => Ok(Some(codec::decode_request(&b)?)),
            None => Ok(None),
        }
    }

    fn put_request(ctx: &mut BatchCtx, r: &PaymentRequest) {
        Self::kv_put(
            ctx,
            Cf::Requests,
            r.id.to_bytes().to_vec(),
            codec::encode_request(r),
        );
    }

    /// A payment request (reads).
    pub fn request(&self, id: Id) -> Result<Option<PaymentRequest>, LedgerError> {
        match self.store.get(Cf::Requests, &id.to_bytes())? {
            Some(b) => Ok(Some(codec::decode_request(&b)?)),
            None => Ok(None),
        }
    }

    fn request_event(ctx: &mut BatchCtx, kind: EventKind, r: &PaymentRequest, command: Id) {
        Self::emit(
            ctx,
            kind,
            r.id,
            command,
            r.state.name(),
            &[r.payee, r.payer],
            r.amount,
            r.currency,
        );
    }

    pub(super) fn create_request(
        &mut self,
        ctx: &mut BatchCtx,
        c: &CreateRequest,
    ) -> Result<(), Failure> {
        note_ok(&c.note)?;
        if c.payee == c.payer {
            return Err(ResultCode::SameAccount.into());
        }
        let (Some(payee), Some(payer)) = (self.accounts.get(&c.payee), self.accounts.get(&c.payer))
        else {
            return Err(ResultCode::AccountNotFound.into());
        };
        let currency = payee.info.currency;
        if payer.info.currency != currency || c.currency.is_some_and(|d| d != currency) {
            return Err(ResultCode::CurrencyMismatch.into());
        }
        let amount = currency.to_minor(c.amount)?;
        let seconds = match c.expires_in_seconds {
            None => REQUEST_EXPIRES_DEFAULT_SECONDS,
            Some(s) if s == 0 || s > PENDING_TIMEOUT_SECONDS_MAX => {
                return Err(ResultCode::InvalidTimeout.into())
            }
            Some(s) => s,
        };
        let r = PaymentRequest {
            id: c.id,
            payee: c.payee,
            payer: c.payer,
            currency,
            amount,
            note: c.note.clone(),
            state: RequestState::Open,
            created_ns: ctx.ts,
            expires_ns: ctx.ts + seconds * 1_000_000_000,
            updated_ns: ctx.ts,
            payment: None,
        };
        Self::put_request(ctx, &r);
        self.schedule_timer(ctx, r.expires_ns, TimerKind::Request, r.id);
        Self::request_event(ctx, EventKind::RequestCreated, &r, c.id);
        Ok(())
    }

    /// The open request `id`, or why not. An overdue request not yet swept expires on the spot.
    fn open_request(&mut self, ctx: &mut BatchCtx, id: Id) -> Result<PaymentRequest, Failure> {
        let mut r = self
            .load_request(ctx, id)?
            .ok_or(ResultCode::RequestNotFound)?;
        match r.state {
            RequestState::Open => {}
            RequestState::Paid => return Err(ResultCode::RequestPaid.into()),
            RequestState::Declined => return Err(ResultCode::RequestDeclined.into()),
            RequestState::Cancelled => return Err(ResultCode::RequestCancelled.into()),
            RequestState::Expired => return Err(ResultCode::RequestExpired.into()),
        }
        if ctx.ts >= r.expires_ns {
            self.close_request(ctx, &mut r, RequestState::Expired, id);
            return Err(ResultCode::RequestExpired.into());
        }
        Ok(r)
    }

    /// Moves an open request to `state`: disarms its timer, writes it, reports it.
    fn close_request(
        &mut self,
        ctx: &mut BatchCtx,
        r: &mut PaymentRequest,
        state: RequestState,
        command: Id,
    ) {
        assert_eq!(r.state, RequestState::Open, "only open requests close");
        r.state = state;
        r.updated_ns = ctx.ts;
        self.cancel_timer(ctx, r.expires_ns, TimerKind::Request, r.id);
        Self::put_request(ctx, r);
        let kind = match state {
            RequestState::Paid => EventKind::RequestPaid,
            RequestState::Declined => EventKind::RequestDeclined,
            RequestState::Cancelled => EventKind::RequestCancelled,
            RequestState::Expired | RequestState::Open => EventKind::RequestExpired,
        };
        Self::request_event(ctx, kind, r, command);
    }

    pub(super) fn pay_request(
        &mut self,
        ctx: &mut BatchCtx,
        a: &RequestAction,
    ) -> Result<Transfer, Failure> {
        let mut r = self.open_request(ctx, a.request)?;
        let t = self.create_transfer(
            ctx,
            &CreateTransfer {
                id: a.id,
                legs: vec![LegSpec {
                    debit: r.payer,
                    credit: r.payee,
                    amount: r.currency.to_decimal(r.amount),
                    currency: Some(r.currency),
                }],
                pending_timeout_seconds: None,
                reference: String::new(),
            },
        )?;
        r.payment = Some(a.id);
        self.close_request(ctx, &mut r, RequestState::Paid, a.id);
        Ok(t)
    }

    pub(super) fn end_request(
        &mut self,
        ctx: &mut BatchCtx,
        a: &RequestAction,
        state: RequestState,
    ) -> Result<(), Failure> {
        let mut r = self.open_request(ctx, a.request)?;
        self.close_request(ctx, &mut r, state, a.id);
        Ok(())
    }

    /// The request timer fired: an open request expires.
    pub(super) fn expire_request(&mut self, ctx: &mut BatchCtx, id: Id) -> Result<(), LedgerError> {
        let mut r = self.load_request(ctx, id)?.ok_or_else(|| {
            LedgerError::Corrupt(format!("request {id} has a timer but no record"))
        })?;
        self.close_request(ctx, &mut r, RequestState::Expired, id);
        Ok(())
    }
}
