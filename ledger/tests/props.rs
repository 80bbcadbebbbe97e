//! Property tests over random command sequences.
//!
//! Each case is generated from one 64-bit seed by a deterministic generator, so a failure message
//! names the seed and `SUANPAN_SEED=<seed> cargo nextest run -p ledger --release props` replays exactly
//! that sequence (proptest also records it in `proptest-regressions/`).

mod common;
use common::*;
use ledger::*;
use proptest::prelude::*;

use ledger::rng::SplitMix64 as Rng;

const BANKS: [(u128, &str); 2] = [(1, "CNY"), (2, "JPY")];

fn amount(rng: &mut Rng, currency: &str) -> String {
    let minor = match rng.below(10) {
        0 => 0,
        1 => rng.below(1_000_000),
        _ => 1 + rng.below(5_000),
    };
    let s = if currency == "JPY" {
        minor.to_string()
    } else {
        format!("{}.{:02}", minor / 100, minor % 100)
    };
    match rng.below(40) {
        0 => format!("-{s}"),
        1 => format!("{s}1"), // may carry excess precision
        _ => s,
    }
}

/// A random history of batches: setup, then transfers, holds, posts, voids, status changes, retries and
/// conflicting reuses of ids, with log time advancing by up to two days between batches.
fn generate(seed: u64, batches: usize) -> Vec<Batch> {
    let mut rng = Rng(seed);
    let mut out = Vec::new();
    let mut now = T0;
    let mut setup = vec![];
    let mut accounts: Vec<(u128, &str)> = vec![];
    let mut merchants: Vec<(MerchantProfile, &str)> = vec![];
    for (bank, cur) in BANKS {
        setup.push(system(bank, cur));
        for w in 0..4u128 {
            let n = bank * 100 + w;
            setup.push(with(wallet(n, cur), |a| {
                if rng.chance(30) {
                    a.overdraft = Some(d(if cur == "JPY" { "500" } else { "5.00" }));
                }
                if rng.chance(30) {
                    a.limits.per_transfer_max =
                        Some(d(if cur == "JPY" { "3000" } else { "30.00" }));
                }
                if rng.chance(30) {
                    a.limits.daily_outflow_max =
                        Some(d(if cur == "JPY" { "8000" } else { "80.00" }));
                }
                if rng.chance(30) {
                    a.limits.daily_outflow_count_max = Some(1 + rng.below(5) as u32);
                }
                if rng.chance(30) {
                    a.limits.balance_max = Some(d(if cur == "JPY" { "20000" } else { "200.00" }));
                }
            }));
            accounts.push((n, cur));
        }
        let m = bank * 100 + 50;
        setup.push(account(m, cur, AccountKind::Merchant));
        accounts.push((m, cur));
        // A merchant with a profile and a fee, for the payment flows.
        let fees = bank * 100 + 70;
        setup.push(system(fees, cur));
        let profile = MerchantProfile {
            account: Id(bank * 100 + 60),
            name: format!("SHOP {cur}"),
            city: "SHANGHAI".into(),
            mcc: "5411".into(),
            country: "CN".into(),
            fee_bps: rng.below(400) as u32,
            fee_account: Some(Id(fees)),
            created_ns: 0,
        };
        setup.push(Command::CreateMerchant(CreateMerchant {
            id: profile.account,
            currency: cur.to_string(),
            name: profile.name.clone(),
            city: profile.city.clone(),
            mcc: profile.mcc.clone(),
            country: profile.country.clone(),
            fee_bps: profile.fee_bps,
            fee_account: profile.fee_account,
        }));
        accounts.push((profile.account.0, cur));
        merchants.push((profile, cur));
    }
    // In-app coins (scale 0) and points (scale 2), rates both ways with CNY, tiers to move wallets
    // between; coin wallets are converted into, spent and converted back.
    setup.push(Command::DefineCurrency(DefineCurrency {
        id: Id(900),
        code: "QCOIN".into(),
        scale: 0,
        name: String::new(),
    }));
    setup.push(Command::DefineCurrency(DefineCurrency {
        id: Id(901),
        code: "PTS".into(),
        scale: 2,
        name: String::new(),
    }));
    let coins: Vec<(u128, &str)> = (0..3)
        .map(|i| (910 + i, "QCOIN"))
        .chain((0..2).map(|i| (920 + i, "PTS")))
        .collect();
    for (n, cur) in &coins {
        setup.push(wallet(*n, cur));
    }
    for (i, name) in ["basic", "verified"].iter().enumerate() {
        setup.push(Command::DefineTier(DefineTier {
            id: Id(930 + i as u128),
            name: name.to_string(),
            limits: LimitsSpec {
                per_transfer_max: Some(d(if i == 0 { "20" } else { "5000" })),
                daily_outflow_max: Some(d(if i == 0 { "60" } else { "20000" })),
                daily_outflow_count_max: None,
                balance_max: None,
            },
        }));
    }
    out.push(Batch {
        timestamp_ns: now,
        seed: 0,
        commands: setup,
    });
    let mut next_id = 10_000u128;
    let mut issued: Vec<Command> = vec![];
    let mut pendings: Vec<u128> = vec![];
    // QR orders (id, merchant index, amount text) and every payment that may be refunded.
    let mut orders: Vec<(u128, usize, String, String)> = vec![];
    let mut paid: Vec<u128> = vec![];
    let mut splits: Vec<(u128, Vec<Id>)> = vec![];
    // Chat transfers, payment requests, red packets and groups issued so far.
    let mut chats: Vec<u128> = vec![];
    let mut requests: Vec<u128> = vec![];
    let mut packets: Vec<u128> = vec![];
    let mut groups: Vec<u128> = vec![];
    for b in 0..batches {
        let span = if rng.chance(10) { 2 * 86_400 } else { 120 };
        now += rng.below(span) * SEC;
        let n = 1 + rng.below(24) as usize;
        let mut cmds = Vec::with_capacity(n);
        for _ in 0..n {
            next_id += 1;
            let (a, cur) = accounts[rng.below(accounts.len() as u64) as usize];
            let bank = BANKS.iter().find(|(_, c)| *c == cur).unwrap().0;
            let (b2, cur2) = accounts[rng.below(accounts.len() as u64) as usize];
            let (mp, mcur) = &merchants[rng.below(merchants.len() as u64) as usize];
            let mi = merchants
                .iter()
                .position(|(m, _)| m.account == mp.account)
                .unwrap();
            let mcur = *mcur;
            let cmd = match rng.below(172) {
                0..=14 => transfer(next_id, bank, a, &amount(&mut rng, cur)), // top-up
                15..=54 => transfer(next_id, a, b2, &amount(&mut rng, cur)), // p2p (maybe cross-currency)
                55..=59 => legs(
                    next_id,
                    &[
                        (a, b2, &amount(&mut rng, cur)),
                        (b2, bank, &amount(&mut rng, cur2)),
                    ],
                ),
                60..=69 => {
                    pendings.push(next_id);
                    pending(next_id, a, b2, &amount(&mut rng, cur), 1 + rng.below(600))
                }
                70..=79 if !pendings.is_empty() => {
                    let p = pendings[rng.below(pendings.len() as u64) as usize];
                    let amt = if rng.chance(50) {
                        None
                    } else {
                        Some(amount(&mut rng, cur))
                    };
                    post(next_id, p, amt.as_deref())
                }
                80..=84 if !pendings.is_empty() => {
                    void(next_id, pendings[rng.below(pendings.len() as u64) as usize])
                }
                85..=87 => {
                    let s = [
                        AccountStatus::Open,
                        AccountStatus::Frozen,
                        AccountStatus::Open,
                    ][rng.below(3) as usize];
                    status(next_id, a, s)
                }
                88..=94 if !issued.is_empty() => {
                    issued[rng.below(issued.len() as u64) as usize].clone()
                } // retry
                95..=99 if !issued.is_empty() => {
                    // Reuse of an id with another body.
                    let old = issued[rng.below(issued.len() as u64) as usize].id();
                    transfer(old.0, a, b2, &amount(&mut rng, cur))
                }
                100..=107 => {
                    let amt = amount(&mut rng, mcur);
                    let reference = format!("R{}", rng.below(40));
                    orders.push((next_id, mi, amt.clone(), reference.clone()));
                    Command::CreateOrder(CreateOrder {
                        id: Id(next_id),
                        merchant: mp.account,
                        amount: d(&amt),
                        currency: None,
                        reference,
                        expires_in_seconds: Some(1 + rng.below(900)),
                    })
                }
                108..=115 if !orders.is_empty() => {
                    let (o, oi, amt, reference) =
                        orders[rng.below(orders.len() as u64) as usize].clone();
                    let (m, c) = &merchants[oi];
                    let c = Currency::from_code(c).unwrap();
                    // The payload as the ledger prints it (the amount in the currency's scale); now
                    // and then one with its amount altered.
                    let text = match c.to_minor(d(&amt)) {
                        Ok(v) if !rng.chance(10) => c.to_decimal(v).to_string(),
                        _ => "1".to_string(),
                    };
                    let qr = emv::OrderQr {
                        id: Id(o),
                        amount: &text,
                        reference: &reference,
                    };
                    paid.push(next_id);
                    Command::PayQr(PayQr {
                        id: Id(next_id),
                        payer: Id(a),
                        qr: emv::merchant_payload(m, c, Some(qr)).unwrap(),
                        amount: None,
                        currency: None,
                    })
                }
                116..=118 => {
                    let c = Currency::from_code(mcur).unwrap();
                    paid.push(next_id);
                    Command::PayQr(PayQr {
                        id: Id(next_id),
                        payer: Id(a),
                        qr: emv::merchant_payload(mp, c, None).unwrap(),
                        amount: Some(d(&amount(&mut rng, mcur))),
                        currency: None,
                    })
                }
                119..=120 if !orders.is_empty() => Command::CloseOrder(CloseOrder {
                    id: Id(next_id),
                    order: Id(orders[rng.below(orders.len() as u64) as usize].0),
                }),
                121..=126 if !paid.is_empty() => {
                    // Refund a payment's order: the order id is the payment's for static payments
                    // and bills; for QR orders, refund the order itself.
                    let target = if rng.chance(50) && !orders.is_empty() {
                        orders[rng.below(orders.len() as u64) as usize].0
                    } else {
                        paid[rng.below(paid.len() as u64) as usize]
                    };
                    // Mostly small whole amounts: valid in either currency, often within the rest.
                    let amt = if rng.chance(70) {
                        (1 + rng.below(5)).to_string()
                    } else {
                        amount(&mut rng, mcur)
                    };
                    Command::Refund(Refund {
                        id: Id(next_id),
                        order: Id(target),
                        amount: d(&amt),
                        currency: None,
                        reason: String::new(),
                    })
                }
                127..=129 => {
                    paid.push(next_id);
                    Command::PayBill(PayBill {
                        id: Id(next_id),
                        payer: Id(a),
                        biller: mp.account,
                        bill_ref: format!("B{}", rng.below(30)),
                        amount: d(&amount(&mut rng, mcur)),
                        currency: None,
                    })
                }
                130..=134 => {
                    // A split of the payer's bill among wallets of its currency (some of them
                    // repeated or in another currency now and then).
                    let k = 1 + rng.below(4) as usize;
                    let participants: Vec<Id> = (0..k)
                        .map(|_| Id(accounts[rng.below(accounts.len() as u64) as usize].0))
                        .collect();
                    splits.push((next_id, participants.clone()));
                    Command::CreateSplit(CreateSplit {
                        id: Id(next_id),
                        payer: Id(a),
                        total: d(&amount(&mut rng, cur)),
                        currency: Currency::from_code(cur).unwrap(),
                        participants,
                        mode: if rng.chance(50) {
                            SplitMode::Equal
                        } else {
                            SplitMode::Each
                        },
                        values: vec![],
                        note: String::new(),
                        group: None,
                        expires_in_seconds: rng.chance(20).then(|| 1 + rng.below(600)),
                    })
                }
                135..=139 if !splits.is_empty() => {
                    let (sid, ps) = splits[rng.below(splits.len() as u64) as usize].clone();
                    Command::PaySplit(PaySplit {
                        id: Id(next_id),
                        split: Id(sid),
                        participant: ps[rng.below(ps.len() as u64) as usize],
                    })
                }
                140..=142 => {
                    // An operator moves a rate (sometimes to one with many decimals).
                    let (from, to) = [
                        ("CNY", "QCOIN"),
                        ("QCOIN", "CNY"),
                        ("CNY", "PTS"),
                        ("PTS", "QCOIN"),
                    ][rng.below(4) as usize];
                    let rate = match rng.below(4) {
                        0 => format!("0.{:04}", 1 + rng.below(9_999)),
                        1 => format!("{}.{:03}", rng.below(50), rng.below(1000)),
                        _ => (1 + rng.below(20)).to_string(),
                    };
                    Command::SetRate(SetRate {
                        id: Id(next_id),
                        from: Currency::declared(from).unwrap(),
                        to: Currency::declared(to).unwrap(),
                        rate: d(&rate),
                    })
                }
                143..=147 => {
                    // Buy coins or points with a CNY wallet, or convert them back (or onward).
                    let (c, ccur) = coins[rng.below(coins.len() as u64) as usize];
                    let cny = 100 + rng.below(4) as u128;
                    let (from, to, fcur) = match rng.below(3) {
                        0 | 1 => (cny, c, "CNY"),
                        _ => (c, cny, ccur),
                    };
                    let amt = if fcur == "QCOIN" {
                        (1 + rng.below(50)).to_string()
                    } else {
                        amount(&mut rng, fcur)
                    };
                    Command::Convert(Convert {
                        id: Id(next_id),
                        from: Id(from),
                        to: Id(to),
                        amount: d(&amt),
                        currency: None,
                        expect_rate: None,
                    })
                }
                148..=149 => {
                    // Coins move between coin wallets like any money.
                    let (x, xc) = coins[rng.below(coins.len() as u64) as usize];
                    let (y, _) = coins[rng.below(coins.len() as u64) as usize];
                    let mut t = transfer(next_id, x, y, &(1 + rng.below(30)).to_string());
                    if let Command::CreateTransfer(t) = &mut t {
                        t.legs[0].currency = Currency::declared(xc);
                    }
                    t
                }
                150..=151 => Command::SetAccountTier(SetAccountTier {
                    id: Id(next_id),
                    account: Id(a),
                    tier: ["basic", "verified", "gold"][rng.below(3) as usize].into(),
                }),
                152..=155 => {
                    let held = rng.chance(70);
                    if held {
                        chats.push(next_id);
                    }
                    let fee = rng.chance(20);
                    Command::Send(Send {
                        id: Id(next_id),
                        from: Id(a),
                        to: Id(b2),
                        amount: d(&amount(&mut rng, cur)),
                        currency: None,
                        note: String::new(),
                        accept_within_seconds: held.then(|| 1 + rng.below(900)),
                        fee_bps: if fee { rng.below(300) as u32 } else { 0 },
                        fee_account: fee.then_some(Id(bank * 100 + 70)),
                    })
                }
                156..=157 if !chats.is_empty() => {
                    let t = Id(chats[rng.below(chats.len() as u64) as usize]);
                    if rng.chance(60) {
                        Command::ReceiveTransfer(ReceiveTransfer {
                            id: Id(next_id),
                            transfer: t,
                        })
                    } else {
                        Command::ReturnTransfer(ReturnTransfer {
                            id: Id(next_id),
                            transfer: t,
                        })
                    }
                }
                158..=159 => {
                    requests.push(next_id);
                    Command::CreateRequest(CreateRequest {
                        id: Id(next_id),
                        payee: Id(a),
                        payer: Id(b2),
                        amount: d(&amount(&mut rng, cur2)),
                        currency: None,
                        note: String::new(),
                        expires_in_seconds: Some(1 + rng.below(900)),
                    })
                }
                160..=161 if !requests.is_empty() => {
                    let r = RequestAction {
                        id: Id(next_id),
                        request: Id(requests[rng.below(requests.len() as u64) as usize]),
                    };
                    match rng.below(3) {
                        0 => Command::DeclineRequest(r),
                        1 => Command::CancelRequest(r),
                        _ => Command::PayRequest(r),
                    }
                }
                162..=163 => {
                    packets.push(next_id);
                    let group = (!groups.is_empty() && rng.chance(30))
                        .then(|| Id(groups[rng.below(groups.len() as u64) as usize]));
                    Command::CreateRedPacket(CreateRedPacket {
                        id: Id(next_id),
                        sender: Id(a),
                        total: d(&amount(&mut rng, cur)),
                        currency: None,
                        count: 1 + rng.below(8) as u32,
                        random: rng.chance(70),
                        expires_in_seconds: Some(1 + rng.below(900)),
                        group,
                    })
                }
                164..=167 if !packets.is_empty() => Command::ClaimRedPacket(ClaimRedPacket {
                    id: Id(next_id),
                    packet: Id(packets[rng.below(packets.len() as u64) as usize]),
                    wallet: Id(b2),
                }),
                168..=169 => {
                    // A group of three to five wallets (same currency mostly); its splits follow.
                    groups.push(next_id);
                    let members: Vec<Id> = (0..3 + rng.below(3))
                        .map(|_| Id(accounts[rng.below(accounts.len() as u64) as usize].0))
                        .collect();
                    Command::CreateGroup(CreateGroup {
                        id: Id(next_id),
                        name: "g".into(),
                        members,
                    })
                }
                170..=171 if !groups.is_empty() => {
                    let g = groups[rng.below(groups.len() as u64) as usize];
                    if rng.chance(50) {
                        Command::SettleGroup(SettleGroup {
                            id: Id(next_id),
                            group: Id(g),
                        })
                    } else {
                        // A group split among two of the wallets (often not both members).
                        let p2 = Id(b2);
                        splits.push((next_id, vec![Id(a), p2]));
                        Command::CreateSplit(CreateSplit {
                            id: Id(next_id),
                            payer: Id(a),
                            total: d(&amount(&mut rng, cur)),
                            currency: Currency::from_code(cur).unwrap(),
                            participants: vec![Id(a), p2],
                            mode: SplitMode::Equal,
                            values: vec![],
                            note: String::new(),
                            group: Some(Id(g)),
                            expires_in_seconds: None,
                        })
                    }
                }
                _ => transfer(next_id, a, b2, &amount(&mut rng, cur)),
            };
            issued.push(cmd.clone());
            cmds.push(cmd);
        }
        out.push(Batch {
            timestamp_ns: now,
            seed: b as u64,
            commands: cmds,
        });
    }
    out
}

