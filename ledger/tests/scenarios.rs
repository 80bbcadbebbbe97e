//! The ledger's contract with its caller: log indices, batch limits, history paging and
//! point-in-time balances, snapshots, and the codec. Command behaviour (every result code, holds,
//! expiry, limits, idempotency) is specified by the golden scripts in `tests/golden/`.

mod common;
use common::*;
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
    assert!(r.iter().all(|c| *c == ResultCode::Ok), "{r:?}");
    h.fund(100, 10, "100.00");
    h
}

#[test]
fn batches_apply_one_index_at_a_time() {
    let mut h = setup();
    let empty = |ts| Batch {
        timestamp_ns: ts,
        seed: 0,
        commands: vec![],
    };
    let applied = h.ledger.applied_index();
    // A gap, a repeat and an old index are all refused, and change nothing.
    for index in [applied + 2, applied, 0] {
        assert!(matches!(
            h.ledger.apply(index, &empty(h.now)),
            Err(LedgerError::OutOfOrder { .. })
        ));
    }
    assert_eq!(h.ledger.applied_index(), applied);
    // One entry is one batch of at most BATCH_COMMANDS_MAX commands.
    let too_many = Batch {
        timestamp_ns: h.now,
        seed: 0,
        commands: vec![void(1, 2); BATCH_COMMANDS_MAX + 1],
    };
    assert!(matches!(
        h.ledger.apply(applied + 1, &too_many),
        Err(LedgerError::BatchTooLarge { .. })
    ));
    assert_eq!(h.ledger.applied_index(), applied);
    assert!(h.ledger.apply(applied + 1, &empty(h.now)).is_ok());
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

#[test]
fn declared_currencies_round_trip_and_legacy_commands_keep_their_encoding() {
    let cny = Currency::from_code("CNY");
    let mut t = transfer(1, 2, 3, "1.00");
    // Without a declared currency: the legacy tag 2, byte for byte as before the field existed.
    let legacy = codec::encode_commands(std::slice::from_ref(&t));
    assert_eq!(legacy[5], 2, "tag");
    if let Command::CreateTransfer(c) = &mut t {
        c.legs[0].currency = cny;
    }
    let mut p = post(4, 1, Some("0.50"));
    if let Command::PostPending(c) = &mut p {
        c.currency = cny;
    }
    let cmds = vec![t, p];
    let bytes = codec::encode_commands(&cmds);
    assert_eq!(codec::decode_commands(&bytes).unwrap(), cmds);
    assert_eq!(
        codec::decode_commands(&legacy).unwrap()[0],
        transfer(1, 2, 3, "1.00")
    );
    // Tag 8 with no currency at all is not canonical (the encoder writes tag 2): refused.
    let mut forged = legacy.clone();
    forged[5] = 8;
    let leg_end = 5 + 1 + 16 + 4 + 16 + 16 + 16;
    forged.insert(leg_end, 0);
    assert!(codec::decode_commands(&forged).is_err());
}

#[test]
fn corrupt_account_status_or_flags_are_refused_at_load() {
    let mut h = setup();
    h.one(wallet(50, "CNY"));
    let mut raw = Vec::new();
    h.ledger
        .store()
        .for_each(Cf::Accounts, &mut |k, v| {
            if k == Id(50).to_bytes() {
                raw = v.to_vec();
            }
            Ok(())
        })
        .unwrap();
    // The status byte follows the created timestamp; flags follow the kind. The record ends with
    // the normal side and the (absent) tier: two bytes.
    let status_at = raw.len() - (2 + 1 + 64 + 8 + 4 + 16 + 4 + 4);
    for (at, bad) in [(status_at, 7u8), (1 + 16 + 3 + 1, 0x80)] {
        let mut v = raw.clone();
        v[at] = bad;
        let mut store = MemStore::new();
        let mut wb = WriteBatch::default();
        wb.put(Cf::Accounts, Id(50).to_bytes().to_vec(), v);
        store.write(wb).unwrap();
        assert!(Ledger::open(store).is_err(), "byte {at} = {bad}");
    }
}

/// The event journal keeps the last `EVENT_RETAIN_BATCHES` indexes: older batches' events are
/// deleted as new ones apply, deterministically.
#[test]
fn the_event_journal_keeps_a_bounded_window() {
    let mut l = Ledger::open(MemStore::new()).unwrap();
    let bank = with(system(1, "CNY"), |a| {
        a.credits_must_not_exceed_debits = true
    });
    let setup = vec![bank, wallet(2, "CNY")];
    l.apply(
        1,
        &Batch {
            timestamp_ns: T0,
            seed: 0,
            commands: setup,
        },
    )
    .unwrap();
    let topup = Command::Topup(Topup {
        id: Id(3),
        wallet: Id(2),
        bank: Id(1),
        amount: d("5"),
        currency: None,
    });
    let out = l
        .apply(
            2,
            &Batch {
                timestamp_ns: T0 + SEC,
                seed: 0,
                commands: vec![topup],
            },
        )
        .unwrap();
    assert_eq!(out.events.len(), 1);
    assert_eq!(out.events[0].kind, EventKind::TopupCompleted);
    let (b, _) = l.events(1).unwrap();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].index, 2);
    // Apply empty batches until index 2 falls out of the window.
    let last = EVENT_RETAIN_BATCHES + 2;
    for i in 3..=last {
        l.apply(
            i,
            &Batch {
                timestamp_ns: T0 + i * SEC,
                seed: 0,
                commands: vec![],
            },
        )
        .unwrap();
        if i == last - 1 {
            assert_eq!(l.first_journaled_index(), 2);
            assert_eq!(l.events(2).unwrap().0.len(), 1);
        }
    }
    assert_eq!(l.first_journaled_index(), 3);
    assert!(l.events(1).unwrap().0.is_empty());
    // A scan is bounded: it reports where to continue.
    let (_, next) = l.events(3).unwrap();
    assert_eq!(next, 3 + EVENT_SCAN_INDEXES_MAX);
}

