//! The operator and finance CLI: thin wrappers over `api::client`, human-readable by default and
//! `--json` for scripts. Exit codes: 0 success; 1 error (transport, auth, invalid input — a one-line
//! reason on stderr); 2 usage ([`Usage`]); 3 the command was applied but its result code is not
//! `ok`, or a requested account or transfer does not exist.

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use api::client::{self, cmd as ops, Client, ClientConfig, CommandOutcome};
use api::pb;
use clap::{Args, Subcommand, ValueEnum};
use ledger::Id;
use serde_json::{json, Value};

/// Where and as whom to connect.
#[derive(Args, Clone, Debug)]
pub struct Conn {
    /// Any node of the cluster (the client finds the leader).
    #[arg(
        long,
        global = true,
        default_value = "127.0.0.1:7400",
        env = "SUANPAN_ENDPOINT"
    )]
    pub endpoint: String,
    /// Ed25519 key file of the caller (default: the dev cluster's admin key).
    #[arg(
        long,
        global = true,
        default_value = ".suanpan-dev/admin.key",
        env = "SUANPAN_KEY"
    )]
    pub key: PathBuf,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// Allow reads from a follower without a leadership check (may be stale).
    #[arg(long, global = true)]
    pub stale: bool,
}

impl Conn {
    pub fn client(&self) -> Result<Client> {
        let key = client::load_key_file(&self.key)
            .with_context(|| format!("reading key {}", self.key.display()))?;
        let mut cfg = ClientConfig::new(
            self.endpoint
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
        cfg.stale_reads = self.stale;
        Ok(Client::connect(cfg, key)?)
    }
}

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
pub enum Role {
    Payments,
    Finance,
    Admin,
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Generate an Ed25519 key file (mode 0600) and print its public key.
    Gen {
        #[arg(long)]
        out: PathBuf,
        /// Print machine-readable JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ClientsCmd {
    /// Register a client's public key with a role (replicated through the log).
    Add {
        /// Public key as 64 hex digits…
        #[arg(
            long,
            conflicts_with = "key_file",
            required_unless_present = "key_file"
        )]
        public_key: Option<String>,
        /// …or the client's key file.
        #[arg(long)]
        key_file: Option<PathBuf>,
        #[arg(long, value_enum)]
        role: Role,
        #[arg(long)]
        name: String,
    },
    /// Revoke a client's key.
    Revoke {
        #[arg(
            long,
            conflicts_with = "key_file",
            required_unless_present = "key_file"
        )]
        public_key: Option<String>,
        #[arg(long)]
        key_file: Option<PathBuf>,
    },
    /// List registered clients.
    List,
}

