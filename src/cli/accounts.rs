//! `suanpan account` and `suanpan history`.

use super::*;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Kind {
    Wallet,
    Merchant,
    System,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Status {
    Open,
    Frozen,
    Closed,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Side {
    Debit,
    Credit,
}

#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    /// Create an account (the id is also the idempotency key: retrying with it is safe).
    Create {
        /// Account id (UUID); a new time-ordered one is generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        /// ISO 4217 code (e.g. CNY) or a defined in-app currency (e.g. QCOIN).
        #[arg(long)]
        currency: String,
        #[arg(long, value_enum, default_value = "wallet")]
        kind: Kind,
        /// Allowed overdraft (wallets and accounts with --debits-must-not-exceed-credits).
        #[arg(long)]
        overdraft: Option<String>,
        /// Reject debits beyond credits (always on for wallets).
        #[arg(long)]
        debits_must_not_exceed_credits: bool,
        /// Reject credits beyond debits (asset accounts such as the bank account).
        #[arg(long)]
        credits_must_not_exceed_debits: bool,
        #[arg(long)]
        per_transfer_max: Option<String>,
        #[arg(long)]
        daily_outflow_max: Option<String>,
        #[arg(long)]
        daily_outflow_count_max: Option<u32>,
        #[arg(long)]
        balance_max: Option<String>,
        #[arg(long, default_value = "")]
        reference: String,
        /// The side its balance is carried on in reports (default: debit for an asset created
        /// with --credits-must-not-exceed-debits, credit otherwise).
        #[arg(long, value_enum)]
        normal_side: Option<Side>,
    },
    /// Show accounts and their balances.
    Get {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Freeze (no debits), reopen, or close (zero balance only) an account.
    SetStatus {
        account: String,
        #[arg(long, value_enum)]
        status: Status,
        /// Command id (idempotency key); random if omitted.
        #[arg(long)]
        id: Option<String>,
    },
    /// Put an account on a KYC tier: its limits become the tier's from the next command on.
    SetTier {
        /// Command id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        account: String,
        /// A tier defined with `suanpan tier define`.
        #[arg(long)]
        tier: String,
    },
    /// Balances as of a log time (nanoseconds since the Unix epoch).
    BalanceAt {
        account: String,
        #[arg(long)]
        at_ns: u64,
    },
}

fn balances_json(b: &Option<pb::Balances>) -> Value {
    let b = b.clone().unwrap_or_default();
    json!({"debits_posted": b.debits_posted, "credits_posted": b.credits_posted, "debits_pending": b.debits_pending, "credits_pending": b.credits_pending})
}

fn account_json(a: &pb::Account) -> Value {
    let l = a.limits.clone().unwrap_or_default();
    json!({
        "id": a.id, "currency": a.currency, "kind": name::<ledger::AccountKind>(a.kind), "status": name::<ledger::AccountStatus>(a.status),
        "balance": a.balance, "available": a.available, "balances": balances_json(&a.balances),
        "overdraft": a.overdraft, "debits_must_not_exceed_credits": a.debits_must_not_exceed_credits,
        "credits_must_not_exceed_debits": a.credits_must_not_exceed_debits,
        "limits": {"per_transfer_max": l.per_transfer_max, "daily_outflow_max": l.daily_outflow_max,
                   "daily_outflow_count_max": l.daily_outflow_count_max, "balance_max": l.balance_max},
        "reference": a.reference, "metadata": a.metadata, "created_ns": a.created_ns, "posting_seq": a.posting_seq,
        "tier": a.tier, "normal_side": name::<ledger::NormalSide>(a.normal_side),
        "normal_balance": a.normal_balance,
    })
}

pub async fn account(conn: &Conn, cmd: AccountCmd) -> Result<Exit> {
    let c = conn.client()?;
    match cmd {
        AccountCmd::Create {
            id,
            currency,
            kind,
            overdraft,
            debits_must_not_exceed_credits,
            credits_must_not_exceed_debits,
            per_transfer_max,
            daily_outflow_max,
            daily_outflow_count_max,
            balance_max,
            reference,
            normal_side,
        } => {
            let id = id_or_new(&id)?;
            // Why `invalid_flags` for an overdraft, in words (the result code alone does not say).
            let overdraft_hint = (overdraft.is_some()
                && !debits_must_not_exceed_credits
                && !matches!(kind, Kind::Wallet))
            .then_some(
                "an overdraft bounds how far debits may pass credits, so it needs \
                 --debits-must-not-exceed-credits; a system or merchant account without it has no \
                 such bound (drop --overdraft, or add --debits-must-not-exceed-credits)",
            );
            let kind = match kind {
                Kind::Wallet => pb::AccountKind::Wallet,
                Kind::Merchant => pb::AccountKind::Merchant,
                Kind::System => pb::AccountKind::System,
            };
            let cmd = ops::create_account_with(pb::CreateAccount {
                id: id.to_string(),
                currency,
                kind: kind as i32,
                debits_must_not_exceed_credits,
                credits_must_not_exceed_debits,
                overdraft,
                limits: Some(pb::Limits {
                    per_transfer_max,
                    daily_outflow_max,
                    daily_outflow_count_max,
                    balance_max,
                }),
                reference,
                metadata: Default::default(),
                normal_side: match normal_side {
                    None => pb::NormalSide::Unspecified,
                    Some(Side::Debit) => pb::NormalSide::Debit,
                    Some(Side::Credit) => pb::NormalSide::Credit,
                } as i32,
            });
            let o = c.submit_one(cmd).await?;
            let hint = overdraft_hint.filter(|_| o.name == "invalid_flags");
            Ok(report_with_hint(conn, "account", &o, hint))
        }
        AccountCmd::Get { ids } => {
            let ids: Vec<Id> = ids.iter().map(|s| parse_id(s)).collect::<Result<_>>()?;
            let r = c.get_accounts(&ids).await?;
            if conn.json {
                let v: Vec<Value> = r.accounts.iter().map(account_json).collect();
                println!(
                    "{}",
                    json!({"accounts": v, "not_found": r.not_found, "applied_index": r.applied_index})
                );
            } else {
                for a in &r.accounts {
                    // The balance on the account's normal side, the side named.
                    println!(
                        "{}  {:<8} {:<6} {} {:>14} {:<6}  available {:>14}{}",
                        a.id,
                        name::<ledger::AccountKind>(a.kind),
                        name::<ledger::AccountStatus>(a.status),
                        a.currency,
                        a.normal_balance,
                        name::<ledger::NormalSide>(a.normal_side),
                        a.available,
                        a.tier
                            .as_ref()
                            .map(|t| format!("  tier {t}"))
                            .unwrap_or_default()
                    );
                }
                for n in &r.not_found {
                    println!("{n}  not found");
                }
            }
            Ok(Exit(if r.not_found.is_empty() { 0 } else { 3 }))
        }
        AccountCmd::SetStatus {
            account,
            status,
            id,
        } => {
            let account = parse_id(&account)?;
            let id = id_or_new(&id)?;
            let st = match status {
                Status::Open => pb::AccountStatus::Open,
                Status::Frozen => pb::AccountStatus::Frozen,
                Status::Closed => pb::AccountStatus::Closed,
            };
            let o = c
                .submit_one(ops::set_account_status(id, account, st))
                .await?;
            Ok(report(conn, "status change", &o))
        }
        AccountCmd::SetTier { id, account, tier } => {
            let o = c
                .submit_one(ops::set_account_tier(
                    id_or_new(&id)?,
                    parse_id(&account)?,
                    &tier,
                ))
                .await?;
            Ok(report(conn, "tier change", &o))
        }
        AccountCmd::BalanceAt { account, at_ns } => {
            let r = match c.get_balance_at(parse_id(&account)?, at_ns).await {
                Ok(r) => r,
                Err(e) => return not_found_or(conn, e),
            };
            if conn.json {
                println!(
                    "{}",
                    json!({"account": account, "at_ns": at_ns, "currency": r.currency, "balance": r.balance, "balances": balances_json(&r.balances)})
                );
            } else {
                println!("{account} at {at_ns}: {} {}", r.balance, r.currency);
            }
            Ok(Exit(0))
        }
    }
}

pub async fn history(conn: &Conn, account: String, limit: u32, after: u64) -> Result<Exit> {
    let c = conn.client()?;
    let r = match c
        .list_account_history(parse_id(&account)?, after, limit)
        .await
    {
        Ok(r) => r,
        Err(e) => return not_found_or(conn, e),
    };
    if conn.json {
        let v: Vec<Value> = r
            .postings
            .iter()
            .map(|p| {
                json!({"seq": p.seq, "transfer_id": p.transfer_id, "leg": p.leg, "kind": name::<ledger::PostingKind>(p.kind),
                       "side": if p.is_debit { "debit" } else { "credit" }, "amount": p.amount,
                       "timestamp_ns": p.timestamp_ns, "balances_after": balances_json(&p.balances_after),
                       "counterparty": p.counterparty_account_id, "flow": p.flow, "reference": p.reference})
            })
            .collect();
        let next = if r.has_more {
            json!(r.next_after_seq)
        } else {
            Value::Null
        };
        println!(
            "{}",
            json!({"account": account, "currency": r.currency, "postings": v, "next_cursor": next})
        );
    } else {
        for p in &r.postings {
            let b = p.balances_after.clone().unwrap_or_default();
            println!(
                "#{:<6} {:<14} {:<6} {:>14} {}  {:<16} transfer {}  with {}  (credits {} debits {})",
                p.seq,
                name::<ledger::PostingKind>(p.kind),
                if p.is_debit { "debit" } else { "credit" },
                p.amount,
                r.currency,
                p.flow,
                p.transfer_id,
                p.counterparty_account_id.as_deref().unwrap_or("?"),
                b.credits_posted,
                b.debits_posted
            );
        }
        if r.has_more {
            println!("more: --after {}", r.next_after_seq);
        }
    }
    Ok(Exit(0))
}
