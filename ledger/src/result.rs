//! Results: what the ledger answers for each command. A leaf module (no imports from the crate
//! beyond the enum table macro) so every other module can name a result code.

use crate::enums::stable_enum;

stable_enum! {
    /// Stable result codes. The numbers are part of the wire contract: never renumber, only append.
    pub enum ResultCode: u16 {
        Ok = 0 => "ok",
        IdempotencyConflict = 1 => "idempotency_conflict",
        InvalidId = 2 => "invalid_id",
        InvalidCurrency = 3 => "invalid_currency",
        AmountZero = 4 => "amount_zero",
        AmountNegative = 5 => "amount_negative",
        AmountPrecision = 6 => "amount_precision",
        Overflow = 7 => "overflow",
        AccountNotFound = 8 => "account_not_found",
        CurrencyMismatch = 9 => "currency_mismatch",
        SameAccount = 10 => "same_account",
        NoLegs = 11 => "no_legs",
        TooManyLegs = 12 => "too_many_legs",
        InsufficientFunds = 13 => "insufficient_funds",
        CreditsExceedDebits = 14 => "credits_exceed_debits",
        AccountFrozen = 15 => "account_frozen",
        AccountClosed = 16 => "account_closed",
        PerTransferLimit = 17 => "per_transfer_limit",
        DailyAmountLimit = 18 => "daily_amount_limit",
        DailyCountLimit = 19 => "daily_count_limit",
        BalanceLimit = 20 => "balance_limit",
        PendingNotFound = 21 => "pending_not_found",
        PendingAlreadyPosted = 22 => "pending_already_posted",
        PendingAlreadyVoided = 23 => "pending_already_voided",
        PendingExpired = 24 => "pending_expired",
        PostAmountExceedsPending = 25 => "post_amount_exceeds_pending",
        PartialPostMultiLeg = 26 => "partial_post_multi_leg",
        InvalidTimeout = 27 => "invalid_timeout",
        ReferenceTooLong = 28 => "reference_too_long",
        MetadataTooLarge = 29 => "metadata_too_large",
        InvalidFlags = 30 => "invalid_flags",
        BalanceNotZero = 31 => "balance_not_zero",
        PendingTransfersOpen = 32 => "pending_transfers_open",
        InvalidStatusChange = 33 => "invalid_status_change",
        ClientNotFound = 34 => "client_not_found",
        InvalidName = 35 => "invalid_name",
        /// A merchant's name, city, MCC or country breaks its EMV rule.
        InvalidMerchantProfile = 36 => "invalid_merchant_profile",
        /// A fee over 100 %, a fee without a fee account, or a merchant as its own fee account.
        InvalidFee = 37 => "invalid_fee",
    }
}

impl ResultCode {
    pub fn from_u16(v: u16) -> Option<ResultCode> {
        ResultCode::from_repr(v)
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
