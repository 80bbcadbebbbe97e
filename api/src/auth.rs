//! Request authentication: Ed25519 request signatures, replay protection, roles, key files.
//!
//! ## Signing scheme (version 1)
//! 1. Encode the request message with protobuf; take the SHA-256 of exactly the bytes sent as the
//!    gRPC message (the payload of the single length-prefixed gRPC frame, uncompressed).
//! 2. Pick `ts` = current Unix time in milliseconds and a fresh `nonce` (8 ..= 64 characters of
//!    `[A-Za-z0-9_-]`, e.g. 32 hex digits of randomness).
//! 3. Build the canonical string (UTF-8, `\n` separators, no trailing newline):
//!    `suanpan-v1\n{method path}\n{ts}\n{nonce}\n{lower-case hex SHA-256}` where the method path is
//!    the HTTP/2 `:path`, e.g. `/suanpan.v1.Ledger/Submit`.
//! 4. Sign the canonical string's bytes with the client's Ed25519 key (RFC 8032, pure Ed25519).
//! 5. Send metadata `x-suanpan-key` (hex public key, 64 digits), `x-suanpan-ts`, `x-suanpan-nonce`,
//!    `x-suanpan-sig` (hex signature, 128 digits).
//!
//! The server checks, in order: metadata present and well-formed, `|now - ts| <= window`
//! (default 60 s), key registered and not revoked, signature valid, nonce not seen for this key
//! within the window (then remembers it) → otherwise `UNAUTHENTICATED`; then the key's role allows
//! the method → otherwise `PERMISSION_DENIED`. Until the first client key is registered in the
//! ledger (bootstrap), an unknown key gets `UNAVAILABLE` (`x-suanpan-error: bootstrapping`).
//!
//! ## Peer streams
//! `/suanpan.v1.Peer/*` streams are authenticated once at stream open with metadata
//! `x-suanpan-peer-from` (sender node id), `x-suanpan-peer-ts` (Unix ms) and `x-suanpan-peer-sig`:
//! an Ed25519 signature by the cluster admin key over `suanpan-peer-v1\n{from}\n{to}\n{ts}`, checked
//! against the receiving node's admin public key within the same time window. Every node of a
//! cluster must therefore be given the same admin key file. Stream opens are not nonce-checked: a
//! replayed stream can only replay Raft frames, which Raft tolerates (terms and indexes).
//!
//! That scheme is the **insecure** one (plaintext: anyone who sees a stream can inject frames into
//! it). With TLS (`--tls-dir`, see [`crate::tls`]) a peer stream is authenticated by the connection
//! instead: mutual TLS with the cluster CA, and the client certificate must name the node
//! `x-suanpan-peer-from` claims (`node-<id>.suanpan`); the admin key plays no part. Every Raft
//! message on the stream must then come from that node (`consensus::NodeHandle::step_from`).

use std::collections::{BTreeSet, HashSet};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use ed25519_dalek::{Signature, Verifier, VerifyingKey};
use http_body_util::BodyExt;
use ledger::ClientRole;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};
use tonic::body::Body;
use tonic::Status;

pub use crate::protocol::*;
pub use crate::signing::*;

// ---------------------------------------------------------------------------------------------
// Server-side verification

/// Where keys and roles come from (the replicated ledger).
pub trait ClientDirectory: Send + Sync + 'static {
    /// `(role, revoked)` of a registered key.
    fn lookup(&self, public_key: &[u8; 32]) -> Option<(ClientRole, bool)>;
    /// True while no client key at all is registered (bootstrap in progress).
    fn is_empty(&self) -> bool;
}

/// Who called, inserted into the request extensions of authenticated calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caller {
    pub public_key: [u8; 32],
    pub role: ClientRole,
}

/// Which roles may call a method.
pub fn role_allows(role: ClientRole, path: &str) -> bool {
    match role {
        ClientRole::Admin => true,
        ClientRole::Payments => path.starts_with(LEDGER_PREFIX),
        ClientRole::FinanceRead => path.starts_with(LEDGER_PREFIX) && !is_submit_path(path),
    }
}

