//! The CLI round trip against a real node: wallets, transfers, a two-phase hold, history, watch —
//! every step through `suanpan ... --json`, parsed here.

mod common;

use std::time::Duration;

use common::*;

/// A new key file in `dir`, registered with `role` through the CLI (as the admin).
fn ok(out: &std::process::Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "exit {:?}: stdout={} stderr={}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    json(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_round_trip() {
    let c = Cluster::start(1, &[]);
    c.wait_ready(Duration::from_secs(60)).await;
    let (bank, alice, bob) = (
        "00000000-0000-4000-8000-0000000000b0",
        "00000000-0000-4000-8000-0000000000a1",
        "00000000-0000-4000-8000-0000000000b1",
    );
    let v = ok(&c.cli(&[
        "account",
        "create",
        "--id",
        bank,
        "--currency",
        "CNY",
        "--kind",
        "system",
    ]));
    assert_eq!(v["result"], "ok");
    for w in [alice, bob] {
        assert_eq!(
            ok(&c.cli(&["account", "create", "--id", w, "--currency", "CNY"]))["result"],
            "ok"
        );
    }
    // Retrying a creation is a replay, a different body a conflict (exit 3, structured result).
    assert_eq!(
        ok(&c.cli(&["account", "create", "--id", alice, "--currency", "CNY"]))["result"],
        "ok"
    );
    let out = c.cli(&["account", "create", "--id", alice, "--currency", "USD"]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(json(&out)["result"], "idempotency_conflict");

    let t1 = "00000000-0000-4000-8000-000000000001";
    assert_eq!(
        ok(&c.cli(&["transfer", "--id", t1, "--from", bank, "--to", alice, "--amount", "100.00"]))
            ["result"],
        "ok"
    );
    let t2 = "00000000-0000-4000-8000-000000000002";
    assert_eq!(
        ok(&c.cli(&["transfer", "--id", t2, "--from", alice, "--to", bob, "--amount", "12.50"]))
            ["result"],
        "ok"
    );
    let out = c.cli(&[
        "transfer",
        "--id",
        "00000000-0000-4000-8000-000000000003",
        "--from",
        alice,
        "--to",
        bob,
        "--amount",
        "1000",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(json(&out)["result"], "insufficient_funds");
    // Bad input: a one-line reason, exit 1, nothing applied.
    let out = c.cli(&[
        "transfer",
        "--id",
        "00000000-0000-4000-8000-000000000004",
        "--from",
        alice,
        "--to",
        bob,
        "--amount",
        "1.234",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim().lines().count(),
        1
    );

    // Two-phase: hold 30, post 25.
    let p = "00000000-0000-4000-8000-000000000010";
    assert_eq!(
        ok(&c.cli(&[
            "transfer",
            "--id",
            p,
            "--from",
            alice,
            "--to",
            bob,
            "--amount",
            "30.00",
            "--pending",
            "--timeout",
            "600"
        ]))["result"],
        "ok"
    );
    let v = ok(&c.cli(&["account", "get", alice]));
    assert_eq!(v["accounts"][0]["balance"], "87.50");
    assert_eq!(v["accounts"][0]["available"], "57.50");
    let post = "00000000-0000-4000-8000-000000000011";
    assert_eq!(
        ok(&c.cli(&[
            "transfer",
            "post",
            "--id",
            post,
            "--pending-id",
            p,
            "--amount",
            "25.00"
        ]))["result"],
        "ok"
    );
    let v = ok(&c.cli(&["transfer", "get", p, post]));
    assert_eq!(v["transfers"][0]["state"], "pending_posted");
    assert_eq!(v["transfers"][1]["state"], "posted");
    let v = ok(&c.cli(&["account", "get", alice, bob]));
    assert_eq!(v["accounts"][0]["balance"], "62.50");
    assert_eq!(v["accounts"][0]["available"], "62.50");
    assert_eq!(v["accounts"][1]["balance"], "37.50");

    // History, paged.
    let v = ok(&c.cli(&["history", alice, "--limit", "2"]));
    assert_eq!(v["postings"].as_array().unwrap().len(), 2);
    assert_eq!(v["postings"][0]["side"], "credit");
    let cursor = v["next_cursor"].as_u64().expect("more pages");
    let v = ok(&c.cli(&[
        "history",
        alice,
        "--limit",
        "10",
        "--after",
        &cursor.to_string(),
    ]));
    let kinds: Vec<&str> = v["postings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["pending_hold", "pending_post"]);
    assert!(v["next_cursor"].is_null());

    // Watch from the start: the first transfer appears with its result.
    let out = c.cli(&["watch", "--from", "1", "--count", "8"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        events.iter().any(|e| e["id"] == t2
            && e["result"] == "ok"
            && e["command"]["type"] == "create_transfer"),
        "{events:?}"
    );

    // Ids are generated (time-ordered) when --id is omitted, and printed for retries.
    let v = ok(&c.cli(&["account", "create", "--currency", "CNY"]));
    let generated = v["id"].as_str().expect("generated id").to_string();
    assert_eq!(&generated[14..15], "7", "a UUIDv7: {generated}");
    let v = ok(&c.cli(&[
        "transfer", "--from", alice, "--to", &generated, "--amount", "1.00",
    ]));
    assert_eq!(v["result"], "ok");
    assert_ne!(v["id"], generated);

    // Exit codes as docs/cli.md says: an unknown account is 3, a usage mistake 2.
    let ghost = "00000000-0000-4000-8000-00000000dead";
    for args in [
        vec!["history", ghost],
        vec!["account", "balance-at", ghost, "--at-ns", "1"],
    ] {
        let out = c.cli(&args);
        assert_eq!(out.status.code(), Some(3), "{args:?}");
        assert_eq!(json(&out)["error"], "not_found", "{args:?}");
    }
    let out = c.cli(&["transfer", "--from", alice, "--amount", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = c.cli(&["transfer", "--bogus-flag"]);
    assert_eq!(out.status.code(), Some(2));

    // A system account with an overdraft but no debits check: invalid_flags, and what to do.
    let out = c.cli(&[
        "account",
        "create",
        "--currency",
        "CNY",
        "--kind",
        "system",
        "--overdraft",
        "5",
    ]);
    assert_eq!(out.status.code(), Some(3));
    let v = json(&out);
    assert_eq!(v["result"], "invalid_flags");
    assert!(
        v["hint"]
            .as_str()
            .unwrap_or("")
            .contains("--debits-must-not-exceed-credits"),
        "{v}"
    );

    // Merchants: created with a profile and a fee account; the profile reads back; a field over its
    // EMV limit is refused before proposing (exit 1).
    let v = ok(&c.cli(&[
        "merchant",
        "create",
        "--currency",
        "CNY",
        "--name",
        "小面馆",
        "--city",
        "重庆",
        "--mcc",
        "5814",
        "--fee-bps",
        "60",
        "--fee-account",
        bank,
    ]));
    let shop = v["id"].as_str().unwrap().to_string();
    let v = ok(&c.cli(&["merchant", "get", &shop]));
    assert_eq!(v["merchants"][0]["name"], "小面馆");
    assert_eq!(v["merchants"][0]["fee_bps"], 60);
    assert_eq!(v["merchants"][0]["fee_account"], bank);
    let v = ok(&c.cli(&["account", "get", &shop]));
    assert_eq!(v["accounts"][0]["kind"], "merchant");
    // The merchant's static QR code: a payload `qr parse` accepts, naming the merchant, written as a
    // PNG that decodes back to the same payload, and as an SVG.
    let dir = tempfile::tempdir().unwrap();
    let (png, svg) = (dir.path().join("code.png"), dir.path().join("code.svg"));
    let v = ok(&c.cli(&[
        "qr",
        "static",
        "--merchant",
        &shop,
        "--png",
        png.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ]));
    let payload = v["payload"].as_str().unwrap().to_string();
    let parsed = ok(&c.cli(&["qr", "parse", &payload]));
    let objects = parsed["objects"].as_array().unwrap();
    let get = |id: &str| objects.iter().find(|o| o["id"] == id).unwrap().clone();
    assert_eq!(get("01")["value"], "11");
    assert_eq!(get("26")["children"][1]["value"], shop.as_str());
    assert_eq!(get("59")["value"], "小面馆");
    assert_eq!(get("53")["value"], "156");
    assert_eq!(decode_png_qr(&png), payload);
    assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
    let out = c.cli(&["qr", "static", "--merchant", ghost]);
    assert_eq!(out.status.code(), Some(3));
    let out = c.cli(&[
        "merchant",
        "create",
        "--currency",
        "CNY",
        "--name",
        &"N".repeat(26),
        "--city",
        "X",
        "--mcc",
        "5814",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let out = c.cli(&[
        "merchant",
        "create",
        "--currency",
        "CNY",
        "--name",
        "N",
        "--city",
        "X",
        "--mcc",
        "5814",
        "--fee-bps",
        "50",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(json(&out)["result"], "invalid_fee");

    // Status of the one-node cluster.
    let v = ok(&c.cli(&["cluster", "status"]));
    assert_eq!(v["members"][0]["role"], "leader");
    assert!(v["members"][0]["applied_index"].as_u64().unwrap() > 0);
}

/// Merchant payments through the CLI: a QR order made, drawn, paid once, refunded in two parts;
/// a static code paid; a bill paid once; an order closed; `order get` in the documented shape.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merchant_payments_through_the_cli() {
    let c = Cluster::start(1, &[]);
    c.wait_ready(Duration::from_secs(60)).await;
    let (bank, fees, alice) = (
        "00000000-0000-4000-8000-0000000000b0",
        "00000000-0000-4000-8000-0000000000f0",
        "00000000-0000-4000-8000-0000000000a1",
    );
    for (id, kind) in [(bank, "system"), (fees, "system"), (alice, "wallet")] {
        let out = c.cli(&[
            "account",
            "create",
            "--id",
            id,
            "--currency",
            "CNY",
            "--kind",
            kind,
        ]);
        assert_eq!(ok(&out)["result"], "ok");
    }
    ok(&c.cli(&["transfer", "--from", bank, "--to", alice, "--amount", "500"]));
    let shop = "00000000-0000-4000-8000-00000000005b";
    let v = ok(&c.cli(&[
        "merchant",
        "create",
        "--id",
        shop,
        "--currency",
        "CNY",
        "--name",
        "WANDA CINEMA",
        "--city",
        "BEIJING",
        "--mcc",
        "7832",
        "--fee-bps",
        "60",
        "--fee-account",
        fees,
    ]));
    assert_eq!(v["result"], "ok");

    // A QR order: its payload is valid EMV with the amount and the order number, and the PNG decodes
    // back to it.
    let order = "00000000-0000-4000-8000-0000000000d1";
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("order.png");
    let v = ok(&c.cli(&[
        "qr",
        "order",
        "--id",
        order,
        "--merchant",
        shop,
        "--amount",
        "78.50",
        "--reference",
        "T-0001",
        "--png",
        png.to_str().unwrap(),
    ]));
    assert_eq!(v["result"], "ok");
    let payload = v["payload"].as_str().unwrap().to_string();
    assert_eq!(decode_png_qr(&png), payload);
    let parsed = ok(&c.cli(&["qr", "parse", &payload]));
    let objects = parsed["objects"].as_array().unwrap();
    let get = |id: &str| objects.iter().find(|o| o["id"] == id).unwrap().clone();
    assert_eq!(get("01")["value"], "12");
    assert_eq!(get("54")["value"], "78.50");
    assert_eq!(get("62")["children"][0]["value"], "T-0001");

    // Paid once; a different amount, a second payment: their own codes (exit 3).
    let out = c.cli(&[
        "pay", "--payer", alice, "--qr", &payload, "--amount", "78.00",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(json(&out)["result"], "amount_mismatch");
    let pay = "00000000-0000-4000-8000-0000000000e1";
    assert_eq!(
        ok(&c.cli(&["pay", "--id", pay, "--payer", alice, "--qr", &payload]))["result"],
        "ok"
    );
    let out = c.cli(&["pay", "--payer", alice, "--qr", &payload]);
    assert_eq!(json(&out)["result"], "order_already_paid");
    // Refunded in two parts: the whole fee (0.47) comes back.
    for (amount, state) in [("30", "partially_refunded"), ("48.50", "refunded")] {
        let v = ok(&c.cli(&[
            "refund", "--order", order, "--amount", amount, "--reason", "late",
        ]));
        assert_eq!(v["result"], "ok");
        let v = ok(&c.cli(&["order", "get", order]));
        assert_eq!(v["orders"][0]["state"], state);
    }
    let v = ok(&c.cli(&["order", "get", order]));
    let o = &v["orders"][0];
    for key in [
        "id",
        "merchant",
        "state",
        "amount",
        "currency",
        "paid_amount",
        "refunded_amount",
        "fee",
        "fee_refunded",
        "payer",
        "reference",
        "expires_ns",
        "payload",
    ] {
        assert!(o.get(key).is_some(), "order get lacks {key}: {o}");
    }
    assert_eq!(o["fee"], "0.47");
    assert_eq!(o["fee_refunded"], "0.47");
    assert_eq!(o["refunded_amount"], "78.50");
    assert_eq!(o["payer"], alice);
    assert_eq!(o["payload"], payload.as_str());
    let out = c.cli(&["refund", "--order", order, "--amount", "0.01"]);
    assert_eq!(json(&out)["result"], "refund_exceeds_paid");

    // A static code: the amount is required.
    let v = ok(&c.cli(&["qr", "static", "--merchant", shop]));
    let code = v["payload"].as_str().unwrap().to_string();
    let out = c.cli(&["pay", "--payer", alice, "--qr", &code]);
    assert_eq!(json(&out)["result"], "amount_required");
    let v = ok(&c.cli(&["pay", "--payer", alice, "--qr", &code, "--amount", "33"]));
    let static_payment = v["id"].as_str().unwrap().to_string();
    let v = ok(&c.cli(&["order", "get", &static_payment]));
    assert_eq!(v["orders"][0]["kind"], "static");
    assert_eq!(v["orders"][0]["state"], "paid");

    // A bill, paid once.
    let bill = [
        "bill",
        "pay",
        "--payer",
        alice,
        "--biller",
        shop,
        "--bill-ref",
        "2026-11-42",
    ];
    let v = ok(&c.cli(&[&bill[..], &["--amount", "12"]].concat()));
    assert_eq!(v["result"], "ok");
    let out = c.cli(&[&bill[..], &["--amount", "12"]].concat());
    assert_eq!(json(&out)["result"], "bill_already_paid");

    // An order closed cannot be paid; unknown orders exit 3.
    let v = ok(&c.cli(&[
        "qr",
        "order",
        "--merchant",
        shop,
        "--amount",
        "5",
        "--reference",
        "T-0002",
        "--expires-in",
        "60",
    ]));
    let (o2, p2) = (
        v["id"].as_str().unwrap().to_string(),
        v["payload"].as_str().unwrap().to_string(),
    );
    assert_eq!(
        ok(&c.cli(&["order", "close", "--order", &o2]))["result"],
        "ok"
    );
    let out = c.cli(&["pay", "--payer", alice, "--qr", &p2]);
    assert_eq!(json(&out)["result"], "order_closed");
    let ghost = "00000000-0000-4000-8000-0000000000ff";
    let out = c.cli(&["order", "get", ghost]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(json(&out)["not_found"][0], ghost);
    let out = c.cli(&["refund", "--order", ghost, "--amount", "1"]);
    assert_eq!(out.status.code(), Some(3));
    // An order number over 25 characters is refused at the wire (exit 1, nothing proposed).
    let out = c.cli(&[
        "qr",
        "order",
        "--merchant",
        shop,
        "--amount",
        "5",
        "--reference",
        &"R".repeat(26),
    ]);
    assert_eq!(out.status.code(), Some(1));

    // Balances: alice paid 78.50 (refunded), 33 and 12; the merchant kept 33 + 12 less fees.
    let v = ok(&c.cli(&["account", "get", alice]));
    assert_eq!(v["accounts"][0]["balance"], "455.00");
    let v = ok(&c.cli(&["account", "get", fees]));
    assert_eq!(v["accounts"][0]["balance"], "0.27"); // 0.198 → 0.20 and 0.072 → 0.07

    // A payment code: the device key bound, a code made offline, charged once; the second scan
    // and a code over the wallet's limit are refused.
    let device = dir.path().join("phone.key");
    let v = ok(&std::process::Command::new(BIN)
        .args(["keys", "gen", "--out", device.to_str().unwrap(), "--json"])
        .output()
        .unwrap());
    let pk = v["public_key"].as_str().unwrap().to_string();
    let v = ok(&c.cli(&[
        "paycode",
        "bind",
        "--wallet",
        alice,
        "--public-key",
        &pk,
        "--paycode-max",
        "100",
    ]));
    assert_eq!(v["result"], "ok");
    let v = ok(&c.cli(&[
        "paycode",
        "make",
        "--wallet",
        alice,
        "--device-key",
        device.to_str().unwrap(),
    ]));
    let code = v["code"].as_str().unwrap().to_string();
    assert!(code.starts_with("spc1:"));
    let out = c.cli(&[
        "pay",
        "code",
        "--merchant",
        shop,
        "--code",
        &code,
        "--amount",
        "100.01",
    ]);
    assert_eq!(json(&out)["result"], "paycode_limit");
    let v = ok(&c.cli(&[
        "pay",
        "code",
        "--merchant",
        shop,
        "--code",
        &code,
        "--amount",
        "25",
    ]));
    let code_payment = v["id"].as_str().unwrap().to_string();
    let out = c.cli(&[
        "pay",
        "code",
        "--merchant",
        shop,
        "--code",
        &code,
        "--amount",
        "25",
    ]);
    assert_eq!(json(&out)["result"], "paycode_already_used");
    let v = ok(&c.cli(&["order", "get", &code_payment]));
    assert_eq!(v["orders"][0]["kind"], "code");
    assert_eq!(v["orders"][0]["payer"], alice);
    assert_eq!(
        ok(&c.cli(&["paycode", "revoke", "--wallet", alice]))["result"],
        "ok"
    );
    let v = ok(&c.cli(&[
        "paycode",
        "make",
        "--wallet",
        alice,
        "--device-key",
        device.to_str().unwrap(),
    ]));
    let out = c.cli(&[
        "pay",
        "code",
        "--merchant",
        shop,
        "--code",
        v["code"].as_str().unwrap(),
        "--amount",
        "1",
    ]);
    assert_eq!(json(&out)["result"], "paycode_revoked");
    // A mangled code is refused at the wire (exit 1).
    let out = c.cli(&[
        "pay",
        "code",
        "--merchant",
        shop,
        "--code",
        "spc1:00",
        "--amount",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    // `pay` without its flags is a usage error.
    assert_eq!(c.cli(&["pay", "--payer", alice]).status.code(), Some(2));

    // Cash in and out through an asset account: a top-up, a withdrawal completed and one failed.
    let custody = "00000000-0000-4000-8000-0000000000c0";
    ok(&c.cli(&[
        "account",
        "create",
        "--id",
        custody,
        "--currency",
        "CNY",
        "--kind",
        "system",
        "--credits-must-not-exceed-debits",
    ]));
    let v = ok(&c.cli(&["account", "get", alice]));
    let before: f64 = v["accounts"][0]["balance"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        ok(&c.cli(&[
            "topup",
            "--wallet",
            alice,
            "--amount",
            "100",
            "--bank-account",
            custody
        ]))["result"],
        "ok"
    );
    let out = c.cli(&[
        "topup",
        "--wallet",
        alice,
        "--amount",
        "1",
        "--bank-account",
        fees,
    ]);
    assert_eq!(json(&out)["result"], "invalid_bank_account");
    let v = ok(&c.cli(&[
        "withdraw",
        "--wallet",
        alice,
        "--amount",
        "60",
        "--bank-account",
        custody,
    ]));
    let w1 = v["id"].as_str().unwrap().to_string();
    let v = ok(&c.cli(&[
        "withdraw",
        "--wallet",
        alice,
        "--amount",
        "30",
        "--bank-account",
        custody,
    ]));
    let w2 = v["id"].as_str().unwrap().to_string();
    assert_eq!(
        ok(&c.cli(&["withdraw", "complete", "--withdrawal", &w1]))["result"],
        "ok"
    );
    assert_eq!(
        ok(&c.cli(&["withdraw", "fail", "--withdrawal", &w2]))["result"],
        "ok"
    );
    let out = c.cli(&["withdraw", "complete", "--withdrawal", &w2]);
    assert_eq!(json(&out)["result"], "pending_already_voided");
    let v = ok(&c.cli(&["account", "get", alice]));
    let after: f64 = v["accounts"][0]["balance"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((after - (before + 40.0)).abs() < 1e-9, "{before} → {after}");
    assert_eq!(
        c.cli(&["withdraw", "--wallet", alice]).status.code(),
        Some(2)
    );
}

/// `suanpan qr parse`: the EMVCo sample is valid; each malformed kind exits 1 with its name.
#[test]
fn qr_parse_accepts_the_sample_and_names_each_reason() {
    let sample = "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.7253031565502016233030412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A";
    let qr = |payload: &str| {
        std::process::Command::new(BIN)
            .args(["qr", "parse", payload, "--json"])
            .output()
            .unwrap()
    };
    let v = ok(&qr(sample));
    assert_eq!(v["valid"], true);
    assert_eq!(v["crc"], "A13A");
    let lang = v["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == "64")
        .unwrap();
    assert_eq!(lang["children"][1]["value"], "最佳运输");
    let long = "0".repeat(513);
    for (payload, reason) in [
        (sample.replace("A13A", "A13B"), "wrong_crc"),
        ("0002019999".to_string(), "wrong_length"),
        (sample.replacen("000201", "", 1), "missing_payload_format"),
        (format!("{sample}0102AB"), "crc_not_last"),
        (format!("{sample}01"), "trailing_data"),
        (long, "too_long"),
    ] {
        let out = qr(&payload);
        assert_eq!(out.status.code(), Some(1), "{reason}");
        assert_eq!(json(&out)["error"], reason);
        assert!(String::from_utf8_lossy(&out.stderr).contains(reason));
    }
}

/// Reads a grayscale PNG and decodes the QR code in it.
fn decode_png_qr(path: &std::path::Path) -> String {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let (w, h) = (info.width as usize, info.height as usize);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| buf[y * w + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code in the image");
    grids[0].decode().unwrap().1
}

/// Chat transfers and payment requests through the CLI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn social_payments_through_the_cli() {
    let c = Cluster::start(1, &[]);
    c.wait_ready(Duration::from_secs(60)).await;
    let (bank, alice, bob) = (
        "00000000-0000-4000-8000-0000000000b0",
        "00000000-0000-4000-8000-0000000000a1",
        "00000000-0000-4000-8000-0000000000b1",
    );
    for (id, kind) in [(bank, "system"), (alice, "wallet"), (bob, "wallet")] {
        let out = c.cli(&[
            "account",
            "create",
            "--id",
            id,
            "--currency",
            "CNY",
            "--kind",
            kind,
        ]);
        assert_eq!(ok(&out)["result"], "ok");
    }
    ok(&c.cli(&["transfer", "--from", bank, "--to", alice, "--amount", "100"]));
    let balance = |w: &str| -> String {
        ok(&c.cli(&["account", "get", w]))["accounts"][0]["balance"]
            .as_str()
            .unwrap()
            .to_string()
    };
    // At once; held and received; held and returned.
    assert_eq!(
        ok(&c.cli(&["send", "--from", alice, "--to", bob, "--amount", "10", "--note", "lunch"]))
            ["result"],
        "ok"
    );
    let v = ok(&c.cli(&[
        "send",
        "--from",
        alice,
        "--to",
        bob,
        "--amount",
        "20",
        "--accept-within",
    ]));
    let held = v["id"].as_str().unwrap().to_string();
    let t = ok(&c.cli(&["transfer", "get", &held]));
    assert_eq!(t["transfers"][0]["state"], "pending");
    let t0 = t["transfers"][0]["timestamp_ns"].as_u64().unwrap();
    assert_eq!(
        t["transfers"][0]["expires_ns"].as_u64().unwrap() - t0,
        86_400_000_000_000
    );
    assert_eq!(balance(bob), "10.00");
    assert_eq!(
        ok(&c.cli(&["receive", "--transfer", &held]))["result"],
        "ok"
    );
    assert_eq!(balance(bob), "30.00");
    let v = ok(&c.cli(&[
        "send",
        "--from",
        alice,
        "--to",
        bob,
        "--amount",
        "5",
        "--accept-within",
        "600",
    ]));
    let back = v["id"].as_str().unwrap().to_string();
    assert_eq!(
        ok(&c.cli(&["send", "return", "--transfer", &back]))["result"],
        "ok"
    );
    let out = c.cli(&["receive", "--transfer", &back]);
    assert_eq!(json(&out)["result"], "pending_already_voided");
    assert_eq!(balance(alice), "70.00");
    assert_eq!(c.cli(&["send", "--from", alice]).status.code(), Some(2));

    // A request paid, one declined; `request get` in its documented shape.
    let v = ok(&c.cli(&[
        "request", "create", "--payee", bob, "--payer", alice, "--amount", "7.50", "--note", "taxi",
    ]));
    let q1 = v["id"].as_str().unwrap().to_string();
    assert_eq!(
        ok(&c.cli(&["request", "pay", "--request", &q1]))["result"],
        "ok"
    );
    let v = ok(&c.cli(&[
        "request", "create", "--payee", bob, "--payer", alice, "--amount", "1",
    ]));
    let q2 = v["id"].as_str().unwrap().to_string();
    assert_eq!(
        ok(&c.cli(&["request", "decline", "--request", &q2]))["result"],
        "ok"
    );
    let out = c.cli(&["request", "pay", "--request", &q2]);
    assert_eq!(json(&out)["result"], "request_declined");
    let v = ok(&c.cli(&["request", "get", &q1, &q2]));
    assert_eq!(v["requests"][0]["state"], "paid");
    assert_eq!(v["requests"][0]["note"], "taxi");
    assert_eq!(v["requests"][1]["state"], "declined");
    assert_eq!(balance(bob), "37.50");
    // A dinner split three ways (alice paid 100.00): shares by largest remainder, alice's own
    // settled at creation; bob pays his; `split get` in its documented shape.
    let carol = "00000000-0000-4000-8000-0000000000c1";
    ok(&c.cli(&["account", "create", "--id", carol, "--currency", "CNY"]));
    ok(&c.cli(&["transfer", "--from", bank, "--to", carol, "--amount", "50"]));
    let v = ok(&c.cli(&[
        "split",
        "create",
        "--payer",
        alice,
        "--total",
        "100",
        "--currency",
        "CNY",
        "--participants",
        &format!("{alice},{bob},{carol}"),
    ]));
    let split = v["id"].as_str().unwrap().to_string();
    let mut shares: Vec<String> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["amount"].as_str().unwrap().to_string())
        .collect();
    shares.sort();
    assert_eq!(shares, ["33.33", "33.33", "33.34"]);
    assert_eq!(
        ok(&c.cli(&["split", "pay", "--split", &split, "--participant", bob]))["result"],
        "ok"
    );
    let out = c.cli(&["split", "pay", "--split", &split, "--participant", bob]);
    assert_eq!(json(&out)["result"], "split_item_paid");
    let v = ok(&c.cli(&["split", "get", &split]));
    let x = &v["splits"][0];
    for key in ["id", "payer", "total", "currency", "mode", "state", "items"] {
        assert!(x.get(key).is_some(), "split get lacks {key}");
    }
    assert_eq!(x["state"], "open");
    assert_eq!(x["items"][0]["state"], "paid"); // alice, the payer
    assert_eq!(
        ok(&c.cli(&["split", "pay", "--split", &split, "--participant", carol]))["result"],
        "ok"
    );
    assert_eq!(
        ok(&c.cli(&["split", "get", &split]))["splits"][0]["state"],
        "settled"
    );
    let out = c.cli(&[
        "split",
        "create",
        "--payer",
        alice,
        "--total",
        "10",
        "--currency",
        "CNY",
        "--participants",
        &format!("{bob},{bob}"),
    ]);
    assert_eq!(json(&out)["result"], "split_participant_twice");

    // A note over 64 bytes is refused at the wire.
    let out = c.cli(&[
        "send",
        "--from",
        alice,
        "--to",
        bob,
        "--amount",
        "1",
        "--note",
        &"n".repeat(65),
    ]);
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn currencies_rates_and_tiers_through_the_cli() {
    let c = Cluster::start(1, &[]);
    c.wait_ready(Duration::from_secs(60)).await;
    // An operator defines coins and a rate; a CNY wallet buys coins and spends them.
    let v = ok(&c.cli(&[
        "currency", "define", "--code", "QCOIN", "--scale", "0", "--name", "Q-coins",
    ]));
    assert_eq!(v["result"], "ok");
    // An ISO code is refused at the edge (INVALID_ARGUMENT, nothing proposed).
    let out = c.cli(&["currency", "define", "--code", "CNY", "--scale", "2"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not an in-app currency code"));
    assert_eq!(
        ok(&c.cli(&["rate", "set", "--from", "CNY", "--to", "QCOIN", "--rate", "10"]))["result"],
        "ok"
    );
    let (bank, alice, alice_q, shop_q) = (
        "00000000-0000-4000-8000-0000000000b0",
        "00000000-0000-4000-8000-0000000000a1",
        "00000000-0000-4000-8000-0000000000a2",
        "00000000-0000-4000-8000-0000000000c1",
    );
    for (id, cur, kind) in [
        (bank, "CNY", "system"),
        (alice, "CNY", "wallet"),
        (alice_q, "QCOIN", "wallet"),
        (shop_q, "QCOIN", "wallet"),
    ] {
        let out = c.cli(&[
            "account",
            "create",
            "--id",
            id,
            "--currency",
            cur,
            "--kind",
            kind,
        ]);
        assert_eq!(ok(&out)["result"], "ok");
    }
    ok(&c.cli(&["transfer", "--from", bank, "--to", alice, "--amount", "100"]));
    let v = ok(&c.cli(&[
        "convert",
        "--from",
        alice,
        "--to",
        alice_q,
        "--amount",
        "10.05",
        "--expect-rate",
        "10",
    ]));
    assert_eq!(v["result"], "ok");
    assert_eq!(v["to_amount"], "100", "rounded down: {v}");
    assert_eq!(v["rate"], "10");
    let conv = v["id"].as_str().unwrap().to_string();
    let g = ok(&c.cli(&["convert", "get", &conv]));
    assert_eq!(g["conversions"][0]["from_amount"], "10.05");
    let v = json(&c.cli(&[
        "convert",
        "--from",
        alice,
        "--to",
        alice_q,
        "--amount",
        "1",
        "--expect-rate",
        "9",
    ]));
    assert_eq!(v["result"], "rate_changed");
    assert_eq!(
        ok(&c.cli(&["transfer", "--from", alice_q, "--to", shop_q, "--amount", "30"]))["result"],
        "ok"
    );
    let bal = |w: &str| -> String {
        ok(&c.cli(&["account", "get", w]))["accounts"][0]["balance"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(bal(alice), "89.95");
    assert_eq!(bal(alice_q), "70");
    assert_eq!(bal(shop_q), "30");
    let cfg = ok(&c.cli(&["currency", "list"]));
    assert_eq!(cfg["currencies"][0]["code"], "QCOIN");
    assert_eq!(ok(&c.cli(&["rate", "list"]))["rates"][0]["rate"], "10");

    // Tiers: a basic wallet is capped; raised to verified, the new limit is usable at once.
    for (name, max) in [("basic", "20"), ("verified", "500")] {
        let v = ok(&c.cli(&["tier", "define", "--name", name, "--per-transfer-max", max]));
        assert_eq!(v["result"], "ok");
    }
    assert_eq!(
        ok(&c.cli(&["account", "set-tier", "--account", alice, "--tier", "basic"]))["result"],
        "ok"
    );
    let a = ok(&c.cli(&["account", "get", alice]));
    assert_eq!(a["accounts"][0]["tier"], "basic");
    assert_eq!(a["accounts"][0]["limits"]["per_transfer_max"], "20.00");
    let v = json(&c.cli(&["transfer", "--from", alice, "--to", bank, "--amount", "50"]));
    assert_eq!(v["result"], "per_transfer_limit");
    assert_eq!(
        ok(&c.cli(&[
            "account",
            "set-tier",
            "--account",
            alice,
            "--tier",
            "verified"
        ]))["result"],
        "ok"
    );
    assert_eq!(
        ok(&c.cli(&["transfer", "--from", alice, "--to", bank, "--amount", "50"]))["result"],
        "ok"
    );
    assert_eq!(
        ok(&c.cli(&["tier", "list"]))["tiers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // The business time zone is a replicated setting.
    assert_eq!(
        ok(&c.cli(&["settings", "set", "business-utc-offset", "+08:00"]))["result"],
        "ok"
    );
    assert_eq!(
        ok(&c.cli(&["settings", "get"]))["business-utc-offset"],
        "+08:00"
    );
    let v = json(&c.cli(&["settings", "set", "business-utc-offset", "+08:07"]));
    assert_eq!(v["result"], "invalid_setting");
    let v = ok(&c.cli(&["settings", "set", "business-utc-offset", "UTC-05:00"]));
    assert_eq!(v["result"], "ok");
    assert_eq!(
        ok(&c.cli(&["settings", "get"]))["business-utc-offset"],
        "-05:00"
    );

    // Configuration is for operators: a payments key may convert but not set a rate.
    let dir = tempfile::tempdir().unwrap();
    let key = c.registered_key(dir.path(), "payments");
    let as_payments = |args: &[&str]| c.cli_with(&key, args, true);
    let out = as_payments(&[
        "rate", "set", "--from", "CNY", "--to", "QCOIN", "--rate", "1",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("operator command"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_payments(&["convert", "--from", alice, "--to", alice_q, "--amount", "1"]);
    assert_eq!(ok(&out)["result"], "ok");
}

/// `suanpan bench --workload payments`, short: every flow of the mix runs to its end, money is
/// conserved per currency and the acknowledged transfers exist.
#[test]
fn bench_payment_workload_runs_every_flow() {
    let out = std::process::Command::new(BIN)
        .args([
            "bench",
            "--spawn",
            "1",
            "--workload",
            "payments",
            "--accounts",
            "200",
            "--transfers",
            "4000",
            "--concurrency",
            "8",
            "--batch-size",
            "50",
            "--warmup-s",
            "0",
            "--json",
        ])
        .output()
        .unwrap();
    let v = ok(&out);
    assert_eq!(v["workload"], "payments");
    assert_eq!(v["verification"]["money_conserved"], true, "{v}");
    assert_eq!(v["verification"]["missing"], 0, "{v}");
    let kinds = v["commands_per_kind"].as_object().unwrap();
    assert_eq!(kinds.len(), 15, "{v}");
    for (k, c) in kinds {
        // Follow-ups of the last batch may not have run; every kind ran at least once.
        assert!(c["ok"].as_u64().unwrap() > 0, "{k}: {v}");
    }
}

/// `scripts/bench --smoke --restart` (the bench smoke CI runs): every standard end-to-end run on
/// a 3-node cluster passes its final check, the report has each run's figures, `--baseline`
/// prints the ratio of each to an earlier report, and the restart row replays a killed node's
/// log and verifies the checkpoint signed before the kill.
#[test]
fn bench_script_smoke_checks_every_standard_run() {
    let dir = tempfile::tempdir().unwrap();
    let (out_path, base_path) = (dir.path().join("now.json"), dir.path().join("base.json"));
    let names = [
        "closed_large_batches",
        "closed_batch_100",
        "open_60k",
        "clients_256",
        "hot_merchant_10pct",
        "closed_large_batches_v2",
        "clients_256_v2",
    ];
    let base = serde_json::json!({"runs": names.iter().map(|n| serde_json::json!({
        "name": n, "transfers_per_second": 100.0, "p99_ms": 1000.0})).collect::<Vec<_>>()});
    std::fs::write(&base_path, base.to_string()).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench");
    let out = std::process::Command::new("python3")
        .arg(script)
        .args([
            "--smoke",
            "--no-build",
            "--no-criterion",
            "--restart",
            "--out",
        ])
        .arg(&out_path)
        .arg("--baseline")
        .arg(&base_path)
        .env("SUANPAN_BIN", BIN)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&out_path).unwrap()).unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), names.len() + 1, "{report}");
    // The restart row: a node killed after its ingest replays the log, and the checkpoint
    // signed before the kill verifies after it.
    let restart = &runs[names.len()];
    assert_eq!(restart["name"], "restart_replay_1m_transfers", "{restart}");
    assert_eq!(restart["ok"], true, "{restart}");
    assert_eq!(restart["checkpoint_verified"], true, "{restart}");
    assert!(
        restart["replayed_entries"].as_u64().unwrap() > 0,
        "{restart}"
    );
    assert!(restart["replay_ms"].as_u64().is_some(), "{restart}");
    for (r, n) in runs.iter().zip(names) {
        assert_eq!(r["name"], n);
        assert_eq!(r["ok"], true, "{r}");
        assert!(r["transfers_per_second"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["p99_ms"].as_f64().unwrap() > 0.0, "{r}");
        assert_eq!(r["report"]["verification"]["money_conserved"], true, "{r}");
        // The ratio table names each run against the baseline.
        assert!(
            stdout.lines().any(|l| l.starts_with(n)
                && l.split_whitespace().any(|w| w
                    .strip_suffix('x')
                    .is_some_and(|r| r.parse::<f64>().is_ok()))),
            "{n}: {stdout}"
        );
    }
}

/// The reconciliation benchmark, small: every generated statement line matches its top-up, and
/// the reconcile child's time and peak memory are reported.
#[test]
fn bench_statement_workload_reconciles_every_line() {
    let out = std::process::Command::new(BIN)
        .args([
            "bench",
            "--spawn",
            "1",
            "--workload",
            "statement",
            "--lines",
            "20000",
            "--accounts",
            "50",
            "--json",
        ])
        .output()
        .unwrap();
    let v = ok(&out);
    assert_eq!(v["workload"], "statement");
    assert_eq!(v["matched"], 20000, "{v}");
    assert_eq!(v["reconciled"], true, "{v}");
    assert!(v["peak_rss_mib"].as_f64().unwrap() > 0.0, "{v}");
}

/// The finance commands against a real node, with a read-only `finance` key where they read:
/// the trial balance (table, CSV, JSON), safeguarding, a merchant's settlement day and a wallet's
/// statement whose running balance ends at the ledger's closing balance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finance_reports_through_the_cli() {
    let c = Cluster::start(1, &[]);
    c.wait_ready(Duration::from_secs(60)).await;
    let (bank, fees, alice, bob, shop) = (
        "00000000-0000-4000-8000-0000000000b0",
        "00000000-0000-4000-8000-0000000000f0",
        "00000000-0000-4000-8000-0000000000a1",
        "00000000-0000-4000-8000-0000000000b1",
        "00000000-0000-4000-8000-0000000000c1",
    );
    let v = ok(&c.cli(&[
        "account",
        "create",
        "--id",
        bank,
        "--currency",
        "CNY",
        "--kind",
        "system",
        "--credits-must-not-exceed-debits",
    ]));
    assert_eq!(v["result"], "ok");
    ok(&c.cli(&[
        "account",
        "create",
        "--id",
        fees,
        "--currency",
        "CNY",
        "--kind",
        "system",
    ]));
    ok(&c.cli(&["account", "create", "--id", alice, "--currency", "CNY"]));
    ok(&c.cli(&["account", "create", "--id", bob, "--currency", "CNY"]));
    ok(&c.cli(&[
        "merchant",
        "create",
        "--id",
        shop,
        "--currency",
        "CNY",
        "--name",
        "SHOP",
        "--city",
        "SHANGHAI",
        "--mcc",
        "5411",
        "--fee-bps",
        "60",
        "--fee-account",
        fees,
    ]));
    ok(&c.cli(&[
        "topup",
        "--wallet",
        alice,
        "--amount",
        "500",
        "--bank-account",
        bank,
    ]));
    let pay = ok(&c.cli(&[
        "bill",
        "pay",
        "--payer",
        alice,
        "--biller",
        shop,
        "--bill-ref",
        "B-1",
        "--amount",
        "100",
    ]));
    assert_eq!(pay["result"], "ok");
    let payment = pay["id"].as_str().unwrap().to_string();
    let refund = ok(&c.cli(&["refund", "--order", &payment, "--amount", "20"]));
    assert_eq!(refund["result"], "ok");
    ok(&c.cli(&[
        "transfer",
        "--from",
        alice,
        "--to",
        bob,
        "--amount",
        "30",
        "--reference",
        "INV-7",
    ]));

    // The bank account is an asset: its balance is shown on the debit side.
    let a = ok(&c.cli(&["account", "get", bank]));
    assert_eq!(a["accounts"][0]["normal_side"], "debit");
    assert_eq!(a["accounts"][0]["normal_balance"], "500.00");

    // A finance key reads everything below.
    let dir = tempfile::tempdir().unwrap();
    let key = c.registered_key(dir.path(), "finance");
    let finance = |args: &[&str], json: bool| c.cli_with(&key, args, json);

    let tb = ok(&finance(
        &["audit", "trial-balance", "--format", "json"],
        false,
    ));
    assert_eq!(tb["ok"], true, "{tb}");
    let cny = &tb["currencies"][0];
    assert_eq!(cny["currency"], "CNY");
    assert_eq!(cny["debit_total"], cny["credit_total"]);
    assert_eq!(cny["debit_total"], "500.00", "{tb}");
    assert_eq!(cny["accounts"], 5);
    let csv_out = finance(&["audit", "trial-balance", "--format", "csv"], false);
    assert!(csv_out.status.success());
    let text = String::from_utf8_lossy(&csv_out.stdout).to_string();
    assert!(
        text.starts_with("account,kind,currency,normal_side,debit,credit"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 6, "{text}");
    let table = finance(&["audit", "trial-balance"], false);
    assert!(String::from_utf8_lossy(&table.stdout).contains(": ok"));

    // Customer money: alice 500 − 100 + 20 − 30 = 390, bob 30, the shop 99.40 − 19.88 = 79.52;
    // the bank holds 500: the difference is the fees kept (0.60 − 0.12).
    let sg = ok(&finance(
        &["audit", "safeguarding", "--bank-account", bank],
        true,
    ));
    assert_eq!(sg["bank_balance"], "500.00");
    assert_eq!(sg["wallets"], "420.00");
    assert_eq!(sg["merchants"], "79.52");
    assert_eq!(sg["difference"], "0.48");
    assert_eq!(sg["shortfall"], false);

    // The settlement of the payment's business day (UTC by default).
    let day = |ns: u64| {
        chrono::DateTime::from_timestamp((ns / 1_000_000_000) as i64, 0)
            .unwrap()
            .date_naive()
            .format("%Y-%m-%d")
            .to_string()
    };
    let pay_day = day(pay["timestamp_ns"].as_u64().unwrap());
    let s = ok(&finance(
        &[
            "merchant",
            "settlement",
            "--merchant",
            shop,
            "--date",
            &pay_day,
        ],
        true,
    ));
    assert_eq!(s["payments"], 1);
    assert_eq!(s["gross"], "100.00");
    assert_eq!(s["fees"], "0.60");
    if day(refund["timestamp_ns"].as_u64().unwrap()) == pay_day {
        assert_eq!(s["refunds"], 1);
        assert_eq!(s["refunded"], "20.00");
        assert_eq!(s["fees_refunded"], "0.12");
        assert_eq!(s["net"], "79.52");
    }

    // alice's statement over three days around the payment: opening 0, closing 390.
    let next = |d: &str, k: i64| {
        (chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap() + chrono::Duration::days(k))
            .format("%Y-%m-%d")
            .to_string()
    };
    let (from, to) = (next(&pay_day, -1), next(&pay_day, 1));
    let st = ok(&finance(
        &[
            "export",
            "statement",
            alice,
            "--from",
            &from,
            "--to",
            &to,
            "--format",
            "json",
        ],
        false,
    ));
    assert_eq!(st["opening_balance"], "0.00");
    assert_eq!(st["closing_balance"], "390.00");
    let flows: Vec<&str> = st["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["flow"].as_str().unwrap())
        .collect();
    // One line per posting: the payment is the merchant's part and the fee, each with its
    // counterparty; so is the refund.
    assert_eq!(
        flows,
        [
            "topup",
            "bill_payment",
            "bill_payment",
            "refund",
            "refund",
            "transfer"
        ],
        "{st}"
    );
    assert_eq!(st["lines"][1]["counterparty"], shop);
    assert_eq!(st["lines"][2]["counterparty"], fees);
    assert_eq!(st["lines"][5]["reference"], "INV-7");
    assert_eq!(st["lines"][5]["counterparty"], bob);
    assert_eq!(st["lines"][5]["amount"], "-30.00");
    let csv_st = finance(
        &["export", "statement", alice, "--from", &from, "--to", &to],
        false,
    );
    let text = String::from_utf8_lossy(&csv_st.stdout).to_string();
    assert!(
        text.contains("opening_balance") && text.contains("closing_balance,,,,,390.00"),
        "{text}"
    );
    // As camt.053: the project's own reader reads it back, balances and entries alike.
    let camt = c.cli_with(
        &key,
        &[
            "export",
            "statement",
            alice,
            "--from",
            &from,
            "--to",
            &to,
            "--format",
            "camt053",
        ],
        false,
    );
    assert!(
        camt.status.success(),
        "{}",
        String::from_utf8_lossy(&camt.stderr)
    );
    let mut r = api::statement::reader(
        api::statement::Format::Camt053,
        &camt.stdout[..],
        &api::statement::csv_map::ColumnMap::default(),
    )
    .unwrap();
    let entries: Vec<api::statement::Line> = (&mut r).map(|l| l.unwrap()).collect();
    assert_eq!(entries.len(), 6);
    assert_eq!(entries[0].direction, api::statement::Direction::Credit);
    assert_eq!(entries[5].direction, api::statement::Direction::Debit);
    assert!(
        entries[5].references.contains(&"INV-7".to_string()),
        "{:?}",
        entries[5]
    );
    let closing = r.summary().closing.clone().unwrap();
    assert_eq!(closing.amount.to_string(), "390.00");
    assert_eq!(
        r.summary().opening.clone().unwrap().amount.to_string(),
        "0.00"
    );
}

/// `reconcile statement` against a real node: a camt.053 statement of today with a match, an
/// amount mismatch, a line only the bank knows and a closing balance that disagrees; the buckets
/// as CSV files; suspense posted once (the re-run matches it and posts nothing); a malformed
/// statement names its line and posts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_a_bank_statement_through_the_cli() {
    let c = Cluster::start(1, &[]);
    c.wait_ready(Duration::from_secs(60)).await;
    let (bank, suspense, alice) = (
        "00000000-0000-4000-8000-0000000000b0",
        "00000000-0000-4000-8000-0000000000e0",
        "00000000-0000-4000-8000-0000000000a1",
    );
    ok(&c.cli(&[
        "account",
        "create",
        "--id",
        bank,
        "--currency",
        "CNY",
        "--kind",
        "system",
        "--credits-must-not-exceed-debits",
    ]));
    ok(&c.cli(&[
        "account",
        "create",
        "--id",
        suspense,
        "--currency",
        "CNY",
        "--kind",
        "system",
    ]));
    ok(&c.cli(&["account", "create", "--id", alice, "--currency", "CNY"]));
    let (u1, u2) = (
        "00000000-0000-4000-8000-000000000101",
        "00000000-0000-4000-8000-000000000102",
    );
    for (id, amount) in [(u1, "100"), (u2, "250")] {
        let v = ok(&c.cli(&[
            "topup",
            "--id",
            id,
            "--wallet",
            alice,
            "--amount",
            amount,
            "--bank-account",
            bank,
        ]));
        assert_eq!(v["result"], "ok");
    }
    let today = utc_today().to_string();
    let entry = |amount: &str, reference: &str| {
        format!(
            "<Ntry><Amt Ccy=\"CNY\">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd><BookgDt><Dt>{today}</Dt></BookgDt>\
             <NtryDtls><TxDtls><Refs><EndToEndId>{reference}</EndToEndId></Refs></TxDtls></NtryDtls></Ntry>\n"
        )
    };
    let balance = |code: &str, amount: &str| {
        format!(
            "<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy=\"CNY\">{amount}</Amt>\
             <CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>{today}</Dt></Dt></Bal>\n"
        )
    };
    let doc = format!(
        "<?xml version=\"1.0\"?>\n<Document><BkToCstmrStmt><Stmt><Id>S-1</Id>\n\
         <Acct><Id><IBAN>CN00BANK</IBAN></Id><Ccy>CNY</Ccy></Acct>\n{}{}{}{}{}</Stmt></BkToCstmrStmt></Document>\n",
        balance("OPBD", "0.00"),
        balance("CLBD", "362.84"),
        entry("100.00", u1),
        entry("250.50", u2),
        entry("12.34", "BANK-INTEREST-11")
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("statement.xml");
    std::fs::write(&file, doc).unwrap();
    let out_dir = dir.path().join("breaks");
    let run = |extra: &[&str]| {
        let mut args = vec![
            "reconcile",
            "statement",
            file.to_str().unwrap(),
            "--account",
            bank,
        ];
        args.extend_from_slice(extra);
        c.cli(&args)
    };
    let out = run(&["--out", out_dir.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["summary"]["statement_lines"], 3, "{v}");
    assert_eq!(v["summary"]["matched"], 1, "{v}");
    assert_eq!(v["summary"]["amount_mismatch"], 1, "{v}");
    assert_eq!(v["summary"]["only_in_statement"], 1, "{v}");
    assert_eq!(v["summary"]["only_in_ledger"], 0, "{v}");
    assert_eq!(v["balances"]["opening"]["ok"], true, "{v}");
    assert_eq!(v["balances"]["closing"]["ledger"], "350.00", "{v}");
    assert_eq!(v["balances"]["closing"]["ok"], false, "{v}");
    assert_eq!(v["reconciled"], false);
    let mismatch = std::fs::read_to_string(out_dir.join("amount_mismatch.csv")).unwrap();
    assert!(
        mismatch.contains(u2) && mismatch.contains("250.50"),
        "{mismatch}"
    );
    assert!(out_dir.join("only_in_statement.csv").exists());

    // The interest only the bank knows goes to suspense, once.
    let v = json(&run(&["--post-suspense", "--suspense-account", suspense]));
    assert_eq!(v["suspense"]["posted"], 1, "{v}");
    let bank_acct = ok(&c.cli(&["account", "get", bank]));
    assert_eq!(bank_acct["accounts"][0]["normal_balance"], "362.34");
    let v = json(&run(&["--post-suspense", "--suspense-account", suspense]));
    assert_eq!(v["summary"]["only_in_statement"], 0, "{v}");
    assert_eq!(v["summary"]["matched"], 2, "{v}");
    assert!(v["suspense"].is_null(), "{v}");
    let bank_acct = ok(&c.cli(&["account", "get", bank]));
    assert_eq!(bank_acct["accounts"][0]["normal_balance"], "362.34");

    // A malformed statement: the file, the line and the reason; nothing posted.
    let bad = dir.path().join("bad.xml");
    std::fs::write(
        &bad,
        "<Document><Stmt>\n<Acct><Ccy>CNY</Ccy></Acct>\n<Ntry><CdtDbtInd>CRDT</CdtDbtInd></Ntry></Stmt></Document>\n",
    )
    .unwrap();
    let out = c.cli(&[
        "reconcile",
        "statement",
        bad.to_str().unwrap(),
        "--account",
        bank,
        "--post-suspense",
        "--suspense-account",
        suspense,
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.xml: line 3: entry without an amount"),
        "{err}"
    );
}
