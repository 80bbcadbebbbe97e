//! Ledger apply throughput: simple transfers between 10 000 funded wallets, on the memory store,
//! on RocksDB written directly, and on RocksDB behind a Raft log (the write-behind buffer, as a
//! node runs it), in batches of 1, 100 and 8 000. Also command encode/decode and idempotent replays.
//!
//! `cargo bench --bench ledger_apply` — figures are recorded in docs/performance.md.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ledger::*;
use rust_decimal::Decimal;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const WALLETS: u128 = 10_000;
const BANK: u128 = 1;

struct Gen {
    next_id: u128,
    rng: u64,
    index: u64,
    now: u64,
}

impl Gen {
    fn new() -> Gen {
        Gen {
            next_id: 1 << 64,
            rng: 42,
            index: 0,
            now: 1_790_000_000_000_000_000,
        }
    }
    fn rand(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
    fn batch(&mut self, n: usize) -> (u64, Batch) {
        let mut commands = Vec::with_capacity(n);
        for _ in 0..n {
            self.next_id += 1;
            let a = 100 + (self.rand() as u128 % WALLETS);
            let mut b = 100 + (self.rand() as u128 % WALLETS);
            if a == b {
                b = 100 + (a - 99) % WALLETS;
            }
            commands.push(Command::CreateTransfer(CreateTransfer {
                id: Id(self.next_id),
                legs: vec![LegSpec {
                    debit: Id(a),
                    credit: Id(b),
                    amount: Decimal::new(1 + (self.rand() % 500) as i64, 2),
                    currency: None,
                }],
                pending_timeout_seconds: None,
                reference: String::new(),
            }));
        }
        self.index += 1;
        self.now += 1_000_000;
        (
            self.index,
            Batch {
                timestamp_ns: self.now,
                seed: self.index,
                commands,
            },
        )
    }
}

fn setup<S: Store>(store: S, g: &mut Gen) -> Ledger<S> {
    let mut l = Ledger::open(store).unwrap();
    let mut cmds = vec![Command::CreateAccount(CreateAccount::basic(
        Id(BANK),
        "CNY",
        AccountKind::System,
    ))];
    for w in 0..WALLETS {
        cmds.push(Command::CreateAccount(CreateAccount {
            debits_must_not_exceed_credits: true,
            ..CreateAccount::basic(Id(100 + w), "CNY", AccountKind::Wallet)
        }));
    }
    for w in 0..WALLETS {
        g.next_id += 1;
        cmds.push(Command::CreateTransfer(CreateTransfer::single(
            Id(g.next_id),
            Id(BANK),
            Id(100 + w),
            Decimal::new(1_000_000_000, 2),
            None,
        )));
    }
    g.index += 1;
    l.apply(
        g.index,
        &Batch {
            timestamp_ns: g.now,
            seed: 0,
            commands: cmds,
        },
    )
    .unwrap();
    l
}

fn apply_bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("apply");
    group
        .measurement_time(Duration::from_secs(8))
        .sample_size(20);
    for &n in &[1usize, 100, 8_000] {
        group.throughput(Throughput::Elements(n as u64));
        let mut g = Gen::new();
        let mut mem = setup(MemStore::new(), &mut g);
        group.bench_function(format!("memory/{n}"), |b| {
            b.iter_batched(
                || g.batch(n),
                |(i, batch)| mem.apply(i, &batch).unwrap(),
                BatchSize::LargeInput,
            )
        });
        let dir = tempfile::tempdir().unwrap();
        let mut g = Gen::new();
        let mut rocks = setup(RocksStore::open(dir.path()).unwrap(), &mut g);
        group.bench_function(format!("rocksdb/{n}"), |b| {
            b.iter_batched(
                || g.batch(n),
                |(i, batch)| rocks.apply(i, &batch).unwrap(),
                BatchSize::LargeInput,
            )
        });
        drop(rocks);
        // As a node applies: RocksDB behind a Raft log, through the write-behind buffer, whose
        // flusher writes RocksDB on a thread of its own. The figure is the applying thread's.
        let dir = tempfile::tempdir().unwrap();
        let mut g = Gen::new();
        let db = ledger::open_db(dir.path(), &[]).unwrap();
        let mut behind = setup(RocksStore::behind_log(db).unwrap(), &mut g);
        group.bench_function(format!("behind_log/{n}"), |b| {
            b.iter_batched(
                || g.batch(n),
                |(i, batch)| behind.apply(i, &batch).unwrap(),
                BatchSize::LargeInput,
            )
        });
    }
    group.finish();
}

fn codec_bench(c: &mut Criterion) {
    let mut g = Gen::new();
    let (_, batch) = g.batch(8_000);
    let bytes = codec::encode_commands(&batch.commands);
    let mut group = c.benchmark_group("codec");
    group.throughput(Throughput::Elements(8_000));
    group.bench_function("encode/8000", |b| {
        b.iter(|| codec::encode_commands(&batch.commands))
    });
    group.bench_function("decode/8000", |b| {
        b.iter(|| codec::decode_commands(&bytes).unwrap())
    });
    group.finish();
}

fn idempotency_bench(c: &mut Criterion) {
    // Retrying an applied batch: every command is an idempotency hit (lookup + fingerprint compare).
    let mut group = c.benchmark_group("idempotency");
    group.throughput(Throughput::Elements(8_000));
    let mut g = Gen::new();
    let mut mem = setup(MemStore::new(), &mut g);
    let (i, batch) = g.batch(8_000);
    mem.apply(i, &batch).unwrap();
    let mut idx = i;
    group.bench_function("replay/memory/8000", |b| {
        b.iter(|| {
            idx += 1;
            mem.apply(idx, &batch).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, apply_bench, codec_bench, idempotency_bench);
criterion_main!(benches);
