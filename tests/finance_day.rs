//! A finance team's day against a 3-node cluster, the leader SIGKILLed in the middle: top-ups and a
//! withdrawal move money through the custodial bank account; the bank's MT940 statement for the day
//! has known breaks (a top-up it booked for another amount, interest the ledger does not know, a
//! top-up it has not settled yet); `reconcile statement` finds exactly those, posts the interest to
//! suspense once (the re-run matches it and posts nothing); the trial balance and safeguarding hold
//! with a read-only finance key throughout; a signed checkpoint taken mid-day still verifies at the
//! end on every replica (the restarted one included), and altered copies of it do not.

mod common;

use std::time::Duration;

use api::client::{cmd as ops, Client, ClientConfig};
use api::pb;
use common::*;
use ledger::Id;

fn id(n: u128) -> Id {
    Id(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

async fn ok(c: &Client, cmd: pb::Command) {
    let o = c.submit_one(cmd).await.expect("submit");
    assert!(o.is_ok(), "{} → {}", o.id, o.name);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_the_bank_through_a_leader_kill() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_ready(Duration::from_secs(60)).await;
    let mut cfg = ClientConfig::new(cluster.endpoints());
    cfg.max_attempts = 40;
    let c = Client::connect(cfg, cluster.key()).unwrap();

    let (bank, suspense, alice, bob) = (id(1), id(2), id(3), id(4));
    ok(&c, custodial_bank(bank)).await;
    ok(
        &c,
        ops::create_account(suspense, "CNY", pb::AccountKind::System),
    )
    .await;
    for w in [alice, bob] {
        ok(&c, ops::create_account(w, "CNY", pb::AccountKind::Wallet)).await;
    }
    // The day: three top-ups, one withdrawal paid out by the bank.
    let (t1, t2, t3, w1) = (id(10), id(11), id(12), id(13));
    ok(&c, ops::topup(t1, alice, bank, "500.00", "CNY")).await;
    ok(&c, ops::topup(t2, bob, bank, "300.00", "CNY")).await;

    let leader = cluster.leader().await.expect("a leader");
    cluster.kill(leader);
    eprintln!("killed leader {leader}");

    ok(&c, ops::topup(t3, bob, bank, "75.00", "CNY")).await;
    ok(
        &c,
        ops::withdraw(pb::Withdraw {
            id: w1.to_string(),
            wallet_id: alice.to_string(),
            bank_account_id: bank.to_string(),
            amount: "120.00".into(),
            currency: "CNY".into(),
            ..Default::default()
        }),
    )
    .await;
    ok(&c, ops::settle_withdrawal(id(14), w1, true)).await;
    // Ledger: the bank holds 500 + 300 + 75 − 120 = 755.00.

    // The bank's statement: t1 as booked, t2 for 299.50 (a charge), the withdrawal under its own
    // id, 4.21 of interest; t3 not settled yet. Opening 0.00, closing 683.71.
    let day = utc_today();
    let yymmdd = day.format("%y%m%d").to_string();
    let mmdd = day.format("%m%d").to_string();
    let line = |mark: &str, amount: &str, reference: &str| {
        format!(
            ":61:{yymmdd}{mmdd}{mark}{amount}NTRF{reference}//B{}\n",
            reference.len()
        )
    };
    let statement = format!(
        "{{1:F01BANKCNBJAXXX0000000000}}{{4:\n:20:STMT-{yymmdd}\n:25:CN00BANK\n:28C:1/1\n\
         :60F:C{yymmdd}CNY0,00\n{}{}{}{}:62F:C{yymmdd}CNY683,71\n-}}\n",
        line("C", "500,00", &t1.to_string()),
        line("C", "299,50", &t2.to_string()),
        line("D", "120,00", &w1.to_string()),
        line("C", "4,21", "INTEREST-NOV"),
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("statement.sta");
    std::fs::write(&file, statement).unwrap();

    // A read-only finance key for the audits.
    let finance_key = cluster.registered_key(dir.path(), "finance");

    // A checkpoint of the history so far, signed by the cluster's audit key, taken with the
    // finance key while the old leader is still down.
    let checkpoint = dir.path().join("checkpoint.json");
    let out = cluster.cli_with(
        &finance_key,
        &["audit", "checkpoint", "--out", checkpoint.to_str().unwrap()],
        true,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cp = json(&out);
    assert!(cp["index"].as_u64().unwrap() > 0, "{cp}");
    let key = json(&cluster.cli_with(&finance_key, &["audit", "checkpoint-key"], true));
    assert_eq!(key["audit_key"], cp["audit_key"], "{key} {cp}");
    // The old leader comes back and catches up; more money moves after the checkpoint.
    cluster.spawn(leader);
    ok(&c, ops::transfer(id(15), alice, bob, "10.00", "CNY")).await;

    let reconcile = |key: &std::path::Path, extra: &[&str]| {
        let mut args = vec![
            "reconcile",
            "statement",
            file.to_str().unwrap(),
            "--account",
        ];
        let b = bank.to_string();
        args.push(&b);
        args.extend_from_slice(extra);
        cluster.cli_with(key, &args, true)
    };
    let out = reconcile(&finance_key, &[]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    let s = &v["summary"];
    assert_eq!(s["statement_lines"], 4, "{v}");
    assert_eq!(s["matched"], 2, "{v}"); // t1, and the withdrawal by its hold id
    assert_eq!(s["amount_mismatch"], 1, "{v}");
    assert_eq!(s["only_in_statement"], 1, "{v}");
    assert_eq!(s["only_in_ledger"], 1, "{v}");
    let breaks = v["breaks"].as_array().unwrap();
    let find = |bucket: &str| {
        breaks
            .iter()
            .find(|b| b["bucket"] == bucket)
            .unwrap_or_else(|| panic!("no {bucket} in {v}"))
    };
    assert_eq!(find("amount_mismatch")["ledger_amount"], "300.00");
    assert_eq!(find("only_in_statement")["reference"], "INTEREST-NOV");
    assert_eq!(find("only_in_ledger")["transfer_id"], t3.to_string());
    assert_eq!(v["balances"]["opening"]["ok"], true, "{v}");
    assert_eq!(v["balances"]["closing"]["ledger"], "755.00", "{v}");
    assert_eq!(v["balances"]["closing"]["ok"], false, "{v}");

    // The finance key may not post; the admin key posts the interest to suspense, once.
    let out = reconcile(
        &finance_key,
        &[
            "--post-suspense",
            "--suspense-account",
            &suspense.to_string(),
        ],
    );
    assert!(!out.status.success());
    let v = json(&reconcile(
        &cluster.key,
        &[
            "--post-suspense",
            "--suspense-account",
            &suspense.to_string(),
        ],
    ));
    assert_eq!(v["suspense"]["posted"], 1, "{v}");
    let v = json(&reconcile(
        &cluster.key,
        &[
            "--post-suspense",
            "--suspense-account",
            &suspense.to_string(),
        ],
    ));
    assert_eq!(v["summary"]["only_in_statement"], 0, "{v}");
    assert_eq!(v["summary"]["matched"], 3, "{v}");
    assert!(v["suspense"].is_null(), "{v}");
    let bank_now = c.get_account(bank).await.unwrap().unwrap();
    assert_eq!(bank_now.normal_balance, "759.21");

    // The books balance, and customer money is covered.
    let tb = json(&cluster.cli_with(
        &finance_key,
        &["audit", "trial-balance", "--format", "json"],
        true,
    ));
    assert_eq!(tb["ok"], true, "{tb}");
    let sg = json(&cluster.cli_with(
        &finance_key,
        &["audit", "safeguarding", "--bank-account", &bank.to_string()],
        true,
    ));
    assert_eq!(sg["wallets"], "755.00", "{sg}");
    assert_eq!(sg["bank_balance"], "759.21", "{sg}");
    assert_eq!(sg["shortfall"], false, "{sg}");
    let (_, digest) = cluster.wait_converged(Duration::from_secs(30)).await;
    eprintln!("converged at digest {digest}");

    // Every replica, the restarted one included, holds the same chain, and every retained link
    // recomputes; the checkpoint taken before the later transfers still verifies.
    let out = cluster.cli_with(&finance_key, &["audit", "verify-chain"], true);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["replicas"].as_array().unwrap().len(), 3, "{v}");
    assert!(
        v["to"].as_u64().unwrap() > cp["index"].as_u64().unwrap(),
        "{v}"
    );
    assert_eq!(v["indexes_checked"], v["to"], "{v}");
    assert_eq!(v["links_recomputed"], v["to"], "{v}");
    let verify = |file: &std::path::Path| {
        cluster.cli_with(
            &finance_key,
            &["audit", "verify-checkpoint", file.to_str().unwrap()],
            true,
        )
    };
    let out = verify(&checkpoint);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(v["signature_ok"], true, "{v}");
    assert_eq!(v["from"], cp["index"], "{v}");
    // A checkpoint whose digest was altered, or whose index was moved, does not verify.
    let mut forged = cp.clone();
    let d = cp["digest"].as_str().unwrap();
    let flipped = if d.starts_with('0') { "1" } else { "0" };
    forged["digest"] = format!("{flipped}{}", &d[1..]).into();
    let forged_file = dir.path().join("forged.json");
    std::fs::write(&forged_file, forged.to_string()).unwrap();
    let v = json(&verify(&forged_file));
    assert_eq!(v["ok"], false, "{v}");
    assert_eq!(v["signature_ok"], false, "{v}");
    let mut moved = cp.clone();
    moved["index"] = (cp["index"].as_u64().unwrap() - 1).into();
    std::fs::write(&forged_file, moved.to_string()).unwrap();
    let out = verify(&forged_file);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A replica whose stored chain was rewritten (one digest changed on disk while it was down) is
/// named at exactly that index, and a checkpoint taken before no longer verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_chain_names_a_rewritten_replica() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_ready(Duration::from_secs(60)).await;
    let mut cfg = ClientConfig::new(cluster.endpoints());
    cfg.max_attempts = 40;
    let c = Client::connect(cfg, cluster.key()).unwrap();
    let (a, b) = (id(1), id(2));
    ok(&c, ops::create_account(a, "CNY", pb::AccountKind::System)).await;
    ok(&c, ops::create_account(b, "CNY", pb::AccountKind::Wallet)).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("checkpoint.json");
    let out = cluster.cli_with(
        &cluster.key,
        &["audit", "checkpoint", "--out", checkpoint.to_str().unwrap()],
        true,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cp_index = json(&out)["index"].as_u64().unwrap();
    for n in 0..5 {
        ok(&c, ops::transfer(id(10 + n), a, b, "1.00", "CNY")).await;
    }
    let (applied, _) = cluster.wait_converged(Duration::from_secs(30)).await;
    assert!(applied > cp_index);

    // Node 3, stopped, gets one stored digest rewritten: the checkpoint's own index.
    cluster.stop(3);
    {
        let db = ledger::open_db(&cluster.node(3).data_dir.join("db"), &[]).unwrap();
        let mut store = ledger::RocksStore::new(db).unwrap();
        let mut key = vec![b'd'];
        key.extend_from_slice(&cp_index.to_be_bytes());
        let mut v = ledger::Store::get(&store, ledger::Cf::Chain, &key)
            .unwrap()
            .expect("a recorded digest");
        v[5] ^= 0xFF;
        let mut wb = ledger::WriteBatch::default();
        wb.put(ledger::Cf::Chain, key, v);
        ledger::Store::write(&mut store, wb).unwrap();
    }
    cluster.spawn(3);
    cluster.wait_converged(Duration::from_secs(30)).await;

    let out = cluster.cli_with(&cluster.key, &["audit", "verify-chain"], true);
    let v = json(&out);
    assert_eq!(out.status.code(), Some(3), "{v}");
    assert_eq!(v["first_break"]["index"], cp_index, "{v}");
    assert_eq!(v["first_break"]["reason"], "replicas differ", "{v}");
    let out = cluster.cli_with(
        &cluster.key,
        &[
            "audit",
            "verify-chain",
            "--from",
            &(cp_index + 1).to_string(),
        ],
        true,
    );
    let v = json(&out);
    // From the next index on, node 3 recomputes its link from the rewritten digest: it breaks.
    assert_eq!(out.status.code(), Some(3), "{v}");
    assert_eq!(v["first_break"]["index"], cp_index + 1, "{v}");
    assert!(
        v["first_break"]["reason"]
            .as_str()
            .unwrap()
            .starts_with("node 3"),
        "{v}"
    );
    let out = cluster.cli_with(
        &cluster.key,
        &["audit", "verify-checkpoint", checkpoint.to_str().unwrap()],
        true,
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
