//! The state machine: applies batches of commands to accounts, deterministically.
//!
//! One file per command family, each adding an `impl<S: Store> Ledger<S>` block:
//! - this file: the [`Ledger`] type, opening, the batch loop (idempotency, digest, invariants);
//! - [`moves`]: the money-moving primitives every flow composes — legs checked against status,
//!   limits and funds, holds and their release — so no flow repeats a debit or credit check;
//! - [`accounts`], [`merchants`], [`transfers`] (transfers and two-phase holds), [`orders`] (QR
//!   orders, merchant payments, refunds, bills), [`paycodes`] (customer-presented payment codes),
//!   [`cash`] (top-ups and withdrawals), [`social`] (chat transfers, payment requests), [`splits`]
//!   (bill splits, AA collection), [`groups`] (netted settle-up), [`redpackets`], [`clients`]:
//!   the commands; [`holds`]: flows that are a two-phase hold with a purpose;
//! - [`events`]: the flow events each transition emits, journaled per batch;
//! - [`timers`]: the one timer index `(due_ns, kind, id)` through which everything expires;
//! - [`queries`], [`verify`], [`snapshot`]: reads, the full consistency check, state transfer.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;

use crate::codec::{self, CommandRecord, Dec, Enc};
use crate::command::*;
use crate::money::Currency;
use crate::result::{CommandResult, ResultCode};
use crate::store::{Cf, Store, StoreError, WriteBatch};
use crate::types::*;

mod accounts;
mod cash;
mod chain;
mod clients;
mod config;
mod events;
mod groups;
mod holds;
mod merchants;
mod moves;
mod orders;
mod paycodes;
mod queries;
mod redpackets;
mod reports;
mod snapshot;
mod social;
mod splits;
mod timers;
mod transfers;
mod verify;
mod view;

pub use chain::{ChainLink, ChainPage, Recomputed, CHAIN_PAGE_MAX, CHAIN_RETAIN_BATCHES};
pub use config::{position_account_id, SETTING_BUSINESS_UTC_OFFSET};
pub use events::{JournalBatch, EVENT_RETAIN_BATCHES, EVENT_SCAN_INDEXES_MAX};
pub use groups::{settle_plan, GroupNets};
pub use redpackets::escrow_account_id;
pub use reports::{AccountCheck, Settlement, ACCOUNT_PAGE_MAX};
pub use snapshot::write_snapshot;
pub use splits::{split_rotation, split_shares};
pub use timers::EXPIRE_PER_BATCH_MAX;
pub use verify::VerifyError;
pub use view::ViewDelta;

/// Largest history page.
pub const HISTORY_PAGE_MAX: usize = 1_000;
/// Longest client name, in bytes.
pub const CLIENT_NAME_BYTES_MAX: usize = 64;

const META_KEY: &[u8] = b"meta";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("corrupt state: {0}")]
    Corrupt(String),
    #[error("batch index {index} does not follow applied index {applied}")]
    OutOfOrder { index: u64, applied: u64 },
    #[error(
        "batch at index {index} has {commands} commands, over the limit of {BATCH_COMMANDS_MAX}"
    )]
    BatchTooLarge { index: u64, commands: usize },
    #[error("snapshot: {0}")]
    Snapshot(String),
    /// A read view was asked to change state (or a ledger to act as a view).
    #[error("read-only: {0}")]
    ReadOnly(&'static str),
}

impl From<codec::DecodeError> for LedgerError {
    fn from(e: codec::DecodeError) -> Self {
        LedgerError::Corrupt(e.to_string())
    }
}

/// What applying one batch produced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchOutput {
    pub results: Vec<CommandResult>,
    pub applied_index: u64,
    /// Digest of the whole applied history up to and including this batch.
    pub digest: [u8; 32],
    /// The timestamp the batch was applied with (strictly greater than the previous batch's).
    pub timestamp_ns: u64,
    /// The flow transitions the batch made, in order (also journaled under its index).
    pub events: Vec<FlowEvent>,
}

