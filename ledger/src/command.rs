//! Commands (the ledger's input), batches, and results (its output).
//!
//! Commands carry client-supplied values as received (decimal amounts, strings); validation happens at
//! apply time so that every replica reaches the same verdict and the verdict is recorded under the
//! command's id for ever.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::money::Currency;
use crate::types::{AccountKind, AccountStatus, ClientRole, Id};

/// Most legs one transfer may carry (more is the result `too_many_legs`).
pub const LEGS_MAX: usize = 64;
/// Most legs the codec decodes in one transfer command: beyond this a command is malformed, not a
/// business failure. The API refuses such input before proposing it (it asserts its own limit is
/// no larger at compile time).
pub const LEGS_ENCODED_MAX: usize = LEGS_MAX * 4;
/// Most commands in one batch, that is in one Raft entry (the consensus layer packs client batches
/// into an entry up to this many commands, and the ledger refuses a larger entry).
pub const BATCH_COMMANDS_MAX: usize = 65_536;
/// Longest external reference, in bytes.
pub const REFERENCE_BYTES_MAX: usize = 64;
/// Most metadata entries on an account, and the longest key and value, in bytes.
pub const METADATA_ENTRIES_MAX: usize = 16;
pub const METADATA_KEY_BYTES_MAX: usize = 32;
pub const METADATA_VALUE_BYTES_MAX: usize = 128;
/// Most metadata entries the codec decodes in one command (more is malformed, see
/// [`LEGS_ENCODED_MAX`]); up to it, more than [`METADATA_ENTRIES_MAX`] is `metadata_too_large`.
pub const METADATA_ENTRIES_ENCODED_MAX: usize = METADATA_ENTRIES_MAX * 4;
/// Merchant profile limits (the EMV QR fields they fill: 59 name, 60 city, 52 MCC, 58 country).
pub const MERCHANT_NAME_CHARS_MAX: usize = 25;
pub const MERCHANT_CITY_CHARS_MAX: usize = 15;
/// Largest merchant fee, in basis points (100 %).
pub const FEE_BPS_MAX: u32 = 10_000;
/// A QR order's merchant order number (EMV tag 62 sub-tag 05): 1 ..= 25 characters, no control
/// characters.
pub const ORDER_REFERENCE_CHARS_MAX: usize = 25;
/// How long an unpaid QR order stays payable by default (2 h), and at most (7 days).
pub const ORDER_EXPIRES_DEFAULT_SECONDS: u64 = 2 * 3600;
pub const ORDER_EXPIRES_MAX_SECONDS: u64 = 7 * 24 * 3600;
/// A bill reference: 1 ..= 64 bytes, no control characters.
pub const BILL_REFERENCE_BYTES_MAX: usize = 64;
/// A refund's free-text reason, in bytes.
pub const REFUND_REASON_BYTES_MAX: usize = 128;
/// Longest QR payload a payment may carry (the EMV limit).
pub const QR_PAYLOAD_CHARS_MAX: usize = crate::emv::PAYLOAD_CHARS_MAX;
/// A wallet's payment-code limit when its binding names none: 2 000 in the wallet's currency.
pub const PAYCODE_MAX_DEFAULT: u64 = 2_000;
/// How long a withdrawal waits for the bank by default: 3 days.
pub const WITHDRAWAL_EXPIRES_DEFAULT_SECONDS: u64 = 3 * 24 * 3600;
/// Most slots in a red packet.
pub const REDPACKET_SLOTS_MAX: u32 = 1_000;
/// How long a red packet stays claimable by default: 24 h.
pub const REDPACKET_EXPIRES_DEFAULT_SECONDS: u64 = 24 * 3600;
/// Most members of a group, and most open splits it tracks.
pub const GROUP_MEMBERS_MAX: usize = 100;
pub const GROUP_OPEN_SPLITS_MAX: usize = 1_000;
/// Longest group name, in bytes.
pub const GROUP_NAME_BYTES_MAX: usize = 64;
/// Most participants in a split.
pub const SPLIT_PARTICIPANTS_MAX: usize = 100;
/// Largest weight in `shares` mode (so total × weight fits the arithmetic).
pub const SPLIT_WEIGHT_MAX: u32 = 1_000_000;
/// A chat transfer or payment request note, in bytes.
pub const NOTE_BYTES_MAX: usize = 64;
/// How long a chat transfer waits for its payee when `--accept-within` names no time: 24 h.
pub const ACCEPT_WITHIN_DEFAULT_SECONDS: u64 = 24 * 3600;
/// How long a payment request stays open by default: 24 h.
pub const REQUEST_EXPIRES_DEFAULT_SECONDS: u64 = 24 * 3600;
/// Longest in-app currency display name, in bytes.
pub const CURRENCY_NAME_BYTES_MAX: usize = 64;
/// Most in-app currencies, exchange rates and tiers the ledger keeps (each is a small record kept
/// in memory).
pub const CURRENCIES_MAX: usize = 256;
pub const RATES_MAX: usize = 1_024;
pub const TIERS_MAX: usize = 256;
/// A tier name: 1 ..= 32 bytes of `[a-z0-9_-]`.
pub const TIER_NAME_BYTES_MAX: usize = 32;
/// Largest scale of an exchange rate (fractional digits).
pub const RATE_SCALE_MAX: u32 = 18;
/// Longest pending-transfer timeout: 30 days.
pub const PENDING_TIMEOUT_SECONDS_MAX: u64 = 30 * 24 * 3600;

