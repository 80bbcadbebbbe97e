//! Currencies and amounts.
//!
//! Amounts arrive as `rust_decimal::Decimal` in a currency's major unit ("12.34" CNY) and are held
//! internally as an unsigned count of minor units (1234 fen). The conversion is the single place that
//! decides what a valid amount is: zero, negative, more fractional digits than the currency allows, and
//! values beyond [`MAX_MINOR`] are each rejected with their own result code. Nothing is ever rounded.

use rust_decimal::Decimal;

use crate::result::ResultCode;

/// Largest amount or balance total, in minor units: the largest mantissa a `Decimal` can carry, so every
/// stored total converts back to a `Decimal` exactly. Sums beyond it are an `Overflow` result.
pub const MAX_MINOR: u128 = (1u128 << 96) - 1;

/// A currency: an ISO 4217 one (alphabetic code, numeric code used by EMV QR tag 53, minor-unit
/// exponent) or an in-app one (points, coins: 3–8 upper-case letters, scale 0–8, defined through the
/// log). Identity is the code alone: equality, hashing and order look at nothing else, so a
/// currency a client *declared* (known only by its code until the ledger resolves it) equals the
/// ledger's own.
#[derive(Clone, Copy, Debug)]
pub struct Currency {
    /// The code, zero-padded (so byte order is string order).
    code: [u8; CODE_BYTES_MAX],
    numeric: u16,
    exponent: u8,
    origin: Origin,
}

/// Where a [`Currency`] value comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Iso,
    /// Defined in the ledger (its exponent is authoritative).
    InApp,
    /// Named by a client: an in-app code not yet resolved against the ledger's definitions. Its
    /// exponent is the largest allowed, for a first check at the edge only; the ledger never reads an
    /// amount in it ([`Currency::to_minor`] refuses).
    Declared,
}

/// Longest in-app currency code, and the largest in-app scale.
pub const CODE_BYTES_MAX: usize = 8;
pub const IN_APP_SCALE_MAX: u8 = 8;

impl PartialEq for Currency {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
    }
}
impl Eq for Currency {}
impl std::hash::Hash for Currency {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.code.hash(state)
    }
}
impl PartialOrd for Currency {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Currency {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.code.cmp(&other.code)
    }
}

/// Every active ISO 4217 alphabetic code (and the X-codes for metals, funds and testing): none of
/// them may be defined as an in-app currency, whether or not the ledger accepts it as money.
const ISO_4217_CODES: &str = "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD \
BND BOB BOV BRL BSD BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUC CUP CVE CZK DJF \
DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HRK HTG HUF IDR ILS INR \
IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD \
MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG \
QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD SHP SLE SLL SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND \
TOP TRY TTD TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB XBC XBD \
XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG ZWL";

/// True for a code ISO 4217 assigns (see [`ISO_4217_CODES`]).
pub fn is_iso_4217(code: &str) -> bool {
    code.len() == 3 && ISO_4217_CODES.split_ascii_whitespace().any(|c| c == code)
}

/// True for a well-formed in-app code: 3–8 upper-case ASCII letters, not an ISO 4217 code.
pub fn is_in_app_code(code: &str) -> bool {
    (3..=CODE_BYTES_MAX).contains(&code.len())
        && code.bytes().all(|b| b.is_ascii_uppercase())
        && !is_iso_4217(code)
}

fn padded(code: &str) -> [u8; CODE_BYTES_MAX] {
    let mut c = [0u8; CODE_BYTES_MAX];
    c[..code.len()].copy_from_slice(code.as_bytes());
    c
}

