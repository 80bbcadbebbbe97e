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

mod commands;
mod records;

pub use self::commands::*;
pub(crate) use self::records::*;

const VERSION: u8 = 1;
/// Bytes of the longest [`Enc::var`] (a `u128`: 19 × 7 ≥ 128 bits).
const VAR_BYTES_MAX: usize = 19;
/// First byte of an in-app currency (ISO codes start with a letter), and the scale byte of a code a
/// client declared but the ledger has not resolved.
const IN_APP_CURRENCY: u8 = 0x01;
const DECLARED_SCALE: u8 = 0xFF;

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
    /// `v` in as few bytes as it needs (LEB128: seven bits a byte, low first, the high bit set
    /// on every byte but the last): amounts and balances in minor units are mostly small.
    #[inline]
    pub(crate) fn var(&mut self, mut v: u128) {
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
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
    /// An ISO currency is its three letters (as always); an in-app one is `0x01`, the code's length
    /// and bytes, and its scale (`0xFF` for a code a client declared, not yet resolved).
    pub fn currency(&mut self, c: Currency) {
        if c.is_in_app() {
            self.u8(IN_APP_CURRENCY);
            self.u8(c.code().len() as u8);
            self.buf.extend_from_slice(c.code().as_bytes());
            self.u8(if c.is_declared_only() {
                DECLARED_SCALE
            } else {
                c.exponent()
            });
        } else {
            self.buf.extend_from_slice(c.code().as_bytes());
        }
    }
    pub(crate) fn map(&mut self, m: &BTreeMap<String, String>) {
        self.u32(m.len() as u32);
        for (k, v) in m {
            self.str(k);
            self.str(v);
        }
    }
    pub(crate) fn balances(&mut self, b: &Balances) {
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
    pub(crate) fn arr<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
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
    /// A value written by [`Enc::var`]; only its shortest form is accepted, so every value has
    /// exactly one encoding.
    pub(crate) fn var(&mut self) -> Result<u128, DecodeError> {
        let mut v: u128 = 0;
        for i in 0..VAR_BYTES_MAX {
            let b = self.u8()?;
            let bits = u128::from(b & 0x7F);
            let shift = 7 * i as u32;
            if shift > 0 && bits >> (128 - shift) != 0 {
                return Err(DecodeError("varint past 128 bits"));
            }
            v |= bits << shift;
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(DecodeError("varint not in its shortest form"));
                }
                return Ok(v);
            }
        }
        Err(DecodeError("varint too long"))
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
    pub(crate) fn opt<T>(
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
    /// A count or length written with [`Enc::var`], at most `max`.
    pub(crate) fn var_count(&mut self, max: usize) -> Result<usize, DecodeError> {
        match usize::try_from(self.var()?) {
            Ok(n) if n <= max => Ok(n),
            _ => Err(DecodeError("count over limit")),
        }
    }
    /// A count that must not exceed `max` (checked before anything is allocated).
    pub(crate) fn count(&mut self, max: usize) -> Result<usize, DecodeError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(DecodeError("count over limit"));
        }
        Ok(n)
    }
    pub fn currency(&mut self) -> Result<Currency, DecodeError> {
        let bad = DecodeError("bad currency");
        if self.buf.first() == Some(&IN_APP_CURRENCY) {
            self.u8()?;
            let len = usize::from(self.u8()?);
            if len > crate::money::CODE_BYTES_MAX {
                return Err(bad);
            }
            let code =
                std::str::from_utf8(self.take(len)?).map_err(|_| DecodeError("bad currency"))?;
            let code = code.to_string();
            return match self.u8()? {
                DECLARED_SCALE => Currency::declared(&code).filter(|c| c.is_in_app()),
                scale => Currency::in_app(&code, scale),
            }
            .ok_or(bad);
        }
        let code: [u8; 3] = self.arr()?;
        std::str::from_utf8(&code)
            .ok()
            .and_then(Currency::from_code)
            .ok_or(bad)
    }
    pub(crate) fn opt_currency(&mut self) -> Result<Option<Currency>, DecodeError> {
        self.opt(|d| d.currency())
    }
    pub(crate) fn map(&mut self, max: usize) -> Result<BTreeMap<String, String>, DecodeError> {
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
    pub(crate) fn balances(&mut self) -> Result<Balances, DecodeError> {
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
    pub(crate) fn version(&mut self) -> Result<(), DecodeError> {
        if self.u8()? != VERSION {
            return Err(DecodeError("unknown version"));
        }
        Ok(())
    }
}
