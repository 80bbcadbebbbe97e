//! A node's identity on disk, and the refusal to start under an id whose log was lost.
//!
//! Raft assumes a voter never forgets its vote or its log. A node restarted on an empty data
//! directory under its old id would be a voter that forgot both: it could vote twice in a term,
//! or count towards a quorum for entries it no longer holds, and an acknowledged entry could be
//! lost if the leader then crashed. So `DATA_DIR/identity` records which cluster (derived from
//! its admin key) and which node id the directory belongs to, and a node starting with an empty
//! log refuses when:
//! - the cluster's leader reports that this id already holds entries (`matched > 0`): the log
//!   was lost (with or without the directory), or
//! - its identity file exists (the directory was a member's) and no leader can be asked: it
//!   cannot be shown safe. (A leader that reports `matched = 0` proves the node never
//!   acknowledged an entry — a first start that crashed early.)
//!
//! The way back is the documented one: `cluster remove-node --id N`, then a new node with a new id
//! and `--join`, added with `cluster add-node`.

use std::path::Path;
use std::time::Duration;

use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use crate::node::NodeError;
use crate::tls::NodeTls;

const FILE: &str = "identity";

/// The cluster id a node derives from the admin key every node of the cluster shares.
pub fn cluster_id(admin_key: &SigningKey) -> String {
    let mut h = Sha256::new();
    h.update(b"suanpan-cluster/1\n");
    h.update(admin_key.verifying_key().to_bytes());
    hex::encode(&h.finalize()[..16])
}

fn parse(text: &str) -> Option<(String, u64)> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    Some((v["cluster"].as_str()?.to_string(), v["node_id"].as_u64()?))
}

/// Checks (or creates) the data directory's identity before Raft starts. `log_empty`: no Raft
/// log, no hard state and nothing applied.
pub async fn check(
    data_dir: &Path,
    id: u64,
    admin_key: &SigningKey,
    tls: Option<&NodeTls>,
    peers: &[(u64, String)],
    log_empty: bool,
) -> Result<(), NodeError> {
    let path = data_dir.join(FILE);
    let cluster = cluster_id(admin_key);
    let refuse = |why: String| {
        NodeError::Config(format!(
            "{why}. Its log is lost: remove it (`suanpan cluster remove-node --id {id}`) and start \
             this directory empty under a new id with --join, then `suanpan cluster add-node`"
        ))
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let (c, n) = parse(&text).ok_or_else(|| {
                NodeError::Config(format!("{}: not an identity file", path.display()))
            })?;
            if c != cluster || n != id {
                return Err(NodeError::Config(format!(
                    "{} belongs to node {n} of cluster {c}, not node {id} of cluster {cluster}",
                    data_dir.display()
                )));
            }
            if !log_empty {
                return Ok(());
            }
            return match leader_view(id, admin_key, tls, peers).await {
                LeaderView::Holds(matched) => Err(refuse(format!(
                    "the leader says node {id} holds the log up to index {matched}, but {} \
                     holds none",
                    data_dir.display()
                ))),
                LeaderView::NeverAcked => Ok(()),
                LeaderView::Unknown => Err(refuse(format!(
                    "{} was node {id}'s data directory but holds no log, and no leader can \
                     confirm it never held one",
                    data_dir.display()
                ))),
            };
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    if log_empty {
        if let LeaderView::Holds(matched) = leader_view(id, admin_key, tls, peers).await {
            return Err(refuse(format!(
                "the leader says node {id} holds the log up to index {matched}, but its data \
                 directory is empty"
            )));
        }
    }
    write(data_dir, &cluster, id)?;
    Ok(())
}

/// Writes `DATA_DIR/identity` durably: whole or not at all, and its name synced.
pub fn write(data_dir: &Path, cluster: &str, id: u64) -> std::io::Result<()> {
    let doc = serde_json::json!({"cluster": cluster, "node_id": id});
    let tmp = data_dir.join(format!("{FILE}.tmp"));
    std::fs::write(&tmp, format!("{doc}\n"))?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, data_dir.join(FILE))?;
    // The rename is durable only once the directory is (a power loss could otherwise undo it).
    std::fs::File::open(data_dir)?.sync_all()
}

/// The (cluster id, node id) recorded in `dir`'s identity file, if it has one.
pub fn read(dir: &Path) -> std::io::Result<Option<(String, u64)>> {
    match std::fs::read_to_string(dir.join(FILE)) {
        Ok(text) => parse(&text).map(Some).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{}: not an identity file", dir.join(FILE).display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// What the cluster's leader says about node `id`.
enum LeaderView {
    /// A member whose log holds entries up to this index.
    Holds(u64),
    /// The leader was reached and `id` never acknowledged an entry (or is not a member).
    NeverAcked,
    /// No leader could be asked (a first start, or the rest of the cluster is down).
    Unknown,
}

async fn leader_view(
    id: u64,
    admin_key: &SigningKey,
    tls: Option<&NodeTls>,
    peers: &[(u64, String)],
) -> LeaderView {
    let timeout = Duration::from_millis(1_500);
    for (peer, addr) in peers {
        let Ok(info) = crate::server::fetch_node_info(tls, *peer, addr, admin_key, timeout).await
        else {
            continue;
        };
        if info.role != crate::pb::NodeRole::Leader as i32 {
            continue;
        }
        return match info.progress.iter().find(|p| p.id == id) {
            Some(p) if p.matched > 0 => LeaderView::Holds(p.matched),
            _ => LeaderView::NeverAcked,
        };
    }
    LeaderView::Unknown
}
