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
        /// No merchant with that id (or the QR names one this ledger does not know).
        MerchantNotFound = 38 => "merchant_not_found",
        /// An order number empty, over 25 characters or with control characters; a bill reference
        /// empty, over 64 bytes or with control characters.
        InvalidReference = 39 => "invalid_reference",
        /// The merchant already has an unpaid order with this order number.
        OrderReferenceInUse = 40 => "order_reference_in_use",
        /// A payload that does not parse as EMV MPM, is not a Suanpan merchant code, or disagrees
        /// with the order it names (amount, reference, merchant, currency).
        InvalidQr = 41 => "invalid_qr",
        OrderNotFound = 42 => "order_not_found",
        /// Paying an order that is already paid (or refunded).
        OrderAlreadyPaid = 43 => "order_already_paid",
        OrderClosed = 44 => "order_closed",
        OrderExpired = 45 => "order_expired",
        /// A payment amount that differs from the order's.
        AmountMismatch = 46 => "amount_mismatch",
        /// A static code (or a bill) paid without an amount.
        AmountRequired = 47 => "amount_required",
        /// Refunding an order that was never paid.
        OrderNotPaid = 48 => "order_not_paid",
        /// Refunds would sum to more than the paid amount.
        RefundExceedsPaid = 49 => "refund_exceeds_paid",
        /// This (biller, bill reference) pair was paid before.
        BillAlreadyPaid = 50 => "bill_already_paid",
        /// A free-text field (a refund reason, a note) over its byte limit.
        TextTooLong = 51 => "text_too_long",
        /// No payment-code key was ever bound to the wallet.
        PaycodeNotBound = 52 => "paycode_not_bound",
        /// The wallet's payment-code key was revoked.
        PaycodeRevoked = 53 => "paycode_revoked",
        /// The code's signature does not verify against the wallet's bound key (forged, altered,
        /// or made with a key bound before).
        PaycodeBadSignature = 54 => "paycode_bad_signature",
        /// The code expired (by log time), or claims a validity over 600 s.
        PaycodeExpired = 55 => "paycode_expired",
        /// The code was already used by this merchant (a new payment id for the same scan).
        PaycodeAlreadyUsed = 56 => "paycode_already_used",
        /// The code was already used by another merchant.
        PaycodeUsedElsewhere = 57 => "paycode_used_elsewhere",
        /// The amount is over the wallet's payment-code limit.
        PaycodeLimit = 58 => "paycode_limit",
        /// A payment-code key bound to an account that is not a wallet, or a malformed key.
        InvalidPaycodeKey = 59 => "invalid_paycode_key",
        /// A top-up or withdrawal through an account that is not an asset account (credits must
        /// not exceed debits).
        InvalidBankAccount = 60 => "invalid_bank_account",
        /// No withdrawal with that id.
        WithdrawalNotFound = 61 => "withdrawal_not_found",
        /// No chat transfer waiting for its payee with that id.
        ChatTransferNotFound = 62 => "chat_transfer_not_found",
        RequestNotFound = 63 => "request_not_found",
        /// Acting on a request that was already paid.
        RequestPaid = 64 => "request_paid",
        RequestDeclined = 65 => "request_declined",
        RequestCancelled = 66 => "request_cancelled",
        RequestExpired = 67 => "request_expired",
        /// A split with no participants or more than 100, or values not matching the mode (a count
        /// other than the participants', a zero or negative weight, a percent not in basis points).
        InvalidSplit = 68 => "invalid_split",
        /// A participant listed twice.
        SplitParticipantTwice = 69 => "split_participant_twice",
        /// Exact amounts that do not sum to the total, or percents that do not sum to 10 000.
        SplitSumMismatch = 70 => "split_sum_mismatch",
        /// Less than one minor unit per participant.
        SplitAmountTooSmall = 71 => "split_amount_too_small",
        SplitNotFound = 72 => "split_not_found",
        /// Paying or cancelling a split that is settled or cancelled.
        SplitClosed = 73 => "split_closed",
        /// The participant is not in the split.
        SplitItemNotFound = 74 => "split_item_not_found",
        /// The participant's share was already paid.
        SplitItemPaid = 75 => "split_item_paid",
        /// A red packet with no slots or more than 1 000, fewer minor units than slots, or a total
        /// past 2^63 minor units.
        InvalidRedPacket = 76 => "invalid_redpacket",
        RedPacketNotFound = 77 => "redpacket_not_found",
        /// Every slot is taken.
        RedPacketEmpty = 78 => "redpacket_empty",
        /// This wallet already claimed from the packet.
        RedPacketAlreadyClaimed = 79 => "redpacket_already_claimed",
        RedPacketExpired = 80 => "redpacket_expired",
        /// A group with fewer than 2 or more than 100 members, a member twice, or a name empty or
        /// over 64 bytes.
        InvalidGroup = 81 => "invalid_group",
        GroupNotFound = 82 => "group_not_found",
        /// A group split whose payer or a participant is not a member.
        NotAGroupMember = 83 => "not_a_group_member",
        /// The group already tracks 1 000 open splits.
        GroupFull = 84 => "group_full",
        /// A currency code that is not 3–8 upper-case letters or is an ISO 4217 code, a scale over 8,
        /// or a name over 64 bytes.
        InvalidCurrencyDefinition = 85 => "invalid_currency_definition",
        CurrencyExists = 86 => "currency_exists",
        /// A rate that is zero, negative, has more than 18 fractional digits, or converts a
        /// currency to itself.
        InvalidRate = 87 => "invalid_rate",
        /// No rate is set from the source currency to the target currency.
        RateNotFound = 88 => "rate_not_found",
        /// The current rate is not the one the client expected.
        RateChanged = 89 => "rate_changed",
        /// The amount converts to less than one minor unit of the target currency.
        ConversionTooSmall = 90 => "conversion_too_small",
        /// A tier name not of 1–32 `[a-z0-9_-]` bytes, or a limit that is not a valid amount.
        InvalidTier = 91 => "invalid_tier",
        TierExists = 92 => "tier_exists",
        TierNotFound = 93 => "tier_not_found",
        /// An unknown setting key, or a value it does not accept.
        InvalidSetting = 94 => "invalid_setting",
        /// The ledger already holds the most currencies (256), rates (1 024) or tiers (256).
        ConfigFull = 95 => "config_full",
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
