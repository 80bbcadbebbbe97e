//! Strict conversions between the protobuf contract and the ledger's types.
//!
//! Everything arriving from the network goes through one of the `parse_*` functions here; they
//! reject rather than guess (no rounding, no trimming, no alternative spellings), and the caller
//! rejects the whole request on the first error, so a batch is never partially applied.

use std::collections::BTreeMap;

use ledger::{
    AccountKind, AccountStatus, Balances, Command, CommandResult, Currency, Id, LimitsSpec,
    ResultCode, StableEnum,
};
use rust_decimal::Decimal;
use tonic::Status;

use crate::pb;

mod to_pb;
mod transfers;

pub use self::to_pb::*;
pub use self::transfers::*;

/// Most commands in one `Submit` call.
pub const SUBMIT_COMMANDS_MAX: usize = 8_192;
/// Most ids in one `GetAccounts` / `GetTransfers` call.
pub const READ_IDS_MAX: usize = 1_000;
/// Default and largest history page.
pub const HISTORY_PAGE_DEFAULT: u32 = 100;
pub const HISTORY_PAGE_MAX: u32 = ledger::HISTORY_PAGE_MAX as u32;
/// Most significant digits of an amount (a `Decimal` mantissa holds 28 digits exactly).
pub const AMOUNT_DIGITS_MAX: usize = 28;
/// Longest amount string accepted (leading zeros included).
pub const AMOUNT_CHARS_MAX: usize = 64;
/// Most legs in one transfer command. Up to the ledger's `LEGS_MAX` a transfer is valid; above it
/// and up to this the ledger answers `too_many_legs`; above this the codec would refuse the
/// command after it was committed, so the API refuses it first (INVALID_ARGUMENT).
pub const TRANSFER_LEGS_MAX: usize = ledger::LEGS_ENCODED_MAX;
/// Most metadata entries on a created account (same reasoning as [`TRANSFER_LEGS_MAX`]).
pub const METADATA_ENTRIES_MAX: usize = ledger::METADATA_ENTRIES_ENCODED_MAX;

// Every limit the wire accepts must fit what the ledger decodes and applies: otherwise a request
// could be committed and then answered INTERNAL.
const _: () = assert!(TRANSFER_LEGS_MAX <= ledger::LEGS_ENCODED_MAX);
const _: () = assert!(METADATA_ENTRIES_MAX <= ledger::METADATA_ENTRIES_ENCODED_MAX);
const _: () = assert!(SUBMIT_COMMANDS_MAX <= ledger::BATCH_COMMANDS_MAX);
const _: () = assert!(HISTORY_PAGE_MAX as usize <= ledger::HISTORY_PAGE_MAX);

fn invalid(msg: String) -> Status {
    Status::invalid_argument(msg)
}

/// Parses a canonical UUID (8-4-4-4-12 hex digits, either case). The nil UUID is rejected.
pub fn parse_id(field: impl std::fmt::Display, s: &str) -> Result<Id, Status> {
    let b = s.as_bytes();
    let well_formed = b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        });
    if !well_formed {
        return Err(invalid(format!(
            "{field}: {s:?} is not a canonical UUID (8-4-4-4-12 hex digits)"
        )));
    }
    let id: Id = s
        .parse()
        .map_err(|e: &str| invalid(format!("{field}: {e}")))?;
    if id.is_zero() {
        return Err(invalid(format!("{field}: the nil UUID is not a valid id")));
    }
    Ok(id)
}

/// The wire name of a command only admin (operator) clients may submit — those that change the
/// ledger's configuration (in-app currencies, rates, tiers, settings) — or `None`.
pub fn operator_command(c: &Command) -> Option<&'static str> {
    match c {
        Command::DefineCurrency(_) => Some("define_currency"),
        Command::SetRate(_) => Some("set_rate"),
        Command::DefineTier(_) => Some("define_tier"),
        Command::SetSetting(_) => Some("set_setting"),
        _ => None,
    }
}

/// Longest setting key or value, in bytes.
const SETTING_TEXT_BYTES_MAX: usize = 64;

/// Parses a currency code: an ISO 4217 code the ledger accepts, or an in-app code (3 ..= 8
/// upper-case letters) that the ledger resolves against its definitions when it applies the command.
pub fn parse_currency(field: impl std::fmt::Display, s: &str) -> Result<Currency, Status> {
    Currency::declared(s).ok_or_else(|| {
        invalid(format!(
            "{field}: unknown currency {s:?} (an accepted ISO 4217 code, or an in-app code of \
             3 ..= 8 upper-case letters)"
        ))
    })
}

/// Parses a non-negative decimal amount in `currency`: `[0-9]+(\.[0-9]+)?`, at most
/// [`AMOUNT_DIGITS_MAX`] significant digits and at most the currency's exponent in fractional
/// digits once trailing zeros are dropped ("12.300" CNY is fine, "12.345" CNY is not). An in-app
/// currency a client names is checked against the largest in-app scale here and against its own
/// scale by the ledger.
pub fn parse_amount(
    field: impl std::fmt::Display,
    s: &str,
    currency: Currency,
) -> Result<Decimal, Status> {
    parse_decimal(
        field,
        s,
        u32::from(currency.exponent()),
        &AmountOf(currency),
    )
}

/// "CNY amount", written only into an error (a valid amount allocates nothing).
struct AmountOf(Currency);

impl std::fmt::Display for AmountOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} amount", self.0.code())
    }
}

/// Parses a whole number (basis points, weights) written as a decimal string.
pub fn parse_whole_number(field: impl std::fmt::Display, s: &str) -> Result<Decimal, Status> {
    parse_decimal(field, s, 0, &"whole number")
}

/// Parses an exchange rate: a decimal with at most [`ledger::RATE_SCALE_MAX`] fractional digits.
pub fn parse_rate(field: impl std::fmt::Display, s: &str) -> Result<Decimal, Status> {
    parse_decimal(field, s, ledger::RATE_SCALE_MAX, &"rate")
}