/// Per-currency sums over all accounts (the trial balance).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CurrencyTotals {
    pub debits_posted: u128,
    pub credits_posted: u128,
    pub debits_pending: u128,
    pub credits_pending: u128,
    pub accounts: u64,
}

/// The ledger over a store. Accounts and API clients are cached in memory in full (they are read by
/// every transfer); commands, transfers and postings are read from the store on demand.
pub struct Ledger<S: Store> {
    store: S,
    accounts: FxHashMap<Id, Account>,
    /// Every account id in order (reports page through accounts by id).
    account_ids: BTreeSet<Id>,
    clients: FxHashMap<[u8; 32], Client>,
    merchants: FxHashMap<Id, MerchantProfile>,
    /// Everything that expires by log time, ordered by due time, then kind, then id.
    timers: BTreeSet<(u64, TimerKind, Id)>,
    /// In-app currencies, rates, tiers, settings (see [`config`]).
    config: config::Config,
    applied_index: u64,
    digest: [u8; 32],
    last_timestamp_ns: u64,
    /// A read view (see [`view`]): never applies, absorbs deltas instead.
    read_only: bool,
    /// Keep each batch's [`ViewDelta`] for a view that follows this ledger.
    view_tracking: bool,
    view_delta: Option<ViewDelta>,
    /// The last batch's emptied working maps, reused by the next.
    batch_maps: BatchMaps,
}

/// A batch's two largest working maps, kept between batches: emptied rather than freed, so a
/// batch does not allocate a few MiB of fresh tables whose pages the kernel must fault in and
/// zero (~5 % of a follower's Raft thread: `clear_page_erms` under the records map's inserts).
#[derive(Default)]
struct BatchMaps {
    before: Vec<(Id, AccountState)>,
    records: FxHashMap<Id, Option<CachedRecord>>,
}

/// A command record as a batch keeps it: the outcome, and the transfer only while it is a hold
/// or a resolved hold — the only records whose transfer a later command of the batch reads
/// (to post, void or expire it, or to say why it cannot). A posted transfer's record — most of
/// a batch's — is then a few dozen bytes instead of a ~200-byte value that each insert into the
/// batch's largest map moved.
#[derive(Clone, Debug)]
struct CachedRecord {
    fingerprint: [u8; 16],
    result: CommandResult,
    hold: Option<Box<Transfer>>,
}

impl CachedRecord {
    fn new(r: CommandRecord) -> CachedRecord {
        CachedRecord {
            fingerprint: r.fingerprint,
            result: r.result,
            hold: r
                .transfer
                .filter(|t| !matches!(t.state, TransferState::Posted | TransferState::Void))
                .map(Box::new),
        }
    }

    /// The record as far as a batch reads it (a posted transfer's or a void's transfer is left
    /// out: no command reads it).
    fn to_record(&self) -> CommandRecord {
        CommandRecord {
            fingerprint: self.fingerprint,
            result: self.result,
            transfer: self.hold.as_deref().cloned(),
        }
    }
}

/// Working state of one batch: changes are gathered here and written in one atomic store write.
struct BatchCtx {
    ts: u64,
    /// The leader's seed for the batch (red packets derive theirs from it).
    seed: u64,
    day: u32,
    wb: WriteBatch,
    /// The log index being applied (marks the accounts the batch touched: [`Ledger::touch`]).
    index: u64,
    /// Account states before the batch first touched them (for the conservation check and the
    /// write), once per account, in the order they were first touched.
    before: Vec<(Id, AccountState)>,
    /// Accounts whose `info` the batch created or changed (a read view takes their info anew).
    infos: Vec<Id>,
    /// Command records written in this batch, and records read from the store.
    records: FxHashMap<Id, Option<CachedRecord>>,
    /// Flow records and indexes written in this batch, so later commands read their own writes
    /// (`None`: deleted).
    kv: FxHashMap<(Cf, Vec<u8>), Option<Vec<u8>>>,
    /// Flow events emitted so far, in order.
    events: Vec<FlowEvent>,
    /// The flow the postings being written belong to (set per command, and per fired timer).
    flow: FlowKind,
    scratch: Enc,
}

