//! `suanpan backup` (online, through a node) and `suanpan restore` (offline, local files).

use std::path::PathBuf;

use anyhow::Result;
use serde_json::json;

use super::{print_done, Conn, Exit};

/// `suanpan backup --out DIR`: the node the CLI reaches writes a consistent checkpoint of its
/// database and its identity into DIR on its own machine, then reads back what it holds.
pub async fn backup(conn: &Conn, out: String) -> Result<Exit> {
    let r = conn.client()?.backup(&out).await?;
    print_done(
        conn,
        json!({"node_id": r.node_id, "dir": r.dir, "applied_index": r.applied_index,
               "digest": r.digest, "bytes": r.bytes}),
        &format!(
            "node {} backed up to {} ({} bytes): applied index {}, digest {}",
            r.node_id, r.dir, r.bytes, r.applied_index, r.digest
        ),
    );
    Ok(Exit(0))
}

/// `suanpan restore --from BACKUP --data-dir DIR --id N`: prepares an empty data directory for
/// node N from a backup (point-in-time recovery of a whole cluster: restore every voter).
pub fn restore(from: PathBuf, data_dir: PathBuf, id: u64, json_out: bool) -> Result<Exit> {
    let r = api::backup::restore(&from, &data_dir, id)?;
    let digest = hex::encode(r.digest);
    if json_out {
        println!(
            "{}",
            json!({"data_dir": r.data_dir, "id": r.id, "applied_index": r.applied_index,
                   "digest": digest, "voters": r.voters, "learners": r.learners})
        );
    } else {
        println!(
            "restored node {} into {} at applied index {} (digest {}); start every voter of {:?} \
             from this backup, each with its own id",
            r.id,
            r.data_dir.display(),
            r.applied_index,
            digest,
            r.voters
        );
    }
    Ok(Exit(0))
}
