//! Ledger values to the protobuf contract (responses and watch events).

use super::*;

pub fn amount_str(currency: Currency, minor: u128) -> String {
    currency
        .to_decimal(minor.min(ledger::MAX_MINOR))
        .to_string()
}

pub fn balances_to_pb(currency: Currency, b: &Balances) -> pb::Balances {
    pb::Balances {
        debits_posted: amount_str(currency, b.debits_posted),
        credits_posted: amount_str(currency, b.credits_posted),
        debits_pending: amount_str(currency, b.debits_pending),
        credits_pending: amount_str(currency, b.credits_pending),
    }
}

pub fn net_balance(currency: Currency, b: &Balances) -> String {
    currency
        .to_decimal_signed(b.credits_posted as i128 - b.debits_posted as i128)
        .to_string()
}

pub fn account_to_pb(a: &ledger::Account) -> pb::Account {
    let c = a.info.currency;
    let l = &a.info.limits;
    pb::Account {
        id: a.info.id.to_string(),
        currency: c.code().to_string(),
        kind: enum_to_pb(a.info.kind),
        status: enum_to_pb(a.status()),
        debits_must_not_exceed_credits: a.info.flags & ledger::FLAG_DEBITS_MUST_NOT_EXCEED_CREDITS
            != 0,
        credits_must_not_exceed_debits: a.info.flags & ledger::FLAG_CREDITS_MUST_NOT_EXCEED_DEBITS
            != 0,
        overdraft: amount_str(c, a.info.overdraft),
        limits: Some(pb::Limits {
            per_transfer_max: l.per_transfer_max.map(|m| amount_str(c, m)),
            daily_outflow_max: l.daily_outflow_max.map(|m| amount_str(c, m)),
            daily_outflow_count_max: l.daily_outflow_count_max,
            balance_max: l.balance_max.map(|m| amount_str(c, m)),
        }),
        reference: a.info.reference.clone(),
        metadata: a
            .info
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        created_ns: a.info.created_ns,
        balances: Some(balances_to_pb(c, &a.state.balances)),
        balance: a.balance().to_string(),
        available: a.available().to_string(),
        posting_seq: a.state.posting_seq,
        tier: a.info.tier.clone(),
        normal_side: enum_to_pb(a.info.normal_side),
        normal_balance: a.normal_balance().to_string(),
    }
}

/// `currency_of` resolves the currency of a leg's debit account (accounts are never deleted).
pub fn transfer_to_pb(
    t: &ledger::Transfer,
    currency_of: &dyn Fn(Id) -> Option<Currency>,
) -> pb::Transfer {
    let first_currency = t.legs.first().and_then(|l| currency_of(l.debit));
    let fmt = |c: Option<Currency>, minor: u128| match c {
        Some(c) => amount_str(c, minor),
        None => minor.to_string(),
    };
    pb::Transfer {
        id: t.id.to_string(),
        legs: t
            .legs
            .iter()
            .map(|l| {
                let c = currency_of(l.debit);
                pb::TransferLeg {
                    debit_account_id: l.debit.to_string(),
                    credit_account_id: l.credit.to_string(),
                    amount: fmt(c, l.amount),
                    currency: c.map(|c| c.code().to_string()).unwrap_or_default(),
                }
            })
            .collect(),
        state: enum_to_pb(t.state),
        pending_id: t.pending_id.map(|i| i.to_string()),
        expires_ns: t.expires_ns,
        posted_amount: t.posted_amount.map(|m| fmt(first_currency, m)),
        reference: t.reference.clone(),
        timestamp_ns: t.timestamp_ns,
    }
}

pub fn merchant_to_pb(m: &ledger::MerchantProfile, currency: Currency) -> pb::Merchant {
    pb::Merchant {
        account_id: m.account.to_string(),
        currency: currency.code().to_string(),
        name: m.name.clone(),
        city: m.city.clone(),
        mcc: m.mcc.clone(),
        country: m.country.clone(),
        fee_bps: m.fee_bps,
        fee_account_id: m.fee_account.map(|a| a.to_string()),
        created_ns: m.created_ns,
    }
}