/// The one decimal parser of the edge: `[0-9]+(\.[0-9]+)?`, non-negative, at most
/// [`AMOUNT_DIGITS_MAX`] significant digits and `frac_max` fractional digits once trailing zeros
/// are dropped. `what` names the value in the error.
fn parse_decimal(
    field: impl std::fmt::Display,
    s: &str,
    frac_max: u32,
    what: &dyn std::fmt::Display,
) -> Result<Decimal, Status> {
    let bad = |why: &str| invalid(format!("{field}: {s:?} is not a valid {what}: {why}"));
    if s.is_empty() {
        return Err(bad("empty"));
    }
    if s.len() > AMOUNT_CHARS_MAX {
        return Err(bad("too long"));
    }
    if s.starts_with('-') {
        return Err(bad("amounts must not be negative"));
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (s, None),
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit());
    if !digits(int) || frac.is_some_and(|f| !digits(f)) {
        return Err(bad("expected digits with an optional '.' and fraction"));
    }
    let frac = frac.unwrap_or("").trim_end_matches('0');
    if frac.len() > frac_max as usize {
        return Err(bad(&format!("more than {frac_max} fractional digits")));
    }
    // The mantissa is the integer digits then the fraction's; counted and summed in place.
    let int = int.trim_start_matches('0');
    let significant = if int.is_empty() {
        frac.trim_start_matches('0').len()
    } else {
        int.len() + frac.len()
    };
    if significant > AMOUNT_DIGITS_MAX {
        return Err(bad(&format!(
            "more than {AMOUNT_DIGITS_MAX} significant digits"
        )));
    }
    // At most AMOUNT_DIGITS_MAX (28) digits: below 10^28 < 2^127, no overflow.
    let mantissa = int
        .bytes()
        .chain(frac.bytes())
        .fold(0i128, |m, c| m * 10 + i128::from(c - b'0'));
    Ok(Decimal::from_i128_with_scale(mantissa, frac.len() as u32))
}

fn parse_opt_amount(
    field: impl std::fmt::Display,
    s: &Option<String>,
    currency: Currency,
) -> Result<Option<Decimal>, Status> {
    s.as_deref()
        .map(|s| parse_amount(field, s, currency))
        .transpose()
}

pub fn parse_public_key(field: impl std::fmt::Display, b: &[u8]) -> Result<[u8; 32], Status> {
    let key: [u8; 32] = b.try_into().map_err(|_| {
        invalid(format!(
            "{field}: an Ed25519 public key is 32 bytes, got {}",
            b.len()
        ))
    })?;
    ed25519_dalek::VerifyingKey::from_bytes(&key)
        .map_err(|_| invalid(format!("{field}: not a valid Ed25519 public key")))?;
    Ok(key)
}

/// Protobuf enums number the ledger's stable values from 1 (0 is `*_UNSPECIFIED`); the ledger's
/// one table per enum ([`StableEnum`]) is the only mapping, checked against the proto by a test.
pub fn enum_to_pb<E: StableEnum>(v: E) -> i32 {
    i32::from(v.number()) + 1
}

/// The ledger value of a protobuf enum number (`None` for UNSPECIFIED and unknown numbers).
pub fn enum_from_pb<E: StableEnum>(v: i32) -> Option<E> {
    v.checked_sub(1)
        .and_then(|n| u16::try_from(n).ok())
        .and_then(E::from_number)
}

/// The stable snake_case name of a protobuf enum number, `"unknown"` for a number this build
/// does not know (a newer server).
pub fn enum_name_pb<E: StableEnum>(v: i32) -> &'static str {
    enum_from_pb::<E>(v).map_or("unknown", E::name)
}

/// Parses a required enum field; UNSPECIFIED and unknown numbers are `INVALID_ARGUMENT`.
pub fn parse_enum<E: StableEnum>(
    field: impl std::fmt::Display,
    what: &str,
    v: i32,
) -> Result<E, Status> {
    enum_from_pb(v).ok_or_else(|| invalid(format!("{field}: unknown or unspecified {what} {v}")))
}

