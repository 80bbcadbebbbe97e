//! Payment-flow apply paths against a plain transfer: paying QR orders, charging payment codes
//! (an Ed25519 verification each), and plain transfers, 1 000 commands per batch on the memory
//! store; creating splits of 100 participants; 1 000 wallets claiming one hot red packet. Orders,
//! codes and packets are prepared outside the timed part.
//!
//! `cargo bench --bench payments` — figures are recorded in docs/performance.md.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ed25519_dalek::Signer;
use ledger::*;
use rust_decimal::Decimal;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WALLETS: u128 = 1_000;
const BATCH: usize = 1_000;
const BANK: u128 = 1;
const FEES: u128 = 2;
const SHOP: u128 = 3;
const T0: u64 = 1_790_000_000_000_000_000;

struct World {
    ledger: Ledger<MemStore>,
    index: u64,
    now: u64,
    next_id: u128,
    profile: MerchantProfile,
    keys: Vec<ed25519_dalek::SigningKey>,
}

impl World {
    fn new() -> World {
        let mut w = World {
            ledger: Ledger::open(MemStore::new()).unwrap(),
            index: 0,
            now: T0,
            next_id: 1 << 64,
            profile: MerchantProfile {
                account: Id(SHOP),
                name: "BENCH SHOP".into(),
                city: "SHANGHAI".into(),
                mcc: "5411".into(),
                country: "CN".into(),
                fee_bps: 60,
                fee_account: Some(Id(FEES)),
                created_ns: 0,
            },
            keys: (0..WALLETS)
                .map(|w| ed25519_dalek::SigningKey::from_bytes(&[(w % 251) as u8 + 1; 32]))
                .collect(),
        };
        let account = |id: u128, kind: AccountKind, no_overdraft: bool| {
            Command::CreateAccount(CreateAccount {
                id: Id(id),
                currency: "CNY".into(),
                kind,
                debits_must_not_exceed_credits: no_overdraft,
                credits_must_not_exceed_debits: false,
                overdraft: None,
                limits: LimitsSpec::default(),
                reference: String::new(),
                metadata: Default::default(),
                normal_side: None,
            })
        };
        let mut cmds = vec![
            account(BANK, AccountKind::System, false),
            account(FEES, AccountKind::System, false),
            Command::CreateMerchant(CreateMerchant {
                id: Id(SHOP),
                currency: "CNY".into(),
                name: w.profile.name.clone(),
                city: w.profile.city.clone(),
                mcc: w.profile.mcc.clone(),
                country: w.profile.country.clone(),
                fee_bps: 60,
                fee_account: Some(Id(FEES)),
            }),
        ];
        for i in 0..WALLETS {
            let wallet = Id(100 + i);
            cmds.push(account(100 + i, AccountKind::Wallet, true));
            w.next_id += 1;
            cmds.push(Command::CreateTransfer(CreateTransfer {
                id: Id(w.next_id),
                legs: vec![LegSpec {
                    debit: Id(BANK),
                    credit: wallet,
                    amount: Decimal::new(1_000_000_000, 2),
                    currency: None,
                }],
                pending_timeout_seconds: None,
                reference: String::new(),
            }));
            w.next_id += 1;
            cmds.push(Command::BindPaycode(BindPaycode {
                id: Id(w.next_id),
                wallet,
                public_key: w.keys[i as usize].verifying_key().to_bytes(),
                paycode_max: None,
            }));
        }
        w.apply(cmds);
        w
    }

    fn id(&mut self) -> Id {
        self.next_id += 1;
        Id(self.next_id)
    }

    fn apply(&mut self, commands: Vec<Command>) -> Duration {
        self.index += 1;
        self.now += 1_000_000;
        let batch = Batch {
            timestamp_ns: self.now,
            seed: self.index,
            commands,
        };
        let t = Instant::now();
        let out = self.ledger.apply(self.index, &batch).unwrap();
        let d = t.elapsed();
        let bad = out.results.iter().find(|r| !r.is_ok());
        assert!(bad.is_none(), "every command succeeds: {bad:?}");
        d
    }

    fn wallet(&self, i: usize) -> Id {
        Id(100 + (i as u128 % WALLETS))
    }