/// Why a command failed: a business result (recorded) or a node-local error (fatal).
enum Failure {
    Code(ResultCode),
    Fatal(LedgerError),
}

impl From<ResultCode> for Failure {
    fn from(c: ResultCode) -> Self {
        Failure::Code(c)
    }
}

impl From<LedgerError> for Failure {
    fn from(e: LedgerError) -> Self {
        Failure::Fatal(e)
    }
}

/// The flow a command's postings belong to.
fn flow_of(c: &Command) -> FlowKind {
    match c {
        Command::PayQr(_) | Command::CreateOrder(_) | Command::CloseOrder(_) => FlowKind::QrPayment,
        Command::PayCode(_) => FlowKind::CodePayment,
        Command::PayBill(_) => FlowKind::BillPayment,
        Command::Refund(_) => FlowKind::Refund,
        Command::Topup(_) => FlowKind::Topup,
        Command::Withdraw(_) | Command::CompleteWithdrawal(_) | Command::FailWithdrawal(_) => {
            FlowKind::Withdrawal
        }
        Command::Send(_) | Command::ReceiveTransfer(_) | Command::ReturnTransfer(_) => {
            FlowKind::ChatTransfer
        }
        Command::PayRequest(_) => FlowKind::RequestPayment,
        Command::PaySplit(_) => FlowKind::SplitPayment,
        Command::SettleGroup(_) => FlowKind::GroupSettlement,
        Command::CreateRedPacket(_) | Command::ClaimRedPacket(_) => FlowKind::RedPacket,
        Command::Convert(_) => FlowKind::Conversion,
        _ => FlowKind::Transfer,
    }
}

/// Commands whose accounts are warmed at a time ([`Ledger::warm_accounts`]): their accounts'
/// cache lines (~3 per account, two accounts a transfer: ~100 KiB) stay within a core's L2 until
/// the commands run. Also the window of touched accounts warmed at the end of a batch
/// ([`Ledger::warm_touched`]: ~7 lines each, ~110 KiB).
const WARM_COMMANDS: usize = 256;

fn fingerprint(scratch: &mut Enc, c: &Command) -> [u8; 16] {
    scratch.buf.clear();
    codec::encode_command(scratch, c);
    let h = blake3::hash(&scratch.buf);
    h.as_bytes()[..16].try_into().expect("16 of 32 bytes")
}

impl<S: Store> Ledger<S> {
    /// Opens the ledger over a store, loading the applied index, digest and the in-memory caches.
    pub fn open(store: S) -> Result<Ledger<S>, LedgerError> {
        let mut l = Ledger {
            store,
            accounts: FxHashMap::default(),
            account_ids: BTreeSet::new(),
            clients: FxHashMap::default(),
            merchants: FxHashMap::default(),
            timers: BTreeSet::new(),
            config: config::Config::default(),
            applied_index: 0,
            digest: [0; 32],
            last_timestamp_ns: 0,
            read_only: false,
            view_tracking: false,
            view_delta: None,
            batch_maps: BatchMaps::default(),
        };
        l.clear_interrupted_restore()?;
        l.load()?;
        Ok(l)
    }

