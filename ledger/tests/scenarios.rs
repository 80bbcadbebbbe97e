//! Table tests: every result code, two-phase flows and expiry, history and point-in-time balances.

mod common;
use common::*;
use ledger::ResultCode::*;
use ledger::*;

/// Bank (system, id 1) and wallets 10, 11 in CNY, plus a USD wallet 20 and a JPY wallet 30.
fn setup() -> Harness {
    let mut h = Harness::new();
    let r = h.apply(vec![
        system(1, "CNY"),
        wallet(10, "CNY"),
        wallet(11, "CNY"),
        system(2, "USD"),
        wallet(20, "USD"),
        system(3, "JPY"),
        wallet(30, "JPY"),
    ]);
    assert!(r.iter().all(|c| *c == Ok), "{r:?}");
    h.fund(100, 10, "100.00");
    h
}

#[test]
fn every_transfer_error_code() {
    let cases: Vec<(&str, Command, ResultCode)> = vec![
        ("ok", transfer(1000, 10, 11, "1.00"), Ok),
        ("zero", transfer(1001, 10, 11, "0"), AmountZero),
        ("negative", transfer(1002, 10, 11, "-1"), AmountNegative),
        (
            "precision CNY",
            transfer(1003, 10, 11, "12.345"),
            AmountPrecision,
        ),
        (
            "precision JPY",
            transfer(1004, 3, 30, "1.5"),
            AmountPrecision,
        ),
        (
            "overflow",
            transfer(1005, 1, 11, "79228162514264337593543950335"),
            Overflow,
        ),
        (
            "unknown debit",
            transfer(1006, 99, 11, "1"),
            AccountNotFound,
        ),
        (
            "unknown credit",
            transfer(1007, 10, 99, "1"),
            AccountNotFound,
        ),
        (
            "currency mismatch",
            transfer(1008, 10, 20, "1"),
            CurrencyMismatch,
        ),
        ("same account", transfer(1009, 10, 10, "1"), SameAccount),
        ("no legs", legs(1010, &[]), NoLegs),
        (
            "insufficient",
            transfer(1011, 11, 10, "5.00"),
            InsufficientFunds,
        ),
        ("zero id", transfer(0, 10, 11, "1"), InvalidId),
        (
            "timeout zero",
            pending(1012, 10, 11, "1", 0),
            InvalidTimeout,
        ),
        (
            "timeout huge",
            pending(1013, 10, 11, "1", 365 * 24 * 3600),
            InvalidTimeout,
        ),
        ("post unknown", post(1014, 424242, None), PendingNotFound),
        (
            "post of a posted transfer",
            post(1015, 100, None),
            PendingNotFound,
        ),
        ("void unknown", void(1016, 424242), PendingNotFound),
        (
            "status unknown account",
            status(1017, 99, AccountStatus::Frozen),
            AccountNotFound,
        ),
    ];
    let mut h = setup();
    for (name, cmd, want) in cases {
        assert_eq!(h.one(cmd), want, "case {name}");
    }
    // Too many legs.
    let many: Vec<(u128, u128, &str)> = (0..65).map(|_| (10u128, 11u128, "0.01")).collect();
    assert_eq!(h.one(legs(1020, &many)), TooManyLegs);
    // Failures moved nothing.
    assert_eq!(h.balance(10), d("99.00"));
    assert_eq!(h.balance(11), d("1.00"));
    h.ledger.verify().unwrap();
}

