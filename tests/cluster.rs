//! Replication under failure, with real `suanpan node` processes on 127.0.0.1.
//!
//! Sizes are small by default so CI stays quick; `SUANPAN_SOAK=1` multiplies the load by ten.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use std::str::FromStr;

use api::client::{cmd as ops, Client};
use common::bank::*;
use common::*;
use ledger::Id;
use rust_decimal::Decimal;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_sigkill_under_load_loses_and_duplicates_nothing() {
    sigkill_the_leader_under_load(Wires::Submit).await;
}

/// The two wire forms through a leader kill: half the clients send `Submit` commands, half
/// `SubmitTransfers` records. Every acknowledged transfer is on every replica exactly once, and
/// every one resent in either form — the other one included — replays its first outcome.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_wire_forms_survive_a_leader_kill_and_replay_across_forms() {
    sigkill_the_leader_under_load(Wires::Both).await;
}

/// A bank load in `wires`; the leader SIGKILLed a quarter of the way through and restarted;
/// nothing lost or applied twice, and every acknowledged command's retry replays its outcome.
async fn sigkill_the_leader_under_load(wires: Wires) {
    let seed = seed();
    let mut c = Cluster::start(3, &["--snapshot-threshold-entries", "500"]);
    c.wait_ready(READY).await;
    let client = c.client();
    let bank = api::client::new_id();
    let wallets: Arc<Vec<Id>> = Arc::new((0..50).map(|_| api::client::new_id()).collect());
    create_accounts(&client, bank, &wallets).await;

    let (workers, batches, per_batch) = (4, 100 * scale(), 25);
    let progress = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let load_task = tokio::spawn(load_wires(
        wires,
        Default::default(),
        progress.clone(),
        client.clone(),
        wallets.clone(),
        seed,
        workers,
        batches,
        per_batch,
    ));
    // Kill the leader a quarter of the way through the load, restart it at half-way.
    let total = (workers * batches) as u64;
    while progress.load(std::sync::atomic::Ordering::Relaxed) < total / 4 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let leader = c.leader().await.expect("a leader");
    eprintln!(
        "killing leader {leader} (SIGKILL) after {} of {total} batches",
        progress.load(std::sync::atomic::Ordering::Relaxed)
    );
    c.kill(leader);
    tokio::time::sleep(Duration::from_secs(2)).await;
    eprintln!(
        "restarting node {leader} after {} batches",
        progress.load(std::sync::atomic::Ordering::Relaxed)
    );
    c.spawn(leader);
    let (acked, retries) = load_task.await.unwrap();
    eprintln!(
        "acknowledged {} transfers, {retries} retried batches",
        acked.len()
    );
    assert_eq!(acked.len(), workers * batches * per_batch);

    check_replicas(&c, bank, &wallets, &acked).await;
    check_retries(&client, &acked).await;
    if wires == Wires::Both {
        check_retries_binary(&client, &acked).await;
    }
    // Retries changed nothing.
    check_replicas(&c, bank, &wallets, &acked).await;
}

