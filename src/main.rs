//! `suanpan`: the one binary — replica node, local dev cluster, operator and finance CLI, demo.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use clap::{Args, Parser, Subcommand};

/// mimalloc: the ledger's batch apply is allocation-heavy and glibc malloc showed up as half the profile.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How long mimalloc keeps freed memory before returning it to the OS.
mod allocator {
    use std::os::raw::{c_int, c_long};

    extern "C" {
        #[cfg(test)]
        fn mi_option_get(option: c_int) -> c_long;
        fn mi_option_set(option: c_int, value: c_long);
    }

    /// `mi_option_purge_delay` in the mimalloc (v3) that `libmimalloc-sys` 0.1.49 builds: its
    /// position in `mi_option_e` (include/mimalloc.h). The test below checks it is that option.
    const PURGE_DELAY: c_int = 15;
    /// mimalloc returns freed pages to the OS 1 s after they are freed; a node frees and
    /// allocates its working set (a batch's records, the write-behind generations) every
    /// second or so, so each page was returned and faulted back in, zeroed by the kernel — 7 %
    /// of the applying thread. Kept 10 s instead, a busy node reuses them: +6 to +9 %
    /// transfers/s and −8 % CPU per transfer for ~15 % more resident memory
    /// (docs/performance.md, step 3h). An idle node still gives them back.
    const PURGE_DELAY_MS: c_long = 10_000;

    /// Sets the purge delay, unless the operator set `MIMALLOC_PURGE_DELAY` (mimalloc reads it).
    pub fn tune() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
            // SAFETY: `mi_option_set` only stores the value; mimalloc reads it at each purge.
            unsafe { mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// mimalloc's own default.
        const PURGE_DELAY_DEFAULT_MS: c_long = 1_000;

        /// The option index is mimalloc's purge delay: it holds that option's default until
        /// `tune` runs, and `tune` sets it (a wrong index would be some other option).
        #[test]
        fn tune_sets_mimallocs_purge_delay() {
            if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
                return;
            }
            // SAFETY: reads an option.
            let get = || unsafe { mi_option_get(PURGE_DELAY) };
            assert_eq!(get(), PURGE_DELAY_DEFAULT_MS);
            tune();
            assert_eq!(get(), PURGE_DELAY_MS);
        }
    }
}

mod bench;
mod cli;
mod demo;
mod dev;
mod sim;