/// A leg naming an existing account in another currency is refused at the edge (an account
/// created later in the same batch is checked by the ledger). Both submit forms call it.
fn check_leg_accounts<F: std::fmt::Display>(
    debit: Id,
    credit: Id,
    currency: Currency,
    account_currency: &dyn Fn(Id) -> Option<Currency>,
    field: impl Fn(&'static str) -> F,
) -> Result<(), Status> {
    for (name, acct) in [("debit_account_id", debit), ("credit_account_id", credit)] {
        if let Some(actual) = account_currency(acct) {
            if actual != currency {
                return Err(invalid(format!(
                    "{}: account {acct} is in {}, the leg says {}",
                    field(name),
                    actual.code(),
                    currency.code()
                )));
            }
        }
    }
    Ok(())
}

/// Converts one `Submit` command. `account_currency` looks up the currency of an existing
/// account (a leg whose declared currency differs from an existing account's is rejected; an
/// account created later in the same batch is checked by the ledger itself).
pub fn command_from_pb(
    i: usize,
    c: &pb::Command,
    account_currency: &dyn Fn(Id) -> Option<Currency>,
) -> Result<Command, Status> {
    use pb::command::Kind;
    // Field names are formatted only into an error (a valid command allocates none).
    let f = |name: &'static str| FieldName(i, name);
    let Some(kind) = &c.kind else {
        return Err(invalid(format!(
            "commands[{i}]: empty command (no kind set)"
        )));
    };
    Ok(match kind {
        Kind::CreateAccount(a) => {
            let currency = parse_currency(&f("create_account.currency"), &a.currency)?;
            let limits = a.limits.clone().unwrap_or_default();
            Command::CreateAccount(ledger::CreateAccount {
                id: parse_id(&f("create_account.id"), &a.id)?,
                currency: currency.code().to_string(),
                kind: parse_enum::<AccountKind>(&f("create_account.kind"), "account kind", a.kind)?,
                normal_side: match a.normal_side {
                    0 => None,
                    n => Some(parse_enum::<ledger::NormalSide>(
                        &f("create_account.normal_side"),
                        "normal side",
                        n,
                    )?),
                },
                debits_must_not_exceed_credits: a.debits_must_not_exceed_credits,
                credits_must_not_exceed_debits: a.credits_must_not_exceed_debits,
                overdraft: parse_opt_amount(
                    &f("create_account.overdraft"),
                    &a.overdraft,
                    currency,
                )?,
                limits: LimitsSpec {
                    per_transfer_max: parse_opt_amount(
                        &f("create_account.limits.per_transfer_max"),
                        &limits.per_transfer_max,
                        currency,
                    )?,
                    daily_outflow_max: parse_opt_amount(
                        &f("create_account.limits.daily_outflow_max"),
                        &limits.daily_outflow_max,
                        currency,
                    )?,
                    daily_outflow_count_max: limits.daily_outflow_count_max,
                    balance_max: parse_opt_amount(
                        &f("create_account.limits.balance_max"),
                        &limits.balance_max,
                        currency,
                    )?,
                },
                reference: a.reference.clone(),
                metadata: if a.metadata.len() > METADATA_ENTRIES_MAX {
                    return Err(invalid(format!(
                        "{}: {} entries, over the limit of {METADATA_ENTRIES_MAX}",
                        f("create_account.metadata"),
                        a.metadata.len()
                    )));
                } else {
                    a.metadata
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect::<BTreeMap<_, _>>()
                },
            })
        }
        Kind::CreateTransfer(t) => {
            if t.legs.len() > TRANSFER_LEGS_MAX {
                return Err(invalid(format!(
                    "{}: {} legs, over the limit of {TRANSFER_LEGS_MAX}",
                    f("create_transfer.legs"),
                    t.legs.len()
                )));
            }
            let mut legs = Vec::with_capacity(t.legs.len());
            for (j, leg) in t.legs.iter().enumerate() {
                let lf = |name: &'static str| LegFieldName(i, j, name);
                let currency = parse_currency(&lf("currency"), &leg.currency)?;
                let debit = parse_id(&lf("debit_account_id"), &leg.debit_account_id)?;
                let credit = parse_id(&lf("credit_account_id"), &leg.credit_account_id)?;
                check_leg_accounts(debit, credit, currency, account_currency, lf)?;
                legs.push(ledger::LegSpec {
                    debit,
                    credit,
                    amount: parse_amount(&lf("amount"), &leg.amount, currency)?,
                    currency: Some(currency),
                });
            }
            Command::CreateTransfer(ledger::CreateTransfer {
                id: parse_id(&f("create_transfer.id"), &t.id)?,
                legs,
                pending_timeout_seconds: t.pending_timeout_seconds,
                reference: t.reference.clone(),
            })
        }
        Kind::PostPending(p) => {
            // The currency is required with an amount and optional without one; either way the
            // ledger checks it against the hold's.
            let currency = if p.amount.is_some() || !p.currency.is_empty() {
                Some(parse_currency(&f("post_pending.currency"), &p.currency)?)
            } else {
                None
            };
            let amount = match (&p.amount, currency) {
                (Some(a), Some(c)) => Some(parse_amount(&f("post_pending.amount"), a, c)?),
                _ => None,
            };
            Command::PostPending(ledger::PostPending {
                id: parse_id(&f("post_pending.id"), &p.id)?,
                pending_id: parse_id(&f("post_pending.pending_id"), &p.pending_id)?,
                amount,
                currency,
            })
        }
        Kind::VoidPending(v) => Command::VoidPending(ledger::VoidPending {
            id: parse_id(&f("void_pending.id"), &v.id)?,
            pending_id: parse_id(&f("void_pending.pending_id"), &v.pending_id)?,
        }),
        Kind::CreateMerchant(m) => Command::CreateMerchant(merchant_from_pb(&f, m)?),
        Kind::CreateOrder(o) => {
            let currency = parse_currency(&f("create_order.currency"), &o.currency)?;
            check_text(
                &f("create_order.reference"),
                &o.reference,
                1,
                ledger::ORDER_REFERENCE_CHARS_MAX,
                Count::Chars,
            )?;
            if let Some(s) = o.expires_in_seconds {
                if s == 0 || s > ledger::ORDER_EXPIRES_MAX_SECONDS {
                    return Err(invalid(format!(
                        "{}: {s} is outside 1 ..= {}",
                        f("create_order.expires_in_seconds"),
                        ledger::ORDER_EXPIRES_MAX_SECONDS
                    )));
                }
            }
            Command::CreateOrder(ledger::CreateOrder {
                id: parse_id(&f("create_order.id"), &o.id)?,
                merchant: parse_id(&f("create_order.merchant_id"), &o.merchant_id)?,
                amount: parse_amount(&f("create_order.amount"), &o.amount, currency)?,
                currency: Some(currency),
                reference: o.reference.clone(),
                expires_in_seconds: o.expires_in_seconds,
            })
        }
        Kind::PayQr(p) => {
            check_text(
                &f("pay_qr.qr"),
                &p.qr,
                1,
                ledger::QR_PAYLOAD_CHARS_MAX,
                Count::Chars,
            )?;
            let (amount, currency) = match &p.amount {
                None if p.currency.is_empty() => (None, None),
                amount => {
                    let c = parse_currency(&f("pay_qr.currency"), &p.currency)?;
                    (parse_opt_amount(&f("pay_qr.amount"), amount, c)?, Some(c))
                }
            };
            Command::PayQr(ledger::PayQr {
                id: parse_id(&f("pay_qr.id"), &p.id)?,
                payer: parse_id(&f("pay_qr.payer_account_id"), &p.payer_account_id)?,
                qr: p.qr.clone(),
                amount,
                currency,
            })
        }
        Kind::BindPaycode(b) => {
            let paycode_max = match &b.paycode_max {
                None => None,
                Some(m) => {
                    let c = parse_currency(&f("bind_paycode.currency"), &b.currency)?;
                    Some(parse_amount(&f("bind_paycode.paycode_max"), m, c)?)
                }
            };
            Command::BindPaycode(ledger::BindPaycode {
                id: parse_id(&f("bind_paycode.id"), &b.id)?,
                wallet: parse_id(&f("bind_paycode.wallet_id"), &b.wallet_id)?,
                public_key: parse_public_key(&f("bind_paycode.public_key"), &b.public_key)?,
                paycode_max,
            })
        }
        Kind::RevokePaycode(r) => Command::RevokePaycode(ledger::RevokePaycode {
            id: parse_id(&f("revoke_paycode.id"), &r.id)?,
            wallet: parse_id(&f("revoke_paycode.wallet_id"), &r.wallet_id)?,
        }),
        Kind::PayCode(p) => {
            let currency = parse_currency(&f("pay_code.currency"), &p.currency)?;
            let token = ledger::paycode::Token::parse(&p.code)
                .map_err(|e| invalid(format!("{}: {e}", f("pay_code.code"))))?;
            Command::PayCode(ledger::PayCode {
                id: parse_id(&f("pay_code.id"), &p.id)?,
                merchant: parse_id(&f("pay_code.merchant_id"), &p.merchant_id)?,
                token,
                amount: parse_amount(&f("pay_code.amount"), &p.amount, currency)?,
                currency: Some(currency),
            })
        }
        Kind::Topup(t) => {
            let currency = parse_currency(&f("topup.currency"), &t.currency)?;
            Command::Topup(ledger::Topup {
                id: parse_id(&f("topup.id"), &t.id)?,
                wallet: parse_id(&f("topup.wallet_id"), &t.wallet_id)?,
                bank: parse_id(&f("topup.bank_account_id"), &t.bank_account_id)?,
                amount: parse_amount(&f("topup.amount"), &t.amount, currency)?,
                currency: Some(currency),
            })
        }
        Kind::Withdraw(w) => {
            let currency = parse_currency(&f("withdraw.currency"), &w.currency)?;
            Command::Withdraw(ledger::Withdraw {
                id: parse_id(&f("withdraw.id"), &w.id)?,
                wallet: parse_id(&f("withdraw.wallet_id"), &w.wallet_id)?,
                bank: parse_id(&f("withdraw.bank_account_id"), &w.bank_account_id)?,
                amount: parse_amount(&f("withdraw.amount"), &w.amount, currency)?,
                currency: Some(currency),
                fee_bps: w.fee_bps,
                fee_account: w
                    .fee_account_id
                    .as_deref()
                    .map(|s| parse_id(&f("withdraw.fee_account_id"), s))
                    .transpose()?,
                expires_in_seconds: w.expires_in_seconds,
            })
        }
        Kind::CompleteWithdrawal(c) => Command::CompleteWithdrawal(ledger::CompleteWithdrawal {
            id: parse_id(&f("complete_withdrawal.id"), &c.id)?,
            withdrawal: parse_id(&f("complete_withdrawal.withdrawal_id"), &c.withdrawal_id)?,
        }),
        Kind::FailWithdrawal(c) => Command::FailWithdrawal(ledger::FailWithdrawal {
            id: parse_id(&f("fail_withdrawal.id"), &c.id)?,
            withdrawal: parse_id(&f("fail_withdrawal.withdrawal_id"), &c.withdrawal_id)?,
        }),
        Kind::Send(x) => {
            let currency = parse_currency(&f("send.currency"), &x.currency)?;
            check_text(
                &f("send.note"),
                &x.note,
                0,
                ledger::NOTE_BYTES_MAX,
                Count::Bytes,
            )?;
            Command::Send(ledger::Send {
                id: parse_id(&f("send.id"), &x.id)?,
                from: parse_id(&f("send.from_account_id"), &x.from_account_id)?,
                to: parse_id(&f("send.to_account_id"), &x.to_account_id)?,
                amount: parse_amount(&f("send.amount"), &x.amount, currency)?,
                currency: Some(currency),
                note: x.note.clone(),
                accept_within_seconds: x.accept_within_seconds,
                fee_bps: x.fee_bps,
                fee_account: x
                    .fee_account_id
                    .as_deref()
                    .map(|s| parse_id(&f("send.fee_account_id"), s))
                    .transpose()?,
            })
        }
        Kind::ReceiveTransfer(r) => Command::ReceiveTransfer(ledger::ReceiveTransfer {
            id: parse_id(&f("receive_transfer.id"), &r.id)?,
            transfer: parse_id(&f("receive_transfer.transfer_id"), &r.transfer_id)?,
        }),
        Kind::ReturnTransfer(r) => Command::ReturnTransfer(ledger::ReturnTransfer {
            id: parse_id(&f("return_transfer.id"), &r.id)?,
            transfer: parse_id(&f("return_transfer.transfer_id"), &r.transfer_id)?,
        }),
        Kind::CreateRequest(r) => {
            let currency = parse_currency(&f("create_request.currency"), &r.currency)?;
            check_text(
                &f("create_request.note"),
                &r.note,
                0,
                ledger::NOTE_BYTES_MAX,
                Count::Bytes,
            )?;
            Command::CreateRequest(ledger::CreateRequest {
                id: parse_id(&f("create_request.id"), &r.id)?,
                payee: parse_id(&f("create_request.payee_account_id"), &r.payee_account_id)?,
                payer: parse_id(&f("create_request.payer_account_id"), &r.payer_account_id)?,
                amount: parse_amount(&f("create_request.amount"), &r.amount, currency)?,
                currency: Some(currency),
                note: r.note.clone(),
                expires_in_seconds: r.expires_in_seconds,
            })
        }
        Kind::PayRequest(a) | Kind::DeclineRequest(a) | Kind::CancelRequest(a) => {
            let name = match kind {
                Kind::PayRequest(_) => "pay_request",
                Kind::DeclineRequest(_) => "decline_request",
                _ => "cancel_request",
            };
            let action = ledger::RequestAction {
                id: parse_id(&format!("commands[{i}].{name}.id"), &a.id)?,
                request: parse_id(&format!("commands[{i}].{name}.request_id"), &a.request_id)?,
            };
            match kind {
                Kind::PayRequest(_) => Command::PayRequest(action),
                Kind::DeclineRequest(_) => Command::DeclineRequest(action),
                _ => Command::CancelRequest(action),
            }
        }
        Kind::CreateSplit(x) => {
            let currency = parse_currency(&f("create_split.currency"), &x.currency)?;
            check_text(
                &f("create_split.note"),
                &x.note,
                0,
                ledger::NOTE_BYTES_MAX,
                Count::Bytes,
            )?;
            for (name, n) in [
                ("participant_ids", x.participant_ids.len()),
                ("values", x.values.len()),
            ] {
                if n > ledger::SPLIT_PARTICIPANTS_MAX {
                    return Err(invalid(format!(
                        "{}: {n} entries, over the limit of {}",
                        format!("commands[{i}].create_split.{name}"),
                        ledger::SPLIT_PARTICIPANTS_MAX
                    )));
                }
            }
            let mode =
                parse_enum::<ledger::SplitMode>(&f("create_split.mode"), "split mode", x.mode)?;
            let values = x
                .values
                .iter()
                .enumerate()
                .map(|(j, v)| {
                    let field = format!("commands[{i}].create_split.values[{j}]");
                    match mode {
                        // Amounts in the currency; basis points and weights are whole numbers.
                        ledger::SplitMode::Exact => parse_amount(&field, v, currency),
                        _ => parse_whole_number(&field, v),
                    }
                })
                .collect::<Result<Vec<_>, _>>()?;
            Command::CreateSplit(ledger::CreateSplit {
                id: parse_id(&f("create_split.id"), &x.id)?,
                payer: parse_id(&f("create_split.payer_account_id"), &x.payer_account_id)?,
                total: parse_amount(&f("create_split.total"), &x.total, currency)?,
                currency,
                participants: x
                    .participant_ids
                    .iter()
                    .enumerate()
                    .map(|(j, p)| {
                        parse_id(
                            &format!("commands[{i}].create_split.participant_ids[{j}]"),
                            p,
                        )
                    })
                    .collect::<Result<_, _>>()?,
                mode,
                values,
                note: x.note.clone(),
                group: x
                    .group_id
                    .as_deref()
                    .map(|g| parse_id(&f("create_split.group_id"), g))
                    .transpose()?,
                expires_in_seconds: x.expires_in_seconds,
            })
        }
        Kind::CreateGroup(g) => {
            check_text(
                &f("create_group.name"),
                &g.name,
                1,
                ledger::GROUP_NAME_BYTES_MAX,
                Count::Bytes,
            )?;
            if g.member_ids.len() > ledger::GROUP_MEMBERS_MAX {
                return Err(invalid(format!(
                    "{}: {} members, over the limit of {}",
                    f("create_group.member_ids"),
                    g.member_ids.len(),
                    ledger::GROUP_MEMBERS_MAX
                )));
            }
            Command::CreateGroup(ledger::CreateGroup {
                id: parse_id(&f("create_group.id"), &g.id)?,
                name: g.name.clone(),
                members: g
                    .member_ids
                    .iter()
                    .enumerate()
                    .map(|(j, m)| {
                        parse_id(&format!("commands[{i}].create_group.member_ids[{j}]"), m)
                    })
                    .collect::<Result<_, _>>()?,
            })
        }
        Kind::DefineCurrency(c) => {
            check_text(
                &f("define_currency.name"),
                &c.name,
                0,
                ledger::CURRENCY_NAME_BYTES_MAX,
                Count::Bytes,
            )?;
            if !ledger::is_in_app_code(&c.code) {
                return Err(invalid(format!(
                    "{}: {:?} is not an in-app currency code (3 ..= 8 upper-case letters, not an \
                     ISO 4217 code)",
                    f("define_currency.code"),
                    c.code
                )));
            }
            Command::DefineCurrency(ledger::DefineCurrency {
                id: parse_id(&f("define_currency.id"), &c.id)?,
                code: c.code.clone(),
                scale: u8::try_from(c.scale)
                    .ok()
                    .filter(|s| *s <= ledger::money::IN_APP_SCALE_MAX)
                    .ok_or_else(|| {
                        invalid(format!(
                            "{}: {} is over the largest scale, {}",
                            f("define_currency.scale"),
                            c.scale,
                            ledger::money::IN_APP_SCALE_MAX
                        ))
                    })?,
                name: c.name.clone(),
            })
        }
        Kind::SetRate(r) => Command::SetRate(ledger::SetRate {
            id: parse_id(&f("set_rate.id"), &r.id)?,
            from: parse_currency(&f("set_rate.from_currency"), &r.from_currency)?,
            to: parse_currency(&f("set_rate.to_currency"), &r.to_currency)?,
            rate: parse_rate(&f("set_rate.rate"), &r.rate)?,
        }),
        Kind::Convert(c) => {
            let currency = parse_currency(&f("convert.currency"), &c.currency)?;
            Command::Convert(ledger::Convert {
                id: parse_id(&f("convert.id"), &c.id)?,
                from: parse_id(&f("convert.from_account_id"), &c.from_account_id)?,
                to: parse_id(&f("convert.to_account_id"), &c.to_account_id)?,
                amount: parse_amount(&f("convert.amount"), &c.amount, currency)?,
                currency: Some(currency),
                expect_rate: c
                    .expect_rate
                    .as_deref()
                    .map(|r| parse_rate(&f("convert.expect_rate"), r))
                    .transpose()?,
            })
        }
        Kind::DefineTier(t) => {
            check_text(
                &f("define_tier.name"),
                &t.name,
                1,
                ledger::TIER_NAME_BYTES_MAX,
                Count::Bytes,
            )?;
            let limits = t.limits.clone().unwrap_or_default();
            // Tier amounts are read in each account's currency: checked against the finest scale
            // here, against the account's when the tier is applied.
            let opt = |name: &str, v: &Option<String>| {
                v.as_deref()
                    .map(|v| {
                        parse_decimal(
                            &format!("commands[{i}].define_tier.limits.{name}"),
                            v,
                            u32::from(ledger::money::IN_APP_SCALE_MAX),
                            &"limit",
                        )
                    })
                    .transpose()
            };
            Command::DefineTier(ledger::DefineTier {
                id: parse_id(&f("define_tier.id"), &t.id)?,
                name: t.name.clone(),
                limits: LimitsSpec {
                    per_transfer_max: opt("per_transfer_max", &limits.per_transfer_max)?,
                    daily_outflow_max: opt("daily_outflow_max", &limits.daily_outflow_max)?,
                    daily_outflow_count_max: limits.daily_outflow_count_max,
                    balance_max: opt("balance_max", &limits.balance_max)?,
                },
            })
        }
        Kind::SetAccountTier(t) => {
            check_text(
                &f("set_account_tier.tier"),
                &t.tier,
                1,
                ledger::TIER_NAME_BYTES_MAX,
                Count::Bytes,
            )?;
            Command::SetAccountTier(ledger::SetAccountTier {
                id: parse_id(&f("set_account_tier.id"), &t.id)?,
                account: parse_id(&f("set_account_tier.account_id"), &t.account_id)?,
                tier: t.tier.clone(),
            })
        }
        Kind::SetSetting(x) => {
            for (name, v) in [("key", &x.key), ("value", &x.value)] {
                check_text(
                    &format!("commands[{i}].set_setting.{name}"),
                    v,
                    1,
                    SETTING_TEXT_BYTES_MAX,
                    Count::Bytes,
                )?;
            }
            Command::SetSetting(ledger::SetSetting {
                id: parse_id(&f("set_setting.id"), &x.id)?,
                key: x.key.clone(),
                value: x.value.clone(),
            })
        }
        Kind::SettleGroup(g) => Command::SettleGroup(ledger::SettleGroup {
            id: parse_id(&f("settle_group.id"), &g.id)?,
            group: parse_id(&f("settle_group.group_id"), &g.group_id)?,
        }),
        Kind::PaySplit(p) => Command::PaySplit(ledger::PaySplit {
            id: parse_id(&f("pay_split.id"), &p.id)?,
            split: parse_id(&f("pay_split.split_id"), &p.split_id)?,
            participant: parse_id(
                &f("pay_split.participant_account_id"),
                &p.participant_account_id,
            )?,
        }),
        Kind::CancelSplit(c) => Command::CancelSplit(ledger::CancelSplit {
            id: parse_id(&f("cancel_split.id"), &c.id)?,
            split: parse_id(&f("cancel_split.split_id"), &c.split_id)?,
        }),
        Kind::CreateRedpacket(r) => {
            let currency = parse_currency(&f("create_redpacket.currency"), &r.currency)?;
            Command::CreateRedPacket(ledger::CreateRedPacket {
                id: parse_id(&f("create_redpacket.id"), &r.id)?,
                sender: parse_id(
                    &f("create_redpacket.sender_account_id"),
                    &r.sender_account_id,
                )?,
                total: parse_amount(&f("create_redpacket.total"), &r.total, currency)?,
                currency: Some(currency),
                count: r.count,
                random: r.random,
                expires_in_seconds: r.expires_in_seconds,
                group: r
                    .group_id
                    .as_deref()
                    .map(|g| parse_id(&f("create_redpacket.group_id"), g))
                    .transpose()?,
            })
        }
        Kind::ClaimRedpacket(c) => Command::ClaimRedPacket(ledger::ClaimRedPacket {
            id: parse_id(&f("claim_redpacket.id"), &c.id)?,
            packet: parse_id(&f("claim_redpacket.packet_id"), &c.packet_id)?,
            wallet: parse_id(&f("claim_redpacket.wallet_id"), &c.wallet_id)?,
        }),
        Kind::CloseOrder(c) => Command::CloseOrder(ledger::CloseOrder {
            id: parse_id(&f("close_order.id"), &c.id)?,
            order: parse_id(&f("close_order.order_id"), &c.order_id)?,
        }),
        Kind::Refund(r) => {
            let currency = parse_currency(&f("refund.currency"), &r.currency)?;
            check_text(
                &f("refund.reason"),
                &r.reason,
                0,
                ledger::REFUND_REASON_BYTES_MAX,
                Count::Bytes,
            )?;
            Command::Refund(ledger::Refund {
                id: parse_id(&f("refund.id"), &r.id)?,
                order: parse_id(&f("refund.order_id"), &r.order_id)?,
                amount: parse_amount(&f("refund.amount"), &r.amount, currency)?,
                currency: Some(currency),
                reason: r.reason.clone(),
            })
        }
        Kind::PayBill(b) => {
            let currency = parse_currency(&f("pay_bill.currency"), &b.currency)?;
            check_text(
                &f("pay_bill.bill_reference"),
                &b.bill_reference,
                1,
                ledger::BILL_REFERENCE_BYTES_MAX,
                Count::Bytes,
            )?;
            Command::PayBill(ledger::PayBill {
                id: parse_id(&f("pay_bill.id"), &b.id)?,
                payer: parse_id(&f("pay_bill.payer_account_id"), &b.payer_account_id)?,
                biller: parse_id(&f("pay_bill.biller_id"), &b.biller_id)?,
                bill_ref: b.bill_reference.clone(),
                amount: parse_amount(&f("pay_bill.amount"), &b.amount, currency)?,
                currency: Some(currency),
            })
        }
        Kind::SetAccountStatus(s) => Command::SetAccountStatus(ledger::SetAccountStatus {
            id: parse_id(&f("set_account_status.id"), &s.id)?,
            account: parse_id(&f("set_account_status.account_id"), &s.account_id)?,
            status: parse_enum::<AccountStatus>(
                &f("set_account_status.status"),
                "account status",
                s.status,
            )?,
        }),
        Kind::RegisterClient(_) | Kind::RevokeClient(_) => {
            return Err(invalid(format!(
                "commands[{i}]: client commands go through the Admin service"
            )))
        }
    })
}

/// How a text limit counts.
#[derive(Clone, Copy)]
pub enum Count {
    Chars,
    Bytes,
}

/// A text field within `min ..= max` characters or bytes, without control characters: checked at
/// the wire so that nothing malformed is proposed (the ledger checks the same at apply time).
pub fn check_text(
    field: impl std::fmt::Display,
    v: &str,
    min: usize,
    max: usize,
    count: Count,
) -> Result<(), Status> {
    let (n, unit) = match count {
        Count::Chars => (v.chars().count(), "characters"),
        Count::Bytes => (v.len(), "bytes"),
    };
    if n < min || n > max {
        return Err(invalid(format!(
            "{field}: {n} {unit}, expected {min} ..= {max}"
        )));
    }
    if v.chars().any(char::is_control) {
        return Err(invalid(format!(
            "{field}: control characters are not allowed"
        )));
    }
    Ok(())
}

/// `commands[i].name`, as an error names a field.
#[derive(Clone, Copy)]
struct FieldName(usize, &'static str);

impl std::fmt::Display for FieldName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "commands[{}].{}", self.0, self.1)
    }
}

