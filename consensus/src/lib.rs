//! # Suanpan consensus: a raft-rs driver over RocksDB
//!
//! This crate replicates the ledger's command log with Raft (tikv `raft` 0.7, prost codec)
//! and feeds committed commands, in log order, into a [`StateMachine`] implemented by the
//! ledger. It has three layers:
//!
//! * [`RaftLogStore`] / [`MemLogStore`] — raft-rs [`raft::Storage`] implementations (durable on
//!   RocksDB column families of a DB shared with the ledger; in-memory for the simulator).
//! * [`Driver`] — a sans-I/O core around [`raft::RawNode`]. Inputs are explicit (`tick`, `step`,
//!   `propose`, `read_index`, membership changes, `process_ready(now_ns, seed)`); outputs are
//!   encoded messages and completion notifications. Time and randomness are injected so the
//!   same core runs deterministically in [`sim`].
//! * [`NodeRuntime`] / [`NodeHandle`] — a thin std-thread runtime: tick timer, bounded inbound
//!   queue, wall clock, framing of outgoing messages into bounded chunks, oneshot replies.
//!
//! ## Ready loop order (`Driver::process_ready`)
//!
//! 1. Pack proposals queued since the last cycle into raft entries (group commit), stamping each
//!    entry with the injected `timestamp_ns` and a per-entry seed (only the leader does this).
//! 2. `ready()`; send `messages()` immediately — only a leader produces these, and a leader may
//!    replicate in parallel with its own disk write (Raft thesis §10.2.1).
//! 3. Record `read_states` (ReadIndex confirmations).
//! 4. If a snapshot arrived: install it in the log store (synced), then `StateMachine::restore`.
//! 5. Append `entries()` (deleting any conflicting suffix) and the `HardState`, in one RocksDB
//!    write batch — synced, unless it only moves the commit index (`storage::commit_only`).
//! 6. Send `persisted_messages()` (votes, append responses: only valid after step 5), before
//!    applying, so the leader counts this node's ack while it applies.
//! 7. Apply `committed_entries()` to the state machine.
//! 8. `advance()`; persist `LightReady::commit_index` (unsynced), send its messages, apply its
//!    committed entries, `advance_apply`.
//! 9. Maybe take a snapshot + compact the log — never past a snapshot a peer was sent and has
//!    not installed yet; resolve ReadIndex reads whose index is applied.
//!
//! ## Pipelined persistence ([`Config::log_sync_pipelined`], the default)
//!
//! Steps 5 and 6 above, as the runtime runs them: the entries and hard state are written
//! without waiting for the disk (readable at once, as raft-rs requires) and the messages of
//! step 6 are held; a log-sync thread fsyncs the log — one fsync at a time, each covering every
//! write before it — and reports the ready it covered ([`Driver::take_log_sync`],
//! [`Driver::on_log_synced_with`]); the held messages leave then, and raft-rs learns the entries
//! are persisted (`on_persist_ready`). Meanwhile the Raft thread goes on taking proposals,
//! replicating and applying. Nothing runs ahead of the disk: raft-rs hands out committed entries
//! only up to what this node persisted, a leader counts its own copy towards a commit only once
//! durable, and acks and votes wait as above. A ready that installs a snapshot is synced on the
//! Raft thread (carrying every earlier write down). The simulator runs the same code with syncs
//! that finish a random number of steps later, and crashes that lose what was not synced.
//!
//! ## Pipelined apply ([`Config::apply_pipelined`], off by default)
//!
//! Step 7 off the Raft thread: committed entries wait in the driver until handed out
//! ([`Driver::take_apply_work`]); the runtime's apply thread applies them to the state machine
//! (through an [`Applier`] sharing its state) and reports the results in log order
//! ([`Driver::on_applied`]), which answers the proposals and advances raft-rs's applied index
//! (`advance_apply_to`). The Raft thread meanwhile appends, replicates and acknowledges. The
//! driver never touches the state machine while work is out: a membership change is applied by
//! the driver once every entry before it has come back, a snapshot to take holds back further
//! work until the state machine is idle, and a snapshot to install waits in raft-rs until then.
//! ReadIndex reads and the published status use the reported applied index. The backlog is
//! bounded: past [`Config::max_apply_backlog_entries`] committed entries not yet applied, the
//! leader refuses new proposals as overloaded. The simulator applies handed-out work a random
//! number of steps later and cancels it on a crash.
//!
//! Snapshot data may be a reference (the ledger's is a descriptor of a checkpoint): the runtime
//! holds such a snapshot message until [`Transport::fetch_snapshot`] has made the data local, one
//! fetch at a time, and the sender restarts the peer's snapshot timeout while the data streams
//! ([`NodeHandle::snapshot_alive`]).
//!
//! Applying comes after persisting, unlike the raft-rs module docs' order: the docs themselves
//! warn that the commit index must be persisted *with or before* applying, otherwise a crash
//! after applying can leave `applied > commit` on disk and raft-rs panics on restart. Persisting
//! first is always safe because committed entries handed out by raft-rs are already durable.
//!
//! ## Durability points
//!
//! * Entries + HardState: one write batch, durable (synced inline, or covered by a finished
//!   background sync) before any message that depends on them (votes, append acks) leaves the
//!   node and before this node counts them or applies them.
//! * The commit index alone (a commit-only `HardState`, `LightReady::commit_index`): written
//!   before the entries are applied but not fsynced — Raft can always re-learn it, and the next
//!   synced write carries it down. On restart the driver raises a stored commit below the state
//!   machine's applied index to that index (applied entries were committed); it refuses to start
//!   if the log ends below the applied index (the log lost synced entries).
//! * Received snapshots: log reset + snapshot data synced before `StateMachine::restore`; on
//!   startup a state machine behind the stored snapshot is restored from it (crash recovery).
//! * Conf state: persisted (synced) before the state machine is told the conf-change entry is
//!   applied, so on restart raft's membership matches the applied index.
//! * A client is answered (`ProposeOutcome::Applied`) only after its entry was committed by a
//!   quorum and `StateMachine::apply` returned. The state machine may keep its writes volatile
//!   (the ledger writes behind the log, without a WAL): after a crash it reports an older applied
//!   index and the driver replays the log from there. `StateMachine::snapshot` must make the
//!   state durable, because the log is compacted up to the snapshot it returns.
//!
//! ## Invariants (checked in release builds; violation = fatal error, node stops)
//!
//! * `applied <= committed`, and the state machine's applied index equals raft's applied index
//!   after every apply — with pipelined apply, whenever no work is out, raft's applied index being
//!   the last one reported (empty/no-op and conf-change entries are applied as entries with zero
//!   proposals precisely to keep these equal across restarts).
//! * Any storage or state-machine error is fatal: the driver returns it and the runtime stops the
//!   node; it never continues with a state that may have diverged from what it acknowledged.
//! * Network input never panics the node: undecodable messages/frames are logged and dropped.
//! * Every queue is bounded (inbound queue, queued proposals, pending reads, reassembly buffers).
//!
//! ## Restarted-empty nodes
//!
//! A node restarted with an empty data dir (same id, same `initial_voters`) recovers by
//! snapshot: raft-rs would panic on a heartbeat whose commit is beyond its empty log and the
//! leader would ignore its rejections (its progress `matched` never decreases), so the driver
//! clamps such heartbeats and sends the leader a marked rejection that makes it re-probe the
//! node. Caveat: the wiped node also forgot its vote for the current term, which Raft's
//! safety argument assumes durable; prefer replacing a lost node with a new id
//! (remove + add) in production.
//!
//! ## Reads
//!
//! Linearizable reads use ReadIndex (`ReadOnlyOption::Safe`): the leader confirms its leadership
//! with a quorum heartbeat round and the read is served once `applied >= read_index`. We do not
//! use leader leases because they assume bounded clock drift / pauses (a GC or VM pause longer
//! than the lease silently breaks linearizability); ReadIndex makes no timing assumptions.
#![deny(unsafe_code)]