/// The currencies the ledger accepts. A code missing here is `InvalidCurrency`; adding one is a
/// deliberate change (a new exponent changes how amounts validate).
const CURRENCIES: &[(&str, u16, u8)] = &[
    ("AED", 784, 2),
    ("AUD", 36, 2),
    ("BHD", 48, 3),
    ("BRL", 986, 2),
    ("CAD", 124, 2),
    ("CHF", 756, 2),
    ("CLP", 152, 0),
    ("CNY", 156, 2),
    ("EUR", 978, 2),
    ("GBP", 826, 2),
    ("HKD", 344, 2),
    ("IDR", 360, 2),
    ("INR", 356, 2),
    ("JOD", 400, 3),
    ("JPY", 392, 0),
    ("KRW", 410, 0),
    ("KWD", 414, 3),
    ("MOP", 446, 2),
    ("MYR", 458, 2),
    ("NZD", 554, 2),
    ("OMR", 512, 3),
    ("PHP", 608, 2),
    ("SGD", 702, 2),
    ("THB", 764, 2),
    ("TND", 788, 3),
    ("TWD", 901, 2),
    ("USD", 840, 2),
    ("VND", 704, 0),
];

impl Currency {
    /// Looks up an alphabetic ISO 4217 code (upper case, exactly three letters).
    pub fn from_code(code: &str) -> Option<Currency> {
        CURRENCIES
            .iter()
            .find(|(c, _, _)| *c == code)
            .map(|&(c, numeric, exponent)| Currency {
                code: padded(c),
                numeric,
                exponent,
                origin: Origin::Iso,
            })
    }

    /// An in-app currency as the ledger defines it (`None` for a malformed or ISO code, or a scale
    /// over [`IN_APP_SCALE_MAX`]).
    pub fn in_app(code: &str, scale: u8) -> Option<Currency> {
        (is_in_app_code(code) && scale <= IN_APP_SCALE_MAX).then(|| Currency {
            code: padded(code),
            numeric: 0,
            exponent: scale,
            origin: Origin::InApp,
        })
    }

    /// A currency as a client names it: an accepted ISO code, or a well-formed in-app code that the
    /// ledger resolves at apply time (unknown there: `invalid_currency` or `currency_mismatch`).
    pub fn declared(code: &str) -> Option<Currency> {
        Currency::from_code(code).or_else(|| {
            is_in_app_code(code).then(|| Currency {
                code: padded(code),
                numeric: 0,
                exponent: IN_APP_SCALE_MAX,
                origin: Origin::Declared,
            })
        })
    }

    /// True for in-app currencies (defined or declared): no ISO numeric code, no EMV QR.
    pub fn is_in_app(&self) -> bool {
        self.origin != Origin::Iso
    }

    /// True for a declared code not yet resolved against the ledger's definitions.
    pub fn is_declared_only(&self) -> bool {
        self.origin == Origin::Declared
    }

    /// Looks up an ISO 4217 numeric code (as carried in EMV QR tag 53).
    pub fn from_numeric(numeric: u16) -> Option<Currency> {
        CURRENCIES
            .iter()
            .find(|(_, n, _)| *n == numeric)
            .and_then(|(c, _, _)| Currency::from_code(c))
    }

    pub fn code(&self) -> &str {
        let len = self
            .code
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(CODE_BYTES_MAX);
        std::str::from_utf8(&self.code[..len]).expect("currency codes are ASCII")
    }

    pub fn numeric(&self) -> u16 {
        self.numeric
    }

    /// Number of fractional digits of the minor unit (CNY 2, JPY 0, KWD 3).
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    /// Converts a client amount to minor units, rejecting anything that is not a positive, exactly
    /// representable amount of this currency.
    pub fn to_minor(&self, amount: Decimal) -> Result<u128, ResultCode> {
        if amount.is_zero() {
            return Err(ResultCode::AmountZero);
        }
        if amount.is_sign_negative() {
            return Err(ResultCode::AmountNegative);
        }
        self.to_minor_allow_zero(amount)
    }

