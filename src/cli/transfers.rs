//! `suanpan transfer`: move money, hold, post, void, look up.

use super::*;

#[derive(Args, Debug)]
pub struct TransferArgs {
    #[command(subcommand)]
    pub sub: Option<TransferCmd>,
    /// Transfer id (the idempotency key: retry with the same id); generated and printed when
    /// omitted.
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long)]
    pub amount: Option<String>,
    /// Hold the funds (two-phase) instead of moving them.
    #[arg(long)]
    pub pending: bool,
    /// Hold timeout in seconds (log time).
    #[arg(long, default_value_t = 3600, requires = "pending")]
    pub timeout: u64,
    #[arg(long, default_value = "")]
    pub reference: String,
}

#[derive(Subcommand, Debug)]
pub enum TransferCmd {
    /// Post (capture) a pending transfer, fully or partially.
    Post {
        /// Command id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        pending_id: String,
        #[arg(long)]
        amount: Option<String>,
    },
    /// Void (release) a pending transfer.
    Void {
        /// Command id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        pending_id: String,
    },
    /// Show transfers.
    Get {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

/// The currency of an account (the wire carries it with every amount).
pub(super) async fn currency_of(c: &Client, id: Id) -> Result<String> {
    let a = c
        .get_account(id)
        .await?
        .ok_or_else(|| anyhow!("account {id} not found"))?;
    Ok(a.currency)
}

pub async fn transfer(conn: &Conn, args: TransferArgs) -> Result<Exit> {
    let c = conn.client()?;
    match args.sub {
        None => {
            let (Some(from), Some(to), Some(amount)) = (args.from, args.to, args.amount) else {
                return Err(Usage(
                    "transfer needs --from, --to and --amount (and --id to retry), or a \
                     subcommand: post, void, get"
                        .into(),
                )
                .into());
            };
            let (id, from, to) = (id_or_new(&args.id)?, parse_id(&from)?, parse_id(&to)?);
            let cur = currency_of(&c, from).await?;
            let mut cmd = if args.pending {
                ops::pending_transfer(id, from, to, &amount, &cur, args.timeout)
            } else {
                ops::transfer(id, from, to, &amount, &cur)
            };
            if let Some(pb::command::Kind::CreateTransfer(t)) = cmd.kind.as_mut() {
                t.reference = args.reference;
            }
            let o = c.submit_one(cmd).await?;
            Ok(report(conn, "transfer", &o))
        }
        Some(TransferCmd::Post {
            id,
            pending_id,
            amount,
        }) => {
            let (id, pid) = (id_or_new(&id)?, parse_id(&pending_id)?);
            let cmd = match amount {
                None => ops::post_pending(id, pid, None),
                Some(a) => {
                    let t = c.get_transfers(&[pid]).await?;
                    let cur = t
                        .transfers
                        .first()
                        .and_then(|t| t.legs.first())
                        .map(|l| l.currency.clone())
                        .unwrap_or_default();
                    ops::post_pending(id, pid, Some((a.as_str(), cur.as_str())))
                }
            };
            let o = c.submit_one(cmd).await?;
            Ok(report(conn, "post", &o))
        }
        Some(TransferCmd::Void { id, pending_id }) => {
            let o = c
                .submit_one(ops::void_pending(id_or_new(&id)?, parse_id(&pending_id)?))
                .await?;
            Ok(report(conn, "void", &o))
        }
        Some(TransferCmd::Get { ids }) => {
            let ids: Vec<Id> = ids.iter().map(|s| parse_id(s)).collect::<Result<_>>()?;
            let r = c.get_transfers(&ids).await?;
            if conn.json {
                let v: Vec<Value> = r
                    .transfers
                    .iter()
                    .map(|t| {
                        let legs: Vec<Value> = t
                            .legs
                            .iter()
                            .map(|l| json!({"debit": l.debit_account_id, "credit": l.credit_account_id, "amount": l.amount, "currency": l.currency}))
                            .collect();
                        json!({"id": t.id, "state": name::<ledger::TransferState>(t.state), "legs": legs, "pending_id": t.pending_id,
                               "expires_ns": t.expires_ns, "posted_amount": t.posted_amount, "reference": t.reference, "timestamp_ns": t.timestamp_ns})
                    })
                    .collect();
                println!(
                    "{}",
                    json!({"transfers": v, "not_found": r.not_found, "applied_index": r.applied_index})
                );
            } else {
                for t in &r.transfers {
                    println!("{}  {}", t.id, name::<ledger::TransferState>(t.state));
                    for l in &t.legs {
                        println!(
                            "    {} -> {}  {} {}",
                            l.debit_account_id, l.credit_account_id, l.amount, l.currency
                        );
                    }
                }
                for n in &r.not_found {
                    println!("{n}  not found");
                }
            }
            Ok(Exit(if r.not_found.is_empty() { 0 } else { 3 }))
        }
    }
}
