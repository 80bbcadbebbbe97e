//! The bank workload of the fault tests: wallets funded from a bank account, concurrent clients
//! moving money among them under fresh ids and retrying unknown outcomes under the same ids, and
//! the checks that nothing was lost or applied twice.
#![allow(dead_code)]

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api::client::{cmd as ops, Client, ClientError, CommandOutcome};
use api::pb;
use api::wire::TransferRecord;
use ledger::Id;
use rust_decimal::Decimal;

use super::Cluster;

pub fn scale() -> usize {
    if std::env::var("SUANPAN_SOAK").is_ok() {
        10
    } else {
        1
    }
}

pub const READY: Duration = Duration::from_secs(60);

use ledger::rng::SplitMix64 as Rng;

/// Submits until the outcome is known, with the same ids every time (bounded by `deadline`).
pub async fn submit_until_known(
    c: &Client,
    cmds: Vec<pb::Command>,
    deadline: Instant,
) -> (Vec<CommandOutcome>, u32) {
    until_known(deadline, || c.submit_unbatched(cmds.clone())).await
}

/// [`submit_until_known`] in the binary form (`SubmitTransfers`).
pub async fn submit_records_until_known(
    c: &Client,
    records: &[TransferRecord],
    deadline: Instant,
) -> (Vec<CommandOutcome>, u32) {
    until_known(deadline, || c.submit_transfers_unbatched(records)).await
}