/// `commands[i].create_transfer.legs[j].name`, as an error names a leg's field.
#[derive(Clone, Copy)]
struct LegFieldName(usize, usize, &'static str);

impl std::fmt::Display for LegFieldName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "commands[{}].create_transfer.legs[{}].{}",
            self.0, self.1, self.2
        )
    }
}

/// A merchant's profile fields, checked against their EMV rules here (the ledger checks them too).
fn merchant_from_pb(
    f: &dyn Fn(&'static str) -> FieldName,
    m: &pb::CreateMerchant,
) -> Result<ledger::CreateMerchant, Status> {
    let currency = parse_currency(&f("create_merchant.currency"), &m.currency)?;
    let text = |name: &'static str, v: &str, max: usize| {
        let n = v.chars().count();
        if n == 0 || n > max {
            return Err(invalid(format!(
                "{}: {n} characters; 1 ..= {max} allowed",
                f(name)
            )));
        }
        Ok(v.to_string())
    };
    let name = text(
        "create_merchant.name",
        &m.name,
        ledger::MERCHANT_NAME_CHARS_MAX,
    )?;
    let city = text(
        "create_merchant.city",
        &m.city,
        ledger::MERCHANT_CITY_CHARS_MAX,
    )?;
    if m.mcc.len() != 4 || !m.mcc.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(format!(
            "{}: {:?} is not a 4-digit merchant category code",
            f("create_merchant.mcc"),
            m.mcc
        )));
    }
    if m.country.len() != 2 || !m.country.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(invalid(format!(
            "{}: {:?} is not an ISO 3166 alpha-2 code (upper case)",
            f("create_merchant.country"),
            m.country
        )));
    }
    if m.fee_bps > ledger::FEE_BPS_MAX {
        return Err(invalid(format!(
            "{}: {} basis points, over {}",
            f("create_merchant.fee_bps"),
            m.fee_bps,
            ledger::FEE_BPS_MAX
        )));
    }
    Ok(ledger::CreateMerchant {
        id: parse_id(&f("create_merchant.id"), &m.id)?,
        currency: currency.code().to_string(),
        name,
        city,
        mcc: m.mcc.clone(),
        country: m.country.clone(),
        fee_bps: m.fee_bps,
        fee_account: m
            .fee_account_id
            .as_deref()
            .map(|s| parse_id(&f("create_merchant.fee_account_id"), s))
            .transpose()?,
    })
}

