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

mod accounts;
mod backup;
mod cash;
mod chain;
mod cluster;
mod config;
mod finance;
mod groups;
mod keys;
mod merchants;
mod notify;
mod paycodes;
mod payments;
mod qr;
mod reconcile;
mod redpackets;
mod social;
mod splits;
mod transfers;

pub use accounts::{account, history, AccountCmd};
pub use backup::{backup, restore};
pub use cash::{topup, withdraw, TopupArgs, WithdrawArgs};
pub use cluster::{cluster, watch, ClusterCmd};
pub use config::{
    convert, currency, rate, settings, tier, ConvertArgs, CurrencyCmd, RateCmd, SettingsCmd,
    TierCmd,
};
pub use finance::{audit, export, AuditCmd, ExportCmd};
pub use groups::{group, GroupCmd};
pub use keys::{certs, clients, keys, CertsCmd, ClientsCmd, KeysCmd};
pub use merchants::{merchant, MerchantCmd};
pub use notify::{notify, NotifyArgs};
pub use paycodes::{paycode, PaycodeCmd};
pub use payments::{bill, order, pay, refund, BillCmd, OrderCmd, PayArgs, RefundArgs};
pub use qr::{qr, QrCmd};
pub use reconcile::{reconcile, ReconcileCmd};
pub use redpackets::{redpacket, RedPacketCmd};
pub use social::{receive, request, send, ReceiveArgs, RequestCmd, SendArgs};
pub use splits::{split, SplitCmd};
pub use transfers::{transfer, TransferArgs};

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
    /// The cluster CA certificate (PEM): connect with TLS, trusting only that cluster's nodes.
    #[arg(long, global = true, env = "SUANPAN_CA")]
    pub ca: Option<PathBuf>,
}

impl Conn {
    pub fn client(&self) -> Result<Client> {
        self.client_for(
            self.endpoint
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        )
    }

    /// A client of these endpoints with this connection's key, CA and read mode.
    pub fn client_for(&self, endpoints: Vec<String>) -> Result<Client> {
        Ok(Client::connect(
            self.config(endpoints)?,
            self.signing_key()?,
        )?)
    }

    pub fn signing_key(&self) -> Result<ed25519_dalek::SigningKey> {
        client::load_key_file(&self.key)
            .with_context(|| format!("reading key {}", self.key.display()))
    }

    pub fn config(&self, endpoints: Vec<String>) -> Result<ClientConfig> {
        let mut cfg = ClientConfig::new(endpoints);
        cfg.stale_reads = self.stale;
        if let Some(ca) = &self.ca {
            cfg.tls_ca_pem = Some(
                api::tls::load_ca(ca).with_context(|| format!("reading CA {}", ca.display()))?,
            );
        }
        Ok(cfg)
    }
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

fn print_done(conn: &Conn, v: Value, human: &str) {
    if conn.json {
        println!("{v}");
    } else {
        println!("{human}");
    }
}