/// An order; `payload` is the QR order's EMV payload (see `Ledger::order_payload`).
pub fn order_to_pb(o: &ledger::Order, payload: Option<String>) -> pb::Order {
    let c = o.currency;
    pb::Order {
        id: o.id.to_string(),
        kind: enum_to_pb(o.kind),
        merchant_id: o.merchant.to_string(),
        state: enum_to_pb(o.state),
        amount: amount_str(c, o.amount),
        currency: c.code().to_string(),
        paid_amount: amount_str(c, o.paid_amount),
        refunded_amount: amount_str(c, o.refunded_amount),
        fee: amount_str(c, o.fee),
        fee_refunded: amount_str(c, o.fee_refunded),
        payer_account_id: o.payer.map(|i| i.to_string()),
        payment_id: o.payment.map(|i| i.to_string()),
        fee_account_id: o.fee_account.map(|i| i.to_string()),
        reference: o.reference.clone(),
        created_ns: o.created_ns,
        expires_ns: o.expires_ns,
        updated_ns: o.updated_ns,
        payload: payload.unwrap_or_default(),
    }
}

/// A flow event; `seq` is its position in the batch.
pub fn flow_event_to_pb(seq: usize, e: &ledger::FlowEvent) -> pb::FlowEvent {
    pb::FlowEvent {
        kind: e.kind.name().to_string(),
        flow_id: e.flow.to_string(),
        command_id: e.command.to_string(),
        state: e.state.clone(),
        account_ids: e.accounts.iter().map(Id::to_string).collect(),
        amount: amount_str(e.currency, e.amount),
        currency: e.currency.code().to_string(),
        seq: seq as u32,
    }
}

/// A posting as the wire shows it; `reference` and `pending_id` are its transfer's (looked up by
/// the caller).
pub fn posting_to_pb(
    currency: Currency,
    p: &ledger::Posting,
    reference: &str,
    pending_id: Option<Id>,
) -> pb::Posting {
    pb::Posting {
        pending_id: pending_id.map(|i| i.to_string()),
        counterparty_account_id: p.counterparty.map(|c| c.to_string()),
        flow: p.flow.name().to_string(),
        reference: reference.to_string(),
        seq: p.seq,
        transfer_id: p.transfer.to_string(),
        leg: u32::from(p.leg),
        kind: enum_to_pb(p.kind),
        is_debit: p.is_debit,
        amount: amount_str(currency, p.amount),
        timestamp_ns: p.timestamp_ns,
        balances_after: Some(balances_to_pb(currency, &p.balances_after)),
    }
}

pub fn result_to_pb(id: Id, r: &CommandResult) -> pb::CommandResult {
    pb::CommandResult {
        id: id.to_string(),
        code: i32::from(r.code as u16),
        name: r.code.name().to_string(),
        timestamp_ns: r.timestamp_ns,
    }
}

/// Typed view of a result code received on the wire (unknown numbers from a newer server are
/// kept as `None`).
pub fn result_code_from_wire(code: i32) -> Option<ResultCode> {
    u16::try_from(code).ok().and_then(ResultCode::from_u16)
}

fn request_action_pb(a: &ledger::RequestAction) -> pb::RequestAction {
    pb::RequestAction {
        id: a.id.to_string(),
        request_id: a.request.to_string(),
    }
}

pub fn split_to_pb(x: &ledger::Split) -> pb::Split {
    let c = x.currency;
    pb::Split {
        id: x.id.to_string(),
        payer_account_id: x.payer.to_string(),
        total: amount_str(c, x.total),
        currency: c.code().to_string(),
        mode: enum_to_pb(x.mode),
        state: x.state.name().to_string(),
        note: x.note.clone(),
        items: x
            .items
            .iter()
            .map(|i| pb::SplitItem {
                participant_account_id: i.participant.to_string(),
                amount: amount_str(c, i.amount),
                state: i.state.name().to_string(),
                payment_id: i.payment.map(|p| p.to_string()),
            })
            .collect(),
        created_ns: x.created_ns,
        updated_ns: x.updated_ns,
        group_id: x.group.map(|g| g.to_string()),
        expires_ns: x.expires_ns,
    }
}

