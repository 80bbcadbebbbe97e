//! ISO 20022 camt.053 (bank-to-customer statement), streamed with quick-xml: the statement's
//! identity, account and `Bal` elements (OPBD opening, CLBD closing) as they come, and one
//! [`Line`] per `Ntry` (amount and currency, `CdtDbtInd`, `RvslInd`, booking date, `NtryRef`,
//! `AcctSvcrRef` and every `EndToEndId` of its transaction details). Namespaces are ignored (local
//! names only), so any camt.053 version reads the same.

use std::io::BufRead;

use super::*;
use chrono::NaiveDate;
use quick_xml::events::Event;
use quick_xml::Reader;

/// Deepest element nesting read (camt.053 needs about 10).
const DEPTH_MAX: usize = 32;
/// Longest text of one element, in bytes.
const TEXT_BYTES_MAX: usize = 1_024;

/// Counts the lines the XML reader consumes, so errors name a line.
struct Counting<R> {
    inner: R,
    line: u64,
}

impl<R: BufRead> std::io::Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.line += buf[..n].iter().filter(|b| **b == b'\n').count() as u64;
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Counting<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, amt: usize) {
        if let Ok(b) = self.inner.fill_buf() {
            let n = amt.min(b.len());
            self.line += b[..n].iter().filter(|c| **c == b'\n').count() as u64;
        }
        self.inner.consume(amt)
    }
}

/// An entry or balance being read.
#[derive(Default)]
struct Partial {
    start_line: u64,
    amount: Option<String>,
    currency: Option<String>,
    indicator: Option<String>,
    reversal: bool,
    date: Option<String>,
    balance_code: Option<String>,
    refs: Vec<String>,
    /// The entry's own reference (`NtryRef`), kept after the more specific ones.
    entry_ref: Option<String>,
}

pub struct Camt053Reader<R: BufRead> {
    xml: Reader<Counting<R>>,
    buf: Vec<u8>,
    path: Vec<String>,
    text: String,
    entry: Option<Partial>,
    balance: Option<Partial>,
    summary: Summary,
    index: u64,
    done: bool,
}

impl<R: BufRead> Camt053Reader<R> {
    pub fn new(input: R) -> Camt053Reader<R> {
        let mut xml = Reader::from_reader(Counting {
            inner: input,
            line: 1,
        });
        xml.config_mut().trim_text(true);
        Camt053Reader {
            xml,
            buf: Vec::with_capacity(4_096),
            path: Vec::new(),
            text: String::new(),
            entry: None,
            balance: None,
            summary: Summary::default(),
            index: 0,
            done: false,
        }
    }

    fn line(&self) -> u64 {
        self.xml.get_ref().line
    }

    fn in_path(&self, suffix: &[&str]) -> bool {
        self.path.len() >= suffix.len()
            && self.path[self.path.len() - suffix.len()..]
                .iter()
                .zip(suffix)
                .all(|(a, b)| a == b)
    }