fn wallet_cmd(n: u128) -> Command {
    wallet(n, "CNY")
}

fn run<S: Store>(store: S, batches: &[Batch]) -> (Ledger<S>, Vec<Vec<CommandResult>>) {
    let mut l = Ledger::open(store).unwrap();
    let mut results = vec![];
    for (i, b) in batches.iter().enumerate() {
        results.push(l.apply(i as u64 + 1, b).unwrap().results);
    }
    (l, results)
}

fn seed_or(s: u64) -> u64 {
    std::env::var("SUANPAN_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(s)
}

/// Limits hold after every batch. An account moved to a tier with lower limits may already be past
/// them for the day: for it, the daily limit is checked only when this batch added outflow under
/// unchanged limits (`prev`: the accounts before the batch).
fn check_limits<S: Store>(l: &Ledger<S>, prev: &std::collections::HashMap<Id, Account>, seed: u64) {
    for a in l.accounts() {
        let (i, b) = (&a.info, &a.state.balances);
        let daily_checked = i.tier.is_none()
            || prev.get(&i.id).is_some_and(|p| {
                p.info.limits == i.limits
                    && p.state.day == a.state.day
                    && a.state.day_outflow > p.state.day_outflow
            });
        if i.flags & FLAG_DEBITS_MUST_NOT_EXCEED_CREDITS != 0 {
            assert!(
                b.debits_posted + b.debits_pending <= b.credits_posted + i.overdraft,
                "seed={seed}: {a:?}"
            );
        }
        if i.flags & FLAG_CREDITS_MUST_NOT_EXCEED_DEBITS != 0 {
            assert!(
                b.credits_posted + b.credits_pending <= b.debits_posted,
                "seed={seed}: {a:?}"
            );
        }
        if let Some(m) = i.limits.daily_outflow_max.filter(|_| daily_checked) {
            assert!(a.state.day_outflow <= m, "seed={seed}: {a:?}");
        }
        if let Some(m) = i.limits.daily_outflow_count_max.filter(|_| daily_checked) {
            assert!(a.state.day_outflow_count <= m, "seed={seed}: {a:?}");
        }
        if let Some(m) = i.limits.balance_max {
            // Only credits are limited; debits may lower a balance that was over the limit.
            assert!(
                (b.credits_posted + b.credits_pending).saturating_sub(b.debits_posted) <= m,
                "seed={seed}: {a:?}"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Money is conserved per currency after every batch, no account breaks its limits, and every
    /// account's balances equal the sum of its postings.
    #[test]
    fn conservation_and_limits(seed in any::<u64>()) {
        let seed = seed_or(seed);
        let batches = generate(seed, 30);
        let mut l = Ledger::open(MemStore::new()).unwrap();
        for (i, b) in batches.iter().enumerate() {
            let prev: std::collections::HashMap<Id, Account> =
                l.accounts().map(|a| (a.info.id, a.clone())).collect();
            l.apply(i as u64 + 1, b).unwrap();
            for (cur, t) in l.totals() {
                prop_assert_eq!(t.debits_posted, t.credits_posted, "seed={} {}", seed, cur);
                prop_assert_eq!(t.debits_pending, t.credits_pending, "seed={} {}", seed, cur);
            }
            check_limits(&l, &prev, seed);
        }
        prop_assert!(l.verify().is_ok(), "seed={}: {:?}", seed, l.verify());
    }

    /// Replaying every batch again (all ids retried) returns the original results for first-time
    /// commands and changes no balance.
    #[test]
    fn retries_replay_original_outcomes(seed in any::<u64>()) {
        let seed = seed_or(seed);
        let batches = generate(seed, 20);
        let (mut l, first) = run(MemStore::new(), &batches);
        // Far later, every timer fires first (held transfers return, red packets give back their
        // rest, splits and requests expire), in an empty batch; then the retries may change nothing.
        let n = batches.len() as u64;
        let later = 1_000 * 86_400 * SEC;
        let last_ts = batches.last().map_or(T0, |b| b.timestamp_ns);
        l.apply(n + 1, &Batch { timestamp_ns: last_ts + later, seed: 0, commands: vec![] }).unwrap();
        prop_assert_eq!(l.timers().count(), 0, "seed={}", seed);
        let before: Vec<Account> = { let mut v: Vec<Account> = l.accounts().cloned().collect(); v.sort_by_key(|a| a.info.id); v };
        for (i, b) in batches.iter().enumerate() {
            let mut retry = b.clone();
            retry.timestamp_ns = last_ts + later + (1 + i as u64) * SEC;
            let again = l.apply(n + 2 + i as u64, &retry).unwrap().results;
            for (j, cmd) in b.commands.iter().enumerate() {
                let stored = l.command_result(cmd.id()).unwrap();
                if cmd.id().0 == 0 { continue; }
                // The stored outcome is what the id's first command got; the retry returns it unless
                // the body differs (conflict).
                if first[i][j].code != ResultCode::IdempotencyConflict && again[j].code != ResultCode::IdempotencyConflict {
                    prop_assert_eq!(Some(again[j]), stored, "seed={} batch {} cmd {}", seed, i, j);
                    prop_assert_eq!(again[j], first[i][j], "seed={} batch {} cmd {}", seed, i, j);
                }
            }
        }
        let mut after: Vec<Account> = l.accounts().cloned().collect();
        after.sort_by_key(|a| a.info.id);
        for (a, b) in before.iter().zip(&after) {
            // Every timer already fired: retries move no money at all.
            prop_assert_eq!(a.state.balances, b.state.balances, "seed={}", seed);
        }
        prop_assert!(l.verify().is_ok(), "seed={}", seed);
    }

    /// The same log gives the same digest and results: twice in memory, and on RocksDB; a reopened
    /// RocksDB store equals the one before it closed.
    #[test]
    fn determinism_across_stores_and_reopen(seed in any::<u64>()) {
        let seed = seed_or(seed);
        let batches = generate(seed, 12);
        let (a, ra) = run(MemStore::new(), &batches);
        let (b, rb) = run(MemStore::new(), &batches);
        prop_assert_eq!(a.digest(), b.digest(), "seed={}", seed);
        prop_assert_eq!(&ra, &rb, "seed={}", seed);
        let dir = tempfile::tempdir().unwrap();
        let (c, rc) = run(RocksStore::open(dir.path()).unwrap(), &batches);
        prop_assert_eq!(a.digest(), c.digest(), "seed={}", seed);
        prop_assert_eq!(&ra, &rc, "seed={}", seed);
        let snap = c.snapshot().unwrap();
        prop_assert_eq!(&a.snapshot().unwrap(), &snap, "seed={}", seed);
        let (idx, digest) = (c.applied_index(), c.digest());
        drop(c);
        let reopened = Ledger::open(RocksStore::open(dir.path()).unwrap()).unwrap();
        prop_assert_eq!(reopened.applied_index(), idx, "seed={}", seed);
        prop_assert_eq!(reopened.digest(), digest, "seed={}", seed);
        prop_assert_eq!(&reopened.snapshot().unwrap(), &snap, "seed={}", seed);

        // Behind a Raft log, through a write-behind buffer flushed every few kilobytes: the
        // same digest, results and snapshot, and a clean close leaves it all in RocksDB.
        let dir = tempfile::tempdir().unwrap();
        let db = ledger::open_db(dir.path(), &[]).unwrap();
        let buffered = RocksStore::behind_log_buffered(db, ledger::writebehind::WRITE_BEHIND_BYTES_MIN).unwrap();
        let (d, rd) = run(buffered, &batches);
        prop_assert_eq!(a.digest(), d.digest(), "seed={}", seed);
        prop_assert_eq!(&ra, &rd, "seed={}", seed);
        prop_assert_eq!(&d.snapshot().unwrap(), &snap, "seed={}", seed);
        drop(d);
        let reopened = Ledger::open(RocksStore::open(dir.path()).unwrap()).unwrap();
        prop_assert_eq!((reopened.applied_index(), reopened.digest()), (idx, digest), "seed={}", seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Any sequence of partial refunds that sums to the paid amount returns exactly the whole fee,
    /// and every party's balance to where it started; no refund ever passes the paid amount.
    #[test]
    fn refunds_return_the_whole_fee_at_full_refund(seed in any::<u64>()) {
        let seed = seed_or(seed);
        let mut rng = Rng(seed);
        let (bank, payer, fees, shop) = (1u128, 2u128, 3u128, 4u128);
        let profile = MerchantProfile {
            account: Id(shop),
            name: "SHOP".into(),
            city: "HANGZHOU".into(),
            mcc: "5411".into(),
            country: "CN".into(),
            fee_bps: if rng.chance(50) {
                [0, 1, 38, 60, 599, 10_000][rng.below(6) as usize]
            } else {
                rng.below(10_001) as u32
            },
            fee_account: Some(Id(fees)),
            created_ns: 0,
        };
        let cny = Currency::from_code("CNY").unwrap();
        let paid_max = if rng.chance(50) { 100 } else { 1_000_000_000 };
        let paid: u64 = 1 + rng.below(paid_max);
        let setup = vec![
            system(bank, "CNY"),
            wallet(payer, "CNY"),
            system(fees, "CNY"),
            Command::CreateMerchant(CreateMerchant {
                id: Id(shop), currency: "CNY".into(), name: profile.name.clone(), city: profile.city.clone(),
                mcc: profile.mcc.clone(), country: profile.country.clone(), fee_bps: profile.fee_bps,
                fee_account: profile.fee_account,
            }),
            transfer(5, bank, payer, &cny.to_decimal(u128::from(paid)).to_string()),
            Command::PayQr(PayQr {
                id: Id(6), payer: Id(payer), qr: emv::merchant_payload(&profile, cny, None).unwrap(),
                amount: Some(cny.to_decimal(u128::from(paid))), currency: None,
            }),
        ];
        let mut l = Ledger::open(MemStore::new()).unwrap();
        let out = l.apply(1, &Batch { timestamp_ns: T0, seed: 0, commands: setup }).unwrap();
        prop_assert!(out.results.iter().all(|r| r.is_ok()), "seed={}: {:?}", seed, out.results);
        // Refund in random parts until nothing is left; over-refunds are refused along the way.
        let mut left = paid;
        let mut index = 1;
        let mut next = 100u128;
        while left > 0 {
            let part = if rng.chance(30) { left } else { 1 + rng.below(left) };
            let over = u128::from(left) + 1 + u128::from(rng.below(3));
            let cmds = vec![
                Command::Refund(Refund { id: Id(next), order: Id(6), amount: cny.to_decimal(over), currency: None, reason: String::new() }),
                Command::Refund(Refund { id: Id(next + 1), order: Id(6), amount: cny.to_decimal(u128::from(part)), currency: None, reason: String::new() }),
            ];
            next += 2;
            index += 1;
            let r = l.apply(index, &Batch { timestamp_ns: T0 + index * SEC, seed: 0, commands: cmds }).unwrap().results;
            prop_assert_eq!(r[0].code, ResultCode::RefundExceedsPaid, "seed={}", seed);
            prop_assert_eq!(r[1].code, ResultCode::Ok, "seed={}", seed);
            left -= part;
            let o = l.order(Id(6)).unwrap().unwrap();
            prop_assert!(o.fee_refunded <= o.fee && o.refunded_amount <= o.paid_amount, "seed={}: {:?}", seed, o);
        }
        let o = l.order(Id(6)).unwrap().unwrap();
        prop_assert_eq!(o.state, OrderState::Refunded, "seed={}", seed);
        prop_assert_eq!(o.fee_refunded, o.fee, "seed={}", seed);
        prop_assert_eq!(l.account(Id(payer)).unwrap().state.balances.credits_posted - l.account(Id(payer)).unwrap().state.balances.debits_posted, u128::from(paid), "seed={}", seed);
        for acct in [shop, fees] {
            let b = l.account(Id(acct)).unwrap().state.balances;
            prop_assert_eq!(b.debits_posted, b.credits_posted, "seed={} account {}", seed, acct);
        }
        prop_assert!(l.verify().is_ok(), "seed={}", seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// A payment code is consumed at most once, whatever the sequence of scans (merchants, amounts,
    /// retries, batches, log time passing, keys rebound); a retried payment id replays its outcome.
    #[test]
    fn a_payment_code_is_consumed_at_most_once(seed in any::<u64>()) {
        use ed25519_dalek::Signer;
        let seed = seed_or(seed);
        let mut rng = Rng(seed);
        let (bank, wallet, m1, m2) = (1u128, 2u128, 3u128, 4u128);
        let merchant = |id: u128| Command::CreateMerchant(CreateMerchant {
            id: Id(id), currency: "CNY".into(), name: "M".into(), city: "C".into(), mcc: "5411".into(),
            country: "CN".into(), fee_bps: 0, fee_account: None,
        });
        let keys = [ed25519_dalek::SigningKey::from_bytes(&[1; 32]), ed25519_dalek::SigningKey::from_bytes(&[2; 32])];
        let bind = |id: u128, k: usize| Command::BindPaycode(BindPaycode {
            id: Id(id), wallet: Id(wallet), public_key: keys[k].verifying_key().to_bytes(), paycode_max: None,
        });
        let setup = vec![system(bank, "CNY"), wallet_cmd(wallet), merchant(m1), merchant(m2),
            transfer(5, bank, wallet, "100000"), bind(6, 0)];
        let mut l = Ledger::open(MemStore::new()).unwrap();
        l.apply(1, &Batch { timestamp_ns: T0, seed: 0, commands: setup }).unwrap();
        // A few codes, some signed by the key bound later.
        let tokens: Vec<paycode::Token> = (0..4u8).map(|n| {
            let k = &keys[usize::from(n % 2 == 1 && rng.chance(50))];
            let nonce = [n; 16];
            let expires_ns = T0 + (30 + rng.below(600)) * SEC;
            let signature = k.sign(&paycode::Token::signed_message(Id(wallet), &nonce, expires_ns)).to_bytes();
            paycode::Token { wallet: Id(wallet), nonce, expires_ns, signature }
        }).collect();
        let mut issued: Vec<Command> = Vec::new();
        let mut next = 100u128;
        let mut now = T0;
        for index in 2..40u64 {
            now += rng.below(60) * SEC;
            let mut cmds = Vec::new();
            for _ in 0..1 + rng.below(4) {
                next += 1;
                let cmd = match rng.below(10) {
                    0 if !issued.is_empty() => issued[rng.below(issued.len() as u64) as usize].clone(),
                    1 => bind(next, rng.below(2) as usize),
                    _ => Command::PayCode(PayCode {
                        id: Id(next),
                        merchant: Id(if rng.chance(50) { m1 } else { m2 }),
                        token: tokens[rng.below(tokens.len() as u64) as usize],
                        amount: d(&(1 + rng.below(50)).to_string()),
                        currency: None,
                    }),
                };
                issued.push(cmd.clone());
                cmds.push(cmd);
            }
            let out = l.apply(index, &Batch { timestamp_ns: now, seed: 0, commands: cmds.clone() }).unwrap();
            for (c, r) in cmds.iter().zip(&out.results) {
                // Whatever the body, the stored outcome is what a retry gets.
                if r.code != ResultCode::IdempotencyConflict {
                    prop_assert_eq!(l.command_result(c.id()).unwrap(), Some(*r), "seed={}", seed);
                }
            }
        }
        // Count the payments that succeeded per nonce: at most one each.
        let mut used = std::collections::BTreeMap::<[u8; 16], u32>::new();
        for c in &issued {
            if let Command::PayCode(p) = c {
                if l.command_result(p.id).unwrap().is_some_and(|r| r.is_ok()) && l.order(p.id).unwrap().is_some() {
                    *used.entry(p.token.nonce).or_default() += 1;
                }
            }
        }
        // Retried ids count once: dedup by payment id already (orders are keyed by it).
        let distinct: std::collections::BTreeMap<[u8; 16], usize> = {
            let mut m = std::collections::BTreeMap::new();
            let mut seen = std::collections::BTreeSet::new();
            for c in &issued {
                if let Command::PayCode(p) = c {
                    if seen.insert(p.id) && l.order(p.id).unwrap().is_some() {
                        *m.entry(p.token.nonce).or_default() += 1;
                    }
                }
            }
            m
        };
        for (nonce, n) in &distinct {
            prop_assert!(*n <= 1, "seed={}: nonce {:?} paid {} times ({:?})", seed, nonce, n, used);
        }
        prop_assert!(l.verify().is_ok(), "seed={}", seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Split shares sum exactly to the total; equal shares differ by at most one minor unit; every
    /// weighted share is its exact quotient rounded down or up (largest remainder), and a share gets
    /// the extra unit only if no share with a larger remainder went without.
    #[test]
    fn split_shares_follow_the_largest_remainder_rule(seed in any::<u64>()) {
        let seed = seed_or(seed);
        let mut rng = Rng(seed);
        let n = 1 + rng.below(SPLIT_PARTICIPANTS_MAX as u64) as usize;
        let cny = Currency::from_code("CNY").unwrap();
        let span = if rng.chance(50) { 1_000 } else { 10_000_000_000 };
        let total = n as u128 + u128::from(rng.below(span));
        let mode = [SplitMode::Equal, SplitMode::Percent, SplitMode::Shares][rng.below(3) as usize];
        let weights: Vec<u128> = match mode {
            SplitMode::Equal => vec![1; n],
            SplitMode::Shares => (0..n).map(|_| 1 + u128::from(rng.below(1_000))).collect(),
            _ => {
                // Basis points summing to 10 000, each ≥ 1 (needs n ≤ 10 000).
                let mut w = vec![1u128; n];
                for _ in 0..(10_000 - n) {
                    w[rng.below(n as u64) as usize] += 1;
                }
                w
            }
        };
        let c = CreateSplit {
            id: Id(u128::from(rng.next()) << 64 | u128::from(rng.next())),
            payer: Id(1),
            total: cny.to_decimal(total),
            currency: cny,
            participants: (0..n as u128).map(|i| Id(100 + i)).collect(),
            mode,
            values: if mode == SplitMode::Equal { vec![] } else { weights.iter().map(|w| rust_decimal::Decimal::from(*w as u64)).collect() },
            note: String::new(),
            group: None,
            expires_in_seconds: None,
        };
        let parts = match split_shares(&c, c.currency) {
            Ok((parts, t)) => { prop_assert_eq!(t, total, "seed={}", seed); parts }
            Err(code) => {
                // Only a share that would round to zero is refused.
                prop_assert_eq!(code, ResultCode::SplitAmountTooSmall, "seed={}", seed);
                return Ok(());
            }
        };
        prop_assert_eq!(parts.iter().sum::<u128>(), total, "seed={}", seed);
        let w_sum: u128 = weights.iter().sum();
        for (p, w) in parts.iter().zip(&weights) {
            let floor = total * w / w_sum;
            prop_assert!(*p == floor || *p == floor + 1, "seed={}: {} vs floor {}", seed, p, floor);
        }
        if mode == SplitMode::Equal {
            let (lo, hi) = (parts.iter().min().unwrap(), parts.iter().max().unwrap());
            prop_assert!(hi - lo <= 1, "seed={}", seed);
        }
        // No unit went to a smaller remainder while a larger one went without.
        let rem = |i: usize| total * weights[i] % w_sum;
        let bumped: Vec<usize> = (0..n).filter(|&i| parts[i] > total * weights[i] / w_sum).collect();
        let min_bumped = bumped.iter().map(|&i| rem(i)).min();
        if let Some(m) = min_bumped {
            for i in 0..n {
                if !bumped.contains(&i) {
                    prop_assert!(rem(i) <= m, "seed={}: remainder order", seed);
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Red-packet slots sum to the total, each is at least one minor unit, the random ones respect
    /// the double-average bound, and the same seed gives the same slots (what `verify` relies on).
    #[test]
    fn redpacket_slots_sum_and_recompute(seed in any::<u64>()) {
        let seed = seed_or(seed);
        let mut rng = Rng(seed);
        let count = 1 + rng.below(u64::from(REDPACKET_SLOTS_MAX)) as u32;
        let span = if rng.chance(50) { 100 } else { 1_000_000_000 };
        let total = u64::from(count) + rng.below(span);
        let random = rng.chance(80);
        let s = redpacket::slots(seed, total, count, random);
        prop_assert_eq!(s.len(), count as usize, "seed={}", seed);
        prop_assert_eq!(s.iter().sum::<u64>(), total, "seed={}", seed);
        prop_assert!(s.iter().all(|v| *v >= 1), "seed={}", seed);
        if random {
            let mut rem = total;
            for (i, v) in s.iter().enumerate() {
                let left = u64::from(count) - i as u64;
                if left > 1 {
                    prop_assert!(*v <= (2 * rem / left).max(1), "seed={}: slot {} over twice the average", seed, i);
                }
                rem -= v;
            }
        }
        prop_assert_eq!(redpacket::slots(seed, total, count, random), s, "seed={}", seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    /// Settle-up uses at most n − 1 transfers per currency and leaves every member's net at zero;
    /// each transfer goes from a debtor to a creditor.
    #[test]
    fn settle_up_uses_at_most_n_minus_one_transfers(seed in any::<u64>()) {
        let seed = seed_or(seed);
        let mut rng = Rng(seed);
        let n = 2 + rng.below(GROUP_MEMBERS_MAX as u64 - 1) as usize;
        let cny = Currency::from_code("CNY").unwrap();
        // Random debts between members net to zero by construction.
        let mut nets: std::collections::BTreeMap<Id, i128> = std::collections::BTreeMap::new();
        for _ in 0..rng.below(300) {
            let (a, b) = (rng.below(n as u64) as u128, rng.below(n as u64) as u128);
            let x = 1 + rng.below(10_000) as i128;
            *nets.entry(Id(100 + a)).or_default() += x;
            *nets.entry(Id(100 + b)).or_default() -= x;
        }
        let before = nets.clone();
        let mut all = GroupNets::new();
        all.insert(cny, nets);
        let plan = settle_plan(&all);
        let members = before.values().filter(|v| **v != 0).count();
        prop_assert!(plan.len() <= members.saturating_sub(1), "seed={}: {} transfers for {} members", seed, plan.len(), members);
        let mut after = before.clone();
        for (_, debtor, creditor, amount) in &plan {
            prop_assert!(before[debtor] < 0 && before[creditor] > 0, "seed={}", seed);
            *after.get_mut(debtor).unwrap() += *amount as i128;
            *after.get_mut(creditor).unwrap() -= *amount as i128;
        }
        prop_assert!(after.values().all(|v| *v == 0), "seed={}: {:?}", seed, after);
    }
}

/// The generator exercises what it claims to: across a fixed set of seeds, transfers, holds, posts,
/// voids, expiries, replays and conflicts all occur with successful and failing outcomes.
#[test]
fn generator_covers_the_interesting_outcomes() {
    use std::collections::BTreeMap;
    let mut codes: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut kinds: BTreeMap<&'static str, u64> = BTreeMap::new();
    for seed in 0..64 {
        let batches = generate(seed, 30);
        let (l, results) = run(MemStore::new(), &batches);
        for (b, r) in batches.iter().zip(&results) {
            for (c, r) in b.commands.iter().zip(r) {
                *codes.entry(r.code.name()).or_default() += 1;
                let k = match c {
                    Command::CreateTransfer(t) if t.pending_timeout_seconds.is_some() => "pending",
                    Command::CreateTransfer(_) => "transfer",
                    Command::PostPending(_) => "post",
                    Command::VoidPending(_) => "void",
                    Command::CreateOrder(_) => "order",
                    Command::PayQr(p) if p.amount.is_none() => "pay_order",
                    Command::PayQr(_) => "pay_static",
                    Command::CloseOrder(_) => "close",
                    Command::Refund(_) => "refund",
                    Command::PayBill(_) => "bill",
                    Command::CreateSplit(_) => "split",
                    Command::PaySplit(_) => "split_pay",
                    _ => "other",
                };
                if r.code == ResultCode::Ok {
                    *kinds.entry(k).or_default() += 1;
                }
            }
        }
        let _ = l;
    }
    eprintln!("{codes:?}\n{kinds:?}");
    for k in [
        "pending",
        "transfer",
        "post",
        "void",
        "order",
        "pay_order",
        "pay_static",
        "close",
        "refund",
        "bill",
        "split",
        "split_pay",
    ] {
        assert!(
            kinds.get(k).copied().unwrap_or(0) > 10,
            "too few successful {k}: {kinds:?}"
        );
    }
    for c in [
        "ok",
        "insufficient_funds",
        "idempotency_conflict",
        "amount_zero",
        "pending_expired",
        "currency_mismatch",
        "order_already_paid",
        "order_expired",
        "order_closed",
        "invalid_qr",
        "refund_exceeds_paid",
        "order_not_paid",
        "bill_already_paid",
        "order_reference_in_use",
    ] {
        assert!(
            codes.get(c).copied().unwrap_or(0) > 0,
            "never saw {c}: {codes:?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// A conversion credits ⌊amount × rate⌋ in the target's minor unit — never more than the exact
    /// value, less by under one minor unit — and posts both halves balanced per currency.
    #[test]
    fn conversions_round_down_exactly(seed in any::<u64>()) {
        let seed = seed_or(seed);
        let mut rng = Rng(seed);
        let scale = rng.below(9) as u8;
        let code = "GEMS";
        let mut l = Ledger::open(MemStore::new()).unwrap();
        let rate_scale = rng.below(19) as u32;
        let rate = rust_decimal::Decimal::from_i128_with_scale(1 + rng.below(10_000_000) as i128, rate_scale);
        let cmds = vec![
            Command::DefineCurrency(DefineCurrency { id: Id(1), code: code.into(), scale, name: String::new() }),
            system(2, "CNY"),
            wallet(3, "CNY"),
            wallet(4, code),
            transfer(5, 2, 3, "1000000.00"),
            Command::SetRate(SetRate { id: Id(6), from: Currency::declared("CNY").unwrap(), to: Currency::declared(code).unwrap(), rate }),
        ];
        l.apply(1, &Batch { timestamp_ns: T0, seed: 0, commands: cmds }).unwrap();
        let paid = 1 + rng.below(10_000_000) as u128; // fen
        let out = l.apply(2, &Batch { timestamp_ns: T0 + SEC, seed: 0, commands: vec![Command::Convert(Convert {
            id: Id(7), from: Id(3), to: Id(4), amount: rust_decimal::Decimal::from_i128_with_scale(paid as i128, 2), currency: None, expect_rate: None,
        })] }).unwrap();
        // Exact target in the target's minor units: paid/100 × rate × 10^scale, as a fraction.
        let num = paid * rate.mantissa() as u128 * 10u128.pow(u32::from(scale));
        let den = 100u128 * 10u128.pow(rate_scale);
        let expected = num / den;
        if expected == 0 {
            prop_assert_eq!(out.results[0].code, ResultCode::ConversionTooSmall, "seed={}", seed);
        } else {
            prop_assert_eq!(out.results[0].code, ResultCode::Ok, "seed={}", seed);
            let c = l.conversion(Id(7)).unwrap().unwrap();
            prop_assert_eq!(c.to_amount, expected, "seed={}", seed);
            prop_assert!(c.to_amount * den <= num && num - c.to_amount * den < den, "seed={}", seed);
            prop_assert_eq!(c.rate, rate.normalize(), "seed={}", seed);
        }
        for (cur, t) in l.totals() {
            prop_assert_eq!(t.debits_posted, t.credits_posted, "seed={} {}", seed, cur);
        }
        prop_assert!(l.verify().is_ok(), "seed={}", seed);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Every link of the digest chain is recorded with the digest apply returned and recomputes
    /// from the journal; a snapshot carries the chain; rewriting one stored digest or one journal
    /// record is found at exactly that index.
    #[test]
    fn digest_chain_recomputes_and_finds_a_rewrite(seed in any::<u64>(), pick in any::<u64>()) {
        let seed = seed_or(seed);
        let batches = generate(seed, 12);
        let mut l = Ledger::open(MemStore::new()).unwrap();
        let mut digests = vec![];
        for (i, b) in batches.iter().enumerate() {
            digests.push(l.apply(i as u64 + 1, b).unwrap().digest);
        }
        let page = l.chain(1, CHAIN_PAGE_MAX).unwrap();
        prop_assert_eq!(page.links.len(), batches.len(), "seed={}", seed);
        for (link, d) in page.links.iter().zip(&digests) {
            prop_assert_eq!(link.digest, Some(*d), "seed={} index {}", seed, link.index);
            prop_assert_eq!(link.recomputed, Recomputed::Ok, "seed={} index {}", seed, link.index);
        }
        // A page from the middle recomputes its first link from the stored digest before it.
        let mid = l.chain(5, 2).unwrap();
        prop_assert_eq!(mid.links.iter().map(|x| (x.index, x.recomputed)).collect::<Vec<_>>(),
            vec![(5, Recomputed::Ok), (6, Recomputed::Ok)], "seed={}", seed);

        let mut restored = Ledger::open(MemStore::new()).unwrap();
        restored.restore(l.applied_index(), &l.snapshot().unwrap()).unwrap();
        prop_assert_eq!(restored.chain(1, CHAIN_PAGE_MAX).unwrap(), page.clone(), "seed={}", seed);

        // Rewrite history at index k: a stored digest, or one command's result in the journal.
        let k = 1 + pick % batches.len() as u64;
        let key = |tag: u8| { let mut v = vec![tag]; v.extend_from_slice(&k.to_be_bytes()); v };
        let mut store = l.into_store();
        let mut wb = WriteBatch::default();
        if pick % 2 == 0 {
            let mut v = store.get(Cf::Chain, &key(b'd')).unwrap().unwrap();
            v[0] ^= 1;
            wb.put(Cf::Chain, key(b'd'), v);
        } else {
            let mut v = store.get(Cf::Chain, &key(b'b')).unwrap().unwrap();
            v[0] ^= 1; // the log time the link was computed with
            wb.put(Cf::Chain, key(b'b'), v);
        }
        store.write(wb).unwrap();
        let l = Ledger::open(store).unwrap();
        let first_bad = l.chain(1, CHAIN_PAGE_MAX).unwrap().links.iter()
            .find(|x| x.recomputed != Recomputed::Ok).map(|x| x.index);
        prop_assert_eq!(first_bad, Some(k), "seed={} pick={}", seed, pick);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// A snapshot is checked before it replaces a replica's state: a flipped byte (checksum), the
    /// wrong index, and a checksummed snapshot of a state that does not balance (one funded
    /// account's record missing) are refused, and the replica keeps what it had.
    #[test]
    fn snapshots_are_checked_before_they_replace_state(seed in any::<u64>(), at in any::<usize>()) {
        let seed = seed_or(seed);
        let batches = generate(seed, 12);
        let (l, _) = run(MemStore::new(), &batches);
        let (index, snap) = (l.applied_index(), l.snapshot().unwrap());
        let mut replica = Ledger::open(MemStore::new()).unwrap();
        let mut flipped = snap.clone();
        let i = 5 + at % (flipped.len() - 5);
        flipped[i] ^= 0x40;
        prop_assert!(replica.restore(index, &flipped).is_err(), "seed={} byte {}", seed, i);
        prop_assert!(replica.restore(index + 1, &snap).is_err(), "seed={}", seed);
        prop_assert_eq!(replica.applied_index(), 0, "seed={}", seed);

        let funded = l
            .accounts()
            .find(|a| {
                let b = a.state.balances;
                b.debits_posted != b.credits_posted || b.debits_pending != b.credits_pending
            })
            .map(|a| a.info.id);
        prop_assume!(funded.is_some());
        let mut store = l.into_store();
        let mut wb = WriteBatch::default();
        wb.delete(Cf::Accounts, funded.unwrap().to_bytes().to_vec());
        store.write(wb).unwrap();
        let forged = Ledger::open(store).unwrap().snapshot().unwrap();
        let e = replica.restore(index, &forged).unwrap_err();
        prop_assert!(e.to_string().contains("does not balance"), "seed={}: {}", seed, e);
        prop_assert_eq!(replica.applied_index(), 0, "seed={}", seed);
        prop_assert!(replica.restore(index, &snap).is_ok(), "seed={}", seed);
        prop_assert_eq!(replica.applied_index(), index, "seed={}", seed);
    }
}