pub fn redpacket_to_pb(
    r: &ledger::RedPacket,
    slots: &[u64],
    claims: &[ledger::RedPacketClaim],
) -> pb::RedPacket {
    let c = r.currency;
    pb::RedPacket {
        id: r.id.to_string(),
        sender_account_id: r.sender.to_string(),
        total: amount_str(c, r.total),
        currency: c.code().to_string(),
        count: r.count,
        random: r.random,
        seed: r.seed,
        escrow_account_id: r.escrow.to_string(),
        state: r.state.name().to_string(),
        claimed: r.claimed,
        claimed_amount: amount_str(c, r.claimed_amount),
        slots: slots
            .iter()
            .map(|s| amount_str(c, u128::from(*s)))
            .collect(),
        claims: claims
            .iter()
            .map(|cl| pb::RedPacketClaim {
                slot: cl.slot,
                wallet_id: cl.wallet.to_string(),
                claim_id: cl.claim.to_string(),
                amount: amount_str(c, cl.amount),
            })
            .collect(),
        created_ns: r.created_ns,
        expires_ns: r.expires_ns,
    }
}

pub fn request_to_pb(r: &ledger::PaymentRequest) -> pb::PaymentRequest {
    pb::PaymentRequest {
        id: r.id.to_string(),
        payee_account_id: r.payee.to_string(),
        payer_account_id: r.payer.to_string(),
        amount: amount_str(r.currency, r.amount),
        currency: r.currency.code().to_string(),
        note: r.note.clone(),
        state: enum_to_pb(r.state),
        created_ns: r.created_ns,
        expires_ns: r.expires_ns,
        updated_ns: r.updated_ns,
        payment_id: r.payment.map(|p| p.to_string()),
    }
}

/// A declared currency's code, else the fallback's, else empty.
fn code_or(declared: Option<Currency>, fallback: Option<Currency>) -> String {
    declared
        .or(fallback)
        .map(|c| c.code().to_string())
        .unwrap_or_default()
}

