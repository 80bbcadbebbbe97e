//! Records the ledger keeps: accounts, transfers, postings (history), API clients.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::enums::stable_enum;
use crate::money::Currency;

/// A 128-bit identifier (a UUID or ULID as an integer). Zero is never a valid id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Id(pub u128);

impl Id {
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
    pub fn from_bytes(b: [u8; 16]) -> Id {
        Id(u128::from_be_bytes(b))
    }
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

/// Where each of an id's 16 bytes starts in its canonical text form (two hex digits each;
/// hyphens at 8, 13, 18 and 23).
const UUID_BYTE_AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
/// The same for the 32-digit form without hyphens.
const HEX32_BYTE_AT: [usize; 16] = [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30];
const UUID_HYPHENS_AT: [usize; 4] = [8, 13, 18, 23];
/// A hex digit's value by ASCII byte (either case); `0xff` for any other byte.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

impl std::fmt::Display for Id {
    /// Canonical UUID text form (8-4-4-4-12, lower-case hex), written in one piece from a stack
    /// buffer, a byte (two digits) at a time: clients format ids a thousand per request, and
    /// the general formatting path (a temporary string, then five pieces) was ~30 % of the load
    /// generator's CPU.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [b'-'; 36];
        for (byte, at) in self.to_bytes().into_iter().zip(UUID_BYTE_AT) {
            out[at] = HEX[usize::from(byte >> 4)];
            out[at + 1] = HEX[usize::from(byte & 0xf)];
        }
        // Only ASCII hex digits and hyphens were written.
        f.write_str(std::str::from_utf8(&out).map_err(|_| std::fmt::Error)?)
    }
}

impl std::str::FromStr for Id {
    type Err = &'static str;
    /// Accepts the canonical UUID form (hyphens at 8, 13, 18 and 23) or 32 hex digits, either
    /// case. Parsed in place: ids arrive a thousand per request.
    fn from_str(s: &str) -> Result<Id, Self::Err> {
        let b = s.as_bytes();
        let byte_at = match b.len() {
            36 => {
                if UUID_HYPHENS_AT.iter().any(|&i| b[i] != b'-') {
                    return Err("malformed UUID");
                }
                &UUID_BYTE_AT
            }
            32 => &HEX32_BYTE_AT,
            _ => return Err("an id is a UUID (8-4-4-4-12 hex) or 32 hex digits"),
        };
        // A byte (two digits) at a time through a table: ids arrive a thousand per request.
        let mut out = [0u8; 16];
        for (o, &at) in out.iter_mut().zip(byte_at) {
            let (hi, lo) = (
                HEX_VALUE[usize::from(b[at])],
                HEX_VALUE[usize::from(b[at + 1])],
            );
            if (hi | lo) == 0xff {
                return Err("an id contains only hex digits");
            }
            *o = (hi << 4) | lo;
        }
        Ok(Id::from_bytes(out))
    }
}

stable_enum! {
    pub enum AccountKind: u8 {
        Wallet = 0 => "wallet",
        Merchant = 1 => "merchant",
        System = 2 => "system",
    }
}

stable_enum! {
    /// The side on which an account's balance is normally carried: assets (the custodial bank
    /// account, FX positions, receivables) are debit-normal; liabilities and revenue (wallets,
    /// merchants, escrow, fees) credit-normal. Reports show balances on this side.
    pub enum NormalSide: u8 {
        Credit = 0 => "credit",
        Debit = 1 => "debit",
    }
}

stable_enum! {
    pub enum AccountStatus: u8 {
        Open = 0 => "open",
        /// No debits; credits still arrive (a frozen wallet can be refunded).
        Frozen = 1 => "frozen",
        /// No movement at all. Only an account with zero balances and no holds can close.
        Closed = 2 => "closed",
    }
}

stable_enum! {
    /// Role of an API client key, decided by the replicated log so every node authorizes alike.
    pub enum ClientRole: u8 {
        Payments = 0 => "payments",
        FinanceRead = 1 => "finance",
        Admin = 2 => "admin",
    }
}

impl Default for AccountStatus {
    fn default() -> Self {
        AccountStatus::Open
    }
}

pub const FLAG_DEBITS_MUST_NOT_EXCEED_CREDITS: u8 = 1;
pub const FLAG_CREDITS_MUST_NOT_EXCEED_DEBITS: u8 = 2;
/// Every defined flag bit; a stored account with another bit set is corrupt.
pub const FLAGS_KNOWN: u8 =
    FLAG_DEBITS_MUST_NOT_EXCEED_CREDITS | FLAG_CREDITS_MUST_NOT_EXCEED_DEBITS;

