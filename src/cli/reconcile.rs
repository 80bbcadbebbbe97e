//! `suanpan reconcile statement`: a bank statement (camt.053, MT940, CSV) against the ledger's
//! postings on the custodial bank account (`api::statement` parses and matches; this file reads
//! the ledger, checks the balances, writes the buckets and posts suspense entries).
//!
//! The file is read twice, streaming (first its dates, then its lines against the postings of
//! those dates), so memory holds the period's postings and the unmatched lines, never the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use api::statement::matcher::{Bucket, LedgerEntry, Matcher, Outcome};
use api::statement::{self, csv_map::ColumnMap, Direction, Format};
use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::*;

/// Most breaks the JSON document lists (the `--out` CSV files have all of them).
const JSON_BREAKS_MAX: usize = 10_000;
/// Suspense entries per submit.
const SUSPENSE_BATCH_MAX: usize = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatementFormatArg {
    Camt053,
    Mt940,
    Csv,
}

#[derive(Subcommand, Debug)]
pub enum ReconcileCmd {
    /// Match a bank statement's lines with the ledger's postings on the bank account; check the
    /// statement's opening and closing balances; exit 0 when fully reconciled, 3 on any break.
    Statement {
        file: PathBuf,
        /// The custodial bank account the statement is for.
        #[arg(long)]
        account: String,
        /// Default: by extension (.xml camt053, .csv csv, else mt940).
        #[arg(long, value_enum)]
        format: Option<StatementFormatArg>,
        /// CSV columns: "date=COL,amount=COL,reference=COL|COL,direction=COL,currency=COL,
        /// date_format=%d/%m/%Y,credit=C,debit=D,reversal=COL,currency_default=CNY".
        #[arg(long)]
        csv_map: Option<String>,
        /// How many days a posting's business date may differ from the line's booking date.
        #[arg(long, default_value_t = 2)]
        date_window_days: u32,
        /// Write one CSV per bucket here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Post each line found only in the statement to the suspense account (ids derived from
        /// the statement and the line: re-running never posts twice).
        #[arg(long, requires = "suspense_account")]
        post_suspense: bool,
        #[arg(long)]
        suspense_account: Option<String>,
    },
}

fn format_of(path: &Path, f: Option<StatementFormatArg>) -> Format {
    match f {
        Some(StatementFormatArg::Camt053) => Format::Camt053,
        Some(StatementFormatArg::Mt940) => Format::Mt940,
        Some(StatementFormatArg::Csv) => Format::Csv,
        None => match path.extension().and_then(|e| e.to_str()) {
            Some("xml") => Format::Camt053,
            Some("csv") => Format::Csv,
            _ => Format::Mt940,
        },
    }
}

fn open(
    path: &Path,
    format: Format,
    map: &ColumnMap,
) -> Result<Box<dyn statement::StatementReader>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    statement::reader(format, std::io::BufReader::new(f), map)
        .map_err(|e| anyhow!("{}: line {}: {}", path.display(), e.line, e.reason))
}

/// The suspense entry's id: BLAKE3 of the statement's identity and the line, as a UUID.
fn suspense_id(statement_id: &str, o: &Outcome) -> Id {
    let h = blake3::hash(
        format!(
            "suanpan/suspense/{statement_id}/{}/{}/{}/{}/{}",
            o.statement_line.unwrap_or(0),
            o.date,
            o.direction.name(),
            o.amount,
            o.reference
        )
        .as_bytes(),
    );
    let mut b: [u8; 16] = h.as_bytes()[..16].try_into().expect("16 bytes");
    // A version-8 (custom) UUID.
    b[6] = (b[6] & 0x0F) | 0x80;
    b[8] = (b[8] & 0x3F) | 0x80;
    Id::from_bytes(b)
}

fn business_date(ts_ns: u64, offset_s: i32) -> NaiveDate {
    let s = ledger::Settings {
        business_utc_offset_seconds: offset_s,
    };
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    epoch + chrono::Duration::days(i64::from(s.day_of(ts_ns)))
}

fn day_start_ns(d: NaiveDate, offset_s: i32) -> u64 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
    let days = i128::from((d - epoch).num_days());
    (days * 86_400_000_000_000 - i128::from(offset_s) * 1_000_000_000).max(0) as u64
}

fn outcome_json(o: &Outcome) -> Value {
    json!({"bucket": o.bucket.name(), "statement_line": o.statement_line, "file_line": o.file_line,
           "transfer_id": o.transfer_id, "amount": o.amount.to_string(),
           "ledger_amount": o.ledger_amount.map(|a| a.to_string()), "reference": o.reference,
           "date": o.date.to_string(), "direction": o.direction.name()})
}