    /// Handles the end of an element whose text is `self.text`.
    fn end(&mut self, name: &str) -> Result<Option<Line>, ParseError> {
        let text = std::mem::take(&mut self.text);
        let line = self.line();
        if let Some(b) = self.balance.as_mut() {
            match name {
                "Cd" if self.path.iter().any(|p| p == "Tp") => b.balance_code = Some(text),
                "Amt" => b.amount = Some(text),
                "CdtDbtInd" => b.indicator = Some(text),
                "Dt" | "DtTm" if self.path.iter().any(|p| p == "Dt") || name == "Dt" => {
                    if b.date.is_none() {
                        b.date = Some(text)
                    }
                }
                "Bal" => {
                    let b = self.balance.take().expect("in a balance");
                    self.finish_balance(b)?;
                }
                _ => {}
            }
            return Ok(None);
        }
        if let Some(e) = self.entry.as_mut() {
            let in_booking = self.path.iter().any(|p| p == "BookgDt");
            match name {
                // The entry's own amount, not an amount inside its transaction details.
                "Amt" if self.path.len() >= 2 && self.path[self.path.len() - 2] == "Ntry" => {
                    e.amount = Some(text)
                }
                "CdtDbtInd" if self.path.len() >= 2 && self.path[self.path.len() - 2] == "Ntry" => {
                    e.indicator = Some(text)
                }
                "RvslInd" => e.reversal = text.eq_ignore_ascii_case("true"),
                "Dt" | "DtTm" if in_booking => e.date = Some(text),
                "EndToEndId" | "AcctSvcrRef" | "InstrId" | "TxId" => {
                    push_reference(&mut e.refs, &text)
                }
                "NtryRef" => e.entry_ref = Some(text),
                "Ntry" => {
                    let e = self.entry.take().expect("in an entry");
                    return self.finish_entry(e).map(Some);
                }
                _ => {}
            }
            return Ok(None);
        }
        match name {
            "Id" if self.in_path(&["Stmt", "Id"]) => self.summary.statement_id = text,
            "IBAN" | "Id"
                if self.path.iter().any(|p| p == "Acct") && self.summary.account.is_empty() =>
            {
                if name == "IBAN" || self.in_path(&["Othr", "Id"]) {
                    self.summary.account = text
                }
            }
            "Ccy" if self.in_path(&["Acct", "Ccy"]) => self.summary.currency = Some(text),
            _ => {}
        }
        let _ = line;
        Ok(None)
    }

    fn date(s: &str, line: u64) -> Result<NaiveDate, ParseError> {
        // `Dt` is a date; `DtTm` a date-time whose first ten characters are the date.
        NaiveDate::parse_from_str(s.get(..10).unwrap_or(s), "%Y-%m-%d")
            .or_else(|_| err(line, format!("{s:?} is not a date (YYYY-MM-DD)")))
    }

    fn direction(s: Option<&str>, line: u64) -> Result<Direction, ParseError> {
        match s {
            Some("CRDT") => Ok(Direction::Credit),
            Some("DBIT") => Ok(Direction::Debit),
            Some(other) => err(
                line,
                format!("CdtDbtInd {other:?} is neither CRDT nor DBIT"),
            ),
            None => err(line, "no CdtDbtInd"),
        }
    }

    fn finish_balance(&mut self, b: Partial) -> Result<(), ParseError> {
        let line = b.start_line;
        let code = b.balance_code.unwrap_or_default();
        if code != "OPBD" && code != "CLBD" {
            return Ok(()); // other balances (interim, available) are not checked
        }
        let amount = parse_amount(
            b.amount.as_deref().ok_or(ParseError {
                line,
                reason: format!("{code} balance without an amount"),
            })?,
            line,
        )?;
        let signed = match Self::direction(b.indicator.as_deref(), line)? {
            Direction::Credit => amount,
            Direction::Debit => -amount,
        };
        let date = Self::date(
            b.date.as_deref().ok_or(ParseError {
                line,
                reason: format!("{code} balance without a date"),
            })?,
            line,
        )?;
        let bal = Balance {
            amount: signed,
            currency: b.currency.unwrap_or_default(),
            date,
        };
        if code == "OPBD" {
            self.summary.opening = Some(bal);
        } else {
            self.summary.closing = Some(bal);
        }
        Ok(())
    }

    fn finish_entry(&mut self, mut e: Partial) -> Result<Line, ParseError> {
        let line = e.start_line;
        if let Some(r) = e.entry_ref.take() {
            push_reference(&mut e.refs, &r);
        }
        let amount = parse_amount(
            e.amount.as_deref().ok_or(ParseError {
                line,
                reason: "entry without an amount".into(),
            })?,
            line,
        )?;
        let currency = e.currency.ok_or(ParseError {
            line,
            reason: "entry amount without a currency (Ccy)".into(),
        })?;
        if let Some(c) = &self.summary.currency {
            if *c != currency {
                return err(line, format!("entry in {currency}, the account is in {c}"));
            }
        }
        let booking_date = Self::date(
            e.date.as_deref().ok_or(ParseError {
                line,
                reason: "entry without a booking date".into(),
            })?,
            line,
        )?;
        self.index += 1;
        Ok(Line {
            index: self.index,
            file_line: line,
            amount,
            currency,
            direction: Self::direction(e.indicator.as_deref(), line)?,
            booking_date,
            references: e.refs,
            reversal: e.reversal,
        })
    }

