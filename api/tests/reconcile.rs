//! Statement reconciliation as golden files: each statement in `tests/statements/` (camt.053,
//! MT940, CSV — written by the project, one per format, the same day of a bank account) is parsed
//! and matched against `ledger.txt`, and the outcome — every bucket, the reversal pair, the
//! one-to-many settlement, both balance checks — is compared with `<statement>.expected`
//! (`UPDATE_GOLDENFILES=1` rewrites them). Malformed statements fail with their line and reason.
#![cfg(feature = "statements")]

use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;

use api::statement::matcher::{Bucket, LedgerEntry, Matcher};
use api::statement::{csv_map::ColumnMap, reader, Direction, Format, ParseError};
use chrono::NaiveDate;
use rust_decimal::Decimal;

fn dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/statements")
}

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// The ledger side: postings, and the bank account's balance at the opening and closing dates.
fn ledger() -> (Vec<LedgerEntry>, (NaiveDate, Decimal), (NaiveDate, Decimal)) {
    let text = std::fs::read_to_string(dir().join("ledger.txt")).unwrap();
    let (mut entries, mut opening, mut closing) = (Vec::new(), None, None);
    for (i, l) in text.lines().enumerate() {
        let f: Vec<&str> = l.split_whitespace().collect();
        match f.as_slice() {
            [] => {}
            [c, ..] if c.starts_with('#') => {}
            ["opening", d, a] => opening = Some((date(d), Decimal::from_str(a).unwrap())),
            ["closing", d, a] => closing = Some((date(d), Decimal::from_str(a).unwrap())),
            [t, r, a, dir, d] => entries.push(LedgerEntry {
                transfer: t.to_string(),
                hold: None,
                reference: r.to_string(),
                amount: Decimal::from_str(a).unwrap(),
                direction: if *dir == "CRDT" {
                    Direction::Credit
                } else {
                    Direction::Debit
                },
                date: date(d),
                seq: i as u64,
            }),
            _ => panic!("ledger.txt line {}: {l:?}", i + 1),
        }
    }
    (entries, opening.unwrap(), closing.unwrap())
}

fn reconcile(file: &str, format: Format) -> String {
    let path = dir().join(file);
    let map = match std::fs::read_to_string(dir().join(format!("{file}.map"))) {
        Ok(spec) => ColumnMap::parse(spec.trim()).unwrap(),
        Err(_) => ColumnMap::default(),
    };
    let (entries, (open_date, open_bal), (close_date, close_bal)) = ledger();
    let input = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let mut r = reader(format, input, &map).unwrap();
    let mut m = Matcher::new(entries, 2);
    let mut out = String::new();
    let (mut first, mut last): (Option<NaiveDate>, Option<NaiveDate>) = (None, None);
    let mut outcomes = Vec::new();
    for line in &mut r {
        let line = line.unwrap();
        first = Some(first.map_or(line.booking_date, |f| f.min(line.booking_date)));
        last = Some(last.map_or(line.booking_date, |l| l.max(line.booking_date)));
        outcomes.extend(m.push(line));
    }
    let s = r.summary().clone();
    writeln!(
        out,
        "statement {:?} account {:?} currency {:?}",
        s.statement_id, s.account, s.currency
    )
    .unwrap();
    outcomes.extend(m.finish(first.unwrap(), last.unwrap()));
    for o in &outcomes {
        writeln!(
            out,
            "{:<17} line {:<4} {} {} {:>8} ref {:<12} transfer {}{}",
            o.bucket.name(),
            o.statement_line.map_or("-".into(), |l| l.to_string()),
            o.date,
            o.direction.name(),
            o.amount,
            o.reference,
            o.transfer_id.as_deref().unwrap_or("-"),
            o.ledger_amount
                .filter(|_| o.bucket == Bucket::AmountMismatch)
                .map_or(String::new(), |a| format!(" (ledger {a})")),
        )
        .unwrap();
    }
    for b in Bucket::ALL {
        let n = outcomes.iter().filter(|o| o.bucket == b).count();
        write!(out, "{} {n}  ", b.name()).unwrap();
    }
    writeln!(out).unwrap();
    for (what, st, (d, ledger)) in [
        ("opening", &s.opening, (open_date, open_bal)),
        ("closing", &s.closing, (close_date, close_bal)),
    ] {
        match st {
            Some(b) => writeln!(
                out,
                "{what} balance {} statement {} ledger {} → {}",
                b.date,
                b.amount,
                ledger,
                if b.date == d && b.amount == ledger {
                    "ok"
                } else {
                    "BREAK"
                }
            )
            .unwrap(),
            None => writeln!(out, "{what} balance: not in the statement").unwrap(),
        }
    }
    out
}