#[derive(Parser)]
#[command(
    name = "suanpan",
    version,
    about = "Replicated double-entry ledger for mobile payments",
    propagate_version = true
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one replica: Raft over RocksDB plus the gRPC API (client, admin and peer traffic on one port).
    Node(NodeArgs),
    /// Start a local N-node cluster as child processes; Ctrl-C stops it.
    Dev {
        #[arg(long, default_value_t = 3)]
        nodes: u64,
        #[arg(long, default_value = ".suanpan-dev")]
        data_dir: PathBuf,
        /// Node i listens on base-port + i - 1.
        #[arg(long, default_value_t = 7400)]
        base_port: u16,
        /// Extra flags passed to every node (e.g. --node-arg=--snapshot-threshold-entries=1000).
        #[arg(long = "node-arg", allow_hyphen_values = true)]
        node_args: Vec<String>,
    },
    /// Key files.
    #[command(subcommand)]
    Keys(cli::KeysCmd),
    /// TLS certificates: the cluster's CA and one per node (`--tls-dir` on nodes, `--ca` on clients).
    #[command(subcommand)]
    Certs(cli::CertsCmd),
    /// API clients (keys and roles), registered through the replicated log.
    Clients {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::ClientsCmd,
    },
    /// Accounts.
    Account {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::AccountCmd,
    },
    /// Merchants: a merchant account with the profile its QR codes carry, and its fee.
    Merchant {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::MerchantCmd,
    },
    /// Customer payment codes: `paycode bind|revoke` a wallet's device key, `paycode make` a code.
    Paycode {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::PaycodeCmd,
    },
    /// Pay a scanned merchant code: a QR order (its amount) or a static code (`--amount`); or, as
    /// the merchant, charge a customer's payment code (`pay code`).
    Pay {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(flatten)]
        args: cli::PayArgs,
    },
    /// QR orders and merchant payments: `order close`, `order get`.
    Order {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::OrderCmd,
    },
    /// Refund part or all of a paid order to its payer; the fee comes back pro rata.
    Refund {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(flatten)]
        args: cli::RefundArgs,
    },
    /// Biller payments (utility bills, tickets): `bill pay`.
    Bill {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::BillCmd,
    },
    /// Cash-in through the custodial bank account: Dr bank, Cr wallet.
    Topup {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(flatten)]
        args: cli::TopupArgs,
    },
    /// Cash-out: hold the money until the bank confirms (`withdraw complete`) or refuses
    /// (`withdraw fail`); unconfirmed, it returns to the wallet.
    Withdraw {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(flatten)]
        args: cli::WithdrawArgs,
    },
    /// A chat transfer: at once, or held until the payee receives it (`--accept-within`);
    /// `send return` takes a held one back.
    Send {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(flatten)]
        args: cli::SendArgs,
    },
    /// The payee receives a held chat transfer.
    Receive {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(flatten)]
        args: cli::ReceiveArgs,
    },
    /// Payment requests (collect): `request create|pay|decline|cancel|get`.
    Request {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::RequestCmd,
    },
    /// Bill splits and AA collection: `split create|pay|cancel|get`.
    Split {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::SplitCmd,
    },
    /// Groups and netted settle-up: `group create|balances|settle`.
    Group {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::GroupCmd,
    },
    /// Red packets: `redpacket create|claim|get|verify`.
    Redpacket {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::RedPacketCmd,
    },
    /// In-app currencies (points, coins): `currency define|list` (define: operators only).
    Currency {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::CurrencyCmd,
    },
    /// Exchange rates: `rate set|list` (set: operators only).
    Rate {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::RateCmd,
    },
    /// Convert money between a wallet's currency and another wallet's at the current rate
    /// (rounded down to the target's minor unit); `convert get ID…` shows conversions.
    Convert {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(flatten)]
        args: cli::ConvertArgs,
    },
    /// KYC tiers: `tier define|list` (define: operators only); `account set-tier` applies one.
    Tier {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::TierCmd,
    },
    /// Replicated ledger settings: `settings set|get` (set: operators only).
    Settings {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::SettingsCmd,
    },
    /// Finance audits: `audit trial-balance`, `audit safeguarding` (read-only).
    Audit {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::AuditCmd,
    },
    /// Bank reconciliation: `reconcile statement FILE --account BANK` (camt.053, MT940, CSV).
    Reconcile {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::ReconcileCmd,
    },
    /// Exports for account holders and finance: `export statement` (read-only).
    Export {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::ExportCmd,
    },
    /// An account's postings, oldest first, paged by cursor.
    History {
        #[command(flatten)]
        conn: cli::Conn,
        account: String,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        /// Cursor: the last posting sequence number already seen.
        #[arg(long, default_value_t = 0)]
        after: u64,
    },
    /// Move money (`--id --from --to --amount`, `--pending` to hold), or post/void/get.
    Transfer {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(flatten)]
        args: cli::TransferArgs,
    },
    /// Stream applied commands and their results, and flow events, from a log index.
    Watch {
        #[command(flatten)]
        conn: cli::Conn,
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Stop after this many events.
        #[arg(long)]
        count: Option<u64>,
        /// Only flow events that concern this account (repeat for several); served from the
        /// replicated journal, so they survive restarts.
        #[arg(long = "account")]
        accounts: Vec<String>,
    },
    /// Forward an account's flow events to an HTTP URL (at least once, resuming from a cursor file).
    Notify {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(flatten)]
        args: cli::NotifyArgs,
    },
    /// Online backup of the node at --endpoint: a consistent checkpoint of its database (ledger
    /// and Raft log) and its identity, written to DIR on that node's machine (DIR must not exist).
    Backup {
        #[command(flatten)]
        conn: cli::Conn,
        /// Absolute path on the node's machine.
        #[arg(long, value_name = "DIR")]
        out: String,
    },
    /// Prepare an empty data directory for node --id from a backup (offline). Point-in-time
    /// recovery of a whole cluster: restore every voter the backup names, then start them.
    Restore {
        /// The backup directory (`suanpan backup --out`).
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The new node's data directory (must be empty or missing).
        #[arg(long)]
        data_dir: PathBuf,
        /// The node id to restore as (a member in the backup).
        #[arg(long)]
        id: u64,
        /// Print machine-readable JSON.
        #[arg(long)]
        json: bool,
    },
    /// Cluster membership and status.
    Cluster {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::ClusterCmd,
    },
    /// EMV QR merchant-presented payloads: `qr parse PAYLOAD`, `qr static --merchant ID`,
    /// `qr order --merchant ID --amount A --reference REF`.
    Qr {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::QrCmd,
    },
    /// Load generator: throughput, latency percentiles, CPU per 1 000 transfers, and a final check.
    Bench(bench::BenchArgs),
    /// Deterministic cluster simulator with the real ledger in the loop: seeded faults, crashes
    /// that lose unsynced writes, checkers for lost, duplicated and divergent money
    /// (docs/reliability.md). `--seed S` replays one seed bit for bit.
    Sim(sim::SimArgs),
    /// Single-node embedded demo on RocksDB (no network): create wallets, move money, print balances.
    Demo {
        /// Keep the data here (default: a temporary directory).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

/// Optional TOML configuration for `suanpan node`; flags override it. Keys match the flag names
/// with underscores (see docs/operations.md).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NodeToml {
    tick_interval_ms: Option<u64>,
    election_tick: Option<usize>,
    heartbeat_tick: Option<usize>,
    snapshot_threshold_entries: Option<u64>,
    log_retain_entries: Option<u64>,
    log_hold_bytes_max: Option<u64>,
    max_proposals_per_entry: Option<usize>,
    max_entry_bytes: Option<usize>,
    max_clock_step_ms: Option<u64>,
    log_sync_pipelined: Option<bool>,
    apply_pipelined: Option<bool>,
}

