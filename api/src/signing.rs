//! The signing side of request authentication, shared by the client and the server: the
//! canonical string, signed metadata, peer stream headers and Ed25519 key files. The scheme is
//! described step by step in [`crate::auth`] and `docs/api.md`; verification lives in
//! [`crate::auth`] (server builds only).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey};
use ed25519_dalek::{Signer, SigningKey};
use sha2::{Digest, Sha256};

use crate::protocol::*;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The canonical string a client signs (unbound, v1).
pub fn canonical_string(
    method_path: &str,
    ts_ms: u64,
    nonce: &str,
    body_sha256: &[u8; 32],
) -> String {
    canonical_for(None, method_path, ts_ms, nonce, body_sha256)
}

/// The canonical string for `cluster`: bound (`suanpan-v2`, the cluster id first, so a captured
/// request cannot be replayed on another cluster and removing the cluster header breaks the
/// signature) or, for `None`, the unbound v1 form.
pub fn canonical_for(
    cluster: Option<&str>,
    method_path: &str,
    ts_ms: u64,
    nonce: &str,
    body_sha256: &[u8; 32],
) -> String {
    let rest = format!(
        "{method_path}\n{ts_ms}\n{nonce}\n{}",
        hex::encode(body_sha256)
    );
    match cluster {
        Some(c) => format!("suanpan-v2\n{c}\n{rest}"),
        None => format!("suanpan-v1\n{rest}"),
    }
}

pub fn peer_canonical_string(from: u64, to: u64, ts_ms: u64) -> String {
    format!("suanpan-peer-v1\n{from}\n{to}\n{ts_ms}")
}

/// The four metadata values of a signed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHeaders {
    pub public_key_hex: String,
    pub ts_ms: u64,
    pub nonce: String,
    pub signature_hex: String,
    /// The cluster the request is bound to (`None`: the v1 scheme).
    pub cluster: Option<String>,
}

impl SignedHeaders {
    /// Signs a request whose protobuf encoding is `message_bytes`, at time `ts_ms`.
    pub fn sign(
        key: &SigningKey,
        method_path: &str,
        message_bytes: &[u8],
        ts_ms: u64,
        nonce: String,
    ) -> SignedHeaders {
        SignedHeaders::sign_for(None, key, method_path, message_bytes, ts_ms, nonce)
    }

    /// [`SignedHeaders::sign`] bound to `cluster` when given.
    pub fn sign_for(
        cluster: Option<&str>,
        key: &SigningKey,
        method_path: &str,
        message_bytes: &[u8],
        ts_ms: u64,
        nonce: String,
    ) -> SignedHeaders {
        let digest: [u8; 32] = Sha256::digest(message_bytes).into();
        let sig = key.sign(canonical_for(cluster, method_path, ts_ms, &nonce, &digest).as_bytes());
        SignedHeaders {
            public_key_hex: hex::encode(key.verifying_key().as_bytes()),
            ts_ms,
            nonce,
            signature_hex: hex::encode(sig.to_bytes()),
            cluster: cluster.map(str::to_string),
        }
    }

    /// Signs now with a random nonce (unbound, v1).
    pub fn sign_now(key: &SigningKey, method_path: &str, message_bytes: &[u8]) -> SignedHeaders {
        SignedHeaders::sign(key, method_path, message_bytes, now_ms(), random_nonce())
    }

    /// Signs now with a random nonce, bound to `cluster` when given.
    pub fn sign_now_for(
        cluster: Option<&str>,
        key: &SigningKey,
        method_path: &str,
        message_bytes: &[u8],
    ) -> SignedHeaders {
        SignedHeaders::sign_for(
            cluster,
            key,
            method_path,
            message_bytes,
            now_ms(),
            random_nonce(),
        )
    }

    pub fn apply(&self, md: &mut tonic::metadata::MetadataMap) {
        let put = |md: &mut tonic::metadata::MetadataMap, k: &'static str, v: &str| {
            if let Ok(v) = v.parse() {
                md.insert(k, v);
            }
        };
        put(md, HEADER_KEY, &self.public_key_hex);
        put(md, HEADER_TS, &self.ts_ms.to_string());
        put(md, HEADER_NONCE, &self.nonce);
        put(md, HEADER_SIG, &self.signature_hex);
        if let Some(c) = &self.cluster {
            put(md, HEADER_CLUSTER, c);
        }
    }
}