/// A follower whose disk is lost must not come back under its old id (it would be a voter that
/// forgot its vote and log): the node refuses to start, naming the way back. Replaced the
/// documented way — removed, and an empty node joined under a new id — the newcomer catches up
/// through a snapshot, the leader crashes right after the newcomer was added, and every
/// acknowledged transfer is on every replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wiped_follower_is_refused_and_replaced_through_a_snapshot() {
    let seed = seed();
    let (mut c, leader, client, bank, wallets) = snapshotting_bank(20, 5, 20).await;
    let follower = c
        .nodes
        .iter()
        .map(|n| n.id)
        .find(|id| *id != leader)
        .unwrap();
    eprintln!("killing and wiping follower {follower}");
    c.kill(follower);
    c.wipe(follower);
    // Enough entries for the log to be compacted behind a snapshot meanwhile.
    let (acked, _) = load(
        Default::default(),
        client.clone(),
        wallets.clone(),
        seed,
        2,
        40 * scale(),
        10,
    )
    .await;

    // Restarted empty under its old id: refused.
    c.spawn(follower);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let child = c.nodes.iter_mut().find(|n| n.id == follower).unwrap();
        if let Some(st) = child.child.as_mut().unwrap().try_wait().unwrap() {
            break st;
        }
        assert!(Instant::now() < deadline, "the wiped node kept running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(!status.success());
    c.kill(follower);
    let log = std::fs::read_to_string(c.log_dir().join(format!("node-{follower}.log")))
        .unwrap_or_default();
    assert!(log.contains("log is lost"), "no refusal in the log:\n{log}");

    // The documented way back: remove it, join an empty node under a new id.
    let out = c.cli(&["cluster", "remove-node", "--id", &follower.to_string()]);
    assert!(
        out.status.success(),
        "remove-node: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let addr = c.spawn_joining(4);
    let out = c.cli(&["cluster", "add-node", "--id", "4", "--address", &addr]);
    assert!(
        out.status.success(),
        "add-node: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A wipe followed by a leader crash: the leader dies while the newcomer is still new.
    eprintln!("killing leader {leader} right after node 4 was added");
    c.kill(leader);
    tokio::time::sleep(Duration::from_secs(1)).await;
    c.spawn(leader);
    let (more, _) = load(
        Default::default(),
        client.clone(),
        wallets.clone(),
        seed ^ 1,
        2,
        10,
        10,
    )
    .await;
    let mut acked = acked;
    acked.extend(more);
    check_replicas(&c, bank, &wallets, &acked).await;
    node_log_with_a_fetched_snapshot(&c, 4);
}

/// Repeated kills under load: the leader and then the leader elected after it (the cluster is
/// without a quorum until one comes back), twice; then a follower that needs a snapshot killed
/// again and again shortly after each restart, while it catches up. Nothing lost or doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn repeated_kills_of_new_leaders_and_of_a_node_catching_up() {
    let seed = seed();
    let (mut c, _, client, bank, wallets) = snapshotting_bank(50, 10, 30).await;
    let progress = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load_task = tokio::spawn(load_wires(
        Wires::Submit,
        stop.clone(),
        progress.clone(),
        client.clone(),
        wallets.clone(),
        seed,
        3,
        100_000,
        10,
    ));
    let done = || progress.load(std::sync::atomic::Ordering::Relaxed);
    let wait_batches = |n: u64| common::bank::wait_batches(&progress, n);
    for round in 1..=2 * scale() {
        wait_batches(20).await;
        let first = c.leader().await.expect("a leader");
        eprintln!(
            "round {round}: killing leader {first} after {} batches",
            done()
        );
        c.kill(first);
        let second = c.wait_leader_other_than(first, READY).await;
        eprintln!("round {round}: killing the next leader {second} too (no quorum now)");
        c.kill(second);
        tokio::time::sleep(Duration::from_millis(500)).await;
        c.spawn(first);
        wait_batches(10).await;
        c.spawn(second);
    }
    // A follower falls behind the compacted log, then is killed shortly after every restart.
    let leader = c.leader().await.expect("a leader");
    let follower = (1..=3).find(|i| *i != leader).unwrap();
    c.kill(follower);
    wait_batches(60).await;
    for pause_ms in [150, 400, 800] {
        eprintln!("restarting follower {follower}, killing it again after {pause_ms} ms");
        c.spawn(follower);
        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
        c.kill(follower);
        wait_batches(20).await;
    }
    c.spawn(follower);
    wait_batches(20).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (acked, retries) = load_task.await.unwrap();
    eprintln!(
        "acknowledged {} transfers, {retries} batches retried",
        acked.len()
    );
    check_replicas(&c, bank, &wallets, &acked).await;
    check_retries(&client, &acked).await;
    check_replicas(&c, bank, &wallets, &acked).await;
    node_log_with_a_fetched_snapshot(&c, follower);
}

/// Waits (up to 30 s, else fails with `what`) for a complete checkpoint in a snapshots directory.
async fn wait_for_checkpoint(dir: &std::path::Path, what: &str) {
    let checkpointed = || {
        std::fs::read_dir(dir).unwrap().any(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.starts_with("checkpoint-") && !name.ends_with(".tmp")
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !checkpointed() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Snapshots are checkpoints streamed on demand. Every node is stopped in turn with its snapshot
/// directory as a crash while checkpointing and fetching leaves it (a temporary checkpoint
/// directory, a partial file, no complete checkpoint): it checkpoints again at start. A newcomer
/// then receives the ledger, several 1 MiB chunks of it, streamed from the leader's checkpoint,
/// and holds every transfer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_snapshot_checkpoint_lost_in_a_crash_is_rebuilt_and_streams_to_a_newcomer() {
    let seed = seed();
    // A snapshot point every 10 entries: group commit packs the load's 80 calls into as few as
    // 20 entries on a loaded machine (at 50, some runs never reached a snapshot point).
    let (mut c, _, client, bank, wallets) = snapshotting_bank(10, 5, 200).await;
    let (acked, _) = load(
        Default::default(),
        client.clone(),
        wallets.clone(),
        seed,
        4,
        20 * scale(),
        250,
    )
    .await;
    for id in [1, 2, 3] {
        let dir = c.node(id).data_dir.join("snapshots");
        // Checkpoints are built in the background: on a loaded machine the last snapshot
        // point's may still be in progress.
        wait_for_checkpoint(&dir, &format!("node {id} had no snapshot checkpoint")).await;
        c.stop(id);
        let mut complete = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let path = e.unwrap().path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("checkpoint-")
            {
                std::fs::remove_dir_all(&path).unwrap();
                complete += 1;
            }
        }
        assert!(complete > 0, "node {id} had no snapshot checkpoint");
        let tmp = dir.join("checkpoint-00000000000000000099.tmp");
        std::fs::create_dir_all(&tmp).unwrap();
        std::fs::write(tmp.join("000001.sst"), b"partial").unwrap();
        std::fs::write(dir.join("00000000000000000099.spls.part"), b"SPLS\x03part").unwrap();
        c.spawn(id);
        c.wait_converged(Duration::from_secs(60)).await;
        // Rebuilt at start, with no new entries to prompt it.
        wait_for_checkpoint(&dir, &format!("node {id} did not checkpoint again")).await;
    }
    let addr = c.spawn_joining(4);
    let out = c.cli(&["cluster", "add-node", "--id", "4", "--address", &addr]);
    assert!(
        out.status.success(),
        "add-node: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_replicas(&c, bank, &wallets, &acked).await;
    let log = node_log_with_a_fetched_snapshot(&c, 4);
    // Field names may be coloured: drop escape sequences before reading `bytes=N`.
    let plain = |l: &str| {
        let mut out = String::new();
        let mut chars = l.chars();
        while let Some(ch) = chars.next() {
            if ch == '\x1b' {
                chars.by_ref().find(|c| *c == 'm');
            } else {
                out.push(ch);
            }
        }
        out
    };
    let fetched: u64 = log
        .lines()
        .map(plain)
        .find(|l| l.contains("snapshot file fetched"))
        .and_then(|l| {
            let b = l.split("bytes=").nth(1)?;
            b.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
        })
        .unwrap_or_else(|| panic!("node 4 fetched no snapshot file:\n{log}"));
    eprintln!("node 4 fetched a snapshot file of {fetched} bytes");
    assert!(
        fetched > 3 << 20,
        "a snapshot of {fetched} bytes is one chunk"
    );
    for id in [1, 2, 3, 4] {
        for e in std::fs::read_dir(c.node(id).data_dir.join("snapshots")).unwrap() {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            assert!(
                !name.contains("00000000000000000099"),
                "node {id} kept what the crash left: {name}"
            );
        }
    }
}

/// An online backup of one node, taken under load, restores into a new cluster (every voter
/// restored from it) that holds exactly the backed-up state: the digest at the backup's index
/// equals the backup's, every transfer acknowledged before the backup is there with its balance
/// effect, and the new cluster takes writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_restores_into_a_cluster_with_the_same_digest() {
    let seed = seed();
    let c = Cluster::start(3, &[]);
    c.wait_ready(READY).await;
    let client = c.client();
    let bank = api::client::new_id();
    let wallets: Arc<Vec<Id>> = Arc::new((0..10).map(|_| api::client::new_id()).collect());
    create_accounts(&client, bank, &wallets).await;
    let (before, _) = load(
        Default::default(),
        client.clone(),
        wallets.clone(),
        seed,
        2,
        10,
        10,
    )
    .await;
    // Taken while another load runs: the checkpoint is consistent whatever it catches.
    let during = tokio::spawn(load(
        Default::default(),
        client.clone(),
        wallets.clone(),
        seed ^ 1,
        2,
        10,
        10,
    ));
    let backup_dir = c.dir.path().join("backup-1");
    let out = c.cli(&["backup", "--out", backup_dir.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "backup: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = json(&out);
    let (index, digest) = (
        b["applied_index"].as_u64().unwrap(),
        b["digest"].as_str().unwrap().to_string(),
    );
    eprintln!("backup at index {index}: {b}");
    let (_during, _) = during.await.unwrap();
    // Refused: the backup directory exists.
    let again = c.cli(&["backup", "--out", backup_dir.to_str().unwrap()]);
    assert!(!again.status.success());

    let restored = tempfile::tempdir().unwrap();
    for id in 1..=3u64 {
        let out = std::process::Command::new(BIN)
            .args(["restore", "--from"])
            .arg(&backup_dir)
            .arg("--data-dir")
            .arg(restored.path().join(format!("node-{id}")))
            .args(["--id", &id.to_string(), "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "restore: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let r = json(&out);
        assert_eq!(r["applied_index"].as_u64(), Some(index));
        assert_eq!(r["digest"].as_str(), Some(digest.as_str()));
        assert_eq!(r["voters"], serde_json::json!([1, 2, 3]));
    }
    // Not a member in the backup: refused.
    let out = std::process::Command::new(BIN)
        .args(["restore", "--from"])
        .arg(&backup_dir)
        .arg("--data-dir")
        .arg(restored.path().join("node-9"))
        .args(["--id", "9"])
        .output()
        .unwrap();
    assert!(!out.status.success());

    let hosts = (1..=3)
        .map(|_| (format!("127.0.0.1:{}", free_port()), Vec::new()))
        .collect();
    let r = Cluster::start_full(
        hosts,
        &[],
        false,
        Some(restored.path().to_path_buf()),
        Some(&c.key),
    );
    drop(c); // the original cluster is gone; only the backup is left
    r.wait_ready(READY).await;
    // The restored chain holds the backup's digest at its index, on every node.
    for id in 1..=3 {
        let chain = r.local_client(id).get_chain(index, 1).await.unwrap();
        assert_eq!(chain.links[0].index, index);
        assert_eq!(chain.links[0].digest, digest, "node {id}");
    }
    // Everything acknowledged before the backup is there.
    let ids: Vec<Id> = before.keys().map(|s| s.parse().unwrap()).collect();
    let got = r.client().get_transfers(&ids).await.unwrap();
    assert!(got.not_found.is_empty(), "lost: {:?}", got.not_found);
    // And the restored cluster takes writes.
    let (more, _) = load(
        Default::default(),
        r.client(),
        wallets.clone(),
        seed ^ 2,
        1,
        2,
        5,
    )
    .await;
    assert_eq!(more.len(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_nodes_survive_two_failures_and_a_minority_accepts_no_writes() {
    let _ = seed();
    let mut c = Cluster::start(5, &[]);
    c.wait_ready(READY).await;
    let bank = api::client::new_id();
    let wallets: Vec<Id> = (0..4).map(|_| api::client::new_id()).collect();
    create_accounts(&c.client(), bank, &wallets).await;
    let leader = c.leader().await.unwrap();
    let others: Vec<u64> = (1..=5).filter(|i| *i != leader).collect();
    // Two down, one of them the leader: the other three elect and keep serving.
    c.kill(leader);
    c.kill(others[0]);
    let client = c.client();
    let (r, _) = submit_until_known(
        &client,
        vec![ops::transfer(
            api::client::new_id(),
            wallets[0],
            wallets[1],
            "1.00",
            "CNY",
        )],
        Instant::now() + READY,
    )
    .await;
    assert!(r[0].is_ok());
    // A third down: 2 of 5 cannot commit.
    c.kill(others[1]);
    let mut cfg = api::client::ClientConfig::new(c.endpoints());
    cfg.max_attempts = 3;
    cfg.request_timeout_ms = 2_000;
    let minority = Client::connect(cfg, c.key()).unwrap();
    let id = api::client::new_id();
    let err = minority
        .submit_unbatched(vec![ops::transfer(
            id, wallets[0], wallets[1], "2.00", "CNY",
        )])
        .await;
    assert!(err.is_err(), "a minority accepted a write: {err:?}");
    // Heal: the write (same id) goes through exactly once.
    c.spawn(others[1]);
    let (r, _) = submit_until_known(
        &c.client(),
        vec![ops::transfer(id, wallets[0], wallets[1], "2.00", "CNY")],
        Instant::now() + READY,
    )
    .await;
    assert!(r[0].is_ok());
    let a = c.client().get_account(wallets[1]).await.unwrap().unwrap();
    assert_eq!(
        Decimal::from_str(&a.balance).unwrap(),
        Decimal::from_str("1000003.00").unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn add_and_remove_nodes_while_serving() {
    let seed = seed();
    let mut c = Cluster::start(3, &[]);
    c.wait_ready(READY).await;
    let client = c.client();
    let bank = api::client::new_id();
    let wallets: Arc<Vec<Id>> = Arc::new((0..20).map(|_| api::client::new_id()).collect());
    create_accounts(&client, bank, &wallets).await;
    let load_task = tokio::spawn(load(
        Default::default(),
        client.clone(),
        wallets.clone(),
        seed,
        2,
        100 * scale(),
        10,
    ));
    let addr = c.spawn_joining(4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = c.cli(&["cluster", "add-node", "--id", "4", "--address", &addr]);
    assert!(
        out.status.success(),
        "add-node: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let leader = c.leader().await.unwrap();
    let victim = (1..=3).find(|i| *i != leader).unwrap();
    let out = c.cli(&["cluster", "remove-node", "--id", &victim.to_string()]);
    assert!(
        out.status.success(),
        "remove-node: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (acked, _) = load_task.await.unwrap();
    c.kill(victim);
    check_replicas(&c, bank, &wallets, &acked).await;
    let status = json(&c.cli(&["cluster", "status"]));
    let voters = status["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["reachable"] == true)
        .unwrap()["voters"]
        .clone();
    let voters: Vec<u64> = serde_json::from_value(voters).unwrap();
    assert!(
        voters.contains(&4) && !voters.contains(&victim),
        "voters {voters:?}"
    );
    // Hand leadership to the added node.
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.leader().await != Some(4) {
        assert!(
            Instant::now() < deadline,
            "leadership never moved to node 4"
        );
        let out = c.cli(&["cluster", "transfer-leader", "--id", "4"]);
        assert!(
            out.status.success(),
            "transfer-leader: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let (r, _) = submit_until_known(
        &c.client(),
        vec![ops::transfer(
            api::client::new_id(),
            wallets[0],
            wallets[1],
            "1.00",
            "CNY",
        )],
        Instant::now() + READY,
    )
    .await;
    assert!(r[0].is_ok(), "write after leadership transfer: {r:?}");
}

/// A node added while the leader that took the request loses leadership before the node has
/// said a word to anyone: its address travels in the conf change, so the next leader reaches it,
/// brings it up to date and promotes it (before, only the old leader knew the address and the
/// newcomer waited for ever — seen in a 10 M-transfer join where a snapshot point's stall moved
/// the leadership).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_added_just_before_a_leader_change_is_reached_by_the_next_leader() {
    let mut c = Cluster::start(3, &[]);
    c.wait_ready(READY).await;
    let client = c.client();
    let bank = api::client::new_id();
    let wallets: Vec<Id> = (0..5).map(|_| api::client::new_id()).collect();
    create_accounts(&client, bank, &wallets).await;
    // The node is known by address but down while it is added and while leadership moves.
    let addr = c.spawn_joining(4);
    c.stop(4);
    let out = c.cli(&[
        "cluster",
        "add-node",
        "--id",
        "4",
        "--address",
        &addr,
        "--wait-s",
        "0",
    ]);
    assert!(
        out.status.success(),
        "add-node: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = c.leader().await.unwrap();
    let next = (1..=3).find(|i| *i != first).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while c.leader().await != Some(next) {
        assert!(
            Instant::now() < deadline,
            "leadership never moved to {next}"
        );
        let out = c.cli(&["cluster", "transfer-leader", "--id", &next.to_string()]);
        assert!(
            out.status.success(),
            "transfer-leader: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    c.spawn(4);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let voters: Vec<u64> = match c.info(next).await {
            Some(i) => i.voters,
            None => Vec::new(),
        };
        if voters.contains(&4) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "node 4 never promoted by leader {next} (voters {voters:?})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.wait_converged(READY).await;
}

/// Replicas compare digests on their own: a replica whose state was altered on disk while it was
/// down (its running digest changed) diverges from the others as soon as it applies again, and
/// the healthy nodes report it in `NodeInfo.divergences` — without anyone asking.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_raise_an_alarm_on_a_divergence() {
    let mut c = Cluster::start(3, &["--digest-check-interval-ms", "200"]);
    let leader = c.wait_ready(READY).await;
    let client = c.client();
    let bank = api::client::new_id();
    let wallets: Vec<Id> = (0..3).map(|_| api::client::new_id()).collect();
    create_accounts(&client, bank, &wallets).await;
    let (_, digest) = c.wait_converged(READY).await;
    let victim = (1..=3).find(|i| *i != leader).unwrap();
    // A clean stop: the ledger (written behind the Raft log, without a WAL of its own) is on
    // disk as applied, so the change below is what the node finds.
    c.stop(victim);
    {
        let db = ledger::open_db(&c.node(victim).data_dir.join("db"), &[]).unwrap();
        let mut store = ledger::RocksStore::new(db).unwrap();
        let want = hex::decode(&digest).unwrap();
        let mut rows = Vec::new();
        ledger::Store::for_each(&store, ledger::Cf::Meta, &mut |k, v| {
            rows.push((k.to_vec(), v.to_vec()));
            Ok(())
        })
        .unwrap();
        let (k, mut v) = rows
            .into_iter()
            .find(|(_, v)| v.windows(32).any(|w| w == want.as_slice()))
            .expect("the applied digest in the meta record");
        let at = v.windows(32).position(|w| w == want.as_slice()).unwrap();
        v[at] ^= 0x01;
        let mut wb = ledger::WriteBatch::default();
        wb.put(ledger::Cf::Meta, k, v);
        ledger::Store::write(&mut store, wb).unwrap();
    }
    c.spawn(victim);
    for n in 0..3u128 {
        let o = client
            .submit_one(ops::transfer(
                Id(0x0190_0000_0000_7000_8000_0000_0000_0100 | n),
                bank,
                wallets[0],
                "1.00",
                "CNY",
            ))
            .await
            .unwrap();
        assert!(o.is_ok(), "{o:?}");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut seen = Vec::new();
        for id in (1..=3).filter(|i| *i != victim) {
            if let Some(i) = c.info(id).await {
                seen.extend(i.divergences.iter().map(|d| (id, d.peer)));
            }
        }
        if !seen.is_empty() {
            assert!(seen.iter().all(|(_, peer)| *peer == victim), "{seen:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no node reported the divergence of {victim}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let v = json(&c.cli(&["cluster", "status"]));
    assert!(
        v["members"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["divergences"].as_array().is_some_and(|d| !d.is_empty())),
        "{v}"
    );
}

/// A 3-node cluster that snapshots every `threshold` entries and keeps `retain` behind each, ready
/// (its leader returned), with a bank and `wallets` funded wallets.
async fn snapshotting_bank(
    threshold: u64,
    retain: u64,
    wallets: usize,
) -> (Cluster, u64, Client, Id, Arc<Vec<Id>>) {
    let (threshold, retain) = (threshold.to_string(), retain.to_string());
    let c = Cluster::start(
        3,
        &[
            "--snapshot-threshold-entries",
            &threshold,
            "--log-retain-entries",
            &retain,
        ],
    );
    let leader = c.wait_ready(READY).await;
    let client = c.client();
    let bank = api::client::new_id();
    let wallets: Arc<Vec<Id>> = Arc::new((0..wallets).map(|_| api::client::new_id()).collect());
    create_accounts(&client, bank, &wallets).await;
    (c, leader, client, bank, wallets)
}

/// Node `id`'s log, which must show it fetched a snapshot file and installed it (else the test
/// did not test a snapshot transfer).
fn node_log_with_a_fetched_snapshot(c: &Cluster, id: u64) -> String {
    let log =
        std::fs::read_to_string(c.log_dir().join(format!("node-{id}.log"))).unwrap_or_default();
    assert!(
        log.contains("snapshot installed") && log.contains("snapshot file fetched"),
        "node {id} did not fetch and install a snapshot file:\n{log}"
    );
    log
}