#[derive(Subcommand, Debug)]
pub enum AccountCmd {
    /// Create an account (the id is also the idempotency key: retrying with it is safe).
    Create {
        /// Account id (UUID); a new time-ordered one is generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        /// ISO 4217 code, e.g. CNY.
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
    /// Balances as of a log time (nanoseconds since the Unix epoch).
    BalanceAt {
        account: String,
        #[arg(long)]
        at_ns: u64,
    },
}

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

#[derive(Subcommand, Debug)]
pub enum ClusterCmd {
    /// Every member's role, term, commit and applied index and state digest.
    Status,
    /// Add a node (it must be running with --join).
    AddNode {
        #[arg(long)]
        id: u64,
        #[arg(long)]
        address: String,
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

fn parse_id(s: &str) -> Result<Id> {
    s.parse::<Id>().map_err(|e| anyhow!("bad id {s:?}: {e}"))
}

/// The command's id: the one given (retry with it), or a new time-ordered one, which the command
/// result prints so it can be retried.
fn id_or_new(id: &Option<String>) -> Result<Id> {
    match id {
        Some(s) => parse_id(s),
        None => Ok(client::new_id()),
    }
}

/// A usage mistake the argument parser cannot see (flags that only make sense together): exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

/// Exit 3 for a read whose subject does not exist (`NOT_FOUND` from the server), with the
/// server's reason on stderr and, with `--json`, `{"error": "not_found", "message"}` on stdout.
fn not_found_or(conn: &Conn, e: client::ClientError) -> Result<Exit> {
    match e.status() {
        Some(s) if s.code() == tonic::Code::NotFound => {
            if conn.json {
                println!("{}", json!({"error": "not_found", "message": s.message()}));
            }
            eprintln!("{}", s.message());
            Ok(Exit(3))
        }
        _ => Err(e.into()),
    }
}

/// The name of a protobuf enum value, from the ledger's one table for that enum.
fn name<E: ledger::StableEnum>(v: i32) -> &'static str {
    api::wire::enum_name_pb::<E>(v)
}

fn pubkey(hex_key: &Option<String>, file: &Option<PathBuf>) -> Result<ed25519_dalek::VerifyingKey> {
    if let Some(f) = file {
        return Ok(client::load_key_file(f)
            .with_context(|| format!("reading {}", f.display()))?
            .verifying_key());
    }
    let h = hex_key.as_deref().unwrap_or_default();
    let b: [u8; 32] = hex::decode(h)
        .ok()
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| anyhow!("a public key is 64 hex digits"))?;
    ed25519_dalek::VerifyingKey::from_bytes(&b).map_err(|e| anyhow!("bad public key: {e}"))
}

/// Exit status for a batch of outcomes.
pub struct Exit(pub i32);

fn outcome_json(o: &CommandOutcome) -> Value {
    json!({"id": o.id, "result": o.name, "code": o.code_raw, "timestamp_ns": o.timestamp_ns, "applied_index": o.applied_index})
}

fn report(conn: &Conn, what: &str, o: &CommandOutcome) -> Exit {
    report_with_hint(conn, what, o, None)
}

/// As [`report`], with a hint on what to do instead when the result is not `ok` (in the JSON as
/// `"hint"`, on stderr otherwise).
fn report_with_hint(conn: &Conn, what: &str, o: &CommandOutcome, hint: Option<&str>) -> Exit {
    let hint = hint.filter(|_| !o.is_ok());
    if conn.json {
        let mut v = outcome_json(o);
        if let Some(h) = hint {
            v["hint"] = json!(h);
        }
        println!("{v}");
    } else if o.is_ok() {
        println!("{what} {}: ok (index {})", o.id, o.applied_index);
    } else {
        println!("{what} {}: {} (code {})", o.id, o.name, o.code_raw);
        if let Some(h) = hint {
            eprintln!("hint: {h}");
        }
    }
    Exit(if o.is_ok() { 0 } else { 3 })
}

pub fn keys(cmd: KeysCmd) -> Result<Exit> {
    match cmd {
        KeysCmd::Gen {
            out,
            json: json_out,
        } => {
            if out.exists() {
                bail!("{} exists; refusing to overwrite a key", out.display());
            }
            let k = client::generate_key_file(&out)?;
            let pk = hex::encode(k.verifying_key().to_bytes());
            if json_out {
                println!("{}", json!({"path": out, "public_key": pk}));
            } else {
                println!("wrote {} (mode 0600)\npublic key: {pk}", out.display());
            }
            Ok(Exit(0))
        }
    }
}

pub async fn clients(conn: &Conn, cmd: ClientsCmd) -> Result<Exit> {
    let c = conn.client()?;
    match cmd {
        ClientsCmd::Add {
            public_key,
            key_file,
            role,
            name,
        } => {
            let pk = pubkey(&public_key, &key_file)?;
            let role = match role {
                Role::Payments => ledger::ClientRole::Payments,
                Role::Finance => ledger::ClientRole::FinanceRead,
                Role::Admin => ledger::ClientRole::Admin,
            };
            let o = c.register_client(&pk, role, &name).await?;
            Ok(report(conn, "client", &o))
        }
        ClientsCmd::Revoke {
            public_key,
            key_file,
        } => {
            let pk = pubkey(&public_key, &key_file)?;
            let o = c.revoke_client(&pk).await?;
            Ok(report(conn, "revoke", &o))
        }
        ClientsCmd::List => {
            let list = c.list_clients().await?;
            let v: Vec<Value> = list
                .iter()
                .map(|k| json!({"public_key": hex::encode(&k.public_key), "role": name::<ledger::ClientRole>(k.role), "name": k.name, "revoked": k.revoked, "registered_ns": k.registered_ns}))
                .collect();
            if conn.json {
                println!("{}", json!({ "clients": v }));
            } else {
                for k in &list {
                    println!(
                        "{}  {:<9} {}{}",
                        hex::encode(&k.public_key),
                        name::<ledger::ClientRole>(k.role),
                        k.name,
                        if k.revoked { "  (revoked)" } else { "" }
                    );
                }
            }
            Ok(Exit(0))
        }
    }
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
                    println!(
                        "{}  {:<8} {:<6} {} {:>14}  available {:>14}",
                        a.id,
                        name::<ledger::AccountKind>(a.kind),
                        name::<ledger::AccountStatus>(a.status),
                        a.currency,
                        a.balance,
                        a.available
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
                       "timestamp_ns": p.timestamp_ns, "balances_after": balances_json(&p.balances_after)})
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
                "#{:<6} {:<14} {:<6} {:>14} {}  transfer {}  (credits {} debits {})",
                p.seq,
                name::<ledger::PostingKind>(p.kind),
                if p.is_debit { "debit" } else { "credit" },
                p.amount,
                r.currency,
                p.transfer_id,
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

/// The currency of an account (the wire carries it with every amount).
async fn currency_of(c: &Client, id: Id) -> Result<String> {
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

pub async fn watch(conn: &Conn, from: u64, count: Option<u64>) -> Result<Exit> {
    let c = conn.client()?;
    let mut stream = c.watch_events(from).await?;
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
                               "digest": i.digest, "voters": i.voters, "learners": i.learners})
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
        ClusterCmd::AddNode { id, address } => {
            let idx = c.add_node(id, &address).await?;
            print_done(
                conn,
                json!({"added": id, "address": address, "applied_index": idx}),
                &format!("node {id} added (index {idx})"),
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

fn print_done(conn: &Conn, v: Value, human: &str) {
    if conn.json {
        println!("{v}");
    } else {
        println!("{human}");
    }
}