/// Bounded replay cache: remembers (key, nonce) pairs until their timestamp leaves the window.
pub struct NonceCache {
    seen: HashSet<[u8; 16]>,
    by_expiry: BTreeSet<(u64, [u8; 16], [u8; 32])>,
    /// Unexpired nonces per key: one key may hold at most `per_key_max`, so a single client
    /// flooding nonces is refused on its own instead of filling the cache for everyone.
    per_key: std::collections::HashMap<[u8; 32], usize>,
    capacity: usize,
    per_key_max: usize,
}

impl NonceCache {
    /// A cache of `capacity` nonces in all, each key at most a quarter of it.
    pub fn new(capacity: usize) -> NonceCache {
        let capacity = capacity.max(1);
        NonceCache {
            seen: HashSet::new(),
            by_expiry: BTreeSet::new(),
            per_key: std::collections::HashMap::new(),
            capacity,
            per_key_max: (capacity / 4).max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Records a nonce valid until `expires_ms`. `Ok(false)` = replay; `Err(())` = the cache, or
    /// this key's share of it, is full of unexpired entries (the request must be refused:
    /// evicting would allow replays).
    #[allow(clippy::result_unit_err)]
    pub fn insert(
        &mut self,
        public_key: &[u8; 32],
        nonce: &str,
        now_ms: u64,
        expires_ms: u64,
    ) -> Result<bool, ()> {
        while let Some(&(exp, h, k)) = self.by_expiry.first() {
            if exp >= now_ms {
                break;
            }
            self.by_expiry.pop_first();
            self.seen.remove(&h);
            if let std::collections::hash_map::Entry::Occupied(mut e) = self.per_key.entry(k) {
                *e.get_mut() -= 1;
                if *e.get() == 0 {
                    e.remove();
                }
            }
        }
        let mut hasher = Sha256::new();
        hasher.update(public_key);
        hasher.update(nonce.as_bytes());
        let h: [u8; 16] = hasher.finalize()[..16].try_into().expect("16 of 32 bytes");
        if self.seen.contains(&h) {
            return Ok(false);
        }
        let held = self.per_key.get(public_key).copied().unwrap_or(0);
        if self.seen.len() >= self.capacity || held >= self.per_key_max {
            return Err(());
        }
        self.seen.insert(h);
        self.by_expiry.insert((expires_ms, h, *public_key));
        *self.per_key.entry(*public_key).or_default() += 1;
        Ok(true)
    }
}

/// The signed metadata of a request, parsed.
struct HeaderParts<'h> {
    key: [u8; 32],
    ts: u64,
    nonce: &'h str,
    sig_hex: &'h str,
    role: ClientRole,
    /// The cluster the request is signed for (checked to be this one), if bound.
    cluster: Option<&'h str>,
}

/// Settings of the verifier.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// Accepted clock skew either way, in milliseconds.
    pub window_ms: u64,
    /// Most remembered nonces.
    pub nonce_cache_entries: usize,
    /// Largest request message accepted, in bytes (larger: `INVALID_ARGUMENT`).
    pub max_request_bytes: usize,
    /// This node's cluster id: a request signed for another cluster is refused, and every
    /// response names it (`x-suanpan-cluster`) so clients can bind their signatures to it.
    pub cluster_id: String,
    /// Longest a client call may take: reading its body, then answering it (`DEADLINE_EXCEEDED`
    /// after; a stream counts until its response starts). Slow senders do not hold a call open.
    pub request_timeout_ms: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            window_ms: 60_000,
            nonce_cache_entries: 1 << 20,
            max_request_bytes: 8 << 20,
            cluster_id: String::new(),
            request_timeout_ms: 30_000,
        }
    }
}