    fn load(&mut self) -> Result<(), LedgerError> {
        self.accounts.clear();
        self.clients.clear();
        self.merchants.clear();
        self.timers.clear();
        self.applied_index = 0;
        self.digest = [0; 32];
        self.last_timestamp_ns = 0;
        if let Some(m) = self.store.get(Cf::Meta, META_KEY)? {
            self.load_meta(&m)?;
        }
        let accounts = &mut self.accounts;
        self.store.for_each(Cf::Accounts, &mut |_, v| {
            let a = codec::decode_account(v).map_err(|e| StoreError::Corrupt {
                cf: Cf::Accounts,
                reason: e.to_string(),
            })?;
            accounts.insert(a.info.id, a);
            Ok(())
        })?;
        let clients = &mut self.clients;
        self.store.for_each(Cf::Clients, &mut |_, v| {
            let c = codec::decode_client(v).map_err(|e| StoreError::Corrupt {
                cf: Cf::Clients,
                reason: e.to_string(),
            })?;
            clients.insert(c.public_key, c);
            Ok(())
        })?;
        self.account_ids = self.accounts.keys().copied().collect();
        self.load_merchants()?;
        self.load_timers()?;
        self.load_config()?;
        Ok(())
    }

    /// Decodes the meta record (applied index, digest, last timestamp) into the ledger.
    fn load_meta(&mut self, m: &[u8]) -> Result<(), LedgerError> {
        let mut d = Dec::new(m);
        self.applied_index = d.u64()?;
        self.digest = d
            .bytes()?
            .try_into()
            .map_err(|_| LedgerError::Corrupt("digest".into()))?;
        self.last_timestamp_ns = d.u64()?;
        d.finish()?;
        Ok(())
    }

    pub fn applied_index(&self) -> u64 {
        self.applied_index
    }
    pub fn digest(&self) -> [u8; 32] {
        self.digest
    }
    pub fn last_timestamp_ns(&self) -> u64 {
        self.last_timestamp_ns
    }
    pub fn store(&self) -> &S {
        &self.store
    }
    /// The store, for the simulator's writeback only: whatever is done through it must not change
    /// what reads see (the ledger caches state in memory).
    pub fn store_mut(&mut self) -> &mut S {
        &mut self.store
    }
    /// Gives the store back (tests tamper with it to show the audit checks notice).
    pub fn into_store(self) -> S {
        self.store
    }

    // ---- apply --------------------------------------------------------------------------------------

    /// Applies the batch committed at log `index`, which must be the next one (`applied + 1`: the
    /// ledger moves one entry at a time; only a snapshot restore jumps), and persists every change
    /// together with the new applied index and digest in one atomic store write.
    ///
    /// Business failures are results, identical on every replica. An `Err` is node-local (storage,
    /// or a log the consensus layer should never have produced) and means the node must stop.
    pub fn apply(&mut self, index: u64, batch: &Batch) -> Result<BatchOutput, LedgerError> {
        if self.read_only {
            return Err(LedgerError::ReadOnly("a read view does not apply batches"));
        }
        if index != self.applied_index + 1 {
            return Err(LedgerError::OutOfOrder {
                index,
                applied: self.applied_index,
            });
        }
        if batch.commands.len() > BATCH_COMMANDS_MAX {
            return Err(LedgerError::BatchTooLarge {
                index,
                commands: batch.commands.len(),
            });
        }
        // Strictly increasing log time, whatever the leader's clock says.
        let ts = batch.timestamp_ns.max(self.last_timestamp_ns + 1);
        // Empty (an error return leaves fresh ones for the next batch), with their capacity.
        let BatchMaps {
            mut before,
            mut records,
        } = std::mem::take(&mut self.batch_maps);
        debug_assert!(before.is_empty() && records.is_empty());
        before.reserve(batch.commands.len() * 2);
        records.reserve(batch.commands.len() + 16);
        let mut ctx = BatchCtx {
            index,
            ts,
            seed: batch.seed,
            day: self.config.settings.day_of(ts),
            wb: WriteBatch::with_capacity(batch.commands.len() * 4 + 8),
            before,
            infos: Vec::new(),
            records,
            kv: FxHashMap::default(),
            events: Vec::new(),
            flow: FlowKind::Transfer,
            scratch: Enc::with_capacity(256),
        };

        self.expire_due(&mut ctx)?;
        if self.store.batched_reads_pay() {
            self.prefetch(&mut ctx, &batch.commands)?;
        }

        let mut chain =
            chain::ChainHasher::new(&self.digest, index, ts, batch.seed, batch.commands.len());
        let mut results = Vec::with_capacity(batch.commands.len());
        for (i, cmd) in batch.commands.iter().enumerate() {
            if i % WARM_COMMANDS == 0 {
                let end = batch.commands.len().min(i + WARM_COMMANDS);
                self.warm_accounts(&batch.commands[i..end]);
            }
            let fp = fingerprint(&mut ctx.scratch, cmd);
            let result = self.apply_one(&mut ctx, cmd, fp)?;
            chain.command(&fp, result.code as u16, result.timestamp_ns);
            results.push(result);
        }
        let (digest, chain_record) = chain.finish();

        let view_accounts = self.check_and_write_accounts(&mut ctx);
        Self::journal_events(&mut ctx, index);
        Self::journal_chain(&mut ctx, index, &digest, ts, chain_record);

        let mut meta = Enc::with_capacity(64);
        meta.u64(index);
        meta.bytes(&digest);
        meta.u64(ts);
        ctx.wb.put(Cf::Meta, META_KEY.to_vec(), meta.buf);
        self.track_view(index, &ctx.wb, view_accounts, &ctx.infos);
        self.store.write(ctx.wb)?;
        ctx.before.clear();
        ctx.records.clear();
        self.batch_maps = BatchMaps {
            before: ctx.before,
            records: ctx.records,
        };

        self.applied_index = index;
        self.digest = digest;
        self.last_timestamp_ns = ts;
        Ok(BatchOutput {
            results,
            applied_index: index,
            digest,
            timestamp_ns: ts,
            events: ctx.events,
        })
    }

