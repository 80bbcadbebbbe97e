//! Backups of a node and restores from them.
//!
//! A backup is a directory: `db/`, a consistent RocksDB checkpoint of the node's ledger
//! database, `raft/`, one of its Raft log database taken just after (see [`create`] for why the
//! two agree), and `identity`, the node's identity file. A node whose log lives inside its
//! ledger database (an older data directory, see `datadir`) is backed up as one `db/`. What a
//! backup holds is read back from the backup itself (applied index and digest), not taken from
//! the running node, so the figures reported are the ones a restore will have.
//!
//! A restore prepares an empty data directory from a backup for node `id`. It is a point-in-time
//! recovery of a whole cluster: restore every voter the backup names from the same backup and
//! start them; the cluster resumes at the backup's index (later acknowledged writes are gone,
//! which is what restoring a backup means). Never restore one member of a running cluster: it
//! would be a voter that forgot entries it acknowledged (see `identity`); replace a node the
//! documented way instead (remove it, join a new one).

use std::path::{Path, PathBuf};

use ledger::{Ledger, RocksStore};

use crate::datadir::{LEDGER_DB_DIR, LOG_DB_DIR};

/// What a backup holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackupInfo {
    pub dir: PathBuf,
    pub applied_index: u64,
    pub digest: [u8; 32],
    pub bytes: u64,
}

/// What a restore prepared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreInfo {
    pub data_dir: PathBuf,
    pub id: u64,
    pub applied_index: u64,
    pub digest: [u8; 32],
    /// The cluster's members as of the backup: restore each voter under its id.
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Refused(String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("storage: {0}")]
    Store(#[from] ledger::StoreError),
    #[error("ledger: {0}")]
    Ledger(#[from] ledger::LedgerError),
    #[error("raft log: {0}")]
    Consensus(#[from] consensus::ConsensusError),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackupError {
    let what = what.into();
    move |e| BackupError::Io(what, e)
}

/// The ledger state stored in the database at `db` (opened read-only).
fn read_back(db: &Path) -> Result<(u64, [u8; 32]), BackupError> {
    let l = Ledger::open(ledger::rocks::open_read_only(db)?)?;
    Ok((l.applied_index(), l.digest()))
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io(format!("syncing {}", dir.display())))
}

/// How often [`create`] takes the two checkpoints again when the log was compacted between them.
const BACKUP_ATTEMPTS_MAX: u32 = 3;

/// Backs up the running node whose ledger database is `store`, Raft log database `log_db`
/// (`None`: the log lives in the ledger's database) and data directory `data_dir` into `out`
/// (which must not exist).
///
/// The ledger is checkpointed first, at applied index A, then the log. The log's copy then
/// holds every entry committed up to A (and more). It also starts at or before A + 1 unless a
/// snapshot compacted the log between the two checkpoints; that is checked in the copy, and
/// the backup is taken again.
pub fn create(
    store: &RocksStore,
    log_db: Option<&consensus::RocksDb>,
    data_dir: &Path,
    out: &Path,
) -> Result<BackupInfo, BackupError> {
    if !out.is_absolute() {
        return Err(BackupError::Refused(format!(
            "{}: give an absolute path on the node's machine",
            out.display()
        )));
    }
    if out.exists() {
        return Err(BackupError::Refused(format!(
            "{} exists: a backup goes into a new directory",
            out.display()
        )));
    }
    let (cluster, id) = crate::identity::read(data_dir)
        .map_err(io("reading the node's identity"))?
        .ok_or_else(|| BackupError::Refused("the node has no identity file yet".into()))?;
    let mut attempt = 0;
    let (applied_index, digest) = loop {
        attempt += 1;
        std::fs::create_dir_all(out).map_err(io(format!("creating {}", out.display())))?;
        ledger::rocks::checkpoint(store, &out.join(LEDGER_DB_DIR))?;
        let (applied_index, digest) = read_back(&out.join(LEDGER_DB_DIR))?;
        let Some(log_db) = log_db else {
            break (applied_index, digest);
        };
        let log_dir = out.join(LOG_DB_DIR);
        consensus::checkpoint_log_db(log_db, &log_dir)?;
        let (first_index, _) = consensus::inspect_log_db(&log_dir)?;
        if first_index <= applied_index + 1 {
            break (applied_index, digest);
        }
        std::fs::remove_dir_all(out).map_err(io(format!("removing {}", out.display())))?;
        if attempt >= BACKUP_ATTEMPTS_MAX {
            return Err(BackupError::Refused(format!(
                "the Raft log was compacted past the ledger's checkpoint {attempt} times in a \
                 row (log from {first_index}, ledger at {applied_index}); try again"
            )));
        }
    };
    crate::identity::write(out, &cluster, id).map_err(io("writing the backup's identity"))?;
    sync_dir(out)?;
    if let Some(parent) = out.parent() {
        sync_dir(parent)?;
    }
    Ok(BackupInfo {
        dir: out.to_path_buf(),
        applied_index,
        digest,
        bytes: dir_bytes(out),
    })
}

fn copy_dir(from: &Path, to: &Path) -> Result<(), BackupError> {
    std::fs::create_dir_all(to).map_err(io(format!("creating {}", to.display())))?;
    for e in std::fs::read_dir(from).map_err(io(format!("reading {}", from.display())))? {
        let e = e.map_err(io(format!("reading {}", from.display())))?;
        let target = to.join(e.file_name());
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            copy_dir(&e.path(), &target)?;
        } else {
            std::fs::copy(e.path(), &target)
                .map_err(io(format!("copying {}", e.path().display())))?;
            std::fs::File::open(&target)
                .and_then(|f| f.sync_all())
                .map_err(io(format!("syncing {}", target.display())))?;
        }
    }
    sync_dir(to)
}

