//! Builders for the protobuf commands a client submits.

use ledger::Id;

use crate::pb;

fn wrap(kind: pb::command::Kind) -> pb::Command {
    pb::Command { kind: Some(kind) }
}

pub fn create_account(id: Id, currency: &str, kind: pb::AccountKind) -> pb::Command {
    create_account_with(pb::CreateAccount {
        id: id.to_string(),
        currency: currency.into(),
        kind: kind as i32,
        ..Default::default()
    })
}

pub fn create_account_with(a: pb::CreateAccount) -> pb::Command {
    wrap(pb::command::Kind::CreateAccount(a))
}

pub fn leg(debit: Id, credit: Id, amount: &str, currency: &str) -> pb::Leg {
    pb::Leg {
        debit_account_id: debit.to_string(),
        credit_account_id: credit.to_string(),
        amount: amount.into(),
        currency: currency.into(),
    }
}

pub fn transfer(id: Id, debit: Id, credit: Id, amount: &str, currency: &str) -> pb::Command {
    transfer_legs(id, vec![leg(debit, credit, amount, currency)], None)
}

pub fn pending_transfer(
    id: Id,
    debit: Id,
    credit: Id,
    amount: &str,
    currency: &str,
    timeout_seconds: u64,
) -> pb::Command {
    transfer_legs(
        id,
        vec![leg(debit, credit, amount, currency)],
        Some(timeout_seconds),
    )
}

pub fn transfer_legs(
    id: Id,
    legs: Vec<pb::Leg>,
    pending_timeout_seconds: Option<u64>,
) -> pb::Command {
    transfer_with_reference(id, legs, pending_timeout_seconds, "")
}

/// A transfer carrying a reference (found again by `FindTransfers`, matched by reconciliation).
pub fn transfer_with_reference(
    id: Id,
    legs: Vec<pb::Leg>,
    pending_timeout_seconds: Option<u64>,
    reference: &str,
) -> pb::Command {
    wrap(pb::command::Kind::CreateTransfer(pb::CreateTransfer {
        id: id.to_string(),
        legs,
        pending_timeout_seconds,
        reference: reference.into(),
    }))
}

/// `amount`: `Some((amount, currency))` for a partial post.
pub fn post_pending(id: Id, pending_id: Id, amount: Option<(&str, &str)>) -> pb::Command {
    wrap(pb::command::Kind::PostPending(pb::PostPending {
        id: id.to_string(),
        pending_id: pending_id.to_string(),
        amount: amount.map(|(a, _)| a.to_string()),
        currency: amount.map(|(_, c)| c.to_string()).unwrap_or_default(),
    }))
}

pub fn void_pending(id: Id, pending_id: Id) -> pb::Command {
    wrap(pb::command::Kind::VoidPending(pb::VoidPending {
        id: id.to_string(),
        pending_id: pending_id.to_string(),
    }))
}

pub fn set_account_status(id: Id, account: Id, status: pb::AccountStatus) -> pb::Command {
    wrap(pb::command::Kind::SetAccountStatus(pb::SetAccountStatus {
        id: id.to_string(),
        account_id: account.to_string(),
        status: status as i32,
    }))
}

pub fn create_merchant(m: pb::CreateMerchant) -> pb::Command {
    wrap(pb::command::Kind::CreateMerchant(m))
}

/// A dynamic QR order; `expires_in_seconds: None` takes the default (2 h).
pub fn create_order(
    id: Id,
    merchant: Id,
    amount: &str,
    currency: &str,
    reference: &str,
    expires_in_seconds: Option<u64>,
) -> pb::Command {
    wrap(pb::command::Kind::CreateOrder(pb::CreateOrder {
        id: id.to_string(),
        merchant_id: merchant.to_string(),
        amount: amount.into(),
        currency: currency.into(),
        reference: reference.into(),
        expires_in_seconds,
    }))
}

