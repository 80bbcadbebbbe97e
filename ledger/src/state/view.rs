//! Read views: a second, read-only `Ledger` over the same store that queries run against, so that
//! a slow read never holds the lock the applying ledger needs (and applying never stalls a read).
//!
//! The applying ledger, with view tracking on, hands out after each batch a [`ViewDelta`]: the
//! states of the accounts the batch touched (small, `Copy`), the rarely-changing `info` of the
//! accounts it created or whose info it changed (shared with the applying ledger's copy: no
//! encoding, decoding or second copy of it; the others' info is not touched, so neither thread
//! pays for a shared reference count on the hot path), and the batch's writes to the other
//! families a ledger caches in memory (meta, clients, merchants, configuration). A view absorbs
//! deltas in log order and skips any at or below its own applied index, so it can be rebuilt
//! from a consistent store snapshot at any time and then catch up from whatever deltas were
//! queued meanwhile. Every other family (commands, postings, orders, …) a
//! view reads from the live store: those records are at least as new as the view's index.
//!
//! A view never applies, restores or expires anything: those calls fail with
//! [`LedgerError::ReadOnly`].

use super::*;

/// The families a ledger caches in memory whose records a view absorbs (the rest it reads through;
/// accounts it takes from [`ViewDelta::accounts`]).
const CACHED: [Cf; 4] = [Cf::Meta, Cf::Clients, Cf::Merchants, Cf::Config];

/// One applied batch's changes to what a ledger caches in memory.
#[derive(Clone, Debug, Default)]
pub struct ViewDelta {
    /// The ledger's applied index after the batch.
    pub applied_index: u64,
    /// The state of every account the batch touched, as it left them (accounts are never deleted).
    pub accounts: Vec<(Id, AccountState)>,
    /// The info of every account the batch created or whose info it changed (a tier).
    pub infos: Vec<std::sync::Arc<AccountInfo>>,
    /// The batch's writes to the other cached families ([`CACHED`]).
    pub ops: Vec<(Cf, crate::store::Key, Option<Vec<u8>>)>,
}

impl ViewDelta {
    /// The currency of each account the batch wrote that `known` does not know yet.
    pub fn new_accounts(&self, known: impl Fn(Id) -> bool) -> Vec<(Id, Currency)> {
        self.infos
            .iter()
            .filter(|i| !known(i.id))
            .map(|i| (i.id, i.currency))
            .collect()
    }

    /// How many records the delta holds (a view's queue is bounded by it).
    pub fn len(&self) -> usize {
        self.accounts.len() + self.infos.len() + self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The API clients the batch wrote (registered or revoked).
    pub fn clients(&self) -> Result<Vec<Client>, LedgerError> {
        self.ops
            .iter()
            .filter_map(|(cf, _, v)| match (cf, v) {
                (Cf::Clients, Some(v)) => Some(codec::decode_client(v).map_err(LedgerError::from)),
                _ => None,
            })
            .collect()
    }

    /// Whether the batch changed an API client (registered, revoked).
    pub fn touches_clients(&self) -> bool {
        self.ops.iter().any(|(cf, _, _)| *cf == Cf::Clients)
    }
}

impl<S: Store> Ledger<S> {
    /// Opens a read view over `store` (which must hold a consistent state, e.g. a snapshot).
    pub fn open_view(store: S) -> Result<Ledger<S>, LedgerError> {
        let mut l = Ledger::open(store)?;
        l.read_only = true;
        // A view does not expire anything: its timer index is dead weight.
        l.timers.clear();
        Ok(l)
    }

    /// Moves the state onto another store handle over the same data (a view is loaded from a
    /// snapshot, then reads through the live database).
    pub fn with_store<T: Store>(self, store: T) -> Ledger<T> {
        Ledger {
            store,
            accounts: self.accounts,
            account_ids: self.account_ids,
            clients: self.clients,
            merchants: self.merchants,
            timers: self.timers,
            config: self.config,
            applied_index: self.applied_index,
            digest: self.digest,
            last_timestamp_ns: self.last_timestamp_ns,
            read_only: self.read_only,
            view_tracking: self.view_tracking,
            view_delta: self.view_delta,
            batch_maps: BatchMaps::default(),
        }
    }

    /// Whether this is a read view.
    pub fn is_view(&self) -> bool {
        self.read_only
    }

    /// Keep each batch's [`ViewDelta`] for [`Ledger::take_view_delta`] (it costs a clone of each
    /// touched account's state, so it is off unless a view follows this ledger).
    pub fn set_view_tracking(&mut self, on: bool) {
        self.view_tracking = on;
        self.view_delta = None;
    }

