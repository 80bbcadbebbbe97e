//! The ledger's binary encoding: records in the store, commands inside Raft entries, results back.
//!
//! Hand-written, little-endian, length-prefixed, versioned by a leading byte on each top-level record.
//! Decoding never panics: every read is bounds-checked and every count is limited before allocating,
//! because bytes come from disk and the network.

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::command::*;
use crate::money::Currency;
use crate::result::{CommandResult, ResultCode};
use crate::types::*;

const VERSION: u8 = 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed ledger encoding: {0}")]
pub struct DecodeError(pub &'static str);

/// Appends values to a byte vector.
#[derive(Default)]
pub struct Enc {
    pub buf: Vec<u8>,
}

impl Enc {
    pub fn with_capacity(n: usize) -> Enc {
        Enc {
            buf: Vec::with_capacity(n),
        }
    }
    #[inline]
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }
    #[inline]
    pub fn u16(&mut self, v: u16) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn u128(&mut self, v: u128) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub fn id(&mut self, v: Id) {
        self.buf.extend_from_slice(&v.to_bytes());
    }
    #[inline]
    pub fn bool(&mut self, v: bool) {
        self.buf.push(v as u8);
    }
    pub fn bytes(&mut self, v: &[u8]) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v);
    }
    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }
    #[inline]
    pub fn decimal(&mut self, v: Decimal) {
        self.buf.extend_from_slice(&v.serialize());
    }
    pub fn opt_decimal(&mut self, v: Option<Decimal>) {
        match v {
            Some(d) => {
                self.u8(1);
                self.decimal(d);
            }
            None => self.u8(0),
        }
    }
    pub fn opt_u128(&mut self, v: Option<u128>) {
        match v {
            Some(d) => {
                self.u8(1);
                self.u128(d);
            }
            None => self.u8(0),
        }
    }
    pub fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            Some(d) => {
                self.u8(1);
                self.u64(d);
            }
            None => self.u8(0),
        }
    }
    pub fn opt_u32(&mut self, v: Option<u32>) {
        match v {
            Some(d) => {
                self.u8(1);
                self.u32(d);
            }
            None => self.u8(0),
        }
    }
    pub fn opt_currency(&mut self, v: Option<Currency>) {
        match v {
            Some(c) => {
                self.u8(1);
                self.currency(c);
            }
            None => self.u8(0),
        }
    }
    pub fn opt_id(&mut self, v: Option<Id>) {
        match v {
            Some(d) => {
                self.u8(1);
                self.id(d);
            }
            None => self.u8(0),
        }
    }
    pub fn currency(&mut self, c: Currency) {
        self.buf.extend_from_slice(&c.code_bytes());
    }
    fn map(&mut self, m: &BTreeMap<String, String>) {
        self.u32(m.len() as u32);
        for (k, v) in m {
            self.str(k);
            self.str(v);
        }
    }
    fn balances(&mut self, b: &Balances) {
        self.u128(b.debits_posted);
        self.u128(b.credits_posted);
        self.u128(b.debits_pending);
        self.u128(b.credits_pending);
    }
}