pub async fn reconcile(conn: &Conn, cmd: ReconcileCmd) -> Result<Exit> {
    let ReconcileCmd::Statement {
        file,
        account,
        format,
        csv_map,
        date_window_days,
        out,
        post_suspense,
        suspense_account,
    } = cmd;
    let c = conn.client()?;
    let bank = parse_id(&account)?;
    let format = format_of(&file, format);
    let map = match &csv_map {
        Some(spec) => ColumnMap::parse(spec).map_err(|e| Usage(format!("--csv-map: {e}")))?,
        None => ColumnMap::default(),
    };
    let Some(bank_acct) = c.get_account(bank).await? else {
        return Err(anyhow!("bank account {bank} not found"));
    };

    // Pass 1: the statement's dates (and any malformed line, before anything is read or posted).
    let (mut first, mut last) = (None::<NaiveDate>, None::<NaiveDate>);
    let mut lines = 0u64;
    let mut r = open(&file, format, &map)?;
    for l in &mut r {
        let l = l.map_err(|e| anyhow!("{}: line {}: {}", file.display(), e.line, e.reason))?;
        if l.currency != bank_acct.currency {
            return Err(anyhow!(
                "{}: line {}: {} entry, the bank account is in {}",
                file.display(),
                l.file_line,
                l.currency,
                bank_acct.currency
            ));
        }
        first = Some(first.map_or(l.booking_date, |f| f.min(l.booking_date)));
        last = Some(last.map_or(l.booking_date, |x| x.max(l.booking_date)));
        lines += 1;
    }
    let summary = r.summary().clone();
    drop(r);

    // The bank account's postings over the statement's dates and the window either side.
    let cfg = c.get_config().await?;
    let offset = ledger::Settings::parse_offset(&cfg.business_utc_offset).unwrap_or(0);
    let window = i64::from(date_window_days);
    let mut entries = Vec::new();
    if let (Some(f), Some(l)) = (first, last) {
        let from = day_start_ns(f - chrono::Duration::days(window), offset);
        let to = day_start_ns(l + chrono::Duration::days(window + 1), offset);
        let mut pages = super::finance::MovedPostings::new(&c, bank, from, to);
        while let Some(page) = pages.next_page().await? {
            for p in &page {
                entries.push(LedgerEntry {
                    transfer: p.transfer_id.clone(),
                    hold: p.pending_id.clone(),
                    reference: p.reference.clone(),
                    amount: Decimal::from_str(&p.amount).unwrap_or_default(),
                    // Money into the bank account is a debit of the (asset) bank account.
                    direction: if p.is_debit {
                        Direction::Credit
                    } else {
                        Direction::Debit
                    },
                    date: business_date(p.timestamp_ns, offset),
                    seq: p.seq,
                });
            }
        }
    }
    let ledger_postings = entries.len();

    // Pass 2: match, streaming the outcomes into the bucket files.
    let mut matcher = Matcher::new(entries, window);
    let mut counts: BTreeMap<Bucket, u64> = BTreeMap::new();
    let mut writers: BTreeMap<Bucket, csv::Writer<std::fs::File>> = BTreeMap::new();
    let mut breaks: Vec<Value> = Vec::new();
    let mut only_in_statement: Vec<Outcome> = Vec::new();
    if let Some(dir) = &out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut record = |o: Outcome| -> Result<()> {
        *counts.entry(o.bucket).or_default() += 1;
        if let Some(dir) = &out {
            let w = match writers.entry(o.bucket) {
                std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::btree_map::Entry::Vacant(e) => {
                    let mut w =
                        csv::Writer::from_path(dir.join(format!("{}.csv", o.bucket.name())))?;
                    w.write_record([
                        "bucket",
                        "statement_line",
                        "file_line",
                        "transfer_id",
                        "amount",
                        "ledger_amount",
                        "reference",
                        "date",
                        "direction",
                    ])?;
                    e.insert(w)
                }
            };
            let opt = |v: Option<String>| v.unwrap_or_default();
            w.write_record([
                o.bucket.name().to_string(),
                opt(o.statement_line.map(|v| v.to_string())),
                opt(o.file_line.map(|v| v.to_string())),
                opt(o.transfer_id.clone()),
                o.amount.to_string(),
                opt(o.ledger_amount.map(|v| v.to_string())),
                o.reference.clone(),
                o.date.to_string(),
                o.direction.name().to_string(),
            ])?;
        }
        if o.bucket.is_break() && breaks.len() < JSON_BREAKS_MAX {
            breaks.push(outcome_json(&o));
        }
        if o.bucket == Bucket::OnlyInStatement {
            only_in_statement.push(o);
        }
        Ok(())
    };
    let mut r = open(&file, format, &map)?;
    for l in &mut r {
        let l = l.map_err(|e| anyhow!("{}: line {}: {}", file.display(), e.line, e.reason))?;
        for o in matcher.push(l) {
            record(o)?;
        }
    }
    if let (Some(f), Some(l)) = (first, last) {
        for o in matcher.finish(f, l) {
            record(o)?;
        }
    }
    for (_, mut w) in writers {
        w.flush()?;
    }

    // The statement's balances against the bank account's (an asset: debit-normal, as the bank
    // shows our money as a credit balance).
    let normal_at = |ts: u64| {
        let c = c.clone();
        async move {
            let b = c
                .get_balance_at(bank, ts)
                .await?
                .balances
                .unwrap_or_default();
            anyhow::Ok(
                Decimal::from_str(&b.debits_posted).unwrap_or_default()
                    - Decimal::from_str(&b.credits_posted).unwrap_or_default(),
            )
        }
    };
    let mut balances = serde_json::Map::new();
    let mut balances_ok = true;
    for (what, b, end_of_day) in [
        ("opening", &summary.opening, false),
        ("closing", &summary.closing, true),
    ] {
        let Some(b) = b else {
            balances.insert(
                what.into(),
                json!({"statement": null, "ledger": null, "ok": null}),
            );
            continue;
        };
        // Opening: the balance as the day began; closing: as it ended.
        let day = if end_of_day {
            b.date + chrono::Duration::days(1)
        } else {
            b.date
        };
        let ledger_bal = match day_start_ns(day, offset).checked_sub(1) {
            Some(ts) => normal_at(ts).await?,
            None => Decimal::ZERO,
        };
        let ok = ledger_bal == b.amount;
        balances_ok &= ok;
        balances.insert(
            what.into(),
            json!({"date": b.date.to_string(), "statement": b.amount.to_string(),
                   "ledger": ledger_bal.to_string(), "ok": ok}),
        );
    }

    // Suspense entries for what only the bank knows about.
    let mut suspense = Value::Null;
    if post_suspense && !only_in_statement.is_empty() {
        let s = parse_id(suspense_account.as_deref().unwrap_or_default())?;
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let (mut posted, mut replayed, mut refused) = (0u64, 0u64, Vec::new());
        for chunk in only_in_statement.chunks(SUSPENSE_BATCH_MAX) {
            let cmds: Vec<pb::Command> = chunk
                .iter()
                .map(|o| {
                    let (debit, credit) = match o.direction {
                        Direction::Credit => (bank, s),
                        Direction::Debit => (s, bank),
                    };
                    let mut reference: String = if o.reference.is_empty() {
                        format!("{}#{}", summary.statement_id, o.statement_line.unwrap_or(0))
                    } else {
                        o.reference.clone()
                    };
                    while reference.len() > ledger::REFERENCE_BYTES_MAX {
                        reference.pop();
                    }
                    ops::transfer_with_reference(
                        suspense_id(&summary.statement_id, o),
                        vec![ops::leg(
                            debit,
                            credit,
                            &o.amount.to_string(),
                            &bank_acct.currency,
                        )],
                        None,
                        &reference,
                    )
                })
                .collect();
            for (o, r) in chunk.iter().zip(c.submit(cmds).await?) {
                if !r.is_ok() {
                    refused.push(json!({"statement_line": o.statement_line, "result": r.name}));
                } else if r.timestamp_ns < started {
                    replayed += 1;
                } else {
                    posted += 1;
                }
            }
        }
        suspense = json!({"account": s.to_string(), "posted": posted, "already_posted": replayed,
                          "refused": refused});
    }

    let n = |b: Bucket| counts.get(&b).copied().unwrap_or(0);
    let reconciled = Bucket::ALL
        .iter()
        .filter(|b| b.is_break())
        .all(|b| n(*b) == 0)
        && balances_ok;
    let doc = json!({
        "statement": {"id": summary.statement_id, "account": summary.account, "file": file.display().to_string(),
                      "lines": lines, "from": first.map(|d| d.to_string()), "to": last.map(|d| d.to_string())},
        "summary": {"statement_lines": lines, "matched": n(Bucket::Matched),
                    "amount_mismatch": n(Bucket::AmountMismatch), "only_in_statement": n(Bucket::OnlyInStatement),
                    "only_in_ledger": n(Bucket::OnlyInLedger), "duplicates": n(Bucket::Duplicate),
                    "reversed": n(Bucket::Reversed), "ledger_postings": ledger_postings},
        "balances": balances,
        "breaks": breaks,
        "breaks_truncated": breaks.len() >= JSON_BREAKS_MAX,
        "suspense": suspense,
        "reconciled": reconciled,
    });
    if conn.json {
        println!("{doc}");
    } else {
        println!(
            "statement {} ({} lines, {} … {}) against {} ({} postings)",
            summary.statement_id,
            lines,
            first.map_or("-".into(), |d| d.to_string()),
            last.map_or("-".into(), |d| d.to_string()),
            bank,
            ledger_postings
        );
        for b in Bucket::ALL {
            println!("  {:<18} {:>9}", b.name(), n(b));
        }
        for (what, v) in &balances {
            println!(
                "  {what} balance: statement {} ledger {} {}",
                v["statement"],
                v["ledger"],
                match v["ok"].as_bool() {
                    Some(true) => "ok",
                    Some(false) => "BREAK",
                    None => "(not in the statement)",
                }
            );
        }
        if !suspense.is_null() {
            println!("  suspense: {suspense}");
        }
        for b in breaks.iter().take(20) {
            println!("  break {b}");
        }
        println!(
            "{}",
            if reconciled {
                "reconciled"
            } else {
                "NOT reconciled"
            }
        );
    }
    Ok(Exit(if reconciled { 0 } else { 3 }))
}
