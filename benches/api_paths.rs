//! The API's per-request work: Ed25519 signature verification of a signed `Submit` (once per request,
//! not per command), and protobuf decoding + validation of a 100-transfer batch into ledger commands.
//!
//! `cargo bench --workspace --bench api_paths`

use std::sync::Arc;

use api::auth::{AuthConfig, Authenticator, ClientDirectory, SignedHeaders};
use api::client::cmd;
use api::pb;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use ed25519_dalek::SigningKey;
use prost::Message;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct OneKey([u8; 32]);
impl ClientDirectory for OneKey {
    fn lookup(&self, k: &[u8; 32]) -> Option<(ledger::ClientRole, bool)> {
        (k == &self.0).then_some((ledger::ClientRole::Payments, false))
    }
    fn is_empty(&self) -> bool {
        false
    }
}

fn batch(n: u128) -> pb::SubmitRequest {
    let a = ledger::Id(0xA);
    let b = ledger::Id(0xB);
    pb::SubmitRequest {
        commands: (0..n)
            .map(|i| cmd::transfer(ledger::Id(1000 + i), a, b, "12.34", "CNY"))
            .collect(),
    }
}

fn benches(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[7; 32]);
    let auth = Authenticator::new(
        AuthConfig::default(),
        Arc::new(OneKey(key.verifying_key().to_bytes())),
        SigningKey::from_bytes(&[9; 32]).verifying_key(),
        1,
    );
    let body = batch(100).encode_to_vec();
    let path = "/suanpan.v1.Ledger/Submit";
    let mut g = c.benchmark_group("api");
    g.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    g.bench_function("verify_signed_submit/100_transfers", |bch| {
        bch.iter_batched(
            || {
                n += 1;
                let h = SignedHeaders::sign(
                    &key,
                    path,
                    &body,
                    api::auth::now_ms(),
                    format!("bench-nonce-{n}"),
                );
                let mut md = tonic::metadata::MetadataMap::new();
                h.apply(&mut md);
                md.into_headers()
            },
            |headers| auth.verify_request(path, &headers, &body).expect("valid"),
            BatchSize::SmallInput,
        )
    });
    g.throughput(Throughput::Elements(100));
    g.bench_function("decode_validate_submit/100_transfers", |bch| {
        let cny = ledger::Currency::from_code("CNY");
        bch.iter(|| {
            let req = pb::SubmitRequest::decode(body.as_slice()).unwrap();
            api::wire::submit_from_pb(&req, 8_192, &|_| cny).unwrap()
        })
    });
    g.finish();
}

criterion_group!(api_benches, benches);
criterion_main!(api_benches);