stable_enum! {
    /// What a timer does when it falls due. One timer index serves every flow that expires by log
    /// time: ordered by `(due_ns, kind, id)`, so expiry order is the same on every replica.
    pub enum TimerKind: u8 {
        /// A two-phase transfer's hold expires (released, `pending_expired`).
        PendingTransfer = 0 => "pending_transfer",
        /// A QR order left unpaid expires (`unpaid → expired`).
        Order = 1 => "order",
        /// A consumed payment code expires: its nonce is forgotten (the id is the payment's).
        PaycodeNonce = 2 => "paycode_nonce",
        /// An open payment request expires.
        Request = 3 => "request",
        /// A red packet expires: the unclaimed rest returns to the sender.
        RedPacket = 4 => "redpacket",
        /// A split with an expiry: its pending items are cancelled.
        Split = 5 => "split",
    }
}

/// The four running totals of an account, in minor units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Balances {
    pub debits_posted: u128,
    pub credits_posted: u128,
    pub debits_pending: u128,
    pub credits_pending: u128,
}

/// Limits in minor units.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub per_transfer_max: Option<u128>,
    pub daily_outflow_max: Option<u128>,
    pub daily_outflow_count_max: Option<u32>,
    pub balance_max: Option<u128>,
}

/// What an account is; fixed at creation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountInfo {
    pub id: Id,
    pub currency: Currency,
    pub kind: AccountKind,
    pub flags: u8,
    pub overdraft: u128,
    pub limits: Limits,
    pub reference: String,
    pub metadata: BTreeMap<String, String>,
    pub created_ns: u64,
    /// The KYC tier whose limits `limits` holds (`None`: the limits given at creation).
    pub tier: Option<String>,
    pub normal_side: NormalSide,
}

/// What changes as money moves: small and `Copy`, so a transfer works on copies and commits them only
/// when every leg passed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AccountState {
    pub status: AccountStatus,
    pub balances: Balances,
    /// Number of postings recorded for the account; the last posting's sequence number.
    pub posting_seq: u64,
    /// UTC day number (log time) that `day_outflow*` refer to.
    pub day: u32,
    pub day_outflow: u128,
    pub day_outflow_count: u32,
    /// Pending transfers that still hold funds on this account.
    pub pending_count: u32,
}

/// An account as the ledger caches it. `info` — what rarely changes, and most of the size — is
/// behind a pointer so that the hash maps holding a million accounts (the applying ledger's and a
/// read view's) keep only the id, a pointer and the state per slot: a slot with `info` inline was
/// ~350 bytes, and with the table's spare capacity that was ~0.7 GiB per million accounts per map.
/// The pointer is shared: the applying ledger hands a read view its accounts by cloning them (a
/// reference count and the ~110-byte state), and both hold one copy of each `info`; a change to
/// it (`Arc::make_mut`) copies it first.
#[derive(Clone, Debug)]
pub struct Account {
    pub info: std::sync::Arc<AccountInfo>,
    pub state: AccountState,
    /// The log index of the last batch that touched the account (0: none since it was loaded).
    /// The applying ledger's own bookkeeping, not part of the account: it replaces a per-batch
    /// map of touched accounts, whose random inserts missed the cache (see `Ledger::touch`). It
    /// fits in the slot's padding (the slot stays 128 bytes).
    pub(crate) touched_in: u64,
}

// The mark must not grow a cached account (a million of them per map: docs/performance.md).
#[cfg(target_pointer_width = "64")]
const _: () = assert!(std::mem::size_of::<Account>() <= 128);

/// Equal when the account is: what a ledger last did with it is not part of it.
impl PartialEq for Account {
    fn eq(&self, other: &Self) -> bool {
        self.info == other.info && self.state == other.state
    }
}
impl Eq for Account {}

