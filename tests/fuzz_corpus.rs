//! Replays every fuzz target's seed corpus (`fuzz/corpus/<target>/`) on the stable toolchain, through
//! the same entry points the cargo-fuzz targets call. `SUANPAN_WRITE_CORPUS=1` regenerates the seeds.

use std::path::{Path, PathBuf};

use api::client::cmd as ops;
use api::pb;
use prost::Message;

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn replay(target: &str, f: fn(&[u8])) -> usize {
    let dir = corpus(target);
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        if p.is_file() {
            f(&std::fs::read(&p).unwrap());
            n += 1;
        }
    }
    assert!(n > 0, "empty corpus {}", dir.display());
    n
}

fn write_seeds() {
    let id = |n: u128| ledger::Id(n).to_string();
    let a = ledger::Id(0xA);
    let b = ledger::Id(0xB);
    let requests = vec![
        vec![ops::create_account(a, "CNY", pb::AccountKind::Wallet)],
        vec![ops::transfer(ledger::Id(1), a, b, "12.50", "CNY")],
        vec![
            ops::pending_transfer(ledger::Id(2), a, b, "1.00", "CNY", 60),
            ops::post_pending(ledger::Id(3), ledger::Id(2), Some(("0.50", "CNY"))),
        ],
        vec![
            ops::void_pending(ledger::Id(4), ledger::Id(2)),
            ops::set_account_status(ledger::Id(5), a, pb::AccountStatus::Frozen),
        ],
        vec![ops::transfer(ledger::Id(6), a, b, "1e5", "CNY")],
        vec![ops::transfer(ledger::Id(7), a, b, "12.345", "CNY")],
        vec![ops::transfer_legs(
            ledger::Id(8),
            vec![ops::leg(a, b, "1", "CNY"), ops::leg(b, a, "2", "CNY")],
            None,
        )],
        // Merchant payments.
        vec![
            ops::create_order(ledger::Id(9), b, "78.50", "CNY", "T-0001", Some(600)),
            ops::pay_qr(ledger::Id(10), a, "000201010212", None),
            ops::pay_qr(ledger::Id(11), a, "000201010211", Some(("3", "CNY"))),
            ops::close_order(ledger::Id(12), ledger::Id(9)),
            ops::refund(ledger::Id(13), ledger::Id(9), "1.00", "CNY", "cold"),
            ops::pay_bill(ledger::Id(14), a, b, "2026-11-0042", "99", "CNY"),
        ],
        vec![
            ops::bind_paycode(ledger::Id(15), a, &[7; 32], Some(("2000", "CNY"))),
            ops::revoke_paycode(ledger::Id(16), a),
            ops::pay_code(
                ledger::Id(17),
                b,
                &format!("spc1:{}", "ab".repeat(104)),
                "25",
                "CNY",
            ),
            ops::topup(ledger::Id(18), a, b, "100", "CNY"),
            ops::withdraw(pb::Withdraw {
                id: id(19),
                wallet_id: a.to_string(),
                bank_account_id: b.to_string(),
                amount: "60".into(),
                currency: "CNY".into(),
                fee_bps: 10,
                fee_account_id: Some(id(20)),
                expires_in_seconds: Some(3600),
            }),
            ops::settle_withdrawal(ledger::Id(21), ledger::Id(19), true),
            ops::settle_withdrawal(ledger::Id(22), ledger::Id(19), false),
        ],
        // Social payments, in-app currencies and tiers.
        vec![
            ops::create_group(ledger::Id(30), "trip", &[a, b]),
            ops::create_split(pb::CreateSplit {
                id: id(31),
                payer_account_id: a.to_string(),
                total: "100".into(),
                currency: "CNY".into(),
                participant_ids: vec![a.to_string(), b.to_string()],
                mode: pb::SplitMode::Shares as i32,
                values: vec!["1".into(), "2".into()],
                note: "dinner".into(),
                group_id: Some(id(30)),
                expires_in_seconds: Some(3600),
            }),
            ops::settle_group(ledger::Id(32), ledger::Id(30)),
            ops::create_redpacket(pb::CreateRedPacket {
                id: id(33),
                sender_account_id: a.to_string(),
                total: "8.88".into(),
                currency: "CNY".into(),
                count: 3,
                random: true,
                expires_in_seconds: None,
                group_id: Some(id(30)),
            }),
            ops::claim_redpacket(ledger::Id(34), ledger::Id(33), b),
        ],
        vec![
            ops::define_currency(ledger::Id(40), "QCOIN", 0, "Q-coins"),
            ops::set_rate(ledger::Id(41), "CNY", "QCOIN", "10.5"),
            ops::convert(pb::Convert {
                id: id(42),
                from_account_id: a.to_string(),
                to_account_id: b.to_string(),
                amount: "10.00".into(),
                currency: "CNY".into(),
                expect_rate: Some("10.5".into()),
            }),
            ops::define_tier(
                ledger::Id(43),
                "verified",
                pb::Limits {
                    per_transfer_max: Some("5000".into()),
                    ..Default::default()
                },
            ),
            ops::set_account_tier(ledger::Id(44), a, "verified"),
            ops::set_setting(ledger::Id(45), "business-utc-offset", "+08:00"),
        ],
    ];
    let dir = corpus("submit_request");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, cmds) in requests.into_iter().enumerate() {
        std::fs::write(
            dir.join(format!("seed-{i}")),
            pb::SubmitRequest { commands: cmds }.encode_to_vec(),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("seed-bad-uuid"),
        pb::SubmitRequest {
            commands: vec![pb::Command {
                kind: Some(pb::command::Kind::VoidPending(pb::VoidPending {
                    id: "nope".into(),
                    pending_id: id(1),
                })),
            }],
        }
        .encode_to_vec(),
    )
    .unwrap();
    let dir = corpus("signed_request");
    std::fs::create_dir_all(&dir).unwrap();
    for mode in [0u8, 1, 3, 7, 15, 5, 6] {
        let mut v = vec![mode];
        v.extend_from_slice(b"nonce-000001");
        v.extend_from_slice(
            &pb::SubmitRequest {
                commands: vec![ops::transfer(ledger::Id(1), a, b, "1.00", "CNY")],
            }
            .encode_to_vec(),
        );
        std::fs::write(dir.join(format!("seed-mode-{mode}")), v).unwrap();
    }
    let dir = corpus("ledger_codec");
    std::fs::create_dir_all(&dir).unwrap();
    let cmds = vec![
        ledger::Command::VoidPending(ledger::VoidPending {
            id: ledger::Id(1),
            pending_id: ledger::Id(2),
        }),
        ledger::Command::PostPending(ledger::PostPending {
            id: ledger::Id(3),
            pending_id: ledger::Id(2),
            amount: Some(rust_decimal::Decimal::new(1250, 2)),
            currency: None,
        }),
    ];
    std::fs::write(dir.join("seed-0"), ledger::codec::encode_commands(&cmds)).unwrap();
    // One of each merchant-payment command.
    let dec = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
    let cny = ledger::Currency::from_code("CNY");
    let flows = vec![
        ledger::Command::CreateOrder(ledger::CreateOrder {
            id: ledger::Id(10),
            merchant: b,
            amount: dec("78.50"),
            currency: cny,
            reference: "T-0001".into(),
            expires_in_seconds: Some(600),
        }),
        ledger::Command::PayQr(ledger::PayQr {
            id: ledger::Id(11),
            payer: a,
            qr: "000201010211".into(),
            amount: Some(dec("3")),
            currency: cny,
        }),
        ledger::Command::CloseOrder(ledger::CloseOrder {
            id: ledger::Id(12),
            order: ledger::Id(10),
        }),
        ledger::Command::Refund(ledger::Refund {
            id: ledger::Id(13),
            order: ledger::Id(10),
            amount: dec("1"),
            currency: None,
            reason: "cold".into(),
        }),
        ledger::Command::PayBill(ledger::PayBill {
            id: ledger::Id(14),
            payer: a,
            biller: b,
            bill_ref: "B-1".into(),
            amount: dec("99"),
            currency: cny,
        }),
        ledger::Command::BindPaycode(ledger::BindPaycode {
            id: ledger::Id(15),
            wallet: a,
            public_key: [7; 32],
            paycode_max: None,
        }),
        ledger::Command::RevokePaycode(ledger::RevokePaycode {
            id: ledger::Id(16),
            wallet: a,
        }),
        ledger::Command::PayCode(ledger::PayCode {
            id: ledger::Id(17),
            merchant: b,
            token: ledger::paycode::Token {
                wallet: a,
                nonce: [1; 16],
                expires_ns: 1,
                signature: [2; 64],
            },
            amount: dec("25"),
            currency: cny,
        }),
        ledger::Command::Topup(ledger::Topup {
            id: ledger::Id(18),
            wallet: a,
            bank: b,
            amount: dec("100"),
            currency: cny,
        }),
        ledger::Command::Withdraw(ledger::Withdraw {
            id: ledger::Id(19),
            wallet: a,
            bank: b,
            amount: dec("60"),
            currency: cny,
            fee_bps: 10,
            fee_account: Some(ledger::Id(20)),
            expires_in_seconds: None,
        }),
        ledger::Command::CompleteWithdrawal(ledger::CompleteWithdrawal {
            id: ledger::Id(21),
            withdrawal: ledger::Id(19),
        }),
        ledger::Command::FailWithdrawal(ledger::FailWithdrawal {
            id: ledger::Id(22),
            withdrawal: ledger::Id(19),
        }),
    ];
    std::fs::write(
        dir.join("seed-flows"),
        ledger::codec::encode_commands(&flows),
    )
    .unwrap();
    std::fs::write(dir.join("seed-empty"), ledger::codec::encode_commands(&[])).unwrap();
    // Configuration commands, with an in-app currency declared on a conversion.
    let qcoin = ledger::Currency::declared("QCOIN");
    let config = vec![
        ledger::Command::DefineCurrency(ledger::DefineCurrency {
            id: ledger::Id(40),
            code: "QCOIN".into(),
            scale: 0,
            name: "Q-coins".into(),
        }),
        ledger::Command::SetRate(ledger::SetRate {
            id: ledger::Id(41),
            from: cny.unwrap(),
            to: qcoin.unwrap(),
            rate: dec("10.5"),
        }),
        ledger::Command::Convert(ledger::Convert {
            id: ledger::Id(42),
            from: a,
            to: b,
            amount: dec("10"),
            currency: qcoin,
            expect_rate: None,
        }),
        ledger::Command::SetAccountTier(ledger::SetAccountTier {
            id: ledger::Id(44),
            account: a,
            tier: "verified".into(),
        }),
        ledger::Command::SetSetting(ledger::SetSetting {
            id: ledger::Id(45),
            key: "business-utc-offset".into(),
            value: "+08:00".into(),
        }),
    ];
    std::fs::write(
        dir.join("seed-config"),
        ledger::codec::encode_commands(&config),
    )
    .unwrap();

    // EMV payloads: the EMVCo sample, a static and a dynamic code, and broken ones.
    let dir = corpus("emv_payload");
    std::fs::create_dir_all(&dir).unwrap();
    let sample = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A";
    use ledger::emv::{self, DataObject};
    let mut objects = vec![
        DataObject::new(emv::ID_PAYLOAD_FORMAT, "01"),
        DataObject::new(emv::ID_POINT_OF_INITIATION, emv::POI_STATIC),
        DataObject::template("26", vec![DataObject::new("00", "com.suanpan")]).unwrap(),
        DataObject::new(emv::ID_MCC, "5814"),
        DataObject::new(emv::ID_CURRENCY, "156"),
        DataObject::new(emv::ID_COUNTRY, "CN"),
        DataObject::new(emv::ID_MERCHANT_NAME, "NOODLES"),
        DataObject::new(emv::ID_MERCHANT_CITY, "CHONGQING"),
    ];
    let static_code = emv::build(&objects).unwrap();
    objects[1] = DataObject::new(emv::ID_POINT_OF_INITIATION, emv::POI_DYNAMIC);
    objects.push(DataObject::new(emv::ID_AMOUNT, "12.50"));
    objects.push(
        DataObject::template(
            emv::ID_ADDITIONAL_DATA,
            vec![DataObject::new(emv::SUB_ID_REFERENCE, "T-001")],
        )
        .unwrap(),
    );
    let dynamic = emv::build(&objects).unwrap();
    let seeds = [
        sample.to_string(),
        static_code,
        dynamic,
        sample.replace("A13A", "A13B"),
        format!("{sample}01"),
        "0002019999".to_string(),
    ];
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i}")), s).unwrap();
    }
}

