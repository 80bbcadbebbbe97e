//! Commands for finance teams, all read-only (a `finance` key is enough): `audit trial-balance`,
//! `audit safeguarding`, `merchant settlement`, `export statement`. Balances are shown on each
//! account's normal side, the side named; business dates are days in the ledger's replicated
//! business time zone (`settings get`).

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;

use super::*;

const NS_PER_DAY: i128 = 86_400 * 1_000_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StatementFormat {
    Csv,
    Json,
    /// ISO 20022 camt.053 (what a merchant's bank-side tools import).
    Camt053,
}

#[derive(Subcommand, Debug)]
pub enum AuditCmd {
    /// Per currency, total debits equal total credits (posted and pending); per account, the
    /// stored balances equal the sum of its postings. Every account is streamed (progress on
    /// stderr); exit 3 with the discrepancies listed when anything is off.
    TrialBalance {
        /// Only this currency.
        #[arg(long)]
        currency: Option<String>,
        /// Balances as of this log time (nanoseconds since the Unix epoch) instead of now.
        #[arg(long)]
        at_ns: Option<u64>,
        #[arg(long, value_enum, default_value = "table")]
        format: ReportFormat,
    },
    /// Customer and merchant money (wallet, merchant and escrow balances, per currency) against
    /// the custodial bank account's balance; exit 3 when customer money exceeds it.
    Safeguarding {
        #[arg(long)]
        bank_account: String,
    },
    /// Every replica reports its digest at the same indexes, and each retained link is recomputed
    /// from the replica's journal; names the first index where a replica or the recomputation
    /// differs (exit 3), or where not every replica could be asked.
    VerifyChain {
        /// First index to check (default: the first).
        #[arg(long, default_value_t = 1)]
        from: u64,
    },
    /// Writes a checkpoint of the applied history (index, digest, log time) signed by the
    /// cluster's audit key.
    Checkpoint {
        #[arg(long)]
        out: PathBuf,
    },
    /// Prints the cluster's audit public key (keep it: checkpoints are verified against it).
    CheckpointKey,
    /// Proves the history up to a checkpoint's index was not rewritten: the signature, every
    /// replica's digest at that index, and the chain from there to today (exit 3 otherwise).
    VerifyCheckpoint {
        file: PathBuf,
        /// The audit key to trust (hex, from `audit checkpoint-key`); default: the cluster's.
        #[arg(long)]
        audit_key: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ExportCmd {
    /// A wallet's or merchant's statement: opening balance, every posting with its time, flow,
    /// counterparty, reference, amount and running balance, closing balance.
    Statement {
        account: String,
        /// First business day, YYYY-MM-DD.
        #[arg(long)]
        from: String,
        /// Last business day (inclusive), YYYY-MM-DD.
        #[arg(long)]
        to: String,
        #[arg(long, value_enum, default_value = "csv")]
        format: StatementFormat,
    },
}

/// The log-time window `[start, end)` of business days `from ..= to` in the ledger's business
/// time zone.
async fn business_days(c: &Client, from: &str, to: &str) -> Result<(u64, u64, String)> {
    let cfg = c.get_config().await?;
    let offset_s = ledger::Settings::parse_offset(&cfg.business_utc_offset)
        .ok_or_else(|| anyhow!("bad business offset {:?}", cfg.business_utc_offset))?;
    let day = |s: &str| -> Result<i128> {
        let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|e| Usage(format!("bad date {s:?} (YYYY-MM-DD): {e}")))?;
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("epoch");
        Ok(i128::from((d - epoch).num_days()))
    };
    let (a, b) = (day(from)?, day(to)?);
    if b < a {
        return Err(Usage(format!("--to {to} is before --from {from}")).into());
    }
    let off = i128::from(offset_s) * 1_000_000_000;
    let start = a * NS_PER_DAY - off;
    let end = (b + 1) * NS_PER_DAY - off;
    if start < 0 {
        return Err(Usage("dates before 1970 are not in the ledger".into()).into());
    }
    Ok((start as u64, end as u64, cfg.business_utc_offset))
}

/// Pages through an account's postings in a log-time range, keeping only those that moved its
/// posted balance (holds only reserve money; their post, if any, is what moves it).
pub(super) struct MovedPostings<'a> {
    c: &'a Client,
    account: Id,
    from_ns: u64,
    to_ns: u64,
    after: u64,
    done: bool,
}

