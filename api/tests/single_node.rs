//! One in-process node on 127.0.0.1 (port chosen at run time): submit, reads, auth, validation,
//! batching, watch.

mod common;

use std::time::Duration;

use api::auth::{now_ms, random_nonce, SignedHeaders};
use api::client::{cmd, new_id, Client};
use api::pb;
use common::*;
use futures::StreamExt;
use ledger::{ClientRole, Id, ResultCode};
use prost::Message;
use tonic::Code;

struct Fixture {
    _dir: tempfile::TempDir,
    node: api::node::RunningNode,
    admin: Client,
    payments: Client,
    payments_key: ed25519_dalek::SigningKey,
    finance: Client,
    addr: String,
}

async fn fixture(tweak: impl FnOnce(&mut api::node::NodeConfig)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (node, admin) = single_node(dir.path(), tweak).await;
    let addr = node.local_addr.to_string();
    let payments_key = new_key();
    let finance_key = new_key();
    let r = admin
        .register_client(
            &payments_key.verifying_key(),
            ClientRole::Payments,
            "payments",
        )
        .await
        .unwrap();
    assert!(r.is_ok(), "{r:?}");
    let r = admin
        .register_client(
            &finance_key.verifying_key(),
            ClientRole::FinanceRead,
            "finance",
        )
        .await
        .unwrap();
    assert!(r.is_ok(), "{r:?}");
    let payments = Client::connect(client_config(&[addr.clone()]), payments_key.clone()).unwrap();
    let finance = Client::connect(client_config(&[addr.clone()]), finance_key).unwrap();
    Fixture {
        _dir: dir,
        node,
        admin,
        payments,
        payments_key,
        finance,
        addr,
    }
}

/// An existing account's balance.
async fn balance_of(c: &Client, id: Id) -> String {
    c.get_account(id).await.unwrap().expect("account").balance
}