/// Shared verifier state.
pub struct Authenticator {
    cfg: AuthConfig,
    directory: Arc<dyn ClientDirectory>,
    nonces: Mutex<NonceCache>,
    /// The cluster admin public key (peer streams without TLS) and this node's id.
    peer_key: VerifyingKey,
    node_id: u64,
    /// Peers prove their id with a TLS client certificate (the admin key is not accepted).
    peer_tls: bool,
    /// Counts refused calls.
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

pub(crate) fn status_with_reason(
    code: tonic::Code,
    msg: impl Into<String>,
    reason: &str,
) -> Status {
    let mut s = Status::new(code, msg);
    if let Ok(v) = reason.parse() {
        s.metadata_mut().insert(HEADER_ERROR, v);
    }
    s
}

fn header<'a>(h: &'a http::HeaderMap, name: &str) -> Result<&'a str, Status> {
    h.get(name)
        .ok_or_else(|| Status::unauthenticated(format!("missing {name} metadata")))?
        .to_str()
        .map_err(|_| Status::unauthenticated(format!("malformed {name} metadata")))
}

impl Authenticator {
    pub fn new(
        cfg: AuthConfig,
        directory: Arc<dyn ClientDirectory>,
        peer_key: VerifyingKey,
        node_id: u64,
    ) -> Authenticator {
        let nonces = Mutex::new(NonceCache::new(cfg.nonce_cache_entries));
        Authenticator {
            cfg,
            directory,
            nonces,
            peer_key,
            node_id,
            peer_tls: false,
            metrics: None,
        }
    }

