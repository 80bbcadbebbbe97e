//! `suanpan bench`: a load generator against a running cluster (`--endpoint`) or one it starts itself
//! (`--spawn N`, durable, in a temporary data dir). It creates its accounts, drives transfers from
//! concurrent tasks through the batching client, and reports throughput, latency percentiles (HDR
//! histogram), rejected and retried counts and cluster CPU per 1 000 transfers; at the end it checks
//! that money was conserved and that acknowledged transfers exist. `--workload payments` drives the
//! mixed payment workload of [`mix`] instead of plain transfers; `--workload statement` is the
//! reconciliation benchmark of [`statement`].

mod mix;
mod statement;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use api::client::{self, cmd as ops, Client, ClientConfig, ClientError};
use api::pb;
use clap::{Args, ValueEnum};
use hdrhistogram::Histogram;
use ledger::Id;
use parking_lot::Mutex;
use rust_decimal::Decimal;
use serde_json::json;

/// What the load generator submits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Workload {
    /// Single-leg wallet transfers (with --hot-share and --two-phase-share).
    Transfers,
    /// The mixed payment workload: P2P, QR static and order payments, refunds, chat transfers,
    /// payment requests, splits, red packets and conversions, each flow run to its end.
    Payments,
    /// The reconciliation benchmark: --lines top-ups through a bank account, the bank's MT940
    /// statement for them, and `reconcile statement` timed (wall time, peak RSS).
    Statement,
}

/// How transfers travel to the cluster.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Wire {
    /// `Submit`: protobuf commands, ids and amounts as strings (coalesced by the client library).
    V1,
    /// `SubmitTransfers`: 80-byte binary records, amounts in minor units, one call per batch.
    V2,
}

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// What to submit: plain transfers, or the mixed payment workload.
    #[arg(long, value_enum, default_value = "transfers")]
    pub workload: Workload,
    /// The wire form of the transfers workload's calls (v2 carries single-phase transfers only:
    /// not with --two-phase-share).
    #[arg(long, value_enum, default_value = "v1")]
    pub wire: Wire,
    /// Node(s) of a running cluster (comma-separated). Ignored with --spawn.
    #[arg(long, default_value = "127.0.0.1:7400")]
    pub endpoint: String,
    /// Key file (an admin or payments key of that cluster).
    #[arg(long, default_value = ".suanpan-dev/admin.key")]
    pub key: PathBuf,
    /// The cluster CA (PEM) of a TLS cluster at --endpoint.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Start an N-node durable cluster of our own in a temporary directory.
    #[arg(long)]
    pub spawn: Option<u64>,
    /// One more argument for every node --spawn starts (repeat it; for example
    /// `--node-arg=--ledger-write-behind-mib --node-arg=128`), to compare node settings.
    #[arg(long = "node-arg", allow_hyphen_values = true, requires = "spawn")]
    pub node_args: Vec<String>,
    /// Wallets to create (plus one bank and one hot merchant).
    #[arg(long, default_value_t = 10_000)]
    pub accounts: u64,
    /// Transfers to submit (after warm-up), unless --duration-s is given.
    #[arg(long, default_value_t = 200_000)]
    pub transfers: u64,
    /// Statement lines (and ledger postings) for --workload statement.
    #[arg(long, default_value_t = 1_000_000)]
    pub lines: u64,
    /// Run for this many seconds instead of a transfer count.
    #[arg(long)]
    pub duration_s: Option<u64>,
    /// Concurrent submitting tasks.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Transfers per submit call.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// How long the client library waits to coalesce concurrent calls into one request
    /// (`ClientConfig::batch_linger_us`).
    #[arg(long, default_value_t = 1_000)]
    pub linger_us: u64,
    /// Open loop: offer this many transfers per second, whatever the cluster's answers (each of
    /// the --concurrency tasks sends on a fixed schedule). Latency is measured from each call's
    /// scheduled time, so a cluster that falls behind shows it in the percentiles instead of
    /// slowing the offered load. Without it the bench is a closed loop (each task sends its next
    /// call when the last one is answered).
    #[arg(long)]
    pub rate: Option<u64>,
    /// Share of transfers paying the one hot merchant account (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub hot_share: f64,
    /// Share of transfers that are two-phase (a hold, then a post in a later batch).
    #[arg(long, default_value_t = 0.0)]
    pub two_phase_share: f64,
    /// Warm-up seconds (not measured).
    #[arg(long, default_value_t = 2)]
    pub warmup_s: u64,
    /// Acknowledged transfers to look up at the end (0 = all).
    #[arg(long, default_value_t = 2_000)]
    pub verify_sample: usize,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