async fn two_accounts(c: &Client) -> (Id, Id) {
    let (a, b) = (new_id(), new_id());
    let mut sys = pb::CreateAccount {
        id: a.to_string(),
        currency: "CNY".into(),
        kind: pb::AccountKind::System as i32,
        ..Default::default()
    };
    sys.reference = "bank".into();
    let r = c
        .submit_unbatched(vec![
            cmd::create_account_with(sys),
            cmd::create_account(b, "CNY", pb::AccountKind::Wallet),
        ])
        .await
        .unwrap();
    assert!(r.iter().all(|x| x.is_ok()), "{r:?}");
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn submit_and_read_back() {
    let f = fixture(|_| {}).await;
    let (bank, wallet) = two_accounts(&f.payments).await;
    let t1 = new_id();
    let r = f
        .payments
        .submit_unbatched(vec![cmd::transfer(t1, bank, wallet, "12.34", "CNY")])
        .await
        .unwrap();
    assert_eq!(r.len(), 1);
    assert!(r[0].is_ok(), "{r:?}");
    assert_eq!(r[0].id, t1.to_string());
    assert!(r[0].timestamp_ns > 0 && r[0].applied_index > 0);

    // Business failures are per-command results, not errors.
    let t2 = new_id();
    let r = f
        .payments
        .submit_unbatched(vec![
            cmd::transfer(t2, wallet, bank, "100", "CNY"),
            cmd::transfer(new_id(), bank, wallet, "0", "CNY"),
        ])
        .await
        .unwrap();
    assert_eq!(r[0].code, Some(ResultCode::InsufficientFunds));
    assert_eq!(r[0].name, "insufficient_funds");
    assert_eq!(r[0].code_raw, ResultCode::InsufficientFunds as i32);
    assert_eq!(r[1].code, Some(ResultCode::AmountZero));

    // Idempotent retry: same id, same body → the first outcome unchanged.
    let again = f
        .payments
        .submit_unbatched(vec![cmd::transfer(t1, bank, wallet, "12.34", "CNY")])
        .await
        .unwrap();
    assert!(again[0].is_ok());

    let acct = f
        .finance
        .get_account(wallet)
        .await
        .unwrap()
        .expect("wallet exists");
    assert_eq!(acct.balance, "12.34");
    assert_eq!(acct.currency, "CNY");
    assert_eq!(acct.kind, pb::AccountKind::Wallet as i32);
    let missing = new_id();
    let got = f.finance.get_accounts(&[wallet, missing]).await.unwrap();
    assert_eq!(got.accounts.len(), 1);
    assert_eq!(got.not_found, vec![missing.to_string()]);

    let tr = f.finance.get_transfers(&[t1]).await.unwrap();
    assert_eq!(tr.transfers.len(), 1);
    assert_eq!(tr.transfers[0].legs[0].amount, "12.34");
    assert_eq!(tr.transfers[0].legs[0].currency, "CNY");

    let h = f.finance.list_account_history(wallet, 0, 10).await.unwrap();
    assert_eq!(h.postings.len(), 1);
    assert_eq!(h.postings[0].amount, "12.34");
    assert!(!h.has_more);
    let page = f
        .finance
        .list_account_history(wallet, h.next_after_seq, 10)
        .await
        .unwrap();
    assert!(page.postings.is_empty());

    let ts = h.postings[0].timestamp_ns;
    assert_eq!(
        f.finance.get_balance_at(wallet, ts).await.unwrap().balance,
        "12.34"
    );
    assert_eq!(
        f.finance
            .get_balance_at(wallet, ts - 1)
            .await
            .unwrap()
            .balance,
        "0.00"
    );

    let status = f.admin.cluster_status().await.unwrap();
    assert_eq!(status.leader_id, 1);
    assert_eq!(status.members.len(), 1);
    assert!(status.members[0].reachable);
    assert_eq!(
        status.members[0].info.as_ref().unwrap().role,
        pb::NodeRole::Leader as i32
    );
    f.node.shutdown().await.unwrap();
}

/// `SubmitTransfers` (binary records) and `Submit` (strings) are two forms of one command: a
/// transfer sent one way and retried the other replays its first outcome, a changed body is an
/// idempotency conflict either way, results and errors arrive typed, and a malformed record
/// changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn binary_and_string_transfers_are_one_command() {
    use api::wire::TransferRecord;
    let f = fixture(|_| {}).await;
    let (bank, wallet) = two_accounts(&f.payments).await;
    let cny = ledger::Currency::from_code("CNY").unwrap().numeric();
    let rec = |id: Id, debit: Id, credit: Id, amount_minor: u128| TransferRecord {
        id,
        debit,
        credit,
        amount_minor,
        currency_numeric: cny,
        pending_timeout_seconds: None,
    };
    let (t1, t2, t3, t4) = (new_id(), new_id(), new_id(), new_id());

    // Binary first, then the same transfer as strings: the first outcome, unchanged.
    let first = f
        .payments
        .submit_transfers(&[
            rec(t1, bank, wallet, 1234),
            rec(t4, wallet, bank, 10_000_000),
        ])
        .await
        .unwrap();
    assert!(first[0].is_ok(), "{first:?}");
    assert_eq!(first[0].id, t1.to_string());
    assert!(first[0].timestamp_ns > 0 && first[0].applied_index > 0);
    assert_eq!(first[1].code, Some(ResultCode::InsufficientFunds));
    assert_eq!(first[1].name, "insufficient_funds");
    let again = f
        .payments
        .submit_unbatched(vec![cmd::transfer(t1, bank, wallet, "12.34", "CNY")])
        .await
        .unwrap();
    assert!(again[0].is_ok(), "{again:?}");
    assert_eq!(again[0].timestamp_ns, first[0].timestamp_ns);

    // Strings first ("5.0" — not the canonical form), then binary: replayed too.
    let first = f
        .payments
        .submit_unbatched(vec![
            cmd::transfer(t2, bank, wallet, "5.0", "CNY"),
            cmd::transfer(t3, bank, wallet, "1.00", "CNY"),
        ])
        .await
        .unwrap();
    assert!(first.iter().all(|o| o.is_ok()), "{first:?}");
    let again = f
        .payments
        .submit_transfers(&[rec(t2, bank, wallet, 500), rec(t3, bank, wallet, 200)])
        .await
        .unwrap();
    assert!(again[0].is_ok(), "{again:?}");
    assert_eq!(again[0].timestamp_ns, first[0].timestamp_ns);
    // A changed amount under a used id conflicts, whichever form it comes in.
    assert_eq!(again[1].code, Some(ResultCode::IdempotencyConflict));

    // A malformed record rejects the whole request: nothing applied.
    let t5 = new_id();
    let mut bad = rec(t5, bank, wallet, 100);
    bad.currency_numeric = 1;
    let e = f
        .payments
        .submit_transfers(&[rec(new_id(), bank, wallet, 100), bad])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidArgument), "{e:?}");
    assert!(e.to_string().contains("transfers[1].currency"), "{e}");
    assert!(f
        .finance
        .get_transfers(&[t5])
        .await
        .unwrap()
        .transfers
        .is_empty());

    // Read-only clients may not submit in either form.
    let e = f
        .finance
        .submit_transfers(&[rec(new_id(), bank, wallet, 100)])
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(Code::PermissionDenied), "{e:?}");

    assert_eq!(balance_of(&f.finance, wallet).await, "18.34");
    let tr = f.finance.get_transfers(&[t1]).await.unwrap();
    assert_eq!(tr.transfers[0].legs[0].amount, "12.34");
    f.node.shutdown().await.unwrap();
}