fn golden(file: &str, format: Format) {
    let got = reconcile(file, format);
    let path = dir().join(format!("{file}.expected"));
    if std::env::var("UPDATE_GOLDENFILES").is_ok() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(
        got,
        want,
        "{} differs (UPDATE_GOLDENFILES=1 rewrites it)",
        path.display()
    );
}

#[test]
fn camt053_statement() {
    golden("statement.camt053.xml", Format::Camt053);
}

#[test]
fn mt940_statement() {
    golden("statement.mt940", Format::Mt940);
}

#[test]
fn csv_statement() {
    golden("statement.csv", Format::Csv);
}

/// The three formats of the same day reconcile the same way.
#[test]
fn every_format_reconciles_alike() {
    let strip = |s: String| -> Vec<String> {
        s.lines()
            .skip(1) // the header names differ per format
            .map(|l| l.to_string())
            .filter(|l| !l.contains("balance"))
            .collect()
    };
    let camt = strip(reconcile("statement.camt053.xml", Format::Camt053));
    assert_eq!(camt, strip(reconcile("statement.mt940", Format::Mt940)));
    assert_eq!(camt, strip(reconcile("statement.csv", Format::Csv)));
}

fn parse_error(format: Format, text: &str, map: &str) -> ParseError {
    let map = if map.is_empty() {
        ColumnMap::default()
    } else {
        ColumnMap::parse(map).unwrap()
    };
    match reader(format, text.as_bytes(), &map) {
        Err(e) => e,
        Ok(r) => r
            .into_iter()
            .find_map(|l| l.err())
            .expect("the statement is malformed"),
    }
}

#[test]
fn malformed_statements_name_the_line_and_the_reason() {
    let e = parse_error(
        Format::Camt053,
        "<Document><Stmt><Ntry>\n<Amt Ccy=\"CNY\">1.00</Amt>\n</Stmt>",
        "",
    );
    assert!(e.reason.contains("bad XML"), "{e}");
    let e = parse_error(
        Format::Camt053,
        "<Document><Stmt><Acct><Ccy>CNY</Ccy></Acct>\n<Ntry><Amt Ccy=\"USD\">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2026-11-01</Dt></BookgDt></Ntry></Stmt></Document>",
        "",
    );
    assert_eq!(e.line, 2, "{e}");
    assert!(e.reason.contains("entry in USD"), "{e}");
    let e = parse_error(
        Format::Camt053,
        "<Document><Stmt>\n\n<Ntry><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>2026-11-01</Dt></BookgDt></Ntry></Stmt></Document>",
        "",
    );
    assert_eq!((e.line, e.reason.as_str()), (3, "entry without an amount"));
    let e = parse_error(Format::Mt940, ":20:X\n:60F:C261101CNY1,00\n:25:ACCT\n", "");
    assert_eq!(e.line, 2, "{e}");
    assert!(e.reason.contains(":60F: out of order"), "{e}");
    let e = parse_error(
        Format::Mt940,
        ":20:X\n:25:A\n:60F:C261101CNY1,00\n:61:2611021102C,NTRFX\n",
        "",
    );
    assert_eq!(e.line, 4, "{e}");
    let e = parse_error(Format::Mt940, ":20:X\n:25:A\n:60F:C261101CNY1,00\n", "");
    assert!(e.reason.contains("no closing balance"), "{e}");
    let e = parse_error(
        Format::Csv,
        "booking_date,amount,currency,direction,reference\n2026-11-01,,CNY,CRDT,R1\n",
        "",
    );
    assert_eq!((e.line, e.reason.as_str()), (2, "row without an amount"));
    let e = parse_error(Format::Csv, "date,amt\n", "");
    assert!(e.reason.contains("no column"), "{e}");
}
