//! # ledger — Suanpan's deterministic double-entry state machine
//!
//! The ledger turns a batch of commands, stamped by the Raft leader with a timestamp and a seed, into one
//! result per command and one atomic store write. It performs no I/O of its own, reads no clock, draws no
//! randomness and knows nothing of Raft or protobuf: a replica's state is a pure function of the log.
//!
//! ## Invariants (checked with assertions that stay on in release builds)
//! - **Conservation**: for every currency, the debits and credits a batch adds are equal, posted and
//!   pending separately; an account with "debits must not exceed credits" never goes past its overdraft.
//! - **Atomicity**: all legs of a transfer apply or none does; a batch's changes, its applied index and
//!   its digest are persisted in one store write.
//! - **Strict idempotency**: the first outcome for a command id (success or business failure) is stored
//!   for ever and returned unchanged on retry; the same id with another body is `IdempotencyConflict`
//!   and changes nothing.
//! - **Log time only**: daily limits and two-phase expiry use the batch timestamp, made strictly
//!   increasing by the ledger itself.
//! - **Digest**: a hash chain over each batch's index, timestamp, seed, command fingerprints and results.
//!   Replicas that applied the same log have equal digests at equal applied indexes.
//!
//! ## Map
//! - [`result`]: result codes (stable numbers) and command results — a leaf every module may use.
//! - [`enums`]: the one table per stable enum (number ↔ name), read by codec, wire and CLI.
//! - [`command`]: commands and batches, and the limits on them.
//! - [`money`]: currencies and the one conversion from decimal amounts to minor units.
//! - [`types`]: accounts, transfers, postings, clients, timer kinds.
//! - [`state`]: [`Ledger`], the state machine, one file per command family (see its docs).
//! - [`store`]: the narrow [`Store`] trait and [`MemStore`], and the layout of command records:
//!   appended to per-batch history chunks ([`Cf::History`]), each command id holding a locator
//!   into them; `rocks`: `RocksStore` (feature
//!   `rocksdb`, on by default; off for crates that need only the ledger's types), with
//!   `writebehind`: the buffer between a replica's apply and RocksDB, and `chunks`: how postings
//!   lie in RocksDB (a run of an account's postings per record).
//! - [`emv`]: EMV QR merchant-presented payloads — build, parse, CRC (pure; used by the QR flows).
//! - [`paycode`]: customer-presented payment codes — the token format and its signature check.
//! - [`redpacket`]: how a red packet is cut into slots from its seed (recomputable by anyone).
//! - [`codec`]: the binary encoding of commands, results and records.

#[cfg(feature = "rocksdb")]
mod chunks;
pub mod codec;
pub mod command;
pub mod emv;
pub mod enums;
#[cfg(feature = "rocksdb")]
pub mod fuzzing;
#[cfg(feature = "rocksdb")]
mod keybounds;
pub mod money;
pub mod paycode;
pub mod redpacket;
pub mod result;
pub mod rng;
#[cfg(feature = "rocksdb")]
pub mod rocks;
pub mod state;
pub mod store;
pub mod types;
#[cfg(feature = "rocksdb")]
pub mod writebehind;

pub use command::*;
pub use enums::StableEnum;
pub use money::{is_in_app_code, is_iso_4217, Currency, MAX_MINOR};
pub use result::{CommandResult, ResultCode};
#[cfg(feature = "rocksdb")]
pub use rocks::{
    open_db, open_db_tuned, RocksStore, SnapshotStore, LEDGER_MEMTABLE_BYTES_DEFAULT,
    LEDGER_MEMTABLE_BYTES_MAX, LEDGER_MEMTABLE_BYTES_MIN,
};
pub use state::{
    escrow_account_id, position_account_id, settle_plan, split_rotation, split_shares,
    write_snapshot, GroupNets, SETTING_BUSINESS_UTC_OFFSET,
};
pub use state::{
    AccountCheck, BatchOutput, ChainLink, ChainPage, CurrencyTotals, JournalBatch, Ledger,
    LedgerError, Recomputed, Settlement, VerifyError, ViewDelta, ACCOUNT_PAGE_MAX, CHAIN_PAGE_MAX,
    CHAIN_RETAIN_BATCHES, EVENT_RETAIN_BATCHES, EVENT_SCAN_INDEXES_MAX, EXPIRE_PER_BATCH_MAX,
    HISTORY_PAGE_MAX,
};
pub use store::{id_key, Cf, Key, MemStore, Store, StoreError, WriteBatch, KEY_INLINE_BYTES};
pub use types::*;

/// Hints the CPU to load the cache line at `p` (no effect on other architectures).
#[inline(always)]
pub(crate) fn prefetch<T: ?Sized>(p: &T) {
    prefetch_ptr((p as *const T).cast());
}

/// [`prefetch`] of every cache line `p` spans.
#[inline(always)]
pub(crate) fn prefetch_lines<T>(p: &T) {
    const LINE_BYTES: usize = 64;
    let start = (p as *const T).cast::<u8>();
    for offset in (0..std::mem::size_of::<T>()).step_by(LINE_BYTES) {
        // Addresses within `*p`: computed, never dereferenced.
        prefetch_ptr(start.wrapping_add(offset));
    }
}

#[inline(always)]
pub(crate) fn prefetch_ptr(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