/// Concurrent `submit_transfers` calls are coalesced into one `SubmitTransfers` request, each
/// caller getting its own results in its own order; a caller's malformed record fails that
/// caller alone and applies nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_binary_calls_are_coalesced_and_a_bad_one_fails_alone() {
    use api::wire::TransferRecord;
    let f = fixture(|_| {}).await;
    let (bank, wallet) = two_accounts(&f.payments).await;
    // A long linger: every call below reaches the batcher within it.
    let mut cfg = client_config(std::slice::from_ref(&f.addr));
    cfg.batch_linger_us = 200_000;
    let c = Client::connect(cfg, f.payments_key.clone()).unwrap();
    let cny = ledger::Currency::from_code("CNY").unwrap().numeric();
    let rec = |amount_minor: u128| TransferRecord {
        id: new_id(),
        debit: bank,
        credit: wallet,
        amount_minor,
        currency_numeric: cny,
        pending_timeout_seconds: None,
    };
    let check_ok = |call: &[TransferRecord], out: &[api::client::CommandOutcome]| {
        assert_eq!(out.len(), call.len());
        for (r, o) in call.iter().zip(out) {
            assert!(o.is_ok(), "{o:?}");
            assert_eq!(o.id, r.id.to_string());
        }
    };

    // 20 callers of 1 to 3 records: one request, hence one log entry.
    let calls: Vec<Vec<TransferRecord>> = (0..20u128)
        .map(|i| (0..1 + i % 3).map(|k| rec(100 + 10 * i + k)).collect())
        .collect();
    let outs = futures::future::join_all(calls.iter().map(|r| c.submit_transfers(r))).await;
    let mut indexes = std::collections::BTreeSet::new();
    for (call, out) in calls.iter().zip(outs) {
        let out = out.unwrap();
        check_ok(call, &out);
        indexes.extend(out.iter().map(|o| o.applied_index));
    }
    assert_eq!(indexes.len(), 1, "coalesced into one entry: {indexes:?}");

    // One caller's record names no currency: that caller gets INVALID_ARGUMENT, the others
    // their results.
    let mut calls: Vec<Vec<TransferRecord>> = (0..10).map(|_| vec![rec(7), rec(3)]).collect();
    calls[4][1].currency_numeric = 1;
    let outs = futures::future::join_all(calls.iter().map(|r| c.submit_transfers(r))).await;
    for (i, (call, out)) in calls.iter().zip(outs).enumerate() {
        if i == 4 {
            let e = out.unwrap_err();
            assert_eq!(e.code(), Some(Code::InvalidArgument), "{e:?}");
            assert!(e.to_string().contains("transfers[1].currency"), "{e}");
            let ids: Vec<Id> = call.iter().map(|r| r.id).collect();
            let got = f.finance.get_transfers(&ids).await.unwrap();
            assert!(got.transfers.is_empty(), "{got:?}");
        } else {
            check_ok(call, &out.unwrap());
        }
    }

    // The first 20 callers' records, then 9 callers × 10 minor units.
    let expected: u128 = (0..20u128)
        .map(|i| (0..1 + i % 3).map(|k| 100 + 10 * i + k).sum::<u128>())
        .sum::<u128>()
        + 9 * 10;
    assert_eq!(
        balance_of(&f.finance, wallet).await,
        format!("{}.{:02}", expected / 100, expected % 100)
    );
    f.node.shutdown().await.unwrap();
}

