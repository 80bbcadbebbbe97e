//! `suanpan watch` and `suanpan cluster`.

use super::*;

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Every member's role, term, commit and applied index and state digest.
    Status,
    /// Add a node (it must be running with --join). It joins as a learner and the leader
    /// promotes it to voter once it has caught up; this waits for that (up to --wait-s).
    AddNode {
        #[arg(long)]
        id: u64,
        #[arg(long)]
        address: String,
        /// How long to wait for the promotion to voter (0: do not wait).
        #[arg(long, default_value_t = 60)]
        wait_s: u64,
    },
    /// Remove a node from the cluster.
    RemoveNode {
        #[arg(long)]
        id: u64,
    },
    /// Hand leadership to another voter.
    TransferLeader {
        #[arg(long)]
        id: u64,
    },
}

fn command_json(c: &Option<pb::Command>) -> Value {
    use pb::command::Kind as K;
    match c.as_ref().and_then(|c| c.kind.as_ref()) {
        Some(K::CreateAccount(a)) => {
            json!({"type": "create_account", "id": a.id, "currency": a.currency, "kind": name::<ledger::AccountKind>(a.kind)})
        }
        Some(K::CreateTransfer(t)) => {
            let legs: Vec<Value> = t
                .legs
                .iter()
                .map(|l| json!({"debit": l.debit_account_id, "credit": l.credit_account_id, "amount": l.amount, "currency": l.currency}))
                .collect();
            json!({"type": "create_transfer", "id": t.id, "legs": legs, "pending_timeout_seconds": t.pending_timeout_seconds})
        }
        Some(K::PostPending(p)) => {
            json!({"type": "post_pending", "id": p.id, "pending_id": p.pending_id, "amount": p.amount})
        }
        Some(K::VoidPending(v)) => {
            json!({"type": "void_pending", "id": v.id, "pending_id": v.pending_id})
        }
        Some(K::CreateMerchant(m)) => {
            json!({"type": "create_merchant", "id": m.id, "currency": m.currency, "name": m.name})
        }
        Some(K::CreateOrder(o)) => {
            json!({"type": "create_order", "id": o.id, "merchant": o.merchant_id, "amount": o.amount, "currency": o.currency, "reference": o.reference})
        }
        Some(K::PayQr(p)) => {
            json!({"type": "pay_qr", "id": p.id, "payer": p.payer_account_id, "amount": p.amount, "qr": p.qr})
        }
        Some(K::CloseOrder(c)) => {
            json!({"type": "close_order", "id": c.id, "order": c.order_id})
        }
        Some(K::Refund(r)) => {
            json!({"type": "refund", "id": r.id, "order": r.order_id, "amount": r.amount, "currency": r.currency})
        }
        Some(K::PayBill(b)) => {
            json!({"type": "pay_bill", "id": b.id, "payer": b.payer_account_id, "biller": b.biller_id, "bill_reference": b.bill_reference, "amount": b.amount, "currency": b.currency})
        }
        Some(K::BindPaycode(b)) => {
            json!({"type": "bind_paycode", "id": b.id, "wallet": b.wallet_id, "public_key": hex::encode(&b.public_key), "paycode_max": b.paycode_max})
        }
        Some(K::RevokePaycode(r)) => {
            json!({"type": "revoke_paycode", "id": r.id, "wallet": r.wallet_id})
        }
        Some(K::PayCode(p)) => {
            json!({"type": "pay_code", "id": p.id, "merchant": p.merchant_id, "amount": p.amount, "currency": p.currency})
        }
        Some(K::Topup(t)) => {
            json!({"type": "topup", "id": t.id, "wallet": t.wallet_id, "bank_account": t.bank_account_id, "amount": t.amount, "currency": t.currency})
        }
        Some(K::Withdraw(w)) => {
            json!({"type": "withdraw", "id": w.id, "wallet": w.wallet_id, "bank_account": w.bank_account_id, "amount": w.amount, "currency": w.currency, "fee_bps": w.fee_bps})
        }
        Some(K::CompleteWithdrawal(c)) => {
            json!({"type": "complete_withdrawal", "id": c.id, "withdrawal": c.withdrawal_id})
        }
        Some(K::FailWithdrawal(c)) => {
            json!({"type": "fail_withdrawal", "id": c.id, "withdrawal": c.withdrawal_id})
        }
        Some(K::Send(x)) => {
            json!({"type": "send", "id": x.id, "from": x.from_account_id, "to": x.to_account_id, "amount": x.amount, "currency": x.currency, "accept_within_seconds": x.accept_within_seconds})
        }
        Some(K::ReceiveTransfer(r)) => {
            json!({"type": "receive_transfer", "id": r.id, "transfer": r.transfer_id})
        }
        Some(K::ReturnTransfer(r)) => {
            json!({"type": "return_transfer", "id": r.id, "transfer": r.transfer_id})
        }
        Some(K::CreateRequest(r)) => {
            json!({"type": "create_request", "id": r.id, "payee": r.payee_account_id, "payer": r.payer_account_id, "amount": r.amount, "currency": r.currency})
        }
        Some(K::PayRequest(a)) => {
            json!({"type": "pay_request", "id": a.id, "request": a.request_id})
        }
        Some(K::DeclineRequest(a)) => {
            json!({"type": "decline_request", "id": a.id, "request": a.request_id})
        }
        Some(K::CancelRequest(a)) => {
            json!({"type": "cancel_request", "id": a.id, "request": a.request_id})
        }
        Some(K::CreateSplit(x)) => {
            json!({"type": "create_split", "id": x.id, "payer": x.payer_account_id, "total": x.total, "currency": x.currency, "participants": x.participant_ids, "mode": name::<ledger::SplitMode>(x.mode)})
        }
        Some(K::PaySplit(p)) => {
            json!({"type": "pay_split", "id": p.id, "split": p.split_id, "participant": p.participant_account_id})
        }
        Some(K::CancelSplit(c)) => {
            json!({"type": "cancel_split", "id": c.id, "split": c.split_id})
        }
        Some(K::CreateRedpacket(r)) => {
            json!({"type": "create_redpacket", "id": r.id, "sender": r.sender_account_id, "total": r.total, "currency": r.currency, "count": r.count, "random": r.random})
        }
        Some(K::ClaimRedpacket(c)) => {
            json!({"type": "claim_redpacket", "id": c.id, "packet": c.packet_id, "wallet": c.wallet_id})
        }
        Some(K::CreateGroup(g)) => {
            json!({"type": "create_group", "id": g.id, "name": g.name, "members": g.member_ids})
        }
        Some(K::SettleGroup(g)) => {
            json!({"type": "settle_group", "id": g.id, "group": g.group_id})
        }
        Some(K::DefineCurrency(c)) => {
            json!({"type": "define_currency", "id": c.id, "code": c.code, "scale": c.scale, "name": c.name})
        }
        Some(K::SetRate(r)) => {
            json!({"type": "set_rate", "id": r.id, "from": r.from_currency, "to": r.to_currency, "rate": r.rate})
        }
        Some(K::Convert(c)) => {
            json!({"type": "convert", "id": c.id, "from": c.from_account_id, "to": c.to_account_id, "amount": c.amount, "currency": c.currency})
        }
        Some(K::DefineTier(t)) => {
            json!({"type": "define_tier", "id": t.id, "name": t.name})
        }
        Some(K::SetAccountTier(t)) => {
            json!({"type": "set_account_tier", "id": t.id, "account": t.account_id, "tier": t.tier})
        }
        Some(K::SetSetting(x)) => {
            json!({"type": "set_setting", "id": x.id, "key": x.key, "value": x.value})
        }
        Some(K::SetAccountStatus(s)) => {
            json!({"type": "set_account_status", "id": s.id, "account": s.account_id, "status": name::<ledger::AccountStatus>(s.status)})
        }
        Some(K::RegisterClient(r)) => {
            json!({"type": "register_client", "id": r.id, "public_key": hex::encode(&r.public_key), "role": name::<ledger::ClientRole>(r.role)})
        }
        Some(K::RevokeClient(r)) => {
            json!({"type": "revoke_client", "id": r.id, "public_key": hex::encode(&r.public_key)})
        }
        None => json!({"type": "unknown"}),
    }
}