/// Optional per-account limits, in major units of the account currency as the client sent them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LimitsSpec {
    pub per_transfer_max: Option<Decimal>,
    pub daily_outflow_max: Option<Decimal>,
    pub daily_outflow_count_max: Option<u32>,
    pub balance_max: Option<Decimal>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateAccount {
    /// The account id; it is also the command's idempotency id.
    pub id: Id,
    /// ISO 4217 alphabetic code, validated at apply time.
    pub currency: String,
    pub kind: AccountKind,
    /// Reject a debit that would make debits exceed credits (plus overdraft). Always on for wallets.
    pub debits_must_not_exceed_credits: bool,
    /// Reject a credit that would make credits exceed debits (asset accounts such as the bank account).
    pub credits_must_not_exceed_debits: bool,
    pub overdraft: Option<Decimal>,
    pub limits: LimitsSpec,
    pub reference: String,
    pub metadata: BTreeMap<String, String>,
    /// `None`: debit for a system account whose credits must not exceed its debits (an asset),
    /// credit otherwise.
    pub normal_side: Option<crate::types::NormalSide>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegSpec {
    pub debit: Id,
    pub credit: Id,
    pub amount: Decimal,
    /// The currency the client declared for `amount`. Checked at apply time against both accounts
    /// (`currency_mismatch`), so an amount is never read in another currency's unit. `None` only in
    /// commands logged before the field existed.
    pub currency: Option<Currency>,
}

impl CreateAccount {
    /// An account with no balance constraint beyond its kind's, default limits, no overdraft,
    /// reference or metadata (tests, benches, tools).
    pub fn basic(id: Id, currency: &str, kind: AccountKind) -> CreateAccount {
        CreateAccount {
            id,
            currency: currency.to_string(),
            kind,
            debits_must_not_exceed_credits: false,
            credits_must_not_exceed_debits: false,
            overdraft: None,
            limits: LimitsSpec::default(),
            reference: String::new(),
            metadata: BTreeMap::new(),
            normal_side: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateTransfer {
    /// The transfer id; it is also the command's idempotency id.
    pub id: Id,
    pub legs: Vec<LegSpec>,
    /// `Some(seconds)` makes this a two-phase pending transfer that expires after `seconds` of log time.
    pub pending_timeout_seconds: Option<u64>,
    pub reference: String,
}

impl CreateTransfer {
    /// One leg of `amount` (in the accounts' currency) from `debit` to `credit`; a hold when
    /// `pending_timeout_seconds` is set. No reference.
    pub fn single(
        id: Id,
        debit: Id,
        credit: Id,
        amount: Decimal,
        pending_timeout_seconds: Option<u64>,
    ) -> CreateTransfer {
        CreateTransfer {
            id,
            legs: vec![LegSpec {
                debit,
                credit,
                amount,
                currency: None,
            }],
            pending_timeout_seconds,
            reference: String::new(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostPending {
    pub id: Id,
    pub pending_id: Id,
    /// `None` posts the full amount; a smaller amount posts partially (single-leg pendings only) and
    /// releases the rest.
    pub amount: Option<Decimal>,
    /// The currency the client declared for `amount`; must be the hold's (`currency_mismatch`).
    pub currency: Option<Currency>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VoidPending {
    pub id: Id,
    pub pending_id: Id,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetAccountStatus {
    pub id: Id,
    pub account: Id,
    pub status: AccountStatus,
}

/// Creates a merchant: a merchant account (debits never exceed credits) and its profile, which the
/// QR flows print into payloads and the payment flows read for the fee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateMerchant {
    /// The merchant account's id; it is also the command's idempotency id.
    pub id: Id,
    pub currency: String,
    /// 1 ..= 25 characters.
    pub name: String,
    /// 1 ..= 15 characters.
    pub city: String,
    /// Merchant category code: 4 digits.
    pub mcc: String,
    /// ISO 3166 alpha-2, upper case.
    pub country: String,
    /// Fee on each payment, in basis points of the amount (0 ..= 10 000).
    pub fee_bps: u32,
    /// Where fees go (an account in the merchant's currency); required when `fee_bps > 0`.
    pub fee_account: Option<Id>,
}

/// Creates a dynamic QR order: `amount` (in the merchant's currency) payable once, until it is paid,
/// closed or expires.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateOrder {
    /// The order id; it is also the command's idempotency id.
    pub id: Id,
    pub merchant: Id,
    pub amount: Decimal,
    /// The currency the client declared for `amount`; must be the merchant's.
    pub currency: Option<Currency>,
    /// The merchant's order number, unique among the merchant's unpaid orders.
    pub reference: String,
    /// `None`: [`ORDER_EXPIRES_DEFAULT_SECONDS`]; else 1 ..= [`ORDER_EXPIRES_MAX_SECONDS`].
    pub expires_in_seconds: Option<u64>,
}

/// Pays a merchant-presented QR code: a dynamic order's payload (the amount is the order's) or a
/// merchant's static payload (the amount is required).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayQr {
    /// The payment id; it is also the command's idempotency id, and the order id of a static-code
    /// payment.
    pub id: Id,
    pub payer: Id,
    /// The EMV payload as scanned, ≤ [`QR_PAYLOAD_CHARS_MAX`] characters.
    pub qr: String,
    pub amount: Option<Decimal>,
    pub currency: Option<Currency>,
}

/// Closes an unpaid order (`unpaid → closed`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseOrder {
    pub id: Id,
    pub order: Id,
}

/// Refunds part or all of a paid order to its payer (`out_refund_no` = `id`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refund {
    pub id: Id,
    pub order: Id,
    pub amount: Decimal,
    pub currency: Option<Currency>,
    /// ≤ [`REFUND_REASON_BYTES_MAX`] bytes.
    pub reason: String,
}

/// Pays a bill: a (biller, bill reference) pair is paid at most once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayBill {
    /// The payment id; also the order id of the payment.
    pub id: Id,
    pub payer: Id,
    pub biller: Id,
    pub bill_ref: String,
    pub amount: Decimal,
    pub currency: Option<Currency>,
}

/// Binds a wallet's device key for payment codes (replacing any key bound before: codes made with
/// the old key stop working).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BindPaycode {
    pub id: Id,
    pub wallet: Id,
    pub public_key: [u8; 32],
    /// Largest payment one code may make, in the wallet's currency; `None`:
    /// [`PAYCODE_MAX_DEFAULT`].
    pub paycode_max: Option<Decimal>,
}

/// Revokes a wallet's payment-code key (a lost phone): its codes are refused from now on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokePaycode {
    pub id: Id,
    pub wallet: Id,
}

/// A merchant charges a customer-presented payment code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayCode {
    /// The payment id; also the order id of the payment.
    pub id: Id,
    pub merchant: Id,
    /// The decoded code (see [`crate::paycode`]).
    pub token: crate::paycode::Token,
    pub amount: Decimal,
    pub currency: Option<Currency>,
}

/// Cash-in: the custodial bank account (an asset account: credits never exceed debits) pays the
/// wallet. Dr bank, Cr wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topup {
    pub id: Id,
    pub wallet: Id,
    pub bank: Id,
    pub amount: Decimal,
    pub currency: Option<Currency>,
}