pub fn random_nonce() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// Metadata for opening a peer stream from `from` to `to`.
pub fn peer_headers(cluster_key: &SigningKey, from: u64, to: u64) -> [(&'static str, String); 3] {
    let ts = now_ms();
    let sig = cluster_key.sign(peer_canonical_string(from, to, ts).as_bytes());
    [
        (HEADER_PEER_FROM, from.to_string()),
        (HEADER_PEER_TS, ts.to_string()),
        (HEADER_PEER_SIG, hex::encode(sig.to_bytes())),
    ]
}

// ---------------------------------------------------------------------------------------------
// Audit checkpoints

/// What a checkpoint's signature covers: a domain tag, then index, digest and log time.
pub fn checkpoint_message(index: u64, digest: &[u8; 32], timestamp_ns: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(b"suanpan-checkpoint/1\0");
    m.extend_from_slice(&index.to_le_bytes());
    m.extend_from_slice(digest);
    m.extend_from_slice(&timestamp_ns.to_le_bytes());
    m
}

/// Signs a checkpoint with the cluster's audit key.
pub fn sign_checkpoint(
    audit_key: &SigningKey,
    index: u64,
    digest: &[u8; 32],
    timestamp_ns: u64,
) -> [u8; 64] {
    audit_key
        .sign(&checkpoint_message(index, digest, timestamp_ns))
        .to_bytes()
}

/// Whether `signature` is the audit key's signature of this checkpoint.
pub fn verify_checkpoint(
    audit_key: &[u8; 32],
    index: u64,
    digest: &[u8; 32],
    timestamp_ns: u64,
    signature: &[u8; 64],
) -> bool {
    use ed25519_dalek::Verifier;
    let Ok(vk) = ed25519_dalek::VerifyingKey::from_bytes(audit_key) else {
        return false;
    };
    let sig = ed25519_dalek::Signature::from_bytes(signature);
    vk.verify(&checkpoint_message(index, digest, timestamp_ns), &sig)
        .is_ok()
}

/// The audit key a cluster uses when the operator gives none: derived from the cluster's admin
/// key (which every node holds), domain-separated, so every node signs with the same key and no
/// extra secret has to be distributed.
pub fn derived_audit_key(admin_key: &SigningKey) -> SigningKey {
    let mut h = Sha256::new();
    h.update(b"suanpan-audit-key/1\n");
    h.update(admin_key.to_bytes());
    SigningKey::from_bytes(&h.finalize().into())
}

// ---------------------------------------------------------------------------------------------
// Key files

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("key file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("key file {path}: {reason}")]
    Format { path: String, reason: String },
}

/// Generates a new Ed25519 key, writes it to `path` as PKCS#8 PEM with mode 0600 (fails if the
/// file exists) and returns it.
pub fn generate_key_file(path: &Path) -> Result<SigningKey, KeyFileError> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    save_key_file(path, &key)?;
    Ok(key)
}

/// Writes `key` to a new file `path` as PKCS#8 PEM, mode 0600.
pub fn save_key_file(path: &Path, key: &SigningKey) -> Result<(), KeyFileError> {
    use std::io::Write;
    let io = |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    };
    let pem = key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| KeyFileError::Format {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io)?;
    f.write_all(pem.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}

/// Loads a key file: PKCS#8 PEM, or 64 hex digits (the 32-byte secret seed).
pub fn load_key_file(path: &Path) -> Result<SigningKey, KeyFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    })?;
    parse_key(&text).map_err(|e| KeyFileError::Format {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Why a key's text is not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    #[error("not a PKCS#8 Ed25519 key: {0}")]
    Pkcs8(String),
    #[error("neither PKCS#8 PEM nor hex")]
    NotPemOrHex,
    #[error("a hex key is 32 bytes (64 hex digits), got {0} bytes")]
    HexLength(usize),
}

/// Parses a key: PKCS#8 PEM, or 64 hex digits (the 32-byte secret seed).
pub fn parse_key(text: &str) -> Result<SigningKey, KeyParseError> {
    let t = text.trim();
    if t.starts_with("-----BEGIN") {
        return SigningKey::from_pkcs8_pem(t).map_err(|e| KeyParseError::Pkcs8(e.to_string()));
    }
    let bytes = hex::decode(t).map_err(|_| KeyParseError::NotPemOrHex)?;
    let seed: [u8; 32] = bytes
        .try_into()
        .map_err(|b: Vec<u8>| KeyParseError::HexLength(b.len()))?;
    Ok(SigningKey::from_bytes(&seed))
}