    fn next_line(&mut self) -> Result<Option<Line>, ParseError> {
        loop {
            self.buf.clear();
            let ev = match self.xml.read_event_into(&mut self.buf) {
                Ok(ev) => ev,
                Err(e) => return err(self.xml.get_ref().line, format!("bad XML: {e}")),
            };
            let now = self.xml.get_ref().line;
            match ev {
                Event::Start(s) => {
                    let name = String::from_utf8_lossy(s.local_name().as_ref()).into_owned();
                    let line = now;
                    let ccy = s
                        .attributes()
                        .flatten()
                        .find(|a| a.key.local_name().as_ref() == b"Ccy")
                        .map(|a| String::from_utf8_lossy(&a.value).into_owned());
                    if self.path.len() >= DEPTH_MAX {
                        return err(line, format!("elements nested deeper than {DEPTH_MAX}"));
                    }
                    match name.as_str() {
                        "Ntry" => {
                            self.entry = Some(Partial {
                                start_line: line,
                                ..Default::default()
                            })
                        }
                        "Bal" => {
                            self.balance = Some(Partial {
                                start_line: line,
                                ..Default::default()
                            })
                        }
                        "Amt" => {
                            let target = self.balance.as_mut().or(self.entry.as_mut());
                            if let (Some(p), Some(c)) = (target, ccy) {
                                if p.currency.is_none() {
                                    p.currency = Some(c);
                                }
                            }
                        }
                        _ => {}
                    }
                    self.path.push(name);
                    self.text.clear();
                }
                Event::Text(t) => {
                    let s = t
                        .decode()
                        .map_err(|e| ParseError {
                            line: now,
                            reason: format!("bad text: {e}"),
                        })?
                        .into_owned();
                    if self.text.len() + s.len() > TEXT_BYTES_MAX {
                        return err(now, "element text too long");
                    }
                    self.text.push_str(&s);
                }
                Event::GeneralRef(r) => {
                    let name = String::from_utf8_lossy(r.as_ref()).into_owned();
                    let c = match name.as_str() {
                        "amp" => '&',
                        "lt" => '<',
                        "gt" => '>',
                        "quot" => '"',
                        "apos" => '\'',
                        n => n
                            .strip_prefix("#x")
                            .and_then(|h| u32::from_str_radix(h, 16).ok())
                            .or_else(|| n.strip_prefix('#').and_then(|d| d.parse().ok()))
                            .and_then(char::from_u32)
                            .unwrap_or('\u{FFFD}'),
                    };
                    self.text.push(c);
                }
                Event::End(e) => {
                    let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                    let out = self.end(&name)?;
                    self.path.pop();
                    if let Some(l) = out {
                        return Ok(Some(l));
                    }
                }
                Event::Eof => {
                    if !self.path.is_empty() {
                        return err(now, "the document ends inside an element");
                    }
                    return Ok(None);
                }
                _ => {}
            }
        }
    }
}

impl<R: BufRead> Iterator for Camt053Reader<R> {
    type Item = Result<Line, ParseError>;
    fn next(&mut self) -> Option<Self::Item> {
        let mut done = self.done;
        let r = step(&mut done, || self.next_line());
        self.done = done;
        r
    }
}

impl<R: BufRead> StatementReader for Camt053Reader<R> {
    fn summary(&self) -> &Summary {
        &self.summary
    }
}

