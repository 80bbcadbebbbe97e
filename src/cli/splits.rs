//! `suanpan split`: bill splits and AA collection.

use super::*;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Mode {
    Equal,
    Exact,
    Percent,
    Shares,
    Each,
}

#[derive(Subcommand, Debug)]
pub enum SplitCmd {
    /// Split a bill the payer paid (or, `--mode each`, ask every participant for the same amount);
    /// prints the command result and each participant's share.
    Create {
        /// Split id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        payer: String,
        /// The bill; with `--mode each`, the amount asked of every participant.
        #[arg(long)]
        total: String,
        #[arg(long)]
        currency: String,
        /// Comma-separated account ids (1 to 100, distinct); the payer may be one of them.
        #[arg(long, value_delimiter = ',', required = true)]
        participants: Vec<String>,
        #[arg(long, value_enum, default_value = "equal")]
        mode: Mode,
        /// exact: amounts; percent: basis points summing to 10000; shares: weights.
        #[arg(long, value_delimiter = ',')]
        values: Vec<String>,
        /// Free text, at most 64 bytes.
        #[arg(long, default_value = "")]
        note: String,
        /// The group the split belongs to (settled together by `group settle`).
        #[arg(long)]
        group: Option<String>,
        /// Seconds of log time after which shares still pending are cancelled and the split
        /// expires (1 to 2592000); without it the split stays open until paid or cancelled.
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// A participant pays its share to the payer.
    Pay {
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        split: String,
        #[arg(long)]
        participant: String,
    },
    /// Stop collecting: pending shares are cancelled.
    Cancel {
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        split: String,
    },
    /// Show splits with every share.
    Get {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

fn split_json(x: &pb::Split) -> Value {
    let items: Vec<Value> = x
        .items
        .iter()
        .map(|i| json!({"participant": i.participant_account_id, "amount": i.amount, "state": i.state, "payment": i.payment_id}))
        .collect();
    json!({"id": x.id, "payer": x.payer_account_id, "total": x.total, "currency": x.currency,
           "mode": name::<ledger::SplitMode>(x.mode), "state": x.state, "note": x.note, "items": items,
           "created_ns": x.created_ns, "group": x.group_id, "expires_ns": x.expires_ns})
}

pub async fn split(conn: &Conn, cmd: SplitCmd) -> Result<Exit> {
    let c = conn.client()?;
    match cmd {
        SplitCmd::Create {
            id,
            payer,
            total,
            currency,
            participants,
            mode,
            values,
            note,
            group,
            expires_in,
        } => {
            let (id, payer) = (id_or_new(&id)?, parse_id(&payer)?);
            let group = group.as_deref().map(parse_id).transpose()?;
            let participants: Vec<Id> = participants
                .iter()
                .map(|s| parse_id(s.trim()))
                .collect::<Result<_>>()?;
            let mode = match mode {
                Mode::Equal => pb::SplitMode::Equal,
                Mode::Exact => pb::SplitMode::Exact,
                Mode::Percent => pb::SplitMode::Percent,
                Mode::Shares => pb::SplitMode::Shares,
                Mode::Each => pb::SplitMode::Each,
            };
            let o = c
                .submit_one(ops::create_split(pb::CreateSplit {
                    id: id.to_string(),
                    payer_account_id: payer.to_string(),
                    total,
                    currency,
                    participant_ids: participants.iter().map(Id::to_string).collect(),
                    mode: mode as i32,
                    values,
                    note,
                    group_id: group.map(|g| g.to_string()),
                    expires_in_seconds: expires_in,
                }))
                .await?;
            if !o.is_ok() {
                return Ok(report(conn, "split", &o));
            }
            let r = c.get_splits(&[id]).await?;
            let x = r
                .splits
                .first()
                .ok_or_else(|| anyhow!("split {id} was created but cannot be read"))?;
            if conn.json {
                let mut v = outcome_json(&o);
                v["items"] = split_json(x)["items"].clone();
                v["total"] = json!(x.total);
                println!("{v}");
            } else {
                println!("split {}: ok (index {})", o.id, o.applied_index);
                for i in &x.items {
                    println!(
                        "    {}  {} {}  {}",
                        i.participant_account_id, i.amount, x.currency, i.state
                    );
                }
            }
            Ok(Exit(0))
        }
        SplitCmd::Pay {
            id,
            split,
            participant,
        } => {
            let cmd = ops::pay_split(id_or_new(&id)?, parse_id(&split)?, parse_id(&participant)?);
            let o = c.submit_one(cmd).await?;
            Ok(report(conn, "split payment", &o))
        }
        SplitCmd::Cancel { id, split } => {
            let o = c
                .submit_one(ops::cancel_split(id_or_new(&id)?, parse_id(&split)?))
                .await?;
            Ok(report(conn, "split cancel", &o))
        }
        SplitCmd::Get { ids } => {
            let ids: Vec<Id> = ids.iter().map(|s| parse_id(s)).collect::<Result<_>>()?;
            let r = c.get_splits(&ids).await?;
            if conn.json {
                let v: Vec<Value> = r.splits.iter().map(split_json).collect();
                println!(
                    "{}",
                    json!({"splits": v, "not_found": r.not_found, "applied_index": r.applied_index})
                );
            } else {
                for x in &r.splits {
                    println!(
                        "{}  {} {}  {} {} paid by {}",
                        x.id,
                        name::<ledger::SplitMode>(x.mode),
                        x.state,
                        x.total,
                        x.currency,
                        x.payer_account_id
                    );
                    for i in &x.items {
                        println!(
                            "    {}  {}  {}",
                            i.participant_account_id, i.amount, i.state
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