/// The reverse conversion, for `WatchEvents` (leg currencies resolved from the accounts).
pub fn command_to_pb(c: &Command, currency_of: &dyn Fn(Id) -> Option<Currency>) -> pb::Command {
    use pb::command::Kind;
    let dec = |d: &Decimal| d.to_string();
    let kind = match c {
        Command::CreateAccount(a) => Kind::CreateAccount(pb::CreateAccount {
            id: a.id.to_string(),
            currency: a.currency.clone(),
            kind: enum_to_pb(a.kind),
            debits_must_not_exceed_credits: a.debits_must_not_exceed_credits,
            credits_must_not_exceed_debits: a.credits_must_not_exceed_debits,
            overdraft: a.overdraft.as_ref().map(dec),
            limits: Some(limits_spec_to_pb(&a.limits)),
            normal_side: a.normal_side.map_or(0, enum_to_pb),
            reference: a.reference.clone(),
            metadata: a
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }),
        Command::CreateTransfer(t) => Kind::CreateTransfer(pb::CreateTransfer {
            id: t.id.to_string(),
            legs: t
                .legs
                .iter()
                .map(|l| pb::Leg {
                    debit_account_id: l.debit.to_string(),
                    credit_account_id: l.credit.to_string(),
                    amount: l.amount.to_string(),
                    currency: l
                        .currency
                        .or_else(|| currency_of(l.debit))
                        .map(|c| c.code().to_string())
                        .unwrap_or_default(),
                })
                .collect(),
            pending_timeout_seconds: t.pending_timeout_seconds,
            reference: t.reference.clone(),
        }),
        Command::PostPending(p) => Kind::PostPending(pb::PostPending {
            id: p.id.to_string(),
            pending_id: p.pending_id.to_string(),
            amount: p.amount.as_ref().map(dec),
            currency: p.currency.map(|c| c.code().to_string()).unwrap_or_default(),
        }),
        Command::VoidPending(v) => Kind::VoidPending(pb::VoidPending {
            id: v.id.to_string(),
            pending_id: v.pending_id.to_string(),
        }),
        Command::CreateMerchant(m) => Kind::CreateMerchant(pb::CreateMerchant {
            id: m.id.to_string(),
            currency: m.currency.clone(),
            name: m.name.clone(),
            city: m.city.clone(),
            mcc: m.mcc.clone(),
            country: m.country.clone(),
            fee_bps: m.fee_bps,
            fee_account_id: m.fee_account.map(|a| a.to_string()),
        }),
        Command::CreateOrder(o) => Kind::CreateOrder(pb::CreateOrder {
            id: o.id.to_string(),
            merchant_id: o.merchant.to_string(),
            amount: dec(&o.amount),
            currency: code_or(o.currency, currency_of(o.merchant)),
            reference: o.reference.clone(),
            expires_in_seconds: o.expires_in_seconds,
        }),
        Command::PayQr(p) => Kind::PayQr(pb::PayQr {
            id: p.id.to_string(),
            payer_account_id: p.payer.to_string(),
            qr: p.qr.clone(),
            amount: p.amount.as_ref().map(dec),
            currency: code_or(p.currency, None),
        }),
        Command::BindPaycode(b) => Kind::BindPaycode(pb::BindPaycode {
            id: b.id.to_string(),
            wallet_id: b.wallet.to_string(),
            public_key: b.public_key.to_vec(),
            paycode_max: b.paycode_max.as_ref().map(dec),
            currency: if b.paycode_max.is_some() {
                code_or(None, currency_of(b.wallet))
            } else {
                String::new()
            },
        }),
        Command::RevokePaycode(r) => Kind::RevokePaycode(pb::RevokePaycode {
            id: r.id.to_string(),
            wallet_id: r.wallet.to_string(),
        }),
        Command::PayCode(p) => Kind::PayCode(pb::PayCode {
            id: p.id.to_string(),
            merchant_id: p.merchant.to_string(),
            code: p.token.encode(),
            amount: dec(&p.amount),
            currency: code_or(p.currency, currency_of(p.merchant)),
        }),
        Command::Topup(t) => Kind::Topup(pb::Topup {
            id: t.id.to_string(),
            wallet_id: t.wallet.to_string(),
            bank_account_id: t.bank.to_string(),
            amount: dec(&t.amount),
            currency: code_or(t.currency, currency_of(t.wallet)),
        }),
        Command::Withdraw(w) => Kind::Withdraw(pb::Withdraw {
            id: w.id.to_string(),
            wallet_id: w.wallet.to_string(),
            bank_account_id: w.bank.to_string(),
            amount: dec(&w.amount),
            currency: code_or(w.currency, currency_of(w.wallet)),
            fee_bps: w.fee_bps,
            fee_account_id: w.fee_account.map(|a| a.to_string()),
            expires_in_seconds: w.expires_in_seconds,
        }),
        Command::CompleteWithdrawal(c) => Kind::CompleteWithdrawal(pb::CompleteWithdrawal {
            id: c.id.to_string(),
            withdrawal_id: c.withdrawal.to_string(),
        }),
        Command::FailWithdrawal(c) => Kind::FailWithdrawal(pb::FailWithdrawal {
            id: c.id.to_string(),
            withdrawal_id: c.withdrawal.to_string(),
        }),
        Command::Send(x) => Kind::Send(pb::Send {
            id: x.id.to_string(),
            from_account_id: x.from.to_string(),
            to_account_id: x.to.to_string(),
            amount: dec(&x.amount),
            currency: code_or(x.currency, currency_of(x.from)),
            note: x.note.clone(),
            accept_within_seconds: x.accept_within_seconds,
            fee_bps: x.fee_bps,
            fee_account_id: x.fee_account.map(|a| a.to_string()),
        }),
        Command::ReceiveTransfer(r) => Kind::ReceiveTransfer(pb::ReceiveTransfer {
            id: r.id.to_string(),
            transfer_id: r.transfer.to_string(),
        }),
        Command::ReturnTransfer(r) => Kind::ReturnTransfer(pb::ReturnTransfer {
            id: r.id.to_string(),
            transfer_id: r.transfer.to_string(),
        }),
        Command::CreateRequest(r) => Kind::CreateRequest(pb::CreateRequest {
            id: r.id.to_string(),
            payee_account_id: r.payee.to_string(),
            payer_account_id: r.payer.to_string(),
            amount: dec(&r.amount),
            currency: code_or(r.currency, currency_of(r.payee)),
            note: r.note.clone(),
            expires_in_seconds: r.expires_in_seconds,
        }),
        Command::PayRequest(a) => Kind::PayRequest(request_action_pb(a)),
        Command::DeclineRequest(a) => Kind::DeclineRequest(request_action_pb(a)),
        Command::CancelRequest(a) => Kind::CancelRequest(request_action_pb(a)),
        Command::CreateSplit(x) => Kind::CreateSplit(pb::CreateSplit {
            id: x.id.to_string(),
            payer_account_id: x.payer.to_string(),
            total: dec(&x.total),
            currency: x.currency.code().to_string(),
            participant_ids: x.participants.iter().map(Id::to_string).collect(),
            mode: enum_to_pb(x.mode),
            values: x.values.iter().map(dec).collect(),
            note: x.note.clone(),
            group_id: x.group.map(|g| g.to_string()),
            expires_in_seconds: x.expires_in_seconds,
        }),
        Command::CreateGroup(g) => Kind::CreateGroup(pb::CreateGroup {
            id: g.id.to_string(),
            name: g.name.clone(),
            member_ids: g.members.iter().map(Id::to_string).collect(),
        }),
        Command::SettleGroup(g) => Kind::SettleGroup(pb::SettleGroup {
            id: g.id.to_string(),
            group_id: g.group.to_string(),
        }),
        Command::PaySplit(p) => Kind::PaySplit(pb::PaySplit {
            id: p.id.to_string(),
            split_id: p.split.to_string(),
            participant_account_id: p.participant.to_string(),
        }),
        Command::CancelSplit(c) => Kind::CancelSplit(pb::CancelSplit {
            id: c.id.to_string(),
            split_id: c.split.to_string(),
        }),
        Command::CreateRedPacket(r) => Kind::CreateRedpacket(pb::CreateRedPacket {
            id: r.id.to_string(),
            sender_account_id: r.sender.to_string(),
            total: dec(&r.total),
            currency: code_or(r.currency, currency_of(r.sender)),
            count: r.count,
            random: r.random,
            expires_in_seconds: r.expires_in_seconds,
            group_id: r.group.map(|g| g.to_string()),
        }),
        Command::DefineCurrency(c) => Kind::DefineCurrency(pb::DefineCurrency {
            id: c.id.to_string(),
            code: c.code.clone(),
            scale: u32::from(c.scale),
            name: c.name.clone(),
        }),
        Command::SetRate(r) => Kind::SetRate(pb::SetRate {
            id: r.id.to_string(),
            from_currency: r.from.code().to_string(),
            to_currency: r.to.code().to_string(),
            rate: dec(&r.rate),
        }),
        Command::Convert(c) => Kind::Convert(pb::Convert {
            id: c.id.to_string(),
            from_account_id: c.from.to_string(),
            to_account_id: c.to.to_string(),
            amount: dec(&c.amount),
            currency: code_or(c.currency, currency_of(c.from)),
            expect_rate: c.expect_rate.as_ref().map(dec),
        }),
        Command::DefineTier(t) => Kind::DefineTier(pb::DefineTier {
            id: t.id.to_string(),
            name: t.name.clone(),
            limits: Some(limits_spec_to_pb(&t.limits)),
        }),
        Command::SetAccountTier(t) => Kind::SetAccountTier(pb::SetAccountTier {
            id: t.id.to_string(),
            account_id: t.account.to_string(),
            tier: t.tier.clone(),
        }),
        Command::SetSetting(x) => Kind::SetSetting(pb::SetSetting {
            id: x.id.to_string(),
            key: x.key.clone(),
            value: x.value.clone(),
        }),
        Command::ClaimRedPacket(c) => Kind::ClaimRedpacket(pb::ClaimRedPacket {
            id: c.id.to_string(),
            packet_id: c.packet.to_string(),
            wallet_id: c.wallet.to_string(),
        }),
        Command::CloseOrder(c) => Kind::CloseOrder(pb::CloseOrder {
            id: c.id.to_string(),
            order_id: c.order.to_string(),
        }),
        Command::Refund(r) => Kind::Refund(pb::Refund {
            id: r.id.to_string(),
            order_id: r.order.to_string(),
            amount: dec(&r.amount),
            currency: code_or(r.currency, None),
            reason: r.reason.clone(),
        }),
        Command::PayBill(b) => Kind::PayBill(pb::PayBill {
            id: b.id.to_string(),
            payer_account_id: b.payer.to_string(),
            biller_id: b.biller.to_string(),
            bill_reference: b.bill_ref.clone(),
            amount: dec(&b.amount),
            currency: code_or(b.currency, currency_of(b.biller)),
        }),
        Command::SetAccountStatus(s) => Kind::SetAccountStatus(pb::SetAccountStatus {
            id: s.id.to_string(),
            account_id: s.account.to_string(),
            status: enum_to_pb(s.status),
        }),
        Command::RegisterClient(r) => Kind::RegisterClient(pb::RegisterClientCommand {
            id: r.id.to_string(),
            public_key: r.public_key.to_vec(),
            role: enum_to_pb(r.role),
            name: r.name.clone(),
        }),
        Command::RevokeClient(r) => Kind::RevokeClient(pb::RevokeClientCommand {
            id: r.id.to_string(),
            public_key: r.public_key.to_vec(),
        }),
    };
    pb::Command { kind: Some(kind) }
}