pub async fn watch(
    conn: &Conn,
    from: u64,
    count: Option<u64>,
    accounts: Vec<String>,
) -> Result<Exit> {
    let c = conn.client()?;
    let accounts: Vec<Id> = accounts
        .iter()
        .map(|s| parse_id(s))
        .collect::<Result<_>>()?;
    let mut stream = c.watch_flow_events(from, &accounts).await?;
    let mut seen = 0u64;
    while let Some(ev) = stream
        .message()
        .await
        .map_err(|s| anyhow!("watch: {}: {}", s.code(), s.message()))?
    {
        for e in &ev.events {
            let r = e.result.clone().unwrap_or_default();
            if conn.json {
                println!(
                    "{}",
                    json!({"index": ev.index, "timestamp_ns": ev.timestamp_ns, "command": command_json(&e.command),
                           "result": r.name, "code": r.code, "id": r.id})
                );
            } else {
                let cmd = command_json(&e.command);
                println!(
                    "#{} {} {} -> {}",
                    ev.index,
                    cmd["type"].as_str().unwrap_or("?"),
                    r.id,
                    r.name
                );
            }
            seen += 1;
            if count.is_some_and(|n| seen >= n) {
                return Ok(Exit(0));
            }
        }
        for f in &ev.flow_events {
            if conn.json {
                println!(
                    "{}",
                    json!({"index": ev.index, "timestamp_ns": ev.timestamp_ns, "event": {
                        "id": format!("{}-{}", ev.index, f.seq), "kind": f.kind, "flow_id": f.flow_id,
                        "command_id": f.command_id, "state": f.state, "accounts": f.account_ids,
                        "amount": f.amount, "currency": f.currency}})
                );
            } else {
                println!(
                    "#{} {} {} -> {} {} {}",
                    ev.index, f.kind, f.flow_id, f.state, f.amount, f.currency
                );
            }
            seen += 1;
            if count.is_some_and(|n| seen >= n) {
                return Ok(Exit(0));
            }
        }
    }
    Ok(Exit(0))
}