/// Reads values from a byte slice.
pub struct Dec<'a> {
    buf: &'a [u8],
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Dec<'a> {
        Dec { buf }
    }
    #[inline]
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError("truncated"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    #[inline]
    fn arr<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        Ok(self.take(N)?.try_into().expect("take returned N bytes"))
    }
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.arr()?))
    }
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.arr()?))
    }
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.arr()?))
    }
    pub fn u128(&mut self) -> Result<u128, DecodeError> {
        Ok(u128::from_le_bytes(self.arr()?))
    }
    pub fn id(&mut self) -> Result<Id, DecodeError> {
        Ok(Id::from_bytes(self.arr()?))
    }
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError("bad bool")),
        }
    }
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
    pub fn string(&mut self) -> Result<String, DecodeError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| DecodeError("bad utf-8"))
    }
    pub fn decimal(&mut self) -> Result<Decimal, DecodeError> {
        let b: [u8; 16] = self.arr()?;
        // Reject flag bits Decimal does not define rather than letting them alter the value.
        let flags = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        if flags & !0x801F_0000 != 0 || (flags >> 16) & 0xFF > 28 {
            return Err(DecodeError("bad decimal"));
        }
        Ok(Decimal::deserialize(b))
    }
    fn opt<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => f(self).map(Some),
            _ => Err(DecodeError("bad option tag")),
        }
    }
    pub fn opt_decimal(&mut self) -> Result<Option<Decimal>, DecodeError> {
        self.opt(|d| d.decimal())
    }
    pub fn opt_u128(&mut self) -> Result<Option<u128>, DecodeError> {
        self.opt(|d| d.u128())
    }
    pub fn opt_u64(&mut self) -> Result<Option<u64>, DecodeError> {
        self.opt(|d| d.u64())
    }
    pub fn opt_u32(&mut self) -> Result<Option<u32>, DecodeError> {
        self.opt(|d| d.u32())
    }
    pub fn opt_id(&mut self) -> Result<Option<Id>, DecodeError> {
        self.opt(|d| d.id())
    }
    /// A count that must not exceed `max` (checked before anything is allocated).
    fn count(&mut self, max: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(DecodeError("count over limit"));
        }
        Ok(n)
    }
    pub fn currency(&mut self) -> Result<Currency, DecodeError> {
        let code: [u8; 3] = self.arr()?;
        std::str::from_utf8(&code)
            .ok()
            .and_then(Currency::from_code)
            .ok_or(DecodeError("bad currency"))
    }
    fn opt_currency(&mut self) -> Result<Option<Currency>, DecodeError> {
        self.opt(|d| d.currency())
    }
    fn map(&mut self, max: usize) -> Result<BTreeMap<String, String>, DecodeError> {
        let n = self.count(max)?;
        let mut m = BTreeMap::new();
        for _ in 0..n {
            let k = self.string()?;
            let v = self.string()?;
            // Canonical form only (strictly increasing keys), so decode/encode round-trips.
            if m.last_key_value().is_some_and(|(last, _)| *last >= k) {
                return Err(DecodeError("map keys out of order"));
            }
            m.insert(k, v);
        }
        Ok(m)
    }
    fn balances(&mut self) -> Result<Balances, DecodeError> {
        Ok(Balances {
            debits_posted: self.u128()?,
            credits_posted: self.u128()?,
            debits_pending: self.u128()?,
            credits_pending: self.u128()?,
        })
    }
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError("trailing bytes"))
        }
    }
    fn version(&mut self) -> Result<(), DecodeError> {
        if self.u8()? != VERSION {
            return Err(DecodeError("unknown version"));
        }
        Ok(())
    }
}

// ---- commands -------------------------------------------------------------------------------------

/// Encodes one command's body (the part its idempotency fingerprint covers).
pub fn encode_command(e: &mut Enc, c: &Command) {
    match c {
        Command::CreateAccount(a) => {
            e.u8(1);
            e.id(a.id);
            e.str(&a.currency);
            e.u8(a.kind as u8);
            e.bool(a.debits_must_not_exceed_credits);
            e.bool(a.credits_must_not_exceed_debits);
            e.opt_decimal(a.overdraft);
            e.opt_decimal(a.limits.per_transfer_max);
            e.opt_decimal(a.limits.daily_outflow_max);
            e.opt_u32(a.limits.daily_outflow_count_max);
            e.opt_decimal(a.limits.balance_max);
            e.str(&a.reference);
            e.map(&a.metadata);
        }
        Command::CreateTransfer(t) => {
            // Tag 8 carries each leg's declared currency; tag 2 (no currencies) is what commands
            // logged before that looked like, kept so they decode and fingerprint as they did.
            let declared = t.legs.iter().any(|l| l.currency.is_some());
            e.u8(if declared { 8 } else { 2 });
            e.id(t.id);
            e.u32(t.legs.len() as u32);
            for l in &t.legs {
                e.id(l.debit);
                e.id(l.credit);
                e.decimal(l.amount);
                if declared {
                    e.opt_currency(l.currency);
                }
            }
            e.opt_u64(t.pending_timeout_seconds);
            e.str(&t.reference);
        }
        Command::PostPending(p) => {
            // Tag 9 adds the declared currency (tag 3: as logged before it existed).
            e.u8(if p.currency.is_some() { 9 } else { 3 });
            e.id(p.id);
            e.id(p.pending_id);
            e.opt_decimal(p.amount);
            if let Some(c) = p.currency {
                e.currency(c);
            }
        }
        Command::VoidPending(v) => {
            e.u8(4);
            e.id(v.id);
            e.id(v.pending_id);
        }
        Command::SetAccountStatus(s) => {
            e.u8(5);
            e.id(s.id);
            e.id(s.account);
            e.u8(s.status as u8);
        }
        Command::RegisterClient(r) => {
            e.u8(6);
            e.id(r.id);
            e.buf.extend_from_slice(&r.public_key);
            e.u8(r.role as u8);
            e.str(&r.name);
        }
        Command::RevokeClient(r) => {
            e.u8(7);
            e.id(r.id);
            e.buf.extend_from_slice(&r.public_key);
        }
    }
}