/// Limits as a client gave them (decimal strings in major units).
pub fn limits_spec_to_pb(l: &ledger::LimitsSpec) -> pb::Limits {
    pb::Limits {
        per_transfer_max: l.per_transfer_max.map(|d| d.to_string()),
        daily_outflow_max: l.daily_outflow_max.map(|d| d.to_string()),
        daily_outflow_count_max: l.daily_outflow_count_max,
        balance_max: l.balance_max.map(|d| d.to_string()),
    }
}

pub fn config_to_pb<S: ledger::Store>(l: &ledger::Ledger<S>) -> pb::GetConfigResponse {
    pb::GetConfigResponse {
        currencies: l
            .currencies()
            .map(|c| pb::CurrencyDefinition {
                code: c.currency.code().to_string(),
                scale: u32::from(c.currency.exponent()),
                name: c.name.clone(),
                defined_ns: c.defined_ns,
                position_account_id: ledger::position_account_id(c.currency).to_string(),
            })
            .collect(),
        rates: l
            .rates()
            .map(|r| pb::ExchangeRate {
                from_currency: r.from.code().to_string(),
                to_currency: r.to.code().to_string(),
                rate: r.rate.to_string(),
                set_by: r.set_by.to_string(),
                set_ns: r.set_ns,
            })
            .collect(),
        tiers: l
            .tiers()
            .map(|t| pb::Tier {
                name: t.name.clone(),
                limits: Some(limits_spec_to_pb(&t.limits)),
                defined_ns: t.defined_ns,
            })
            .collect(),
        business_utc_offset: ledger::Settings::format_offset(
            l.settings().business_utc_offset_seconds,
        ),
        applied_index: l.applied_index(),
    }
}

pub fn conversion_to_pb(c: &ledger::Conversion) -> pb::Conversion {
    pb::Conversion {
        id: c.id.to_string(),
        from_account_id: c.from_account.to_string(),
        to_account_id: c.to_account.to_string(),
        from_currency: c.from_currency.code().to_string(),
        to_currency: c.to_currency.code().to_string(),
        from_amount: amount_str(c.from_currency, c.from_amount),
        to_amount: amount_str(c.to_currency, c.to_amount),
        rate: c.rate.to_string(),
        rate_set_ns: c.rate_set_ns,
        timestamp_ns: c.timestamp_ns,
    }
}
