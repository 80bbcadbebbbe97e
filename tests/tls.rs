//! TLS everywhere: a 3-node cluster started with `--tls-dir` (certificates from `suanpan certs
//! init`) replicates over mutual TLS and serves clients that trust its CA; plaintext clients and
//! clients trusting another CA get nothing; a peer stream must present the certificate of the node
//! it claims to be — a stranger without one, a node claiming another's id, and the old admin-key
//! signed stream open are all refused.

mod common;

use std::process::Command;
use std::time::Duration;

use api::client::{cmd as ops, Client, ClientConfig};
use api::pb;
use common::*;
use ledger::Id;

fn id(n: u128) -> Id {
    Id(0x0190_0000_0000_7000_8000_0000_0000_0000 | n)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_serves_only_clients_that_trust_its_ca() {
    let cluster = Cluster::start_tls(3, &[]);
    cluster.wait_ready(Duration::from_secs(60)).await;
    let mut cfg = cluster.config(cluster.endpoints());
    cfg.max_attempts = 40;
    let c = Client::connect(cfg, cluster.key()).unwrap();
    let (a, b) = (id(1), id(2));
    for (acc, kind) in [(a, pb::AccountKind::System), (b, pb::AccountKind::Wallet)] {
        let o = c
            .submit_one(ops::create_account(acc, "CNY", kind))
            .await
            .unwrap();
        assert!(o.is_ok(), "{o:?}");
    }
    let o = c
        .submit_one(ops::transfer(id(3), a, b, "12.34", "CNY"))
        .await
        .unwrap();
    assert!(o.is_ok(), "{o:?}");
    // Replicated over mutual TLS to every node.
    let (applied, _) = cluster.wait_converged(Duration::from_secs(30)).await;
    assert!(applied > 0);
    // The status fan-out reaches every member over TLS too.
    let v = json(&cluster.cli(&["cluster", "status"]));
    let members = v["members"].as_array().unwrap();
    assert_eq!(members.len(), 3, "{v}");
    assert!(members.iter().all(|m| m["reachable"] == true), "{v}");

    // A plaintext client gets nothing.
    let mut plain = ClientConfig::new(cluster.endpoints());
    plain.max_attempts = 1;
    let p = Client::connect(plain, cluster.key()).unwrap();
    assert!(p.get_account(b).await.is_err());
    // Nor does a client that trusts another cluster's CA.
    let other = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["certs", "init", "--nodes", "1", "--dir"])
        .arg(other.path().join("tls"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut stranger = ClientConfig::new(cluster.endpoints());
    stranger.max_attempts = 1;
    stranger.tls_ca_pem =
        Some(std::fs::read_to_string(other.path().join("tls").join("ca.pem")).unwrap());
    let s = Client::connect(stranger, cluster.key()).unwrap();
    assert!(s.get_account(b).await.is_err());
    // The CLI with --ca reads the balance.
    let v = json(&cluster.cli(&["account", "get", &b.to_string()]));
    assert_eq!(v["accounts"][0]["balance"], "12.34", "{v}");
}

/// Opens a peer stream to `addr` as whoever `tls` makes us, claiming `from`, with `extra`
/// metadata; sends one frame; returns the outcome.
async fn open_peer_stream(
    addr: &str,
    tls: tonic::transport::ClientTlsConfig,
    from: u64,
    extra: &[(&'static str, String)],
) -> Result<(), tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("https://{addr}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    let frames = futures::stream::iter(vec![pb::PeerFrame {
        frame: vec![0u8; 8],
        from_address: String::new(),
    }]);
    let mut req = tonic::Request::new(frames);
    req.metadata_mut()
        .insert("x-suanpan-peer-from", from.to_string().parse().unwrap());
    for (k, v) in extra {
        req.metadata_mut().insert(*k, v.parse().unwrap());
    }
    pb::peer_client::PeerClient::new(channel)
        .stream(req)
        .await
        .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_stream_needs_the_certificate_of_the_node_it_claims_to_be() {
    let cluster = Cluster::start_tls(3, &[]);
    cluster.wait_ready(Duration::from_secs(60)).await;
    let tls_dir = cluster.dir.path().join("tls");
    let node2 = api::tls::NodeTls::load(&tls_dir, 2).unwrap();
    let addr1 = cluster.node(1).addr.clone();

    // Node 2's own certificate, as node 2: the stream is accepted (its garbage frame is dropped
    // by the reassembler, as any malformed frame is).
    open_peer_stream(&addr1, node2.peer_client_config(1), 2, &[])
        .await
        .expect("node 2 may open a stream to node 1");
    // Node 2's certificate, claiming to be node 3.
    let s = open_peer_stream(&addr1, node2.peer_client_config(1), 3, &[])
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unauthenticated, "{s:?}");
    // No client certificate at all, with the admin-key signature of the plaintext scheme.
    let no_cert = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&node2.ca_pem))
        .domain_name(api::tls::node_server_name(1));
    let signed: Vec<(&'static str, String)> = api::auth::peer_headers(&cluster.key(), 2, 1)
        .into_iter()
        .filter(|(k, _)| *k != "x-suanpan-peer-from")
        .collect();
    let s = open_peer_stream(&addr1, no_cert, 2, &signed)
        .await
        .unwrap_err();
    assert_eq!(s.code(), tonic::Code::Unauthenticated, "{s:?}");
    // A certificate from another CA does not get past the handshake.
    let other = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["certs", "init", "--nodes", "2", "--dir"])
        .arg(other.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut forged = api::tls::NodeTls::load(other.path(), 2).unwrap();
    forged.ca_pem = node2.ca_pem.clone(); // trust the real cluster, present the stranger's cert
    assert!(
        open_peer_stream(&addr1, forged.peer_client_config(1), 2, &[])
            .await
            .is_err()
    );
    // The cluster is unharmed.
    cluster.wait_converged(Duration::from_secs(30)).await;
}

/// Without `--tls-dir` a node serves plaintext only when told `--insecure`; otherwise it refuses
/// to start and says how to fix it.
#[test]
fn a_node_without_tls_refuses_to_start_unless_insecure() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["node", "--id", "1", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("n1"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--insecure") && err.contains("--tls-dir"),
        "{err}"
    );
}