#[test]
fn account_creation_errors() {
    let mut h = Harness::new();
    let big = "1".repeat(65);
    let cases: Vec<(Command, ResultCode)> = vec![
        (wallet(1, "XXX"), InvalidCurrency),
        (wallet(2, "cny"), InvalidCurrency),
        (
            with(wallet(3, "CNY"), |a| {
                a.credits_must_not_exceed_debits = true
            }),
            InvalidFlags,
        ),
        (
            with(account(4, "CNY", AccountKind::System), |a| {
                a.overdraft = Some(d("5"))
            }),
            InvalidFlags,
        ),
        (
            with(wallet(5, "CNY"), |a| a.overdraft = Some(d("-5"))),
            AmountNegative,
        ),
        (
            with(wallet(6, "CNY"), |a| {
                a.limits.per_transfer_max = Some(d("0.001"))
            }),
            AmountPrecision,
        ),
        (
            with(wallet(7, "CNY"), |a| a.reference = big.clone()),
            ReferenceTooLong,
        ),
        (
            with(wallet(8, "CNY"), |a| {
                for i in 0..17 {
                    a.metadata.insert(format!("k{i}"), "v".into());
                }
            }),
            MetadataTooLarge,
        ),
        (
            with(wallet(9, "CNY"), |a| {
                a.metadata.insert("k".into(), "v".repeat(129));
            }),
            MetadataTooLarge,
        ),
        (wallet(0, "CNY"), InvalidId),
        (wallet(10, "CNY"), Ok),
    ];
    for (cmd, want) in cases {
        assert_eq!(h.one(cmd.clone()), want, "{cmd:?}");
    }
    assert!(h.ledger.account(Id(3)).is_none());
    assert!(h.ledger.account(Id(10)).is_some());
}

#[test]
fn idempotency_replay_and_conflict() {
    let mut h = setup();
    let t = transfer(500, 10, 11, "10.00");
    h.apply(vec![t.clone()]);
    let first = h.ledger.command_result(Id(500)).unwrap().unwrap();
    // Retry: same outcome (same timestamp), no second movement.
    h.advance(5);
    h.index += 1;
    h.now += SEC;
    let out = h
        .ledger
        .apply(
            h.index,
            &Batch {
                timestamp_ns: h.now,
                seed: 0,
                commands: vec![t.clone()],
            },
        )
        .unwrap();
    assert_eq!(out.results[0], first);
    assert_eq!(h.balance(11), d("10.00"));
    // Changed body under the same id: conflict, nothing moves, the original stays.
    assert_eq!(h.one(transfer(500, 10, 11, "11.00")), IdempotencyConflict);
    assert_eq!(h.balance(11), d("10.00"));
    assert_eq!(h.ledger.command_result(Id(500)).unwrap().unwrap(), first);
    // A business failure is final too: funding afterwards does not make the retry succeed.
    assert_eq!(h.one(transfer(501, 11, 10, "50.00")), InsufficientFunds);
    h.fund(101, 11, "100.00");
    assert_eq!(h.one(transfer(501, 11, 10, "50.00")), InsufficientFunds);
    // Same id twice inside one batch: the second is a replay.
    let r = h.apply(vec![
        transfer(502, 10, 11, "1.00"),
        transfer(502, 10, 11, "1.00"),
        transfer(502, 10, 11, "2.00"),
    ]);
    assert_eq!(r, vec![Ok, Ok, IdempotencyConflict]);
    assert_eq!(h.balance(11), d("111.00"));
    // An account id is a command id.
    assert_eq!(h.one(wallet(10, "CNY")), Ok);
    assert_eq!(h.one(wallet(10, "USD")), IdempotencyConflict);
    h.ledger.verify().unwrap();
}

#[test]
fn multi_leg_is_atomic_and_multi_currency_balances_per_currency() {
    let mut h = setup();
    h.one(transfer(101, 2, 20, "50.00"));
    // CNY and USD legs in one transfer: each currency balances on its own.
    assert_eq!(h.one(legs(600, &[(10, 11, "5.00"), (20, 2, "5.00")])), Ok);
    assert_eq!(h.balance(11), d("5.00"));
    assert_eq!(h.balance(20), d("45.00"));
    // Second leg fails: the first does not apply.
    assert_eq!(
        h.one(legs(601, &[(10, 11, "5.00"), (11, 10, "500.00")])),
        InsufficientFunds
    );
    assert_eq!(h.balance(11), d("5.00"));
    // Legs see earlier legs: 11 receives then spends in one transfer.
    assert_eq!(
        h.one(legs(602, &[(10, 11, "20.00"), (11, 10, "24.00")])),
        Ok
    );
    assert_eq!(h.balance(11), d("1.00"));
    h.ledger.verify().unwrap();
}