    /// Counts every call answered with an error status in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Authenticator {
        self.metrics = Some(metrics);
        self
    }

    /// Peers must prove their id with a TLS client certificate from the cluster CA.
    pub fn with_peer_tls(mut self) -> Authenticator {
        self.peer_tls = true;
        self
    }

    fn check_ts(&self, ts: &str, now: u64) -> Result<u64, Status> {
        let ts: u64 = ts
            .parse()
            .map_err(|_| Status::unauthenticated("timestamp is not unix milliseconds"))?;
        if ts.abs_diff(now) > self.cfg.window_ms {
            return Err(Status::unauthenticated(format!(
                "timestamp {ts} is outside the accepted window of ±{} ms around {now}",
                self.cfg.window_ms
            )));
        }
        Ok(ts)
    }

    /// Verifies a client request given its headers, method path and message bytes.
    /// The checks that need no body: metadata present and well-formed, timestamp in the window,
    /// key registered and not revoked. Run before the body is read, so an unknown or stale caller
    /// costs the node no buffering.
    fn check_headers<'h>(&self, headers: &'h http::HeaderMap) -> Result<HeaderParts<'h>, Status> {
        let key_hex = header(headers, HEADER_KEY)?;
        let ts = header(headers, HEADER_TS)?;
        let nonce = header(headers, HEADER_NONCE)?;
        let sig_hex = header(headers, HEADER_SIG)?;
        let cluster = headers.get(HEADER_CLUSTER).and_then(|v| v.to_str().ok());
        if cluster.is_some_and(|c| c != self.cfg.cluster_id) {
            return Err(status_with_reason(
                tonic::Code::PermissionDenied,
                "the request is signed for another cluster",
                "wrong_cluster",
            ));
        }
        let ts = self.check_ts(ts, now_ms())?;
        if nonce.len() < NONCE_CHARS_MIN
            || nonce.len() > NONCE_CHARS_MAX
            || !nonce
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        {
            return Err(Status::unauthenticated(
                "nonce must be 8..=64 characters of [A-Za-z0-9_-]",
            ));
        }
        let mut key = [0u8; 32];
        hex::decode_to_slice(key_hex, &mut key)
            .map_err(|_| Status::unauthenticated("public key is not 64 hex digits"))?;
        let role = match self.directory.lookup(&key) {
            Some((_, true)) => return Err(Status::unauthenticated("client key revoked")),
            Some((role, false)) => role,
            None if self.directory.is_empty() => {
                return Err(status_with_reason(
                    tonic::Code::Unavailable,
                    "cluster is bootstrapping: no client key registered yet, retry shortly",
                    "bootstrapping",
                ))
            }
            None => return Err(Status::unauthenticated("unknown client key")),
        };
        Ok(HeaderParts {
            key,
            ts,
            nonce,
            sig_hex,
            role,
            cluster,
        })
    }

    /// [`Authenticator::check_headers`] alone, for the layer to run before reading the body.
    pub fn precheck(&self, headers: &http::HeaderMap) -> Result<(), Status> {
        self.check_headers(headers).map(|_| ())
    }

    pub fn verify_request(
        &self,
        path: &str,
        headers: &http::HeaderMap,
        message: &[u8],
    ) -> Result<Caller, Status> {
        let HeaderParts {
            key,
            ts,
            nonce,
            sig_hex,
            role,
            cluster,
        } = self.check_headers(headers)?;
        let now = now_ms();
        let mut sig = [0u8; 64];
        hex::decode_to_slice(sig_hex, &mut sig)
            .map_err(|_| Status::unauthenticated("signature is not 128 hex digits"))?;
        let vk = VerifyingKey::from_bytes(&key)
            .map_err(|_| Status::unauthenticated("invalid public key"))?;
        let digest: [u8; 32] = Sha256::digest(message).into();
        vk.verify_strict(
            canonical_for(cluster, path, ts, nonce, &digest).as_bytes(),
            &Signature::from_bytes(&sig),
        )
        .map_err(|_| Status::unauthenticated("bad signature"))?;
        match self
            .nonces
            .lock()
            .insert(&key, nonce, now, ts.saturating_add(self.cfg.window_ms))
        {
            Ok(true) => {}
            Ok(false) => return Err(Status::unauthenticated("replayed nonce")),
            Err(()) => {
                return Err(status_with_reason(
                    tonic::Code::Unavailable,
                    "replay cache full, retry later",
                    "overloaded",
                ))
            }
        }
        if !role_allows(role, path) {
            return Err(Status::permission_denied(format!(
                "role {} may not call {path}",
                role.name()
            )));
        }
        Ok(Caller {
            public_key: key,
            role,
        })
    }

    /// The id of the node opening a peer stream. `leaf_certificate`: the TLS client certificate
    /// of the connection (its chain already verified against the cluster CA by the handshake).
    pub fn verify_peer(
        &self,
        headers: &http::HeaderMap,
        leaf_certificate: Option<&[u8]>,
    ) -> Result<u64, Status> {
        let from: u64 = header(headers, HEADER_PEER_FROM)?
            .parse()
            .map_err(|_| Status::unauthenticated("bad peer id"))?;
        if self.peer_tls {
            return match leaf_certificate {
                Some(der) if crate::tls::certificate_names_node(der, from) => Ok(from),
                Some(_) => Err(Status::unauthenticated(format!(
                    "the peer's certificate does not name node {from}"
                ))),
                None => Err(Status::unauthenticated(
                    "peer streams need a TLS client certificate from the cluster CA",
                )),
            };
        }
        let ts = self.check_ts(header(headers, HEADER_PEER_TS)?, now_ms())?;
        let mut sig = [0u8; 64];
        hex::decode_to_slice(header(headers, HEADER_PEER_SIG)?, &mut sig)
            .map_err(|_| Status::unauthenticated("bad peer signature"))?;
        self.peer_key
            .verify(
                peer_canonical_string(from, self.node_id, ts).as_bytes(),
                &Signature::from_bytes(&sig),
            )
            .map_err(|_| Status::unauthenticated("bad peer signature"))?;
        Ok(from)
    }
}

// ---------------------------------------------------------------------------------------------
// The tower layer: runs before tonic decodes anything, so a rejected call never reaches a handler.

#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(auth: Arc<Authenticator>) -> AuthLayer {
        AuthLayer { auth }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

type BoxFuture<T> = Pin<Box<dyn std::future::Future<Output = T> + Send + 'static>>;

