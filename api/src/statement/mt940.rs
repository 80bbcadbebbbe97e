//! SWIFT MT940 (customer statement), read line by line. Fields must come in order: `:20:`
//! (statement reference), `:25:` (account), `:28C:` (statement number), `:60F:`/`:60M:` (opening
//! balance), then any number of `:61:` statement lines each optionally followed by `:86:`
//! (information), then `:62F:`/`:62M:` (closing balance); lines not starting with `:` continue
//! the previous field. A `:61:` line is `YYMMDD[MMDD](C|D|RC|RD)[funds code]amount(N|F|S)XXX
//! customer-reference[//bank-reference]`; amounts use a decimal comma. `RC`/`RD` are reversals.

use std::io::{BufRead, Read};

use chrono::{Datelike, NaiveDate};

use super::*;

/// Where in the message the reader is (fields must come in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Start,
    Reference,
    Account,
    Number,
    Opening,
    Lines,
    Closing,
}

pub struct Mt940Reader<R: BufRead> {
    input: R,
    file_line: u64,
    stage: Stage,
    /// A `:61:` read, waiting for its `:86:` or the next field.
    pending: Option<Line>,
    /// The field being read (tag, text with continuations, first line).
    field: Option<(String, String, u64)>,
    summary: Summary,
    index: u64,
    done: bool,
    raw: Vec<u8>,
}

impl<R: BufRead> Mt940Reader<R> {
    pub fn new(input: R) -> Mt940Reader<R> {
        Mt940Reader {
            input,
            file_line: 0,
            stage: Stage::Start,
            pending: None,
            field: None,
            summary: Summary::default(),
            index: 0,
            done: false,
            raw: Vec::with_capacity(128),
        }
    }