#[test]
fn overdraft_flags_and_status() {
    let mut h = setup();
    h.one(with(wallet(12, "CNY"), |a| a.overdraft = Some(d("20.00"))));
    assert_eq!(h.one(transfer(700, 12, 10, "20.00")), Ok);
    assert_eq!(h.one(transfer(701, 12, 10, "0.01")), InsufficientFunds);
    assert_eq!(h.balance(12), d("-20.00"));
    // Credits must not exceed debits (an asset account).
    h.one(with(account(13, "CNY", AccountKind::System), |a| {
        a.credits_must_not_exceed_debits = true
    }));
    assert_eq!(h.one(transfer(702, 10, 13, "1.00")), CreditsExceedDebits);
    assert_eq!(h.one(transfer(703, 13, 10, "3.00")), Ok);
    assert_eq!(h.one(transfer(704, 10, 13, "3.00")), Ok);
    // Frozen: no debits, credits still arrive.
    assert_eq!(h.one(status(705, 10, AccountStatus::Frozen)), Ok);
    assert_eq!(h.one(transfer(706, 10, 11, "1.00")), AccountFrozen);
    assert_eq!(h.one(transfer(707, 1, 10, "1.00")), Ok);
    assert_eq!(h.one(status(708, 10, AccountStatus::Open)), Ok);
    // Closing needs a zero balance; closed accounts take no movement and never reopen.
    assert_eq!(
        h.one(status(709, 10, AccountStatus::Closed)),
        BalanceNotZero
    );
    let bal = h.balance(10).to_string();
    assert_eq!(h.one(transfer(710, 10, 1, &bal)), Ok);
    assert_eq!(h.one(status(711, 10, AccountStatus::Closed)), Ok);
    assert_eq!(h.one(transfer(712, 1, 10, "1.00")), AccountClosed);
    assert_eq!(
        h.one(status(713, 10, AccountStatus::Open)),
        InvalidStatusChange
    );
    // Pending holds keep an account open.
    h.fund(714, 11, "5.00");
    h.one(pending(715, 11, 1, "1.00", 60));
    assert_eq!(h.one(transfer(716, 11, 1, "4.00")), Ok);
    assert_eq!(
        h.one(status(717, 11, AccountStatus::Closed)),
        PendingTransfersOpen
    );
    h.ledger.verify().unwrap();
}

#[test]
fn limits() {
    let mut h = setup();
    h.one(with(wallet(40, "CNY"), |a| {
        a.limits.per_transfer_max = Some(d("50.00"));
        a.limits.daily_outflow_max = Some(d("80.00"));
        a.limits.daily_outflow_count_max = Some(3);
        a.limits.balance_max = Some(d("200.00"));
    }));
    h.fund(800, 40, "150.00");
    assert_eq!(h.one(transfer(801, 1, 40, "50.01")), BalanceLimit);
    assert_eq!(h.one(transfer(802, 40, 11, "50.01")), PerTransferLimit);
    assert_eq!(h.one(transfer(803, 40, 11, "50.00")), Ok);
    assert_eq!(h.one(transfer(804, 40, 11, "30.01")), DailyAmountLimit);
    assert_eq!(h.one(transfer(805, 40, 11, "10.00")), Ok);
    assert_eq!(h.one(transfer(806, 40, 11, "10.00")), Ok);
    assert_eq!(h.one(transfer(807, 40, 11, "1.00")), DailyCountLimit);
    // Next UTC day (log time): counters restart.
    h.advance(86_400);
    assert_eq!(h.one(transfer(808, 40, 11, "20.00")), Ok);
    h.ledger.verify().unwrap();
}