    /// As [`Currency::to_minor`] but zero is accepted (limits and overdrafts may be zero).
    pub fn to_minor_allow_zero(&self, amount: Decimal) -> Result<u128, ResultCode> {
        if self.origin == Origin::Declared {
            // Never read an amount in a scale the ledger has not confirmed.
            return Err(ResultCode::InvalidCurrency);
        }
        if amount.is_sign_negative() && !amount.is_zero() {
            return Err(ResultCode::AmountNegative);
        }
        // Trailing zeros are not precision: "12.300" CNY is 1230 fen.
        let amount = amount.normalize();
        let scale = amount.scale();
        if scale > u32::from(self.exponent) {
            return Err(ResultCode::AmountPrecision);
        }
        let mantissa = amount.mantissa().unsigned_abs();
        let factor = 10u128.pow(u32::from(self.exponent) - scale);
        match mantissa.checked_mul(factor) {
            Some(minor) if minor <= MAX_MINOR => Ok(minor),
            _ => Err(ResultCode::Overflow),
        }
    }

    /// Converts minor units back to a decimal in the major unit, with the currency's scale.
    pub fn to_decimal(&self, minor: u128) -> Decimal {
        debug_assert!(minor <= MAX_MINOR);
        Decimal::from_i128_with_scale(minor as i128, u32::from(self.exponent))
    }

    /// Signed variant for net balances.
    pub fn to_decimal_signed(&self, minor: i128) -> Decimal {
        Decimal::from_i128_with_scale(minor, u32::from(self.exponent))
    }
}

impl std::fmt::Display for Currency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Checked addition within [`MAX_MINOR`].
#[inline]
pub(crate) fn add(a: u128, b: u128) -> Result<u128, ResultCode> {
    match a.checked_add(b) {
        Some(v) if v <= MAX_MINOR => Ok(v),
        _ => Err(ResultCode::Overflow),
    }
}

/// Checked multiplication within [`MAX_MINOR`].
pub(crate) fn mul(a: u128, b: u128) -> Result<u128, ResultCode> {
    match a.checked_mul(b) {
        Some(v) if v <= MAX_MINOR => Ok(v),
        _ => Err(ResultCode::Overflow),
    }
}

/// A fee: `amount × bps / 10 000`, rounded half up to the minor unit (the one fee rule).
pub fn fee_half_up(amount: u128, bps: u32) -> u128 {
    mul_div_half_up(amount, u128::from(bps), 10_000)
}

/// `a × b / c` rounded half up, exact for any `a, b ≤ MAX_MINOR` (the product may pass `u128`: it is
/// then divided as a 256-bit number). Pro-rata shares use it on cumulative totals, so the parts of a
/// whole always add up to the whole. Panics if `c` is zero (callers divide by a paid amount, never 0).
pub fn mul_div_half_up(a: u128, b: u128, c: u128) -> u128 {
    assert!(c > 0 && c <= MAX_MINOR.max(10_000), "divisor within range");
    let (q, r) =
        mul_div_rem(a, b, c).expect("a, b ≤ MAX_MINOR and c ≥ 1 keep the quotient in range");
    if r * 2 >= c {
        q + 1
    } else {
        q
    }
}

/// `⌊a × b / c⌋`, or `None` when the quotient does not fit `u128` (conversions round down to the
/// target's minor unit). `c` must be in `1 ..= 2^126`.
pub fn mul_div_floor(a: u128, b: u128, c: u128) -> Option<u128> {
    mul_div_rem(a, b, c).map(|(q, _)| q)
}

/// Quotient and remainder of the full 256-bit `a × b` by `c` (`0 < c ≤ 2^126`); `None` when the
/// quotient passes `u128`.
fn mul_div_rem(a: u128, b: u128, c: u128) -> Option<(u128, u128)> {
    assert!(c > 0 && c <= 1u128 << 126, "divisor within range");
    if let Some(p) = a.checked_mul(b) {
        return Some((p / c, p % c));
    }
    // 256-bit product as (hi, lo) from 64-bit halves, then binary long division by c.
    let (a1, a0) = (a >> 64, a & u128::from(u64::MAX));
    let (b1, b0) = (b >> 64, b & u128::from(u64::MAX));
    let lo_lo = a0 * b0;
    let mid1 = a1 * b0;
    let mid2 = a0 * b1;
    let (mid, mid_carry) = mid1.overflowing_add(mid2);
    let (lo, lo_carry) = lo_lo.overflowing_add(mid << 64);
    let hi = a1 * b1 + (mid >> 64) + (u128::from(mid_carry) << 64) + u128::from(lo_carry);
    if hi >= c {
        // The quotient is at least 2^128.
        return None;
    }
    let (mut q, mut r) = (0u128, 0u128);
    for i in (0..256).rev() {
        let bit = if i >= 128 {
            (hi >> (i - 128)) & 1
        } else {
            (lo >> i) & 1
        };
        // r < c ≤ 2^126, so the shift cannot overflow.
        r = (r << 1) | bit;
        q <<= 1;
        if r >= c {
            r -= c;
            q |= 1;
        }
    }
    Some((q, r))
}