/// Raw signed call through the generated client, with full control over the metadata.
async fn raw_get_accounts(
    addr: &str,
    headers: &SignedHeaders,
    msg: pb::GetAccountsRequest,
) -> Result<pb::GetAccountsResponse, tonic::Status> {
    let mut c = pb::ledger_client::LedgerClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut req = tonic::Request::new(msg);
    headers.apply(req.metadata_mut());
    c.get_accounts(req).await.map(|r| r.into_inner())
}

async fn raw_submit(
    addr: &str,
    key: &ed25519_dalek::SigningKey,
    msg: pb::SubmitRequest,
) -> Result<pb::SubmitResponse, tonic::Status> {
    let mut c = pb::ledger_client::LedgerClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let mut req = tonic::Request::new(msg.clone());
    SignedHeaders::sign_now(key, "/suanpan.v1.Ledger/Submit", &msg.encode_to_vec())
        .apply(req.metadata_mut());
    c.submit(req).await.map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn auth_rejections() {
    let f = fixture(|_| {}).await;
    let (_bank, wallet) = two_accounts(&f.payments).await;
    let msg = pb::GetAccountsRequest {
        ids: vec![wallet.to_string()],
        allow_stale: false,
    };
    let path = "/suanpan.v1.Ledger/GetAccounts";
    let body = msg.encode_to_vec();

    // A correct request works, and replaying it exactly is refused.
    let good = SignedHeaders::sign_now(&f.payments_key, path, &body);
    raw_get_accounts(&f.addr, &good, msg.clone())
        .await
        .expect("signed request accepted");
    let e = raw_get_accounts(&f.addr, &good, msg.clone())
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "replayed nonce: {e:?}");
    assert!(e.message().contains("replayed"), "{e:?}");

    // Unknown key.
    let stranger = new_key();
    let e = raw_get_accounts(
        &f.addr,
        &SignedHeaders::sign_now(&stranger, path, &body),
        msg.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "unknown key: {e:?}");

    // Bad signature: signed over another body.
    let other = pb::GetAccountsRequest {
        ids: vec![new_id().to_string()],
        allow_stale: false,
    }
    .encode_to_vec();
    let e = raw_get_accounts(
        &f.addr,
        &SignedHeaders::sign_now(&f.payments_key, path, &other),
        msg.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "bad signature: {e:?}");
    // Bad signature: signed for another method.
    let e = raw_get_accounts(
        &f.addr,
        &SignedHeaders::sign_now(&f.payments_key, "/suanpan.v1.Ledger/GetTransfers", &body),
        msg.clone(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    // Stale and future timestamps.
    for ts in [now_ms() - 120_000, now_ms() + 120_000] {
        let h = SignedHeaders::sign(&f.payments_key, path, &body, ts, random_nonce());
        let e = raw_get_accounts(&f.addr, &h, msg.clone())
            .await
            .unwrap_err();
        assert_eq!(e.code(), Code::Unauthenticated, "timestamp {ts}: {e:?}");
    }

    // Missing metadata.
    let mut c = pb::ledger_client::LedgerClient::connect(format!("http://{}", f.addr))
        .await
        .unwrap();
    let e = c
        .get_accounts(tonic::Request::new(msg.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);

    // Wrong role: finance may not submit; payments may not administer. Nothing applied.
    let (fin_key, t) = (new_key(), new_id());
    f.admin
        .register_client(&fin_key.verifying_key(), ClientRole::FinanceRead, "fin2")
        .await
        .unwrap();
    let e = raw_submit(
        &f.addr,
        &fin_key,
        pb::SubmitRequest {
            commands: vec![cmd::create_account(t, "CNY", pb::AccountKind::Wallet)],
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = f.payments.list_clients().await.unwrap_err();
    assert_eq!(e.code(), Some(Code::PermissionDenied), "{e:?}");
    let e = f.payments.add_node(7, "127.0.0.1:1").await.unwrap_err();
    assert_eq!(e.code(), Some(Code::PermissionDenied), "{e:?}");
    assert!(
        f.admin.get_account(t).await.unwrap().is_none(),
        "nothing applied"
    );

    // Unknown key on submit: nothing applied.
    let t2 = new_id();
    let e = raw_submit(
        &f.addr,
        &stranger,
        pb::SubmitRequest {
            commands: vec![cmd::create_account(t2, "CNY", pb::AccountKind::Wallet)],
        },
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    assert!(
        f.admin.get_account(t2).await.unwrap().is_none(),
        "nothing applied"
    );

    // Revoked key.
    let r = f
        .admin
        .revoke_client(&f.payments_key.verifying_key())
        .await
        .unwrap();
    assert!(r.is_ok(), "{r:?}");
    let e = f.payments.get_account(wallet).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::Unauthenticated), "revoked: {e:?}");
    let clients = f.admin.list_clients().await.unwrap();
    assert!(clients
        .iter()
        .any(|c| c.public_key == f.payments_key.verifying_key().as_bytes().to_vec() && c.revoked));
    f.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_rejects_the_whole_batch() {
    let f = fixture(|_| {}).await;
    let (bank, wallet) = two_accounts(&f.payments).await;
    let leg =
        |amount: &str, currency: &str| cmd::transfer(new_id(), bank, wallet, amount, currency);
    let bad_uuid = {
        let mut c = cmd::transfer(new_id(), bank, wallet, "1", "CNY");
        if let Some(pb::command::Kind::CreateTransfer(t)) = &mut c.kind {
            t.id = "not-a-uuid".into();
        }
        c
    };
    let unknown_enum = cmd::create_account_with(pb::CreateAccount {
        id: new_id().to_string(),
        currency: "CNY".into(),
        kind: 99,
        ..Default::default()
    });
    let unspecified_enum = cmd::create_account(new_id(), "CNY", pb::AccountKind::Unspecified);
    let bad_status = cmd::set_account_status(new_id(), wallet, pb::AccountStatus::Unspecified);
    let cases: Vec<(&str, pb::Command)> = vec![
        ("bad uuid", bad_uuid),
        ("1e5", leg("1e5", "CNY")),
        ("12.345 CNY", leg("12.345", "CNY")),
        ("-1", leg("-1", "CNY")),
        ("NaN", leg("NaN", "CNY")),
        ("empty amount", leg("", "CNY")),
        ("+1", leg("+1", "CNY")),
        ("space", leg(" 1", "CNY")),
        ("40 digits", leg(&"1".repeat(40), "CNY")),
        ("unknown currency", leg("1", "XXX")),
        ("currency mismatch with account", leg("1", "USD")),
        ("unknown enum", unknown_enum),
        ("unspecified enum", unspecified_enum),
        ("bad status", bad_status),
        ("empty command", pb::Command { kind: None }),
    ];
    for (name, bad) in cases {
        // A valid command first: it must not be applied either.
        let canary = new_id();
        let e = f
            .payments
            .submit_unbatched(vec![
                cmd::create_account(canary, "CNY", pb::AccountKind::Wallet),
                bad,
            ])
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(Code::InvalidArgument), "{name}: {e:?}");
        assert!(
            f.finance.get_account(canary).await.unwrap().is_none(),
            "{name}: canary applied"
        );
    }

    let e = f.payments.submit_unbatched(vec![]).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidArgument), "empty batch");

    let first = new_id();
    let mut big = vec![cmd::create_account(first, "CNY", pb::AccountKind::Wallet)];
    big.extend((0..8_192).map(|_| cmd::create_account(new_id(), "CNY", pb::AccountKind::Wallet)));
    let e = f.payments.submit_unbatched(big).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::InvalidArgument), "oversize batch");
    assert!(f.finance.get_account(first).await.unwrap().is_none());

    // The balance never moved.
    assert_eq!(
        f.finance
            .get_account(wallet)
            .await
            .unwrap()
            .unwrap()
            .balance,
        "0.00"
    );
    f.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_submits_are_coalesced() {
    let f = fixture(|_| {}).await;
    let (bank, wallet) = two_accounts(&f.payments).await;
    let mut cfg = client_config(&[f.addr.clone()]);
    cfg.batch_linger_us = 20_000;
    let c = Client::connect(cfg, f.payments_key.clone()).unwrap();
    let n = 64;
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                c.submit(vec![cmd::transfer(new_id(), bank, wallet, "0.01", "CNY")])
                    .await
            })
        })
        .collect();
    let mut indexes = std::collections::BTreeSet::new();
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        assert_eq!(r.len(), 1);
        assert!(r[0].is_ok(), "{r:?}");
        indexes.insert(r[0].applied_index);
    }
    assert!(
        indexes.len() < n / 4,
        "{n} submits used {} log entries",
        indexes.len()
    );
    assert_eq!(
        f.finance
            .get_account(wallet)
            .await
            .unwrap()
            .unwrap()
            .balance,
        "0.64"
    );

    // One caller's invalid input does not fail the others coalesced with it.
    let good = {
        let c = c.clone();
        tokio::spawn(async move {
            c.submit(vec![cmd::transfer(new_id(), bank, wallet, "0.01", "CNY")])
                .await
        })
    };
    let bad = {
        let c = c.clone();
        tokio::spawn(async move {
            c.submit(vec![cmd::transfer(new_id(), bank, wallet, "0.001", "CNY")])
                .await
        })
    };
    assert!(good.await.unwrap().unwrap()[0].is_ok());
    assert_eq!(
        bad.await.unwrap().unwrap_err().code(),
        Some(Code::InvalidArgument)
    );
    f.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn watch_delivers_events() {
    let f = fixture(|cfg| cfg.events.max_batches = 8).await;
    let mut live = f.finance.watch_events(0).await.unwrap();
    let (bank, wallet) = two_accounts(&f.payments).await;
    let t = new_id();
    let r = f
        .payments
        .submit_unbatched(vec![cmd::transfer(t, bank, wallet, "5", "CNY")])
        .await
        .unwrap();
    let index = r[0].applied_index;

    let mut seen = Vec::new();
    while !seen.iter().any(|e: &pb::WatchEvent| e.index == index) {
        let e = tokio::time::timeout(Duration::from_secs(5), live.next())
            .await
            .expect("event in time")
            .unwrap()
            .unwrap();
        seen.push(e);
    }
    let ev = seen.last().unwrap();
    assert_eq!(ev.events.len(), 1);
    let ce = &ev.events[0];
    assert_eq!(ce.result.as_ref().unwrap().id, t.to_string());
    assert_eq!(ce.result.as_ref().unwrap().code, 0);
    match &ce.command.as_ref().unwrap().kind {
        Some(pb::command::Kind::CreateTransfer(tr)) => {
            assert_eq!(tr.legs[0].amount, "5");
            assert_eq!(tr.legs[0].currency, "CNY");
        }
        other => panic!("unexpected command {other:?}"),
    }

    // Replay from a past index that is still in the ring.
    let mut replay = f.finance.watch_events(index).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), replay.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(e.index, index);

    // A flow: a top-up through an asset account emits a journaled event.
    let custody = new_id();
    f.payments
        .submit_unbatched(vec![cmd::create_account_with(pb::CreateAccount {
            id: custody.to_string(),
            currency: "CNY".into(),
            kind: pb::AccountKind::System as i32,
            credits_must_not_exceed_debits: true,
            ..Default::default()
        })])
        .await
        .unwrap();
    let r = f
        .payments
        .submit_unbatched(vec![cmd::topup(new_id(), wallet, custody, "7", "CNY")])
        .await
        .unwrap();
    assert_eq!(r[0].name, "ok");
    let topup_index = r[0].applied_index;

    // Push the ring past its bound: the top-up's batch leaves memory.
    for _ in 0..10 {
        f.payments
            .submit_unbatched(vec![cmd::transfer(new_id(), bank, wallet, "1", "CNY")])
            .await
            .unwrap();
    }
    // Its flow event is still served, from the replicated journal; batches without flow events
    // that left memory are skipped, and the stream continues from the ring.
    let mut old = f.finance.watch_events(1).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), old.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(e.index, topup_index);
    assert!(e.from_journal);
    assert!(e.events.is_empty());
    assert_eq!(e.flow_events[0].kind, "topup_completed");
    assert_eq!(e.flow_events[0].amount, "7.00");
    let next = tokio::time::timeout(Duration::from_secs(5), old.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(next.index > topup_index && !next.from_journal);
    // Filtered by account: only flow events that concern it.
    let mut mine = f.finance.watch_flow_events(1, &[custody]).await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(5), mine.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(e.index, topup_index);
    assert!(e.events.is_empty());
    // Ids are checked at the wire.
    let bad = f
        .finance
        .watch_flow_events(1, &[ledger::Id(0)])
        .await
        .unwrap_err();
    assert_eq!(bad.status().map(|s| s.code()), Some(Code::InvalidArgument));
    f.node.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_files_and_restart_keep_state() {
    let dir = tempfile::tempdir().unwrap();
    let (node, admin) = single_node(dir.path(), |_| {}).await;
    let key_path = dir.path().join("node1").join("admin.key");
    assert_eq!(
        api::client::load_key_file(&key_path).unwrap().to_bytes(),
        node.admin_key.to_bytes()
    );
    let a = new_id();
    let r = admin
        .submit_unbatched(vec![cmd::create_account(a, "JPY", pb::AccountKind::Wallet)])
        .await
        .unwrap();
    assert!(r[0].is_ok());
    node.shutdown().await.unwrap();
    drop(admin);

    let (node, admin) = single_node(dir.path(), |_| {}).await;
    assert_eq!(admin.get_account(a).await.unwrap().unwrap().currency, "JPY");
    node.shutdown().await.unwrap();
}

/// What `grpcurl -plaintext HOST:PORT list` does: server reflection, no credentials needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reflection_lists_services_without_credentials() {
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let f = fixture(|_| {}).await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{}", f.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut c = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = c
        .server_reflection_info(futures::stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = resp.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("unexpected {msg:?}")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for svc in ["suanpan.v1.Ledger", "suanpan.v1.Admin", "suanpan.v1.Peer"] {
        assert!(
            names.iter().any(|n| n == svc),
            "{svc} missing from {names:?}"
        );
    }
    drop(resp);
    f.node.shutdown().await.unwrap();
}

/// Holds a lock on another thread until told to let go (or 60 s pass), reporting when it holds.
fn hold_on_thread<F: FnOnce(std::sync::mpsc::Receiver<()>) + Send + 'static>(
    f: F,
) -> std::sync::mpsc::Sender<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || f(rx));
    tx
}