/// Decodes one command. Structural limits (legs, metadata entries) are enforced here; business
/// validation happens at apply time.
pub fn decode_command(d: &mut Dec<'_>) -> Result<Command, DecodeError> {
    Ok(match d.u8()? {
        1 => Command::CreateAccount(CreateAccount {
            id: d.id()?,
            currency: d.string()?,
            kind: AccountKind::from_repr(d.u8()?).ok_or(DecodeError("bad account kind"))?,
            debits_must_not_exceed_credits: d.bool()?,
            credits_must_not_exceed_debits: d.bool()?,
            overdraft: d.opt_decimal()?,
            limits: LimitsSpec {
                per_transfer_max: d.opt_decimal()?,
                daily_outflow_max: d.opt_decimal()?,
                daily_outflow_count_max: d.opt_u32()?,
                balance_max: d.opt_decimal()?,
            },
            reference: d.string()?,
            metadata: d.map(METADATA_ENTRIES_ENCODED_MAX)?,
        }),
        tag @ (2 | 8) => {
            let declared = tag == 8;
            let id = d.id()?;
            let n = d.count(LEGS_ENCODED_MAX)?;
            let mut legs = Vec::with_capacity(n);
            for _ in 0..n {
                legs.push(LegSpec {
                    debit: d.id()?,
                    credit: d.id()?,
                    amount: d.decimal()?,
                    currency: if declared { d.opt_currency()? } else { None },
                });
            }
            if declared && legs.iter().all(|l| l.currency.is_none()) {
                // Canonical form only: the encoder writes such a transfer with tag 2.
                return Err(DecodeError("tag 8 without a declared currency"));
            }
            Command::CreateTransfer(CreateTransfer {
                id,
                legs,
                pending_timeout_seconds: d.opt_u64()?,
                reference: d.string()?,
            })
        }
        tag @ (3 | 9) => Command::PostPending(PostPending {
            id: d.id()?,
            pending_id: d.id()?,
            amount: d.opt_decimal()?,
            currency: if tag == 9 { Some(d.currency()?) } else { None },
        }),
        4 => Command::VoidPending(VoidPending {
            id: d.id()?,
            pending_id: d.id()?,
        }),
        5 => Command::SetAccountStatus(SetAccountStatus {
            id: d.id()?,
            account: d.id()?,
            status: AccountStatus::from_repr(d.u8()?).ok_or(DecodeError("bad status"))?,
        }),
        6 => Command::RegisterClient(RegisterClient {
            id: d.id()?,
            public_key: d.arr()?,
            role: ClientRole::from_repr(d.u8()?).ok_or(DecodeError("bad role"))?,
            name: d.string()?,
        }),
        7 => Command::RevokeClient(RevokeClient {
            id: d.id()?,
            public_key: d.arr()?,
        }),
        _ => return Err(DecodeError("unknown command tag")),
    })
}

/// Encodes a list of commands: the payload a client batch travels in through the Raft log.
pub fn encode_commands(commands: &[Command]) -> Vec<u8> {
    let mut e = Enc::with_capacity(16 + commands.len() * 96);
    e.u8(VERSION);
    e.u32(commands.len() as u32);
    for c in commands {
        encode_command(&mut e, c);
    }
    e.buf
}