/// Cash-out: holds `amount` (plus the fee) on the wallet as a pending transfer to the bank account
/// until the bank confirms ([`CompleteWithdrawal`]) or refuses ([`FailWithdrawal`]); unconfirmed,
/// it expires back to the wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Withdraw {
    pub id: Id,
    pub wallet: Id,
    pub bank: Id,
    pub amount: Decimal,
    pub currency: Option<Currency>,
    /// Fee on top of the amount, in basis points (0 ..= 10 000), paid into `fee_account`.
    pub fee_bps: u32,
    pub fee_account: Option<Id>,
    /// `None`: [`WITHDRAWAL_EXPIRES_DEFAULT_SECONDS`]; at most [`PENDING_TIMEOUT_SECONDS_MAX`].
    pub expires_in_seconds: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompleteWithdrawal {
    pub id: Id,
    pub withdrawal: Id,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailWithdrawal {
    pub id: Id,
    pub withdrawal: Id,
}

/// A transfer between wallets (WeChat's chat transfer). With `accept_within_seconds` the money is
/// held until the payee receives it ([`ReceiveTransfer`]) or the sender takes it back
/// ([`ReturnTransfer`]); unaccepted by then it returns to the sender. Without, it moves at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Send {
    pub id: Id,
    pub from: Id,
    pub to: Id,
    pub amount: Decimal,
    pub currency: Option<Currency>,
    /// ≤ [`NOTE_BYTES_MAX`] bytes.
    pub note: String,
    /// 1 ..= [`PENDING_TIMEOUT_SECONDS_MAX`].
    pub accept_within_seconds: Option<u64>,
    /// Fee charged to the sender on top, into `fee_account`.
    pub fee_bps: u32,
    pub fee_account: Option<Id>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceiveTransfer {
    pub id: Id,
    pub transfer: Id,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReturnTransfer {
    pub id: Id,
    pub transfer: Id,
}

/// A payment request (collect): the payee asks the payer for `amount`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRequest {
    pub id: Id,
    pub payee: Id,
    pub payer: Id,
    pub amount: Decimal,
    pub currency: Option<Currency>,
    pub note: String,
    /// `None`: [`REQUEST_EXPIRES_DEFAULT_SECONDS`]; at most [`PENDING_TIMEOUT_SECONDS_MAX`].
    pub expires_in_seconds: Option<u64>,
}

/// Acting on a payment request: the payer pays or declines it, the payee cancels it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestAction {
    pub id: Id,
    pub request: Id,
}

