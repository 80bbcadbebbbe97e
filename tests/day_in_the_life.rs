//! A day in the life of a wallet provider, end to end against a 3-node cluster: top-ups, a QR
//! order paid and refunded in two parts, a static code paid, a payment code used once and refused
//! the second time, a bill paid and refused twice, a withdrawal completed and one failed — with the
//! leader SIGKILLed in the middle — then every balance is checked, and `suanpan notify` (restarted
//! once itself) is shown to have delivered every flow event of the merchants, at least once, to a
//! notify URL that fails some requests.

mod common;

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use api::client::{cmd as ops, Client, ClientConfig};
use api::pb;
use common::*;
use ed25519_dalek::Signer;
use ledger::Id;

fn id(n: u128) -> Id {
    Id(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

async fn ok(c: &Client, cmd: pb::Command) -> String {
    let o = c.submit_one(cmd).await.expect("submit");
    assert!(o.is_ok(), "{} → {}", o.id, o.name);
    o.id
}

async fn refused(c: &Client, cmd: pb::Command, expected: &str) {
    let o = c.submit_one(cmd).await.expect("submit");
    assert_eq!(o.name, expected, "{}", o.id);
}

async fn balance(c: &Client, a: Id) -> String {
    c.get_account(a).await.unwrap().expect("account").balance
}

fn start_notify(c: &Cluster, accounts: &[Id], url: &str, cursor: &std::path::Path) -> Child {
    let mut cmd = Command::new(BIN);
    cmd.arg("notify");
    for a in accounts {
        cmd.arg("--account").arg(a.to_string());
    }
    cmd.args([
        "--url",
        url,
        "--retry-max-ms",
        "200",
        "--timeout-ms",
        "2000",
    ])
    .arg("--cursor-file")
    .arg(cursor)
    .arg("--endpoint")
    .arg(c.endpoints().join(","))
    .arg("--key")
    .arg(&c.key)
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    cmd.spawn().expect("spawn notify")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_in_the_life_with_a_leader_kill() {
    let seed = seed();
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_ready(Duration::from_secs(60)).await;
    let mut cfg = ClientConfig::new(cluster.endpoints());
    cfg.max_attempts = 40;
    let c = Client::connect(cfg, cluster.key()).unwrap();
    let sink = NotifySink::start(seed, 30).await;

    // The chart: the custodial bank account (an asset account), fee revenue, two wallets, a cinema
    // (0.6 % fee) and a power company (no fee).
    let (bank, fees, alice, bob, cinema, power) = (id(1), id(2), id(3), id(4), id(5), id(6));
    let mut bank_acct = pb::CreateAccount {
        id: bank.to_string(),
        currency: "CNY".into(),
        kind: pb::AccountKind::System as i32,
        credits_must_not_exceed_debits: true,
        ..Default::default()
    };
    ok(&c, ops::create_account_with(bank_acct.clone())).await;
    bank_acct.id = fees.to_string();
    bank_acct.credits_must_not_exceed_debits = false;
    ok(&c, ops::create_account_with(bank_acct)).await;
    for w in [alice, bob] {
        ok(&c, ops::create_account(w, "CNY", pb::AccountKind::Wallet)).await;
    }
    for (m, name, fee) in [(cinema, "WANDA CINEMA", 60), (power, "STATE GRID", 0)] {
        ok(
            &c,
            ops::create_merchant(pb::CreateMerchant {
                id: m.to_string(),
                currency: "CNY".into(),
                name: name.into(),
                city: "BEIJING".into(),
                mcc: "7832".into(),
                country: "CN".into(),
                fee_bps: fee,
                fee_account_id: (fee > 0).then(|| fees.to_string()),
            }),
        )
        .await;
    }
    // The merchants' notifier runs from the start; it is restarted once below.
    let dir = tempfile::tempdir().unwrap();
    let cursor = dir.path().join("cursor");
    let watched = [cinema, power, bank];
    let mut notifier = start_notify(&cluster, &watched, &sink.url, &cursor);

    // Morning: top-ups.
    ok(&c, ops::topup(id(10), alice, bank, "1000", "CNY")).await;
    ok(&c, ops::topup(id(11), bob, bank, "500", "CNY")).await;

    // A QR order at the cinema, paid by alice and refunded in two parts.
    let order = id(20);
    ok(
        &c,
        ops::create_order(order, cinema, "78.50", "CNY", "T-0001", None),
    )
    .await;
    let payload = c.get_orders(&[order]).await.unwrap().orders[0]
        .payload
        .clone();
    ok(&c, ops::pay_qr(id(21), alice, &payload, None)).await;
    refused(
        &c,
        ops::pay_qr(id(22), bob, &payload, None),
        "order_already_paid",
    )
    .await;
    ok(&c, ops::refund(id(23), order, "30", "CNY", "one seat")).await;

    // Midday: the leader dies. Everything after goes to its successor.
    let leader = cluster.leader().await.expect("a leader");
    cluster.kill(leader);
    eprintln!("killed leader {leader}");
    ok(&c, ops::refund(id(24), order, "48.50", "CNY", "the rest")).await;

    // The notifier is restarted (it resumes from its cursor).
    let _ = notifier.kill();
    let _ = notifier.wait();
    notifier = start_notify(&cluster, &watched, &sink.url, &cursor);

    // A static code paid by bob.
    let m = c.get_merchants(&[cinema]).await.unwrap().merchants[0].clone();
    let profile = ledger::MerchantProfile {
        account: cinema,
        name: m.name,
        city: m.city,
        mcc: m.mcc,
        country: m.country,
        fee_bps: m.fee_bps,
        fee_account: None,
        created_ns: 0,
    };
    let cny = ledger::Currency::from_code("CNY").unwrap();
    let static_code = ledger::emv::merchant_payload(&profile, cny, None).unwrap();
    ok(
        &c,
        ops::pay_qr(id(30), bob, &static_code, Some(("33", "CNY"))),
    )
    .await;

    // A payment code: bound, used once, refused the second time.
    let device = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    ok(
        &c,
        ops::bind_paycode(id(40), alice, &device.verifying_key().to_bytes(), None),
    )
    .await;
    let expires_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        + 120 * 1_000_000_000;
    let nonce = [7u8; 16];
    let token = ledger::paycode::Token {
        wallet: alice,
        nonce,
        expires_ns,
        signature: device
            .sign(&ledger::paycode::Token::signed_message(
                alice, &nonce, expires_ns,
            ))
            .to_bytes(),
    }
    .encode();
    ok(&c, ops::pay_code(id(41), cinema, &token, "25", "CNY")).await;
    refused(
        &c,
        ops::pay_code(id(42), cinema, &token, "25", "CNY"),
        "paycode_already_used",
    )
    .await;

    // A bill paid, and refused twice.
    ok(
        &c,
        ops::pay_bill(id(50), bob, power, "2026-11-0042", "120", "CNY"),
    )
    .await;
    refused(
        &c,
        ops::pay_bill(id(51), bob, power, "2026-11-0042", "120", "CNY"),
        "bill_already_paid",
    )
    .await;
    refused(
        &c,
        ops::pay_bill(id(52), alice, power, "2026-11-0042", "120", "CNY"),
        "bill_already_paid",
    )
    .await;

    // Evening: a withdrawal completed, one failed.
    let w = |wid, wallet: Id, amount: &str| pb::Withdraw {
        id: id(wid).to_string(),
        wallet_id: wallet.to_string(),
        bank_account_id: bank.to_string(),
        amount: amount.into(),
        currency: "CNY".into(),
        ..Default::default()
    };
    ok(&c, ops::withdraw(w(60, alice, "200"))).await;
    ok(&c, ops::settle_withdrawal(id(61), id(60), true)).await;
    ok(&c, ops::withdraw(w(62, bob, "100"))).await;
    ok(&c, ops::settle_withdrawal(id(63), id(62), false)).await;
    // Retries of any command return their first outcome.
    ok(&c, ops::pay_qr(id(21), alice, &payload, None)).await;
    ok(&c, ops::settle_withdrawal(id(61), id(60), true)).await;

    // Balances, to the fen. alice: 1000 − 78.50 + 30 + 48.50 − 25 − 200 = 775.00.
    // bob: 500 − 33 − 120 = 347.00 (the failed withdrawal returned). The cinema kept 33 − 0.20
    // (static) + 25 − 0.15 (code) = 57.65 (the order was refunded in full, fee included). Fees:
    // 0.20 + 0.15 = 0.35. Power: 120. The bank paid out 1500 in, 200 out.
    assert_eq!(balance(&c, alice).await, "775.00");
    assert_eq!(balance(&c, bob).await, "347.00");
    assert_eq!(balance(&c, cinema).await, "57.65");
    assert_eq!(balance(&c, fees).await, "0.35");
    assert_eq!(balance(&c, power).await, "120.00");
    assert_eq!(balance(&c, bank).await, "-1300.00");
    let o = &c.get_orders(&[order]).await.unwrap().orders[0];
    assert_eq!(o.state, pb::OrderState::Refunded as i32);
    assert_eq!(o.fee_refunded, o.fee);

    // Every flow event concerning the watched accounts, from the journal (a second reader).
    let mut expected = BTreeSet::new();
    let mut kinds = BTreeSet::new();
    let target = cluster.wait_converged(Duration::from_secs(30)).await.0;
    let mut stream = c.watch_flow_events(1, &watched).await.unwrap();
    while let Ok(Ok(Some(ev))) =
        tokio::time::timeout(Duration::from_secs(5), stream.message()).await
    {
        for f in &ev.flow_events {
            expected.insert(format!("{}-{}", ev.index, f.seq));
            kinds.insert(f.kind.clone());
        }
        if ev.index >= target {
            break;
        }
    }
    for k in [
        "order_created",
        "order_paid",
        "order_refunded",
        "paycode_consumed",
        "topup_completed",
        "withdrawal_requested",
        "withdrawal_completed",
        "withdrawal_failed",
    ] {
        assert!(kinds.contains(k), "no {k} event among {kinds:?}");
    }
    // The notifier delivers each of them at least once, despite refused requests and restarts.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let got = sink.ids();
        let missing: Vec<&String> = expected.difference(&got).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "notify did not deliver {missing:?} (refused {} requests); seed={seed}",
            sink.refused.load(std::sync::atomic::Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = notifier.kill();
    let _ = notifier.wait();
    let last: u64 = std::fs::read_to_string(&cursor)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        last >= expected
            .iter()
            .map(|e| e.split('-').next().unwrap().parse::<u64>().unwrap())
            .max()
            .unwrap()
    );
    eprintln!(
        "delivered {} events ({} requests refused and retried)",
        expected.len(),
        sink.refused.load(std::sync::atomic::Ordering::Relaxed)
    );
    // The replicas agree (the killed node stays down).
    cluster.wait_converged(Duration::from_secs(30)).await;
}