/// Programs for `ledger_apply`: batches of encoded commands (`ledger::fuzzing`'s format) — accounts
/// and top-ups, transfers and holds, then posts, voids and expiries after time passes, plus every
/// `ledger_codec` seed as a batch of its own after the setup.
fn write_apply_seeds() {
    use ledger::*;
    let dec = |s: &str| s.parse::<rust_decimal::Decimal>().unwrap();
    let account = |n: u128, kind: AccountKind| {
        Command::CreateAccount(CreateAccount::basic(Id(n), "CNY", kind))
    };
    let transfer = |n: u128, from: u128, to: u128, amount: &str, hold: Option<u64>| {
        Command::CreateTransfer(CreateTransfer::single(
            Id(n),
            Id(from),
            Id(to),
            dec(amount),
            hold,
        ))
    };
    let program = |batches: &[(u8, Vec<Command>)]| {
        let mut v = Vec::new();
        for (dt, cmds) in batches {
            let bytes = codec::encode_commands(cmds);
            v.extend_from_slice(&(bytes.len() as u16).to_be_bytes());
            v.push(*dt);
            v.extend_from_slice(&bytes);
        }
        v
    };
    let setup = vec![
        account(1, AccountKind::System),
        account(0xA, AccountKind::Wallet),
        account(0xB, AccountKind::Wallet),
        account(0xC, AccountKind::Merchant),
        transfer(100, 1, 0xA, "500.00", None),
        transfer(101, 1, 0xB, "80.00", None),
    ];
    let moves = vec![
        transfer(200, 0xA, 0xB, "12.50", None),
        transfer(201, 0xB, 0xA, "1000.00", None),
        transfer(202, 0xA, 0xC, "30.00", Some(5)),
        transfer(203, 0xB, 0xC, "10.00", Some(60)),
        transfer(200, 0xA, 0xB, "12.50", None),
        transfer(200, 0xA, 0xB, "13.00", None),
    ];
    let settle = vec![
        Command::PostPending(PostPending {
            id: Id(300),
            pending_id: Id(203),
            amount: Some(dec("4.00")),
            currency: None,
        }),
        Command::VoidPending(VoidPending {
            id: Id(301),
            pending_id: Id(202),
        }),
        Command::SetAccountStatus(SetAccountStatus {
            id: Id(302),
            account: Id(0xB),
            status: AccountStatus::Frozen,
        }),
        transfer(303, 0xB, 0xA, "1.00", None),
    ];
    let dir = corpus("ledger_apply");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("seed-bank"),
        program(&[(0, setup.clone()), (1, moves), (10, settle)]),
    )
    .unwrap();
    for e in std::fs::read_dir(corpus("ledger_codec")).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        let Ok(cmds) = codec::decode_commands(&bytes) else {
            continue;
        };
        if !p.file_name().unwrap().to_string_lossy().starts_with("seed") {
            continue;
        }
        let name = format!("from-{}", p.file_name().unwrap().to_string_lossy());
        std::fs::write(dir.join(name), program(&[(0, setup.clone()), (1, cmds)])).unwrap();
    }
}