#[derive(Args)]
struct NodeArgs {
    /// Raft id of this node (non-zero, never reused).
    #[arg(long)]
    id: u64,
    #[arg(long)]
    data_dir: PathBuf,
    /// Address for client, admin and peer traffic.
    #[arg(long)]
    listen: SocketAddr,
    /// Another member: ID=HOST:PORT (repeat). Without --join these form the initial voters with this node.
    #[arg(long = "peer")]
    peers: Vec<String>,
    /// Start as a non-member and wait to be added (`suanpan cluster add-node`).
    #[arg(long)]
    join: bool,
    /// Address others use to reach this node (default: the listen address).
    #[arg(long)]
    advertise: Option<String>,
    /// Cluster admin key (all nodes of a cluster share it); default DATA_DIR/admin.key, created on first start.
    #[arg(long)]
    admin_key_file: Option<PathBuf>,
    /// TLS directory (`suanpan certs init`): every connection TLS, peers authenticated by certificate.
    #[arg(long)]
    tls_dir: Option<PathBuf>,
    /// How often this node compares its digest with every peer's (0: never).
    #[arg(long)]
    digest_check_interval_ms: Option<u64>,
    /// Serve plaintext without --tls-dir (local development only: peer traffic can be forged).
    #[arg(long, conflicts_with = "tls_dir")]
    insecure: bool,
    /// Serve Prometheus metrics over plain HTTP at http://ADDR/metrics (e.g. 127.0.0.1:9100).
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<std::net::SocketAddr>,
    /// UNSAFE, for tests only: acknowledge writes without fsync (a power loss loses them).
    #[arg(long, hide = true)]
    unsafe_no_fsync: bool,
    /// Benchmarks only: add this many ms to every fsync of the Raft log (a slower disk than the
    /// machine's, to compare --log-sync-pipelined settings).
    #[arg(long, hide = true, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=10_000))]
    emulate_log_fsync_ms: Option<u64>,
    /// Key that signs audit checkpoints (all nodes of a cluster share it); default: derived from the admin key.
    #[arg(long)]
    audit_key_file: Option<PathBuf>,
    /// TOML file with Raft tuning (flags override it).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long)]
    tick_interval_ms: Option<u64>,
    /// Election timeout, in ticks.
    #[arg(long)]
    election_tick: Option<usize>,
    /// Heartbeat interval, in ticks.
    #[arg(long)]
    heartbeat_tick: Option<usize>,
    /// Applied entries between snapshots (the log is compacted behind each snapshot).
    #[arg(long)]
    snapshot_threshold_entries: Option<u64>,
    /// Entries kept in the log behind a snapshot (lagging followers catch up from the log).
    #[arg(long)]
    log_retain_entries: Option<u64>,
    /// Most Raft log bytes kept for a node catching up after a snapshot (past this it is let go
    /// and gets a newer snapshot).
    #[arg(long)]
    log_hold_bytes_max: Option<u64>,
    /// Group commit: most client batches per Raft entry.
    #[arg(long)]
    max_proposals_per_entry: Option<usize>,
    /// Largest Raft entry, in bytes.
    #[arg(long)]
    max_entry_bytes: Option<usize>,
    /// How far past the last log time plus its own elapsed time a leader may stamp an entry
    /// (a wall clock that jumps ahead is not followed faster than this per entry).
    #[arg(long)]
    max_clock_step_ms: Option<u64>,
    /// Persist the Raft log on a thread of its own (true): the Raft thread writes each batch of
    /// entries and goes on replicating and applying while a log-sync thread fsyncs, one fsync
    /// covering every write before it; acknowledgements and votes leave once durable. false:
    /// the Raft thread waits for each fsync itself. [default: true]
    #[arg(long, value_name = "BOOL")]
    log_sync_pipelined: Option<bool>,
    /// Apply committed entries on a thread of its own (true): the Raft thread hands them to an
    /// apply-N thread and goes on appending, replicating and acknowledging while they apply;
    /// results come back in log order. false: the Raft thread applies them itself (on two cores
    /// shared by three replicas the thread gained nothing and cost CPU: docs/performance.md, 3t).
    /// [default: false]
    #[arg(long, value_name = "BOOL")]
    apply_pipelined: Option<bool>,
    /// Size of one memtable of each ledger column family, in MiB (1-4096; the Raft log's are at
    /// least this and at least 64). The ledger is persisted when a memtable fills. Larger: fewer
    /// flushes and compactions, more memory, and a longer log replay on restart after a crash.
    /// [default: 32]
    #[arg(long, value_parser = clap::value_parser!(u64).range(
        (ledger::LEDGER_MEMTABLE_BYTES_MIN >> 20) as u64..=(ledger::LEDGER_MEMTABLE_BYTES_MAX >> 20) as u64
    ))]
    ledger_memtable_mib: Option<u64>,
    /// Size of one generation of the ledger's write-behind buffer, in MiB (1-4096): a batch's
    /// writes go to memory, and a background thread writes each full generation to RocksDB —
    /// sorted, once per key however often it changed. Larger: fewer RocksDB writes of accounts
    /// that change often, more memory (up to eight generations' worth buffered: a frozen one,
    /// and an active one at four times the size before the writer waits). [default: 16]
    #[arg(long, value_parser = clap::value_parser!(u64).range(
        1..=(ledger::writebehind::WRITE_BEHIND_BYTES_MAX >> 20) as u64
    ))]
    ledger_write_behind_mib: Option<u64>,
}