impl Account {
    pub fn new(info: std::sync::Arc<AccountInfo>, state: AccountState) -> Account {
        Account {
            info,
            state,
            touched_in: 0,
        }
    }
    pub fn status(&self) -> AccountStatus {
        self.state.status
    }
    /// Balance of a credit-normal account (wallets, merchants): credits minus debits, posted only.
    pub fn balance(&self) -> Decimal {
        let b = &self.state.balances;
        self.info
            .currency
            .to_decimal_signed(b.credits_posted as i128 - b.debits_posted as i128)
    }
    /// Posted balance on the account's normal side (debits − credits for a debit-normal account).
    pub fn normal_balance(&self) -> Decimal {
        let b = &self.state.balances;
        let credit_view = b.credits_posted as i128 - b.debits_posted as i128;
        self.info
            .currency
            .to_decimal_signed(match self.info.normal_side {
                NormalSide::Credit => credit_view,
                NormalSide::Debit => -credit_view,
            })
    }
    /// Posted balance minus funds held by pending debits: what a payment may still use.
    pub fn available(&self) -> Decimal {
        let b = &self.state.balances;
        self.info.currency.to_decimal_signed(
            b.credits_posted as i128 - b.debits_posted as i128 - b.debits_pending as i128,
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Leg {
    pub debit: Id,
    pub credit: Id,
    pub amount: u128,
}

stable_enum! {
    pub enum TransferState: u8 {
        /// Applied in full at once (or a post/void record of a pending transfer).
        Posted = 0 => "posted",
        /// Funds held until posted, voided or expired.
        Pending = 1 => "pending",
        /// A pending transfer that was posted (possibly partially, see `posted_amount`).
        PendingPosted = 2 => "pending_posted",
        PendingVoided = 3 => "pending_voided",
        PendingExpired = 4 => "pending_expired",
        /// The record of a void command (moves no money).
        Void = 5 => "void",
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transfer {
    pub id: Id,
    pub legs: Vec<Leg>,
    pub state: TransferState,
    /// For post and void records: the pending transfer they resolve.
    pub pending_id: Option<Id>,
    /// For pending transfers: log time at which the hold expires.
    pub expires_ns: Option<u64>,
    /// For posted pending transfers: the amount posted (single-leg partial posts).
    pub posted_amount: Option<u128>,
    pub reference: String,
    pub timestamp_ns: u64,
}

stable_enum! {
    /// Why a posting happened.
    pub enum PostingKind: u8 {
        Posted = 0 => "posted",
        PendingHold = 1 => "pending_hold",
        /// Pending hold released and the (partial) amount posted.
        PendingPost = 2 => "pending_post",
        PendingVoid = 3 => "pending_void",
        PendingExpire = 4 => "pending_expire",
    }
}

stable_enum! {
    /// The payment flow a posting belongs to (statements, settlement reports, reconciliation).
    pub enum FlowKind: u8 {
        /// A plain transfer or two-phase transfer (and postings written before flows were recorded).
        Transfer = 0 => "transfer",
        QrPayment = 1 => "qr_payment",
        CodePayment = 2 => "code_payment",
        BillPayment = 3 => "bill_payment",
        Refund = 4 => "refund",
        Topup = 5 => "topup",
        Withdrawal = 6 => "withdrawal",
        ChatTransfer = 7 => "chat_transfer",
        RequestPayment = 8 => "request_payment",
        SplitPayment = 9 => "split_payment",
        GroupSettlement = 10 => "group_settlement",
        RedPacket = 11 => "redpacket",
        Conversion = 12 => "conversion",
    }
}

/// One line of an account's history: a change of its balances, with the balances that resulted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Posting {
    pub account: Id,
    pub seq: u64,
    pub transfer: Id,
    pub leg: u8,
    pub kind: PostingKind,
    pub is_debit: bool,
    pub amount: u128,
    pub timestamp_ns: u64,
    pub balances_after: Balances,
    /// The other account of the leg (`None` in postings written before it was recorded).
    pub counterparty: Option<Id>,
    pub flow: FlowKind,
}

/// A merchant's profile (its account is a merchant account with the same id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerchantProfile {
    pub account: Id,
    pub name: String,
    pub city: String,
    pub mcc: String,
    pub country: String,
    pub fee_bps: u32,
    pub fee_account: Option<Id>,
    pub created_ns: u64,
}

stable_enum! {
    /// How a merchant payment came about. Every kind is one [`Order`] record, so refunds, reads and
    /// reconciliation treat them alike.
    pub enum OrderKind: u8 {
        /// A merchant-created order with its own dynamic QR (point of initiation 12).
        Dynamic = 0 => "dynamic",
        /// A payment to a merchant's static QR (point of initiation 11); the record is keyed by the
        /// payment id.
        Static = 1 => "static",
        /// A customer-presented payment code charged by the merchant; keyed by the payment id.
        Code = 2 => "code",
        /// A biller payment (utility bill, ticket); keyed by the payment id.
        Bill = 3 => "bill",
    }
}

stable_enum! {
    /// An order's life: `unpaid → paid → partially_refunded → refunded`, or `unpaid → closed |
    /// expired`. Payments that are not dynamic orders start at `paid`.
    pub enum OrderState: u8 {
        Unpaid = 0 => "unpaid",
        Paid = 1 => "paid",
        PartiallyRefunded = 2 => "partially_refunded",
        Refunded = 3 => "refunded",
        Closed = 4 => "closed",
        Expired = 5 => "expired",
    }
}

impl OrderState {
    /// Paid, in whole or after refunds: the states a refund may start from (refunded excepted).
    pub fn is_paid(self) -> bool {
        matches!(
            self,
            OrderState::Paid | OrderState::PartiallyRefunded | OrderState::Refunded
        )
    }
}

/// A merchant payment and its refunds (see [`OrderKind`]). Amounts are minor units of `currency`,
/// the merchant account's.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Order {
    pub id: Id,
    pub kind: OrderKind,
    pub merchant: Id,
    pub currency: crate::Currency,
    pub amount: u128,
    /// The merchant's order number (dynamic orders), the bill reference (bills), else empty.
    pub reference: String,
    pub state: OrderState,
    pub created_ns: u64,
    /// Dynamic orders: log time at which an unpaid order expires.
    pub expires_ns: Option<u64>,
    /// Set when paid: who paid, with which command, and where the fee went.
    pub payer: Option<Id>,
    pub payment: Option<Id>,
    pub fee_account: Option<Id>,
    pub paid_amount: u128,
    pub fee: u128,
    pub refunded_amount: u128,
    pub fee_refunded: u128,
    /// Log time of the last transition.
    pub updated_ns: u64,
}

impl Order {
    /// A new order, unpaid, without expiry, payer or refunds.
    pub fn new(
        id: Id,
        kind: OrderKind,
        merchant: Id,
        currency: crate::Currency,
        amount: u128,
        reference: &str,
        now_ns: u64,
    ) -> Order {
        Order {
            id,
            kind,
            merchant,
            currency,
            amount,
            reference: reference.to_string(),
            state: OrderState::Unpaid,
            created_ns: now_ns,
            expires_ns: None,
            payer: None,
            payment: None,
            fee_account: None,
            paid_amount: 0,
            fee: 0,
            refunded_amount: 0,
            fee_refunded: 0,
            updated_ns: now_ns,
        }
    }
}

stable_enum! {
    /// What a flow event reports: one transition of one flow (see [`FlowEvent`]).
    pub enum EventKind: u8 {
        /// A QR order was created (`→ unpaid`).
        OrderCreated = 0 => "order_created",
        /// An order (QR order, static-code, payment-code or bill payment) was paid.
        OrderPaid = 1 => "order_paid",
        /// Part or the rest of an order was refunded (`→ partially_refunded | refunded`).
        OrderRefunded = 2 => "order_refunded",
        OrderClosed = 3 => "order_closed",
        OrderExpired = 4 => "order_expired",
        /// A payment code was consumed by a payment.
        PaycodeConsumed = 5 => "paycode_consumed",
        TopupCompleted = 6 => "topup_completed",
        WithdrawalRequested = 7 => "withdrawal_requested",
        WithdrawalCompleted = 8 => "withdrawal_completed",
        WithdrawalFailed = 9 => "withdrawal_failed",
        WithdrawalExpired = 10 => "withdrawal_expired",
        /// A two-phase transfer's hold expired and returned to the debited accounts.
        HoldExpired = 11 => "hold_expired",
        /// A chat transfer was sent: held for the payee (`pending`) or moved at once (`received`).
        TransferSent = 12 => "transfer_sent",
        TransferReceived = 13 => "transfer_received",
        /// Returned to the sender: by the sender (`returned`) or unaccepted in time (`expired`).
        TransferReturned = 14 => "transfer_returned",
        RequestCreated = 15 => "request_created",
        RequestPaid = 16 => "request_paid",
        RequestDeclined = 17 => "request_declined",
        RequestCancelled = 18 => "request_cancelled",
        RequestExpired = 19 => "request_expired",
        SplitCreated = 20 => "split_created",
        /// A participant paid its share (amount = the share).
        SplitItemPaid = 21 => "split_item_paid",
        /// Every item is paid.
        SplitSettled = 22 => "split_settled",
        SplitCancelled = 23 => "split_cancelled",
        RedPacketCreated = 24 => "redpacket_created",
        /// A wallet took a slot (amount = the slot).
        RedPacketClaimed = 25 => "redpacket_claimed",
        /// The packet expired; the unclaimed rest (amount) returned to the sender.
        RedPacketExpired = 26 => "redpacket_expired",
        GroupCreated = 27 => "group_created",
        /// Every open split of the group was settled (amount = the total moved).
        GroupSettled = 28 => "group_settled",
        /// A split expired with items pending (amount = what was still owed).
        SplitExpired = 29 => "split_expired",
        /// A wallet converted money into another currency (amount = what it paid, in its currency;
        /// the conversion record holds both sides and the rate).
        Converted = 30 => "converted",
        /// A wallet was put on a KYC tier.
        TierChanged = 31 => "tier_changed",
    }
}

stable_enum! {
    /// A red packet's life: `open → emptied | expired`.
    pub enum RedPacketState: u8 {
        Open = 0 => "open",
        /// Every slot claimed.
        Emptied = 1 => "emptied",
        /// Expired; the rest returned to the sender.
        Expired = 2 => "expired",
    }
}

/// A red packet. Its slots (fixed at creation) and claims are stored beside it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedPacket {
    pub id: Id,
    pub sender: Id,
    pub currency: crate::Currency,
    pub total: u128,
    pub count: u32,
    pub random: bool,
    /// The seed the slots were cut with (see `crate::redpacket`).
    pub seed: u64,
    pub escrow: Id,
    pub state: RedPacketState,
    pub claimed: u32,
    pub claimed_amount: u128,
    pub created_ns: u64,
    pub expires_ns: u64,
    pub updated_ns: u64,
    /// Only this group's members may claim.
    pub group: Option<Id>,
}

/// One claim of a red packet: slot `slot` (0-based) to `wallet`, by command `claim`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RedPacketClaim {
    pub slot: u32,
    pub wallet: Id,
    pub claim: Id,
    pub amount: u128,
}

