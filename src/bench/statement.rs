//! `suanpan bench --workload statement --lines N`: the reconciliation benchmark. It makes a bank
//! day of N top-ups through the custodial bank account (N postings in the ledger), writes the
//! bank's MT940 statement for it (one `:61:` line per top-up, opening 0, closing the sum), then runs
//! `suanpan reconcile statement` on it as a child process and reports its wall time and peak RSS.
//! The run fails unless every line matched and both balances agree.

use std::io::Write;

use futures::StreamExt;

use super::*;

/// Top-ups per `Submit` (the server takes at most 8 192 commands).
const TOPUPS_PER_BATCH: usize = 8_000;
/// Submits in flight while loading the postings.
const BATCHES_IN_FLIGHT: usize = 4;

pub(super) async fn run(
    a: &BenchArgs,
    c: &Client,
    endpoints: &[String],
    key_path: &std::path::Path,
) -> Result<()> {
    if a.lines == 0 {
        bail!("--lines must be at least 1");
    }
    let retried = AtomicU64::new(0);
    let bank = client::new_id();
    let mut setup = vec![ops::create_account_with(pb::CreateAccount {
        id: bank.to_string(),
        currency: "CNY".into(),
        kind: pb::AccountKind::System as i32,
        credits_must_not_exceed_debits: true,
        ..Default::default()
    })];
    let wallets: Vec<Id> = (0..a.accounts.clamp(1, 10_000))
        .map(|_| client::new_id())
        .collect();
    for w in &wallets {
        setup.push(ops::create_account(*w, "CNY", pb::AccountKind::Wallet));
    }
    for chunk in setup.chunks(4_000) {
        let r = submit_retrying(c, &Call::V1(chunk.to_vec()), &retried).await?;
        if let Some(bad) = r.iter().find(|o| !o.is_ok()) {
            bail!("account setup failed: {bad:?}");
        }
    }

    // The day's top-ups: amounts 1.00 ..= 999.99 from the seed, each its own id (the statement's
    // reference).
    let mut rng = Rng::new(a.seed);
    let topups: Vec<(Id, u64)> = (0..a.lines)
        .map(|_| (client::new_id(), 100 + rng.next() % 99_900))
        .collect();
    let started = Instant::now();
    let bar = indicatif::ProgressBar::new(a.lines);
    let mut loads = futures::stream::iter(topups.chunks(TOPUPS_PER_BATCH).enumerate().map(
        |(i, chunk)| {
            let cmds: Vec<pb::Command> = chunk
                .iter()
                .enumerate()
                .map(|(j, (id, minor))| {
                    let w = wallets[(i * TOPUPS_PER_BATCH + j) % wallets.len()];
                    ops::topup(*id, w, bank, &minor_to_str(*minor), "CNY")
                })
                .collect();
            let retried = &retried;
            async move { submit_retrying(c, &Call::V1(cmds), retried).await }
        },
    ))
    .buffer_unordered(BATCHES_IN_FLIGHT);
    while let Some(r) = loads.next().await {
        let r = r?;
        if let Some(bad) = r.iter().find(|o| !o.is_ok()) {
            bail!("top-up failed: {bad:?}");
        }
        bar.inc(r.len() as u64);
    }
    drop(loads);
    bar.finish_and_clear();
    let load_s = started.elapsed().as_secs_f64();

    // The bank's statement for the day.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("statement.sta");
    let today = chrono::Utc::now().date_naive();
    let (yymmdd, mmdd) = (
        today.format("%y%m%d").to_string(),
        today.format("%m%d").to_string(),
    );
    let total: u64 = topups.iter().map(|(_, m)| m).sum();
    {
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file)?);
        write!(
            w,
            "{{1:F01BANKCNBJAXXX0000000000}}{{4:\n:20:BENCH-{yymmdd}\n:25:CN00BANK\n:28C:1/1\n\
             :60F:C{yymmdd}CNY0,00\n"
        )?;
        for (id, minor) in &topups {
            let amount = minor_to_str(*minor).replace('.', ",");
            let reference = id.to_string();
            writeln!(
                w,
                ":61:{yymmdd}{mmdd}C{amount}NTRF{reference}//B{}",
                reference.len()
            )?;
        }
        write!(
            w,
            ":62F:C{yymmdd}CNY{}\n-}}\n",
            minor_to_str(total).replace('.', ",")
        )?;
        w.flush()?;
    }
    let bytes = std::fs::metadata(&file)?.len();
    drop(topups);

    // Reconcile it in a process of its own, so its peak RSS is its own.
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let mut cmd = Command::new(exe);
    if let (Some(ca), None) = (&a.ca, a.spawn) {
        cmd.arg("--ca").arg(ca);
    }
    let out = cmd
        .args(["reconcile", "statement"])
        .arg(&file)
        .args([
            "--account",
            &bank.to_string(),
            "--format",
            "mt940",
            "--json",
        ])
        .args(["--endpoint", &endpoints.join(",")])
        .arg("--key")
        .arg(key_path)
        .stderr(Stdio::inherit())
        .output()
        .context("running reconcile")?;
    let reconcile_s = started.elapsed().as_secs_f64();
    let peak_rss_mib = children_peak_rss_kib() as f64 / 1024.0;
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout)
        .with_context(|| format!("reconcile printed {}", String::from_utf8_lossy(&out.stdout)))?;
    let matched = doc["summary"]["matched"].as_u64().unwrap_or(0);
    let ok = out.status.code() == Some(0) && matched == a.lines;
    let report = json!({
        "workload": "statement", "lines": a.lines, "statement_bytes": bytes,
        "load_s": load_s, "reconcile_s": reconcile_s, "peak_rss_mib": peak_rss_mib,
        "matched": matched, "reconciled": doc["reconciled"], "retried_batches": retried.load(Ordering::Relaxed),
    });
    if a.json {
        println!("{report}");
    } else {
        println!(
            "statement         {} lines, {:.1} MiB MT940 (postings loaded in {load_s:.1} s)",
            a.lines,
            bytes as f64 / (1 << 20) as f64
        );
        println!("reconcile         {reconcile_s:.1} s, peak RSS {peak_rss_mib:.0} MiB");
        println!(
            "outcome           matched {matched} of {}; exit {:?}",
            a.lines,
            out.status.code()
        );
    }
    if !ok {
        bail!("the statement did not reconcile: {}", doc["summary"]);
    }
    Ok(())
}

/// Minor units (fen) as a CNY amount.
fn minor_to_str(minor: u64) -> String {
    format!("{}.{:02}", minor / 100, minor % 100)
}

/// The largest peak resident set of the waited-for children, in KiB.
fn children_peak_rss_kib() -> i64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) } != 0 {
        return 0;
    }
    ru.ru_maxrss
}