/// Splits `total` minor units by `weights` with the largest-remainder rule: each part first gets
/// `⌊total × w / W⌋`; the units left over go one each to the parts with the largest remainders
/// `(total × w) mod W`; among equal remainders, parts go in participant order rotated by
/// `rotation` (part `rotation` first, then the next, wrapping). The parts always sum to `total`,
/// and equal weights get parts that differ by at most one unit. Callers bound `total` (≤ 2^96) and
/// every weight (≤ 2^24), so the products fit.
pub fn largest_remainder(total: u128, weights: &[u128], rotation: usize) -> Vec<u128> {
    let sum: u128 = weights.iter().sum();
    assert!(sum > 0 && !weights.is_empty(), "weights sum to something");
    let n = weights.len();
    let mut parts: Vec<u128> = weights.iter().map(|w| total * w / sum).collect();
    let left = total - parts.iter().sum::<u128>();
    let mut order: Vec<usize> = (0..n).collect();
    // Largest remainder first; ties by position after the rotation.
    order.sort_by(|&a, &b| {
        let (ra, rb) = (total * weights[a] % sum, total * weights[b] % sum);
        rb.cmp(&ra)
            .then(((a + n - rotation % n) % n).cmp(&((b + n - rotation % n) % n)))
    });
    for &i in order.iter().take(left as usize) {
        parts[i] += 1;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn conversion_table() {
        let cny = Currency::from_code("CNY").unwrap();
        let jpy = Currency::from_code("JPY").unwrap();
        let kwd = Currency::from_code("KWD").unwrap();
        assert_eq!(cny.to_minor(d("12.34")), Ok(1234));
        assert_eq!(cny.to_minor(d("12.300")), Ok(1230));
        assert_eq!(cny.to_minor(d("12")), Ok(1200));
        assert_eq!(cny.to_minor(d("12.345")), Err(ResultCode::AmountPrecision));
        assert_eq!(cny.to_minor(d("0")), Err(ResultCode::AmountZero));
        assert_eq!(cny.to_minor(d("-0.00")), Err(ResultCode::AmountZero));
        assert_eq!(cny.to_minor(d("-1")), Err(ResultCode::AmountNegative));
        assert_eq!(jpy.to_minor(d("100")), Ok(100));
        assert_eq!(jpy.to_minor(d("100.5")), Err(ResultCode::AmountPrecision));
        assert_eq!(kwd.to_minor(d("1.234")), Ok(1234));
        assert_eq!(cny.to_minor(Decimal::MAX), Err(ResultCode::Overflow));
        assert_eq!(cny.to_decimal(1234).to_string(), "12.34");
        assert_eq!(Currency::from_numeric(156), Some(cny));
        assert!(Currency::from_code("XXX").is_none());
        assert!(Currency::from_code("cny").is_none());
    }

    #[test]
    fn in_app_currencies() {
        let q = Currency::in_app("QCOIN", 0).unwrap();
        assert_eq!(q.code(), "QCOIN");
        assert!(q.is_in_app() && !q.is_declared_only());
        assert_eq!(q.to_minor(d("10")), Ok(10));
        assert_eq!(q.to_minor(d("10.5")), Err(ResultCode::AmountPrecision));
        // ISO codes, bad shapes and scales are refused.
        for bad in ["CNY", "ZAR", "XAU", "QC", "QCOINSXXL", "qcoin", "Q1COIN"] {
            assert!(Currency::in_app(bad, 0).is_none(), "{bad}");
        }
        assert!(Currency::in_app("POINTS", 9).is_none());
        // A declared code equals the defined one but reads no amount.
        let declared = Currency::declared("QCOIN").unwrap();
        assert_eq!(declared, q);
        assert!(declared.is_declared_only());
        assert_eq!(declared.to_minor(d("1")), Err(ResultCode::InvalidCurrency));
        assert_eq!(Currency::declared("CNY"), Currency::from_code("CNY"));
        assert!(!Currency::declared("CNY").unwrap().is_in_app());
        assert!(Currency::declared("ZAR").is_none()); // ISO but not accepted: not in-app either
                                                      // Order is the codes' string order.
        assert!(Currency::from_code("CNY").unwrap() < q);
        assert!(Currency::in_app("QCO", 0).unwrap() < q);
    }

    #[test]
    fn floor_division_detects_overflow() {
        assert_eq!(mul_div_floor(1000, 10, 100), Some(100));
        assert_eq!(mul_div_floor(999, 1, 1000), Some(0));
        assert_eq!(mul_div_floor(MAX_MINOR, MAX_MINOR, 1), None);
        assert_eq!(
            mul_div_floor(MAX_MINOR, 1u128 << 100, 1u128 << 100),
            Some(MAX_MINOR)
        );
        assert_eq!(mul_div_floor(u128::MAX, 2, 2), Some(u128::MAX));
    }

    #[test]
    fn largest_remainder_vectors_of_the_domain() {
        // 100.00 in 3 equal parts → 33.34, 33.33, 33.33.
        assert_eq!(
            largest_remainder(10_000, &[1, 1, 1], 0),
            vec![3334, 3333, 3333]
        );
        // The tie break rotates: another split id gives another participant the extra fen.
        assert_eq!(
            largest_remainder(10_000, &[1, 1, 1], 2),
            vec![3333, 3333, 3334]
        );
        // 10.00 at weights 1:2:3 → 1.67, 3.33, 5.00.
        assert_eq!(largest_remainder(1_000, &[1, 2, 3], 1), vec![167, 333, 500]);
        // 30.05 in 10 equal parts → five of 3.01 and five of 3.00.
        let p = largest_remainder(3_005, &[1; 10], 7);
        assert_eq!(p.iter().filter(|&&x| x == 301).count(), 5);
        assert_eq!(p.iter().filter(|&&x| x == 300).count(), 5);
        assert_eq!(p.iter().sum::<u128>(), 3_005);
        // Percent in basis points.
        assert_eq!(
            largest_remainder(999, &[3_333, 3_333, 3_334], 0),
            vec![333, 333, 333]
        );
    }

    #[test]
    fn fees_and_pro_rata_round_half_up() {
        assert_eq!(fee_half_up(1000, 60), 6); // 10.00 at 0.6 % = 0.06
        assert_eq!(fee_half_up(1250, 60), 8); // 7.5 fen → 8
        assert_eq!(fee_half_up(1249, 60), 7); // 7.494 → 7
        assert_eq!(fee_half_up(1, 10_000), 1);
        assert_eq!(fee_half_up(0, 10_000), 0);
        // The wide path agrees with exact arithmetic.
        let big = MAX_MINOR;
        assert_eq!(mul_div_half_up(big, big, big), big);
        assert_eq!(mul_div_half_up(big, big - 1, big), big - 1);
        assert_eq!(mul_div_half_up(big, 3, 6), big / 2 + 1); // big is odd: x.5 rounds up
        assert_eq!(
            mul_div_half_up(1u128 << 90, 1u128 << 90, 1u128 << 95),
            1u128 << 85
        );
        assert_eq!(
            mul_div_half_up((1u128 << 90) + 1, 1u128 << 90, 1u128 << 91),
            (1u128 << 89) + 1 // + 0.5 rounds up
        );
    }
}