/// Converts a whole `Submit` request, all or nothing.
pub fn submit_from_pb(
    req: &pb::SubmitRequest,
    max_commands: usize,
    account_currency: &dyn Fn(Id) -> Option<Currency>,
) -> Result<Vec<Command>, Status> {
    if req.commands.is_empty() {
        return Err(invalid(
            "empty batch: at least one command is required".into(),
        ));
    }
    if req.commands.len() > max_commands {
        return Err(invalid(format!(
            "batch of {} commands exceeds the limit of {max_commands}",
            req.commands.len()
        )));
    }
    let mut out = Vec::with_capacity(req.commands.len());
    for (i, c) in req.commands.iter().enumerate() {
        out.push(command_from_pb(i, c, account_currency)?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ledger::ClientRole;

    fn cny() -> Currency {
        Currency::from_code("CNY").unwrap()
    }

    #[test]
    fn amounts_are_strict() {
        let ok = |s: &str| parse_amount("a", s, cny()).map(|d| d.to_string());
        assert_eq!(ok("12.34").unwrap(), "12.34");
        assert_eq!(ok("12.300").unwrap(), "12.3");
        assert_eq!(ok("0012").unwrap(), "12");
        assert_eq!(ok("0").unwrap(), "0");
        assert_eq!(ok("0.00").unwrap(), "0");
        assert!(ok(&"9".repeat(28)).is_ok());
        let (nines, forty) = ("9".repeat(29), "1".repeat(40));
        for bad in [
            "",
            "1e5",
            "NaN",
            "+1",
            " 1",
            "1 ",
            "-1",
            "-0",
            "12.345",
            "1.",
            ".5",
            "1..2",
            "0x10",
            "１",
            nines.as_str(),
            forty.as_str(),
            "inf",
        ] {
            let e = ok(bad).unwrap_err();
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{bad:?}");
        }
        assert!(parse_amount("a", "1.5", Currency::from_code("JPY").unwrap()).is_err());
        assert!(parse_amount("a", "1.234", Currency::from_code("KWD").unwrap()).is_ok());
    }

    #[test]
    fn ids_are_strict() {
        assert!(parse_id("id", "0190a0b8-7c1e-7d2a-9f00-0123456789ab").is_ok());
        assert!(parse_id("id", "0190A0B8-7C1E-7D2A-9F00-0123456789AB").is_ok());
        for bad in [
            "",
            "0190a0b87c1e7d2a9f000123456789ab",
            "0190a0b8-7c1e-7d2a-9f00-0123456789a",
            "00000000-0000-0000-0000-000000000000",
            "0190a0b8-7c1e-7d2a-9f00-0123456789ag",
            "{0190a0b8-7c1e-7d2a-9f00-0123456789ab}",
            "0190a0b8_7c1e-7d2a-9f00-0123456789ab",
        ] {
            assert_eq!(
                parse_id("id", bad).unwrap_err().code(),
                tonic::Code::InvalidArgument,
                "{bad:?}"
            );
        }
    }

    fn id(n: u128) -> Id {
        Id(n)
    }

    fn transfer_with_legs(n: usize) -> pb::SubmitRequest {
        let leg = crate::client::cmd::leg(id(1), id(2), "1.00", "CNY");
        let mut cmd = crate::client::cmd::transfer(id(3), id(1), id(2), "1.00", "CNY");
        if let Some(pb::command::Kind::CreateTransfer(t)) = cmd.kind.as_mut() {
            t.legs = vec![leg; n];
        }
        pb::SubmitRequest {
            commands: vec![cmd],
        }
    }

    /// What the ledger's codec would refuse after commit is refused before proposing.
    #[test]
    fn structural_limits_are_checked_at_the_wire() {
        let none = |_: Id| None;
        // Over LEGS_MAX but within the codec's limit: the ledger answers too_many_legs.
        assert!(submit_from_pb(&transfer_with_legs(TRANSFER_LEGS_MAX), 10, &none).is_ok());
        let e = submit_from_pb(&transfer_with_legs(TRANSFER_LEGS_MAX + 1), 10, &none).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("legs"), "{}", e.message());

        let mut a = pb::CreateAccount {
            id: id(9).to_string(),
            currency: "CNY".into(),
            kind: pb::AccountKind::Wallet as i32,
            ..Default::default()
        };
        for i in 0..=METADATA_ENTRIES_MAX {
            a.metadata.insert(format!("k{i}"), "v".into());
        }
        let req = pb::SubmitRequest {
            commands: vec![crate::client::cmd::create_account_with(a.clone())],
        };
        let e = submit_from_pb(&req, 10, &none).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        a.metadata.remove("k0");
        let req = pb::SubmitRequest {
            commands: vec![crate::client::cmd::create_account_with(a)],
        };
        let cmds = submit_from_pb(&req, 10, &none).unwrap();
        // Accepted input always survives the ledger's codec.
        let bytes = ledger::codec::encode_commands(&cmds);
        assert_eq!(ledger::codec::decode_commands(&bytes).unwrap(), cmds);
    }

    /// The declared currency travels into the ledger command, for the ledger to check on every
    /// replica (the leader's view may not know the accounts yet).
    #[test]
    fn declared_currencies_are_carried_into_commands() {
        let jpy = Currency::from_code("JPY");
        let req = pb::SubmitRequest {
            commands: vec![
                crate::client::cmd::transfer(id(3), id(1), id(2), "100", "JPY"),
                crate::client::cmd::post_pending(id(4), id(3), Some(("5", "JPY"))),
            ],
        };
        let cmds = submit_from_pb(&req, 10, &|_| None).unwrap();
        match &cmds[0] {
            Command::CreateTransfer(t) => assert_eq!(t.legs[0].currency, jpy),
            c => panic!("{c:?}"),
        }
        match &cmds[1] {
            Command::PostPending(p) => assert_eq!(p.currency, jpy),
            c => panic!("{c:?}"),
        }
        // And back out in watch events.
        let back = command_to_pb(&cmds[1], &|_| None);
        match back.kind {
            Some(pb::command::Kind::PostPending(p)) => assert_eq!(p.currency, "JPY"),
            k => panic!("{k:?}"),
        }
    }

    /// The ledger's enum tables and the proto enums agree value by value.
    #[test]
    fn proto_enums_match_the_ledger_tables() {
        fn check<E: StableEnum + std::fmt::Debug>(
            prefix: &str,
            pb_name: impl Fn(i32) -> Option<&'static str>,
        ) {
            for v in E::ALL {
                let n = enum_to_pb(*v);
                let name = match v.name() {
                    "finance" => "finance_read".to_string(),
                    other => other.to_string(),
                };
                assert_eq!(
                    pb_name(n),
                    Some(format!("{prefix}_{}", name.to_ascii_uppercase())).as_deref(),
                    "{v:?}"
                );
                assert_eq!(enum_from_pb::<E>(n), Some(*v));
            }
            assert_eq!(enum_from_pb::<E>(0), None, "UNSPECIFIED is no value");
            assert_eq!(enum_name_pb::<E>(E::ALL.len() as i32 + 1), "unknown");
        }
        check::<AccountKind>("ACCOUNT_KIND", |n| {
            pb::AccountKind::try_from(n).ok().map(|e| e.as_str_name())
        });
        check::<AccountStatus>("ACCOUNT_STATUS", |n| {
            pb::AccountStatus::try_from(n).ok().map(|e| e.as_str_name())
        });
        check::<ClientRole>("CLIENT_ROLE", |n| {
            pb::ClientRole::try_from(n).ok().map(|e| e.as_str_name())
        });
        check::<ledger::TransferState>("TRANSFER_STATE", |n| {
            pb::TransferState::try_from(n).ok().map(|e| e.as_str_name())
        });
        check::<ledger::PostingKind>("POSTING_KIND", |n| {
            pb::PostingKind::try_from(n).ok().map(|e| e.as_str_name())
        });
        check::<ledger::OrderKind>("ORDER_KIND", |n| {
            pb::OrderKind::try_from(n).ok().map(|e| e.as_str_name())
        });
        check::<ledger::OrderState>("ORDER_STATE", |n| {
            pb::OrderState::try_from(n).ok().map(|e| e.as_str_name())
        });
        check::<ledger::SplitMode>("SPLIT_MODE", |n| {
            pb::SplitMode::try_from(n).ok().map(|e| e.as_str_name())
        });
        check::<ledger::RequestState>("REQUEST_STATE", |n| {
            pb::RequestState::try_from(n).ok().map(|e| e.as_str_name())
        });
        check::<ledger::NormalSide>("NORMAL_SIDE", |n| {
            pb::NormalSide::try_from(n).ok().map(|e| e.as_str_name())
        });
    }

    #[test]
    fn proto_result_codes_match_the_ledger() {
        for code in ResultCode::ALL {
            let pbc = pb::ResultCode::try_from(*code as u16 as i32)
                .expect("every ledger code is in the proto enum");
            let expected = format!("RESULT_CODE_{}", code.name().to_ascii_uppercase());
            assert_eq!(pbc.as_str_name(), expected);
        }
    }
}