/// A read is answered, and a client authenticated, while the applying ledger is locked (a long
/// apply); a transfer is applied while a reader holds the read view (a long report). Before the
/// read view, authentication and every query took the applying ledger's mutex on an async worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_and_apply_do_not_wait_for_each_other() {
    let f = fixture(|_| {}).await;
    let (bank, wallet) = two_accounts(&f.payments).await;
    let r = f
        .payments
        .submit_unbatched(vec![cmd::transfer(new_id(), bank, wallet, "5", "CNY")])
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");

    // 1. The applying ledger is locked: a (stale) read and its authentication still go through.
    let mut cfg = client_config(&[f.addr.clone()]);
    cfg.stale_reads = true;
    let reader = Client::connect(cfg, f.payments_key.clone()).unwrap();
    let ledger = f.node.ledger.clone();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let release = hold_on_thread(move |rx| {
        let _guard = ledger.lock();
        let _ = held_tx.send(());
        let _ = rx.recv_timeout(Duration::from_secs(60));
    });
    held_rx.await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(30), reader.get_account(wallet)).await;
    let _ = release.send(());
    let acct = read
        .expect("a read waited for the applying ledger's lock")
        .unwrap()
        .expect("wallet exists");
    assert_eq!(acct.balance, "5.00");

    // 2. A reader holds the view: a transfer is still applied, and the next read sees it.
    let view = f.node.view().clone();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let release = hold_on_thread(move |rx| {
        let _guard = view.hold_exclusively();
        let _ = held_tx.send(());
        let _ = rx.recv_timeout(Duration::from_secs(60));
    });
    held_rx.await.unwrap();
    let submit = tokio::time::timeout(
        Duration::from_secs(30),
        f.payments
            .submit_unbatched(vec![cmd::transfer(new_id(), bank, wallet, "2", "CNY")]),
    )
    .await;
    let _ = release.send(());
    let r = submit
        .expect("apply waited for a reader of the view")
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let acct = f.finance.get_account(wallet).await.unwrap().unwrap();
    assert_eq!(acct.balance, "7.00");
    f.node.shutdown().await.unwrap();
}