/// Splits a bill the payer paid among participants (or, mode `each`, asks every participant for
/// the same amount: AA collection). Each participant's share is an item the participant pays to the
/// payer; the payer's own share is settled at creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateSplit {
    pub id: Id,
    pub payer: Id,
    /// The bill (modes other than `each`), or the amount asked of each participant (`each`).
    pub total: Decimal,
    pub currency: Currency,
    pub participants: Vec<Id>,
    pub mode: crate::types::SplitMode,
    /// `exact`: amounts; `percent`: basis points; `shares`: weights; empty otherwise.
    pub values: Vec<Decimal>,
    pub note: String,
    /// The group the split belongs to (its payer and participants must be members); group splits
    /// can be settled together with `SettleGroup`.
    pub group: Option<Id>,
    /// `Some(s)`: items still pending `s` seconds after creation are cancelled and the split
    /// expires (at most [`PENDING_TIMEOUT_SECONDS_MAX`]); `None`: open until paid or cancelled.
    pub expires_in_seconds: Option<u64>,
}

/// A group of wallets whose splits are settled together (netted).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateGroup {
    pub id: Id,
    /// 1 ..= 64 bytes.
    pub name: String,
    /// 2 ..= [`GROUP_MEMBERS_MAX`] distinct accounts.
    pub members: Vec<Id>,
}

/// Settles every pending item of the group's open splits at once, netted: per currency, at most
/// (members − 1) transfers, all or nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SettleGroup {
    pub id: Id,
    pub group: Id,
}

/// A participant pays its share of a split to the payer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaySplit {
    pub id: Id,
    pub split: Id,
    pub participant: Id,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CancelSplit {
    pub id: Id,
    pub split: Id,
}

/// A red packet: the sender's `total` moves into escrow and is cut into `count` slots at creation
/// (see [`crate::redpacket`]); the k-th claim takes slot k; at expiry the rest returns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreateRedPacket {
    pub id: Id,
    pub sender: Id,
    pub total: Decimal,
    pub currency: Option<Currency>,
    /// 1 ..= [`REDPACKET_SLOTS_MAX`], at most one slot per minor unit.
    pub count: u32,
    /// `random` (double average) or fixed (equal) slots.
    pub random: bool,
    /// `None`: [`REDPACKET_EXPIRES_DEFAULT_SECONDS`]; at most [`PENDING_TIMEOUT_SECONDS_MAX`].
    pub expires_in_seconds: Option<u64>,
    /// Only members of this group may claim (the sender must be one).
    pub group: Option<Id>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimRedPacket {
    pub id: Id,
    pub packet: Id,
    pub wallet: Id,
}