/// A statement to write as camt.053 (`suanpan export statement --format camt053`): the account
/// holder's view, so a positive amount is money in (CRDT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Export {
    pub statement_id: String,
    pub account: String,
    pub currency: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub created: String,
    pub opening: rust_decimal::Decimal,
    pub closing: rust_decimal::Decimal,
    pub entries: Vec<ExportEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportEntry {
    pub seq: u64,
    /// RFC 3339 booking time.
    pub booked: String,
    /// Signed: positive is money in.
    pub amount: rust_decimal::Decimal,
    pub transfer: String,
    pub reference: String,
    pub flow: String,
    pub counterparty: String,
}

/// Writes `s` as an ISO 20022 camt.053.001.08 document (the parser of this module reads it back).
pub fn write(out: &mut impl std::io::Write, s: &Export) -> std::io::Result<()> {
    use quick_xml::escape::escape;
    let side = |a: rust_decimal::Decimal| if a.is_sign_negative() { "DBIT" } else { "CRDT" };
    let ccy = escape(s.currency.as_str());
    let bal = |out: &mut dyn std::io::Write,
               code: &str,
               amount: rust_decimal::Decimal,
               date: NaiveDate| {
        writeln!(
            out,
            "      <Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy=\"{ccy}\">{}</Amt>\
             <CdtDbtInd>{}</CdtDbtInd><Dt><Dt>{date}</Dt></Dt></Bal>",
            amount.abs(),
            side(amount)
        )
    };
    writeln!(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>")?;
    writeln!(
        out,
        "<Document xmlns=\"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08\">"
    )?;
    writeln!(out, "  <BkToCstmrStmt>")?;
    writeln!(
        out,
        "    <GrpHdr><MsgId>{}</MsgId><CreDtTm>{}</CreDtTm></GrpHdr>",
        escape(s.statement_id.as_str()),
        escape(s.created.as_str())
    )?;
    writeln!(out, "    <Stmt>")?;
    writeln!(out, "      <Id>{}</Id>", escape(s.statement_id.as_str()))?;
    writeln!(
        out,
        "      <CreDtTm>{}</CreDtTm>",
        escape(s.created.as_str())
    )?;
    writeln!(
        out,
        "      <FrToDt><FrDtTm>{}T00:00:00</FrDtTm><ToDtTm>{}T23:59:59</ToDtTm></FrToDt>",
        s.from, s.to
    )?;
    writeln!(
        out,
        "      <Acct><Id><Othr><Id>{}</Id></Othr></Id><Ccy>{ccy}</Ccy></Acct>",
        escape(s.account.as_str())
    )?;
    bal(out, "OPBD", s.opening, s.from)?;
    bal(out, "CLBD", s.closing, s.to)?;
    for e in &s.entries {
        writeln!(
            out,
            "      <Ntry><NtryRef>{}</NtryRef><Amt Ccy=\"{ccy}\">{}</Amt><CdtDbtInd>{}</CdtDbtInd>\
             <Sts><Cd>BOOK</Cd></Sts><BookgDt><DtTm>{}</DtTm></BookgDt><AcctSvcrRef>{}</AcctSvcrRef>\
             <BkTxCd><Prtry><Cd>{}</Cd></Prtry></BkTxCd><NtryDtls><TxDtls><Refs><EndToEndId>{}</EndToEndId>\
             </Refs><RltdPties><CdtrAcct><Id><Othr><Id>{}</Id></Othr></Id></CdtrAcct></RltdPties>\
             </TxDtls></NtryDtls></Ntry>",
            e.seq,
            e.amount.abs(),
            side(e.amount),
            escape(e.booked.as_str()),
            escape(e.transfer.as_str()),
            escape(e.flow.as_str()),
            if e.reference.is_empty() { "NOTPROVIDED".into() } else { escape(e.reference.as_str()) },
            escape(e.counterparty.as_str())
        )?;
    }
    writeln!(out, "    </Stmt>")?;
    writeln!(out, "  </BkToCstmrStmt>")?;
    writeln!(out, "</Document>")
}