struct Spawned {
    _dir: tempfile::TempDir,
    children: Vec<Child>,
    endpoints: Vec<String>,
    key: PathBuf,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        for c in &mut self.children {
            crate::dev::terminate(c);
        }
        for c in &mut self.children {
            let _ = c.wait();
        }
    }
}

fn spawn_cluster(n: u64, node_args: &[String]) -> Result<Spawned> {
    let dir = tempfile::tempdir()?;
    let key = dir.path().join("admin.key");
    client::generate_key_file(&key)?;
    let ports: Vec<u16> = (0..n)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
        })
        .collect::<std::io::Result<_>>()?;
    let endpoints: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let exe = std::env::current_exe()?;
    let mut children = Vec::new();
    for id in 1..=n {
        let mut args = vec![
            "node".to_string(),
            "--id".into(),
            id.to_string(),
            "--data-dir".into(),
            dir.path().join(format!("node-{id}")).display().to_string(),
            "--listen".into(),
            endpoints[id as usize - 1].clone(),
            "--admin-key-file".into(),
            key.display().to_string(),
            "--insecure".into(),
        ];
        for p in 1..=n {
            if p != id {
                args.push("--peer".into());
                args.push(format!("{p}={}", endpoints[p as usize - 1]));
            }
        }
        args.extend(node_args.iter().cloned());
        let log = std::fs::File::create(dir.path().join(format!("node-{id}.log")))?;
        children.push(
            Command::new(&exe)
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .spawn()?,
        );
    }
    Ok(Spawned {
        _dir: dir,
        children,
        endpoints,
        key,
    })
}