    /// Brings the accounts the next commands' transfer legs name into the cache before they run.
    /// The applying thread used to wait on two or three cache misses per account (the map slot,
    /// the shared `AccountInfo` behind it: 12 % of a follower's Raft thread in `leg_accounts`);
    /// here the lookups are independent of each other, so the CPU overlaps their misses. Only a
    /// hint: what it reads changes nothing, and a missing account is the command's own business.
    fn warm_accounts(&self, commands: &[Command]) {
        for c in commands {
            let Command::CreateTransfer(t) = c else {
                continue;
            };
            for leg in &t.legs {
                for id in [leg.debit, leg.credit] {
                    if let Some(a) = self.accounts.get(&id) {
                        crate::prefetch(&a.state);
                        // Every line of the shared part: the checks read its id, currency,
                        // flags, overdraft and limits, which the compiler lays out as it likes.
                        crate::prefetch_lines(&*a.info);
                    }
                }
            }
        }
    }

    /// Brings the touched accounts the end of a batch reads next into the cache, as
    /// [`Ledger::warm_accounts`] does for the legs: their map slots, the shared info (currency,
    /// flags, overdraft) and its reference count, which the write's clone increments. In the
    /// batch's touch order the lookups missed the cache one after another (a tenth of the
    /// applying thread, in the conservation check's lookups and currency reads).
    fn warm_touched(&self, touched: &[(Id, AccountState)]) {
        for (id, _) in touched {
            if let Some(a) = self.accounts.get(id) {
                crate::prefetch(&a.state);
                let info = std::sync::Arc::as_ptr(&a.info);
                // The counts sit just before the value in the `Arc`'s allocation.
                crate::prefetch_ptr(info.cast::<u8>().wrapping_sub(16));
                crate::prefetch_lines(&*a.info);
            }
        }
    }

