#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use api::client::{Client, ClientConfig};
use api::node::{start, NodeConfig, RunningNode};
use ed25519_dalek::SigningKey;

pub fn fast_config(id: u64, dir: &std::path::Path, listen: SocketAddr) -> NodeConfig {
    let mut cfg = NodeConfig::new(id, dir.join(format!("node{id}")), listen);
    cfg.raft.tick_interval_ms = 10;
    cfg.raft.election_tick = 10;
    cfg.raft.heartbeat_tick = 2;
    cfg.insecure = true;
    cfg
}

pub fn client_config(addrs: &[String]) -> ClientConfig {
    let mut c = ClientConfig::new(addrs.iter().cloned());
    c.max_attempts = 50;
    c.backoff_max_ms = 200;
    c.request_timeout_ms = 5_000;
    c
}

/// Starts a single-node cluster and waits until the bootstrap admin key is registered.
pub async fn single_node(
    dir: &std::path::Path,
    tweak: impl FnOnce(&mut NodeConfig),
) -> (RunningNode, Client) {
    let mut cfg = fast_config(1, dir, "127.0.0.1:0".parse().unwrap());
    tweak(&mut cfg);
    let node = start(cfg).await.expect("node starts");
    let admin = Client::connect(
        client_config(&[node.local_addr.to_string()]),
        node.admin_key.clone(),
    )
    .unwrap();
    wait_bootstrapped(&admin).await;
    (node, admin)
}

pub async fn wait_bootstrapped(admin: &Client) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match admin.list_clients().await {
            Ok(c) if !c.is_empty() => return,
            other => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "bootstrap did not complete: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

pub fn new_key() -> SigningKey {
    SigningKey::generate(&mut rand::rngs::OsRng)
}