/// Registers (or re-registers with a new role) an API client's Ed25519 public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegisterClient {
    pub id: Id,
    pub public_key: [u8; 32],
    pub role: ClientRole,
    pub name: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RevokeClient {
    pub id: Id,
    pub public_key: [u8; 32],
}

/// Defines an in-app currency (points, coins) accounts can then hold. Operator command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefineCurrency {
    pub id: Id,
    /// 3–8 upper-case letters, not an ISO 4217 code.
    pub code: String,
    /// Fractional digits of the minor unit, 0 ..= 8.
    pub scale: u8,
    pub name: String,
}

/// Sets the rate at which `from` converts to `to`: one major unit of `from` buys `rate` major units
/// of `to`. Replaces the previous rate for the pair. Operator command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetRate {
    pub id: Id,
    pub from: Currency,
    pub to: Currency,
    pub rate: Decimal,
}

/// Converts `amount` (in the `from` wallet's currency) at the current rate into the `to` wallet's
/// currency, the target amount rounded down to its minor unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Convert {
    pub id: Id,
    pub from: Id,
    pub to: Id,
    pub amount: Decimal,
    /// The currency the client declared for `amount` (checked against the `from` wallet's).
    pub currency: Option<Currency>,
    /// The rate the client was quoted: if the current rate differs, `rate_changed` and nothing moves.
    pub expect_rate: Option<Decimal>,
}

/// Defines a KYC tier: a named set of limits wallets can be put on. Tiers are immutable once
/// defined (raise a wallet by moving it to another tier). Operator command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DefineTier {
    pub id: Id,
    pub name: String,
    /// In major units of the account the tier is applied to.
    pub limits: LimitsSpec,
}

/// Puts an account on a tier: its limits become the tier's from the next command on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetAccountTier {
    pub id: Id,
    pub account: Id,
    pub tier: String,
}

/// Changes a replicated ledger setting. Keys: `business-utc-offset` (`±HH:MM`, the time zone whose
/// midnight starts the limit day). Operator command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SetSetting {
    pub id: Id,
    pub key: String,
    pub value: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    CreateAccount(CreateAccount),
    CreateTransfer(CreateTransfer),
    PostPending(PostPending),
    VoidPending(VoidPending),
    SetAccountStatus(SetAccountStatus),
    RegisterClient(RegisterClient),
    RevokeClient(RevokeClient),
    CreateMerchant(CreateMerchant),
    CreateOrder(CreateOrder),
    PayQr(PayQr),
    CloseOrder(CloseOrder),
    Refund(Refund),
    PayBill(PayBill),
    BindPaycode(BindPaycode),
    RevokePaycode(RevokePaycode),
    PayCode(PayCode),
    Topup(Topup),
    Withdraw(Withdraw),
    CompleteWithdrawal(CompleteWithdrawal),
    FailWithdrawal(FailWithdrawal),
    Send(Send),
    ReceiveTransfer(ReceiveTransfer),
    ReturnTransfer(ReturnTransfer),
    CreateRequest(CreateRequest),
    PayRequest(RequestAction),
    DeclineRequest(RequestAction),
    CancelRequest(RequestAction),
    CreateSplit(CreateSplit),
    PaySplit(PaySplit),
    CancelSplit(CancelSplit),
    CreateRedPacket(CreateRedPacket),
    ClaimRedPacket(ClaimRedPacket),
    CreateGroup(CreateGroup),
    SettleGroup(SettleGroup),
    DefineCurrency(DefineCurrency),
    SetRate(SetRate),
    Convert(Convert),
    DefineTier(DefineTier),
    SetAccountTier(SetAccountTier),
    SetSetting(SetSetting),
}

