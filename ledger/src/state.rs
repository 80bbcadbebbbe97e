//! The state machine: applies batches of commands to accounts, deterministically.

use std::collections::{BTreeMap, BTreeSet};

use rustc_hash::FxHashMap;

use crate::codec::{self, CommandRecord, Dec, Enc};
use crate::command::*;
use crate::money::{self, Currency};
use crate::store::{Cf, Store, StoreError, WriteBatch};
use crate::types::*;

/// Most pending transfers expired at the start of one batch; the rest expire in later batches (and a
/// post or void of an overdue hold expires it on the spot), so one batch never does unbounded work.
pub const EXPIRE_PER_BATCH_MAX: usize = 4_096;
/// Largest history page.
pub const HISTORY_PAGE_MAX: usize = 1_000;
/// Longest client name, in bytes.
pub const CLIENT_NAME_BYTES_MAX: usize = 64;

const NS_PER_DAY: u64 = 86_400 * 1_000_000_000;
const META_KEY: &[u8] = b"meta";

#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("corrupt state: {0}")]
    Corrupt(String),
    #[error("batch index {index} does not follow applied index {applied}")]
    OutOfOrder { index: u64, applied: u64 },
    #[error("snapshot: {0}")]
    Snapshot(String),
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
    clients: FxHashMap<[u8; 32], Client>,
    /// Open holds ordered by expiry, then id (deterministic expiry order).
    expiries: BTreeSet<(u64, Id)>,
    applied_index: u64,
    digest: [u8; 32],
    last_timestamp_ns: u64,
}

/// Working state of one batch: changes are gathered here and written in one atomic store write.
struct BatchCtx {
    ts: u64,
    day: u32,
    wb: WriteBatch,
    /// Account states before the batch first touched them (for the conservation check and the write).
    before: FxHashMap<Id, AccountState>,
    /// Command records written in this batch, and records read from the store.
    records: FxHashMap<Id, Option<CommandRecord>>,
    scratch: Enc,
}

/// A transfer's working copy of one account.
struct Work {
    id: Id,
    state: AccountState,
    counted_today: bool,
}