/// Prepares the empty (or missing) `data_dir` for node `id` from the backup at `from`.
pub fn restore(from: &Path, data_dir: &Path, id: u64) -> Result<RestoreInfo, BackupError> {
    let (cluster, _) = crate::identity::read(from)
        .map_err(io("reading the backup's identity"))?
        .ok_or_else(|| {
            BackupError::Refused(format!("{} is not a backup (no identity)", from.display()))
        })?;
    let (applied_index, digest) = read_back(&from.join(LEDGER_DB_DIR))?;
    if let Ok(mut entries) = std::fs::read_dir(data_dir) {
        if entries.next().is_some() {
            return Err(BackupError::Refused(format!(
                "{} is not empty: restore into a new data directory",
                data_dir.display()
            )));
        }
    }
    // The log first: a directory with `raft/` is read the new way (see `datadir`).
    if from.join(LOG_DB_DIR).exists() {
        copy_dir(&from.join(LOG_DB_DIR), &data_dir.join(LOG_DB_DIR))?;
    }
    copy_dir(&from.join(LEDGER_DB_DIR), &data_dir.join(LEDGER_DB_DIR))?;
    // The copy must be the backup: read it back before naming the node.
    let dbs = crate::datadir::open(data_dir, ledger::LEDGER_MEMTABLE_BYTES_DEFAULT)?;
    let l = Ledger::open(RocksStore::new(dbs.ledger.clone())?)?;
    if (l.applied_index(), l.digest()) != (applied_index, digest) {
        return Err(BackupError::Refused(
            "the restored copy differs from the backup".into(),
        ));
    }
    drop(l);
    let log = consensus::RaftLogStore::open(dbs.log_db())?;
    let cs = consensus::LogStore::conf_state(&log);
    drop(log);
    if !cs.voters.contains(&id) && !cs.learners.contains(&id) {
        return Err(BackupError::Refused(format!(
            "node {id} is not a member in the backup (voters {:?}, learners {:?})",
            cs.voters, cs.learners
        )));
    }
    crate::identity::write(data_dir, &cluster, id)
        .map_err(io("writing the restored node's identity"))?;
    if let Some(parent) = data_dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        sync_dir(parent)?;
    }
    Ok(RestoreInfo {
        data_dir: data_dir.to_path_buf(),
        id,
        applied_index,
        digest,
        voters: cs.voters,
        learners: cs.learners,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus::raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
    use consensus::{LogStore, RaftLogStore};

    /// A node's data directory with an empty ledger and a log of entries 1..=`last` (member 1),
    /// compacted up to `compacted` (0: not compacted).
    fn node_dir(last: u64, compacted: u64) -> (tempfile::TempDir, crate::datadir::Databases) {
        let dir = tempfile::tempdir().unwrap();
        crate::identity::write(dir.path(), "test-cluster", 1).unwrap();
        let dbs = crate::datadir::open(dir.path(), ledger::LEDGER_MEMTABLE_BYTES_DEFAULT).unwrap();
        let mut log = RaftLogStore::open(dbs.log_db()).unwrap();
        let cs = ConfState {
            voters: vec![1],
            ..Default::default()
        };
        log.set_conf_state(&cs).unwrap();
        let entries: Vec<Entry> = (1..=last)
            .map(|index| Entry {
                index,
                term: 1,
                ..Default::default()
            })
            .collect();
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: last,
        };
        log.append(&entries, Some(&hs)).unwrap();
        if compacted > 0 {
            let mut snap = Snapshot::default();
            snap.mut_metadata().index = compacted;
            snap.mut_metadata().term = 1;
            snap.mut_metadata().set_conf_state(cs);
            log.save_snapshot_and_compact(&snap, compacted).unwrap();
        }
        (dir, dbs)
    }

    /// A backup holds the ledger (`db/`) and the log (`raft/`); restored, the new directory has
    /// both, the same applied index and digest, and the backup's members.
    #[test]
    fn a_backup_holds_the_ledger_and_the_log_and_restores_both() {
        let (dir, dbs) = node_dir(3, 0);
        let store = RocksStore::new(dbs.ledger.clone()).unwrap();
        let out = dir.path().join("backup");
        let info = create(&store, dbs.log.as_deref(), dir.path(), &out).unwrap();
        assert!(out.join(LEDGER_DB_DIR).exists() && out.join(LOG_DB_DIR).exists());
        let (first, cs) = consensus::inspect_log_db(&out.join(LOG_DB_DIR)).unwrap();
        assert_eq!((first, cs.voters), (1, vec![1]));

        let target = tempfile::tempdir().unwrap();
        let data_dir = target.path().join("node-1");
        let r = restore(&out, &data_dir, 1).unwrap();
        assert_eq!(
            (r.applied_index, r.digest, r.voters),
            (info.applied_index, info.digest, vec![1])
        );
        assert!(!crate::datadir::log_shares_ledger_db(&data_dir));
        let restored =
            crate::datadir::open(&data_dir, ledger::LEDGER_MEMTABLE_BYTES_DEFAULT).unwrap();
        let log = RaftLogStore::open(restored.log_db()).unwrap();
        assert_eq!(consensus::raft::Storage::last_index(&log).unwrap(), 3);
    }

    /// A log whose copy starts past the ledger's applied index + 1 (a snapshot compacted it
    /// between the two checkpoints) is no backup: the node takes it again, and after
    /// `BACKUP_ATTEMPTS_MAX` such copies refuses, leaving no directory behind.
    #[test]
    fn a_backup_whose_log_does_not_reach_the_ledger_is_refused() {
        let (dir, dbs) = node_dir(10, 5);
        let store = RocksStore::new(dbs.ledger.clone()).unwrap();
        let out = dir.path().join("backup");
        match create(&store, dbs.log.as_deref(), dir.path(), &out) {
            Err(BackupError::Refused(m)) => assert!(m.contains("compacted"), "{m}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert!(!out.exists());
    }
}