stable_enum! {
    /// How a split divides its total (see `money::largest_remainder`).
    pub enum SplitMode: u8 {
        /// Equal parts.
        Equal = 0 => "equal",
        /// Given amounts that sum to the total.
        Exact = 1 => "exact",
        /// Basis points summing to 10 000.
        Percent = 2 => "percent",
        /// Positive integer weights.
        Shares = 3 => "shares",
        /// AA collection: every participant owes the same given amount; no total.
        Each = 4 => "each",
    }
}

stable_enum! {
    /// A split's life: `open → settled | cancelled`.
    pub enum SplitState: u8 {
        Open = 0 => "open",
        Settled = 1 => "settled",
        Cancelled = 2 => "cancelled",
        /// Its expiry came with items still pending (they are cancelled).
        Expired = 3 => "expired",
    }
}

stable_enum! {
    /// A participant's item: `pending → paid | cancelled`.
    pub enum SplitItemState: u8 {
        Pending = 0 => "pending",
        Paid = 1 => "paid",
        Cancelled = 2 => "cancelled",
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitItem {
    pub participant: Id,
    pub amount: u128,
    pub state: SplitItemState,
    /// The command that paid it.
    pub payment: Option<Id>,
}

/// A bill split or AA collection: amounts in minor units of `currency`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub id: Id,
    pub payer: Id,
    pub currency: crate::Currency,
    pub total: u128,
    pub mode: SplitMode,
    pub state: SplitState,
    pub note: String,
    pub items: Vec<SplitItem>,
    pub created_ns: u64,
    pub updated_ns: u64,
    pub group: Option<Id>,
    /// When pending items are cancelled (`None`: never).
    pub expires_ns: Option<u64>,
}

/// A group: members, and the open splits it tracks for netted settle-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub id: Id,
    pub name: String,
    pub members: Vec<Id>,
    pub open_splits: Vec<Id>,
    pub created_ns: u64,
}