/// Repeats `call` (which must resend the same ids) until its outcome is known.
async fn until_known<F, Fut>(deadline: Instant, mut call: F) -> (Vec<CommandOutcome>, u32)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Vec<CommandOutcome>, ClientError>>,
{
    let mut retries = 0;
    loop {
        match call().await {
            Ok(r) => return (r, retries),
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "gave up with outcome still unknown: {e}"
                );
                assert!(
                    matches!(
                        e,
                        ClientError::OutcomeUnknown { .. } | ClientError::Unavailable { .. }
                    ) || e.code() == Some(tonic::Code::Unavailable)
                        || e.code() == Some(tonic::Code::DeadlineExceeded),
                    "unexpected error: {e}"
                );
                retries += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

pub async fn create_accounts(c: &Client, bank: Id, wallets: &[Id]) {
    let mut cmds = vec![ops::create_account(bank, "CNY", pb::AccountKind::System)];
    for w in wallets {
        cmds.push(ops::create_account(*w, "CNY", pb::AccountKind::Wallet));
    }
    let (r, _) = submit_until_known(c, cmds, Instant::now() + READY).await;
    assert!(r.iter().all(|o| o.is_ok()), "{r:?}");
    let fund: Vec<pb::Command> = wallets
        .iter()
        .map(|w| ops::transfer(api::client::new_id(), bank, *w, "1000000.00", "CNY"))
        .collect();
    let (r, _) = submit_until_known(c, fund, Instant::now() + READY).await;
    assert!(r.iter().all(|o| o.is_ok()), "{r:?}");
}

/// Per-account expected net balances from acknowledged transfers.
pub type Expected = HashMap<Id, Decimal>;

/// Runs `workers` concurrent clients doing `batches` batches of `per_batch` transfers among `wallets`;
/// returns every acknowledged transfer (id → (command, outcome)) and the retry count.
pub async fn load(
    progress: Arc<std::sync::atomic::AtomicU64>,
    c: Client,
    wallets: Arc<Vec<Id>>,
    seed: u64,
    workers: usize,
    batches: usize,
    per_batch: usize,
) -> (HashMap<String, (pb::Command, CommandOutcome)>, u32) {
    let never = Arc::new(std::sync::atomic::AtomicBool::new(false));
    load_wires(
        Wires::Submit,
        never,
        progress,
        c,
        wallets,
        seed,
        workers,
        batches,
        per_batch,
    )
    .await
}

/// Waits until the load counted by `progress` has done `n` more batches (at most 90 s: a load that
/// stalls that long fails the test).
pub async fn wait_batches(progress: &std::sync::atomic::AtomicU64, n: u64) {
    let count = || progress.load(std::sync::atomic::Ordering::Relaxed);
    let until = count() + n;
    let deadline = Instant::now() + Duration::from_secs(90);
    while count() < until {
        assert!(Instant::now() < deadline, "the load stalled");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The binary record of a single-leg CNY transfer command.
pub fn record_of(cmd: &pb::Command) -> TransferRecord {
    let Some(pb::command::Kind::CreateTransfer(t)) = &cmd.kind else {
        panic!("not a transfer: {cmd:?}");
    };
    let [leg] = t.legs.as_slice() else {
        panic!("not a single-leg transfer: {t:?}");
    };
    assert_eq!(leg.currency, "CNY");
    let cents = Decimal::from_str(&leg.amount).unwrap() * Decimal::from(100);
    assert!(cents.fract().is_zero(), "{}", leg.amount);
    TransferRecord {
        id: t.id.parse().unwrap(),
        debit: leg.debit_account_id.parse().unwrap(),
        credit: leg.credit_account_id.parse().unwrap(),
        amount_minor: rust_decimal::prelude::ToPrimitive::to_u128(&cents).unwrap(),
        currency_numeric: ledger::Currency::from_code("CNY").unwrap().numeric(),
        pending_timeout_seconds: None,
    }
}

/// Which request form the load's workers use.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wires {
    /// Every worker sends `Submit` commands.
    Submit,
    /// The odd-numbered workers send their transfers as binary records (`SubmitTransfers`), the
    /// others as `Submit` commands. Every acknowledged transfer is recorded as the `Submit`
    /// command it equals.
    Both,
}

/// [`load`] in the given request forms that also stops once `stop` is set (each worker finishes
/// the batch in hand).
#[allow(clippy::too_many_arguments)]
pub async fn load_wires(
    wires: Wires,
    stop: Arc<std::sync::atomic::AtomicBool>,
    progress: Arc<std::sync::atomic::AtomicU64>,
    c: Client,
    wallets: Arc<Vec<Id>>,
    seed: u64,
    workers: usize,
    batches: usize,
    per_batch: usize,
) -> (HashMap<String, (pb::Command, CommandOutcome)>, u32) {
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (c, wallets, progress, stop) =
            (c.clone(), wallets.clone(), progress.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng(seed ^ (w as u64 + 1) * 0x1234_5678);
            let mut acked = HashMap::new();
            let mut retries = 0;
            for _ in 0..batches {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let cmds: Vec<pb::Command> = (0..per_batch)
                    .map(|_| {
                        let a = wallets[(rng.next() % wallets.len() as u64) as usize];
                        let mut b = wallets[(rng.next() % wallets.len() as u64) as usize];
                        if a == b {
                            b = wallets[(wallets.iter().position(|x| *x == a).unwrap() + 1)
                                % wallets.len()];
                        }
                        let amount = format!("{}.{:02}", 1 + rng.next() % 50, rng.next() % 100);
                        ops::transfer(api::client::new_id(), a, b, &amount, "CNY")
                    })
                    .collect();
                let deadline = Instant::now() + Duration::from_secs(90);
                let (r, n) = if wires == Wires::Both && w % 2 == 1 {
                    let records: Vec<TransferRecord> = cmds.iter().map(record_of).collect();
                    submit_records_until_known(&c, &records, deadline).await
                } else {
                    submit_until_known(&c, cmds.clone(), deadline).await
                };
                retries += n;
                progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                for (cmd, o) in cmds.into_iter().zip(r) {
                    assert!(o.is_ok(), "transfer failed: {o:?}");
                    acked.insert(o.id.clone(), (cmd, o));
                }
            }
            (acked, retries)
        }));
    }
    let mut all = HashMap::new();
    let mut retries = 0;
    for t in tasks {
        let (a, r) = t.await.unwrap();
        retries += r;
        all.extend(a);
    }
    (all, retries)
}