    /// A batch of order payments, its orders created first (untimed).
    fn order_payments(&mut self) -> Vec<Command> {
        let cny = Currency::from_code("CNY").unwrap();
        let mut create = Vec::with_capacity(BATCH);
        let mut orders = Vec::with_capacity(BATCH);
        for i in 0..BATCH {
            let id = self.id();
            let reference = format!("B{}", id.0);
            create.push(Command::CreateOrder(CreateOrder {
                id,
                merchant: Id(SHOP),
                amount: Decimal::new(1250 + i as i64, 2),
                currency: None,
                reference: reference.clone(),
                expires_in_seconds: None,
            }));
            orders.push((id, cny.to_decimal(1250 + i as u128).to_string(), reference));
        }
        self.apply(create);
        orders
            .into_iter()
            .enumerate()
            .map(|(i, (id, amount, reference))| {
                let qr = emv::merchant_payload(
                    &self.profile,
                    cny,
                    Some(emv::OrderQr {
                        id,
                        amount: &amount,
                        reference: &reference,
                    }),
                )
                .unwrap();
                Command::PayQr(PayQr {
                    id: self.id(),
                    payer: self.wallet(i),
                    qr,
                    amount: None,
                    currency: None,
                })
            })
            .collect()
    }

    /// A batch of payment-code charges, each code signed by its wallet's key (untimed).
    fn code_payments(&mut self) -> Vec<Command> {
        (0..BATCH)
            .map(|i| {
                let wallet = self.wallet(i);
                let nonce = self.id().to_bytes();
                let expires_ns = self.now + 60_000_000_000;
                let signature = self.keys[i % WALLETS as usize]
                    .sign(&paycode::Token::signed_message(wallet, &nonce, expires_ns))
                    .to_bytes();
                Command::PayCode(PayCode {
                    id: self.id(),
                    merchant: Id(SHOP),
                    token: paycode::Token {
                        wallet,
                        nonce,
                        expires_ns,
                        signature,
                    },
                    amount: Decimal::new(1250, 2),
                    currency: None,
                })
            })
            .collect()
    }

    /// Ten splits of a 1 000.00 bill among 100 participants each (shares by largest remainder).
    fn splits(&mut self) -> Vec<Command> {
        (0..10)
            .map(|k| {
                let participants = (0..100).map(|i| self.wallet(k * 100 + i)).collect();
                Command::CreateSplit(CreateSplit {
                    id: self.id(),
                    payer: self.wallet(k * 100),
                    total: Decimal::new(100_000, 2),
                    currency: Currency::from_code("CNY").unwrap(),
                    participants,
                    mode: SplitMode::Equal,
                    values: vec![],
                    note: String::new(),
                    group: None,
                    expires_in_seconds: None,
                })
            })
            .collect()
    }

    /// One red packet of 1 000 slots (created untimed), then its 1 000 claims in one batch.
    fn packet_claims(&mut self) -> Vec<Command> {
        let packet = self.id();
        self.apply(vec![Command::CreateRedPacket(CreateRedPacket {
            id: packet,
            // A different sender each time: the claims spread the money back over the wallets.
            sender: self.wallet(self.index as usize),
            total: Decimal::new(888_888, 2),
            currency: None,
            count: BATCH as u32,
            random: true,
            expires_in_seconds: None,
            group: None,
        })]);
        (0..BATCH)
            .map(|i| {
                Command::ClaimRedPacket(ClaimRedPacket {
                    id: self.id(),
                    packet,
                    wallet: self.wallet(i),
                })
            })
            .collect()
    }

    fn transfers(&mut self) -> Vec<Command> {
        (0..BATCH)
            .map(|i| {
                Command::CreateTransfer(CreateTransfer {
                    id: self.id(),
                    legs: vec![LegSpec {
                        debit: self.wallet(i),
                        credit: Id(SHOP),
                        amount: Decimal::new(1250, 2),
                        currency: None,
                    }],
                    pending_timeout_seconds: None,
                    reference: String::new(),
                })
            })
            .collect()
    }
}

fn payments(c: &mut Criterion) {
    let mut group = c.benchmark_group("payments");
    group
        .measurement_time(Duration::from_secs(8))
        .sample_size(20)
        .throughput(Throughput::Elements(BATCH as u64));
    let mut w = World::new();
    group.bench_function("transfer/memory/1000", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let cmds = w.transfers();
                    w.apply(cmds)
                })
                .sum()
        })
    });
    group.bench_function("order_pay/memory/1000", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let cmds = w.order_payments();
                    w.apply(cmds)
                })
                .sum()
        })
    });
    group.bench_function("code_pay/memory/1000", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let cmds = w.code_payments();
                    w.apply(cmds)
                })
                .sum()
        })
    });
    group.throughput(Throughput::Elements(10));
    group.bench_function("split_create_100_participants/memory/10", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let cmds = w.splits();
                    w.apply(cmds)
                })
                .sum()
        })
    });
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("redpacket_hot_claims/memory/1000", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    let cmds = w.packet_claims();
                    w.apply(cmds)
                })
                .sum()
        })
    });
    group.finish();
}

criterion_group!(benches, payments);
criterion_main!(benches);
