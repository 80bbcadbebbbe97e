//! Three in-process nodes over real gRPC on 127.0.0.1: leader redirects, cluster status, peer
//! transport, failover.

mod common;

use std::time::Duration;

use api::client::{cmd, new_id, Client};
use api::node::{start, RunningNode};
use api::pb;
use common::*;

fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

async fn wait_converged(c: &Client, members: usize) -> pb::ClusterStatusResponse {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(s) = c.cluster_status().await {
            let infos: Vec<_> = s.members.iter().filter_map(|m| m.info.clone()).collect();
            if s.leader_id != 0
                && infos.len() == members
                && infos
                    .windows(2)
                    .all(|w| w[0].applied_index == w[1].applied_index && w[0].digest == w[1].digest)
            {
                return s;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "cluster did not converge"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_redirect_and_fail_over() {
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("cluster-admin.key");
    let admin_key = api::client::generate_key_file(&key_path).unwrap();
    let ports = free_ports(3);
    let addrs: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut nodes: Vec<Option<RunningNode>> = Vec::new();
    for i in 0..3u64 {
        let mut cfg = fast_config(i + 1, dir.path(), addrs[i as usize].parse().unwrap());
        cfg.admin_key_file = Some(key_path.clone());
        // Nodes 1 and 3 apply on an apply thread of their own, node 2 on its Raft thread: the
        // mode is each node's own business, and both run through the failover below.
        cfg.raft.apply_pipelined = i != 1;
        cfg.peers = (0..3u64)
            .filter(|j| *j != i)
            .map(|j| (j + 1, addrs[j as usize].clone()))
            .collect();
        nodes.push(Some(start(cfg).await.unwrap()));
    }

    // A client that only knows node 3 still reaches the leader.
    let admin = Client::connect(client_config(&[addrs[2].clone()]), admin_key.clone()).unwrap();
    wait_bootstrapped(&admin).await;
    let status = wait_converged(&admin, 3).await;
    assert_eq!(status.members.len(), 3);
    assert!(status.members.iter().all(|m| m.reachable), "{status:?}");
    let leader = status.leader_id;

    let follower = (1..=3u64).find(|id| *id != leader).unwrap();
    let via_follower = Client::connect(
        client_config(&[addrs[(follower - 1) as usize].clone()]),
        admin_key.clone(),
    )
    .unwrap();
    let (bank, wallet) = (new_id(), new_id());
    let r = via_follower
        .submit(vec![
            cmd::create_account(bank, "USD", pb::AccountKind::System),
            cmd::create_account(wallet, "USD", pb::AccountKind::Wallet),
            cmd::transfer(new_id(), bank, wallet, "10.50", "USD"),
        ])
        .await
        .unwrap();
    assert!(r.iter().all(|x| x.is_ok()), "{r:?}");
    // Linearizable read on a follower sees it.
    let reader = {
        let mut cfg = client_config(&[addrs[(follower - 1) as usize].clone()]);
        cfg.stale_reads = false;
        Client::connect(cfg, admin_key.clone()).unwrap()
    };
    assert_eq!(
        reader.get_account(wallet).await.unwrap().unwrap().balance,
        "10.50"
    );
    wait_converged(&admin, 3).await;

    // Kill the leader: the others elect a new one and keep accepting writes.
    nodes[(leader - 1) as usize]
        .take()
        .unwrap()
        .shutdown()
        .await
        .unwrap();
    let everyone = Client::connect(client_config(&addrs), admin_key.clone()).unwrap();
    let r = everyone
        .submit(vec![cmd::transfer(new_id(), bank, wallet, "1", "USD")])
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    assert_eq!(
        everyone.get_account(wallet).await.unwrap().unwrap().balance,
        "11.50"
    );
    let s = everyone.cluster_status().await.unwrap();
    assert_ne!(s.leader_id, leader);
    assert!(
        s.members.iter().any(|m| m.id == leader && !m.reachable),
        "{s:?}"
    );

    for n in nodes.into_iter().flatten() {
        n.shutdown().await.unwrap();
    }
}