/// Calls are bounded in time: a call the server cannot answer within `request_timeout_ms` (here:
/// the read view is held exclusively) is answered `DEADLINE_EXCEEDED` instead of staying open.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_is_cut_off_at_the_request_timeout() {
    let f = fixture(|cfg| {
        cfg.limits.request_timeout_ms = 500;
    })
    .await;
    let (_, wallet) = two_accounts(&f.payments).await;
    let mut cfg = client_config(&[f.addr.clone()]);
    cfg.stale_reads = true;
    cfg.max_attempts = 1; // the client would retry a timed-out read
    let reader = Client::connect(cfg, f.payments_key.clone()).unwrap();
    let view = f.node.view().clone();
    let (held_tx, held_rx) = tokio::sync::oneshot::channel();
    let release = hold_on_thread(move |rx| {
        let _guard = view.hold_exclusively();
        let _ = held_tx.send(());
        let _ = rx.recv_timeout(Duration::from_secs(60));
    });
    held_rx.await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(30), reader.get_account(wallet)).await;
    let _ = release.send(());
    let err = read
        .expect("the call was not cut off")
        .expect_err("a held view cannot answer");
    assert_eq!(
        err.status().map(|s| s.code()),
        Some(Code::DeadlineExceeded),
        "{err:?}"
    );
    // Released, the view answers again.
    assert!(reader.get_account(wallet).await.unwrap().is_some());
    f.node.shutdown().await.unwrap();
}