/// Pays a scanned merchant code; `amount` (with its currency) is required for a static code.
pub fn pay_qr(id: Id, payer: Id, qr: &str, amount: Option<(&str, &str)>) -> pb::Command {
    wrap(pb::command::Kind::PayQr(pb::PayQr {
        id: id.to_string(),
        payer_account_id: payer.to_string(),
        qr: qr.into(),
        amount: amount.map(|(a, _)| a.to_string()),
        currency: amount.map(|(_, c)| c.to_string()).unwrap_or_default(),
    }))
}

pub fn close_order(id: Id, order: Id) -> pb::Command {
    wrap(pb::command::Kind::CloseOrder(pb::CloseOrder {
        id: id.to_string(),
        order_id: order.to_string(),
    }))
}

pub fn refund(id: Id, order: Id, amount: &str, currency: &str, reason: &str) -> pb::Command {
    wrap(pb::command::Kind::Refund(pb::Refund {
        id: id.to_string(),
        order_id: order.to_string(),
        amount: amount.into(),
        currency: currency.into(),
        reason: reason.into(),
    }))
}

pub fn pay_bill(
    id: Id,
    payer: Id,
    biller: Id,
    bill_reference: &str,
    amount: &str,
    currency: &str,
) -> pb::Command {
    wrap(pb::command::Kind::PayBill(pb::PayBill {
        id: id.to_string(),
        payer_account_id: payer.to_string(),
        biller_id: biller.to_string(),
        bill_reference: bill_reference.into(),
        amount: amount.into(),
        currency: currency.into(),
    }))
}

/// Binds a wallet's payment-code key; `paycode_max` is `(amount, currency)`.
pub fn bind_paycode(
    id: Id,
    wallet: Id,
    public_key: &[u8; 32],
    paycode_max: Option<(&str, &str)>,
) -> pb::Command {
    wrap(pb::command::Kind::BindPaycode(pb::BindPaycode {
        id: id.to_string(),
        wallet_id: wallet.to_string(),
        public_key: public_key.to_vec(),
        paycode_max: paycode_max.map(|(a, _)| a.to_string()),
        currency: paycode_max.map(|(_, c)| c.to_string()).unwrap_or_default(),
    }))
}

pub fn revoke_paycode(id: Id, wallet: Id) -> pb::Command {
    wrap(pb::command::Kind::RevokePaycode(pb::RevokePaycode {
        id: id.to_string(),
        wallet_id: wallet.to_string(),
    }))
}

pub fn pay_code(id: Id, merchant: Id, code: &str, amount: &str, currency: &str) -> pb::Command {
    wrap(pb::command::Kind::PayCode(pb::PayCode {
        id: id.to_string(),
        merchant_id: merchant.to_string(),
        code: code.into(),
        amount: amount.into(),
        currency: currency.into(),
    }))
}

pub fn topup(id: Id, wallet: Id, bank: Id, amount: &str, currency: &str) -> pb::Command {
    wrap(pb::command::Kind::Topup(pb::Topup {
        id: id.to_string(),
        wallet_id: wallet.to_string(),
        bank_account_id: bank.to_string(),
        amount: amount.into(),
        currency: currency.into(),
    }))
}

pub fn withdraw(w: pb::Withdraw) -> pb::Command {
    wrap(pb::command::Kind::Withdraw(w))
}

/// Settles a withdrawal: `completed` posts its hold, else it is voided (the bank refused).
pub fn settle_withdrawal(id: Id, withdrawal: Id, completed: bool) -> pb::Command {
    let (id, withdrawal_id) = (id.to_string(), withdrawal.to_string());
    wrap(if completed {
        pb::command::Kind::CompleteWithdrawal(pb::CompleteWithdrawal { id, withdrawal_id })
    } else {
        pb::command::Kind::FailWithdrawal(pb::FailWithdrawal { id, withdrawal_id })
    })
}

pub fn send(s: pb::Send) -> pb::Command {
    wrap(pb::command::Kind::Send(s))
}

/// Receives (`receive`) or returns a held chat transfer.
pub fn settle_chat_transfer(id: Id, transfer: Id, receive: bool) -> pb::Command {
    let (id, transfer_id) = (id.to_string(), transfer.to_string());
    wrap(if receive {
        pb::command::Kind::ReceiveTransfer(pb::ReceiveTransfer { id, transfer_id })
    } else {
        pb::command::Kind::ReturnTransfer(pb::ReturnTransfer { id, transfer_id })
    })
}

