//! The databases in a node's data directory, and how they are opened.
//!
//! - `db/`: the ledger's RocksDB database. Its writes skip the WAL: the Raft log is its
//!   write-ahead log, and the log is compacted only past a snapshot, which persists the ledger
//!   first.
//! - `raft/`: the Raft log's own RocksDB database (entries, hard state, conf state), every append
//!   synced through its WAL. It is separate so that a log append never waits in RocksDB's write
//!   queue behind the ledger's large write-behind batches ([`consensus::open_log_db`]).
//!
//! A data directory made before the log moved out has no `raft/`: its log lives in column
//! families of `db/`, and it keeps working that way (nothing is migrated).

use std::path::Path;
use std::sync::Arc;

use consensus::RocksDb;
use ledger::StoreError;

/// The ledger's database, under the data directory.
pub const LEDGER_DB_DIR: &str = "db";
/// The Raft log's database, under the data directory.
pub const LOG_DB_DIR: &str = "raft";

/// A node's open databases.
pub struct Databases {
    pub ledger: Arc<RocksDb>,
    /// The log's own database; `None` when the log lives in the ledger's (an older data
    /// directory).
    pub log: Option<Arc<RocksDb>>,
}

impl Databases {
    /// The database holding the Raft log's column families.
    pub fn log_db(&self) -> Arc<RocksDb> {
        self.log.clone().unwrap_or_else(|| self.ledger.clone())
    }
}

/// Whether the data directory keeps its Raft log inside the ledger's database: it has `db/`
/// but no `raft/` (made before the log moved out). A new directory gets `raft/` first, so a
/// crash between the two creations still leaves a directory read the new way.
pub fn log_shares_ledger_db(data_dir: &Path) -> bool {
    data_dir.join(LEDGER_DB_DIR).exists() && !data_dir.join(LOG_DB_DIR).exists()
}

fn log_error(e: consensus::ConsensusError) -> StoreError {
    StoreError::Io(format!("raft log database: {e}"))
}

/// Opens (or creates) the databases of `data_dir`, the ledger's families with memtables of
/// `ledger_memtable_bytes`.
pub fn open(data_dir: &Path, ledger_memtable_bytes: usize) -> Result<Databases, StoreError> {
    let ledger_path = data_dir.join(LEDGER_DB_DIR);
    if log_shares_ledger_db(data_dir) {
        let ledger = ledger::open_db_tuned(
            &ledger_path,
            consensus::RAFT_COLUMN_FAMILIES,
            ledger_memtable_bytes,
        )?;
        return Ok(Databases { ledger, log: None });
    }
    let log = consensus::open_log_db(&data_dir.join(LOG_DB_DIR)).map_err(log_error)?;
    // Families other than the ledger's are opened as they are (RocksDB refuses to open a
    // database without naming all of them): a tool may have created the log's there.
    let extra: Vec<String> = ledger::rocks::extra_column_families(&ledger_path)?;
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let ledger = ledger::open_db_tuned(&ledger_path, &extra, ledger_memtable_bytes)?;
    Ok(Databases {
        ledger,
        log: Some(log),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use consensus::raft::eraftpb::{Entry, HardState};
    use consensus::raft::Storage;
    use consensus::{LogStore, RaftLogStore};

    fn entry(index: u64) -> Entry {
        Entry {
            index,
            term: 1,
            data: vec![index as u8; 8],
            ..Default::default()
        }
    }

    fn append(dbs: &Databases, upto: u64) {
        let mut log = RaftLogStore::open(dbs.log_db()).unwrap();
        let hs = HardState {
            term: 1,
            vote: 1,
            commit: upto,
        };
        let from = Storage::last_index(&log).unwrap() + 1;
        let entries: Vec<Entry> = (from..=upto).map(entry).collect();
        log.append(&entries, Some(&hs)).unwrap();
    }

    fn last_index(dbs: &Databases) -> u64 {
        Storage::last_index(&RaftLogStore::open(dbs.log_db()).unwrap()).unwrap()
    }

    /// A new data directory gets the log in `raft/`, and the ledger's database has none of the
    /// log's families; reopened, the log is where it was written.
    #[test]
    fn a_new_directory_keeps_the_log_in_a_database_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let dbs = open(dir.path(), ledger::LEDGER_MEMTABLE_BYTES_DEFAULT).unwrap();
        assert!(dbs.log.is_some());
        assert!(dir.path().join(LOG_DB_DIR).join("CURRENT").exists());
        append(&dbs, 3);
        drop(dbs);
        assert!(!log_shares_ledger_db(dir.path()));
        let cfs = ledger::rocks::extra_column_families(&dir.path().join(LEDGER_DB_DIR)).unwrap();
        assert!(cfs.is_empty(), "the ledger's database has {cfs:?}");
        let dbs = open(dir.path(), ledger::LEDGER_MEMTABLE_BYTES_DEFAULT).unwrap();
        assert_eq!(last_index(&dbs), 3);
    }

    /// A data directory made before the log moved out (`db/` with the log's families, no
    /// `raft/`) keeps its log there: nothing is lost or moved, and no `raft/` appears.
    #[test]
    fn an_older_directory_keeps_the_log_beside_the_ledger() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = ledger::open_db(
                &dir.path().join(LEDGER_DB_DIR),
                consensus::RAFT_COLUMN_FAMILIES,
            )
            .unwrap();
            let dbs = Databases {
                ledger: db,
                log: None,
            };
            append(&dbs, 5);
        }
        assert!(log_shares_ledger_db(dir.path()));
        let dbs = open(dir.path(), ledger::LEDGER_MEMTABLE_BYTES_DEFAULT).unwrap();
        assert!(dbs.log.is_none());
        assert_eq!(last_index(&dbs), 5);
        append(&dbs, 7);
        drop(dbs);
        assert!(!dir.path().join(LOG_DB_DIR).exists());
        let dbs = open(dir.path(), ledger::LEDGER_MEMTABLE_BYTES_DEFAULT).unwrap();
        assert_eq!(last_index(&dbs), 7);
    }

    /// A ledger database that some tool opened with the log's families (they are empty there)
    /// still opens in a new-layout directory, and the log is read from `raft/`.
    #[test]
    fn foreign_families_in_the_ledger_database_do_not_stop_the_open() {
        let dir = tempfile::tempdir().unwrap();
        let dbs = open(dir.path(), ledger::LEDGER_MEMTABLE_BYTES_DEFAULT).unwrap();
        append(&dbs, 2);
        drop(dbs);
        drop(
            ledger::open_db(
                &dir.path().join(LEDGER_DB_DIR),
                consensus::RAFT_COLUMN_FAMILIES,
            )
            .unwrap(),
        );
        let dbs = open(dir.path(), ledger::LEDGER_MEMTABLE_BYTES_DEFAULT).unwrap();
        assert!(dbs.log.is_some());
        assert_eq!(last_index(&dbs), 2);
    }
}