/// Peak resident memory (VmHWM) of a process in MiB, from /proc.
fn peak_rss_mib(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

use ledger::rng::SplitMix64 as Rng;

/// One call's worth of transfers in the form `--wire` asks for.
pub(crate) enum Call {
    V1(Vec<pb::Command>),
    V2(Vec<api::wire::TransferRecord>),
}

pub(crate) async fn submit_retrying(
    c: &Client,
    call: &Call,
    retried: &AtomicU64,
) -> Result<Vec<client::CommandOutcome>> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = match call {
            Call::V1(cmds) => c.submit(cmds.clone()).await,
            Call::V2(records) => c.submit_transfers(records).await,
        };
        match r {
            Ok(r) => return Ok(r),
            Err(e @ (ClientError::OutcomeUnknown { .. } | ClientError::Unavailable { .. }))
                if Instant::now() < deadline =>
            {
                retried.fetch_add(1, Ordering::Relaxed);
                tracing::debug!("retrying with the same ids: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

#[derive(Default)]
struct Shared {
    acked: Mutex<Vec<Id>>,
    hist: Mutex<Option<Histogram<u64>>>,
}

pub async fn run(a: BenchArgs) -> Result<()> {
    if !(0.0..=1.0).contains(&a.hot_share) || !(0.0..=1.0).contains(&a.two_phase_share) {
        bail!("--hot-share and --two-phase-share are fractions in [0, 1]");
    }
    if a.accounts < 2 || a.batch_size == 0 || a.concurrency == 0 {
        bail!("need at least 2 accounts, a batch size and a concurrency above zero");
    }
    if a.rate == Some(0) {
        bail!("--rate is transfers per second, above zero");
    }
    if a.wire == Wire::V2 && (a.workload != Workload::Transfers || a.two_phase_share > 0.0) {
        bail!("--wire v2 carries single-phase transfers: the transfers workload without --two-phase-share");
    }
    let spawned = match a.spawn {
        Some(n) if (1..=9).contains(&n) => Some(spawn_cluster(n, &a.node_args)?),
        Some(_) => bail!("--spawn takes 1 to 9 nodes"),
        None => None,
    };
    let (endpoints, key_path) = match &spawned {
        Some(s) => (s.endpoints.clone(), s.key.clone()),
        None => (
            a.endpoint
                .split(',')
                .map(|s| s.trim().to_string())
                .collect(),
            a.key.clone(),
        ),
    };
    let key = client::load_key_file(&key_path)
        .with_context(|| format!("reading {}", key_path.display()))?;
    let mut cfg = ClientConfig::new(endpoints.clone());
    if let (Some(ca), None) = (&a.ca, &spawned) {
        cfg.tls_ca_pem = Some(api::tls::load_ca(ca)?);
    }
    cfg.max_in_flight_batches = (a.concurrency / 2).clamp(4, 64);
    cfg.batch_linger_us = a.linger_us;
    let c = Client::connect(cfg, key)?;

    // Wait for a leader with the key registered.
    let ready_by = Instant::now() + Duration::from_secs(60);
    while c.list_clients().await.is_err() {
        if Instant::now() > ready_by {
            bail!("cluster at {} not ready within 60 s", endpoints.join(","));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    if a.workload == Workload::Statement {
        return statement::run(&a, &c, &endpoints, &key_path).await;
    }

    // Accounts: a bank, a hot merchant, wallets; wallets funded generously so transfers succeed.
    let bank = client::new_id();
    let hot = client::new_id();
    let wallets: Arc<Vec<Id>> = Arc::new((0..a.accounts).map(|_| client::new_id()).collect());
    let retried = Arc::new(AtomicU64::new(0));
    let mut setup = vec![
        ops::create_account(bank, "CNY", pb::AccountKind::System),
        ops::create_account(hot, "CNY", pb::AccountKind::Merchant),
    ];
    for w in wallets.iter() {
        setup.push(ops::create_account(*w, "CNY", pb::AccountKind::Wallet));
    }
    for chunk in setup.chunks(4_000) {
        let r = submit_retrying(&c, &Call::V1(chunk.to_vec()), &retried).await?;
        if let Some(bad) = r.iter().find(|o| !o.is_ok()) {
            bail!("account setup failed: {bad:?}");
        }
    }
    let fund: Vec<pb::Command> = wallets
        .iter()
        .map(|w| ops::transfer(client::new_id(), bank, *w, "100000000.00", "CNY"))
        .collect();
    for chunk in fund.chunks(4_000) {
        submit_retrying(&c, &Call::V1(chunk.to_vec()), &retried).await?;
    }

    // The payment workload's merchant (0.6 % fee), coins and coin wallets.
    let payments = a.workload == Workload::Payments;
    let fees = client::new_id();
    let coins: Arc<Vec<Id>> = Arc::new(
        (0..(a.accounts / 10).max(1))
            .map(|_| client::new_id())
            .collect(),
    );
    let cny = ledger::Currency::from_code("CNY").expect("CNY");
    let qcoin = ledger::Currency::declared("QCOIN").expect("QCOIN");
    let system_balances = |c: Client| async move {
        let ids = [
            ledger::escrow_account_id(cny),
            ledger::position_account_id(cny),
            ledger::position_account_id(qcoin),
        ];
        let mut out = [Decimal::ZERO; 3];
        for (i, id) in ids.into_iter().enumerate() {
            if let Some(acct) = c.get_account(id).await? {
                out[i] = Decimal::from_str(&acct.balance)?;
            }
        }
        anyhow::Ok(out)
    };
    let system_before = system_balances(c.clone()).await?;
    let merchant = ledger::MerchantProfile {
        account: client::new_id(),
        name: "BENCH MART".into(),
        city: "HANGZHOU".into(),
        mcc: "5411".into(),
        country: "CN".into(),
        fee_bps: 60,
        fee_account: Some(fees),
        created_ns: 0,
    };
    if payments {
        let mut cmds = vec![
            ops::create_account(fees, "CNY", pb::AccountKind::System),
            ops::create_merchant(pb::CreateMerchant {
                id: merchant.account.to_string(),
                currency: "CNY".into(),
                name: merchant.name.clone(),
                city: merchant.city.clone(),
                mcc: merchant.mcc.clone(),
                country: merchant.country.clone(),
                fee_bps: merchant.fee_bps,
                fee_account_id: Some(fees.to_string()),
            }),
            ops::define_currency(client::new_id(), "QCOIN", 0, "bench coins"),
            ops::set_rate(client::new_id(), "CNY", "QCOIN", "10"),
        ];
        for w in coins.iter() {
            cmds.push(ops::create_account(*w, "QCOIN", pb::AccountKind::Wallet));
        }
        for chunk in cmds.chunks(4_000) {
            let r = submit_retrying(&c, &Call::V1(chunk.to_vec()), &retried).await?;
            // A cluster that already has the coins keeps them.
            if let Some(bad) = r.iter().find(|o| !o.is_ok() && o.name != "currency_exists") {
                bail!("payment workload setup failed: {bad:?}");
            }
        }
    }
    let mix = Arc::new(mix::Mix {
        wallets: wallets.clone(),
        coins: coins.clone(),
        static_qr: ledger::emv::merchant_payload(&merchant, cny, None)
            .map_err(|e| anyhow!("static QR: {e:?}"))?,
        merchant: merchant.clone(),
    });
    let kinds = mix::kind_names();
    let per_kind: Arc<Vec<[AtomicU64; 2]>> = Arc::new(
        kinds
            .iter()
            .map(|_| [AtomicU64::new(0), AtomicU64::new(0)])
            .collect(),
    );

    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let submitted = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicU64::new(0));
    let rejected = Arc::new(AtomicU64::new(0));
    let shared = Arc::new(Shared {
        hist: Mutex::new(Some(Histogram::new_with_bounds(1, 60_000_000, 3)?)),
        ..Default::default()
    });
    let target = a.transfers;
    let bar = if a.json {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(target)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} transfers {per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let cny_numeric = ledger::Currency::from_code("CNY").expect("CNY").numeric();
    let mut tasks = Vec::new();
    for t in 0..a.concurrency {
        let (c, wallets, measuring, stop, submitted, done, rejected, retried, shared, bar) = (
            c.clone(),
            wallets.clone(),
            measuring.clone(),
            stop.clone(),
            submitted.clone(),
            done.clone(),
            rejected.clone(),
            retried.clone(),
            shared.clone(),
            bar.clone(),
        );
        let a = a.clone();
        let (mix, per_kind) = (mix.clone(), per_kind.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(a.seed ^ ((t as u64 + 1) << 32));
            let mut holds: Vec<Id> = Vec::new();
            let mut later: Vec<(&'static str, pb::Command)> = Vec::new();
            let mut local = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
            let mut acked = Vec::new();
            // Open loop: this task's calls are spaced `period` apart, tasks offset evenly.
            let period = a.rate.map(|r| {
                Duration::from_secs_f64(a.concurrency as f64 * a.batch_size as f64 / r as f64)
            });
            let mut next_send = tokio::time::Instant::now()
                + period.map_or(Duration::ZERO, |p| {
                    p.mul_f64(t as f64 / a.concurrency as f64)
                });
            while !stop.load(Ordering::Relaxed) {
                let measured = measuring.load(Ordering::Relaxed);
                if measured
                    && a.duration_s.is_none()
                    && submitted.fetch_add(a.batch_size as u64, Ordering::Relaxed) >= target
                {
                    break;
                }
                let mut cmds = Vec::with_capacity(a.batch_size);
                let mut labels: Vec<&'static str> = Vec::with_capacity(a.batch_size);
                for p in holds.drain(..) {
                    cmds.push(ops::post_pending(client::new_id(), p, None));
                }
                let mut new_holds = Vec::new();
                if payments {
                    // Follow-ups of the previous batch first, then new flows.
                    let mut next_later = Vec::new();
                    for (k, c) in later.drain(..) {
                        labels.push(k);
                        cmds.push(c);
                    }
                    while cmds.len() < a.batch_size {
                        let (k, c) = mix.next(&mut rng, &mut next_later);
                        labels.push(k);
                        cmds.push(c);
                    }
                    later = next_later;
                }
                let mut records = Vec::new();
                while cmds.len() + records.len() < a.batch_size {
                    let from = wallets[(rng.next() % wallets.len() as u64) as usize];
                    let to = if rng.unit() < a.hot_share {
                        hot
                    } else {
                        let mut b = wallets[(rng.next() % wallets.len() as u64) as usize];
                        if b == from {
                            b = hot;
                        }
                        b
                    };
                    let (major, cents) = (1 + rng.next() % 100, rng.next() % 100);
                    let id = client::new_id();
                    if a.wire == Wire::V2 {
                        records.push(api::wire::TransferRecord {
                            id,
                            debit: from,
                            credit: to,
                            amount_minor: u128::from(major * 100 + cents),
                            currency_numeric: cny_numeric,
                            pending_timeout_seconds: None,
                        });
                        // Counted in `cmds`' place: one record per transfer.
                        continue;
                    }
                    let amount = format!("{major}.{cents:02}");
                    if rng.unit() < a.two_phase_share {
                        new_holds.push(id);
                        cmds.push(ops::pending_transfer(id, from, to, &amount, "CNY", 600));
                    } else {
                        cmds.push(ops::transfer(id, from, to, &amount, "CNY"));
                    }
                }
                let n = (cmds.len() + records.len()) as u64;
                let (ids, call): (Vec<String>, Call) = if records.is_empty() {
                    (cmds.iter().map(command_id).collect(), Call::V1(cmds))
                } else {
                    (
                        records.iter().map(|r| r.id.to_string()).collect(),
                        Call::V2(records),
                    )
                };
                let t0 = match period {
                    Some(p) => {
                        // Latency counts from the scheduled time (no coordinated omission).
                        let at = next_send;
                        next_send += p;
                        tokio::time::sleep_until(at).await;
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        at.into_std()
                    }
                    None => Instant::now(),
                };
                // Open loop: whether this call counts is decided when it is sent, not when it
                // was built (a task may have slept a whole period in between).
                let measured = if period.is_some() {
                    measuring.load(Ordering::Relaxed)
                } else {
                    measured
                };
                let r = match submit_retrying(&c, &call, &retried).await {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("submit failed: {e:#}");
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                };
                let us = t0.elapsed().as_micros() as u64;
                let bad = r.iter().filter(|o| !o.is_ok()).count() as u64;
                holds = new_holds;
                if measured {
                    let _ = local.record(us.max(1));
                    done.fetch_add(n, Ordering::Relaxed);
                    rejected.fetch_add(bad, Ordering::Relaxed);
                    bar.inc(n);
                    for (k, o) in labels.iter().zip(&r) {
                        per_kind[mix::kind_index(k)][usize::from(!o.is_ok())]
                            .fetch_add(1, Ordering::Relaxed);
                    }
                    for (i, (id, o)) in ids.into_iter().zip(&r).enumerate() {
                        // Acknowledged transfers are looked up at the end (in the payment mix,
                        // the P2P transfers).
                        if payments && labels.get(i) != Some(&"p2p_transfer") {
                            continue;
                        }
                        if o.is_ok() {
                            if let Ok(id) = Id::from_str(&id) {
                                acked.push(id);
                            }
                        }
                    }
                }
            }
            if let Some(h) = shared.hist.lock().as_mut() {
                let _ = h.add(&local);
            }
            shared.acked.lock().extend(acked);
        }));
    }

    tokio::time::sleep(Duration::from_secs(a.warmup_s)).await;
    let pids: Vec<u32> = spawned
        .as_ref()
        .map(|s| s.children.iter().map(|c| c.id()).collect())
        .unwrap_or_default();
    let cpu0: f64 = pids.iter().filter_map(|p| cpu_seconds(*p)).sum();
    measuring.store(true, Ordering::Relaxed);
    let t0 = Instant::now();
    let mut stopped_at = None;
    if let Some(d) = a.duration_s {
        bar.set_length(0);
        tokio::time::sleep(Duration::from_secs(d)).await;
        stop.store(true, Ordering::Relaxed);
        stopped_at = Some(t0.elapsed());
    }
    for t in tasks {
        t.await?;
    }
    // An open loop offers load until the stop; its tasks may then sleep up to a period before
    // they notice, which is not time the cluster worked.
    let elapsed = match (a.rate, stopped_at) {
        (Some(_), Some(t)) => t,
        _ => t0.elapsed(),
    }
    .as_secs_f64();
    let cpu1: f64 = pids.iter().filter_map(|p| cpu_seconds(*p)).sum();
    let node_rss_mib = pids
        .iter()
        .filter_map(|p| peak_rss_mib(*p))
        .reduce(f64::max);
    bar.finish_and_clear();
    let n = done.load(Ordering::Relaxed);
    let hist = shared
        .hist
        .lock()
        .take()
        .ok_or_else(|| anyhow!("histogram"))?;

    // Verification: money conserved over the bench's accounts; acknowledged transfers exist.
    // Per currency: the bench's accounts plus what moved into escrow and the position accounts
    // during the run (exact when the bench is their only user, as with --spawn).
    let mut all = vec![bank, hot];
    all.extend(wallets.iter().copied());
    if payments {
        all.extend([fees, merchant.account]);
        all.extend(coins.iter().copied());
    }
    let system_after = system_balances(c.clone()).await?;
    let mut sums: std::collections::BTreeMap<String, Decimal> = Default::default();
    for chunk in all.chunks(1_000) {
        for acct in c.get_accounts(chunk).await?.accounts {
            *sums.entry(acct.currency.clone()).or_default() += Decimal::from_str(&acct.balance)
                .map_err(|e| anyhow!("bad balance {}: {e}", acct.balance))?;
        }
    }
    if payments {
        *sums.entry("CNY".into()).or_default() +=
            system_after[0] - system_before[0] + system_after[1] - system_before[1];
        *sums.entry("QCOIN".into()).or_default() += system_after[2] - system_before[2];
    }
    let sum: Decimal = sums.values().map(|v| v.abs()).sum();
    let acked = shared.acked.lock().clone();
    let sample: Vec<Id> = if a.verify_sample == 0 || a.verify_sample >= acked.len() {
        acked.clone()
    } else {
        let step = acked.len() / a.verify_sample;
        acked
            .iter()
            .step_by(step.max(1))
            .take(a.verify_sample)
            .copied()
            .collect()
    };
    let mut missing = 0usize;
    for chunk in sample.chunks(1_000) {
        missing += c.get_transfers(chunk).await?.not_found.len();
    }
    let conserved = sum.is_zero();
    let cpu_per_k = if pids.is_empty() || n == 0 {
        None
    } else {
        Some((cpu1 - cpu0) / n as f64 * 1000.0)
    };
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let mix_report: serde_json::Map<String, serde_json::Value> = kinds
        .iter()
        .enumerate()
        .filter(|_| payments)
        .map(|(i, k)| {
            (
                k.to_string(),
                json!({"ok": per_kind[i][0].load(Ordering::Relaxed), "rejected": per_kind[i][1].load(Ordering::Relaxed)}),
            )
        })
        .collect();
    let report = json!({
        "workload": format!("{:?}", a.workload).to_lowercase(),
        // With the payment workload, `transfers` counts every command (flows and follow-ups).
        "unit": if payments { "commands" } else { "transfers" },
        "commands_per_kind": mix_report,
        "transfers": n,
        "seconds": elapsed,
        "transfers_per_second": n as f64 / elapsed,
        "latency_ms": {"p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999), "max": hist.max() as f64 / 1000.0},
        "rejected": rejected.load(Ordering::Relaxed),
        "retried_batches": retried.load(Ordering::Relaxed),
        "cluster_cpu_seconds_per_1000_transfers": cpu_per_k,
        "node_peak_rss_mib": node_rss_mib,
        "offered_per_second": a.rate,
        "params": {"workload": format!("{:?}", a.workload).to_lowercase(), "wire": format!("{:?}", a.wire).to_lowercase(), "nodes": a.spawn, "accounts": a.accounts, "concurrency": a.concurrency, "batch_size": a.batch_size, "rate": a.rate,
                   "hot_share": a.hot_share, "two_phase_share": a.two_phase_share},
        "verification": {"money_conserved": conserved, "acknowledged": acked.len(), "checked": sample.len(), "missing": missing},
    });
    if a.json {
        println!("{report}");
    } else {
        let unit = if payments { "commands" } else { "transfers" };
        println!(
            "{unit:<17} {n} in {elapsed:.2} s  →  {:.0} {unit}/s",
            n as f64 / elapsed
        );
        if let Some(r) = a.rate {
            let got = n as f64 / elapsed;
            println!(
                "offered           {r} {unit}/s (open loop){}",
                if got < 0.95 * r as f64 {
                    " — NOT kept up with"
                } else {
                    ""
                }
            );
        }
        println!("latency per call  p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  p999 {:.2} ms  max {:.2} ms", ms(0.5), ms(0.9), ms(0.99), ms(0.999), hist.max() as f64 / 1000.0);
        println!(
            "rejected {}  retried batches {}",
            rejected.load(Ordering::Relaxed),
            retried.load(Ordering::Relaxed)
        );
        if payments {
            for (k, v) in &mix_report {
                println!("  {k:<20} ok {:>9}  rejected {:>7}", v["ok"], v["rejected"]);
            }
        }
        match cpu_per_k {
            Some(v) => println!("cluster CPU       {v:.3} s per 1 000 transfers"),
            None => println!("cluster CPU       n/a (only measured with --spawn)"),
        }
        if let Some(m) = node_rss_mib {
            println!("node peak RSS     {m:.0} MiB (largest node)");
        }
        println!(
            "verification      money conserved: {}; acknowledged transfers checked: {} of {}, missing: {missing}",
            if conserved { "yes" } else { "NO" },
            sample.len(),
            acked.len()
        );
    }
    if !conserved || missing > 0 {
        bail!("verification failed: conserved={conserved}, missing={missing}");
    }
    Ok(())
}

fn command_id(c: &pb::Command) -> String {
    use pb::command::Kind as K;
    match &c.kind {
        Some(K::CreateTransfer(t)) => t.id.clone(),
        Some(K::PostPending(p)) => p.id.clone(),
        _ => String::new(),
    }
}