impl<'a> MovedPostings<'a> {
    pub(super) fn new(c: &'a Client, account: Id, from_ns: u64, to_ns: u64) -> Self {
        MovedPostings {
            c,
            account,
            from_ns,
            to_ns,
            after: 0,
            done: false,
        }
    }

    /// The next page (`None` once the range is exhausted).
    pub(super) async fn next_page(&mut self) -> Result<Option<Vec<pb::Posting>>> {
        if self.done {
            return Ok(None);
        }
        let page = self
            .c
            .list_account_history_between(
                self.account,
                self.after,
                1_000,
                Some(self.from_ns),
                Some(self.to_ns),
            )
            .await?;
        self.after = page.postings.last().map_or(self.after, |p| p.seq);
        self.done = !page.has_more || page.postings.is_empty();
        Ok(Some(
            page.postings
                .into_iter()
                .filter(|p| {
                    !matches!(
                        name::<ledger::PostingKind>(p.kind),
                        "pending_hold" | "pending_void" | "pending_expire"
                    )
                })
                .collect(),
        ))
    }
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap_or_default()
}

/// An account's posted balance on its normal side from its balances.
fn normal(side: i32, b: &pb::Balances) -> Decimal {
    let credit_view = dec(&b.credits_posted) - dec(&b.debits_posted);
    if name::<ledger::NormalSide>(side) == "debit" {
        -credit_view
    } else {
        credit_view
    }
}

#[derive(Default)]
struct CurrencyTotal {
    debit: Decimal,
    credit: Decimal,
    debits_posted: Decimal,
    credits_posted: Decimal,
    debits_pending: Decimal,
    credits_pending: Decimal,
    accounts: u64,
}

pub async fn audit(conn: &Conn, cmd: AuditCmd) -> Result<Exit> {
    let c = conn.client()?;
    match cmd {
        AuditCmd::TrialBalance {
            currency,
            at_ns,
            format,
        } => trial_balance(conn, &c, currency, at_ns, format).await,
        AuditCmd::Safeguarding { bank_account } => safeguarding(conn, &c, &bank_account).await,
        AuditCmd::VerifyChain { from } => super::chain::verify_chain(conn, &c, from).await,
        AuditCmd::Checkpoint { out } => super::chain::checkpoint(conn, &c, &out).await,
        AuditCmd::CheckpointKey => super::chain::checkpoint_key(conn, &c).await,
        AuditCmd::VerifyCheckpoint { file, audit_key } => {
            super::chain::verify_checkpoint(conn, &c, &file, audit_key).await
        }
    }
}