/// A Raft role's name: the proto's own name without its prefix (`NODE_ROLE_LEADER` → `leader`).
fn role_of(r: i32) -> String {
    match pb::NodeRole::try_from(r) {
        Ok(pb::NodeRole::Unspecified) | Err(_) => "unknown".into(),
        Ok(role) => role
            .as_str_name()
            .trim_start_matches("NODE_ROLE_")
            .to_ascii_lowercase(),
    }
}

pub async fn cluster(conn: &Conn, cmd: ClusterCmd) -> Result<Exit> {
    let c = conn.client()?;
    match cmd {
        ClusterCmd::Status => {
            let s = c.cluster_status().await?;
            if conn.json {
                let m: Vec<Value> = s
                    .members
                    .iter()
                    .map(|m| {
                        let i = m.info.clone().unwrap_or_default();
                        json!({"id": m.id, "address": m.address, "reachable": m.reachable, "error": m.error,
                               "role": if m.reachable { role_of(i.role) } else { "unreachable".into() }, "term": i.term,
                               "leader_id": i.leader_id, "commit_index": i.commit_index, "applied_index": i.applied_index,
                               "digest": i.digest, "voters": i.voters, "learners": i.learners,
                               "clock_clamps": i.clock_clamps, "clock_ahead_ns": i.clock_ahead_ns,
                               "divergences": i.divergences.iter().map(|d| json!({"peer": d.peer, "index": d.index})).collect::<Vec<_>>()})
                    })
                    .collect();
                println!("{}", json!({"leader_id": s.leader_id, "members": m}));
            } else {
                println!(
                    "{:<4} {:<22} {:<10} {:>6} {:>10} {:>10}  digest",
                    "id", "address", "role", "term", "commit", "applied"
                );
                for m in &s.members {
                    let i = m.info.clone().unwrap_or_default();
                    if m.reachable {
                        println!(
                            "{:<4} {:<22} {:<10} {:>6} {:>10} {:>10}  {}",
                            m.id,
                            m.address,
                            role_of(i.role),
                            i.term,
                            i.commit_index,
                            i.applied_index,
                            &i.digest[..i.digest.len().min(16)]
                        );
                    } else {
                        println!("{:<4} {:<22} unreachable: {}", m.id, m.address, m.error);
                    }
                }
            }
            Ok(Exit(0))
        }
        ClusterCmd::AddNode {
            id,
            address,
            wait_s,
        } => {
            let idx = c.add_node(id, &address).await?;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(wait_s);
            let mut voter = false;
            while !voter && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                voter = c.node_info().await.is_ok_and(|i| i.voters.contains(&id));
            }
            let role = if voter { "voter" } else { "learner" };
            print_done(
                conn,
                json!({"added": id, "address": address, "applied_index": idx, "role": role}),
                &if voter {
                    format!("node {id} added (index {idx}) and promoted to voter")
                } else {
                    format!("node {id} added as a learner (index {idx}); the leader promotes it once it has caught up")
                },
            );
            Ok(Exit(0))
        }
        ClusterCmd::RemoveNode { id } => {
            let idx = c.remove_node(id).await?;
            print_done(
                conn,
                json!({"removed": id, "applied_index": idx}),
                &format!("node {id} removed (index {idx})"),
            );
            Ok(Exit(0))
        }
        ClusterCmd::TransferLeader { id } => {
            c.transfer_leader(id).await?;
            print_done(
                conn,
                json!({"transfer_leader": id}),
                &format!("leadership transfer to node {id} requested"),
            );
            Ok(Exit(0))
        }
    }
}