    /// The next physical line, without its end; `None` at the end of the input.
    fn physical_line(&mut self) -> Result<Option<String>, ParseError> {
        self.raw.clear();
        let n = self
            .input
            .by_ref()
            .take(TEXT_LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut self.raw)
            .or_else(|e| err(self.file_line + 1, format!("read: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        self.file_line += 1;
        if self.raw.len() > TEXT_LINE_BYTES_MAX {
            return err(
                self.file_line,
                format!("line longer than {TEXT_LINE_BYTES_MAX} bytes"),
            );
        }
        let s = String::from_utf8(self.raw.clone())
            .or_else(|_| err(self.file_line, "not UTF-8 text"))?;
        Ok(Some(s.trim_end_matches(['\r', '\n']).to_string()))
    }

    /// `C`/`D`, date YYMMDD, currency, amount — a balance field (`:60F:`, `:62F:`).
    fn balance(text: &str, line: u64) -> Result<Balance, ParseError> {
        let t = text.trim();
        if t.len() < 11
            || !t.is_char_boundary(1)
            || !t.is_char_boundary(7)
            || !t.is_char_boundary(10)
        {
            return err(
                line,
                format!("balance {t:?} is too short (C|D YYMMDD CCY amount)"),
            );
        }
        let sign = match &t[..1] {
            "C" => Decimal::ONE,
            "D" => -Decimal::ONE,
            m => return err(line, format!("balance mark {m:?} is neither C nor D")),
        };
        let date = yymmdd(&t[1..7], line)?;
        let currency = t[7..10].to_string();
        let amount = parse_amount(&t[10..], line)?;
        Ok(Balance {
            amount: sign * amount,
            currency,
            date,
        })
    }

    /// A `:61:` statement line.
    fn statement_line(&mut self, text: &str, line: u64) -> Result<Line, ParseError> {
        let first = text.lines().next().unwrap_or_default();
        let b = first.as_bytes();
        let bad = |why: &str| err::<Line>(line, format!(":61: {first:?}: {why}"));
        if b.len() < 6 || !b[..6].iter().all(u8::is_ascii_digit) {
            return bad("no value date (YYMMDD)");
        }
        let value_date = yymmdd(&first[..6], line)?;
        let mut i = 6;
        let mut booking_date = value_date;
        if b.len() >= i + 4 && b[i..i + 4].iter().all(u8::is_ascii_digit) {
            let (m, d) = (
                first[i..i + 2].parse::<u32>().unwrap_or(0),
                first[i + 2..i + 4].parse::<u32>().unwrap_or(0),
            );
            // The entry date's year is the value date's, or the one next to it across New Year.
            let mut y = value_date.year();
            if m == 12 && value_date.month() == 1 {
                y -= 1;
            } else if m == 1 && value_date.month() == 12 {
                y += 1;
            }
            booking_date = NaiveDate::from_ymd_opt(y, m, d).ok_or(ParseError {
                line,
                reason: format!(":61: bad entry date {:?}", &first[i..i + 4]),
            })?;
            i += 4;
        }
        let rest = &first[i..];
        let (direction, reversal, used) = if rest.starts_with("RC") {
            (Direction::Debit, true, 2)
        } else if rest.starts_with("RD") {
            (Direction::Credit, true, 2)
        } else if rest.starts_with('C') {
            (Direction::Credit, false, 1)
        } else if rest.starts_with('D') {
            (Direction::Debit, false, 1)
        } else {
            return bad("no debit/credit mark (C, D, RC, RD)");
        };
        // A reversal of a credit (RC) takes money out: its direction is the opposite.
        let mut rest = &rest[used..];
        if rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            rest = &rest[1..]; // funds code
        }
        let amount_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == ','))
            .unwrap_or(rest.len());
        if amount_end == 0 {
            return bad("no amount");
        }
        let amount = parse_amount(&rest[..amount_end], line)?;
        let rest = &rest[amount_end..];
        if rest.len() < 4 || !rest.is_char_boundary(4) || !matches!(&rest[..1], "N" | "F" | "S") {
            return bad("no transaction type (N|F|S and three characters)");
        }
        let refs_text = &rest[4..];
        let mut references = Vec::new();
        let (customer, bank) = match refs_text.split_once("//") {
            Some((c, b)) => (c, b),
            None => (refs_text, ""),
        };
        push_reference(&mut references, customer);
        push_reference(&mut references, bank);
        let currency = self.summary.currency.clone().ok_or(ParseError {
            line,
            reason: ":61: before the opening balance names the currency".into(),
        })?;
        self.index += 1;
        Ok(Line {
            index: self.index,
            file_line: line,
            amount,
            currency,
            direction,
            booking_date,
            references,
            reversal,
        })
    }

    /// Handles a complete field; returns a finished statement line if one is ready.
    fn field(&mut self, tag: &str, text: &str, line: u64) -> Result<Option<Line>, ParseError> {
        let order = |me: &mut Self, stage: Stage, allowed: &[Stage]| -> Result<(), ParseError> {
            if !allowed.contains(&me.stage) {
                return err(line, format!(":{tag}: out of order (after {:?})", me.stage));
            }
            me.stage = stage;
            Ok(())
        };
        // Any field but :86: completes the pending :61:.
        let mut ready = None;
        if tag != "86" {
            ready = self.pending.take();
        }
        match tag {
            "20" => {
                order(self, Stage::Reference, &[Stage::Start])?;
                self.summary.statement_id = text.trim().to_string();
            }
            "25" => {
                order(self, Stage::Account, &[Stage::Reference])?;
                self.summary.account = text.trim().to_string();
            }
            "28C" | "28" => order(self, Stage::Number, &[Stage::Account])?,
            "60F" | "60M" => {
                order(self, Stage::Opening, &[Stage::Account, Stage::Number])?;
                let b = Self::balance(text, line)?;
                self.summary.currency = Some(b.currency.clone());
                self.summary.opening = Some(b);
            }
            "61" => {
                order(self, Stage::Lines, &[Stage::Opening, Stage::Lines])?;
                self.pending = Some(self.statement_line(text, line)?);
            }
            "86" => {
                if self.stage != Stage::Lines && self.stage != Stage::Closing {
                    return err(line, ":86: out of order (not after a :61: line)");
                }
                if let Some(p) = self.pending.as_mut() {
                    // End-to-end references in the information field: `EREF+…` or `/EREF/…`.
                    for token in text.split(['\n', '/', ' ']) {
                        if let Some(r) = token.strip_prefix("EREF+") {
                            push_reference(&mut p.references, r);
                        }
                    }
                    let mut parts = text.split('/');
                    while let Some(p2) = parts.next() {
                        if p2 == "EREF" {
                            if let Some(r) = parts.next() {
                                push_reference(&mut p.references, r);
                            }
                        }
                    }
                }
            }
            "62F" | "62M" => {
                order(self, Stage::Closing, &[Stage::Opening, Stage::Lines])?;
                let b = Self::balance(text, line)?;
                if self
                    .summary
                    .currency
                    .as_ref()
                    .is_some_and(|c| *c != b.currency)
                {
                    return err(
                        line,
                        format!(
                            "closing balance in {}, opening in another currency",
                            b.currency
                        ),
                    );
                }
                self.summary.closing = Some(b);
            }
            "64" | "65" => {} // available balances: not checked
            other => return err(line, format!("unknown field :{other}:")),
        }
        Ok(ready)
    }

