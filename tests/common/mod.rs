//! A real cluster of `suanpan node` processes on 127.0.0.1 for integration tests: ports chosen at run
//! time, data in a temporary directory, nodes killed with SIGKILL and restarted at will.
#![allow(dead_code)]

pub mod bank;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use api::client::{Client, ClientConfig};
use api::pb;

pub const BIN: &str = env!("CARGO_BIN_EXE_suanpan");

/// The seed of a randomized test: `SUANPAN_SEED` or the clock; always printed so a failure replays.
/// Today's date in UTC (the business time zone a fresh cluster starts with).
#[allow(dead_code)]
pub fn utc_today() -> chrono::NaiveDate {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    chrono::DateTime::from_timestamp(secs, 0)
        .expect("a valid time")
        .date_naive()
}

/// The command creating a custodial bank account in CNY: a system account that never holds more
/// credits than debits (an asset, debit-normal).
#[allow(dead_code)]
pub fn custodial_bank(id: ledger::Id) -> pb::Command {
    api::client::cmd::create_account_with(pb::CreateAccount {
        id: id.to_string(),
        currency: "CNY".into(),
        kind: pb::AccountKind::System as i32,
        credits_must_not_exceed_debits: true,
        ..Default::default()
    })
}

pub fn seed() -> u64 {
    let s = std::env::var("SUANPAN_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("seed={s} (replay with SUANPAN_SEED={s})");
    s
}

pub struct Node {
    pub id: u64,
    pub addr: String,
    pub data_dir: PathBuf,
    pub child: Option<Child>,
    pub join: bool,
    /// Command the node process runs under (e.g. `ip netns exec NS`); empty: run directly.
    pub prefix: Vec<String>,
}

pub struct Cluster {
    pub dir: tempfile::TempDir,
    pub key: PathBuf,
    pub nodes: Vec<Node>,
    pub initial: Vec<u64>,
    pub extra_args: Vec<String>,
    /// The cluster CA of a TLS cluster (`start_tls`); clients and the CLI trust it.
    pub ca: Option<PathBuf>,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// Starts `n` nodes forming one cluster. `extra` flags go to every node.
    pub fn start(n: u64, extra: &[&str]) -> Cluster {
        Self::start_with(n, extra, false)
    }

    /// Starts `n` nodes with TLS everywhere: a CA and node certificates made by `suanpan certs
    /// init` in the cluster's directory, `--tls-dir` on every node.
    pub fn start_tls(n: u64, extra: &[&str]) -> Cluster {
        Self::start_with(n, extra, true)
    }

    fn start_with(n: u64, extra: &[&str], tls: bool) -> Cluster {
        let hosts = (1..=n)
            .map(|_| (format!("127.0.0.1:{}", free_port()), Vec::new()))
            .collect();
        Self::start_on(hosts, extra, tls)
    }

    /// Starts one node per `(listen address, command prefix)`: node `i + 1` listens on
    /// `hosts[i].0` and runs under `hosts[i].1` (the partition tests start each node in its own
    /// network namespace with `ip netns exec`).
    pub fn start_on(hosts: Vec<(String, Vec<String>)>, extra: &[&str], tls: bool) -> Cluster {
        Self::start_on_in(hosts, extra, tls, None)
    }

    /// [`Cluster::start_on`] with the nodes' data directories under `data_root` (default: the
    /// cluster's temporary directory) — the power-loss test puts them on a lossy filesystem.
    pub fn start_on_in(
        hosts: Vec<(String, Vec<String>)>,
        extra: &[&str],
        tls: bool,
        data_root: Option<PathBuf>,
    ) -> Cluster {
        Self::start_full(hosts, extra, tls, data_root, None)
    }

    /// [`Cluster::start_on_in`] with a given admin key file (default: a new key).
    pub fn start_full(
        hosts: Vec<(String, Vec<String>)>,
        extra: &[&str],
        tls: bool,
        data_root: Option<PathBuf>,
        admin_key: Option<&Path>,
    ) -> Cluster {
        let n = hosts.len() as u64;
        let dir = tempfile::tempdir().unwrap();
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let mut ca = None;
        if tls {
            let tls_dir = dir.path().join("tls");
            let out = Command::new(BIN)
                .args(["certs", "init", "--nodes", &(n + 2).to_string(), "--dir"])
                .arg(&tls_dir)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "certs init: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            extra.extend(["--tls-dir".to_string(), tls_dir.display().to_string()]);
            ca = Some(tls_dir.join("ca.pem"));
        }
        let key = dir.path().join("admin.key");
        match admin_key {
            // A cluster restored from a backup keeps its admin key (its cluster id).
            Some(k) => {
                std::fs::copy(k, &key).unwrap();
            }
            None => {
                let out = Command::new(BIN)
                    .args(["keys", "gen", "--out"])
                    .arg(&key)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "keys gen: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
        let mut c = Cluster {
            nodes: Vec::new(),
            key,
            initial: (1..=n).collect(),
            extra_args: extra,
            ca,
            dir,
        };
        for (i, (addr, prefix)) in hosts.into_iter().enumerate() {
            let id = i as u64 + 1;
            let data_dir = data_root
                .as_deref()
                .unwrap_or(c.dir.path())
                .join(format!("node-{id}"));
            c.nodes.push(Node {
                id,
                addr,
                data_dir,
                child: None,
                join: false,
                prefix,
            });
        }
        for id in 1..=n {
            c.spawn(id);
        }
        c
    }

    pub fn node(&self, id: u64) -> &Node {
        self.nodes.iter().find(|n| n.id == id).expect("node id")
    }

    fn node_mut(&mut self, id: u64) -> &mut Node {
        self.nodes.iter_mut().find(|n| n.id == id).expect("node id")
    }

    /// Starts (or restarts) node `id` with its data dir.
    pub fn spawn(&mut self, id: u64) {
        let n = self.node(id);
        let mut args: Vec<String> = vec![
            "node".into(),
            "--id".into(),
            id.to_string(),
            "--data-dir".into(),
            n.data_dir.display().to_string(),
            "--listen".into(),
            n.addr.clone(),
            "--admin-key-file".into(),
            self.key.display().to_string(),
            "--tick-interval-ms".into(),
            "50".into(),
        ];
        for p in &self.nodes {
            if p.id != id && (self.initial.contains(&p.id) || !n.join) {
                args.push("--peer".into());
                args.push(format!("{}={}", p.id, p.addr));
            }
        }
        if n.join {
            args.push("--join".into());
        }
        if self.ca.is_none() {
            args.push("--insecure".into());
        }
        args.extend(self.extra_args.iter().cloned());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("node-{id}.log")))
            .unwrap();
        let mut command = match n.prefix.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        let child = command
            .args(&args)
            .env("SUANPAN_LOG", "info")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.node_mut(id).child = Some(child);
    }

    /// Adds a new node process (not yet a member) started with --join.
    pub fn spawn_joining(&mut self, id: u64) -> String {
        let addr = format!("127.0.0.1:{}", free_port());
        let data_dir = self.dir.path().join(format!("node-{id}"));
        self.nodes.push(Node {
            id,
            addr: addr.clone(),
            data_dir,
            child: None,
            join: true,
            prefix: Vec::new(),
        });
        self.spawn(id);
        addr
    }

    /// SIGTERM, then wait: the node stops cleanly (its ledger flushed to disk), so its data
    /// directory can be inspected or changed as it will be found at the next start. Falls back
    /// to SIGKILL after 30 s.
    pub fn stop(&mut self, id: u64) {
        if let Some(mut c) = self.node_mut(id).child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while c.try_wait().ok().flatten().is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = c.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.wait();
        }
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill(&mut self, id: u64) {
        if let Some(mut c) = self.node_mut(id).child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn wipe(&mut self, id: u64) {
        let d = self.node(id).data_dir.clone();
        let _ = std::fs::remove_dir_all(&d);
    }

    pub fn endpoints(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .map(|n| n.addr.clone())
            .collect()
    }

    pub fn key(&self) -> ed25519_dalek::SigningKey {
        api::client::load_key_file(&self.key).unwrap()
    }

    /// A client configuration for these endpoints (trusting the cluster CA of a TLS cluster).
    pub fn config(&self, endpoints: Vec<String>) -> ClientConfig {
        let mut cfg = ClientConfig::new(endpoints);
        cfg.tls_ca_pem = self
            .ca
            .as_ref()
            .map(|p| std::fs::read_to_string(p).unwrap());
        cfg
    }

    /// A client over every running node.
    pub fn client(&self) -> Client {
        Client::connect(self.config(self.endpoints()), self.key()).unwrap()
    }

    /// A client pinned to one node, reading its local state (stale reads allowed).
    pub fn local_client(&self, id: u64) -> Client {
        let mut cfg = self.config(vec![self.node(id).addr.clone()]);
        cfg.stale_reads = true;
        cfg.max_attempts = 2;
        cfg.request_timeout_ms = 2_000;
        Client::connect(cfg, self.key()).unwrap()
    }

    pub async fn info(&self, id: u64) -> Option<pb::NodeInfoResponse> {
        self.local_client(id).node_info().await.ok()
    }

    /// Waits until some running node reports itself leader and the admin key is registered
    /// (a write succeeds), up to `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            for n in &self.nodes {
                if n.child.is_none() {
                    continue;
                }
                if let Some(i) = self.info(n.id).await {
                    if i.role == pb::NodeRole::Leader as i32 {
                        let c = self.client();
                        if c.list_clients()
                            .await
                            .map(|l| !l.is_empty())
                            .unwrap_or(false)
                        {
                            return n.id;
                        }
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "cluster not ready in {timeout:?}; logs in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn leader(&self) -> Option<u64> {
        for n in &self.nodes {
            if n.child.is_some() {
                if let Some(i) = self.info(n.id).await {
                    if i.role == pb::NodeRole::Leader as i32 {
                        return Some(n.id);
                    }
                }
            }
        }
        None
    }

    /// Waits until a node other than `old` reports itself leader (up to `timeout`); returns it.
    pub async fn wait_leader_other_than(&self, old: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.leader().await.filter(|l| *l != old) {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no leader other than {old} in {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until every running node reports the same applied index and digest; returns them.
    pub async fn wait_converged(&self, timeout: Duration) -> (u64, String) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut seen = Vec::new();
            for n in &self.nodes {
                if n.child.is_some() {
                    seen.push(self.info(n.id).await.map(|i| (i.applied_index, i.digest)));
                }
            }
            if let Some(Some(first)) = seen.first() {
                if seen.iter().all(|s| s.as_ref() == Some(first)) {
                    return first.clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "replicas did not converge: {seen:?}; logs in {}",
                self.dir.path().display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs the CLI against this cluster with `--json`; returns the process output.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with(&self.key, args, true)
    }

    /// Runs the CLI against this cluster as the caller of `key` (`--json` when asked).
    pub fn cli_with(&self, key: &Path, args: &[&str], json: bool) -> Output {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .arg("--endpoint")
            .arg(self.endpoints().join(","))
            .arg("--key")
            .arg(key);
        if json {
            cmd.arg("--json");
        }
        if let Some(ca) = &self.ca {
            cmd.arg("--ca").arg(ca);
        }
        cmd.output().unwrap()
    }

    /// Makes a key file in `dir` and registers it with `role` (named after the role).
    pub fn registered_key(&self, dir: &Path, role: &str) -> PathBuf {
        let key = dir.join(format!("{role}.key"));
        let out = Command::new(BIN)
            .args(["keys", "gen", "--out", key.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success());
        let out = self.cli(&[
            "clients",
            "add",
            "--key-file",
            key.to_str().unwrap(),
            "--role",
            role,
            "--name",
            role,
        ]);
        assert!(
            out.status.success(),
            "clients add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        key
    }

    pub fn log_dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if std::thread::panicking() {
            // Keep the logs of a failed test.
            let p = self.dir.path().to_path_buf();
            eprintln!("node logs kept in {}", p.display());
            std::mem::forget(std::mem::replace(
                &mut self.dir,
                tempfile::tempdir().unwrap(),
            ));
        }
    }
}

/// Parses the CLI's JSON output, failing with its stderr.
pub fn json(out: &Output) -> serde_json::Value {
    let s = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(s.lines().last().unwrap_or("")).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): stdout={s} stderr={}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// A merchant's notify URL for tests: a tiny HTTP/1.1 server on 127.0.0.1 that answers `500` to a
/// seeded share of requests (the sender must retry) and records every body it accepted.
pub struct NotifySink {
    pub url: String,
    pub accepted: std::sync::Arc<parking_lot::Mutex<Vec<serde_json::Value>>>,
    pub refused: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl NotifySink {
    /// Refuses a request with probability `fail_percent` / 100, drawn from `seed`.
    pub async fn start(seed: u64, fail_percent: u64) -> NotifySink {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/notify", listener.local_addr().unwrap());
        let accepted = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
        let refused = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (acc, refd) = (accepted.clone(), refused.clone());
        let rng = std::sync::Arc::new(parking_lot::Mutex::new(ledger::rng::SplitMix64::new(seed)));
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let (acc, refd, rng) = (acc.clone(), refd.clone(), rng.clone());
                tokio::spawn(async move {
                    // Read the head, then Content-Length bytes of body (bounded).
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 || buf.len() > 64 << 10 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break p + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0)
                        .min(64 << 10);
                    while buf.len() < head_end + len {
                        let Ok(n) = s.read(&mut chunk).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    let fail = rng.lock().below(100) < fail_percent;
                    let status = if fail {
                        refd.fetch_add(1, Ordering::Relaxed);
                        "500 Internal Server Error"
                    } else {
                        if let Ok(v) = serde_json::from_slice(&buf[head_end..head_end + len]) {
                            acc.lock().push(v);
                        }
                        "200 OK"
                    };
                    let resp = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        NotifySink {
            url,
            accepted,
            refused,
        }
    }

    /// Ids (`"<index>-<seq>"`) of the events accepted so far.
    pub fn ids(&self) -> std::collections::BTreeSet<String> {
        self.accepted
            .lock()
            .iter()
            .filter_map(|v| v["id"].as_str().map(String::from))
            .collect()
    }
}