pub fn decode_commands(bytes: &[u8]) -> Result<Vec<Command>, DecodeError> {
    let mut d = Dec::new(bytes);
    d.version()?;
    let n = d.count(BATCH_COMMANDS_MAX)?;
    // Bound the pre-allocation by what the input could possibly hold (a command is > 16 bytes).
    let mut v = Vec::with_capacity(n.min(bytes.len() / 16));
    for _ in 0..n {
        v.push(decode_command(&mut d)?);
    }
    d.finish()?;
    Ok(v)
}

pub fn encode_result(e: &mut Enc, r: &CommandResult) {
    e.u16(r.code as u16);
    e.u64(r.timestamp_ns);
}

pub fn decode_result(d: &mut Dec<'_>) -> Result<CommandResult, DecodeError> {
    Ok(CommandResult {
        code: ResultCode::from_u16(d.u16()?).ok_or(DecodeError("unknown result code"))?,
        timestamp_ns: d.u64()?,
    })
}

pub fn encode_results(results: &[CommandResult]) -> Vec<u8> {
    let mut e = Enc::with_capacity(5 + results.len() * 10);
    e.u8(VERSION);
    e.u32(results.len() as u32);
    for r in results {
        encode_result(&mut e, r);
    }
    e.buf
}

pub fn decode_results(bytes: &[u8]) -> Result<Vec<CommandResult>, DecodeError> {
    let mut d = Dec::new(bytes);
    d.version()?;
    let n = d.count(BATCH_COMMANDS_MAX)?;
    let mut v = Vec::with_capacity(n.min(bytes.len() / 10));
    for _ in 0..n {
        v.push(decode_result(&mut d)?);
    }
    d.finish()?;
    Ok(v)
}

// ---- stored records -------------------------------------------------------------------------------

pub(crate) fn encode_account(a: &Account) -> Vec<u8> {
    let mut e = Enc::with_capacity(160 + a.info.reference.len());
    e.u8(VERSION);
    let i = &a.info;
    e.id(i.id);
    e.currency(i.currency);
    e.u8(i.kind as u8);
    e.u8(i.flags);
    e.u128(i.overdraft);
    e.opt_u128(i.limits.per_transfer_max);
    e.opt_u128(i.limits.daily_outflow_max);
    e.opt_u32(i.limits.daily_outflow_count_max);
    e.opt_u128(i.limits.balance_max);
    e.str(&i.reference);
    e.map(&i.metadata);
    e.u64(i.created_ns);
    let s = &a.state;
    e.u8(s.status as u8);
    e.balances(&s.balances);
    e.u64(s.posting_seq);
    e.u32(s.day);
    e.u128(s.day_outflow);
    e.u32(s.day_outflow_count);
    e.u32(s.pending_count);
    e.buf
}

pub(crate) fn decode_account(b: &[u8]) -> Result<Account, DecodeError> {
    let mut d = Dec::new(b);
    d.version()?;
    let id = d.id()?;
    let currency = d.currency()?;
    let info = AccountInfo {
        id,
        currency,
        kind: AccountKind::from_repr(d.u8()?).ok_or(DecodeError("bad kind"))?,
        flags: match d.u8()? {
            f if f & !FLAGS_KNOWN == 0 => f,
            _ => return Err(DecodeError("unknown account flags")),
        },
        overdraft: d.u128()?,
        limits: Limits {
            per_transfer_max: d.opt_u128()?,
            daily_outflow_max: d.opt_u128()?,
            daily_outflow_count_max: d.opt_u32()?,
            balance_max: d.opt_u128()?,
        },
        reference: d.string()?,
        metadata: d.map(METADATA_ENTRIES_MAX)?,
        created_ns: d.u64()?,
    };
    let state = AccountState {
        status: AccountStatus::from_repr(d.u8()?).ok_or(DecodeError("bad account status"))?,
        balances: d.balances()?,
        posting_seq: d.u64()?,
        day: d.u32()?,
        day_outflow: d.u128()?,
        day_outflow_count: d.u32()?,
        pending_count: d.u32()?,
    };
    d.finish()?;
    Ok(Account { info, state })
}

/// A command record: the body fingerprint, the final result, and for transfers the transfer itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct CommandRecord {
    pub fingerprint: [u8; 16],
    pub result: CommandResult,
    pub transfer: Option<Transfer>,
}