/// Reads a unary request body (bounded), returning the raw bytes and the concatenated message
/// payloads of its gRPC frames.
async fn read_body(body: Body, max_bytes: usize) -> Result<(Bytes, Vec<u8>), Status> {
    let limited = http_body_util::Limited::new(body, max_bytes.saturating_add(5));
    let raw = match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return Err(Status::invalid_argument(format!(
                    "request exceeds the {max_bytes}-byte limit"
                )));
            }
            return Err(Status::cancelled(format!("reading request: {e}")));
        }
    };
    // Exactly one uncompressed frame: the signature covers that frame's payload, and a unary
    // call is that one message (split into frames, a signed message's prefix could otherwise be
    // served as a message of its own).
    if raw.len() < 5 {
        return Err(Status::invalid_argument("truncated gRPC frame"));
    }
    if raw[0] != 0 {
        return Err(Status::invalid_argument(
            "compressed requests are not supported",
        ));
    }
    let len = u32::from_be_bytes([raw[1], raw[2], raw[3], raw[4]]) as usize;
    if raw.len() < 5 + len {
        return Err(Status::invalid_argument("truncated gRPC frame"));
    }
    if raw.len() > 5 + len {
        return Err(Status::invalid_argument(
            "a request carries exactly one gRPC message",
        ));
    }
    let message = raw[5..].to_vec();
    Ok((raw, message))
}

impl<S> tower::Service<http::Request<Body>> for AuthService<S>
where
    S: tower::Service<http::Request<Body>, Response = http::Response<Body>>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        let counted = auth.clone();
        let handled = Box::pin(async move {
            let path = req.uri().path().to_string();
            if path.starts_with(PEER_PREFIX) {
                let mut req = req;
                let certs = req
                    .extensions()
                    .get::<tonic::transport::server::TlsConnectInfo<
                        tonic::transport::server::TcpConnectInfo,
                    >>()
                    .and_then(|i| i.peer_certs());
                let leaf = certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref());
                return match auth.verify_peer(req.headers(), leaf) {
                    Ok(from) => {
                        req.extensions_mut().insert(crate::protocol::PeerId(from));
                        inner.call(req).await
                    }
                    Err(s) => Ok(s.into_http()),
                };
            }
            if !(path.starts_with(LEDGER_PREFIX) || path.starts_with(ADMIN_PREFIX)) {
                return inner.call(req).await; // reflection, or unknown (tonic answers UNIMPLEMENTED)
            }
            let cluster = http::HeaderValue::from_str(&auth.cfg.cluster_id).ok();
            let name_cluster = |mut resp: http::Response<Body>| {
                if let Some(c) = &cluster {
                    resp.headers_mut().insert(HEADER_CLUSTER, c.clone());
                }
                resp
            };
            // Who is calling is checked from the headers alone, before any body is buffered.
            if let Err(s) = auth.precheck(req.headers()) {
                return Ok(name_cluster(s.into_http()));
            }
            let deadline = tokio::time::Instant::now()
                + std::time::Duration::from_millis(auth.cfg.request_timeout_ms);
            let late = || {
                Status::deadline_exceeded(format!(
                    "the call took longer than the server's {} ms limit",
                    auth.cfg.request_timeout_ms
                ))
            };
            let (mut parts, body) = req.into_parts();
            let read =
                tokio::time::timeout_at(deadline, read_body(body, auth.cfg.max_request_bytes));
            let (raw, message) = match read.await {
                Ok(Ok(x)) => x,
                Ok(Err(s)) => return Ok(name_cluster(s.into_http())),
                Err(_) => return Ok(name_cluster(late().into_http())),
            };
            match auth.verify_request(&path, &parts.headers, &message) {
                Ok(caller) => {
                    parts.extensions.insert(caller);
                    let body = Body::new(http_body_util::Full::new(raw));
                    let call = inner.call(http::Request::from_parts(parts, body));
                    match tokio::time::timeout_at(deadline, call).await {
                        Ok(r) => r.map(name_cluster),
                        Err(_) => Ok(name_cluster(late().into_http())),
                    }
                }
                Err(s) => Ok(name_cluster(s.into_http())),
            }
        });
        Box::pin(async move {
            let resp = handled.await;
            if let (Some(m), Ok(r)) = (&counted.metrics, &resp) {
                count_rejection(m, r);
            }
            resp
        })
    }
}