#[test]
fn two_phase_post_void_partial() {
    let mut h = setup();
    assert_eq!(h.one(pending(900, 10, 11, "30.00", 60)), Ok);
    assert_eq!(h.balance(10), d("100.00"));
    assert_eq!(h.available(10), d("70.00"));
    // The hold is honoured by later payments.
    assert_eq!(h.one(transfer(901, 10, 11, "70.01")), InsufficientFunds);
    // Partial post: 20 moves, 10 is released.
    assert_eq!(h.one(post(902, 900, Some("20.00"))), Ok);
    assert_eq!(h.balance(10), d("80.00"));
    assert_eq!(h.available(10), d("80.00"));
    assert_eq!(h.balance(11), d("20.00"));
    assert_eq!(h.one(post(903, 900, None)), PendingAlreadyPosted);
    assert_eq!(h.one(void(904, 900)), PendingAlreadyPosted);
    let t = h.ledger.transfer(Id(900)).unwrap().unwrap();
    assert_eq!(t.state, TransferState::PendingPosted);
    assert_eq!(t.posted_amount, Some(2000));
    let p = h.ledger.transfer(Id(902)).unwrap().unwrap();
    assert_eq!(
        (p.state, p.pending_id, p.legs[0].amount),
        (TransferState::Posted, Some(Id(900)), 2000)
    );

    assert_eq!(h.one(pending(910, 10, 11, "5.00", 60)), Ok);
    assert_eq!(
        h.one(post(911, 910, Some("5.01"))),
        PostAmountExceedsPending
    );
    assert_eq!(h.one(post(912, 910, Some("1.001"))), AmountPrecision);
    assert_eq!(h.one(void(913, 910)), Ok);
    assert_eq!(h.one(void(914, 910)), PendingAlreadyVoided);
    assert_eq!(h.one(post(915, 910, None)), PendingAlreadyVoided);
    assert_eq!(h.available(10), d("80.00"));

    // Multi-leg pending: only full posts.
    assert_eq!(
        h.one(Command::CreateTransfer(CreateTransfer {
            id: Id(920),
            legs: vec![
                LegSpec {
                    debit: Id(10),
                    credit: Id(11),
                    amount: d("1.00")
                },
                LegSpec {
                    debit: Id(10),
                    credit: Id(1),
                    amount: d("0.10")
                },
            ],
            pending_timeout_seconds: Some(60),
            reference: "order-1".into(),
        })),
        Ok
    );
    assert_eq!(h.one(post(921, 920, Some("1.00"))), PartialPostMultiLeg);
    assert_eq!(h.one(post(922, 920, None)), Ok);
    assert_eq!(h.balance(10), d("78.90"));
    h.ledger.verify().unwrap();
}

#[test]
fn two_phase_expiry_by_log_time() {
    let mut h = setup();
    assert_eq!(h.one(pending(1100, 10, 11, "40.00", 10)), Ok);
    assert_eq!(h.one(pending(1101, 10, 11, "10.00", 30)), Ok);
    assert_eq!(h.available(10), d("50.00"));
    // 5 s of log time later, still held.
    h.advance(4);
    h.apply(vec![]);
    assert_eq!(h.available(10), d("50.00"));
    // Past 10 s: the first hold expires at the start of the next batch, before its commands run.
    h.advance(10);
    assert_eq!(h.one(transfer(1102, 10, 11, "60.00")), Ok);
    assert_eq!(
        h.ledger.transfer(Id(1100)).unwrap().unwrap().state,
        TransferState::PendingExpired
    );
    assert_eq!(h.one(post(1103, 1100, None)), PendingExpired);
    assert_eq!(h.one(void(1104, 1100)), PendingExpired);
    // A post arriving exactly at expiry fails: expiry wins ties.
    let due = h
        .ledger
        .transfer(Id(1101))
        .unwrap()
        .unwrap()
        .expires_ns
        .unwrap();
    h.now = due - SEC; // the next batch is stamped exactly `due`
    assert_eq!(h.one(post(1105, 1101, None)), PendingExpired);
    assert_eq!(h.available(10), d("40.00"));
    assert_eq!(h.balance(11), d("60.00"));
    // The expiry is in the history of both accounts.
    let hist = h.ledger.history(Id(10), 0, 100).unwrap();
    assert!(hist
        .iter()
        .any(|p| p.kind == PostingKind::PendingExpire && p.transfer == Id(1100)));
    h.ledger.verify().unwrap();
}