    /// Loads the command records a batch refers to (its own ids, and the pending transfers it posts or
    /// voids) with one multi-get, so the per-command path does no store round trip.
    fn prefetch(&self, ctx: &mut BatchCtx, commands: &[Command]) -> Result<(), LedgerError> {
        let mut ids: Vec<Id> = Vec::with_capacity(commands.len());
        for c in commands {
            ids.push(c.id());
            match c {
                Command::PostPending(p) => ids.push(p.pending_id),
                Command::VoidPending(v) => ids.push(v.pending_id),
                _ => {}
            }
        }
        ids.retain(|id| !ctx.records.contains_key(id));
        let keys: Vec<crate::store::Key> = ids.iter().map(|&id| crate::store::id_key(id)).collect();
        let values = self.store.multi_get(Cf::Commands, &keys)?;
        for (id, v) in ids.into_iter().zip(values) {
            let rec = match v {
                Some(b) => Some(CachedRecord::new(self.stored_record(&b)?)),
                None => None,
            };
            ctx.records.insert(id, rec);
        }
        Ok(())
    }

    /// A command's record from its id's stored value: the record itself (stores written before
    /// per-batch history) or where it is in its batch's history chunk. The one reader of both.
    pub(super) fn stored_record(&self, value: &[u8]) -> Result<CommandRecord, LedgerError> {
        match codec::decode_command_value(value)? {
            codec::StoredCommand::Record(r) => Ok(r),
            codec::StoredCommand::At(l) => {
                let key = crate::store::history_key(l.index, l.chunk);
                let bytes = self
                    .store
                    .get_part(Cf::History, &key, l.offset as usize, l.len as usize)?
                    .ok_or_else(|| StoreError::Corrupt {
                        cf: Cf::History,
                        reason: format!(
                            "no history chunk {} of batch {} for a command record",
                            l.chunk, l.index
                        ),
                    })?;
                Ok(codec::decode_command_record(&bytes)?)
            }
        }
    }

    /// The record of command `id`, if it was ever applied (read from the store).
    pub(super) fn read_record(&self, id: Id) -> Result<Option<CommandRecord>, LedgerError> {
        match self.store.get(Cf::Commands, &id.to_bytes())? {
            Some(b) => Ok(Some(self.stored_record(&b)?)),
            None => Ok(None),
        }
    }

    /// A command's record as this batch left it, with its transfer only if that is a hold
    /// (see [`CachedRecord`]).
    fn record(&self, ctx: &mut BatchCtx, id: Id) -> Result<Option<CommandRecord>, LedgerError> {
        if let Some(r) = ctx.records.get(&id) {
            return Ok(r.as_ref().map(CachedRecord::to_record));
        }
        let r = self.read_record(id)?.map(CachedRecord::new);
        let out = r.as_ref().map(CachedRecord::to_record);
        ctx.records.insert(id, r);
        Ok(out)
    }

