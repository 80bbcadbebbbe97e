//! Entry points of the cargo-fuzz targets in `fuzz/`, kept here so the stable test suite replays the
//! same code over the seed corpus (`tests/fuzz_corpus.rs`). Each function takes arbitrary bytes and
//! panics only on a real bug (an invariant violated), never on bad input.

use std::sync::{Arc, OnceLock};

use ed25519_dalek::{Signer, SigningKey};
use prost::Message;

use crate::auth::{self, AuthConfig, Authenticator, ClientDirectory};
use crate::pb;
use crate::wire;

/// Bytes as a `Submit` request: decode, validate into ledger commands; whatever is accepted must
/// survive the ledger's own codec unchanged (it is what travels through the Raft log).
pub fn submit_request(data: &[u8]) {
    let Ok(req) = pb::SubmitRequest::decode(data) else {
        return;
    };
    let cny = ledger::Currency::from_code("CNY");
    if let Ok(cmds) = wire::submit_from_pb(&req, 8_192, &|_| cny) {
        assert!(!cmds.is_empty() && cmds.len() <= 8_192);
        let bytes = ledger::codec::encode_commands(&cmds);
        assert_eq!(
            ledger::codec::decode_commands(&bytes).expect("accepted commands decode"),
            cmds
        );
    }
}

struct OneKey([u8; 32]);

impl ClientDirectory for OneKey {
    fn lookup(&self, public_key: &[u8; 32]) -> Option<(ledger::ClientRole, bool)> {
        (public_key == &self.0).then_some((ledger::ClientRole::Payments, false))
    }
    fn is_empty(&self) -> bool {
        false
    }
}

fn fixture() -> &'static (Authenticator, SigningKey) {
    static F: OnceLock<(Authenticator, SigningKey)> = OnceLock::new();
    F.get_or_init(|| {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let dir = Arc::new(OneKey(key.verifying_key().to_bytes()));
        let peer = SigningKey::from_bytes(&[9u8; 32]).verifying_key();
        (Authenticator::new(AuthConfig::default(), dir, peer, 1), key)
    })
}

/// Bytes as the signed metadata and body of a request. The first byte chooses which parts are
/// genuine (bit 0: the registered key, bit 1: the current time, bit 2: a real signature, bit 3: then
/// corrupt the body); the rest supplies the nonce, arbitrary header text and the body. Verification
/// must never panic, and must accept only a genuine signature over the exact body.
pub fn signed_request(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (auth, key) = fixture();
    let split = rest.len().min(12);
    let (head, body) = rest.split_at(split);
    let nonce = format!("n{}", hex::encode(head));
    let path = "/suanpan.v1.Ledger/Submit";
    let ts = if mode & 2 != 0 {
        auth::now_ms().to_string()
    } else {
        String::from_utf8_lossy(head).into_owned()
    };
    let key_hex = if mode & 1 != 0 {
        hex::encode(key.verifying_key().to_bytes())
    } else {
        String::from_utf8_lossy(body).into_owned()
    };
    let sig_hex = if mode & 4 != 0 {
        let digest: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(body).into();
        let ts_num: u64 = ts.parse().unwrap_or(0);
        hex::encode(
            key.sign(auth::canonical_string(path, ts_num, &nonce, &digest).as_bytes())
                .to_bytes(),
        )
    } else {
        hex::encode(body.iter().rev().take(64).copied().collect::<Vec<u8>>())
    };
    let mut message = body.to_vec();
    if mode & 8 != 0 {
        match message.first_mut() {
            Some(b) => *b ^= 1,
            None => message.push(0),
        }
    }
    let mut headers = http::HeaderMap::new();
    for (name, value) in [
        (auth::HEADER_KEY, key_hex),
        (auth::HEADER_TS, ts),
        (auth::HEADER_NONCE, nonce),
        (auth::HEADER_SIG, sig_hex),
    ] {
        if let Ok(v) = http::HeaderValue::from_str(&value) {
            headers.insert(name, v);
        }
    }
    if auth.verify_request(path, &headers, &message).is_ok() {
        assert!(
            mode & 1 != 0 && mode & 4 != 0 && mode & 8 == 0,
            "accepted a request the key did not sign (mode {mode:#x})"
        );
    }
}