#[test]
fn leader_clock_going_backwards_is_harmless() {
    let mut h = setup();
    let ts = h.ledger.last_timestamp_ns();
    let out = h
        .ledger
        .apply(
            h.index + 1,
            &Batch {
                timestamp_ns: ts - 100 * SEC,
                seed: 1,
                commands: vec![],
            },
        )
        .unwrap();
    assert_eq!(out.timestamp_ns, ts + 1);
    assert!(matches!(
        h.ledger.apply(
            h.index + 1,
            &Batch {
                timestamp_ns: ts,
                seed: 1,
                commands: vec![]
            }
        ),
        Err(LedgerError::OutOfOrder { .. })
    ));
}

#[test]
fn history_pages_and_balance_at() {
    let mut h = setup();
    let mut times = vec![];
    for i in 0..25u128 {
        h.one(transfer(2000 + i, 10, 11, "1.00"));
        times.push(h.ledger.last_timestamp_ns());
    }
    let mut all = vec![];
    let mut after = 0;
    loop {
        let page = h.ledger.history(Id(11), after, 10).unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 10);
        after = page.last().unwrap().seq;
        all.extend(page);
    }
    assert_eq!(all.len(), 25);
    assert!(all.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    assert_eq!(all[24].balances_after.credits_posted, 2500);
    let b = h.ledger.balance_at(Id(11), times[9]).unwrap().unwrap();
    assert_eq!(b.credits_posted, 1000);
    let b = h.ledger.balance_at(Id(11), times[9] - 1).unwrap().unwrap();
    assert_eq!(b.credits_posted, 900);
    let b = h.ledger.balance_at(Id(11), 0).unwrap().unwrap();
    assert_eq!(b, Balances::default());
    assert!(h.ledger.balance_at(Id(999), 0).unwrap().is_none());
}

#[test]
fn clients_register_and_revoke() {
    let mut h = Harness::new();
    let key = [7u8; 32];
    let reg = |id, name: &str| {
        Command::RegisterClient(RegisterClient {
            id: Id(id),
            public_key: key,
            role: ClientRole::Payments,
            name: name.into(),
        })
    };
    assert_eq!(h.one(reg(1, "")), InvalidName);
    assert_eq!(h.one(reg(2, "checkout")), Ok);
    assert_eq!(h.ledger.client(&key).unwrap().role, ClientRole::Payments);
    assert_eq!(
        h.one(Command::RevokeClient(RevokeClient {
            id: Id(3),
            public_key: [8; 32]
        })),
        ClientNotFound
    );
    assert_eq!(
        h.one(Command::RevokeClient(RevokeClient {
            id: Id(4),
            public_key: key
        })),
        Ok
    );
    assert!(h.ledger.client(&key).unwrap().revoked);
}

#[test]
fn snapshot_round_trip_into_another_store() {
    let mut h = setup();
    h.one(pending(3000, 10, 11, "5.00", 60));
    let snap = h.ledger.snapshot().unwrap();
    let mut other = Ledger::open(MemStore::new()).unwrap();
    other.restore(h.index, &snap).unwrap();
    assert_eq!(other.digest(), h.ledger.digest());
    assert_eq!(other.snapshot().unwrap(), snap);
    assert!(other.restore(h.index + 1, &snap).is_err());
    assert!(other.restore(h.index, &snap[..snap.len() - 1]).is_err());
    assert!(other.restore(h.index, b"garbage").is_err());
}

#[test]
fn decoding_garbage_never_panics() {
    let cmds = vec![
        transfer(1, 2, 3, "1.00"),
        pending(4, 5, 6, "7", 8),
        wallet(9, "CNY"),
        post(1, 2, Some("3")),
    ];
    let bytes = codec::encode_commands(&cmds);
    assert_eq!(codec::decode_commands(&bytes).unwrap(), cmds);
    for cut in 0..bytes.len() {
        assert!(codec::decode_commands(&bytes[..cut]).is_err());
    }
    let mut flipped = bytes.clone();
    for i in 0..flipped.len() {
        flipped[i] ^= 0xFF;
        let _ = codec::decode_commands(&flipped);
        flipped[i] ^= 0xFF;
    }
}