stable_enum! {
    /// A payment request's life: `open → paid | declined | cancelled | expired`.
    pub enum RequestState: u8 {
        Open = 0 => "open",
        Paid = 1 => "paid",
        Declined = 2 => "declined",
        Cancelled = 3 => "cancelled",
        Expired = 4 => "expired",
    }
}

/// A payment request (collect): amounts in minor units of the wallets' currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentRequest {
    pub id: Id,
    pub payee: Id,
    pub payer: Id,
    pub currency: crate::Currency,
    pub amount: u128,
    pub note: String,
    pub state: RequestState,
    pub created_ns: u64,
    pub expires_ns: u64,
    pub updated_ns: u64,
    /// The command that paid it.
    pub payment: Option<Id>,
}

/// Most accounts one event names (merchant, payer, fee account, bank).
pub const EVENT_ACCOUNTS_MAX: usize = 4;

/// One transition of one flow, emitted by the apply itself — the same on every replica — and
/// journaled with the batch, so notifications survive restarts and leader changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowEvent {
    pub kind: EventKind,
    /// The flow: order (payment) id, withdrawal id, or transfer id.
    pub flow: Id,
    /// The command that caused it (for a timer's expiry, the flow's own id).
    pub command: Id,
    /// The flow's state after the transition (its stable name).
    pub state: String,
    /// Who it concerns (≤ [`EVENT_ACCOUNTS_MAX`]): the merchant first for merchant flows.
    pub accounts: Vec<Id>,
    /// The amount the transition moved (for a refund, this refund), in minor units.
    pub amount: u128,
    pub currency: crate::Currency,
}

