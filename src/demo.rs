//! `suanpan demo`: a single-node embedded ledger on RocksDB, no network — creates wallets, moves
//! money (including a two-phase hold), and prints balances and the state digest.

use std::path::PathBuf;
use std::str::FromStr;

use ledger::*;
use rust_decimal::Decimal;

pub fn run(data_dir: Option<PathBuf>) -> anyhow::Result<()> {
    let tmp;
    let dir = match data_dir {
        Some(d) => d,
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let mut store = RocksStore::open(&dir)?;
    store.set_sync(true);
    let mut l = Ledger::open(store)?;
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
    };
    let d = |s: &str| Decimal::from_str(s).expect("literal");
    let bank = Id(0xB0);
    let (alice, bob, shop) = (Id(0xA1), Id(0xB1), Id(0x51));
    let acct = |id, kind| {
        Command::CreateAccount(CreateAccount {
            // The custodial bank account is an asset: it never holds more credits than debits, and
            // its balance is read on the debit side.
            credits_must_not_exceed_debits: id == bank,
            ..CreateAccount::basic(id, "CNY", kind)
        })
    };
    let xfer = |id: u128, from, to, amount: &str, pending: Option<u64>| {
        Command::CreateTransfer(CreateTransfer {
            id: Id(id),
            legs: vec![LegSpec {
                debit: from,
                credit: to,
                amount: d(amount),
                currency: None,
            }],
            pending_timeout_seconds: pending,
            reference: String::new(),
        })
    };
    let batches = vec![
        (
            "open accounts",
            vec![
                acct(bank, AccountKind::System),
                acct(alice, AccountKind::Wallet),
                acct(bob, AccountKind::Wallet),
                acct(shop, AccountKind::Merchant),
            ],
        ),
        (
            "top up alice 100.00",
            vec![xfer(1, bank, alice, "100.00", None)],
        ),
        (
            "alice pays bob 12.50 (p2p), and tries 500.00",
            vec![
                xfer(2, alice, bob, "12.50", None),
                xfer(3, alice, bob, "500.00", None),
            ],
        ),
        (
            "alice holds 30.00 for the shop (two-phase)",
            vec![xfer(4, alice, shop, "30.00", Some(120))],
        ),
        (
            "shop captures 25.00 of the hold",
            vec![Command::PostPending(PostPending {
                id: Id(5),
                pending_id: Id(4),
                amount: Some(d("25.00")),
                currency: None,
            })],
        ),
        (
            "retry of the p2p payment (same id): replayed, not paid twice",
            vec![xfer(2, alice, bob, "12.50", None)],
        ),
    ];
    let mut index = l.applied_index();
    for (what, commands) in batches {
        index += 1;
        let out = l.apply(
            index,
            &Batch {
                timestamp_ns: now(),
                seed: index,
                commands,
            },
        )?;
        let codes: Vec<&str> = out.results.iter().map(|r| r.code.name()).collect();
        println!("{what:<62} -> {}", codes.join(", "));
    }
    println!();
    for (name, id) in [
        ("bank", bank),
        ("alice", alice),
        ("bob", bob),
        ("shop", shop),
    ] {
        let a = l.account(id).expect("created above");
        // Balances on each account's normal side, the side named.
        // What a payment may still use is a credit-normal account's notion.
        let available = match a.info.normal_side {
            NormalSide::Credit => format!("(available {})", a.available()),
            NormalSide::Debit => String::new(),
        };
        println!(
            "{name:<6} {:>10} CNY {:<6} {available}",
            a.normal_balance().to_string(),
            a.info.normal_side.name(),
        );
    }
    l.verify()?;
    println!(
        "\ntrial balance ok; applied index {}, digest {}",
        l.applied_index(),
        hex::encode(l.digest())
    );
    Ok(())
}
