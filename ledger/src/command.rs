//! Commands (the ledger's input), batches, and results (its output).
//!
//! Commands carry client-supplied values as received (decimal amounts, strings); validation happens at
//! apply time so that every replica reaches the same verdict and the verdict is recorded under the
//! command's id for ever.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::types::{AccountKind, AccountStatus, ClientRole, Id};

/// Most legs one transfer may carry.
pub const LEGS_MAX: usize = 64;
/// Most commands in one batch (one Raft entry may group several client batches up to this).
pub const BATCH_COMMANDS_MAX: usize = 65_536;
/// Longest external reference, in bytes.
pub const REFERENCE_BYTES_MAX: usize = 64;
/// Most metadata entries on an account, and the longest key and value, in bytes.
pub const METADATA_ENTRIES_MAX: usize = 16;
pub const METADATA_KEY_BYTES_MAX: usize = 32;
pub const METADATA_VALUE_BYTES_MAX: usize = 128;
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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LegSpec {
    pub debit: Id,
    pub credit: Id,
    pub amount: Decimal,
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PostPending {
    pub id: Id,
    pub pending_id: Id,
    /// `None` posts the full amount; a smaller amount posts partially (single-leg pendings only) and
    /// releases the rest.
    pub amount: Option<Decimal>,
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

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    CreateAccount(CreateAccount),
    CreateTransfer(CreateTransfer),
    PostPending(PostPending),
    VoidPending(VoidPending),
    SetAccountStatus(SetAccountStatus),
    RegisterClient(RegisterClient),
    RevokeClient(RevokeClient),
}

impl Command {
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

/// Stable result codes. The numbers are part of the wire contract: never renumber, only append.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum ResultCode {
    Ok = 0,
    IdempotencyConflict = 1,
    InvalidId = 2,
    InvalidCurrency = 3,
    AmountZero = 4,
    AmountNegative = 5,
    AmountPrecision = 6,
    Overflow = 7,
    AccountNotFound = 8,
    CurrencyMismatch = 9,
    SameAccount = 10,
    NoLegs = 11,
    TooManyLegs = 12,
    InsufficientFunds = 13,
    CreditsExceedDebits = 14,
    AccountFrozen = 15,
    AccountClosed = 16,
    PerTransferLimit = 17,
    DailyAmountLimit = 18,
    DailyCountLimit = 19,
    BalanceLimit = 20,
    PendingNotFound = 21,
    PendingAlreadyPosted = 22,
    PendingAlreadyVoided = 23,
    PendingExpired = 24,
    PostAmountExceedsPending = 25,
    PartialPostMultiLeg = 26,
    InvalidTimeout = 27,
    ReferenceTooLong = 28,
    MetadataTooLarge = 29,
    InvalidFlags = 30,
    BalanceNotZero = 31,
    PendingTransfersOpen = 32,
    InvalidStatusChange = 33,
    ClientNotFound = 34,
    InvalidName = 35,
}

impl ResultCode {
    pub const ALL: &'static [ResultCode] = &[
        ResultCode::Ok,
        ResultCode::IdempotencyConflict,
        ResultCode::InvalidId,
        ResultCode::InvalidCurrency,
        ResultCode::AmountZero,
        ResultCode::AmountNegative,
        ResultCode::AmountPrecision,
        ResultCode::Overflow,
        ResultCode::AccountNotFound,
        ResultCode::CurrencyMismatch,
        ResultCode::SameAccount,
        ResultCode::NoLegs,
        ResultCode::TooManyLegs,
        ResultCode::InsufficientFunds,
        ResultCode::CreditsExceedDebits,
        ResultCode::AccountFrozen,
        ResultCode::AccountClosed,
        ResultCode::PerTransferLimit,
        ResultCode::DailyAmountLimit,
        ResultCode::DailyCountLimit,
        ResultCode::BalanceLimit,
        ResultCode::PendingNotFound,
        ResultCode::PendingAlreadyPosted,
        ResultCode::PendingAlreadyVoided,
        ResultCode::PendingExpired,
        ResultCode::PostAmountExceedsPending,
        ResultCode::PartialPostMultiLeg,
        ResultCode::InvalidTimeout,
        ResultCode::ReferenceTooLong,
        ResultCode::MetadataTooLarge,
        ResultCode::InvalidFlags,
        ResultCode::BalanceNotZero,
        ResultCode::PendingTransfersOpen,
        ResultCode::InvalidStatusChange,
        ResultCode::ClientNotFound,
        ResultCode::InvalidName,
    ];

    pub fn from_u16(v: u16) -> Option<ResultCode> {
        ResultCode::ALL
            .get(usize::from(v))
            .copied()
            .filter(|c| *c as u16 == v)
    }

    /// Stable snake-case name, used in JSON output and docs.
    pub fn name(&self) -> &'static str {
        match self {
            ResultCode::Ok => "ok",
            ResultCode::IdempotencyConflict => "idempotency_conflict",
            ResultCode::InvalidId => "invalid_id",
            ResultCode::InvalidCurrency => "invalid_currency",
            ResultCode::AmountZero => "amount_zero",
            ResultCode::AmountNegative => "amount_negative",
            ResultCode::AmountPrecision => "amount_precision",
            ResultCode::Overflow => "overflow",
            ResultCode::AccountNotFound => "account_not_found",
            ResultCode::CurrencyMismatch => "currency_mismatch",
            ResultCode::SameAccount => "same_account",
            ResultCode::NoLegs => "no_legs",
            ResultCode::TooManyLegs => "too_many_legs",
            ResultCode::InsufficientFunds => "insufficient_funds",
            ResultCode::CreditsExceedDebits => "credits_exceed_debits",
            ResultCode::AccountFrozen => "account_frozen",
            ResultCode::AccountClosed => "account_closed",
            ResultCode::PerTransferLimit => "per_transfer_limit",
            ResultCode::DailyAmountLimit => "daily_amount_limit",
            ResultCode::DailyCountLimit => "daily_count_limit",
            ResultCode::BalanceLimit => "balance_limit",
            ResultCode::PendingNotFound => "pending_not_found",
            ResultCode::PendingAlreadyPosted => "pending_already_posted",
            ResultCode::PendingAlreadyVoided => "pending_already_voided",
            ResultCode::PendingExpired => "pending_expired",
            ResultCode::PostAmountExceedsPending => "post_amount_exceeds_pending",
            ResultCode::PartialPostMultiLeg => "partial_post_multi_leg",
            ResultCode::InvalidTimeout => "invalid_timeout",
            ResultCode::ReferenceTooLong => "reference_too_long",
            ResultCode::MetadataTooLarge => "metadata_too_large",
            ResultCode::InvalidFlags => "invalid_flags",
            ResultCode::BalanceNotZero => "balance_not_zero",
            ResultCode::PendingTransfersOpen => "pending_transfers_open",
            ResultCode::InvalidStatusChange => "invalid_status_change",
            ResultCode::ClientNotFound => "client_not_found",
            ResultCode::InvalidName => "invalid_name",
        }
    }
}

impl std::fmt::Display for ResultCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The outcome of one command. Stored under the command id when first applied and returned unchanged
/// (same code, same timestamp) on every retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CommandResult {
    pub code: ResultCode,
    /// Log timestamp of the batch that first applied the command.
    pub timestamp_ns: u64,
}

impl CommandResult {
    pub fn is_ok(&self) -> bool {
        self.code == ResultCode::Ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_codes_round_trip_and_are_dense() {
        for (i, code) in ResultCode::ALL.iter().enumerate() {
            assert_eq!(*code as u16 as usize, i);
            assert_eq!(ResultCode::from_u16(i as u16), Some(*code));
        }
        assert_eq!(ResultCode::from_u16(ResultCode::ALL.len() as u16), None);
    }
}
