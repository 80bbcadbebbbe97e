//! Money between friends, end to end against a 3-node cluster with the leader SIGKILLed in the
//! middle: a dinner split three ways and paid, an AA collection, a group of four settled in at most
//! three transfers, a red packet claimed by 5 of its 8 members with the rest returned at expiry, a
//! payment request declined, a chat transfer not accepted and returned, coins bought with CNY and
//! spent at a merchant, a wallet's tier raised and its new limit used — then every balance checked.

mod common;

use std::str::FromStr;
use std::time::Duration;

use api::client::cmd::RequestVerb;
use api::client::{cmd as ops, Client, ClientConfig};
use api::pb;
use common::*;
use ledger::Id;
use rust_decimal::Decimal;

fn id(n: u128) -> Id {
    Id(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

fn dec(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
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

async fn balance(c: &Client, a: Id) -> Decimal {
    dec(&c.get_account(a).await.unwrap().expect("account").balance)
}

fn split(id_: Id, payer: Id, total: &str, participants: &[Id], mode: pb::SplitMode) -> pb::Command {
    ops::create_split(pb::CreateSplit {
        id: id_.to_string(),
        payer_account_id: payer.to_string(),
        total: total.into(),
        currency: "CNY".into(),
        participant_ids: participants.iter().map(Id::to_string).collect(),
        mode: mode as i32,
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friends_pay_each_other_through_a_leader_kill() {
    let mut cluster = Cluster::start(3, &[]);
    cluster.wait_ready(Duration::from_secs(60)).await;
    let mut cfg = ClientConfig::new(cluster.endpoints());
    cfg.max_attempts = 40;
    let c = Client::connect(cfg, cluster.key()).unwrap();

    // Eight friends with 1 000 CNY each from the custodial bank, a ninth with nothing; coins.
    let bank = id(1);
    ok(&c, custodial_bank(bank)).await;
    let w: Vec<Id> = (0..9).map(|i| id(10 + i)).collect();
    let (alice, bob, carol, dave, erin, frank, grace, heidi, ivan) =
        (w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7], w[8]);
    for (i, a) in w.iter().enumerate() {
        ok(&c, ops::create_account(*a, "CNY", pb::AccountKind::Wallet)).await;
        if i < 8 {
            ok(&c, ops::topup(id(100 + i as u128), *a, bank, "1000", "CNY")).await;
        }
    }
    ok(&c, ops::define_currency(id(2), "QCOIN", 0, "Q-coins")).await;
    ok(&c, ops::set_rate(id(3), "CNY", "QCOIN", "10")).await;
    let (alice_q, arcade) = (id(30), id(31));
    ok(
        &c,
        ops::create_account(alice_q, "QCOIN", pb::AccountKind::Wallet),
    )
    .await;
    ok(
        &c,
        ops::create_merchant(pb::CreateMerchant {
            id: arcade.to_string(),
            currency: "QCOIN".into(),
            name: "STAR ARCADE".into(),
            city: "SHENZHEN".into(),
            mcc: "7994".into(),
            country: "CN".into(),
            fee_bps: 0,
            fee_account_id: None,
        }),
    )
    .await;

    // A dinner split three ways (100.00: one share gets the extra fen), paid by the other two.
    let dinner = id(200);
    ok(
        &c,
        split(
            dinner,
            alice,
            "100.00",
            &[alice, bob, carol],
            pb::SplitMode::Equal,
        ),
    )
    .await;
    ok(&c, ops::pay_split(id(201), dinner, bob)).await;
    ok(&c, ops::pay_split(id(202), dinner, carol)).await;
    let x = c.get_splits(&[dinner]).await.unwrap().splits[0].clone();
    assert_eq!(x.state, "settled");
    let share: Vec<Decimal> = x.items.iter().map(|i| dec(&i.amount)).collect();
    assert_eq!(share.iter().sum::<Decimal>(), dec("100.00"));
    assert!(share.iter().max().unwrap() - share.iter().min().unwrap() <= dec("0.01"));

    // AA collection: dave asks erin, frank and grace for 25.00 each; all pay.
    let aa = id(210);
    ok(
        &c,
        split(
            aa,
            dave,
            "25.00",
            &[erin, frank, grace],
            pb::SplitMode::Each,
        ),
    )
    .await;
    for (k, p) in [erin, frank, grace].into_iter().enumerate() {
        ok(&c, ops::pay_split(id(211 + k as u128), aa, p)).await;
    }

    // A group of four on a trip: three group splits, netted: alice +70, bob +30, carol −30,
    // dave −70.
    let trip = id(220);
    ok(
        &c,
        ops::create_group(trip, "trip", &[alice, bob, carol, dave]),
    )
    .await;
    let group_split = |sid: Id, payer: Id, total: &str, ps: &[Id]| {
        ops::create_split(pb::CreateSplit {
            id: sid.to_string(),
            payer_account_id: payer.to_string(),
            total: total.into(),
            currency: "CNY".into(),
            participant_ids: ps.iter().map(Id::to_string).collect(),
            mode: pb::SplitMode::Equal as i32,
            group_id: Some(trip.to_string()),
            ..Default::default()
        })
    };
    ok(
        &c,
        group_split(id(221), alice, "120", &[alice, bob, carol, dave]),
    )
    .await;
    ok(
        &c,
        group_split(id(222), bob, "80", &[alice, bob, carol, dave]),
    )
    .await;
    ok(&c, group_split(id(223), carol, "40", &[carol, dave])).await;

    // The leader dies; everything after goes to its successor.
    let leader = cluster.leader().await.expect("a leader");
    cluster.kill(leader);
    eprintln!("killed leader {leader}");

    let settle = id(224);
    ok(&c, ops::settle_group(settle, trip)).await;
    let t = c.get_transfers(&[settle]).await.unwrap().transfers[0].clone();
    assert!(t.legs.len() <= 3, "settled in {} transfers", t.legs.len());
    let g = c.get_group_balances(trip).await.unwrap();
    assert!(g.open_split_ids.is_empty());
    assert!(g.nets.iter().all(|n| dec(&n.net).is_zero()), "{:?}", g.nets);

    // A red packet for the family group of eight (10 s to claim: room for a slow machine): five
    // claim, an outsider cannot.
    let family = id(230);
    ok(&c, ops::create_group(family, "family", &w[..8])).await;
    let packet = id(231);
    let packet_created = std::time::Instant::now();
    ok(
        &c,
        ops::create_redpacket(pb::CreateRedPacket {
            id: packet.to_string(),
            sender_account_id: heidi.to_string(),
            total: "88.88".into(),
            currency: "CNY".into(),
            count: 8,
            random: true,
            expires_in_seconds: Some(10),
            group_id: Some(family.to_string()),
        }),
    )
    .await;
    for (k, m) in [alice, bob, carol, dave, erin].into_iter().enumerate() {
        ok(&c, ops::claim_redpacket(id(232 + k as u128), packet, m)).await;
    }
    refused(
        &c,
        ops::claim_redpacket(id(240), packet, ivan),
        "not_a_group_member",
    )
    .await;

    // A chat transfer bob → carol that carol never accepts (8 s).
    let chat = id(250);
    ok(
        &c,
        ops::send(pb::Send {
            id: chat.to_string(),
            from_account_id: bob.to_string(),
            to_account_id: carol.to_string(),
            amount: "12.00".into(),
            currency: "CNY".into(),
            note: "milk tea".into(),
            accept_within_seconds: Some(8),
            ..Default::default()
        }),
    )
    .await;

    // Coins bought with CNY and spent at the arcade.
    ok(
        &c,
        ops::convert(pb::Convert {
            id: id(260).to_string(),
            from_account_id: alice.to_string(),
            to_account_id: alice_q.to_string(),
            amount: "10.00".into(),
            currency: "CNY".into(),
            expect_rate: Some("10".into()),
        }),
    )
    .await;
    ok(
        &c,
        ops::pay_bill(id(261), alice_q, arcade, "GAME-7", "30", "QCOIN"),
    )
    .await;

    // bob on the basic tier cannot send 80; raised to verified, he can.
    let mut basic = pb::Limits::default();
    basic.per_transfer_max = Some("50".into());
    ok(&c, ops::define_tier(id(270), "basic", basic)).await;
    let mut verified = pb::Limits::default();
    verified.per_transfer_max = Some("5000".into());
    ok(&c, ops::define_tier(id(271), "verified", verified)).await;
    ok(&c, ops::set_account_tier(id(272), bob, "basic")).await;
    refused(
        &c,
        ops::transfer(id(273), bob, erin, "80", "CNY"),
        "per_transfer_limit",
    )
    .await;
    ok(&c, ops::set_account_tier(id(274), bob, "verified")).await;
    ok(&c, ops::transfer(id(275), bob, erin, "80", "CNY")).await;
    assert_eq!(
        c.get_account(bob).await.unwrap().unwrap().tier.as_deref(),
        Some("verified")
    );

    // A payment request frank → grace, declined.
    let req = id(280);
    ok(
        &c,
        ops::create_request(pb::CreateRequest {
            id: req.to_string(),
            payee_account_id: frank.to_string(),
            payer_account_id: grace.to_string(),
            amount: "15.00".into(),
            currency: "CNY".into(),
            note: "tickets".into(),
            expires_in_seconds: None,
        }),
    )
    .await;
    ok(&c, ops::request_action(id(281), req, RequestVerb::Decline)).await;
    refused(
        &c,
        ops::request_action(id(282), req, RequestVerb::Pay),
        "request_declined",
    )
    .await;

    // Let the packet and the chat transfer fall due; the next batch expires them.
    let due = Duration::from_secs(11);
    if let Some(rest) = due.checked_sub(packet_created.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    ok(
        &c,
        ops::create_account(id(290), "CNY", pb::AccountKind::Wallet),
    )
    .await;
    let p = c.get_redpackets(&[packet]).await.unwrap().redpackets[0].clone();
    assert_eq!(p.state, "expired");
    assert_eq!(p.claims.len(), 5);
    let slot = |m: Id| -> Decimal {
        p.claims
            .iter()
            .find(|k| k.wallet_id == m.to_string())
            .map(|k| dec(&k.amount))
            .expect("claimed")
    };
    let claimed: Decimal = p.claims.iter().map(|k| dec(&k.amount)).sum();
    assert_eq!(claimed, dec(&p.claimed_amount));
    let chat_t = c.get_transfers(&[chat]).await.unwrap().transfers[0].clone();
    assert_eq!(chat_t.state, pb::TransferState::PendingExpired as i32);

    // Retries return their first outcomes.
    ok(&c, ops::pay_split(id(201), dinner, bob)).await;
    ok(&c, ops::settle_group(settle, trip)).await;

    // Every balance, to the fen.
    let share_of = |m: Id| -> Decimal {
        x.items
            .iter()
            .find(|i| i.participant_account_id == m.to_string())
            .map(|i| dec(&i.amount))
            .unwrap()
    };
    let k = dec("1000");
    let expect = [
        (
            alice,
            k + (dec("100") - share_of(alice)) + dec("70") + slot(alice) - dec("10"),
        ),
        (bob, k - share_of(bob) + dec("30") + slot(bob) - dec("80")),
        (carol, k - share_of(carol) - dec("30") + slot(carol)),
        (dave, k + dec("75") - dec("70") + slot(dave)),
        (erin, k - dec("25") + slot(erin) + dec("80")),
        (frank, k - dec("25")),
        (grace, k - dec("25")),
        (heidi, k - claimed),
        (ivan, Decimal::ZERO),
        (alice_q, dec("70")),
        (arcade, dec("30")),
        (bank, dec("-8000")),
    ];
    for (a, want) in expect {
        assert_eq!(balance(&c, a).await, want, "account {a}");
    }
    // Escrow holds nothing; the positions mirror the conversion.
    let cny = ledger::Currency::from_code("CNY").unwrap();
    assert!(balance(&c, ledger::escrow_account_id(cny)).await.is_zero());
    assert_eq!(
        balance(&c, ledger::position_account_id(cny)).await,
        dec("10")
    );
    let (_, digest) = cluster.wait_converged(Duration::from_secs(30)).await;
    eprintln!("converged at digest {digest}");
}