    /// The delta of the last applied batch, if tracking is on.
    pub fn take_view_delta(&mut self) -> Option<ViewDelta> {
        self.view_delta.take()
    }

    pub(super) fn track_view(
        &mut self,
        index: u64,
        wb: &WriteBatch,
        accounts: Vec<(Id, AccountState)>,
        infos: &[Id],
    ) {
        if !self.view_tracking {
            return;
        }
        let infos = infos
            .iter()
            .map(|id| self.accounts[id].info.clone())
            .collect();
        let ops = wb
            .ops
            .iter()
            .filter(|(cf, _, _)| CACHED.contains(cf))
            .cloned()
            .collect();
        self.view_delta = Some(ViewDelta {
            applied_index: index,
            accounts,
            infos,
            ops,
        });
    }

    /// Brings a view's caches forward by one batch. Deltas at or below the view's applied index
    /// are skipped (the view was loaded after them); the rest must come in log order.
    pub fn absorb(&mut self, delta: ViewDelta) -> Result<(), LedgerError> {
        if !self.read_only {
            return Err(LedgerError::ReadOnly("only a read view absorbs deltas"));
        }
        if delta.applied_index <= self.applied_index {
            return Ok(());
        }
        let corrupt = |cf: Cf| {
            move |e: codec::DecodeError| LedgerError::Corrupt(format!("{cf:?} record: {e}"))
        };
        // Infos first: a new account's state follows in `accounts`.
        for info in delta.infos {
            match self.accounts.entry(info.id) {
                std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().info = info,
                std::collections::hash_map::Entry::Vacant(e) => {
                    self.account_ids.insert(info.id);
                    e.insert(Account::new(info, AccountState::default()));
                }
            }
        }
        for (id, state) in delta.accounts {
            match self.accounts.get_mut(&id) {
                Some(a) => a.state = state,
                None => {
                    return Err(LedgerError::Corrupt(format!(
                        "view delta for index {} changes account {id} the view does not have",
                        delta.applied_index
                    )))
                }
            }
        }
        let mut config = false;
        for (cf, key, value) in &delta.ops {
            match (cf, value) {
                (Cf::Meta, Some(v)) if key.as_slice() == META_KEY => self.load_meta(v)?,
                (Cf::Clients, Some(v)) => {
                    let c = codec::decode_client(v).map_err(corrupt(Cf::Clients))?;
                    self.clients.insert(c.public_key, c);
                }
                (Cf::Merchants, Some(v)) => {
                    let m = codec::decode_merchant(v).map_err(corrupt(Cf::Merchants))?;
                    self.merchants.insert(m.account, m);
                }
                (Cf::Config, _) => config = true,
                // Accounts, clients and merchants are never deleted; meta is one key.
                (cf, _) => {
                    return Err(LedgerError::Corrupt(format!(
                        "unexpected change to {cf:?} in a view delta"
                    )))
                }
            }
        }
        if config {
            // Configuration is small and bounded: reread it whole.
            self.load_config()?;
        }
        if self.applied_index != delta.applied_index {
            return Err(LedgerError::Corrupt(format!(
                "view delta for index {} left the view at {}",
                delta.applied_index, self.applied_index
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStore;

    fn account(id: u128) -> Command {
        // Account 1 is the source of funds; the rest are wallets that cannot overdraw.
        let kind = if id == 1 {
            AccountKind::System
        } else {
            AccountKind::Wallet
        };
        Command::CreateAccount(CreateAccount::basic(Id(id), "CNY", kind))
    }

    fn transfer(id: u128, from: u128, to: u128, amount: i64) -> Command {
        let amount = rust_decimal::Decimal::new(amount, 2);
        Command::CreateTransfer(CreateTransfer::single(
            Id(id),
            Id(from),
            Id(to),
            amount,
            None,
        ))
    }

    /// A view loaded at any index and fed the deltas queued since reaches the applying ledger's
    /// state, whichever deltas it had already seen (a rebuild races the deltas queued meanwhile).
    #[test]
    fn a_view_follows_the_applying_ledger_through_its_deltas() {
        let mut l = Ledger::open(MemStore::new()).unwrap();
        l.set_view_tracking(true);
        let mut deltas = Vec::new();
        let mut stores = Vec::new();
        let batches: Vec<Vec<Command>> = vec![
            vec![account(1), account(2), account(3)],
            vec![transfer(10, 1, 2, 500)],
            vec![transfer(11, 2, 3, 200), account(4)],
            vec![transfer(12, 3, 4, 100), transfer(13, 1, 4, 5)],
        ];
        for (i, commands) in batches.into_iter().enumerate() {
            stores.push(l.store().clone());
            let b = Batch {
                timestamp_ns: 1_000 + i as u64,
                seed: 0,
                commands,
            };
            l.apply(i as u64 + 1, &b).unwrap();
            deltas.push(l.take_view_delta().expect("tracking is on"));
        }
        for (start, store) in stores.into_iter().enumerate() {
            let mut v = Ledger::open_view(store).unwrap();
            assert_eq!(v.applied_index(), start as u64);
            // Replays the whole queue: the deltas the load already contains are skipped.
            for d in &deltas {
                v.absorb(d.clone()).unwrap();
            }
            assert_eq!(v.applied_index(), l.applied_index());
            assert_eq!(v.digest(), l.digest());
            assert_eq!(v.totals(), l.totals());
            for id in 1..=4 {
                assert_eq!(v.account(Id(id)), l.account(Id(id)), "account {id}");
            }
        }
    }

    /// A view shares each account's `info` with the applying ledger; a later change to it there
    /// (a tier) copies it first, so the view keeps the account as of its own index until it
    /// absorbs the change.
    #[test]
    fn a_later_change_to_shared_account_info_reaches_a_view_only_through_its_delta() {
        let mut l = Ledger::open(MemStore::new()).unwrap();
        l.set_view_tracking(true);
        let mut v = Ledger::open_view(MemStore::new()).unwrap();
        let batches: Vec<Vec<Command>> = vec![
            vec![account(1), account(2)],
            vec![Command::DefineTier(DefineTier {
                id: Id(20),
                name: "gold".into(),
                limits: LimitsSpec {
                    per_transfer_max: Some(rust_decimal::Decimal::new(5, 0)),
                    ..Default::default()
                },
            })],
            vec![Command::SetAccountTier(SetAccountTier {
                id: Id(21),
                account: Id(2),
                tier: "gold".into(),
            })],
        ];
        let mut deltas = Vec::new();
        for (i, commands) in batches.into_iter().enumerate() {
            let b = Batch {
                timestamp_ns: 1_000 + i as u64,
                seed: 0,
                commands,
            };
            let out = l.apply(i as u64 + 1, &b).unwrap();
            assert!(
                out.results.iter().all(|r| r.code == ResultCode::Ok),
                "{out:?}"
            );
            deltas.push(l.take_view_delta().expect("tracking is on"));
        }
        let tiered = deltas.pop().unwrap();
        for d in deltas {
            v.absorb(d).unwrap();
        }
        assert!(std::sync::Arc::ptr_eq(
            &v.account(Id(1)).unwrap().info,
            &l.account(Id(1)).unwrap().info
        ));
        assert_eq!(v.account(Id(2)).unwrap().info.tier, None);
        assert_eq!(v.account(Id(2)).unwrap().info.limits.per_transfer_max, None);
        v.absorb(tiered).unwrap();
        assert_eq!(v.account(Id(2)), l.account(Id(2)));
        assert_eq!(v.account(Id(2)).unwrap().info.tier.as_deref(), Some("gold"));
        assert_eq!(v.digest(), l.digest());
    }

    #[test]
    fn a_view_refuses_to_apply_and_a_ledger_refuses_to_absorb() {
        let mut l = Ledger::open(MemStore::new()).unwrap();
        let b = Batch {
            timestamp_ns: 1,
            seed: 0,
            commands: vec![account(1)],
        };
        assert!(matches!(
            l.absorb(ViewDelta::default()),
            Err(LedgerError::ReadOnly(_))
        ));
        let mut v = Ledger::open_view(MemStore::new()).unwrap();
        assert!(matches!(v.apply(1, &b), Err(LedgerError::ReadOnly(_))));
        l.apply(1, &b).unwrap();
        assert!(l.take_view_delta().is_none(), "tracking is off by default");
    }

    /// A delta carries an account's info only when the batch created or changed it; a state for an
    /// account the view has never seen means a delta was lost or reordered.
    #[test]
    fn a_state_for_an_account_the_view_lacks_is_corruption() {
        let mut v = Ledger::open_view(MemStore::new()).unwrap();
        let delta = ViewDelta {
            applied_index: 1,
            accounts: vec![(Id(7), AccountState::default())],
            ..ViewDelta::default()
        };
        assert!(matches!(v.absorb(delta), Err(LedgerError::Corrupt(_))));
        assert!(v.account(Id(7)).is_none());
    }
}
