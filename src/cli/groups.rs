//! `suanpan group`: groups and netted settle-up.

use super::*;

#[derive(Subcommand, Debug)]
pub enum GroupCmd {
    /// Create a group (2 to 100 distinct members) whose splits can be settled together.
    Create {
        /// Group id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        name: String,
        /// Comma-separated account ids.
        #[arg(long, value_delimiter = ',', required = true)]
        members: Vec<String>,
    },
    /// Every member's net over the group's pending split items (positive: owed to the member).
    Balances { group: String },
    /// Settle every pending item at once with at most members − 1 transfers per currency; all or
    /// nothing (a failure names the member short of funds).
    Settle {
        /// Command id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        group: String,
    },
}

pub async fn group(conn: &Conn, cmd: GroupCmd) -> Result<Exit> {
    let c = conn.client()?;
    match cmd {
        GroupCmd::Create { id, name, members } => {
            let members: Vec<Id> = members
                .iter()
                .map(|m| parse_id(m.trim()))
                .collect::<Result<_>>()?;
            let o = c
                .submit_one(ops::create_group(id_or_new(&id)?, &name, &members))
                .await?;
            Ok(report(conn, "group", &o))
        }
        GroupCmd::Balances { group } => {
            let g = match c.get_group_balances(parse_id(&group)?).await {
                Ok(g) => g,
                Err(e) => return not_found_or(conn, e),
            };
            if conn.json {
                let nets: Vec<Value> = g
                    .nets
                    .iter()
                    .map(|n| json!({"account": n.account_id, "currency": n.currency, "net": n.net}))
                    .collect();
                println!(
                    "{}",
                    json!({"id": g.id, "name": g.name, "members": g.member_ids, "open_splits": g.open_split_ids,
                           "nets": nets, "applied_index": g.applied_index})
                );
            } else {
                println!(
                    "{} ({}), {} open splits",
                    g.id,
                    g.name,
                    g.open_split_ids.len()
                );
                for n in &g.nets {
                    println!("    {}  {} {}", n.account_id, n.net, n.currency);
                }
            }
            Ok(Exit(0))
        }
        GroupCmd::Settle { id, group } => {
            let gid = parse_id(&group)?;
            let o = c
                .submit_one(ops::settle_group(id_or_new(&id)?, gid))
                .await?;
            // A refusal names who is short: the first debtor whose available balance is below
            // what it owes (read after the fact, so it is a hint, not part of the result).
            let mut hint = None;
            if !o.is_ok() {
                if let Ok(g) = c.get_group_balances(gid).await {
                    for n in &g.nets {
                        let owed: rust_decimal::Decimal = n.net.parse().unwrap_or_default();
                        if owed.is_sign_negative() && !owed.is_zero() {
                            let a = parse_id(&n.account_id)?;
                            if let Ok(Some(acct)) = c.get_account(a).await {
                                let avail: rust_decimal::Decimal =
                                    acct.available.parse().unwrap_or_default();
                                if avail < -owed {
                                    hint = Some(format!(
                                        "member {} owes {} {} and has {} available",
                                        n.account_id, -owed, n.currency, avail
                                    ));
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            Ok(report_with_hint(conn, "group settle", &o, hint.as_deref()))
        }
    }
}