    fn next_line(&mut self) -> Result<Option<Line>, ParseError> {
        loop {
            let Some(l) = self.physical_line()? else {
                // The last field, then the last pending line.
                if let Some((tag, text, at)) = self.field.take() {
                    if let Some(x) = self.field(&tag, &text, at)? {
                        return Ok(Some(x));
                    }
                }
                if self.stage == Stage::Start {
                    return err(self.file_line, "no MT940 fields (expected :20:)");
                }
                if self.stage != Stage::Closing {
                    return err(self.file_line, "no closing balance (:62F:)");
                }
                return Ok(self.pending.take());
            };
            // Message envelope lines ({1:…}, -}) and blank lines carry no fields.
            if l.trim().is_empty() || l.starts_with('{') || l.starts_with("-}") || l == "-" {
                continue;
            }
            if let Some(rest) = l.strip_prefix(':') {
                let Some((tag, text)) = rest.split_once(':') else {
                    return err(self.file_line, format!("{l:?} is not a field (:TAG:)"));
                };
                if tag.is_empty()
                    || tag.len() > 3
                    || !tag.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return err(self.file_line, format!("bad field tag {tag:?}"));
                }
                let finished =
                    self.field
                        .replace((tag.to_string(), text.to_string(), self.file_line));
                if let Some((tag, text, at)) = finished {
                    if let Some(x) = self.field(&tag, &text, at)? {
                        return Ok(Some(x));
                    }
                }
            } else {
                match self.field.as_mut() {
                    Some((_, text, _)) if text.len() < TEXT_LINE_BYTES_MAX * 8 => {
                        text.push('\n');
                        text.push_str(&l);
                    }
                    Some(_) => return err(self.file_line, "field too long"),
                    None => return err(self.file_line, format!("{l:?} before the first field")),
                }
            }
        }
    }
}

fn yymmdd(s: &str, line: u64) -> Result<NaiveDate, ParseError> {
    let d = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<u32>().ok());
    let (Some(y), Some(m), Some(dd)) = (d(0..2), d(2..4), d(4..6)) else {
        return err(line, format!("{s:?} is not a date (YYMMDD)"));
    };
    NaiveDate::from_ymd_opt(2000 + y as i32, m, dd).ok_or(ParseError {
        line,
        reason: format!("{s:?} is not a date (YYMMDD)"),
    })
}

impl<R: BufRead> Iterator for Mt940Reader<R> {
    type Item = Result<Line, ParseError>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut done = self.done;
        let r = step(&mut done, || self.next_line());
        self.done = done;
        r
    }
}

impl<R: BufRead> StatementReader for Mt940Reader<R> {
    fn summary(&self) -> &Summary {
        &self.summary
    }
}