fn posting_key(account: Id, seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(24);
    k.extend_from_slice(&account.to_bytes());
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

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
            clients: FxHashMap::default(),
            expiries: BTreeSet::new(),
            applied_index: 0,
            digest: [0; 32],
            last_timestamp_ns: 0,
        };
        l.load()?;
        Ok(l)
    }

    fn load(&mut self) -> Result<(), LedgerError> {
        self.accounts.clear();
        self.clients.clear();
        self.expiries.clear();
        self.applied_index = 0;
        self.digest = [0; 32];
        self.last_timestamp_ns = 0;
        if let Some(m) = self.store.get(Cf::Meta, META_KEY)? {
            let mut d = Dec::new(&m);
            self.applied_index = d.u64()?;
            self.digest = d
                .bytes()?
                .try_into()
                .map_err(|_| LedgerError::Corrupt("digest".into()))?;
            self.last_timestamp_ns = d.u64()?;
            d.finish()?;
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
        let expiries = &mut self.expiries;
        self.store.for_each(Cf::Pending, &mut |k, v| {
            let bad = |r: &str| StoreError::Corrupt {
                cf: Cf::Pending,
                reason: r.to_string(),
            };
            let id = Id::from_bytes(k.try_into().map_err(|_| bad("key"))?);
            let at = u64::from_le_bytes(v.try_into().map_err(|_| bad("value"))?);
            expiries.insert((at, id));
            Ok(())
        })?;
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

    // ---- apply --------------------------------------------------------------------------------------

    /// Applies the batch committed at log `index` (which must exceed the applied index) and persists
    /// every change together with the new applied index and digest in one atomic store write.
    ///
    /// Business failures are results, identical on every replica. An `Err` is node-local (storage) and
    /// means the node must stop.
    pub fn apply(&mut self, index: u64, batch: &Batch) -> Result<BatchOutput, LedgerError> {
        if index <= self.applied_index {
            return Err(LedgerError::OutOfOrder {
                index,
                applied: self.applied_index,
            });
        }
        // Strictly increasing log time, whatever the leader's clock says.
        let ts = batch.timestamp_ns.max(self.last_timestamp_ns + 1);
        let mut ctx = BatchCtx {
            ts,
            day: (ts / NS_PER_DAY) as u32,
            wb: WriteBatch::with_capacity(batch.commands.len() * 4 + 8),
            before: FxHashMap::with_capacity_and_hasher(
                batch.commands.len() * 2,
                Default::default(),
            ),
            records: FxHashMap::with_capacity_and_hasher(
                batch.commands.len() + 16,
                Default::default(),
            ),
            scratch: Enc::with_capacity(256),
        };

        self.expire_due(&mut ctx)?;
        if self.store.batched_reads_pay() {
            self.prefetch(&mut ctx, &batch.commands)?;
        }

        let mut hasher = blake3::Hasher::new();
        hasher.update(&self.digest);
        hasher.update(&index.to_le_bytes());
        hasher.update(&ts.to_le_bytes());
        hasher.update(&batch.seed.to_le_bytes());
        hasher.update(&(batch.commands.len() as u64).to_le_bytes());

        let mut results = Vec::with_capacity(batch.commands.len());
        for cmd in &batch.commands {
            let fp = fingerprint(&mut ctx.scratch, cmd);
            let result = self.apply_one(&mut ctx, cmd, fp)?;
            hasher.update(&fp);
            hasher.update(&(result.code as u16).to_le_bytes());
            hasher.update(&result.timestamp_ns.to_le_bytes());
            results.push(result);
        }
        let digest: [u8; 32] = *hasher.finalize().as_bytes();

        self.check_and_write_accounts(&mut ctx);

        let mut meta = Enc::with_capacity(64);
        meta.u64(index);
        meta.bytes(&digest);
        meta.u64(ts);
        ctx.wb.put(Cf::Meta, META_KEY.to_vec(), meta.buf);
        self.store.write(ctx.wb)?;

        self.applied_index = index;
        self.digest = digest;
        self.last_timestamp_ns = ts;
        Ok(BatchOutput {
            results,
            applied_index: index,
            digest,
            timestamp_ns: ts,
        })
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
        let keys: Vec<Vec<u8>> = ids.iter().map(|id| id.to_bytes().to_vec()).collect();
        let values = self.store.multi_get(Cf::Commands, &keys)?;
        for (id, v) in ids.into_iter().zip(values) {
            let rec = match v {
                Some(b) => Some(codec::decode_command_record(&b)?),
                None => None,
            };
            ctx.records.insert(id, rec);
        }
        Ok(())
    }

    fn record(&self, ctx: &mut BatchCtx, id: Id) -> Result<Option<CommandRecord>, LedgerError> {
        if let Some(r) = ctx.records.get(&id) {
            return Ok(r.clone());
        }
        let r = match self.store.get(Cf::Commands, &id.to_bytes())? {
            Some(b) => Some(codec::decode_command_record(&b)?),
            None => None,
        };
        ctx.records.insert(id, r.clone());
        Ok(r)
    }

    fn put_record(&self, ctx: &mut BatchCtx, id: Id, rec: CommandRecord) {
        ctx.wb.put(
            Cf::Commands,
            id.to_bytes().to_vec(),
            codec::encode_command_record(&rec),
        );
        ctx.records.insert(id, Some(rec));
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
            None => match self.store.get(Cf::Commands, &id.to_bytes())? {
                Some(b) => {
                    let r = codec::decode_command_record(&b)?;
                    Some((r.fingerprint, r.result))
                }
                None => None,
            },
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
        let outcome = match cmd {
            Command::CreateAccount(c) => self.create_account(ctx, c).map(|()| None),
            Command::CreateTransfer(t) => self.create_transfer(ctx, t).map(Some),
            Command::PostPending(p) => self
                .resolve_pending(ctx, p.id, p.pending_id, Some(p.amount))
                .map(Some),
            Command::VoidPending(v) => self
                .resolve_pending(ctx, v.id, v.pending_id, None)
                .map(Some),
            Command::SetAccountStatus(s) => self.set_status(ctx, s).map(|()| None),
            Command::RegisterClient(r) => self.register_client(ctx, r).map(|()| None),
            Command::RevokeClient(r) => self.revoke_client(ctx, r).map(|()| None),
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

    // ---- accounts -----------------------------------------------------------------------------------

    fn create_account(&mut self, ctx: &mut BatchCtx, c: &CreateAccount) -> Result<(), Failure> {
        let currency = Currency::from_code(&c.currency).ok_or(ResultCode::InvalidCurrency)?;
        if self.accounts.contains_key(&c.id) {
            // Unreachable through idempotency (the account id is the command id), kept as a guard.
            return Err(ResultCode::IdempotencyConflict.into());
        }
        if c.debits_must_not_exceed_credits && c.credits_must_not_exceed_debits {
            return Err(ResultCode::InvalidFlags.into());
        }
        let mut flags = 0;
        // A wallet may never go below zero unless it has an explicit overdraft.
        if c.debits_must_not_exceed_credits || c.kind == AccountKind::Wallet {
            flags |= FLAG_DEBITS_MUST_NOT_EXCEED_CREDITS;
        }
        if c.credits_must_not_exceed_debits {
            if c.kind == AccountKind::Wallet {
                return Err(ResultCode::InvalidFlags.into());
            }
            flags |= FLAG_CREDITS_MUST_NOT_EXCEED_DEBITS;
        }
        let conv = |d: Option<rust_decimal::Decimal>| {
            d.map(|d| currency.to_minor_allow_zero(d)).transpose()
        };
        let overdraft = conv(c.overdraft)?.unwrap_or(0);
        if overdraft > 0 && flags & FLAG_DEBITS_MUST_NOT_EXCEED_CREDITS == 0 {
            return Err(ResultCode::InvalidFlags.into());
        }
        let limits = Limits {
            per_transfer_max: conv(c.limits.per_transfer_max)?,
            daily_outflow_max: conv(c.limits.daily_outflow_max)?,
            daily_outflow_count_max: c.limits.daily_outflow_count_max,
            balance_max: conv(c.limits.balance_max)?,
        };
        if c.reference.len() > REFERENCE_BYTES_MAX {
            return Err(ResultCode::ReferenceTooLong.into());
        }
        if c.metadata.len() > METADATA_ENTRIES_MAX
            || c.metadata.iter().any(|(k, v)| {
                k.is_empty()
                    || k.len() > METADATA_KEY_BYTES_MAX
                    || v.len() > METADATA_VALUE_BYTES_MAX
            })
        {
            return Err(ResultCode::MetadataTooLarge.into());
        }
        let account = Account {
            info: AccountInfo {
                id: c.id,
                currency,
                kind: c.kind,
                flags,
                overdraft,
                limits,
                reference: c.reference.clone(),
                metadata: c.metadata.clone(),
                created_ns: ctx.ts,
            },
            state: AccountState {
                status_raw: AccountStatus::Open as u8,
                day: ctx.day,
                ..Default::default()
            },
        };
        // Record a zero "before" so the conservation check and the batch write see the new account.
        ctx.before.insert(c.id, AccountState::default());
        self.accounts.insert(c.id, account);
        Ok(())
    }

    fn set_status(&mut self, ctx: &mut BatchCtx, s: &SetAccountStatus) -> Result<(), Failure> {
        let a = self
            .accounts
            .get(&s.account)
            .ok_or(ResultCode::AccountNotFound)?;
        let cur = a.status();
        if cur == AccountStatus::Closed && s.status != AccountStatus::Closed {
            return Err(ResultCode::InvalidStatusChange.into());
        }
        if s.status == AccountStatus::Closed && cur != AccountStatus::Closed {
            let b = &a.state.balances;
            if a.state.pending_count > 0 || b.debits_pending > 0 || b.credits_pending > 0 {
                return Err(ResultCode::PendingTransfersOpen.into());
            }
            if b.debits_posted != b.credits_posted {
                return Err(ResultCode::BalanceNotZero.into());
            }
        }
        let mut st = a.state;
        st.status_raw = s.status as u8;
        self.commit_state(ctx, s.account, st);
        Ok(())
    }

    /// Replaces an account's state, remembering the state before the batch touched it.
    fn commit_state(&mut self, ctx: &mut BatchCtx, id: Id, st: AccountState) {
        let a = self
            .accounts
            .get_mut(&id)
            .expect("caller checked the account exists");
        ctx.before.entry(id).or_insert(a.state);
        a.state = st;
    }

    // ---- transfers ----------------------------------------------------------------------------------

    fn create_transfer(
        &mut self,
        ctx: &mut BatchCtx,
        t: &CreateTransfer,
    ) -> Result<Transfer, Failure> {
        if t.legs.is_empty() {
            return Err(ResultCode::NoLegs.into());
        }
        if t.legs.len() > LEGS_MAX {
            return Err(ResultCode::TooManyLegs.into());
        }
        if t.reference.len() > REFERENCE_BYTES_MAX {
            return Err(ResultCode::ReferenceTooLong.into());
        }
        let expires_ns = match t.pending_timeout_seconds {
            None => None,
            Some(s) if s == 0 || s > PENDING_TIMEOUT_SECONDS_MAX => {
                return Err(ResultCode::InvalidTimeout.into())
            }
            Some(s) => Some(ctx.ts + s * 1_000_000_000),
        };
        let pending = expires_ns.is_some();
        let kind = if pending {
            PostingKind::PendingHold
        } else {
            PostingKind::Posted
        };

        let mut work: Vec<Work> = Vec::with_capacity(2 * t.legs.len().min(4));
        let mut legs = Vec::with_capacity(t.legs.len());
        let mut postings: Vec<Posting> = Vec::with_capacity(2 * t.legs.len());
        for (i, leg) in t.legs.iter().enumerate() {
            if leg.debit == leg.credit {
                return Err(ResultCode::SameAccount.into());
            }
            let dr = self
                .accounts
                .get(&leg.debit)
                .ok_or(ResultCode::AccountNotFound)?;
            let cr = self
                .accounts
                .get(&leg.credit)
                .ok_or(ResultCode::AccountNotFound)?;
            let currency = dr.info.currency;
            if cr.info.currency != currency {
                return Err(ResultCode::CurrencyMismatch.into());
            }
            let amount = currency.to_minor(leg.amount)?;
            let di = work_index(&mut work, dr, ctx.day);
            let ci = work_index(&mut work, cr, ctx.day);
            debit_checks(&dr.info, &mut work[di], amount, pending)?;
            credit_checks(&cr.info, &work[ci].state, amount, pending)?;
            {
                let w = &mut work[di];
                let b = &mut w.state.balances;
                if pending {
                    b.debits_pending = money::add(b.debits_pending, amount)?;
                } else {
                    b.debits_posted = money::add(b.debits_posted, amount)?;
                }
                w.state.posting_seq += 1;
                postings.push(posting(w, t.id, i, kind, true, amount, ctx.ts));
            }
            {
                let w = &mut work[ci];
                let b = &mut w.state.balances;
                if pending {
                    b.credits_pending = money::add(b.credits_pending, amount)?;
                } else {
                    b.credits_posted = money::add(b.credits_posted, amount)?;
                }
                w.state.posting_seq += 1;
                postings.push(posting(w, t.id, i, kind, false, amount, ctx.ts));
            }
            legs.push(Leg {
                debit: leg.debit,
                credit: leg.credit,
                amount,
            });
        }
        // Every leg passed: commit.
        for mut w in work {
            if pending {
                w.state.pending_count += 1;
            }
            self.commit_state(ctx, w.id, w.state);
        }
        for p in &postings {
            ctx.wb.put(
                Cf::Postings,
                posting_key(p.account, p.seq),
                codec::encode_posting(p),
            );
        }
        if let Some(at) = expires_ns {
            self.expiries.insert((at, t.id));
            ctx.wb.put(
                Cf::Pending,
                t.id.to_bytes().to_vec(),
                at.to_le_bytes().to_vec(),
            );
        }
        Ok(Transfer {
            id: t.id,
            legs,
            state: if pending {
                TransferState::Pending
            } else {
                TransferState::Posted
            },
            pending_id: None,
            expires_ns,
            posted_amount: None,
            reference: t.reference.clone(),
            timestamp_ns: ctx.ts,
        })
    }

    /// Posts (`post = Some(amount)`) or voids (`post = None`) a pending transfer.
    fn resolve_pending(
        &mut self,
        ctx: &mut BatchCtx,
        id: Id,
        pending_id: Id,
        post: Option<Option<rust_decimal::Decimal>>,
    ) -> Result<Transfer, Failure> {
        let rec = self.record(ctx, pending_id).map_err(Failure::Fatal)?;
        let Some(CommandRecord {
            transfer: Some(p), ..
        }) = rec
        else {
            return Err(ResultCode::PendingNotFound.into());
        };
        match p.state {
            TransferState::Pending => {}
            TransferState::PendingPosted => return Err(ResultCode::PendingAlreadyPosted.into()),
            TransferState::PendingVoided => return Err(ResultCode::PendingAlreadyVoided.into()),
            TransferState::PendingExpired => return Err(ResultCode::PendingExpired.into()),
            TransferState::Posted | TransferState::Void => {
                return Err(ResultCode::PendingNotFound.into())
            }
        }
        if p.expires_ns.is_some_and(|at| ctx.ts >= at) {
            // Overdue but not yet swept: expire it now; the hold is gone either way.
            self.release(ctx, pending_id, None)
                .map_err(Failure::Fatal)?;
            return Err(ResultCode::PendingExpired.into());
        }
        let posted_amount = match post {
            None => None,
            Some(None) => Some(p.legs.iter().map(|l| l.amount).collect::<Vec<_>>()),
            Some(Some(amount)) => {
                if p.legs.len() != 1 {
                    return Err(ResultCode::PartialPostMultiLeg.into());
                }
                let currency = self.accounts[&p.legs[0].debit].info.currency;
                let amount = currency.to_minor(amount)?;
                if amount > p.legs[0].amount {
                    return Err(ResultCode::PostAmountExceedsPending.into());
                }
                Some(vec![amount])
            }
        };
        // Posting can overflow a credit total; check before touching anything.
        if let Some(amounts) = &posted_amount {
            let mut sim: Vec<(Id, Balances)> = Vec::new();
            for (leg, amt) in p.legs.iter().zip(amounts) {
                for (acct, debit) in [(leg.debit, true), (leg.credit, false)] {
                    let pos = match sim.iter().position(|(a, _)| *a == acct) {
                        Some(i) => i,
                        None => {
                            sim.push((acct, self.accounts[&acct].state.balances));
                            sim.len() - 1
                        }
                    };
                    let b = &mut sim[pos].1;
                    if debit {
                        b.debits_posted = money::add(b.debits_posted, *amt)?;
                    } else {
                        b.credits_posted = money::add(b.credits_posted, *amt)?;
                    }
                }
            }
        }
        let resolved = self
            .release(ctx, pending_id, posted_amount.as_deref().map(|a| (id, a)))
            .map_err(Failure::Fatal)?;
        let (state, legs) = match &posted_amount {
            Some(amounts) => (
                TransferState::Posted,
                resolved
                    .legs
                    .iter()
                    .zip(amounts)
                    .map(|(l, a)| Leg { amount: *a, ..*l })
                    .collect(),
            ),
            None => (TransferState::Void, resolved.legs.clone()),
        };
        Ok(Transfer {
            id,
            legs,
            state,
            pending_id: Some(pending_id),
            expires_ns: None,
            posted_amount: None,
            reference: String::new(),
            timestamp_ns: ctx.ts,
        })
    }

    /// Releases a pending transfer's holds; with `post = Some((post_id, amounts))` posts `amounts` per
    /// leg, else voids (or, when `post_id` is absent and the hold is overdue, expires) it. Updates the
    /// pending record and the expiry index. Returns the updated pending transfer.
    fn release(
        &mut self,
        ctx: &mut BatchCtx,
        pending_id: Id,
        post: Option<(Id, &[u128])>,
    ) -> Result<Transfer, LedgerError> {
        let Some(mut rec) = self.record(ctx, pending_id)? else {
            return Err(LedgerError::Corrupt(format!(
                "pending {pending_id} vanished"
            )));
        };
        let mut p = rec
            .transfer
            .take()
            .ok_or_else(|| LedgerError::Corrupt("pending without transfer".into()))?;
        assert_eq!(
            p.state,
            TransferState::Pending,
            "only open holds are released"
        );
        let overdue = p.expires_ns.is_some_and(|at| ctx.ts >= at);
        let (kind, new_state, posting_id) = match post {
            Some((post_id, _)) => (
                PostingKind::PendingPost,
                TransferState::PendingPosted,
                post_id,
            ),
            None if overdue => (
                PostingKind::PendingExpire,
                TransferState::PendingExpired,
                pending_id,
            ),
            None => (
                PostingKind::PendingVoid,
                TransferState::PendingVoided,
                pending_id,
            ),
        };
        let mut touched: Vec<Id> = Vec::with_capacity(2);
        for (i, leg) in p.legs.iter().enumerate() {
            let amt_post = post.map_or(0, |(_, a)| a[i]);
            for (acct, debit) in [(leg.debit, true), (leg.credit, false)] {
                let mut st = self.accounts[&acct].state;
                let b = &mut st.balances;
                if debit {
                    b.debits_pending = b
                        .debits_pending
                        .checked_sub(leg.amount)
                        .expect("hold is counted in pending");
                    b.debits_posted += amt_post; // bound checked by the caller
                } else {
                    b.credits_pending = b
                        .credits_pending
                        .checked_sub(leg.amount)
                        .expect("hold is counted in pending");
                    b.credits_posted += amt_post;
                }
                if !touched.contains(&acct) {
                    touched.push(acct);
                    st.pending_count = st
                        .pending_count
                        .checked_sub(1)
                        .expect("pending count covers the hold");
                }
                st.posting_seq += 1;
                let mut w = Work {
                    id: acct,
                    state: st,
                    counted_today: false,
                };
                let amount = if post.is_some() { amt_post } else { leg.amount };
                let posting = posting(&mut w, posting_id, i, kind, debit, amount, ctx.ts);
                ctx.wb.put(
                    Cf::Postings,
                    posting_key(acct, posting.seq),
                    codec::encode_posting(&posting),
                );
                self.commit_state(ctx, acct, w.state);
            }
        }
        if let Some(at) = p.expires_ns {
            self.expiries.remove(&(at, pending_id));
        }
        ctx.wb.delete(Cf::Pending, pending_id.to_bytes().to_vec());
        p.state = new_state;
        if let Some((_, amounts)) = post {
            p.posted_amount = Some(amounts.iter().sum());
        }
        rec.transfer = Some(p.clone());
        self.put_record(ctx, pending_id, rec);
        Ok(p)
    }

    /// Expires holds whose expiry is at or before the batch time (bounded per batch).
    fn expire_due(&mut self, ctx: &mut BatchCtx) -> Result<(), LedgerError> {
        let due: Vec<Id> = self
            .expiries
            .iter()
            .take_while(|(at, _)| *at <= ctx.ts)
            .take(EXPIRE_PER_BATCH_MAX)
            .map(|(_, id)| *id)
            .collect();
        for id in due {
            self.release(ctx, id, None)?;
        }
        Ok(())
    }

    // ---- clients ------------------------------------------------------------------------------------

    fn register_client(&mut self, ctx: &mut BatchCtx, r: &RegisterClient) -> Result<(), Failure> {
        if r.name.is_empty() || r.name.len() > CLIENT_NAME_BYTES_MAX {
            return Err(ResultCode::InvalidName.into());
        }
        let c = Client {
            public_key: r.public_key,
            role: r.role,
            name: r.name.clone(),
            revoked: false,
            registered_ns: ctx.ts,
        };
        ctx.wb
            .put(Cf::Clients, r.public_key.to_vec(), codec::encode_client(&c));
        self.clients.insert(r.public_key, c);
        Ok(())
    }

    fn revoke_client(&mut self, ctx: &mut BatchCtx, r: &RevokeClient) -> Result<(), Failure> {
        let c = self
            .clients
            .get_mut(&r.public_key)
            .ok_or(ResultCode::ClientNotFound)?;
        c.revoked = true;
        ctx.wb
            .put(Cf::Clients, r.public_key.to_vec(), codec::encode_client(c));
        Ok(())
    }

    // ---- end of batch -------------------------------------------------------------------------------

    /// Checks the batch's invariants on every touched account (kept in release builds: a violation means
    /// a bug, and a replica must stop rather than persist it), then writes each touched account once.
    fn check_and_write_accounts(&self, ctx: &mut BatchCtx) {
        let mut deltas: BTreeMap<Currency, [i128; 4]> = BTreeMap::new();
        for (id, before) in &ctx.before {
            let a = &self.accounts[id];
            let (b0, b1) = (&before.balances, &a.state.balances);
            let d = deltas.entry(a.info.currency).or_default();
            d[0] += b1.debits_posted as i128 - b0.debits_posted as i128;
            d[1] += b1.credits_posted as i128 - b0.credits_posted as i128;
            d[2] += b1.debits_pending as i128 - b0.debits_pending as i128;
            d[3] += b1.credits_pending as i128 - b0.credits_pending as i128;
            if a.info.flags & FLAG_DEBITS_MUST_NOT_EXCEED_CREDITS != 0 {
                assert!(
                    b1.debits_posted + b1.debits_pending <= b1.credits_posted + a.info.overdraft
                        || b1.debits_posted + b1.debits_pending
                            <= b0.debits_posted + b0.debits_pending,
                    "account {id} overdrawn"
                );
            }
            ctx.wb.put(
                Cf::Accounts,
                id.to_bytes().to_vec(),
                codec::encode_account(a),
            );
        }
        for (cur, d) in deltas {
            assert_eq!(d[0], d[1], "posted money not conserved in {cur}");
            assert_eq!(d[2], d[3], "pending money not conserved in {cur}");
        }
    }

    // ---- queries ------------------------------------------------------------------------------------

    pub fn account(&self, id: Id) -> Option<&Account> {
        self.accounts.get(&id)
    }

    pub fn accounts(&self) -> impl Iterator<Item = &Account> {
        self.accounts.values()
    }

    pub fn client(&self, public_key: &[u8; 32]) -> Option<&Client> {
        self.clients.get(public_key)
    }

    pub fn clients(&self) -> Vec<Client> {
        let mut v: Vec<Client> = self.clients.values().cloned().collect();
        v.sort_by(|a, b| {
            a.registered_ns
                .cmp(&b.registered_ns)
                .then(a.public_key.cmp(&b.public_key))
        });
        v
    }

    /// The transfer created by the command `id` (a transfer, a post or a void).
    pub fn transfer(&self, id: Id) -> Result<Option<Transfer>, LedgerError> {
        Ok(self.command_record(id)?.and_then(|r| r.transfer))
    }

    /// The stored outcome of the command `id`, if it was ever applied.
    pub fn command_result(&self, id: Id) -> Result<Option<CommandResult>, LedgerError> {
        Ok(self.command_record(id)?.map(|r| r.result))
    }

    fn command_record(&self, id: Id) -> Result<Option<CommandRecord>, LedgerError> {
        match self.store.get(Cf::Commands, &id.to_bytes())? {
            Some(b) => Ok(Some(codec::decode_command_record(&b)?)),
            None => Ok(None),
        }
    }

    /// Postings of `account` with sequence numbers after `after_seq`, oldest first, at most `limit`
    /// (capped at [`HISTORY_PAGE_MAX`]). The last posting's `seq` is the cursor for the next page.
    pub fn history(
        &self,
        account: Id,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<Posting>, LedgerError> {
        let Some(a) = self.accounts.get(&account) else {
            return Ok(Vec::new());
        };
        let last = a.state.posting_seq;
        let first = after_seq.saturating_add(1);
        if first > last {
            return Ok(Vec::new());
        }
        let n = (last - first + 1).min(limit.min(HISTORY_PAGE_MAX) as u64);
        let keys: Vec<Vec<u8>> = (first..first + n)
            .map(|s| posting_key(account, s))
            .collect();
        let values = self.store.multi_get(Cf::Postings, &keys)?;
        let mut out = Vec::with_capacity(values.len());
        for (i, v) in values.into_iter().enumerate() {
            let seq = first + i as u64;
            let v =
                v.ok_or_else(|| LedgerError::Corrupt(format!("posting {account}/{seq} missing")))?;
            out.push(codec::decode_posting(account, seq, &v)?);
        }
        Ok(out)
    }

    fn posting(&self, account: Id, seq: u64) -> Result<Posting, LedgerError> {
        let v = self
            .store
            .get(Cf::Postings, &posting_key(account, seq))?
            .ok_or_else(|| LedgerError::Corrupt(format!("posting {account}/{seq} missing")))?;
        Ok(codec::decode_posting(account, seq, &v)?)
    }

    /// The account's balances as of log time `timestamp_ns` (after every posting at or before it): a
    /// binary search over its postings, each of which carries the balances it produced.
    pub fn balance_at(
        &self,
        account: Id,
        timestamp_ns: u64,
    ) -> Result<Option<Balances>, LedgerError> {
        let Some(a) = self.accounts.get(&account) else {
            return Ok(None);
        };
        let (mut lo, mut hi) = (1u64, a.state.posting_seq + 1); // first seq with ts > timestamp in [lo, hi]
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.posting(account, mid)?.timestamp_ns <= timestamp_ns {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if lo == 1 {
            return Ok(Some(Balances::default()));
        }
        Ok(Some(self.posting(account, lo - 1)?.balances_after))
    }

    /// The trial balance: per currency, the four totals over all accounts.
    pub fn totals(&self) -> BTreeMap<Currency, CurrencyTotals> {
        let mut m: BTreeMap<Currency, CurrencyTotals> = BTreeMap::new();
        for a in self.accounts.values() {
            let t = m.entry(a.info.currency).or_default();
            let b = &a.state.balances;
            t.debits_posted += b.debits_posted;
            t.credits_posted += b.credits_posted;
            t.debits_pending += b.debits_pending;
            t.credits_pending += b.credits_pending;
            t.accounts += 1;
        }
        m
    }

    /// Full consistency check (reconciliation, tests): every currency balances, and every account's
    /// stored balances equal the sum of its postings and the balances its last posting recorded.
    pub fn verify(&self) -> Result<(), String> {
        for (cur, t) in self.totals() {
            if t.debits_posted != t.credits_posted || t.debits_pending != t.credits_pending {
                return Err(format!("{cur} does not balance: {t:?}"));
            }
        }
        for a in self.accounts.values() {
            let mut sum = Balances::default();
            let mut after = 0;
            loop {
                let page = self
                    .history(a.info.id, after, HISTORY_PAGE_MAX)
                    .map_err(|e| e.to_string())?;
                let Some(last) = page.last() else { break };
                after = last.seq;
                for p in &page {
                    apply_posting(&mut sum, p);
                    if sum != p.balances_after {
                        return Err(format!(
                            "account {} posting {} records {:?}, sum {:?}",
                            a.info.id, p.seq, p.balances_after, sum
                        ));
                    }
                }
            }
            if sum != a.state.balances {
                return Err(format!(
                    "account {} balances {:?} != postings {:?}",
                    a.info.id, a.state.balances, sum
                ));
            }
        }
        Ok(())
    }

    // ---- snapshots ----------------------------------------------------------------------------------

    /// Serializes the whole ledger state (every family, including the applied index and digest).
    pub fn snapshot(&self) -> Result<Vec<u8>, LedgerError> {
        let mut e = Enc::with_capacity(1 << 16);
        e.buf.extend_from_slice(b"SPLS");
        e.u8(1);
        for cf in Cf::ALL {
            let mut rows: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
            self.store.for_each(cf, &mut |k, v| {
                rows.push((k.to_vec(), v.to_vec()));
                Ok(())
            })?;
            rows.sort(); // identical bytes for identical state, whatever the store's order
            e.u8(cf as u8);
            e.u64(rows.len() as u64);
            for (k, v) in rows {
                e.bytes(&k);
                e.bytes(&v);
            }
        }
        Ok(e.buf)
    }

    /// Replaces the state with a snapshot taken at applied index `index`.
    pub fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), LedgerError> {
        let bad = |r: &str| LedgerError::Snapshot(r.to_string());
        if data.len() < 5 || &data[..4] != b"SPLS" || data[4] != 1 {
            return Err(bad("not a ledger snapshot"));
        }
        let mut d = Dec::new(&data[5..]);
        let mut wb = WriteBatch::default();
        for cf in Cf::ALL {
            if d.u8()? != cf as u8 {
                return Err(bad("column family order"));
            }
            let n = d.u64()?;
            for _ in 0..n {
                let k = d.bytes()?.to_vec();
                let v = d.bytes()?.to_vec();
                wb.put(cf, k, v);
            }
        }
        d.finish()?;
        self.store.replace_all(wb)?;
        self.load()?;
        if self.applied_index != index {
            return Err(bad(&format!(
                "snapshot is at index {}, expected {index}",
                self.applied_index
            )));
        }
        Ok(())
    }
}

fn apply_posting(sum: &mut Balances, p: &Posting) {
    let a = p.amount;
    match (p.kind, p.is_debit) {
        (PostingKind::Posted, true) => sum.debits_posted += a,
        (PostingKind::Posted, false) => sum.credits_posted += a,
        (PostingKind::PendingHold, true) => sum.debits_pending += a,
        (PostingKind::PendingHold, false) => sum.credits_pending += a,
        (PostingKind::PendingVoid | PostingKind::PendingExpire, true) => sum.debits_pending -= a,
        (PostingKind::PendingVoid | PostingKind::PendingExpire, false) => sum.credits_pending -= a,
        // A post moves `amount` into posted and releases the whole hold (which a partial post exceeds);
        // the released hold is not on the posting, so take the pending total it recorded.
        (PostingKind::PendingPost, true) => {
            sum.debits_posted += a;
            sum.debits_pending = p.balances_after.debits_pending;
        }
        (PostingKind::PendingPost, false) => {
            sum.credits_posted += a;
            sum.credits_pending = p.balances_after.credits_pending;
        }
    }
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

fn work_index(work: &mut Vec<Work>, a: &Account, day: u32) -> usize {
    if let Some(i) = work.iter().position(|w| w.id == a.info.id) {
        return i;
    }
    let mut state = a.state;
    if state.day != day {
        // A new UTC day of log time: daily outflow counters restart.
        state.day = day;
        state.day_outflow = 0;
        state.day_outflow_count = 0;
    }
    work.push(Work {
        id: a.info.id,
        state,
        counted_today: false,
    });
    work.len() - 1
}

fn debit_checks(
    info: &AccountInfo,
    w: &mut Work,
    amount: u128,
    _pending: bool,
) -> Result<(), ResultCode> {
    match w.state.status() {
        AccountStatus::Open => {}
        AccountStatus::Frozen => return Err(ResultCode::AccountFrozen),
        AccountStatus::Closed => return Err(ResultCode::AccountClosed),
    }
    let l = &info.limits;
    if l.per_transfer_max.is_some_and(|m| amount > m) {
        return Err(ResultCode::PerTransferLimit);
    }
    let b = &w.state.balances;
    if info.flags & FLAG_DEBITS_MUST_NOT_EXCEED_CREDITS != 0 {
        let debits = money::add(money::add(b.debits_posted, b.debits_pending)?, amount)?;
        if debits > b.credits_posted.saturating_add(info.overdraft) {
            return Err(ResultCode::InsufficientFunds);
        }
    }
    let outflow = money::add(w.state.day_outflow, amount)?;
    if l.daily_outflow_max.is_some_and(|m| outflow > m) {
        return Err(ResultCode::DailyAmountLimit);
    }
    if !w.counted_today {
        if l.daily_outflow_count_max
            .is_some_and(|m| w.state.day_outflow_count >= m)
        {
            return Err(ResultCode::DailyCountLimit);
        }
        w.state.day_outflow_count += 1;
        w.counted_today = true;
    }
    w.state.day_outflow = outflow;
    Ok(())
}

fn credit_checks(
    info: &AccountInfo,
    st: &AccountState,
    amount: u128,
    _pending: bool,
) -> Result<(), ResultCode> {
    if st.status() == AccountStatus::Closed {
        return Err(ResultCode::AccountClosed);
    }
    let b = &st.balances;
    if info.flags & FLAG_CREDITS_MUST_NOT_EXCEED_DEBITS != 0 {
        let credits = money::add(money::add(b.credits_posted, b.credits_pending)?, amount)?;
        if credits > b.debits_posted {
            return Err(ResultCode::CreditsExceedDebits);
        }
    }
    if let Some(max) = info.limits.balance_max {
        let credits = money::add(money::add(b.credits_posted, b.credits_pending)?, amount)?;
        if credits.saturating_sub(b.debits_posted) > max {
            return Err(ResultCode::BalanceLimit);
        }
    }
    Ok(())
}

fn posting(
    w: &mut Work,
    transfer: Id,
    leg: usize,
    kind: PostingKind,
    is_debit: bool,
    amount: u128,
    ts: u64,
) -> Posting {
    Posting {
        account: w.id,
        seq: w.state.posting_seq,
        transfer,
        leg: leg as u8,
        kind,
        is_debit,
        amount,
        timestamp_ns: ts,
        balances_after: w.state.balances,
    }
}