/// `GET /metrics` over plain HTTP/1.1 (no client library needed).
async fn scrape(addr: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    out
}

/// The value of the sample `series` (labels as printed: the metric's own, then `node`).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// The node serves Prometheus metrics: commands by kind and result, apply and commit latency,
/// Raft state, log size, and refused calls by code and reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_are_served_for_prometheus() {
    let f = fixture(|cfg| cfg.metrics_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let addr = f.node.metrics_addr.expect("metrics served");
    let (bank, wallet) = two_accounts(&f.payments).await;
    let r = f
        .payments
        .submit_unbatched(vec![
            cmd::transfer(new_id(), bank, wallet, "1", "CNY"),
            cmd::transfer(new_id(), wallet, bank, "100", "CNY"),
        ])
        .await
        .unwrap();
    assert!(r[0].is_ok() && !r[1].is_ok(), "{r:?}");
    // A call from an unknown key is refused and counted.
    let stranger = Client::connect(client_config(&[f.addr.clone()]), new_key()).unwrap();
    assert!(stranger.get_account(wallet).await.is_err());

    let text = scrape(addr).await;
    let n =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("no {series} in\n{text}"));
    let kinds = |kind: &str, result: &str| {
        format!("suanpan_commands_total{{kind=\"{kind}\",result=\"{result}\",node=\"1\"}}")
    };
    assert_eq!(n(&kinds("create_transfer", "ok")), 1.0);
    assert_eq!(n(&kinds("create_transfer", "insufficient_funds")), 1.0);
    assert!(n(&kinds("create_account", "ok")) >= 2.0);
    assert!(n("suanpan_apply_batch_seconds_count{node=\"1\"}") >= 3.0);
    assert!(n("suanpan_submit_commit_seconds_count{node=\"1\"}") >= 2.0);
    assert!(n("suanpan_raft_term{node=\"1\"}") >= 1.0);
    assert_eq!(n("suanpan_raft_role{role=\"leader\",node=\"1\"}"), 1.0);
    let applied = n("suanpan_raft_applied_index{node=\"1\"}");
    assert!(applied >= 3.0 && applied <= n("suanpan_raft_commit_index{node=\"1\"}"));
    assert!(n("suanpan_raft_log_entries{node=\"1\"}") >= 1.0);
    // Every applied entry was fsynced by the log-sync thread first (pipelined persistence).
    assert!(n("suanpan_raft_log_syncs_total{node=\"1\"}") >= 2.0);
    assert!(n("suanpan_raft_log_sync_seconds_total{node=\"1\"}") > 0.0);
    assert!(
        n("suanpan_rejected_requests_total{code=\"Unauthenticated\",reason=\"\",node=\"1\"}")
            >= 1.0
    );
    assert!(text.contains("suanpan_snapshots_total"), "{text}");
    f.node.shutdown().await.unwrap();
}