/// Command records live in per-batch history chunks: a batch of 800 transfers spans several
/// chunks, a hold is posted in a later batch (its record written again), and every record reads
/// back the same from the write-behind buffer, from RocksDB after the flush, after a reopen, and
/// on the in-memory store; retries are answered from them.
#[test]
fn command_records_read_back_from_history_chunks_wherever_they_are() {
    let setup = vec![system(1, "CNY"), wallet(10, "CNY"), wallet(11, "CNY")];
    let mut big: Vec<Command> = (0..800u128)
        .map(|i| transfer(1_000 + i, 1, 10 + i % 2, "0.01"))
        .collect();
    big.push(pending(5_000, 1, 10, "7.00", 3_600));
    let later = vec![
        post(5_001, 5_000, Some("3.00")),
        transfer(5_002, 10, 11, "1.00"),
    ];
    let batches = [setup, big, later];
    let ids: Vec<u128> = (1_000..1_800).chain([5_000, 5_001, 5_002]).collect();

    fn run<S: Store>(l: &mut Ledger<S>, batches: &[Vec<Command>]) {
        for (i, commands) in batches.iter().enumerate() {
            let b = Batch {
                timestamp_ns: T0 + i as u64 * SEC,
                seed: 0,
                commands: commands.clone(),
            };
            let out = l.apply(i as u64 + 1, &b).unwrap();
            assert!(out.results.iter().all(|r| r.is_ok()), "{:?}", out.results);
        }
    }
    fn records<S: Store>(
        l: &Ledger<S>,
        ids: &[u128],
    ) -> Vec<(Option<Transfer>, Option<CommandResult>)> {
        ids.iter()
            .map(|&i| (l.transfer(Id(i)).unwrap(), l.command_result(Id(i)).unwrap()))
            .collect()
    }

    let mut mem = Ledger::open(MemStore::new()).unwrap();
    run(&mut mem, &batches);
    let want = records(&mem, &ids);
    assert!(want.iter().all(|(t, r)| t.is_some() && r.is_some()));
    let mut chunks = 0;
    mem.store()
        .for_each(Cf::History, &mut |_, _| {
            chunks += 1;
            Ok(())
        })
        .unwrap();
    assert!(
        chunks >= 4,
        "the big batch spans several chunks: {chunks} in all"
    );
    let hold = want[800].0.as_ref().unwrap();
    assert_eq!(
        hold.state,
        TransferState::PendingPosted,
        "the hold's newest record wins"
    );

    let dir = tempfile::tempdir().unwrap();
    let db = ledger::open_db(dir.path(), &[]).unwrap();
    // A buffer so large it never flushes by itself: the records are read from its maps.
    let store = RocksStore::behind_log_buffered(db, 256 << 20).unwrap();
    let mut l = Ledger::open(store).unwrap();
    run(&mut l, &batches);
    assert_eq!(records(&l, &ids), want, "from the buffer");
    l.store_mut().persist().unwrap();
    assert_eq!(records(&l, &ids), want, "from RocksDB");
    assert_eq!(l.snapshot().unwrap(), mem.snapshot().unwrap());
    // Retried in a new batch: the first outcomes, nothing applied again.
    let retry = Batch {
        timestamp_ns: T0 + 9 * SEC,
        seed: 0,
        commands: batches[1][..3].to_vec(),
    };
    let out = l.apply(4, &retry).unwrap();
    let first: Vec<CommandResult> = want[..3].iter().map(|r| r.1.unwrap()).collect();
    assert_eq!(out.results, first);
    drop(l);
    let reopened = Ledger::open(RocksStore::open(dir.path()).unwrap()).unwrap();
    assert_eq!(records(&reopened, &ids), want, "after a reopen");
    assert!(reopened.verify().is_ok());

    // A lost chunk is found: the records it held no longer read, and verify says so.
    assert!(mem.verify().is_ok());
    // The first chunk of batch 2 (key: index, then chunk number, big-endian).
    let key = [&2u64.to_be_bytes()[..], &0u32.to_be_bytes()[..]].concat();
    assert!(mem.store().get(Cf::History, &key).unwrap().is_some());
    let mut wb = WriteBatch::default();
    wb.delete(Cf::History, key.as_slice());
    mem.store_mut().write(wb).unwrap();
    assert!(mem.transfer(Id(1_000)).is_err());
    assert!(mem.verify().is_err());
}