async fn trial_balance(
    conn: &Conn,
    c: &Client,
    currency: Option<String>,
    at_ns: Option<u64>,
    format: ReportFormat,
) -> Result<Exit> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} {pos} accounts checked {per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let json_out = conn.json || format == ReportFormat::Json;
    let mut csv_out = (format == ReportFormat::Csv && !conn.json)
        .then(|| csv::Writer::from_writer(std::io::stdout()));
    if let Some(w) = csv_out.as_mut() {
        w.write_record([
            "account",
            "kind",
            "currency",
            "normal_side",
            "debit",
            "credit",
            "pending_debit",
            "pending_credit",
        ])?;
    }
    let mut totals: BTreeMap<String, CurrencyTotal> = BTreeMap::new();
    let mut discrepancies: Vec<Value> = Vec::new();
    let mut rows: Vec<Value> = Vec::new();
    let mut after = String::new();
    let mut applied_index = 0;
    loop {
        let page = c
            .list_accounts(pb::ListAccountsRequest {
                after_id: after.clone(),
                limit: 0,
                check_postings: true,
                at_ns,
                allow_stale: false,
            })
            .await?;
        applied_index = applied_index.max(page.applied_index);
        for la in &page.accounts {
            let Some(a) = &la.account else { continue };
            bar.inc(1);
            if currency.as_ref().is_some_and(|cur| *cur != a.currency) {
                continue;
            }
            let b = match (&la.balances_at, at_ns) {
                (Some(b), Some(_)) => b.clone(),
                _ => a.balances.clone().unwrap_or_default(),
            };
            let net_debit = dec(&b.debits_posted) - dec(&b.credits_posted);
            let (debit, credit) = if net_debit.is_sign_negative() {
                (Decimal::ZERO, -net_debit)
            } else {
                (net_debit, Decimal::ZERO)
            };
            let t = totals.entry(a.currency.clone()).or_default();
            t.debit += debit;
            t.credit += credit;
            t.debits_posted += dec(&b.debits_posted);
            t.credits_posted += dec(&b.credits_posted);
            t.debits_pending += dec(&b.debits_pending);
            t.credits_pending += dec(&b.credits_pending);
            t.accounts += 1;
            if !la.problem.is_empty() {
                discrepancies.push(json!({"account": a.id, "problem": la.problem}));
            }
            let kind = name::<ledger::AccountKind>(a.kind);
            let side = name::<ledger::NormalSide>(a.normal_side);
            if let Some(w) = csv_out.as_mut() {
                w.write_record([
                    a.id.as_str(),
                    kind,
                    a.currency.as_str(),
                    side,
                    &debit.to_string(),
                    &credit.to_string(),
                    &b.debits_pending,
                    &b.credits_pending,
                ])?;
            } else if json_out {
                rows.push(json!({"account": a.id, "kind": kind, "currency": a.currency, "normal_side": side,
                                 "debit": debit.to_string(), "credit": credit.to_string(),
                                 "pending_debit": b.debits_pending, "pending_credit": b.credits_pending}));
            } else {
                println!(
                    "{}  {:<8} {} {:<6} {:>16} {:>16}",
                    a.id,
                    kind,
                    a.currency,
                    side,
                    if debit.is_zero() {
                        String::new()
                    } else {
                        debit.to_string()
                    },
                    if credit.is_zero() {
                        String::new()
                    } else {
                        credit.to_string()
                    },
                );
            }
        }
        if page.next_after_id.is_empty() {
            break;
        }
        after = page.next_after_id;
    }
    bar.finish_and_clear();
    if let Some(mut w) = csv_out.take() {
        w.flush()?;
    }
    let mut currencies = Vec::new();
    for (cur, t) in &totals {
        let balanced = t.debit == t.credit
            && t.debits_posted == t.credits_posted
            && t.debits_pending == t.credits_pending;
        if !balanced {
            discrepancies.push(json!({"currency": cur, "problem": format!(
                "debits {} ≠ credits {} (posted {} / {}, pending {} / {})",
                t.debit, t.credit, t.debits_posted, t.credits_posted, t.debits_pending, t.credits_pending)}));
        }
        currencies.push(json!({"currency": cur, "accounts": t.accounts, "debit_total": t.debit.to_string(),
            "credit_total": t.credit.to_string(), "pending_debit_total": t.debits_pending.to_string(),
            "pending_credit_total": t.credits_pending.to_string(), "balanced": balanced}));
    }
    if json_out {
        println!(
            "{}",
            json!({"at_ns": at_ns, "applied_index": applied_index, "currencies": currencies,
                   "accounts": rows, "discrepancies": discrepancies, "ok": discrepancies.is_empty()})
        );
    } else if format == ReportFormat::Table {
        println!();
        for (cur, t) in &totals {
            println!(
                "{cur:<8} {:>6} accounts  debit {:>16}  credit {:>16}  pending {} / {}",
                t.accounts, t.debit, t.credit, t.debits_pending, t.credits_pending
            );
        }
        for d in &discrepancies {
            eprintln!("DISCREPANCY {d}");
        }
        println!(
            "trial balance at index {applied_index}: {}",
            if discrepancies.is_empty() {
                "ok"
            } else {
                "DISCREPANCIES"
            }
        );
    } else {
        for d in &discrepancies {
            eprintln!("DISCREPANCY {d}");
        }
    }
    Ok(Exit(if discrepancies.is_empty() { 0 } else { 3 }))
}

