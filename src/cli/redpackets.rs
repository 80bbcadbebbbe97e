//! `suanpan redpacket`: red packets — create, claim, get, and verify (recompute the slots from the
//! recorded seed, as an auditor would).

use super::*;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PacketMode {
    Random,
    Fixed,
}

#[derive(Subcommand, Debug)]
pub enum RedPacketCmd {
    /// Move the total into escrow and cut it into `--count` slots (fixed at creation).
    Create {
        /// Packet id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        sender: String,
        #[arg(long)]
        total: String,
        /// 1 to 1000 slots, at most one per minor unit of the total.
        #[arg(long)]
        count: u32,
        #[arg(long, value_enum, default_value = "random")]
        mode: PacketMode,
        /// Seconds of log time before the unclaimed rest returns (default 86400).
        #[arg(long)]
        expires_in: Option<u64>,
        /// Only members of this group may claim (the sender must be one).
        #[arg(long)]
        group: Option<String>,
    },
    /// Take the next slot (once per wallet).
    Claim {
        /// Claim id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        packet: String,
        #[arg(long)]
        wallet: String,
    },
    /// Show packets: slots, claims and the seed.
    Get {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// Recompute a packet's slots from its recorded seed and compare (exit 1 on a mismatch).
    Verify { id: String },
}

fn packet_json(r: &pb::RedPacket) -> Value {
    let claims: Vec<Value> = r
        .claims
        .iter()
        .map(|c| json!({"slot": c.slot, "wallet": c.wallet_id, "claim": c.claim_id, "amount": c.amount}))
        .collect();
    json!({"id": r.id, "sender": r.sender_account_id, "total": r.total, "currency": r.currency,
           "count": r.count, "mode": if r.random { "random" } else { "fixed" }, "seed": r.seed,
           "escrow": r.escrow_account_id, "state": r.state, "claimed": r.claimed,
           "claimed_amount": r.claimed_amount, "slots": r.slots, "claims": claims,
           "created_ns": r.created_ns, "expires_ns": r.expires_ns})
}

pub async fn redpacket(conn: &Conn, cmd: RedPacketCmd) -> Result<Exit> {
    let c = conn.client()?;
    match cmd {
        RedPacketCmd::Create {
            id,
            sender,
            total,
            count,
            mode,
            expires_in,
            group,
        } => {
            let (id, sender) = (id_or_new(&id)?, parse_id(&sender)?);
            let group = group.as_deref().map(parse_id).transpose()?;
            let cur = super::transfers::currency_of(&c, sender).await?;
            let o = c
                .submit_one(ops::create_redpacket(pb::CreateRedPacket {
                    id: id.to_string(),
                    sender_account_id: sender.to_string(),
                    total,
                    currency: cur,
                    count,
                    random: matches!(mode, PacketMode::Random),
                    expires_in_seconds: expires_in,
                    group_id: group.map(|g| g.to_string()),
                }))
                .await?;
            Ok(report(conn, "redpacket", &o))
        }
        RedPacketCmd::Claim { id, packet, wallet } => {
            let cmd = ops::claim_redpacket(id_or_new(&id)?, parse_id(&packet)?, parse_id(&wallet)?);
            let o = c.submit_one(cmd).await?;
            Ok(report(conn, "claim", &o))
        }
        RedPacketCmd::Get { ids } => {
            let ids: Vec<Id> = ids.iter().map(|s| parse_id(s)).collect::<Result<_>>()?;
            let r = c.get_redpackets(&ids).await?;
            if conn.json {
                let v: Vec<Value> = r.redpackets.iter().map(packet_json).collect();
                println!(
                    "{}",
                    json!({"redpackets": v, "not_found": r.not_found, "applied_index": r.applied_index})
                );
            } else {
                for p in &r.redpackets {
                    println!(
                        "{}  {}  {} {} in {} slots, claimed {} ({}), seed {}",
                        p.id,
                        p.state,
                        p.total,
                        p.currency,
                        p.count,
                        p.claimed,
                        p.claimed_amount,
                        p.seed
                    );
                    for cl in &p.claims {
                        println!("    slot {}  {}  {}", cl.slot, cl.wallet_id, cl.amount);
                    }
                }
                for n in &r.not_found {
                    println!("{n}  not found");
                }
            }
            Ok(Exit(if r.not_found.is_empty() { 0 } else { 3 }))
        }
        RedPacketCmd::Verify { id } => {
            let id = parse_id(&id)?;
            let r = c.get_redpackets(&[id]).await?;
            let Some(p) = r.redpackets.first() else {
                return not_found_or(
                    conn,
                    client::ClientError::Status(tonic::Status::not_found(format!(
                        "red packet {id} not found"
                    ))),
                );
            };
            let cur = ledger::Currency::from_code(&p.currency)
                .ok_or_else(|| anyhow!("unknown currency {}", p.currency))?;
            let total = cur
                .to_minor(p.total.parse().context("total")?)
                .map_err(|e| anyhow!("total: {e}"))?;
            let recomputed: Vec<String> =
                ledger::redpacket::slots(p.seed, total as u64, p.count, p.random)
                    .into_iter()
                    .map(|s| cur.to_decimal(u128::from(s)).to_string())
                    .collect();
            let ok = recomputed == p.slots;
            if conn.json {
                println!(
                    "{}",
                    json!({"id": p.id, "seed": p.seed, "slots": p.slots, "recomputed": recomputed, "verified": ok})
                );
            } else {
                println!(
                    "{}: seed {}, {} slots {}",
                    p.id,
                    p.seed,
                    p.count,
                    if ok {
                        "recomputed: they match"
                    } else {
                        "DO NOT MATCH the recorded seed"
                    }
                );
            }
            Ok(Exit(if ok { 0 } else { 1 }))
        }
    }
}