#[test]
fn fuzz_seed_corpora_replay_cleanly() {
    if std::env::var("SUANPAN_WRITE_CORPUS").is_ok() {
        write_seeds();
        write_apply_seeds();
        for (target, seeds) in [
            ("ledger_snapshot", ledger::fuzzing::snapshot_seeds()),
            ("peer_frames", consensus::fuzzing::seed_inputs()),
        ] {
            let dir = corpus(target);
            std::fs::create_dir_all(&dir).unwrap();
            for (i, s) in seeds.iter().enumerate() {
                std::fs::write(dir.join(format!("seed-{i}")), s).unwrap();
            }
        }
    }
    let n = replay("ledger_apply", ledger::fuzzing::fuzz_apply)
        + replay("ledger_snapshot", ledger::fuzzing::fuzz_snapshot)
        + replay("peer_frames", consensus::fuzzing::fuzz_peer_frames)
        + replay("ledger_codec", ledger::codec::fuzz_decode_commands)
        + replay("emv_payload", ledger::emv::fuzz_parse)
        + replay("submit_request", api::fuzzing::submit_request)
        + replay("signed_request", api::fuzzing::signed_request)
        + replay("statement_camt053", |d| {
            api::statement::fuzz_parse(api::statement::Format::Camt053, d)
        })
        + replay("statement_mt940", |d| {
            api::statement::fuzz_parse(api::statement::Format::Mt940, d)
        })
        + replay("statement_csv", |d| {
            api::statement::fuzz_parse(api::statement::Format::Csv, d)
        });
    eprintln!("replayed {n} corpus inputs");
}