/// An error answer carries `grpc-status` in its headers (a trailers-only response): count it
/// with its reason. Successful calls carry their status in trailers and are not counted here.
fn count_rejection(m: &crate::metrics::Metrics, r: &http::Response<Body>) {
    let h = r.headers();
    let code = match h.get("grpc-status").and_then(|v| v.to_str().ok()) {
        Some("0") | None => return,
        Some(c) => c
            .parse::<i32>()
            .map(|c| format!("{:?}", tonic::Code::from(c)))
            .unwrap_or_else(|_| "unknown".into()),
    };
    let reason = h
        .get(crate::protocol::HEADER_ERROR)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    m.rejected(&code, reason);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8];
        f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn read(bytes: Vec<u8>) -> Result<Vec<u8>, Status> {
        let body = Body::new(http_body_util::Full::new(Bytes::from(bytes)));
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(read_body(body, 1 << 20))
            .map(|(_, m)| m)
    }

    struct NoKeys;
    impl ClientDirectory for NoKeys {
        fn lookup(&self, _: &[u8; 32]) -> Option<(ClientRole, bool)> {
            None
        }
        fn is_empty(&self) -> bool {
            false
        }
    }

    /// An unknown key is refused from its headers alone: the node does not read (buffer) the
    /// body of a caller it does not know.
    #[test]
    fn an_unknown_caller_is_refused_before_its_body_is_read() {
        use std::sync::atomic::{AtomicBool, Ordering};
        use tower::{Layer, ServiceExt};
        let polled = Arc::new(AtomicBool::new(false));
        let p = polled.clone();
        let body = futures::stream::poll_fn(move |_| {
            p.store(true, Ordering::SeqCst);
            std::task::Poll::Ready(Some(Ok::<_, Status>(http_body::Frame::data(
                Bytes::from_static(&[0u8; 1024]),
            ))))
        });
        let body = Body::new(http_body_util::StreamBody::new(body));
        let key = ed25519_dalek::SigningKey::from_bytes(&[5u8; 32]);
        let signed = SignedHeaders::sign_now(&key, SUBMIT_PATH, b"");
        let mut req = http::Request::builder()
            .uri(format!("http://node{SUBMIT_PATH}"))
            .body(body)
            .unwrap();
        let mut md = tonic::metadata::MetadataMap::new();
        signed.apply(&mut md);
        *req.headers_mut() = md.into_headers();
        let auth = Arc::new(Authenticator::new(
            AuthConfig::default(),
            Arc::new(NoKeys),
            key.verifying_key(),
            1,
        ));
        let inner = tower::service_fn(|_req: http::Request<Body>| async {
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
        });
        let svc = AuthLayer::new(auth).layer(inner);
        let resp = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(svc.oneshot(req))
            .unwrap();
        let status = Status::from_header_map(resp.headers()).expect("a gRPC status");
        assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
        assert!(!polled.load(Ordering::SeqCst), "the body was read");
    }

    struct OneAdmin([u8; 32]);
    impl ClientDirectory for OneAdmin {
        fn lookup(&self, k: &[u8; 32]) -> Option<(ClientRole, bool)> {
            (*k == self.0).then_some((ClientRole::Admin, false))
        }
        fn is_empty(&self) -> bool {
            false
        }
    }

    /// A request signed for one cluster is refused by another that knows the same key, and
    /// removing the cluster header (to pass it off as unbound) breaks the signature.
    #[test]
    fn a_signature_is_bound_to_its_cluster() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let node = |cluster: &str| {
            Authenticator::new(
                AuthConfig {
                    cluster_id: cluster.into(),
                    ..AuthConfig::default()
                },
                Arc::new(OneAdmin(key.verifying_key().to_bytes())),
                key.verifying_key(),
                1,
            )
        };
        let (a, b) = (node("cluster-a"), node("cluster-b"));
        let body = b"submit body";
        let headers = |signed: &SignedHeaders| {
            let mut md = tonic::metadata::MetadataMap::new();
            signed.apply(&mut md);
            md.into_headers()
        };
        let for_a = SignedHeaders::sign_now_for(Some("cluster-a"), &key, SUBMIT_PATH, body);
        let err = b
            .verify_request(SUBMIT_PATH, &headers(&for_a), body)
            .unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
        assert_eq!(ErrorReason::of(&err), Some(ErrorReason::WrongCluster));
        let mut stripped = headers(&for_a);
        stripped.remove(HEADER_CLUSTER);
        let err = b.verify_request(SUBMIT_PATH, &stripped, body).unwrap_err();
        assert!(err.message().contains("bad signature"), "{err:?}");
        a.verify_request(SUBMIT_PATH, &headers(&for_a), body)
            .expect("accepted by the cluster it was signed for");
    }

    /// One key flooding nonces fills only its own share: other clients are still served.
    #[test]
    fn one_key_cannot_fill_the_nonce_cache_for_everyone() {
        let mut c = NonceCache::new(160);
        let (a, b) = ([1u8; 32], [2u8; 32]);
        let mut refused = 0;
        for i in 0..200 {
            if c.insert(&a, &format!("nonce-{i:08}"), 1_000, 60_000)
                .is_err()
            {
                refused += 1;
            }
        }
        assert_eq!(refused, 160, "key a keeps exactly its share of 40");
        assert_eq!(c.insert(&b, "nonce-b-000001", 1_000, 60_000), Ok(true));
        // Expired nonces give the share back.
        assert_eq!(c.insert(&a, "nonce-late-001", 70_000, 130_000), Ok(true));
    }

    /// A signed message split over two frames would let its prefix be served as a message of its
    /// own: a request must be exactly one frame.
    #[test]
    fn a_request_is_exactly_one_frame() {
        assert_eq!(read(frame(b"abcdef")).unwrap(), b"abcdef");
        let mut two = frame(b"abc");
        two.extend(frame(b"def"));
        let e = read(two).unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument);
        assert!(e.message().contains("exactly one"), "{e:?}");
        assert_eq!(
            read(frame(b"abc")[..6].to_vec()).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
        assert_eq!(
            read(vec![0, 0]).unwrap_err().code(),
            tonic::Code::InvalidArgument
        );
    }

    #[test]
    fn nonce_cache_rejects_replays_and_expires() {
        let mut c = NonceCache::new(2);
        let k = [1u8; 32];
        assert_eq!(c.insert(&k, "aaaaaaaa", 0, 10), Ok(true));
        assert_eq!(c.insert(&k, "aaaaaaaa", 5, 15), Ok(false));
        assert_eq!(c.insert(&[2u8; 32], "aaaaaaaa", 5, 15), Ok(true));
        assert_eq!(c.insert(&k, "bbbbbbbb", 5, 15), Err(()));
        // After expiry the first entry is dropped and room is made.
        assert_eq!(c.insert(&k, "bbbbbbbb", 11, 20), Ok(true));
    }

    #[test]
    fn key_files_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.pem");
        let k = generate_key_file(&p).unwrap();
        assert_eq!(load_key_file(&p).unwrap().to_bytes(), k.to_bytes());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        assert!(generate_key_file(&p).is_err(), "never overwrites");
        let hexp = dir.path().join("k.hex");
        std::fs::write(&hexp, hex::encode(k.to_bytes())).unwrap();
        assert_eq!(load_key_file(&hexp).unwrap().to_bytes(), k.to_bytes());
    }

    #[test]
    fn roles() {
        assert!(role_allows(ClientRole::Payments, SUBMIT_PATH));
        assert!(!role_allows(ClientRole::FinanceRead, SUBMIT_PATH));
        assert!(role_allows(ClientRole::Payments, SUBMIT_TRANSFERS_PATH));
        assert!(!role_allows(ClientRole::FinanceRead, SUBMIT_TRANSFERS_PATH));
        assert!(role_allows(
            ClientRole::FinanceRead,
            "/suanpan.v1.Ledger/GetAccounts"
        ));
        assert!(!role_allows(
            ClientRole::Payments,
            "/suanpan.v1.Admin/AddNode"
        ));
        assert!(role_allows(ClientRole::Admin, "/suanpan.v1.Admin/AddNode"));
    }
}