pub fn create_request(r: pb::CreateRequest) -> pb::Command {
    wrap(pb::command::Kind::CreateRequest(r))
}

/// What to do with a payment request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestVerb {
    Pay,
    Decline,
    Cancel,
}

pub fn request_action(id: Id, request: Id, verb: RequestVerb) -> pb::Command {
    let a = pb::RequestAction {
        id: id.to_string(),
        request_id: request.to_string(),
    };
    wrap(match verb {
        RequestVerb::Pay => pb::command::Kind::PayRequest(a),
        RequestVerb::Decline => pb::command::Kind::DeclineRequest(a),
        RequestVerb::Cancel => pb::command::Kind::CancelRequest(a),
    })
}

pub fn create_split(x: pb::CreateSplit) -> pb::Command {
    wrap(pb::command::Kind::CreateSplit(x))
}

pub fn pay_split(id: Id, split: Id, participant: Id) -> pb::Command {
    wrap(pb::command::Kind::PaySplit(pb::PaySplit {
        id: id.to_string(),
        split_id: split.to_string(),
        participant_account_id: participant.to_string(),
    }))
}

pub fn cancel_split(id: Id, split: Id) -> pb::Command {
    wrap(pb::command::Kind::CancelSplit(pb::CancelSplit {
        id: id.to_string(),
        split_id: split.to_string(),
    }))
}

pub fn create_redpacket(r: pb::CreateRedPacket) -> pb::Command {
    wrap(pb::command::Kind::CreateRedpacket(r))
}

pub fn claim_redpacket(id: Id, packet: Id, wallet: Id) -> pb::Command {
    wrap(pb::command::Kind::ClaimRedpacket(pb::ClaimRedPacket {
        id: id.to_string(),
        packet_id: packet.to_string(),
        wallet_id: wallet.to_string(),
    }))
}

pub fn create_group(id: Id, name: &str, members: &[Id]) -> pb::Command {
    wrap(pb::command::Kind::CreateGroup(pb::CreateGroup {
        id: id.to_string(),
        name: name.into(),
        member_ids: members.iter().map(Id::to_string).collect(),
    }))
}

pub fn settle_group(id: Id, group: Id) -> pb::Command {
    wrap(pb::command::Kind::SettleGroup(pb::SettleGroup {
        id: id.to_string(),
        group_id: group.to_string(),
    }))
}

pub fn define_currency(id: Id, code: &str, scale: u32, name: &str) -> pb::Command {
    wrap(pb::command::Kind::DefineCurrency(pb::DefineCurrency {
        id: id.to_string(),
        code: code.into(),
        scale,
        name: name.into(),
    }))
}

pub fn set_rate(id: Id, from: &str, to: &str, rate: &str) -> pb::Command {
    wrap(pb::command::Kind::SetRate(pb::SetRate {
        id: id.to_string(),
        from_currency: from.into(),
        to_currency: to.into(),
        rate: rate.into(),
    }))
}

pub fn convert(c: pb::Convert) -> pb::Command {
    wrap(pb::command::Kind::Convert(c))
}

pub fn define_tier(id: Id, name: &str, limits: pb::Limits) -> pb::Command {
    wrap(pb::command::Kind::DefineTier(pb::DefineTier {
        id: id.to_string(),
        name: name.into(),
        limits: Some(limits),
    }))
}

pub fn set_account_tier(id: Id, account: Id, tier: &str) -> pb::Command {
    wrap(pb::command::Kind::SetAccountTier(pb::SetAccountTier {
        id: id.to_string(),
        account_id: account.to_string(),
        tier: tier.into(),
    }))
}

pub fn set_setting(id: Id, key: &str, value: &str) -> pb::Command {
    wrap(pb::command::Kind::SetSetting(pb::SetSetting {
        id: id.to_string(),
        key: key.into(),
        value: value.into(),
    }))
}