/// A wallet's payment-code key and limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaycodeBinding {
    pub wallet: Id,
    pub public_key: [u8; 32],
    /// Largest payment per code, in minor units of the wallet's currency.
    pub paycode_max: u128,
    pub revoked: bool,
    pub bound_ns: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Client {
    pub public_key: [u8; 32],
    pub role: ClientRole,
    pub name: String,
    pub revoked: bool,
    pub registered_ns: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The text form is the 32 hex digits with hyphens at 8, 13, 18 and 23, and parses back.
        #[test]
        fn id_text_form_is_hyphenated_hex_and_parses_back(v: u128) {
            let text = Id(v).to_string();
            let h = format!("{v:032x}");
            let expected = format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32]);
            proptest::prop_assert_eq!(&text, &expected);
            proptest::prop_assert_eq!(text.parse::<Id>(), Ok(Id(v)));
        }
    }

    #[test]
    fn id_text_forms() {
        let id: Id = "0190a0b8-7c1e-7d2a-9f00-0123456789ab".parse().unwrap();
        assert_eq!(id.to_string(), "0190a0b8-7c1e-7d2a-9f00-0123456789ab");
        let id2: Id = "0190a0b87c1e7d2a9f000123456789ab".parse().unwrap();
        assert_eq!(id, id2);
        assert!("0190a0b8-7c1e-7d2a-9f00-0123456789a".parse::<Id>().is_err());
        assert!("0190a0b8x7c1e-7d2a-9f00-0123456789ab"
            .parse::<Id>()
            .is_err());
        assert!("0190a0b8-7c1e-7d2a-9f00-0123456789ag"
            .parse::<Id>()
            .is_err());
        assert!("+190a0b87c1e7d2a9f000123456789ab".parse::<Id>().is_err());
        assert!("-190a0b8-7c1e-7d2a-9f00-0123456789ab"
            .parse::<Id>()
            .is_err());
        assert!("0190a0b8-7c1e-7d2a-9f00-0123456789ab-"
            .parse::<Id>()
            .is_err());
        assert!("0190a0b8-7c1e-7d2a-9f0-00123456789ab"
            .parse::<Id>()
            .is_err());
        assert!("0190a0b8-7c1e-7d2a-9f00-0123456789éa"
            .parse::<Id>()
            .is_err());
        assert_eq!(Id::from_bytes(id.to_bytes()), id);
    }

    proptest::proptest! {
        /// Every id reads back from its canonical form, in either case, and from its 32 digits.
        #[test]
        fn id_text_round_trips(v: u128) {
            let id = Id(v);
            let text = id.to_string();
            proptest::prop_assert_eq!(text.parse::<Id>(), Ok(id));
            proptest::prop_assert_eq!(text.to_uppercase().parse::<Id>(), Ok(id));
            proptest::prop_assert_eq!(text.replace('-', "").parse::<Id>(), Ok(id));
        }

        /// A string of an id's length parses exactly when it is hex digits (and, at 36
        /// characters, hyphens in the four canonical places and nowhere else), to the value
        /// the standard library reads from its digits.
        #[test]
        fn id_parse_accepts_exactly_the_two_forms(
            chars in proptest::collection::vec(
                proptest::prop_oneof![
                    // Mostly digits, so that many strings are valid ids.
                    60 => proptest::sample::select(b"0123456789abcdefABCDEF".to_vec()),
                    1 => proptest::sample::select(b"-gG+ /:@`".to_vec()),
                ],
                32..=36,
            ),
            canonical_hyphens: bool,
        ) {
            let mut chars = chars;
            if canonical_hyphens && chars.len() == 36 {
                for i in UUID_HYPHENS_AT {
                    chars[i] = b'-';
                }
            }
            let text = String::from_utf8(chars).unwrap();
            let digits: String = match text.len() {
                36 if UUID_HYPHENS_AT.iter().all(|&i| &text[i..=i] == "-") => text
                    .char_indices()
                    .filter(|(i, _)| !UUID_HYPHENS_AT.contains(i))
                    .map(|(_, c)| c)
                    .collect(),
                32 => text.clone(),
                _ => String::new(),
            };
            let expected = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u128::from_str_radix(&digits, 16).unwrap());
            proptest::prop_assert_eq!(text.parse::<Id>().ok().map(|id| id.0), expected, "{:?}", text);
        }
    }
}

