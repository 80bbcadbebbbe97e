//! CSV statements with a column map: `--csv-map "date=Booking Date,amount=Amount,direction=Type,
//! reference=End To End Id|Bank Ref,currency=Currency,date_format=%d/%m/%Y,credit=C,reversal=Reversal"`.
//! Keys: `date`, `amount`, `reference` (one or more columns joined by `|`), and optionally
//! `direction` (with `credit=`/`debit=` values, default CRDT/DBIT; without a direction column the
//! amount's sign decides: negative is a debit), `currency` (else `currency_default=`),
//! `date_format` (chrono syntax, default `%Y-%m-%d`), `reversal` (a column whose `true`/`Y`/`1`
//! marks reversals). The first row names the columns. CSV statements carry no balances.

use std::collections::BTreeMap;
use std::io::BufRead;

use chrono::NaiveDate;

use super::*;

/// Most keys a column map may have.
const MAP_KEYS_MAX: usize = 16;

/// Which CSV columns hold what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnMap {
    pub date: String,
    pub amount: String,
    pub references: Vec<String>,
    pub direction: Option<String>,
    pub credit_value: String,
    pub debit_value: String,
    pub currency: Option<String>,
    pub currency_default: Option<String>,
    pub date_format: String,
    pub reversal: Option<String>,
}

impl Default for ColumnMap {
    fn default() -> ColumnMap {
        ColumnMap {
            date: "booking_date".into(),
            amount: "amount".into(),
            references: vec!["reference".into()],
            direction: Some("direction".into()),
            credit_value: "CRDT".into(),
            debit_value: "DBIT".into(),
            currency: Some("currency".into()),
            currency_default: None,
            date_format: "%Y-%m-%d".into(),
            reversal: None,
        }
    }
}

impl ColumnMap {
    /// Parses `key=value,key=value`; keys not given keep their defaults.
    pub fn parse(spec: &str) -> Result<ColumnMap, String> {
        let mut m = ColumnMap::default();
        let mut seen = BTreeMap::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?} is not key=value"))?;
            if seen.insert(k.to_string(), ()).is_some() {
                return Err(format!("{k} given twice"));
            }
            if seen.len() > MAP_KEYS_MAX {
                return Err("too many keys".into());
            }
            let v = v.trim().to_string();
            match k.trim() {
                "date" => m.date = v,
                "amount" => m.amount = v,
                "reference" => m.references = v.split('|').map(|s| s.trim().to_string()).collect(),
                "direction" => m.direction = (!v.is_empty()).then_some(v),
                "credit" => m.credit_value = v,
                "debit" => m.debit_value = v,
                "currency" => m.currency = (!v.is_empty()).then_some(v),
                "currency_default" => m.currency_default = Some(v),
                "date_format" => m.date_format = v,
                "reversal" => m.reversal = Some(v),
                other => return Err(format!("unknown key {other:?}")),
            }
        }
        Ok(m)
    }
}

pub struct CsvReader<R: BufRead> {
    rows: csv::StringRecordsIntoIter<R>,
    map: ColumnMap,
    cols: Columns,
    summary: Summary,
    index: u64,
    done: bool,
}

/// Column positions of a map in the header row.
#[derive(Clone, Debug)]
struct Columns {
    date: usize,
    amount: usize,
    references: Vec<usize>,
    direction: Option<usize>,
    currency: Option<usize>,
    reversal: Option<usize>,
}

