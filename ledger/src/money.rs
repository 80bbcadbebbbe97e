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

/// An ISO 4217 currency: alphabetic code, numeric code (used by EMV QR tag 53) and minor-unit exponent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency {
    code: [u8; 3],
    numeric: u16,
    exponent: u8,
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
                code: c.as_bytes().try_into().expect("table codes are 3 bytes"),
                numeric,
                exponent,
            })
    }

    /// Looks up an ISO 4217 numeric code (as carried in EMV QR tag 53).
    pub fn from_numeric(numeric: u16) -> Option<Currency> {
        CURRENCIES
            .iter()
            .find(|(_, n, _)| *n == numeric)
            .and_then(|(c, _, _)| Currency::from_code(c))
    }

    pub fn code(&self) -> &str {
        std::str::from_utf8(&self.code).expect("currency codes are ASCII")
    }

    pub fn numeric(&self) -> u16 {
        self.numeric
    }

    /// Number of fractional digits of the minor unit (CNY 2, JPY 0, KWD 3).
    pub fn exponent(&self) -> u8 {
        self.exponent
    }

    pub(crate) fn code_bytes(&self) -> [u8; 3] {
        self.code
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
}