fn parse_peer(s: &str) -> Result<(u64, String)> {
    let (id, addr) = s
        .split_once('=')
        .ok_or_else(|| anyhow!("--peer takes ID=HOST:PORT, got {s:?}"))?;
    let id: u64 = id.parse().map_err(|_| anyhow!("bad peer id in {s:?}"))?;
    if id == 0 || addr.is_empty() {
        bail!("bad peer {s:?}");
    }
    Ok((id, addr.to_string()))
}

async fn run_node(a: NodeArgs) -> Result<()> {
    if a.id == 0 {
        bail!("--id must be non-zero");
    }
    let file: NodeToml = match &a.config {
        Some(p) => toml::from_str(
            &std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
        )
        .with_context(|| format!("parsing {}", p.display()))?,
        None => NodeToml::default(),
    };
    let mut cfg = api::node::NodeConfig::new(a.id, &a.data_dir, a.listen);
    cfg.peers = a
        .peers
        .iter()
        .map(|p| parse_peer(p))
        .collect::<Result<_>>()?;
    cfg.join = a.join;
    cfg.advertise = a.advertise;
    cfg.admin_key_file = a.admin_key_file;
    cfg.audit_key_file = a.audit_key_file;
    cfg.tls_dir = a.tls_dir;
    cfg.insecure = a.insecure;
    cfg.unsafe_no_fsync = a.unsafe_no_fsync;
    cfg.emulated_log_fsync_ms = a.emulate_log_fsync_ms.unwrap_or(0);
    cfg.metrics_listen = a.metrics_listen;
    if let Some(mib) = a.ledger_memtable_mib {
        cfg.ledger_memtable_bytes = (mib as usize) << 20;
    }
    if let Some(mib) = a.ledger_write_behind_mib {
        cfg.ledger_write_behind_bytes = (mib as usize) << 20;
    }
    if let Some(ms) = a.digest_check_interval_ms {
        cfg.limits.digest_check_interval_ms = ms;
    }
    let r = &mut cfg.raft;
    macro_rules! set {
        ($f:ident) => {
            if let Some(v) = a.$f.or(file.$f) {
                r.$f = v;
            }
        };
    }
    set!(tick_interval_ms);
    set!(election_tick);
    set!(heartbeat_tick);
    set!(snapshot_threshold_entries);
    set!(log_retain_entries);
    set!(log_hold_bytes_max);
    set!(max_proposals_per_entry);
    set!(max_entry_bytes);
    set!(max_clock_step_ms);
    set!(log_sync_pipelined);
    set!(apply_pipelined);
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    };
    api::node::run(cfg, shutdown)
        .await
        .map_err(|e| anyhow!("{e}"))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SUANPAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn init_tracing_quiet() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SUANPAN_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn main() {
    allocator::tune();
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let r: Result<cli::Exit> = rt.block_on(async {
        match cli.command {
            Cmd::Node(a) => {
                init_tracing();
                run_node(a).await.map(|()| cli::Exit(0))
            }
            Cmd::Dev {
                nodes,
                data_dir,
                base_port,
                node_args,
            } => dev::run(dev::DevOpts {
                nodes,
                data_dir,
                base_port,
                extra_node_args: node_args,
            })
            .await
            .map(|()| cli::Exit(0)),
            Cmd::Keys(k) => cli::keys(k),
            Cmd::Certs(k) => cli::certs(k),
            Cmd::Qr { conn, cmd } => cli::qr(&conn, cmd).await,
            Cmd::Clients { conn, cmd } => cli::clients(&conn, cmd).await,
            Cmd::Account { conn, cmd } => cli::account(&conn, cmd).await,
            Cmd::Merchant { conn, cmd } => cli::merchant(&conn, cmd).await,
            Cmd::Pay { conn, args } => cli::pay(&conn, args).await,
            Cmd::Paycode { conn, cmd } => cli::paycode(&conn, cmd).await,
            Cmd::Order { conn, cmd } => cli::order(&conn, cmd).await,
            Cmd::Refund { conn, args } => cli::refund(&conn, args).await,
            Cmd::Bill { conn, cmd } => cli::bill(&conn, cmd).await,
            Cmd::Topup { conn, args } => cli::topup(&conn, args).await,
            Cmd::Send { conn, args } => cli::send(&conn, args).await,
            Cmd::Receive { conn, args } => cli::receive(&conn, args).await,
            Cmd::Request { conn, cmd } => cli::request(&conn, cmd).await,
            Cmd::Split { conn, cmd } => cli::split(&conn, cmd).await,
            Cmd::Redpacket { conn, cmd } => cli::redpacket(&conn, cmd).await,
            Cmd::Group { conn, cmd } => cli::group(&conn, cmd).await,
            Cmd::Currency { conn, cmd } => cli::currency(&conn, cmd).await,
            Cmd::Rate { conn, cmd } => cli::rate(&conn, cmd).await,
            Cmd::Convert { conn, args } => cli::convert(&conn, args).await,
            Cmd::Tier { conn, cmd } => cli::tier(&conn, cmd).await,
            Cmd::Settings { conn, cmd } => cli::settings(&conn, cmd).await,
            Cmd::Audit { conn, cmd } => cli::audit(&conn, cmd).await,
            Cmd::Reconcile { conn, cmd } => cli::reconcile(&conn, cmd).await,
            Cmd::Export { conn, cmd } => cli::export(&conn, cmd).await,
            Cmd::Withdraw { conn, args } => cli::withdraw(&conn, args).await,
            Cmd::History {
                conn,
                account,
                limit,
                after,
            } => cli::history(&conn, account, limit, after).await,
            Cmd::Transfer { conn, args } => cli::transfer(&conn, args).await,
            Cmd::Watch {
                conn,
                from,
                count,
                accounts,
            } => cli::watch(&conn, from, count, accounts).await,
            Cmd::Notify { conn, args } => cli::notify(&conn, args).await,
            Cmd::Cluster { conn, cmd } => cli::cluster(&conn, cmd).await,
            Cmd::Backup { conn, out } => cli::backup(&conn, out).await,
            Cmd::Restore {
                from,
                data_dir,
                id,
                json,
            } => cli::restore(from, data_dir, id, json),
            Cmd::Bench(a) => {
                init_tracing_quiet();
                bench::run(a).await.map(|()| cli::Exit(0))
            }
            Cmd::Demo { data_dir } => demo::run(data_dir).map(|()| cli::Exit(0)),
            Cmd::Sim(a) => sim::run_cli(a).map(cli::Exit),
        }
    });
    match r {
        Ok(cli::Exit(code)) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            // A usage mistake exits 2, like the argument parser's own (docs/cli.md).
            std::process::exit(if e.is::<cli::Usage>() { 2 } else { 1 });
        }
    }
}