impl<R: BufRead> CsvReader<R> {
    pub fn new(input: R, map: ColumnMap) -> Result<CsvReader<R>, ParseError> {
        let mut rd = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(input);
        let headers = rd
            .headers()
            .map_err(|e| ParseError {
                line: 1,
                reason: format!("bad CSV header: {e}"),
            })?
            .clone();
        let col = |name: &str| -> Result<usize, ParseError> {
            headers
                .iter()
                .position(|h| h.trim() == name)
                .ok_or(ParseError {
                    line: 1,
                    reason: format!("no column {name:?} in the header"),
                })
        };
        let cols = Columns {
            date: col(&map.date)?,
            amount: col(&map.amount)?,
            references: map
                .references
                .iter()
                .map(|r| col(r))
                .collect::<Result<_, _>>()?,
            direction: map.direction.as_deref().map(col).transpose()?,
            currency: match (&map.currency, &map.currency_default) {
                (Some(c), None) => Some(col(c)?),
                (Some(c), Some(_)) => col(c).ok(),
                (None, _) => None,
            },
            reversal: map.reversal.as_deref().map(col).transpose()?,
        };
        if cols.currency.is_none() && map.currency_default.is_none() {
            return err(1, "no currency column and no currency_default");
        }
        Ok(CsvReader {
            rows: rd.into_records(),
            map,
            cols,
            summary: Summary::default(),
            index: 0,
            done: false,
        })
    }

    fn line(&mut self, rec: csv::StringRecord) -> Result<Line, ParseError> {
        let line = rec.position().map_or(0, |p| p.line());
        let field = |i: usize| rec.get(i).unwrap_or_default().trim();
        if rec.as_slice().len() > TEXT_LINE_BYTES_MAX {
            return err(line, "row too long");
        }
        let raw_amount = field(self.cols.amount);
        if raw_amount.is_empty() {
            return err(line, "row without an amount");
        }
        let (negative, digits) = match raw_amount.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, raw_amount.strip_prefix('+').unwrap_or(raw_amount)),
        };
        let amount = parse_amount(digits, line)?;
        let direction = match self.cols.direction {
            Some(i) => {
                let v = field(i);
                if v == self.map.credit_value {
                    Direction::Credit
                } else if v == self.map.debit_value {
                    Direction::Debit
                } else {
                    return err(
                        line,
                        format!(
                            "direction {v:?} is neither {:?} nor {:?}",
                            self.map.credit_value, self.map.debit_value
                        ),
                    );
                }
            }
            None if negative => Direction::Debit,
            None => Direction::Credit,
        };
        if negative && self.cols.direction.is_some() {
            return err(line, "a signed amount with a direction column");
        }
        let currency = match self.cols.currency {
            Some(i) if !field(i).is_empty() => field(i).to_string(),
            _ => self.map.currency_default.clone().ok_or(ParseError {
                line,
                reason: "row without a currency".into(),
            })?,
        };
        if currency.len() < 3
            || currency.len() > 8
            || !currency.bytes().all(|b| b.is_ascii_uppercase())
        {
            return err(line, format!("{currency:?} is not a currency code"));
        }
        match &self.summary.currency {
            Some(c) if *c != currency => {
                return err(line, format!("row in {currency}, the statement is in {c}"))
            }
            None => self.summary.currency = Some(currency.clone()),
            _ => {}
        }
        let d = field(self.cols.date);
        let booking_date = NaiveDate::parse_from_str(d, &self.map.date_format).or_else(|_| {
            err(
                line,
                format!("{d:?} is not a date ({})", self.map.date_format),
            )
        })?;
        let mut references = Vec::new();
        for i in &self.cols.references {
            push_reference(&mut references, field(*i));
        }
        let reversal = self
            .cols
            .reversal
            .is_some_and(|i| matches!(field(i), "true" | "TRUE" | "Y" | "y" | "1" | "yes"));
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
}

impl<R: BufRead> Iterator for CsvReader<R> {
    type Item = Result<Line, ParseError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let r = match self.rows.next()? {
            Ok(rec) => self.line(rec),
            Err(e) => err(
                e.position().map_or(0, |p| p.line()),
                format!("bad CSV: {e}"),
            ),
        };
        if r.is_err() {
            self.done = true;
        }
        Some(r)
    }
}

impl<R: BufRead> StatementReader for CsvReader<R> {
    fn summary(&self) -> &Summary {
        &self.summary
    }
}