pub fn expected(
    bank: Id,
    wallets: &[Id],
    acked: &HashMap<String, (pb::Command, CommandOutcome)>,
) -> Expected {
    let mut e: Expected = wallets
        .iter()
        .map(|w| (*w, Decimal::from_str("1000000.00").unwrap()))
        .collect();
    e.insert(
        bank,
        -Decimal::from_str("1000000.00").unwrap() * Decimal::from(wallets.len() as u64),
    );
    for (cmd, _) in acked.values() {
        if let Some(pb::command::Kind::CreateTransfer(t)) = &cmd.kind {
            for l in &t.legs {
                let amt = Decimal::from_str(&l.amount).unwrap();
                *e.get_mut(&l.debit_account_id.parse().unwrap()).unwrap() -= amt;
                *e.get_mut(&l.credit_account_id.parse().unwrap()).unwrap() += amt;
            }
        }
    }
    e
}

/// Every running replica holds every acknowledged transfer, balances equal the acknowledged history
/// (so nothing applied twice or lost), money sums to zero, and digests match at equal applied index.
pub async fn check_replicas(
    c: &Cluster,
    bank: Id,
    wallets: &[Id],
    acked: &HashMap<String, (pb::Command, CommandOutcome)>,
) {
    let (index, digest) = c.wait_converged(Duration::from_secs(60)).await;
    eprintln!("converged at index {index}, digest {digest}");
    let want = expected(bank, wallets, acked);
    let ids: Vec<Id> = acked.keys().map(|s| s.parse().unwrap()).collect();
    for n in &c.nodes {
        if n.child.is_none() {
            continue;
        }
        let local = c.local_client(n.id);
        for chunk in ids.chunks(500) {
            let r = local.get_transfers(chunk).await.unwrap();
            assert!(
                r.not_found.is_empty(),
                "node {} lacks acknowledged transfers {:?}",
                n.id,
                &r.not_found[..r.not_found.len().min(5)]
            );
            assert_eq!(r.transfers.len(), chunk.len());
        }
        let mut all = vec![bank];
        all.extend_from_slice(wallets);
        let r = local.get_accounts(&all).await.unwrap();
        let mut sum = Decimal::ZERO;
        for a in &r.accounts {
            let bal = Decimal::from_str(&a.balance).unwrap();
            sum += bal;
            assert_eq!(
                bal,
                want[&a.id.parse::<Id>().unwrap()],
                "node {} account {}",
                n.id,
                a.id
            );
        }
        assert_eq!(sum, Decimal::ZERO, "node {}: money not conserved", n.id);
    }
}

/// Retrying every acknowledged command returns its original outcome (same code and timestamp).
pub async fn check_retries(c: &Client, acked: &HashMap<String, (pb::Command, CommandOutcome)>) {
    check_retries_in(c, acked, false).await
}

/// [`check_retries`] with every transfer resent as a binary record (`SubmitTransfers`): the same
/// transfer in the other form replays its first outcome too.
pub async fn check_retries_binary(
    c: &Client,
    acked: &HashMap<String, (pb::Command, CommandOutcome)>,
) {
    check_retries_in(c, acked, true).await
}

async fn check_retries_in(
    c: &Client,
    acked: &HashMap<String, (pb::Command, CommandOutcome)>,
    binary: bool,
) {
    let all: Vec<&(pb::Command, CommandOutcome)> = acked.values().collect();
    for chunk in all.chunks(1000) {
        let cmds: Vec<pb::Command> = chunk.iter().map(|(c, _)| c.clone()).collect();
        let deadline = Instant::now() + READY;
        let (r, _) = if binary {
            let records: Vec<TransferRecord> = cmds.iter().map(record_of).collect();
            submit_records_until_known(c, &records, deadline).await
        } else {
            submit_until_known(c, cmds, deadline).await
        };
        for ((_, first), again) in chunk.iter().zip(r) {
            assert_eq!(
                (first.code_raw, first.timestamp_ns),
                (again.code_raw, again.timestamp_ns),
                "retry of {}",
                first.id
            );
        }
    }
}