    /// Reads a flow record or index entry as this batch left it.
    fn kv_get(&self, ctx: &BatchCtx, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, LedgerError> {
        if let Some(v) = ctx.kv.get(&(cf, key.to_vec())) {
            return Ok(v.clone());
        }
        Ok(self.store.get(cf, key)?)
    }

    fn kv_put(ctx: &mut BatchCtx, cf: Cf, key: Vec<u8>, value: Vec<u8>) {
        ctx.wb.put(cf, key.as_slice(), value.clone());
        ctx.kv.insert((cf, key), Some(value));
    }

    fn kv_delete(ctx: &mut BatchCtx, cf: Cf, key: Vec<u8>) {
        ctx.wb.delete(cf, key.as_slice());
        ctx.kv.insert((cf, key), None);
    }

    fn put_record(&self, ctx: &mut BatchCtx, id: Id, rec: CommandRecord) {
        ctx.wb.put_command(ctx.index, id, &rec);
        ctx.records.insert(id, Some(CachedRecord::new(rec)));
    }

    fn apply_one(
        &mut self,
        ctx: &mut BatchCtx,
        cmd: &Command,
        fp: [u8; 16],
    ) -> Result<CommandResult, LedgerError> {
        let id = cmd.id();
        if id.is_zero() {
            // No key to store an outcome under: reported, never recorded.
            return Ok(CommandResult {
                code: ResultCode::InvalidId,
                timestamp_ns: ctx.ts,
            });
        }
        let existing = match ctx.records.get(&id) {
            Some(r) => r.as_ref().map(|r| (r.fingerprint, r.result)),
            // Not cached: a plain read (no cache entry for the common miss).
            None => self.read_record(id)?.map(|r| (r.fingerprint, r.result)),
        };
        if let Some((stored_fp, result)) = existing {
            return Ok(if stored_fp == fp {
                result
            } else {
                CommandResult {
                    code: ResultCode::IdempotencyConflict,
                    timestamp_ns: ctx.ts,
                }
            });
        }
        ctx.flow = flow_of(cmd);
        let outcome = match cmd {
            Command::CreateAccount(c) => self.create_account(ctx, c).map(|()| None),
            Command::CreateTransfer(t) => self.create_transfer(ctx, t).map(Some),
            Command::PostPending(p) => self.post_pending(ctx, p).map(Some),
            Command::VoidPending(v) => self.void_pending(ctx, v).map(Some),
            Command::SetAccountStatus(s) => self.set_status(ctx, s).map(|()| None),
            Command::RegisterClient(r) => self.register_client(ctx, r).map(|()| None),
            Command::RevokeClient(r) => self.revoke_client(ctx, r).map(|()| None),
            Command::CreateMerchant(m) => self.create_merchant(ctx, m).map(|()| None),
            Command::CreateOrder(o) => self.create_order(ctx, o).map(|()| None),
            Command::PayQr(p) => self.pay_qr(ctx, p).map(Some),
            Command::CloseOrder(c) => self.close_order(ctx, c).map(|()| None),
            Command::Refund(r) => self.refund(ctx, r).map(Some),
            Command::PayBill(b) => self.pay_bill(ctx, b).map(Some),
            Command::BindPaycode(b) => self.bind_paycode(ctx, b).map(|()| None),
            Command::RevokePaycode(r) => self.revoke_paycode(ctx, r).map(|()| None),
            Command::PayCode(p) => self.pay_code(ctx, p).map(Some),
            Command::Topup(t) => self.topup(ctx, t).map(Some),
            Command::Withdraw(w) => self.withdraw(ctx, w).map(Some),
            Command::CompleteWithdrawal(c) => self.complete_withdrawal(ctx, c).map(Some),
            Command::FailWithdrawal(f) => self.fail_withdrawal(ctx, f).map(Some),
            Command::Send(s) => self.send(ctx, s).map(Some),
            Command::ReceiveTransfer(r) => self.receive_transfer(ctx, r).map(Some),
            Command::ReturnTransfer(r) => self.return_transfer(ctx, r).map(Some),
            Command::CreateRequest(c) => self.create_request(ctx, c).map(|()| None),
            Command::PayRequest(a) => self.pay_request(ctx, a).map(Some),
            Command::DeclineRequest(a) => self
                .end_request(ctx, a, RequestState::Declined)
                .map(|()| None),
            Command::CancelRequest(a) => self
                .end_request(ctx, a, RequestState::Cancelled)
                .map(|()| None),
            Command::CreateSplit(c) => self.create_split(ctx, c).map(|()| None),
            Command::PaySplit(p) => self.pay_split(ctx, p).map(Some),
            Command::CancelSplit(c) => self.cancel_split(ctx, c).map(|()| None),
            Command::CreateRedPacket(r) => self.create_redpacket(ctx, r).map(Some),
            Command::ClaimRedPacket(c) => self.claim_redpacket(ctx, c).map(Some),
            Command::CreateGroup(g) => self.create_group(ctx, g).map(|()| None),
            Command::SettleGroup(g) => self.settle_group(ctx, g).map(Some),
            Command::DefineCurrency(c) => self.define_currency(ctx, c).map(|()| None),
            Command::SetRate(r) => self.set_rate(ctx, r).map(|()| None),
            Command::Convert(c) => self.convert(ctx, c).map(Some),
            Command::DefineTier(t) => self.define_tier(ctx, t).map(|()| None),
            Command::SetAccountTier(t) => self.set_account_tier(ctx, t).map(|()| None),
            Command::SetSetting(s) => self.set_setting(ctx, s).map(|()| None),
        };
        let (code, transfer) = match outcome {
            Ok(t) => (ResultCode::Ok, t),
            Err(Failure::Code(code)) => (code, None),
            Err(Failure::Fatal(e)) => return Err(e),
        };
        let result = CommandResult {
            code,
            timestamp_ns: ctx.ts,
        };
        self.put_record(
            ctx,
            id,
            CommandRecord {
                fingerprint: fp,
                result,
                transfer,
            },
        );
        Ok(result)
    }

    /// Remembers the account's state before the batch first touches it. The mark in the account
    /// replaces a map of touched accounts: the slot is in the cache already (the caller has it),
    /// where the map's random inserts missed it (60 % of `commit_movement`'s own time).
    fn touch(ctx: &mut BatchCtx, id: Id, a: &mut Account) {
        if a.touched_in != ctx.index {
            a.touched_in = ctx.index;
            ctx.before.push((id, a.state));
        }
    }

    /// Replaces an account's state, remembering the state before the batch touched it.
    fn commit_state(&mut self, ctx: &mut BatchCtx, id: Id, st: AccountState) {
        let a = self
            .accounts
            .get_mut(&id)
            .expect("caller checked the account exists");
        Self::touch(ctx, id, a);
        a.state = st;
    }

    // ---- end of batch -------------------------------------------------------------------------------

    /// Checks the batch's invariants on every touched account (kept in release builds: a violation means
    /// a bug, and a replica must stop rather than persist it), then writes each touched account once.
    /// Returns the touched accounts' states if a read view follows this ledger (see [`ViewDelta`]).
    fn check_and_write_accounts(&self, ctx: &mut BatchCtx) -> Vec<(Id, AccountState)> {
        let mut deltas: BTreeMap<Currency, [i128; 4]> = BTreeMap::new();
        let mut view = Vec::with_capacity(if self.view_tracking {
            ctx.before.len()
        } else {
            0
        });
        ctx.wb.accounts.reserve(ctx.before.len());
        for (n, (id, before)) in ctx.before.iter().enumerate() {
            if n % WARM_COMMANDS == 0 {
                let end = ctx.before.len().min(n + WARM_COMMANDS);
                self.warm_touched(&ctx.before[n..end]);
            }
            let a = &self.accounts[id];
            if self.view_tracking {
                view.push((*id, a.state));
            }
            let (b0, b1) = (&before.balances, &a.state.balances);
            let d = deltas.entry(a.info.currency).or_default();
            d[0] += b1.debits_posted as i128 - b0.debits_posted as i128;
            d[1] += b1.credits_posted as i128 - b0.credits_posted as i128;
            d[2] += b1.debits_pending as i128 - b0.debits_pending as i128;
            d[3] += b1.credits_pending as i128 - b0.credits_pending as i128;
            for total in [
                b1.debits_posted,
                b1.credits_posted,
                b1.debits_pending,
                b1.credits_pending,
            ] {
                assert!(
                    total <= crate::MAX_MINOR,
                    "account {id} total past MAX_MINOR"
                );
            }
            if a.info.flags & FLAG_DEBITS_MUST_NOT_EXCEED_CREDITS != 0 {
                assert!(
                    b1.debits_posted + b1.debits_pending <= b1.credits_posted + a.info.overdraft
                        || b1.debits_posted + b1.debits_pending
                            <= b0.debits_posted + b0.debits_pending,
                    "account {id} overdrawn"
                );
            }
            ctx.wb.put_account(a.clone());
        }
        for (cur, d) in deltas {
            assert_eq!(d[0], d[1], "posted money not conserved in {cur}");
            assert_eq!(d[2], d[3], "pending money not conserved in {cur}");
        }
        view
    }
}
