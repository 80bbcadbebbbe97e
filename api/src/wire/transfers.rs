//! The binary (v2) form of a batch of transfers: fixed-width records in (`SubmitTransfers`),
//! packed results out. The layout is normative in `ledger.proto` (`SubmitTransfersRequest`).
//!
//! A record decodes to exactly the `CreateTransfer` command `Submit` makes of the same transfer
//! written as strings — same id, same canonical amount, same declared currency — so the command's
//! bytes, and with them its idempotency fingerprint and the replicas' digest, do not depend on the
//! form it arrived in. The checks both forms make are the same functions
//! ([`check_leg_accounts`], the canonical amount of [`amount_from_minor`]); a property test holds
//! the two decodings equal.

use ledger::{Command, CommandResult, Currency, Id};
use tonic::Status;

use super::{check_leg_accounts, invalid, AMOUNT_DIGITS_MAX};

/// Bytes of one transfer record.
pub const TRANSFER_RECORD_BYTES: usize = 80;
/// Bytes of one packed result (code u16, log time u64).
pub const RESULT_RECORD_BYTES: usize = 10;
/// The only flag bit defined: a two-phase transfer.
const FLAG_PENDING: u16 = 1;

/// One single-leg transfer as the v2 wire carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TransferRecord {
    pub id: Id,
    pub debit: Id,
    pub credit: Id,
    /// In the currency's minor units ("12.34" CNY is 1234).
    pub amount_minor: u128,
    /// ISO 4217 numeric code (156 = CNY).
    pub currency_numeric: u16,
    /// `Some`: a two-phase transfer held for at most this many seconds.
    pub pending_timeout_seconds: Option<u32>,
}

impl TransferRecord {
    /// Appends the record's 80 bytes.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.0.to_be_bytes());
        out.extend_from_slice(&self.debit.0.to_be_bytes());
        out.extend_from_slice(&self.credit.0.to_be_bytes());
        out.extend_from_slice(&self.amount_minor.to_le_bytes());
        out.extend_from_slice(&self.currency_numeric.to_le_bytes());
        let flags = if self.pending_timeout_seconds.is_some() {
            FLAG_PENDING
        } else {
            0
        };
        out.extend_from_slice(&flags.to_le_bytes());
        out.extend_from_slice(&self.pending_timeout_seconds.unwrap_or(0).to_le_bytes());
        out.extend_from_slice(&[0u8; 8]);
    }

    /// Reads one record's fields; the reason is the part of the layout it breaks (the field
    /// name is added by the caller).
    fn decode(b: &[u8; TRANSFER_RECORD_BYTES]) -> Result<TransferRecord, (&'static str, String)> {
        let u128_be = |at: usize| u128::from_be_bytes(b[at..at + 16].try_into().expect("16"));
        let flags = u16::from_le_bytes([b[66], b[67]]);
        let timeout = u32::from_le_bytes(b[68..72].try_into().expect("4"));
        if flags & !FLAG_PENDING != 0 {
            return Err(("flags", format!("undefined flag bits {flags:#06x}")));
        }
        if flags & FLAG_PENDING == 0 && timeout != 0 {
            return Err((
                "pending_timeout_seconds",
                format!("{timeout} without the two-phase flag"),
            ));
        }
        if b[72..].iter().any(|&x| x != 0) {
            return Err(("reserved", "bytes 72..80 must be zero".into()));
        }
        Ok(TransferRecord {
            id: Id(u128_be(0)),
            debit: Id(u128_be(16)),
            credit: Id(u128_be(32)),
            amount_minor: u128::from_le_bytes(b[48..64].try_into().expect("16")),
            currency_numeric: u16::from_le_bytes([b[64], b[65]]),
            pending_timeout_seconds: (flags & FLAG_PENDING != 0).then_some(timeout),
        })
    }
}