async fn safeguarding(conn: &Conn, c: &Client, bank: &str) -> Result<Exit> {
    let bank_id = parse_id(bank)?;
    let Some(b) = c.get_account(bank_id).await? else {
        return Err(anyhow!("bank account {bank} not found"));
    };
    let mut owed: BTreeMap<String, [Decimal; 3]> = BTreeMap::new();
    let mut after = String::new();
    let escrow_ids: std::collections::BTreeSet<String> = ledger::Currency::declared(&b.currency)
        .map(|cur| ledger::escrow_account_id(cur).to_string())
        .into_iter()
        .collect();
    loop {
        let page = c
            .list_accounts(pb::ListAccountsRequest {
                after_id: after.clone(),
                limit: 0,
                ..Default::default()
            })
            .await?;
        for la in &page.accounts {
            let Some(a) = &la.account else { continue };
            let bal = normal(a.normal_side, &a.balances.clone().unwrap_or_default());
            let slot = match name::<ledger::AccountKind>(a.kind) {
                "wallet" => 0,
                "merchant" => 1,
                // Escrow holds customers' money in transit (open red packets).
                _ if escrow_ids.contains(&a.id) => 2,
                _ => continue,
            };
            owed.entry(a.currency.clone()).or_default()[slot] += bal;
        }
        if page.next_after_id.is_empty() {
            break;
        }
        after = page.next_after_id;
    }
    let held = normal(b.normal_side, &b.balances.clone().unwrap_or_default());
    let [wallets, merchants, escrow] = owed.get(&b.currency).copied().unwrap_or_default();
    let customer = wallets + merchants + escrow;
    let difference = held - customer;
    let shortfall = difference.is_sign_negative() && !difference.is_zero();
    if conn.json {
        println!(
            "{}",
            json!({"currency": b.currency, "bank_account": b.id, "bank_balance": held.to_string(),
                   "wallets": wallets.to_string(), "merchants": merchants.to_string(),
                   "escrow": escrow.to_string(), "customer_money": customer.to_string(),
                   "difference": difference.to_string(), "shortfall": shortfall})
        );
    } else {
        println!("{} safeguarding against bank account {}", b.currency, b.id);
        println!("  bank balance (debit)      {held:>18}");
        println!("  wallets                   {wallets:>18}");
        println!("  merchants                 {merchants:>18}");
        println!("  escrow (in transit)       {escrow:>18}");
        println!("  customer money            {customer:>18}");
        println!(
            "  difference                {difference:>18}  {}",
            if shortfall {
                "SHORTFALL: customer money exceeds the bank"
            } else {
                "(the operator's own money: fees, positions)"
            }
        );
    }
    Ok(Exit(if shortfall { 3 } else { 0 }))
}

/// `merchant settlement`: one business day of a merchant.
pub async fn settlement(
    conn: &Conn,
    merchant: &str,
    date: &str,
    format: ReportFormat,
) -> Result<Exit> {
    let c = conn.client()?;
    let (from, to, offset) = business_days(&c, date, date).await?;
    let s = match c
        .get_merchant_settlement(parse_id(merchant)?, from, to)
        .await
    {
        Ok(s) => s,
        Err(e) => return not_found_or(conn, e),
    };
    let v = json!({"merchant": s.merchant_id, "date": date, "business_utc_offset": offset,
        "from_ns": from, "to_ns": to, "currency": s.currency, "payments": s.payments,
        "gross": s.gross, "fees": s.fees, "refunds": s.refunds, "refunded": s.refunded,
        "fees_refunded": s.fees_refunded, "other_in": s.other_in, "other_out": s.other_out,
        "net": s.net});
    if conn.json || format == ReportFormat::Json {
        println!("{v}");
    } else if format == ReportFormat::Csv {
        let mut w = csv::Writer::from_writer(std::io::stdout());
        let keys = [
            "merchant",
            "date",
            "currency",
            "payments",
            "gross",
            "fees",
            "refunds",
            "refunded",
            "fees_refunded",
            "other_in",
            "other_out",
            "net",
        ];
        w.write_record(keys)?;
        w.write_record(keys.iter().map(|k| match &v[*k] {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }))?;
        w.flush()?;
    } else {
        println!(
            "{} settlement for {date} (UTC{offset}), {}",
            s.merchant_id, s.currency
        );
        println!(
            "  payments   {:>6}  gross {:>14}  fees {:>12}",
            s.payments, s.gross, s.fees
        );
        println!(
            "  refunds    {:>6}  refunded {:>11}  fees refunded {:>8}",
            s.refunds, s.refunded, s.fees_refunded
        );
        println!(
            "  other in {:>14}  other out {:>14}",
            s.other_in, s.other_out
        );
        println!("  net {:>18}", s.net);
    }
    Ok(Exit(0))
}