mod chunk;
mod codec;
mod config;
mod driver;
mod error;
pub mod fuzzing;
mod logging;
mod runtime;
pub mod sim;
mod state_machine;
mod storage;

pub use chunk::{chunk_message, ChunkError, Reassembler, CHUNK_HEADER_BYTES};
pub use codec::{
    decode_entry_data, encode_entry_data, EntryData, EntryDecodeError, ENTRY_FORMAT_V1,
    MEMBER_ADDRESS_BYTES_MAX,
};
pub use config::Config;
pub use driver::{
    ApplyWork, Driver, LogSyncStats, MembershipChange, NodeStatus, ProposeOutcome, ReadError,
    RejectReason, Role, SendFn, SnapshotStats,
};
pub use error::ConsensusError;
pub use logging::tracing_logger;
/// RocksDB's database handle: callers hold the log's (and the ledger's) without the dependency.
pub use rocksdb::DB as RocksDb;
pub use runtime::{NodeError, NodeHandle, NodeRuntime, Transport};
pub use state_machine::{Applier, CommittedEntry, Proposal, StateMachine, StateMachineError};
pub use storage::{
    checkpoint_log_db, inspect_log_db, open_log_db, LogStore, LogSyncer, MemLogStore, RaftLogStore,
    RAFT_COLUMN_FAMILIES,
};

/// Re-exported so callers can name raft types without adding the dependency.
pub use raft;