/// The records of a request body, back to back.
pub fn encode_transfers(records: &[TransferRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * TRANSFER_RECORD_BYTES);
    for r in records {
        r.encode_into(&mut out);
    }
    out
}

/// `transfers[i].name`, as an error names a record's field (formatted only into an error).
#[derive(Clone, Copy)]
struct RecordField(usize, &'static str);

impl std::fmt::Display for RecordField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "transfers[{}].{}", self.0, self.1)
    }
}

/// The amount `Submit` would parse from the same value written in major units: its canonical
/// decimal (trailing fractional zeros dropped), at most [`AMOUNT_DIGITS_MAX`] significant digits.
pub fn amount_from_minor(
    field: impl std::fmt::Display,
    minor: u128,
    currency: Currency,
) -> Result<rust_decimal::Decimal, Status> {
    let (mut mantissa, mut scale) = (minor, u32::from(currency.exponent()));
    while scale > 0 && mantissa % 10 == 0 {
        mantissa /= 10;
        scale -= 1;
    }
    if mantissa >= 10u128.pow(AMOUNT_DIGITS_MAX as u32) {
        return Err(invalid(format!(
            "{field}: {minor} minor units of {} is more than {AMOUNT_DIGITS_MAX} significant digits",
            currency.code()
        )));
    }
    // Below 10^28 < 2^96: the mantissa fits a Decimal.
    Ok(rust_decimal::Decimal::from_i128_with_scale(
        mantissa as i128,
        scale,
    ))
}

/// Converts a `SubmitTransfers` body into the commands `Submit` would make of the same
/// transfers. `account_currency` as for [`super::submit_from_pb`].
pub fn transfers_from_v2(
    bytes: &[u8],
    max_commands: usize,
    account_currency: &dyn Fn(Id) -> Option<Currency>,
) -> Result<Vec<Command>, Status> {
    if bytes.is_empty() {
        return Err(invalid(
            "empty batch: at least one transfer record is required".into(),
        ));
    }
    if bytes.len() % TRANSFER_RECORD_BYTES != 0 {
        return Err(invalid(format!(
            "transfers: {} bytes is not a whole number of {TRANSFER_RECORD_BYTES}-byte records",
            bytes.len()
        )));
    }
    let n = bytes.len() / TRANSFER_RECORD_BYTES;
    if n > max_commands {
        return Err(invalid(format!(
            "batch of {n} transfers exceeds the limit of {max_commands}"
        )));
    }
    let mut out = Vec::with_capacity(n);
    for (i, chunk) in bytes.chunks_exact(TRANSFER_RECORD_BYTES).enumerate() {
        let f = |name: &'static str| RecordField(i, name);
        let r = TransferRecord::decode(chunk.try_into().expect("exact chunks"))
            .map_err(|(name, why)| invalid(format!("{}: {why}", f(name))))?;
        for (name, id) in [
            ("id", r.id),
            ("debit_account_id", r.debit),
            ("credit_account_id", r.credit),
        ] {
            if id.is_zero() {
                return Err(invalid(format!(
                    "{}: the nil UUID is not a valid id",
                    f(name)
                )));
            }
        }
        let currency = Currency::from_numeric(r.currency_numeric).ok_or_else(|| {
            invalid(format!(
                "{}: {} is not an accepted ISO 4217 numeric code (in-app currencies go \
                 through Submit)",
                f("currency"),
                r.currency_numeric
            ))
        })?;
        check_leg_accounts(r.debit, r.credit, currency, account_currency, f)?;
        out.push(Command::CreateTransfer(ledger::CreateTransfer {
            id: r.id,
            legs: vec![ledger::LegSpec {
                debit: r.debit,
                credit: r.credit,
                amount: amount_from_minor(f("amount"), r.amount_minor, currency)?,
                currency: Some(currency),
            }],
            pending_timeout_seconds: r.pending_timeout_seconds.map(u64::from),
            reference: String::new(),
        }));
    }
    Ok(out)
}

