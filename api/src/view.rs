//! The read side of a node: queries never take the lock the applying ledger holds.
//!
//! The Raft thread applies batches to its ledger and hands each batch's [`ViewDelta`] to
//! [`LedgerView::applied`] — a push onto a bounded queue under a short lock, never a wait for a
//! reader. Queries run on a second, read-only ledger (`Ledger::open_view`) behind a read-write
//! lock, on tokio's blocking pool (see `NodeContext::read`): before answering, a reader absorbs
//! the queued deltas, so a read that passed the read barrier sees every batch applied before it.
//! A background thread absorbs too, so the queue stays short on a node nobody reads from.
//!
//! Two small indexes are kept up to date by the apply side itself, because a request needs them
//! before it can be proposed and must never wait behind a slow report: each account's currency
//! (accounts are never deleted and never change currency) and the API clients (authentication).
//!
//! Invariants: the view's applied index only moves forward, and after `read()` returns it is at
//! least the index of every delta pushed before the call. A snapshot install, or a queue that grew
//! past [`QUEUE_OPS_MAX`] (a reader held the view for a very long time), makes the next reader
//! reload the view from a consistent RocksDB snapshot; deltas the reload already covers are
//! skipped by index.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ledger::{
    Client, ClientRole, Currency, Id, Ledger, LedgerError, RocksStore, SnapshotStore, ViewDelta,
};
use parking_lot::{Condvar, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use rustc_hash::FxHashMap;

use crate::state_machine::ApplyObserver;

/// Most record changes queued for the view before it is reloaded instead (bounds the queue's
/// memory at a few tens of MiB when a reader holds the view for a very long time).
pub const QUEUE_OPS_MAX: usize = 1 << 18;

/// How often the background thread absorbs queued deltas.
const ABSORB_INTERVAL_MS: u64 = 20;

#[derive(Default)]
struct Queue {
    deltas: VecDeque<ViewDelta>,
    ops: usize,
    /// Reload the view from the store before absorbing anything else.
    reload: bool,
}

/// An API client's role and whether it is revoked: what authentication needs.
pub type ClientEntry = (ClientRole, bool);

pub struct LedgerView {
    ledger: RwLock<Ledger<RocksStore>>,
    queue: Mutex<Queue>,
    queued: Condvar,
    /// Account → currency, maintained by the apply side (validation reads it).
    currencies: RwLock<FxHashMap<Id, Currency>>,
    /// Public key → client, maintained by the apply side (authentication reads it).
    clients: RwLock<Arc<FxHashMap<[u8; 32], ClientEntry>>>,
    /// Reloads since start (tests and operators can tell the slow path was taken).
    reloads: std::sync::atomic::AtomicU64,
    /// The catch-up thread, joined by [`LedgerView::stop`].
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    stopped: std::sync::atomic::AtomicBool,
}

impl LedgerView {
    /// A view of `applying` (the Raft thread's ledger, before the Raft thread starts), plus the
    /// thread that keeps it caught up; the thread ends when the view is dropped.
    pub fn start(applying: &Ledger<RocksStore>) -> Result<Arc<LedgerView>, LedgerError> {
        let view = Arc::new(LedgerView {
            ledger: RwLock::new(load(applying.store())?),
            queue: Mutex::new(Queue::default()),
            queued: Condvar::new(),
            currencies: RwLock::new(FxHashMap::default()),
            clients: RwLock::new(Arc::new(FxHashMap::default())),
            reloads: Default::default(),
            thread: Mutex::new(None),
            stopped: Default::default(),
        });
        view.reset_indexes(
            &mut applying.accounts().map(|a| (a.info.id, a.info.currency)),
            applying.clients(),
        );
        let weak = Arc::downgrade(&view);
        let t = std::thread::Builder::new()
            .name("ledger-view".into())
            .spawn(move || absorb_loop(weak))
            .map_err(|e| LedgerError::Corrupt(format!("starting the view thread: {e}")))?;
        *view.thread.lock() = Some(t);
        Ok(view)
    }

    /// Stops the catch-up thread and waits for it (so the database is not held after shutdown).
    pub fn stop(&self) {
        self.stopped
            .store(true, std::sync::atomic::Ordering::Release);
        {
            let _q = self.queue.lock();
            self.queued.notify_all();
        }
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }

    fn reset_indexes(
        &self,
        currencies: &mut dyn Iterator<Item = (Id, Currency)>,
        clients: Vec<Client>,
    ) {
        *self.currencies.write() = currencies.collect();
        *self.clients.write() = Arc::new(
            clients
                .into_iter()
                .map(|c| (c.public_key, (c.role, c.revoked)))
                .collect(),
        );
    }
}

impl ApplyObserver for LedgerView {
    fn applied(&self, delta: ViewDelta) -> Result<(), LedgerError> {
        let new = {
            let m = self.currencies.read();
            delta.new_accounts(|id| m.contains_key(&id))
        };
        if !new.is_empty() {
            self.currencies.write().extend(new);
        }
        if delta.touches_clients() {
            let mut m = (**self.clients.read()).clone();
            for c in delta.clients()? {
                m.insert(c.public_key, (c.role, c.revoked));
            }
            *self.clients.write() = Arc::new(m);
        }
        let mut q = self.queue.lock();
        q.ops += delta.len();
        q.deltas.push_back(delta);
        if q.ops > QUEUE_OPS_MAX {
            q.deltas.clear();
            q.ops = 0;
            q.reload = true;
        }
        self.queued.notify_one();
        Ok(())
    }

    fn restored(&self, currencies: &mut dyn Iterator<Item = (Id, Currency)>, clients: Vec<Client>) {
        self.reset_indexes(currencies, clients);
        let mut q = self.queue.lock();
        q.deltas.clear();
        q.ops = 0;
        q.reload = true;
        self.queued.notify_one();
    }
}

impl LedgerView {
    // ---- read side --------------------------------------------------------------------------------

    /// An account's currency (as of the last applied batch).
    pub fn currency(&self, id: Id) -> Option<Currency> {
        self.currencies.read().get(&id).copied()
    }

    /// [`LedgerView::currency`] for many lookups under one read lock (a request's legs): the
    /// lock taken per leg was 1.5 % of a leader's CPU. Hold it briefly — never across an await.
    pub fn currencies(&self) -> impl Fn(Id) -> Option<Currency> + '_ {
        let map = self.currencies.read();
        move |id| map.get(&id).copied()
    }

    /// An API client's role and revocation (as of the last applied batch).
    pub fn client(&self, public_key: &[u8; 32]) -> Option<ClientEntry> {
        self.clients.read().get(public_key).copied()
    }

    pub fn has_clients(&self) -> bool {
        !self.clients.read().is_empty()
    }

    /// How many times the view was reloaded from the store.
    pub fn reloads(&self) -> u64 {
        self.reloads.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The view, caught up with every batch applied before this call. Blocks only on other
    /// readers' catch-up, never on apply: call it off the async workers.
    pub fn read(&self) -> Result<RwLockReadGuard<'_, Ledger<RocksStore>>, LedgerError> {
        if self.queue_is_empty() {
            return Ok(self.ledger.read());
        }
        let mut w = self.ledger.write();
        self.catch_up(&mut w)?;
        Ok(RwLockWriteGuard::downgrade(w))
    }

    fn queue_is_empty(&self) -> bool {
        let q = self.queue.lock();
        q.deltas.is_empty() && !q.reload
    }

    fn catch_up(&self, view: &mut Ledger<RocksStore>) -> Result<(), LedgerError> {
        let (deltas, reload) = {
            let mut q = self.queue.lock();
            q.ops = 0;
            (std::mem::take(&mut q.deltas), std::mem::take(&mut q.reload))
        };
        if reload {
            // Loaded from a snapshot taken after the queue was emptied: it covers every delta
            // taken with it, and `absorb` skips what it covers of those queued later.
            *view = load(view.store())?;
            self.reloads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(());
        }
        for d in deltas {
            view.absorb(d)?;
        }
        Ok(())
    }

    /// Holds the view exclusively until the guard drops (tests: a slow reader or catch-up).
    #[doc(hidden)]
    pub fn hold_exclusively(&self) -> RwLockWriteGuard<'_, Ledger<RocksStore>> {
        self.ledger.write()
    }
}

/// A view loaded from a consistent snapshot of `store`'s database, reading through the live one.
fn load(store: &RocksStore) -> Result<Ledger<RocksStore>, LedgerError> {
    let snap = SnapshotStore::new(store)?;
    Ok(Ledger::open_view(snap)?.with_store(store.share()))
}

fn absorb_loop(view: Weak<LedgerView>) {
    loop {
        let Some(v) = view.upgrade() else { return };
        if v.stopped.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        {
            let mut q = v.queue.lock();
            if q.deltas.is_empty()
                && !q.reload
                && !v.stopped.load(std::sync::atomic::Ordering::Acquire)
            {
                v.queued
                    .wait_for(&mut q, Duration::from_millis(ABSORB_INTERVAL_MS));
            }
        }
        if !v.queue_is_empty() {
            let mut w = v.ledger.write();
            if let Err(e) = v.catch_up(&mut w) {
                // Readers will hit the same error and report it; nothing more to do here.
                tracing::error!("ledger view: {e}");
                drop(w);
                std::thread::sleep(Duration::from_millis(ABSORB_INTERVAL_MS * 50));
            }
        }
        drop(v);
    }
}