pub async fn export(conn: &Conn, cmd: ExportCmd) -> Result<Exit> {
    let c = conn.client()?;
    let ExportCmd::Statement {
        account,
        from,
        to,
        format,
    } = cmd;
    let id = parse_id(&account)?;
    let (start, end, offset) = business_days(&c, &from, &to).await?;
    let Some(a) = c.get_account(id).await? else {
        if conn.json {
            println!(
                "{}",
                json!({"error": "not_found", "message": format!("account {id} not found")})
            );
        }
        eprintln!("account {id} not found");
        return Ok(Exit(3));
    };
    let side = a.normal_side;
    let opening = match start.checked_sub(1) {
        Some(t) => normal(
            side,
            &c.get_balance_at(id, t).await?.balances.unwrap_or_default(),
        ),
        None => Decimal::ZERO,
    };
    let mut running = opening;
    let mut lines: Vec<Value> = Vec::new();
    let mut entries: Vec<api::statement::camt053::ExportEntry> = Vec::new();
    let mut w = (format == StatementFormat::Csv && !conn.json)
        .then(|| csv::Writer::from_writer(std::io::stdout()));
    // One table: the opening balance as the first row, the closing balance as the last.
    if let Some(w) = w.as_mut() {
        w.write_record([
            "time",
            "timestamp_ns",
            "seq",
            "flow",
            "transfer",
            "counterparty",
            "reference",
            "amount",
            "balance",
        ])?;
        w.write_record([
            "",
            "",
            "",
            "opening_balance",
            "",
            "",
            "",
            "",
            &opening.to_string(),
        ])?;
    }
    let mut pages = MovedPostings::new(&c, id, start, end);
    while let Some(page) = pages.next_page().await? {
        for p in &page {
            let mut amount = dec(&p.amount);
            let debit_normal = name::<ledger::NormalSide>(side) == "debit";
            if p.is_debit != debit_normal {
                amount = -amount;
            }
            running += amount;
            let time = chrono::DateTime::from_timestamp_nanos(p.timestamp_ns as i64)
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let counterparty = p.counterparty_account_id.clone().unwrap_or_default();
            if let Some(w) = w.as_mut() {
                w.write_record([
                    time.as_str(),
                    &p.timestamp_ns.to_string(),
                    &p.seq.to_string(),
                    &p.flow,
                    &p.transfer_id,
                    &counterparty,
                    &p.reference,
                    &amount.to_string(),
                    &running.to_string(),
                ])?;
            } else if format == StatementFormat::Camt053 && !conn.json {
                entries.push(api::statement::camt053::ExportEntry {
                    seq: p.seq,
                    booked: time.clone(),
                    amount,
                    transfer: p.transfer_id.clone(),
                    reference: p.reference.clone(),
                    flow: p.flow.clone(),
                    counterparty: counterparty.clone(),
                });
            } else {
                lines.push(
                    json!({"time": time, "timestamp_ns": p.timestamp_ns, "seq": p.seq,
                    "flow": p.flow, "transfer": p.transfer_id, "counterparty": counterparty,
                    "reference": p.reference, "amount": amount.to_string(),
                    "balance": running.to_string()}),
                );
            }
        }
    }
    // The closing balance is read back, not only summed: the two must agree.
    let closing = normal(
        side,
        &c.get_balance_at(id, end - 1)
            .await?
            .balances
            .unwrap_or_default(),
    );
    if closing != running {
        return Err(anyhow!(
            "statement does not add up: opening {opening} + postings = {running}, ledger says {closing}"
        ));
    }
    if let Some(mut w) = w.take() {
        w.write_record([
            "",
            "",
            "",
            "closing_balance",
            "",
            "",
            "",
            "",
            &closing.to_string(),
        ])?;
        w.flush()?;
    } else if format == StatementFormat::Camt053 && !conn.json {
        let export = api::statement::camt053::Export {
            statement_id: format!("{}-{from}-{to}", a.id),
            account: a.id.clone(),
            currency: a.currency.clone(),
            from: chrono::NaiveDate::parse_from_str(&from, "%Y-%m-%d")?,
            to: chrono::NaiveDate::parse_from_str(&to, "%Y-%m-%d")?,
            created: chrono::DateTime::from_timestamp_nanos(end.saturating_sub(1) as i64)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            opening,
            closing,
            entries,
        };
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        api::statement::camt053::write(&mut out, &export)?;
        std::io::Write::flush(&mut out)?;
    } else {
        println!(
            "{}",
            json!({"account": a.id, "currency": a.currency, "normal_side": name::<ledger::NormalSide>(side),
                   "from": from, "to": to, "business_utc_offset": offset, "from_ns": start, "to_ns": end,
                   "opening_balance": opening.to_string(), "lines": lines,
                   "closing_balance": closing.to_string()})
        );
    }
    Ok(Exit(0))
}