/// An in-app currency as defined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CurrencyDef {
    pub currency: crate::Currency,
    pub name: String,
    pub defined_ns: u64,
}

/// An exchange rate: one major unit of `from` buys `rate` major units of `to`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rate {
    pub from: crate::Currency,
    pub to: crate::Currency,
    pub rate: Decimal,
    /// The command that set it, and when.
    pub set_by: Id,
    pub set_ns: u64,
}

/// A KYC tier: limits in major units of whichever account is put on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tier {
    pub name: String,
    pub limits: crate::LimitsSpec,
    pub defined_ns: u64,
}

/// A conversion as applied: both sides, in minor units of each currency, and the rate used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conversion {
    pub id: Id,
    pub from_account: Id,
    pub to_account: Id,
    pub from_currency: crate::Currency,
    pub to_currency: crate::Currency,
    pub from_amount: u128,
    pub to_amount: u128,
    pub rate: Decimal,
    /// When the rate used was set (its `set_ns`).
    pub rate_set_ns: u64,
    pub timestamp_ns: u64,
}

/// The replicated settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Offset of the business time zone from UTC, in seconds: the limit day starts at its midnight.
    pub business_utc_offset_seconds: i32,
}

impl Settings {
    /// Longest offset either side of UTC (UTC−12:00 … UTC+14:00).
    pub const OFFSET_WEST_MAX_SECONDS: i32 = 12 * 3600;
    pub const OFFSET_EAST_MAX_SECONDS: i32 = 14 * 3600;

    /// The limit day of log time `ts_ns`: days since the epoch in the business time zone.
    pub fn day_of(&self, ts_ns: u64) -> u32 {
        let shifted = ts_ns as i128 + i128::from(self.business_utc_offset_seconds) * 1_000_000_000;
        (shifted.max(0) / (86_400 * 1_000_000_000)) as u32
    }

    /// Parses `±HH:MM` (or `Z`; either may follow `UTC`) into seconds: minutes a multiple of 15,
    /// within the range above.
    pub fn parse_offset(s: &str) -> Option<i32> {
        let s = s.strip_prefix("UTC").unwrap_or(s);
        if s == "Z" {
            return Some(0);
        }
        let b = s.as_bytes();
        if b.len() != 6 || b[3] != b':' {
            return None;
        }
        let sign = match b[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return None,
        };
        let digits = |x: &[u8]| -> Option<i32> {
            x.iter()
                .all(u8::is_ascii_digit)
                .then(|| x.iter().fold(0i32, |acc, d| acc * 10 + i32::from(d - b'0')))
        };
        let (h, m) = (digits(&b[1..3])?, digits(&b[4..6])?);
        if m >= 60 || m % 15 != 0 {
            return None;
        }
        let secs = sign * (h * 3600 + m * 60);
        (-Self::OFFSET_WEST_MAX_SECONDS..=Self::OFFSET_EAST_MAX_SECONDS)
            .contains(&secs)
            .then_some(secs)
    }

    /// `±HH:MM` for an offset in seconds.
    pub fn format_offset(secs: i32) -> String {
        let sign = if secs < 0 { '-' } else { '+' };
        let a = secs.unsigned_abs();
        format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60)
    }
}