impl Command {
    /// The command's kind in snake case (as named in the protobuf contract), for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Command::CreateAccount(_) => "create_account",
            Command::CreateTransfer(_) => "create_transfer",
            Command::PostPending(_) => "post_pending",
            Command::VoidPending(_) => "void_pending",
            Command::SetAccountStatus(_) => "set_account_status",
            Command::RegisterClient(_) => "register_client",
            Command::RevokeClient(_) => "revoke_client",
            Command::CreateMerchant(_) => "create_merchant",
            Command::CreateOrder(_) => "create_order",
            Command::PayQr(_) => "pay_qr",
            Command::CloseOrder(_) => "close_order",
            Command::Refund(_) => "refund",
            Command::PayBill(_) => "pay_bill",
            Command::BindPaycode(_) => "bind_paycode",
            Command::RevokePaycode(_) => "revoke_paycode",
            Command::PayCode(_) => "pay_code",
            Command::Topup(_) => "topup",
            Command::Withdraw(_) => "withdraw",
            Command::CompleteWithdrawal(_) => "complete_withdrawal",
            Command::FailWithdrawal(_) => "fail_withdrawal",
            Command::Send(_) => "send",
            Command::ReceiveTransfer(_) => "receive_transfer",
            Command::ReturnTransfer(_) => "return_transfer",
            Command::CreateRequest(_) => "create_request",
            Command::PayRequest(_) => "pay_request",
            Command::DeclineRequest(_) => "decline_request",
            Command::CancelRequest(_) => "cancel_request",
            Command::CreateSplit(_) => "create_split",
            Command::PaySplit(_) => "pay_split",
            Command::CancelSplit(_) => "cancel_split",
            Command::CreateRedPacket(_) => "create_red_packet",
            Command::ClaimRedPacket(_) => "claim_red_packet",
            Command::CreateGroup(_) => "create_group",
            Command::SettleGroup(_) => "settle_group",
            Command::DefineCurrency(_) => "define_currency",
            Command::SetRate(_) => "set_rate",
            Command::Convert(_) => "convert",
            Command::DefineTier(_) => "define_tier",
            Command::SetAccountTier(_) => "set_account_tier",
            Command::SetSetting(_) => "set_setting",
        }
    }

    /// The client-chosen idempotency id.
    pub fn id(&self) -> Id {
        match self {
            Command::CreateAccount(c) => c.id,
            Command::CreateTransfer(c) => c.id,
            Command::PostPending(c) => c.id,
            Command::VoidPending(c) => c.id,
            Command::SetAccountStatus(c) => c.id,
            Command::RegisterClient(c) => c.id,
            Command::RevokeClient(c) => c.id,
            Command::CreateMerchant(c) => c.id,
            Command::CreateOrder(c) => c.id,
            Command::PayQr(c) => c.id,
            Command::CloseOrder(c) => c.id,
            Command::Refund(c) => c.id,
            Command::PayBill(c) => c.id,
            Command::BindPaycode(c) => c.id,
            Command::RevokePaycode(c) => c.id,
            Command::PayCode(c) => c.id,
            Command::Topup(c) => c.id,
            Command::Withdraw(c) => c.id,
            Command::CompleteWithdrawal(c) => c.id,
            Command::FailWithdrawal(c) => c.id,
            Command::Send(c) => c.id,
            Command::ReceiveTransfer(c) => c.id,
            Command::ReturnTransfer(c) => c.id,
            Command::CreateRequest(c) => c.id,
            Command::PayRequest(c) | Command::DeclineRequest(c) | Command::CancelRequest(c) => c.id,
            Command::CreateSplit(c) => c.id,
            Command::PaySplit(c) => c.id,
            Command::CancelSplit(c) => c.id,
            Command::CreateRedPacket(c) => c.id,
            Command::ClaimRedPacket(c) => c.id,
            Command::CreateGroup(c) => c.id,
            Command::SettleGroup(c) => c.id,
            Command::DefineCurrency(c) => c.id,
            Command::SetRate(c) => c.id,
            Command::Convert(c) => c.id,
            Command::DefineTier(c) => c.id,
            Command::SetAccountTier(c) => c.id,
            Command::SetSetting(c) => c.id,
        }
    }
}

/// A batch as committed in the log: the leader's timestamp and seed, and the commands in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Leader wall-clock time in nanoseconds since the Unix epoch. The ledger makes it strictly
    /// increasing itself (see `Ledger::apply`), so a leader with a clock behind its predecessor's is
    /// harmless.
    pub timestamp_ns: u64,
    /// Randomness for commands that need it (red packets), chosen by the leader.
    pub seed: u64,
    pub commands: Vec<Command>,
}
