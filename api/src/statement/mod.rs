//! Bank statements for reconciliation: streaming parsers for ISO 20022 camt.053 ([`camt053`]),
//! SWIFT MT940 ([`mt940`]) and CSV with a column map ([`csv_map`]), and the matcher that pairs their
//! lines with the ledger's postings on the custodial bank account ([`matcher`]).
//!
//! Every parser reads one line (entry) at a time from a `BufRead`, so a statement of any length is
//! reconciled in bounded memory; every limit is explicit (a line's length, a reference's, the XML
//! depth). A malformed statement is a [`ParseError`] naming the line and the reason — never a panic.

pub mod camt053;
pub mod csv_map;
pub mod matcher;
pub mod mt940;

use chrono::NaiveDate;
use rust_decimal::Decimal;

/// Longest reference kept from a statement (ISO 20022 references are at most 35 characters).
pub const REFERENCE_CHARS_MAX: usize = 140;
/// Most references one statement line carries (entry reference, servicer reference, end-to-end
/// ids of a batch booking).
pub const REFERENCES_MAX: usize = 16;
/// Longest physical line the MT940 and CSV readers accept, in bytes.
pub const TEXT_LINE_BYTES_MAX: usize = 4_096;

/// Money into the account (CRDT, `C`) or out of it (DBIT, `D`), from the bank's view of our
/// account.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    Credit,
    Debit,
}

impl Direction {
    pub fn name(self) -> &'static str {
        match self {
            Direction::Credit => "CRDT",
            Direction::Debit => "DBIT",
        }
    }
    fn opposite(self) -> Direction {
        match self {
            Direction::Credit => Direction::Debit,
            Direction::Debit => Direction::Credit,
        }
    }
}

/// A statement balance: positive when the bank owes us (a credit balance).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Balance {
    pub amount: Decimal,
    pub currency: String,
    pub date: NaiveDate,
}

/// One booked entry of a statement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    /// 1-based position among the statement's entries.
    pub index: u64,
    /// Where it starts in the file (1-based line number).
    pub file_line: u64,
    /// Positive.
    pub amount: Decimal,
    pub currency: String,
    pub direction: Direction,
    pub booking_date: NaiveDate,
    /// Every reference the bank gave (most specific first: end-to-end ids, then the servicer's and
    /// the entry's references).
    pub references: Vec<String>,
    /// The entry reverses an earlier one (camt.053 `RvslInd`, MT940 `RC`/`RD`).
    pub reversal: bool,
}

/// What a statement says about itself (known once it has been read to the end: MT940 puts the
/// closing balance last).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub statement_id: String,
    pub account: String,
    pub currency: Option<String>,
    pub opening: Option<Balance>,
    pub closing: Option<Balance>,
}

/// A statement that cannot be read: where and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct ParseError {
    pub line: u64,
    pub reason: String,
}

fn err<T>(line: u64, reason: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        reason: reason.into(),
    })
}

/// One step of a reader's iterator: a line, the end, or an error — after either of the last two the
/// reader is `done` and yields nothing more.
pub(crate) fn step(
    done: &mut bool,
    next: impl FnOnce() -> Result<Option<Line>, ParseError>,
) -> Option<Result<Line, ParseError>> {
    if *done {
        return None;
    }
    let r = next().transpose();
    if !matches!(r, Some(Ok(_))) {
        *done = true;
    }
    r
}

/// A streaming statement reader.
pub trait StatementReader: Iterator<Item = Result<Line, ParseError>> {
    /// The statement's identity, account, currency and balances seen so far.
    fn summary(&self) -> &Summary;
}

/// The statement formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Camt053,
    Mt940,
    Csv,
}

/// Opens a reader of `format` over `input`.
pub fn reader<'a, R: std::io::BufRead + 'a>(
    format: Format,
    input: R,
    csv_map: &csv_map::ColumnMap,
) -> Result<Box<dyn StatementReader + 'a>, ParseError> {
    Ok(match format {
        Format::Camt053 => Box::new(camt053::Camt053Reader::new(input)),
        Format::Mt940 => Box::new(mt940::Mt940Reader::new(input)),
        Format::Csv => Box::new(csv_map::CsvReader::new(input, csv_map.clone())?),
    })
}

/// Parses an amount written with `.` or `,` as the decimal mark, no sign, no grouping.
pub(crate) fn parse_amount(s: &str, line: u64) -> Result<Decimal, ParseError> {
    let t = s.trim().replace(',', ".");
    let ok = !t.is_empty()
        && t.len() <= 32
        && t.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && t.bytes().filter(|b| *b == b'.').count() <= 1
        && t.bytes().next().is_some_and(|b| b.is_ascii_digit());
    if !ok {
        return err(line, format!("{s:?} is not an amount"));
    }
    t.trim_end_matches('.')
        .parse::<Decimal>()
        .or_else(|_| err(line, format!("{s:?} is not an amount")))
}

/// Keeps a reference if it is a real one (not empty, not the MT940 placeholder), bounded.
pub(crate) fn push_reference(refs: &mut Vec<String>, r: &str) {
    let r = r.trim();
    if r.is_empty() || r == "NONREF" || r == "NOTPROVIDED" || refs.len() >= REFERENCES_MAX {
        return;
    }
    let r: String = r.chars().take(REFERENCE_CHARS_MAX).collect();
    if !refs.contains(&r) {
        refs.push(r);
    }
}

/// Feeds arbitrary bytes to every parser (the fuzz targets' entry point): no panic, bounded work.
pub fn fuzz_parse(format: Format, data: &[u8]) {
    let map = csv_map::ColumnMap::default();
    if let Ok(r) = reader(format, data, &map) {
        for line in r.take(100_000) {
            if line.is_err() {
                break;
            }
        }
    }
}