pub(crate) fn encode_command_record(r: &CommandRecord) -> Vec<u8> {
    let legs = r.transfer.as_ref().map_or(0, |t| t.legs.len());
    let mut e = Enc::with_capacity(96 + legs * 48);
    e.u8(VERSION);
    e.buf.extend_from_slice(&r.fingerprint);
    encode_result(&mut e, &r.result);
    match &r.transfer {
        None => e.u8(0),
        Some(t) => {
            e.u8(1);
            e.id(t.id);
            e.u32(t.legs.len() as u32);
            for l in &t.legs {
                e.id(l.debit);
                e.id(l.credit);
                e.u128(l.amount);
            }
            e.u8(t.state as u8);
            e.opt_id(t.pending_id);
            e.opt_u64(t.expires_ns);
            e.opt_u128(t.posted_amount);
            e.str(&t.reference);
            e.u64(t.timestamp_ns);
        }
    }
    e.buf
}

pub(crate) fn decode_command_record(b: &[u8]) -> Result<CommandRecord, DecodeError> {
    let mut d = Dec::new(b);
    d.version()?;
    let fingerprint = d.arr()?;
    let result = decode_result(&mut d)?;
    let transfer = match d.u8()? {
        0 => None,
        1 => {
            let id = d.id()?;
            let n = d.count(LEGS_MAX)?;
            let mut legs = Vec::with_capacity(n);
            for _ in 0..n {
                legs.push(Leg {
                    debit: d.id()?,
                    credit: d.id()?,
                    amount: d.u128()?,
                });
            }
            Some(Transfer {
                id,
                legs,
                state: TransferState::from_repr(d.u8()?).ok_or(DecodeError("bad state"))?,
                pending_id: d.opt_id()?,
                expires_ns: d.opt_u64()?,
                posted_amount: d.opt_u128()?,
                reference: d.string()?,
                timestamp_ns: d.u64()?,
            })
        }
        _ => return Err(DecodeError("bad transfer tag")),
    };
    d.finish()?;
    Ok(CommandRecord {
        fingerprint,
        result,
        transfer,
    })
}

pub(crate) fn encode_posting(p: &Posting) -> Vec<u8> {
    let mut e = Enc::with_capacity(112);
    e.u8(VERSION);
    e.id(p.transfer);
    e.u8(p.leg);
    e.u8(p.kind as u8);
    e.bool(p.is_debit);
    e.u128(p.amount);
    e.u64(p.timestamp_ns);
    e.balances(&p.balances_after);
    e.buf
}

pub(crate) fn decode_posting(account: Id, seq: u64, b: &[u8]) -> Result<Posting, DecodeError> {
    let mut d = Dec::new(b);
    d.version()?;
    let p = Posting {
        account,
        seq,
        transfer: d.id()?,
        leg: d.u8()?,
        kind: PostingKind::from_repr(d.u8()?).ok_or(DecodeError("bad posting kind"))?,
        is_debit: d.bool()?,
        amount: d.u128()?,
        timestamp_ns: d.u64()?,
        balances_after: d.balances()?,
    };
    d.finish()?;
    Ok(p)
}

pub(crate) fn encode_client(c: &Client) -> Vec<u8> {
    let mut e = Enc::with_capacity(64 + c.name.len());
    e.u8(VERSION);
    e.buf.extend_from_slice(&c.public_key);
    e.u8(c.role as u8);
    e.str(&c.name);
    e.bool(c.revoked);
    e.u64(c.registered_ns);
    e.buf
}

pub(crate) fn decode_client(b: &[u8]) -> Result<Client, DecodeError> {
    let mut d = Dec::new(b);
    d.version()?;
    let c = Client {
        public_key: d.arr()?,
        role: ClientRole::from_repr(d.u8()?).ok_or(DecodeError("bad role"))?,
        name: d.string()?,
        revoked: d.bool()?,
        registered_ns: d.u64()?,
    };
    d.finish()?;
    Ok(c)
}

/// The body of the `ledger_codec` fuzz target (and of its corpus replay test): decoding must not
/// panic, and a successful decode must round-trip byte for byte.
pub fn fuzz_decode_commands(data: &[u8]) {
    if let Ok(cmds) = decode_commands(data) {
        assert_eq!(encode_commands(&cmds), data, "decode/encode round trip");
    }
    let _ = decode_results(data);
}