/// The packed results of a `SubmitTransfers` answer, one per command in order.
pub fn pack_results(results: &[CommandResult]) -> Vec<u8> {
    let mut out = Vec::with_capacity(results.len() * RESULT_RECORD_BYTES);
    for r in results {
        out.extend_from_slice(&(r.code as u16).to_le_bytes());
        out.extend_from_slice(&r.timestamp_ns.to_le_bytes());
    }
    out
}

/// Reads packed results back as (code, log time) pairs; `None` unless there are exactly `n`.
pub fn unpack_results(bytes: &[u8], n: usize) -> Option<Vec<(u16, u64)>> {
    (bytes.len() == n * RESULT_RECORD_BYTES).then(|| {
        bytes
            .chunks_exact(RESULT_RECORD_BYTES)
            .map(|c| {
                (
                    u16::from_le_bytes([c[0], c[1]]),
                    u64::from_le_bytes(c[2..10].try_into().expect("8")),
                )
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;
    use proptest::prelude::*;

    /// The ISO currencies the property draws from: exponents 0, 2 and 3.
    const CODES: [&str; 4] = ["CNY", "JPY", "KWD", "USD"];

    /// The same transfer written for `Submit`: ids as strings, the amount in major units.
    fn as_v1(r: &TransferRecord) -> pb::Command {
        let c = Currency::from_numeric(r.currency_numeric).expect("drawn from CODES");
        let e = u32::from(c.exponent());
        let unit = 10u128.pow(e);
        let amount = if e == 0 {
            r.amount_minor.to_string()
        } else {
            format!(
                "{}.{:0w$}",
                r.amount_minor / unit,
                r.amount_minor % unit,
                w = e as usize
            )
        };
        pb::Command {
            kind: Some(pb::command::Kind::CreateTransfer(pb::CreateTransfer {
                id: r.id.to_string(),
                legs: vec![pb::Leg {
                    debit_account_id: r.debit.to_string(),
                    credit_account_id: r.credit.to_string(),
                    amount,
                    currency: c.code().to_string(),
                }],
                pending_timeout_seconds: r.pending_timeout_seconds.map(u64::from),
                reference: String::new(),
            })),
        }
    }

    fn record() -> impl Strategy<Value = TransferRecord> {
        (
            (1u128.., 1u128.., 1u128..),
            prop_oneof![
                0u128..1_000_000,
                (0u32..=30).prop_map(|p| 10u128.pow(p)),
                (0u32..=30).prop_map(|p| 10u128.pow(p) - 1),
                any::<u128>(),
            ],
            0..CODES.len(),
            proptest::option::of(any::<u32>()),
        )
            .prop_map(
                |((id, debit, credit), amount_minor, c, pending)| TransferRecord {
                    id: Id(id),
                    debit: Id(debit),
                    credit: Id(credit),
                    amount_minor,
                    currency_numeric: Currency::from_code(CODES[c]).expect("ISO").numeric(),
                    pending_timeout_seconds: pending,
                },
            )
    }

    fn status_code(r: &Result<Vec<Command>, Status>) -> Option<tonic::Code> {
        r.as_ref().err().map(Status::code)
    }

    proptest! {
        /// A batch sent as records and the same batch sent as `Submit` commands are accepted or
        /// refused alike, and when accepted become byte-identical commands: the same log entry,
        /// fingerprints and digest whichever form a client used.
        #[test]
        fn records_decode_to_the_commands_submit_makes_of_the_same_transfers(
            records in proptest::collection::vec(record(), 1..20),
            known in proptest::collection::vec(0..CODES.len(), 0..3),
        ) {
            // Some accounts exist already, in a currency of their own.
            let existing: Vec<(Id, Currency)> = records
                .iter()
                .zip(&known)
                .map(|(r, c)| (r.debit, Currency::from_code(CODES[*c]).expect("ISO")))
                .collect();
            let lookup = |id: Id| existing.iter().find(|(a, _)| *a == id).map(|(_, c)| *c);
            let v2 = transfers_from_v2(&encode_transfers(&records), 8_192, &lookup);
            let v1 = super::super::submit_from_pb(
                &pb::SubmitRequest { commands: records.iter().map(as_v1).collect() },
                8_192,
                &lookup,
            );
            prop_assert_eq!(status_code(&v2), status_code(&v1), "v2 {:?} v1 {:?}", v2.as_ref().err(), v1.as_ref().err());
            if let (Ok(v2), Ok(v1)) = (v2, v1) {
                prop_assert_eq!(
                    ledger::codec::encode_commands(&v2),
                    ledger::codec::encode_commands(&v1)
                );
            }
        }
    }

    #[test]
    fn results_pack_and_unpack() {
        let results = [
            CommandResult {
                code: ledger::ResultCode::Ok,
                timestamp_ns: 7,
            },
            CommandResult {
                code: ledger::ResultCode::InsufficientFunds,
                timestamp_ns: u64::MAX,
            },
        ];
        let packed = pack_results(&results);
        assert_eq!(packed.len(), 2 * RESULT_RECORD_BYTES);
        let expect = vec![
            (0, 7),
            (ledger::ResultCode::InsufficientFunds as u16, u64::MAX),
        ];
        assert_eq!(unpack_results(&packed, 2), Some(expect));
        assert_eq!(unpack_results(&packed, 3), None);
    }

    /// Every malformed record is refused with INVALID_ARGUMENT naming the record and field.
    #[test]
    fn malformed_records_are_refused_by_name() {
        let good = TransferRecord {
            id: Id(1),
            debit: Id(2),
            credit: Id(3),
            amount_minor: 1234,
            currency_numeric: 156,
            pending_timeout_seconds: None,
        };
        let none = |_: Id| None;
        let refuse = |bytes: Vec<u8>, expect: &str| {
            let e = transfers_from_v2(&bytes, 4, &none).expect_err(expect);
            assert_eq!(e.code(), tonic::Code::InvalidArgument, "{expect}");
            assert!(e.message().contains(expect), "{expect}: {}", e.message());
        };
        let one = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = encode_transfers(&[good, good]);
            f(&mut b);
            b
        };
        assert_eq!(
            transfers_from_v2(&one(&|_| {}), 4, &none)
                .map(|c| c.len())
                .ok(),
            Some(2)
        );
        refuse(Vec::new(), "empty batch");
        refuse(one(&|b| b.truncate(150)), "not a whole number");
        refuse(encode_transfers(&[good; 5]), "exceeds the limit of 4");
        refuse(one(&|b| b[80 + 66] = 2), "transfers[1].flags");
        refuse(one(&|b| b[68] = 9), "transfers[0].pending_timeout_seconds");
        refuse(one(&|b| b[79] = 1), "transfers[0].reserved");
        refuse(one(&|b| b[80..96].fill(0)), "transfers[1].id: the nil UUID");
        refuse(
            one(&|b| b[32..48].fill(0)),
            "transfers[0].credit_account_id",
        );
        refuse(one(&|b| b[64] = 0), "transfers[0].currency");
        refuse(
            one(&|b| b[48..64].copy_from_slice(&u128::MAX.to_le_bytes())),
            "transfers[0].amount",
        );
        let cny = Currency::from_code("CNY").expect("ISO");
        let jpy = Currency::from_code("JPY").expect("ISO");
        assert!(transfers_from_v2(&one(&|_| {}), 4, &|_| Some(cny)).is_ok());
        let e = transfers_from_v2(&one(&|_| {}), 4, &|_| Some(jpy)).expect_err("mismatch");
        assert!(
            e.message()
                .contains("transfers[0].debit_account_id: account"),
            "{}",
            e.message()
        );
    }
}
