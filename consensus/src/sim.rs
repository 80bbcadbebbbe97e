//! Deterministic in-process cluster simulator.
//!
//! N [`Driver`]s over [`MemLogStore`] and any [`SimMachine`] (the recording [`SimStateMachine`]
//! here; the real ledger in the `suanpan sim` swarm), a simulated network (seeded loss,
//! duplication, per-message random delay ⇒ reordering, symmetric and one-way partitions) and
//! simulated time with per-node clock offsets. Crashes keep what a disk would keep: a machine's
//! unsynced writes may be lost ([`SimMachine::crash_image`]). Every random choice — including
//! each node's election timeout — comes from one seeded RNG, so a run is reproducible from its
//! seed (`SUANPAN_SIM_SEED` overrides the seed in tests).
//!
//! Time: the simulation advances in *steps*; every `steps_per_tick` steps all nodes tick.
//! Messages are delivered `1..=max_delay_steps` steps after being sent.

use std::collections::{BTreeMap, BTreeSet};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::config::Config;
use crate::driver::{ApplyWork, Driver, MembershipChange, ProposeOutcome, ReadError};
use crate::error::ConsensusError;
use crate::logging::discard_logger;
use crate::state_machine::{CommittedEntry, StateMachine, StateMachineError};
use crate::storage::MemLogStore;

/// Seed for a simulation test: `SUANPAN_SIM_SEED` if set, else `default`. Printed so a failing
/// run can be replayed.
pub fn sim_seed(default: u64) -> u64 {
    let seed = std::env::var("SUANPAN_SIM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default);
    eprintln!("seed={seed}");
    seed
}

/// One applied proposal as recorded by [`SimStateMachine`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppliedRecord {
    pub index: u64,
    pub term: u64,
    pub timestamp_ns: u64,
    pub node_id: u64,
    pub proposal_id: u64,
    pub payload: Vec<u8>,
    /// State hash after applying this proposal (also returned as the proposal's result).
    pub hash_after: u64,
}

/// Recording state machine: an append-only list of applied proposals plus a running hash.
#[derive(Debug, Clone, Default)]
pub struct SimStateMachine {
    pub applied_index: u64,
    pub hash: u64,
    pub records: Vec<AppliedRecord>,
    /// Number of snapshot restores (to assert snapshot catch-up happened).
    pub restores: u64,
}

fn fnv(mut h: u64, bytes: &[u8]) -> u64 {
    if h == 0 {
        h = 0xcbf2_9ce4_8422_2325;
    }
    for b in bytes {
        h ^= *b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01B3);
    }
    h
}

/// A state machine the simulator can crash and restart.
pub trait SimMachine: StateMachine + Sized {
    /// The machine of node `node_id` on an empty disk.
    fn empty(node_id: u64) -> Self;
    /// What a crash leaves on disk; `rng` picks how many unsynced writes made it (in order).
    fn crash_image(&self, rng: &mut StdRng) -> Self;
    /// Writeback: unsynced writes reach the disk.
    fn flush(&mut self) {}
}

impl SimMachine for SimStateMachine {
    fn empty(_node_id: u64) -> Self {
        SimStateMachine::default()
    }
    /// The recording machine's writes are durable at once.
    fn crash_image(&self, _rng: &mut StdRng) -> Self {
        self.clone()
    }
}

impl StateMachine for SimStateMachine {
    fn apply(
        &mut self,
        entries: &[CommittedEntry<'_>],
    ) -> Result<Vec<Vec<Vec<u8>>>, StateMachineError> {
        let mut out = Vec::with_capacity(entries.len());
        for e in entries {
            // Gaps or re-application would be a driver bug: fail loudly.
            if e.index != self.applied_index + 1 {
                return Err(StateMachineError::new(format!(
                    "apply {} after {}",
                    e.index, self.applied_index
                )));
            }
            let mut res = Vec::with_capacity(e.proposals.len());
            for p in &e.proposals {
                let mut h = fnv(self.hash, &e.index.to_be_bytes());
                h = fnv(h, &p.node_id.to_be_bytes());
                h = fnv(h, &p.proposal_id.to_be_bytes());
                h = fnv(h, p.payload);
                self.hash = h;
                self.records.push(AppliedRecord {
                    index: e.index,
                    term: e.term,
                    timestamp_ns: e.timestamp_ns,
                    node_id: p.node_id,
                    proposal_id: p.proposal_id,
                    payload: p.payload.to_vec(),
                    hash_after: h,
                });
                res.push(h.to_be_bytes().to_vec());
            }
            self.applied_index = e.index;
            out.push(res);
        }
        Ok(out)
    }

    fn applied_index(&self) -> u64 {
        self.applied_index
    }

    fn snapshot(&self) -> Result<Vec<u8>, StateMachineError> {
        let mut v = Vec::new();
        v.extend_from_slice(&self.applied_index.to_be_bytes());
        v.extend_from_slice(&self.hash.to_be_bytes());
        v.extend_from_slice(&(self.records.len() as u64).to_be_bytes());
        for r in &self.records {
            for x in [
                r.index,
                r.term,
                r.timestamp_ns,
                r.node_id,
                r.proposal_id,
                r.hash_after,
                r.payload.len() as u64,
            ] {
                v.extend_from_slice(&x.to_be_bytes());
            }
            v.extend_from_slice(&r.payload);
        }
        Ok(v)
    }

    fn restore(&mut self, index: u64, data: &[u8]) -> Result<(), StateMachineError> {
        struct Cur<'a>(&'a [u8]);
        impl<'a> Cur<'a> {
            fn take(&mut self, n: usize) -> Result<&'a [u8], StateMachineError> {
                if self.0.len() < n {
                    return Err(StateMachineError::new("corrupt sim snapshot"));
                }
                let (a, b) = self.0.split_at(n);
                self.0 = b;
                Ok(a)
            }
            fn u64(&mut self) -> Result<u64, StateMachineError> {
                Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8")))
            }
        }
        let mut c = Cur(data);
        let applied = c.u64()?;
        let hash = c.u64()?;
        let n = c.u64()?;
        let mut records = Vec::new();
        for _ in 0..n {
            let f: Vec<u64> = (0..7).map(|_| c.u64()).collect::<Result<_, _>>()?;
            let payload = c.take(f[6] as usize)?.to_vec();
            records.push(AppliedRecord {
                index: f[0],
                term: f[1],
                timestamp_ns: f[2],
                node_id: f[3],
                proposal_id: f[4],
                hash_after: f[5],
                payload,
            });
        }
        if applied != index {
            return Err(StateMachineError::new(format!(
                "snapshot is at {applied}, expected {index}"
            )));
        }
        *self = SimStateMachine {
            applied_index: applied,
            hash,
            records,
            restores: self.restores + 1,
        };
        Ok(())
    }
}

pub type SimDriver<M = SimStateMachine> = Driver<MemLogStore, M>;

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub node_ids: Vec<u64>,
    pub seed: u64,
    /// Probability that a message is dropped.
    pub loss: f64,
    /// Probability that a delivered message is delivered a second time.
    pub duplicate: f64,
    pub max_delay_steps: u64,
    pub steps_per_tick: u64,
    /// Per node and step, probability that unsynced writes reach the disk.
    pub writeback: f64,
    /// Nodes' log stores acknowledge appends before they are durable (the injected bug).
    pub unsynced_appends: bool,
    /// Template for every node (`id` and election range are set per node).
    pub consensus: Config,
}

impl SimConfig {
    pub fn new(n: u64, seed: u64) -> Self {
        let node_ids: Vec<u64> = (1..=n).collect();
        let consensus = Config {
            initial_voters: node_ids.clone(),
            // The simulator exercises the pipelined paths unless a test asks otherwise.
            apply_pipelined: true,
            snapshot_threshold_entries: 1_000,
            log_retain_entries: 10,
            read_timeout_ticks: 20,
            snapshot_timeout_ticks: 20,
            ..Config::default()
        };
        SimConfig {
            node_ids,
            seed,
            loss: 0.0,
            duplicate: 0.0,
            max_delay_steps: 3,
            steps_per_tick: 4,
            writeback: 0.05,
            unsynced_appends: false,
            consensus,
        }
    }
}

/// Proposal / read identity in the simulation: `(node, id)`.
pub type SimKey = (u64, u64);

/// What the simulator did (for reports).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    pub messages_delivered: u64,
    pub messages_dropped: u64,
    pub messages_duplicated: u64,
    pub crashes: u64,
    pub restarts: u64,
    pub wipes: u64,
    /// Distinct (term, leader) pairs observed.
    pub leader_changes: u64,
}

pub struct Sim<M: SimMachine = SimStateMachine> {
    pub cfg: SimConfig,
    rng: StdRng,
    step: u64,
    seq: u64,
    nodes: BTreeMap<u64, SimDriver<M>>,
    /// Crashed nodes: what their disks kept, until restarted.
    down: BTreeMap<u64, (MemLogStore, M)>,
    in_flight: BTreeMap<(u64, u64), (u64, u64, Vec<u8>)>,
    /// Log syncs in progress (pipelined persistence), by (step due, seq): (node, ready). A
    /// crash cancels a node's: the fsync never finished.
    syncs: BTreeMap<(u64, u64), (u64, u64)>,
    /// Nodes whose syncs do not finish (a stalled disk) until released.
    stalled_syncs: BTreeSet<u64>,
    /// Committed entries handed out to be applied (pipelined apply), by (step due, seq):
    /// (node, work). A node's works are due in the order they were handed out; a crash cancels
    /// them (the state machine keeps what it had applied).
    applies: BTreeMap<(u64, u64), (u64, ApplyWork)>,
    /// Per node, the step its last handed-out work is due (later work is never due before it).
    apply_due: BTreeMap<u64, u64>,
    /// Nodes whose applies do not finish (a stalled apply thread) until released.
    stalled_applies: BTreeSet<u64>,
    partition: Option<Vec<BTreeSet<u64>>>,
    /// One-way cuts: messages from `.0` to `.1` are lost.
    cut: BTreeSet<(u64, u64)>,
    last_leader: (u64, u64),
    /// Per-node wall clock offsets (skew, jumps), in nanoseconds.
    clock_offsets: BTreeMap<u64, i64>,
    pub outcomes: BTreeMap<SimKey, ProposeOutcome>,
    pub read_outcomes: BTreeMap<SimKey, Result<u64, ReadError>>,
    pub stats: SimStats,
}

impl Sim<SimStateMachine> {
    pub fn new(cfg: SimConfig) -> Self {
        Self::with_machines(cfg)
    }
}

impl<M: SimMachine> Sim<M> {
    /// A cluster of `cfg.node_ids`, each starting from `M::empty`.
    pub fn with_machines(cfg: SimConfig) -> Self {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let mut offsets: Vec<usize> = (0..cfg.consensus.election_tick).collect();
        offsets.shuffle(&mut rng);
        let mut sim = Sim {
            cfg: cfg.clone(),
            rng,
            step: 0,
            seq: 0,
            nodes: BTreeMap::new(),
            down: BTreeMap::new(),
            in_flight: BTreeMap::new(),
            syncs: BTreeMap::new(),
            stalled_syncs: BTreeSet::new(),
            applies: BTreeMap::new(),
            apply_due: BTreeMap::new(),
            stalled_applies: BTreeSet::new(),
            partition: None,
            cut: BTreeSet::new(),
            last_leader: (0, 0),
            clock_offsets: BTreeMap::new(),
            outcomes: BTreeMap::new(),
            read_outcomes: BTreeMap::new(),
            stats: SimStats::default(),
        };
        for (i, id) in cfg.node_ids.iter().enumerate() {
            let off = offsets[i % offsets.len()];
            let store = sim.empty_store();
            sim.spawn(*id, store, M::empty(*id), Some(off));
        }
        sim
    }

    fn empty_store(&self) -> MemLogStore {
        if self.cfg.unsynced_appends {
            MemLogStore::with_unsynced_appends()
        } else {
            MemLogStore::new()
        }
    }

    /// Create a node process. Its first election timeout is `election_tick + offset`; later
    /// ones are drawn from the sim RNG at each tick after a reset (see [`Sim::step`]).
    fn spawn(&mut self, id: u64, store: MemLogStore, sm: M, offset: Option<usize>) {
        let e = self.cfg.consensus.election_tick;
        let off = offset.unwrap_or_else(|| self.rng.gen_range(0..e));
        let cfg = Config {
            id,
            min_election_tick: e,
            max_election_tick: 2 * e,
            ..self.cfg.consensus.clone()
        };
        let pid_start = self.rng.gen::<u64>() >> 1;
        let mut d =
            Driver::new(cfg, store, sm, pid_start, &discard_logger()).expect("sim: driver start");
        d.raw_node_mut()
            .raft
            .set_randomized_election_timeout(e + off);
        self.nodes.insert(id, d);
    }

    pub fn now_step(&self) -> u64 {
        self.step
    }

    pub fn node(&self, id: u64) -> &SimDriver<M> {
        &self.nodes[&id]
    }

    /// Nodes that are down (crashed, not yet restarted).
    pub fn down_nodes(&self) -> Vec<u64> {
        self.down.keys().copied().collect()
    }

    pub fn node_mut(&mut self, id: u64) -> &mut SimDriver<M> {
        self.nodes.get_mut(&id).expect("sim: no such node")
    }

    /// Sets node `id`'s wall clock to the simulated time plus `offset_ns` (a skew or a jump).
    pub fn set_clock_offset(&mut self, id: u64, offset_ns: i64) {
        self.clock_offsets.insert(id, offset_ns);
    }

    pub fn live_nodes(&self) -> Vec<u64> {
        self.nodes.keys().copied().collect()
    }

    pub fn set_loss(&mut self, loss: f64) {
        self.cfg.loss = loss;
    }

    /// Split the network into groups; nodes in no group are isolated.
    pub fn partition(&mut self, groups: Vec<Vec<u64>>) {
        self.partition = Some(
            groups
                .into_iter()
                .map(|g| g.into_iter().collect())
                .collect(),
        );
    }

    pub fn isolate(&mut self, id: u64) {
        let others: Vec<u64> = self.nodes.keys().copied().filter(|n| *n != id).collect();
        self.partition(vec![vec![id], others]);
    }

    /// Cut the link from `from` to `to` only (an asymmetric, one-way partition).
    pub fn cut_one_way(&mut self, from: u64, to: u64) {
        self.cut.insert((from, to));
    }

    /// Stall (or release) node `id`'s apply thread: what it was handed is not applied (and no
    /// answer, read, membership change or snapshot that waits for it happens) while stalled.
    pub fn stall_applies(&mut self, id: u64, stalled: bool) {
        if stalled {
            self.stalled_applies.insert(id);
        } else {
            self.stalled_applies.remove(&id);
        }
    }

    /// Stall (or release) node `id`'s disk: its log syncs do not finish while stalled.
    pub fn stall_syncs(&mut self, id: u64, stalled: bool) {
        if stalled {
            self.stalled_syncs.insert(id);
        } else {
            self.stalled_syncs.remove(&id);
        }
    }

    /// Heal every partition and cut.
    pub fn heal(&mut self) {
        self.partition = None;
        self.cut.clear();
    }

    fn connected(&self, a: u64, b: u64) -> bool {
        if self.cut.contains(&(a, b)) {
            return false;
        }
        match &self.partition {
            None => true,
            Some(groups) => groups.iter().any(|g| g.contains(&a) && g.contains(&b)),
        }
    }

    /// Node `id`'s syncs in progress never finish (it crashed, or its disk is gone).
    fn cancel_syncs(&mut self, id: u64) {
        self.syncs.retain(|_, (node, _)| *node != id);
        self.applies.retain(|_, (node, _)| *node != id);
        self.apply_due.remove(&id);
    }

    /// Crash a node: its disk keeps what was synced (and, at random, some later writes in order);
    /// in-flight messages to it are lost.
    pub fn crash(&mut self, id: u64) {
        self.crash_keeping(id, None);
    }

    /// Crash a node losing every unsynced write of its log store (the worst case of [`crash`]).
    pub fn crash_losing_unsynced(&mut self, id: u64) {
        self.crash_keeping(id, Some(0));
    }

    fn crash_keeping(&mut self, id: u64, keep: Option<usize>) {
        self.cancel_syncs(id);
        if let Some(d) = self.nodes.remove(&id) {
            let store = d.store();
            let keep = keep.unwrap_or_else(|| self.rng.gen_range(0..=store.pending_writes()));
            let image = (
                store.crash_image(keep),
                d.state_machine().crash_image(&mut self.rng),
            );
            self.down.insert(id, image);
            self.stats.crashes += 1;
        }
    }

    /// Restart a crashed node from its disk.
    pub fn restart(&mut self, id: u64) {
        let (store, sm) = self.down.remove(&id).expect("sim: node not down");
        self.spawn(id, store, sm, None);
        self.stats.restarts += 1;
    }

    /// Replace a node with one that has an empty data dir (same id).
    pub fn wipe(&mut self, id: u64) {
        self.cancel_syncs(id);
        self.nodes.remove(&id);
        self.down.remove(&id);
        let store = self.empty_store();
        self.spawn(id, store, M::empty(id), None);
        self.stats.wipes += 1;
    }

    /// A node and its disk are gone for good (it must be removed from the configuration).
    pub fn destroy(&mut self, id: u64) {
        self.cancel_syncs(id);
        self.nodes.remove(&id);
        self.down.remove(&id);
    }

    /// Start a brand-new empty node process (it becomes a member once added via the log).
    pub fn add_process(&mut self, id: u64) {
        let store = self.empty_store();
        self.spawn(id, store, M::empty(id), None);
    }

    pub fn propose(&mut self, node: u64, payload: Vec<u8>) -> SimKey {
        self.propose_weighted(node, payload, 1)
    }

    pub fn propose_weighted(&mut self, node: u64, payload: Vec<u8>, weight: u64) -> SimKey {
        let pid = self.node_mut(node).propose_weighted(payload, weight);
        self.collect(node);
        (node, pid)
    }

    pub fn propose_membership(&mut self, node: u64, change: MembershipChange) -> SimKey {
        let pid = self.node_mut(node).propose_membership_change(change);
        self.collect(node);
        (node, pid)
    }

    pub fn read(&mut self, node: u64) -> SimKey {
        let rid = self.node_mut(node).read_index();
        self.collect(node);
        (node, rid)
    }

    fn collect(&mut self, node: u64) {
        let d = self.nodes.get_mut(&node).expect("node");
        for (pid, o) in d.take_completions() {
            let prev = self.outcomes.insert((node, pid), o);
            assert!(prev.is_none(), "proposal ({node},{pid}) resolved twice");
        }
        for (rid, r) in d.take_read_completions() {
            let prev = self.read_outcomes.insert((node, rid), r);
            assert!(prev.is_none(), "read ({node},{rid}) resolved twice");
        }
    }

    /// The live leader with the highest term, if any.
    pub fn leader(&self) -> Option<u64> {
        self.nodes
            .iter()
            .filter(|(_, d)| d.is_leader())
            .max_by_key(|(_, d)| d.raw_node().raft.term)
            .map(|(id, _)| *id)
    }

    /// Advance one step: deliver due messages, tick (every `steps_per_tick`), run ready cycles.
    pub fn step(&mut self) -> Result<(), ConsensusError> {
        self.step += 1;
        while let Some(entry) = self.in_flight.first_entry() {
            if entry.key().0 > self.step {
                break;
            }
            let (from, to, bytes) = entry.remove();
            if !self.connected(from, to) {
                self.stats.messages_dropped += 1;
                continue;
            }
            if self.cfg.duplicate > 0.0 && self.rng.gen_bool(self.cfg.duplicate) {
                let at = self.step + self.rng.gen_range(1..=self.cfg.max_delay_steps);
                self.seq += 1;
                self.in_flight
                    .insert((at, self.seq), (from, to, bytes.clone()));
                self.stats.messages_duplicated += 1;
            }
            if let Some(d) = self.nodes.get_mut(&to) {
                d.step_from(Some(from), &bytes)?;
                self.stats.messages_delivered += 1;
            }
        }
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        #[allow(clippy::manual_is_multiple_of)] // workspace MSRV 1.85 predates is_multiple_of
        let tick_now = self.step % self.cfg.steps_per_tick == 0;
        if tick_now {
            let e = self.cfg.consensus.election_tick;
            for id in &ids {
                // raft-rs draws a node's election timeout from the thread RNG at every reset;
                // draw it from the seeded RNG instead, every time it can have been reset, so
                // runs replay and nodes do not keep equal timeouts (a split-vote livelock that
                // fixed timeouts produce).
                let t = self.rng.gen_range(e..2 * e);
                let d = self.nodes.get_mut(id).expect("node");
                if d.raw_node().raft.election_elapsed == 0 {
                    d.raw_node_mut().raft.set_randomized_election_timeout(t);
                }
                d.tick()?;
            }
        }
        // Log syncs that finish now (pipelined persistence): the disk has the writes, and the
        // node learns it (held acknowledgements leave with this step's messages).
        while let Some(entry) = self.syncs.first_entry() {
            if entry.key().0 > self.step {
                break;
            }
            let ((_, seq), (node, ready)) = entry.remove_entry();
            if self.stalled_syncs.contains(&node) {
                // Still in progress: it finishes at the first step after the stall ends.
                self.syncs.insert((self.step + 1, seq), (node, ready));
                continue;
            }
            if let Some(d) = self.nodes.get_mut(&node) {
                d.store_mut().sync();
                d.on_log_synced(ready)?;
            }
        }
        // Applies that finish now (pipelined apply): results come back in order.
        while let Some(entry) = self.applies.first_entry() {
            if entry.key().0 > self.step {
                break;
            }
            let ((_, seq), (node, work)) = entry.remove_entry();
            if self.stalled_applies.contains(&node) {
                // Still in progress: due again at the next step, before anything handed out
                // after it.
                self.applies.insert((self.step + 1, seq), (node, work));
                let due = self.apply_due.entry(node).or_default();
                *due = (*due).max(self.step + 1);
                continue;
            }
            if let Some(d) = self.nodes.get_mut(&node) {
                d.apply_work_inline(work)?;
                self.collect(node);
            }
        }
        let now_ns = self.step * 1_000_000;
        for id in ids {
            let seed = self.rng.gen();
            let offset = self.clock_offsets.get(&id).copied().unwrap_or(0);
            let d = self.nodes.get_mut(&id).expect("node");
            d.process_ready(now_ns.saturating_add_signed(offset), seed)?;
            if let Some(ready) = d.take_log_sync() {
                // The fsync takes 0 to `max_delay_steps` steps.
                let at = self.step + self.rng.gen_range(0..=self.cfg.max_delay_steps);
                self.seq += 1;
                self.syncs.insert((at, self.seq), (id, ready));
            }
            let d = self.nodes.get_mut(&id).expect("node");
            while let Some(work) = d.take_apply_work() {
                // The apply takes 0 to `max_delay_steps` steps, after the node's earlier ones.
                let at = (self.step + self.rng.gen_range(0..=self.cfg.max_delay_steps))
                    .max(self.apply_due.get(&id).copied().unwrap_or(0));
                self.apply_due.insert(id, at);
                self.seq += 1;
                self.applies.insert((at, self.seq), (id, work));
            }
            let d = self.nodes.get_mut(&id).expect("node");
            let msgs = d.take_messages();
            self.collect(id);
            for (to, bytes) in msgs {
                if self.rng.gen_bool(self.cfg.loss) || !self.connected(id, to) {
                    self.stats.messages_dropped += 1;
                    continue;
                }
                let at = self.step + self.rng.gen_range(1..=self.cfg.max_delay_steps);
                self.seq += 1;
                self.in_flight.insert((at, self.seq), (id, to, bytes));
            }
        }
        self.writeback();
        self.observe_leader();
        Ok(())
    }

    /// Writeback on each live node with probability `cfg.writeback`.
    fn writeback(&mut self) {
        if self.cfg.writeback <= 0.0 {
            return;
        }
        let ids: Vec<u64> = self.nodes.keys().copied().collect();
        for id in ids {
            if self.rng.gen_bool(self.cfg.writeback) {
                let d = self.nodes.get_mut(&id).expect("node");
                d.store_mut().flush();
                d.state_machine_mut().flush();
            }
        }
    }

    fn observe_leader(&mut self) {
        if let Some(l) = self.leader() {
            let key = (self.nodes[&l].raw_node().raft.term, l);
            if key != self.last_leader {
                self.last_leader = key;
                self.stats.leader_changes += 1;
            }
        }
    }

    pub fn run(&mut self, steps: u64) {
        for _ in 0..steps {
            self.step().expect("sim: node failed");
        }
    }

    /// Step until `pred` holds (checked after each step); returns whether it did.
    pub fn run_until(&mut self, max_steps: u64, mut pred: impl FnMut(&Self) -> bool) -> bool {
        for _ in 0..max_steps {
            if pred(self) {
                return true;
            }
            self.step().expect("sim: node failed");
        }
        pred(self)
    }

    pub fn applied_index(&self, id: u64) -> u64 {
        self.nodes[&id].state_machine().applied_index()
    }

    /// True when all live nodes have applied the same index and it equals the leader's commit.
    pub fn converged(&self) -> bool {
        let Some(l) = self.leader() else { return false };
        let commit = self.nodes[&l].raw_node().raft.raft_log.committed;
        self.nodes
            .values()
            .all(|d| d.state_machine().applied_index() == commit)
    }
}

impl Sim<SimStateMachine> {
    /// Safety checks over all live nodes; panics with a description on violation.
    pub fn check_safety(&self) {
        let sms: Vec<(u64, &SimStateMachine)> = self
            .nodes
            .iter()
            .map(|(id, d)| (*id, d.state_machine()))
            .collect();
        for (id, sm) in &sms {
            let mut seen = BTreeSet::new();
            for r in &sm.records {
                assert!(
                    seen.insert((r.node_id, r.proposal_id)),
                    "node {id}: proposal ({},{}) applied twice",
                    r.node_id,
                    r.proposal_id
                );
            }
        }
        // Applied sequences are prefixes of each other (State Machine Safety).
        for (a, sa) in &sms {
            for (b, sb) in &sms {
                let n = sa.records.len().min(sb.records.len());
                assert!(
                    sa.records[..n] == sb.records[..n],
                    "nodes {a} and {b} diverged"
                );
            }
        }
        // Every Applied outcome is in the log, at its index, with its result.
        let longest = sms.iter().map(|(_, s)| *s).max_by_key(|s| s.records.len());
        if let Some(longest) = longest {
            let by_key: BTreeMap<(u64, u64), &AppliedRecord> = longest
                .records
                .iter()
                .map(|r| ((r.node_id, r.proposal_id), r))
                .collect();
            for ((node, pid), o) in &self.outcomes {
                if let ProposeOutcome::Applied { index, result } = o {
                    if result.is_empty() {
                        continue; // membership change
                    }
                    if *index > longest.applied_index {
                        continue;
                    }
                    let r = by_key.get(&(*node, *pid)).unwrap_or_else(|| {
                        panic!("Applied ({node},{pid}) at {index} not in the log")
                    });
                    assert_eq!(r.index, *index, "Applied ({node},{pid}) index mismatch");
                    assert_eq!(
                        r.hash_after.to_be_bytes().to_vec(),
                        *result,
                        "Applied ({node},{pid}) result mismatch"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::{RejectReason, Role};
    use crate::storage::LogStore;

    fn count_applied(sim: &Sim) -> usize {
        sim.outcomes
            .values()
            .filter(|o| matches!(o, ProposeOutcome::Applied { .. }))
            .count()
    }

    fn elect(sim: &mut Sim) -> u64 {
        assert!(
            sim.run_until(2_000, |s| s.leader().is_some()),
            "no leader elected"
        );
        sim.leader().unwrap()
    }

    /// A message is stepped only when it is from the node its stream authenticated, and that node
    /// is a member: a follower that could forge the leader's id, or an outsider, moves nothing.
    #[test]
    fn messages_must_come_from_their_authenticated_member_sender() {
        use prost011::Message as _;
        use raft::eraftpb::{Message, MessageType};
        let seed = sim_seed(3);
        let mut sim = Sim::new(SimConfig::new(3, seed));
        let l = elect(&mut sim);
        let mut others = sim.live_nodes().into_iter().filter(|id| *id != l);
        let (f, g) = (others.next().unwrap(), others.next().unwrap());
        let term = sim.node(f).raw_node().raft.term;
        let forged = |from: u64| {
            let mut m = Message::default();
            m.set_msg_type(MessageType::MsgHeartbeat);
            m.from = from;
            m.to = f;
            m.term = term + 5;
            m.encode_to_vec()
        };
        // Node g, authenticated as g, speaks in the leader's name.
        sim.node_mut(f).step_from(Some(g), &forged(l)).unwrap();
        assert_eq!(sim.node(f).raw_node().raft.term, term, "seed {seed}");
        // An authenticated node that is not a member.
        sim.node_mut(f).step_from(Some(9), &forged(9)).unwrap();
        assert_eq!(sim.node(f).raw_node().raft.term, term, "seed {seed}");
        // The same message from its real sender is stepped (the check is what stopped it).
        sim.node_mut(f).step_from(Some(l), &forged(l)).unwrap();
        assert_eq!(sim.node(f).raw_node().raft.term, term + 5, "seed {seed}");
    }

    /// A leader whose wall clock jumps a year ahead cannot drag log time with it: each entry is
    /// stamped at most `max_clock_step_ms` past the last log time plus the leader's own elapsed
    /// ticks, and the clamp is counted.
    /// A follower cut off while a new node was added and then became leader still catches up
    /// from it: it hears the new leader before it has applied the change that made it a member.
    /// (Found by the swarm: `suanpan sim --seed 1006825` before this fix.)
    #[test]
    fn a_lagging_follower_hears_a_leader_it_does_not_know_yet() {
        let seed = sim_seed(23);
        let mut sim = Sim::new(SimConfig::new(3, seed));
        let l = elect(&mut sim);
        let f = sim.live_nodes().into_iter().find(|n| *n != l).unwrap();
        let others: Vec<u64> = sim.live_nodes().into_iter().filter(|n| *n != f).collect();
        sim.partition(vec![vec![f], [others.clone(), vec![4]].concat()]);
        sim.add_process(4);
        let k = sim.propose_membership(l, MembershipChange::AddVoter(4));
        assert!(
            sim.run_until(2_000, |s| s.outcomes.contains_key(&k)),
            "seed {seed}"
        );
        assert!(sim.run_until(2_000, |s| s.applied_index(4) >= s.applied_index(l)));
        sim.node_mut(l).transfer_leader(4);
        assert!(
            sim.run_until(2_000, |s| s.leader() == Some(4)),
            "seed {seed}: no transfer"
        );
        for i in 0..5u8 {
            sim.propose(4, vec![i]);
        }
        sim.heal();
        assert!(
            sim.run_until(5_000, |s| s.converged()),
            "seed {seed}: node {f} never caught up: {:?}",
            sim.node(f).status()
        );
        assert_eq!(sim.node(f).status().voters, vec![1, 2, 3, 4], "seed {seed}");
        sim.check_safety();
    }

    /// A new node joins as a learner and the leader promotes it only once its log has caught up:
    /// while it is cut off and behind, it stays a learner (no vote, no weight in the quorum).
    #[test]
    fn a_learner_is_promoted_once_caught_up() {
        let seed = sim_seed(29);
        let mut cfg = SimConfig::new(3, seed);
        cfg.consensus.promote_lag_entries = 5;
        let mut sim = Sim::new(cfg);
        let l = elect(&mut sim);
        sim.add_process(4);
        sim.partition(vec![vec![1, 2, 3], vec![4]]);
        let k = sim.propose_membership(l, MembershipChange::AddLearner(4, String::new()));
        assert!(
            sim.run_until(2_000, |s| s.outcomes.contains_key(&k)),
            "seed {seed}"
        );
        for i in 0..30u8 {
            sim.propose(l, vec![i]);
            sim.run(20);
        }
        sim.run(1_000);
        let st = sim.node(l).status();
        assert_eq!(st.learners, vec![4], "seed {seed}: {st:?}");
        assert_eq!(st.voters, vec![1, 2, 3], "seed {seed}");
        sim.heal();
        assert!(
            sim.run_until(5_000, |s| s.leader().is_some_and(|l| s
                .node(l)
                .status()
                .voters
                == vec![1, 2, 3, 4])),
            "seed {seed}: never promoted"
        );
        assert!(sim.run_until(2_000, |s| s.converged()), "seed {seed}");
        sim.check_safety();
    }

    /// Pipelined persistence: a follower's copy counts only once its sync is done. With both
    /// followers' disks stalled nothing commits; one disk back, and it does.
    #[test]
    fn an_entry_counts_towards_a_commit_only_once_durable() {
        let seed = sim_seed(5);
        let mut cfg = SimConfig::new(3, seed);
        // No step-down for quiet followers (their heartbeat answers wait for the stalled sync
        // too): the point is what commits, not who leads.
        cfg.consensus.check_quorum = false;
        cfg.writeback = 0.0;
        let mut sim = Sim::new(cfg);
        let l = elect(&mut sim);
        let followers: Vec<u64> = sim.live_nodes().into_iter().filter(|n| *n != l).collect();
        for f in &followers {
            sim.stall_syncs(*f, true);
        }
        let k = sim.propose(l, b"held".to_vec());
        sim.run(100);
        assert!(
            !sim.outcomes.contains_key(&k),
            "seed {seed}: answered without a durable quorum: {:?}",
            sim.outcomes.get(&k)
        );
        for f in &followers {
            // The entry reached them, unsynced.
            assert!(
                sim.node(*f).store().pending_writes() > 0,
                "seed {seed}: node {f} has nothing pending"
            );
        }
        sim.stall_syncs(followers[0], false);
        assert!(
            sim.run_until(200, |s| s.outcomes.contains_key(&k)),
            "seed {seed}: never committed"
        );
        assert!(
            matches!(sim.outcomes[&k], ProposeOutcome::Applied { .. }),
            "seed {seed}"
        );
        sim.stall_syncs(followers[1], false);
        assert!(sim.run_until(500, |s| s.converged()), "seed {seed}");
        sim.check_safety();
    }

    /// Pipelined apply: while the leader's apply thread is stalled, its log goes on (entries
    /// commit, followers apply them) but nothing that waits for its own apply happens: no
    /// answer, no read, no membership change, no snapshot. Released, all of it does.
    #[test]
    fn a_stalled_apply_holds_back_answers_reads_membership_and_snapshots() {
        let seed = sim_seed(7);
        let (mut sim, l, _) = converged(seed, |c| c.snapshot_threshold_entries = 5);
        let taken = sim.node(l).status().snapshots.taken;
        sim.stall_applies(l, true);
        let keys: Vec<SimKey> = (0..8u8)
            .map(|i| {
                let k = sim.propose(l, vec![i]);
                sim.run(10);
                k
            })
            .collect();
        sim.add_process(4);
        let m = sim.propose_membership(l, MembershipChange::AddLearner(4, String::new()));
        sim.run(200);
        // Confirmed at once, but held until applied (here: until it times out).
        let read = sim.read(l);
        sim.run(40);
        assert!(
            !sim.read_outcomes.contains_key(&read),
            "seed {seed}: {:?}",
            sim.read_outcomes.get(&read)
        );
        let st = sim.node(l).status();
        let committed = sim.node(l).raw_node().raft.raft_log.committed;
        assert!(
            committed >= st.applied_index + 9,
            "seed {seed}: the log stopped with the apply: {st:?}"
        );
        for f in sim.live_nodes().into_iter().filter(|n| ![l, 4].contains(n)) {
            assert_eq!(
                sim.applied_index(f),
                committed,
                "seed {seed}: follower {f} did not apply"
            );
            assert_eq!(sim.node(f).status().learners, vec![4], "seed {seed}");
        }
        for k in keys.iter().chain([&m]) {
            assert!(!sim.outcomes.contains_key(k), "seed {seed}: {k:?} answered");
        }
        assert!(st.learners.is_empty(), "seed {seed}: {st:?}");
        assert_eq!(st.snapshots.taken, taken, "seed {seed}");
        sim.stall_applies(l, false);
        assert!(
            sim.run_until(2_000, |s| keys.iter().chain([&m]).all(|k| matches!(
                s.outcomes.get(k),
                Some(ProposeOutcome::Applied { .. })
            ))),
            "seed {seed}: not answered after the release"
        );
        let read = sim.read(l);
        assert!(
            sim.run_until(500, |s| s.read_outcomes.contains_key(&read)),
            "seed {seed}"
        );
        assert!(
            matches!(sim.read_outcomes[&read], Ok(i) if i >= committed),
            "seed {seed}: {:?}",
            sim.read_outcomes[&read]
        );
        assert!(sim.run_until(2_000, |s| s.converged()), "seed {seed}");
        let st = sim.node(l).status();
        assert_eq!(st.learners, vec![4], "seed {seed}");
        assert!(st.snapshots.taken > taken, "seed {seed}: {st:?}");
        sim.check_safety();
    }

    /// Pipelined apply is bounded: a leader whose applies lag `max_apply_backlog_entries`
    /// behind its log refuses new proposals as overloaded (nothing of them enters the log), and
    /// takes them again once it has caught up.
    #[test]
    fn a_leader_whose_apply_lags_refuses_proposals_past_the_backlog_bound() {
        let seed = sim_seed(8);
        let (mut sim, l, _) = converged(seed, |c| c.max_apply_backlog_entries = 4);
        sim.stall_applies(l, true);
        let mut refused = Vec::new();
        let mut taken = Vec::new();
        for i in 0..12u8 {
            let k = sim.propose(l, vec![i]);
            sim.run(20);
            match sim.outcomes.get(&k) {
                Some(ProposeOutcome::Rejected {
                    reason: RejectReason::Overloaded,
                }) => refused.push(k),
                None => taken.push(k),
                o => panic!("seed {seed}: {k:?} {o:?} while the apply is stalled"),
            }
        }
        // At most the bound (less if an entry of the leader's own was still out).
        assert!(
            !taken.is_empty() && taken.len() <= 4,
            "seed {seed}: taken {taken:?}"
        );
        assert_eq!(refused.len(), 12 - taken.len(), "seed {seed}");
        sim.stall_applies(l, false);
        assert!(
            sim.run_until(1_000, |s| taken.iter().all(|k| matches!(
                s.outcomes.get(k),
                Some(ProposeOutcome::Applied { .. })
            ))),
            "seed {seed}"
        );
        let k = sim.propose(l, b"after".to_vec());
        assert!(
            sim.run_until(500, |s| matches!(
                s.outcomes.get(&k),
                Some(ProposeOutcome::Applied { .. })
            )),
            "seed {seed}: {:?}",
            sim.outcomes.get(&k)
        );
        assert!(sim.run_until(1_000, |s| s.converged()), "seed {seed}");
        sim.check_safety();
    }

    #[test]
    fn a_clock_jump_does_not_move_log_time() {
        let seed = sim_seed(11);
        let mut sim = Sim::new(SimConfig::new(3, seed));
        let l = elect(&mut sim);
        // The leader stamps an entry when it packs it: the allowance counts ticks from there.
        let steps_stamped = sim.step;
        let k1 = sim.propose(l, b"before".to_vec());
        assert!(
            sim.run_until(2_000, |s| s.outcomes.contains_key(&k1)),
            "seed {seed}"
        );
        let ts1 = sim
            .node(l)
            .state_machine()
            .records
            .last()
            .unwrap()
            .timestamp_ns;
        let year_ns: i64 = 365 * 86_400 * 1_000_000_000;
        sim.set_clock_offset(l, year_ns);
        let k2 = sim.propose(l, b"after".to_vec());
        assert!(
            sim.run_until(2_000, |s| s.outcomes.contains_key(&k2)),
            "seed {seed}"
        );
        let r = sim.node(l).state_machine().records.last().unwrap().clone();
        assert_eq!(r.payload, b"after".to_vec(), "seed {seed}");
        let cfg = &sim.cfg.consensus;
        let ticks = (sim.step - steps_stamped) / sim.cfg.steps_per_tick + 1;
        let allowed = ticks * cfg.tick_interval_ms * 1_000_000 + cfg.max_clock_step_ms * 1_000_000;
        assert!(
            r.timestamp_ns <= ts1 + allowed,
            "seed {seed}: {} > {} + {allowed}",
            r.timestamp_ns,
            ts1
        );
        assert!(sim.node(l).status().clock_clamps > 0, "seed {seed}");
        assert!(
            sim.node(l).status().clock_ahead_ns > (year_ns as u64) / 2,
            "seed {seed}"
        );
    }

    #[test]
    fn elects_a_single_leader() {
        let seed = sim_seed(1);
        let mut sim = Sim::new(SimConfig::new(3, seed));
        let l = elect(&mut sim);
        sim.run(200);
        assert_eq!(sim.leader(), Some(l));
        let term = sim.node(l).raw_node().raft.term;
        let leaders = sim
            .live_nodes()
            .into_iter()
            .filter(|id| sim.node(*id).is_leader() && sim.node(*id).raw_node().raft.term == term)
            .count();
        assert_eq!(leaders, 1);
        for id in sim.live_nodes() {
            assert_eq!(sim.node(id).leader_id(), Some(l));
            assert_eq!(sim.node(id).status().voters, vec![1, 2, 3]);
        }
        // leader no-op applied everywhere: applied index == raft applied
        assert!(sim.run_until(200, |s| s.converged()));
    }

    #[test]
    fn same_seed_same_run() {
        let run = |seed| {
            let mut sim = Sim::new(SimConfig {
                loss: 0.1,
                ..SimConfig::new(3, seed)
            });
            let mut proposed = 0;
            for i in 0..600u64 {
                if i % 5 == 0 {
                    if let Some(l) = sim.leader() {
                        sim.propose(l, format!("p{i}").into_bytes());
                        proposed += 1;
                    }
                }
                sim.step().unwrap();
            }
            let l = sim.leader();
            (
                proposed,
                l,
                sim.stats.messages_delivered,
                sim.live_nodes()
                    .iter()
                    .map(|id| sim.node(*id).state_machine().hash)
                    .collect::<Vec<_>>(),
            )
        };
        let seed = sim_seed(7);
        assert_eq!(run(seed), run(seed));
    }

    #[test]
    fn many_proposals_under_loss_and_partitions() {
        many_proposals_run(true);
    }

    /// The same with every ready synced, and its entries applied, on the node's own thread
    /// (`log_sync_pipelined: false`, `apply_pipelined: false`).
    #[test]
    fn many_proposals_under_loss_and_partitions_with_inline_log_syncs_and_applies() {
        many_proposals_run(false);
    }

    fn many_proposals_run(pipelined: bool) {
        let seed = sim_seed(42);
        let mut cfg = SimConfig::new(5, seed);
        cfg.consensus.log_sync_pipelined = pipelined;
        cfg.consensus.apply_pipelined = pipelined;
        cfg.loss = 0.1;
        cfg.consensus.snapshot_threshold_entries = 100;
        cfg.consensus.max_proposals_per_entry = 8;
        let mut sim = Sim::new(cfg);
        elect(&mut sim);
        let mut rng = StdRng::seed_from_u64(seed ^ 0xABCD);
        let mut keys = Vec::new();
        for round in 0..3_000u64 {
            // Propose at a random node (non-leaders answer NotLeader).
            if round % 2 == 0 {
                let ids = sim.live_nodes();
                let n = ids[rng.gen_range(0..ids.len())];
                keys.push(sim.propose(n, format!("tx-{round}").into_bytes()));
            }
            match round {
                600 => {
                    let l = sim.leader().unwrap_or(1);
                    sim.isolate(l);
                }
                1_100 => sim.heal(),
                1_400 => sim.partition(vec![vec![1, 2], vec![3, 4, 5]]),
                1_900 => sim.heal(),
                2_100 => sim.crash(3),
                2_400 => sim.restart(3),
                _ => {}
            }
            sim.step().unwrap();
            if round % 100 == 0 {
                sim.check_safety();
            }
        }
        sim.heal();
        sim.set_loss(0.0);
        let l = elect(&mut sim);
        let k = sim.propose(l, b"final".to_vec());
        assert!(
            sim.run_until(3_000, |s| s.outcomes.contains_key(&k) && s.converged()),
            "did not converge"
        );
        assert!(matches!(sim.outcomes[&k], ProposeOutcome::Applied { .. }));
        sim.check_safety();
        let hashes: BTreeSet<u64> = sim
            .live_nodes()
            .iter()
            .map(|id| sim.node(*id).state_machine().hash)
            .collect();
        assert_eq!(hashes.len(), 1, "replicas differ");
        let applied = count_applied(&sim);
        eprintln!(
            "applied {applied} of {} proposals; {} messages delivered",
            keys.len(),
            sim.stats.messages_delivered
        );
        assert!(
            applied > keys.len() / 10,
            "too few proposals applied: {applied}"
        );
        // No proposal is left hanging on a node that is still up.
        for id in sim.live_nodes() {
            assert_eq!(
                sim.node(id).pending_proposals(),
                0,
                "node {id} has pending proposals"
            );
        }
        // Entries carry the leader's injected timestamp.
        let sm = sim.node(l).state_machine();
        assert!(sm.records.iter().all(|r| r.timestamp_ns > 0));
    }

    /// The commit index is written without fsync: a node that loses it on a crash restarts with
    /// a stored commit below its applied index, raises it, and rejoins without a divergence.
    #[test]
    fn a_lost_commit_index_is_raised_to_the_applied_index_on_restart() {
        let seed = sim_seed(11);
        let mut sim = Sim::new(SimConfig::new(3, seed));
        let l = elect(&mut sim);
        let f = sim.live_nodes().into_iter().find(|id| *id != l).unwrap();
        let mut lost = false;
        for round in 0..20 {
            let keys: Vec<SimKey> = (0..5)
                .map(|i| sim.propose(l, format!("p{round}-{i}").into_bytes()))
                .collect();
            assert!(
                sim.run_until(2_000, |s| keys.iter().all(|k| s.outcomes.contains_key(k))),
                "seed {seed}: proposals not answered"
            );
            let (applied, pending) = (
                sim.node(f).state_machine().applied_index,
                sim.node(f).store().pending_writes(),
            );
            let image = sim.node(f).store().crash_image(0);
            if pending > 0 && image.hard_state().commit < applied {
                lost = true;
                sim.crash_losing_unsynced(f);
                sim.restart(f);
                assert_eq!(
                    sim.node(f).store().hard_state().commit,
                    applied,
                    "seed {seed}"
                );
                break;
            }
        }
        assert!(
            lost,
            "seed {seed}: no commit-only write was pending on the follower"
        );
        let k = sim.propose(l, b"after".to_vec());
        assert!(
            sim.run_until(3_000, |s| s.outcomes.contains_key(&k) && s.converged()),
            "seed {seed}: did not converge"
        );
        sim.check_safety();
    }

    #[test]
    fn minority_partition_cannot_commit() {
        let seed = sim_seed(3);
        let mut sim = Sim::new(SimConfig::new(5, seed));
        let old = elect(&mut sim);
        assert!(sim.run_until(500, |s| s.converged()));
        let buddy = sim.live_nodes().into_iter().find(|n| *n != old).unwrap();
        let majority: Vec<u64> = sim
            .live_nodes()
            .into_iter()
            .filter(|n| *n != old && *n != buddy)
            .collect();
        sim.partition(vec![vec![old, buddy], majority.clone()]);
        let commit_before = sim.node(old).raw_node().raft.raft_log.committed;
        let minority_keys: Vec<SimKey> = (0..10)
            .map(|i| sim.propose(old, format!("minority-{i}").into_bytes()))
            .collect();
        sim.run(400);
        assert_eq!(
            sim.node(old).raw_node().raft.raft_log.committed,
            commit_before,
            "minority committed"
        );
        for k in &minority_keys {
            assert!(!matches!(
                sim.outcomes.get(k),
                Some(ProposeOutcome::Applied { .. })
            ));
        }
        // The majority elects a leader and makes progress.
        assert!(sim.run_until(1_000, |s| s.leader().is_some_and(|l| majority.contains(&l))));
        let new = sim.leader().unwrap();
        let k = sim.propose(new, b"majority".to_vec());
        assert!(sim.run_until(500, |s| s.outcomes.contains_key(&k)));
        assert!(matches!(sim.outcomes[&k], ProposeOutcome::Applied { .. }));
        sim.heal();
        assert!(sim.run_until(2_000, |s| s.converged()
            && minority_keys.iter().all(|k| s.outcomes.contains_key(k))));
        for k in &minority_keys {
            assert_eq!(
                sim.outcomes[k],
                ProposeOutcome::Unknown,
                "minority proposal {k:?}"
            );
        }
        sim.check_safety();
        // The minority's uncommitted entries were replaced, never applied.
        let sm = sim.node(old).state_machine();
        assert!(!sm
            .records
            .iter()
            .any(|r| r.payload.starts_with(b"minority")));
    }

    #[test]
    fn isolated_leader_waiters_become_unknown() {
        let seed = sim_seed(5);
        let mut sim = Sim::new(SimConfig::new(3, seed));
        let old = elect(&mut sim);
        assert!(sim.run_until(500, |s| s.converged()));
        sim.isolate(old);
        let keys: Vec<SimKey> = (0..5).map(|i| sim.propose(old, vec![i])).collect();
        // check_quorum makes the isolated leader step down; the others elect a new one.
        assert!(
            sim.run_until(2_000, |s| s.node(old).status().role != Role::Leader
                && s.leader().is_some())
        );
        assert_ne!(sim.leader(), Some(old));
        assert!(sim.run_until(100, |s| keys.iter().all(|k| s.outcomes.contains_key(k))));
        for k in &keys {
            assert_eq!(sim.outcomes[k], ProposeOutcome::Unknown);
        }
        // A non-leader rejects with a hint.
        let k = sim.propose(old, b"x".to_vec());
        assert!(matches!(sim.outcomes[&k], ProposeOutcome::NotLeader { .. }));
        sim.heal();
        assert!(sim.run_until(1_000, |s| s.converged()));
        sim.check_safety();
    }

    #[test]
    fn read_index_is_linearizable_barrier() {
        let seed = sim_seed(11);
        let mut sim = Sim::new(SimConfig::new(3, seed));
        let l = elect(&mut sim);
        let k = sim.propose(l, b"w".to_vec());
        assert!(sim.run_until(500, |s| s.outcomes.contains_key(&k)));
        let ProposeOutcome::Applied { index, .. } = sim.outcomes[&k].clone() else {
            panic!("not applied")
        };
        let follower = sim.live_nodes().into_iter().find(|n| *n != l).unwrap();
        let rl = sim.read(l);
        let rf = sim.read(follower);
        assert!(sim.run_until(500, |s| s.read_outcomes.contains_key(&rl)
            && s.read_outcomes.contains_key(&rf)));
        for r in [rl, rf] {
            let idx = sim.read_outcomes[&r].clone().expect("read ok");
            assert!(idx >= index, "read index {idx} < write index {index}");
            assert!(sim.applied_index(r.0) >= idx);
        }
        // Without a reachable quorum a leader's read cannot be confirmed.
        sim.isolate(l);
        let r = sim.read(l);
        assert!(sim.run_until(2_000, |s| s.read_outcomes.contains_key(&r)));
        assert!(sim.read_outcomes[&r].is_err());
    }

    #[test]
    fn wiped_follower_catches_up_via_snapshot() {
        let seed = sim_seed(9);
        let mut cfg = SimConfig::new(3, seed);
        cfg.consensus.snapshot_threshold_entries = 20;
        cfg.consensus.log_retain_entries = 2;
        let mut sim = Sim::new(cfg);
        let l = elect(&mut sim);
        for i in 0..150u64 {
            let l = sim.leader().unwrap_or(l);
            sim.propose(l, format!("v{i}").into_bytes());
            sim.run(3);
        }
        assert!(sim.run_until(1_000, |s| s.converged()));
        let l = sim.leader().unwrap();
        assert!(
            sim.node(l).store().truncated().0 > 20,
            "leader log not compacted"
        );
        let victim = sim.live_nodes().into_iter().find(|n| *n != l).unwrap();
        sim.wipe(victim);
        assert_eq!(sim.applied_index(victim), 0);
        let ok = sim.run_until(2_000, |s| s.converged());
        if !ok {
            for id in sim.live_nodes() {
                eprintln!(
                    "node {id}: {:?} truncated={:?} last={}",
                    sim.node(id).status(),
                    sim.node(id).store().truncated(),
                    sim.node(id).raw_node().raft.raft_log.last_index()
                );
            }
            let l = sim.leader().unwrap();
            eprintln!(
                "leader {l} progress of {victim}: {:?}",
                sim.node(l).raw_node().raft.prs().get(victim)
            );
        }
        assert!(ok, "wiped follower did not catch up");
        assert!(
            sim.node(victim).state_machine().restores >= 1,
            "no snapshot was installed"
        );
        sim.check_safety();
        let hashes: BTreeSet<u64> = sim
            .live_nodes()
            .iter()
            .map(|id| sim.node(*id).state_machine().hash)
            .collect();
        assert_eq!(hashes.len(), 1);
        // And it keeps replicating afterwards.
        let k = sim.propose(l, b"after".to_vec());
        assert!(sim.run_until(500, |s| s.outcomes.contains_key(&k) && s.converged()));
        sim.check_safety();
    }

    #[test]
    fn snapshot_catch_up_survives_message_loss() {
        let seed = sim_seed(13);
        let mut cfg = SimConfig::new(3, seed);
        cfg.consensus.snapshot_threshold_entries = 10;
        cfg.consensus.log_retain_entries = 0;
        cfg.loss = 0.2;
        let mut sim = Sim::new(cfg);
        elect(&mut sim);
        for i in 0..100u64 {
            if let Some(l) = sim.leader() {
                sim.propose(l, format!("v{i}").into_bytes());
            }
            sim.run(4);
        }
        let l = elect(&mut sim);
        let victim = sim.live_nodes().into_iter().find(|n| *n != l).unwrap();
        sim.wipe(victim);
        assert!(
            sim.run_until(5_000, |s| s.converged()),
            "wiped follower did not catch up under loss"
        );
        sim.check_safety();
    }

    /// Snapshot interval of the log-hold tests.
    const HOLD_TEST_SNAPSHOT_ENTRIES: u64 = 10;

    /// A snapshot every 10 entries, no log kept behind it: a leader and 30 entries, then a
    /// wiped follower the leader is sending a snapshot to, cut off before it gets it. Returns
    /// (sim, leader, follower, snapshot index, the leader's progress of the follower).
    fn snapshot_sent_then_cut_off(
        seed: u64,
        log_hold_bytes_max: u64,
    ) -> (Sim, u64, u64, u64, impl Fn(&Sim) -> Option<raft::Progress>) {
        let mut cfg = SimConfig::new(3, seed);
        cfg.consensus.snapshot_threshold_entries = HOLD_TEST_SNAPSHOT_ENTRIES;
        cfg.consensus.log_retain_entries = 0;
        cfg.consensus.log_hold_bytes_max = log_hold_bytes_max;
        let mut sim = Sim::new(cfg);
        let l = elect(&mut sim);
        propose_each(&mut sim, l, 30);
        assert!(sim.run_until(2_000, |s| s.converged()), "seed={seed}");
        let victim = sim.live_nodes().into_iter().find(|n| *n != l).unwrap();
        sim.wipe(victim);
        let progress = move |s: &Sim| s.node(l).raw_node().raft.prs().get(victim).cloned();
        assert!(
            sim.run_until(2_000, |s| snapshot_pending(s, &progress).is_some()),
            "seed={seed}"
        );
        let at = snapshot_pending(&sim, &progress).unwrap();
        sim.isolate(victim); // it never gets this one
        (sim, l, victim, at, progress)
    }

    /// The snapshot index the leader is sending, if its progress of the peer is in Snapshot.
    fn snapshot_pending(
        s: &Sim,
        progress: &impl Fn(&Sim) -> Option<raft::Progress>,
    ) -> Option<u64> {
        progress(s)
            .filter(|p| p.state == raft::ProgressState::Snapshot)
            .map(|p| p.pending_snapshot)
    }

    /// `n` one-byte proposals on `l`, four steps apart. Then waits (boundedly) for the last one's outcome: with pipelined persistence an entry
    /// can take longer than four steps (the delivery, two syncs and the ack).
    fn propose_each(sim: &mut Sim, l: u64, n: u64) {
        let mut last = None;
        for i in 0..n {
            last = Some(sim.propose(l, vec![i as u8]));
            sim.run(4);
        }
        if let Some(k) = last {
            sim.run_until(200, |s| s.outcomes.contains_key(&k));
        }
    }

    /// A peer sent a snapshot resumes from the log after it once installed, and then from what
    /// it has: the leader keeps that part of the log through its next snapshots (fetching,
    /// installing and replaying a 5 GB ledger outlast many of them) until the peer has caught
    /// up, and lets it go once it passes `log_hold_bytes_max` (a peer that never catches up).
    #[test]
    fn the_log_after_a_snapshot_sent_to_a_peer_is_kept_until_it_has_caught_up() {
        let seed = sim_seed(29);
        let (threshold, bytes_max) = (HOLD_TEST_SNAPSHOT_ENTRIES, 4_096);
        let (mut sim, l, victim, at, progress) = snapshot_sent_then_cut_off(seed, bytes_max);
        let first = |s: &Sim| raft::Storage::first_index(s.node(l).store()).unwrap();
        let held_bytes = |s: &Sim, from: u64| s.node(l).store().log_bytes_after(from);
        propose_each(&mut sim, l, 2 * threshold);
        assert!(sim.applied_index(l) >= at + 2 * threshold, "seed={seed}");
        assert!(
            held_bytes(&sim, at) < bytes_max,
            "seed={seed}: test too small"
        );
        assert!(
            first(&sim) <= at + 1,
            "seed={seed}: log compacted to {} past the snapshot at {at} the peer is waiting for",
            first(&sim)
        );
        // It installs a snapshot, and is cut off again before it has caught up: the log after
        // what it has stays.
        sim.heal();
        assert!(
            sim.run_until(2_000, |s| progress(s).is_some_and(|p| p.matched >= at)),
            "seed={seed}: the peer never installed a snapshot"
        );
        sim.isolate(victim);
        let has = progress(&sim).unwrap().matched;
        propose_each(&mut sim, l, 2 * threshold);
        assert!(sim.applied_index(l) >= has + 2 * threshold, "seed={seed}");
        assert!(
            held_bytes(&sim, has) < bytes_max,
            "seed={seed}: test too small"
        );
        assert!(
            first(&sim) <= has + 1,
            "seed={seed}: log compacted to {} past index {has}, where the catching-up peer is",
            first(&sim)
        );
        // It never comes back: the hold ends once it passes the byte bound (and a snapshot
        // point follows).
        for _ in 0..2_000 {
            if held_bytes(&sim, has) > bytes_max {
                break;
            }
            propose_each(&mut sim, l, 1);
        }
        assert!(held_bytes(&sim, has) > bytes_max, "seed={seed}");
        propose_each(&mut sim, l, threshold + 1);
        assert!(
            first(&sim) > has + 1,
            "seed={seed}: the log is held for ever for a peer that never catches up"
        );
        sim.heal();
        assert!(sim.run_until(5_000, |s| s.converged()), "seed={seed}");
        sim.check_safety();
    }

    /// A peer still installing the snapshot it was sent answers probes from its old log, and
    /// the leader sends it a newer snapshot: the log after the first one must stay (the peer
    /// continues from there once installed), not move to the newer snapshot's index.
    #[test]
    fn a_resent_snapshot_keeps_the_log_after_the_first_one() {
        let seed = sim_seed(31);
        let threshold = HOLD_TEST_SNAPSHOT_ENTRIES;
        let (mut sim, l, victim, at, progress) = snapshot_sent_then_cut_off(seed, 1 << 30);
        propose_each(&mut sim, l, 2 * threshold);
        // Its (empty) log answers a probe: the leader sends the newest snapshot, which is lost.
        sim.heal();
        assert!(
            sim.run_until(2_000, |s| snapshot_pending(s, &progress)
                .is_some_and(|p| p > at)),
            "seed={seed}: no newer snapshot was sent"
        );
        sim.isolate(victim);
        propose_each(&mut sim, l, 2 * threshold);
        let first = raft::Storage::first_index(sim.node(l).store()).unwrap();
        assert!(
            first <= at + 1,
            "seed={seed}: log compacted to {first} past the first snapshot sent, at {at}"
        );
        sim.heal();
        assert!(sim.run_until(5_000, |s| s.converged()), "seed={seed}");
        sim.check_safety();
    }

    /// A joining learner installs a snapshot and falls behind again, then the leader changes:
    /// the new leader — which never sent it anything — continues it from the log, because every
    /// member keeps the log for a learner until it is promoted. Before, only the leader that sent
    /// the snapshot held it, and a new leader had to send a second whole snapshot.
    #[test]
    fn a_new_leader_continues_a_joining_learner_from_the_log() {
        let seed = sim_seed(37);
        let threshold = HOLD_TEST_SNAPSHOT_ENTRIES;
        let mut cfg = SimConfig::new(3, seed);
        cfg.consensus.snapshot_threshold_entries = threshold;
        cfg.consensus.log_retain_entries = 0;
        // Kept a learner for the whole test (promotion would end the hold by design).
        cfg.consensus.promote_lag_entries = 0;
        let mut sim = Sim::new(cfg);
        let l = elect(&mut sim);
        propose_each(&mut sim, l, 3 * threshold);
        assert!(sim.run_until(2_000, |s| s.converged()), "seed={seed}");
        sim.add_process(4);
        let k = sim.propose_membership(l, MembershipChange::AddLearner(4, String::new()));
        assert!(
            sim.run_until(2_000, |s| s.outcomes.contains_key(&k)
                && s.node(4).state_machine().restores == 1),
            "seed={seed}: the learner never installed a snapshot"
        );
        sim.isolate(4);
        let has = sim.applied_index(4);
        propose_each(&mut sim, l, 3 * threshold);
        for id in [1, 2, 3] {
            let first = raft::Storage::first_index(sim.node(id).store()).unwrap();
            assert!(
                first <= has + 1,
                "seed={seed}: node {id} compacted its log to {first}, past the learner at {has}"
            );
        }
        // The leader is cut off and another elected; the learner comes back.
        sim.partition(vec![
            vec![l],
            [1, 2, 3, 4].into_iter().filter(|n| *n != l).collect(),
        ]);
        assert!(
            sim.run_until(2_000, |s| s.leader().is_some_and(|n| n != l)),
            "seed={seed}: no new leader"
        );
        let l2 = sim.leader().unwrap();
        propose_each(&mut sim, l2, 2);
        assert!(
            sim.run_until(2_000, |s| s.applied_index(4) >= s.applied_index(l2)),
            "seed={seed}: the learner did not catch up"
        );
        assert_eq!(
            sim.node(4).state_machine().restores,
            1,
            "seed={seed}: the new leader sent a second snapshot"
        );
        sim.heal();
        assert!(sim.run_until(5_000, |s| s.converged()), "seed={seed}");
        sim.check_safety();
    }

    #[test]
    fn add_and_remove_nodes() {
        let seed = sim_seed(17);
        let mut sim = Sim::new(SimConfig::new(3, seed));
        let l = elect(&mut sim);
        for i in 0..10u8 {
            sim.propose(l, vec![i]);
        }
        assert!(sim.run_until(500, |s| s.converged()));
        sim.add_process(4);
        let k = sim.propose_membership(l, MembershipChange::AddVoter(4));
        assert!(sim.run_until(1_000, |s| s.outcomes.contains_key(&k)));
        assert!(
            matches!(sim.outcomes[&k], ProposeOutcome::Applied { .. }),
            "{:?}",
            sim.outcomes[&k]
        );
        assert!(sim.run_until(1_000, |s| s.converged()));
        for id in sim.live_nodes() {
            assert_eq!(sim.node(id).status().voters, vec![1, 2, 3, 4], "node {id}");
            assert_eq!(
                sim.node(id).store().conf_state().voters.len(),
                4,
                "node {id} conf state not persisted"
            );
        }
        // A second change while none is pending is accepted; remove a follower.
        let l = sim.leader().unwrap();
        let victim = [1, 2, 3].into_iter().find(|n| *n != l).unwrap();
        let k = sim.propose_membership(l, MembershipChange::Remove(victim));
        assert!(sim.run_until(1_000, |s| s.outcomes.contains_key(&k)));
        assert!(matches!(sim.outcomes[&k], ProposeOutcome::Applied { .. }));
        sim.crash(victim);
        let l = elect(&mut sim);
        let k = sim.propose(l, b"after-remove".to_vec());
        assert!(sim.run_until(1_000, |s| s.outcomes.contains_key(&k) && s.converged()));
        for id in sim.live_nodes() {
            let expect: Vec<u64> = [1, 2, 3, 4].into_iter().filter(|n| *n != victim).collect();
            assert_eq!(sim.node(id).status().voters, expect);
        }
        sim.check_safety();
        // Restarting a node keeps its membership view (conf state persisted).
        let f = sim.live_nodes().into_iter().find(|n| *n != l).unwrap();
        sim.crash(f);
        sim.restart(f);
        assert_eq!(sim.node(f).status().voters.len(), 3);
        assert!(sim.run_until(1_000, |s| s.converged()));
        // Leadership transfer.
        let l = sim.leader().unwrap();
        let target = sim.live_nodes().into_iter().find(|n| *n != l).unwrap();
        sim.node_mut(l).transfer_leader(target);
        assert!(
            sim.run_until(1_000, |s| s.leader() == Some(target)),
            "transfer failed"
        );
        sim.check_safety();
    }

    /// A converged 3-node simulation with `tweak` applied to its config: (sim, leader, last index).
    fn converged(seed: u64, tweak: impl FnOnce(&mut Config)) -> (Sim, u64, u64) {
        let mut cfg = SimConfig::new(3, seed);
        tweak(&mut cfg.consensus);
        let mut sim = Sim::new(cfg);
        let l = elect(&mut sim);
        assert!(sim.run_until(500, |s| s.converged()));
        let before = sim.node(l).raw_node().raft.raft_log.last_index();
        (sim, l, before)
    }

    #[test]
    fn group_commit_packs_proposals_and_respects_bounds() {
        let (mut sim, l, before) = converged(sim_seed(19), |c| c.max_proposals_per_entry = 4);
        let keys: Vec<SimKey> = (0..10u8).map(|i| sim.propose(l, vec![i; 10])).collect();
        // 10 proposals, at most 4 per entry => 3 entries.
        let idx = entry_of_each(&mut sim, l, before, &keys, 3);
        assert_eq!(idx, vec![1, 1, 1, 1, 2, 2, 2, 2, 3, 3]);
        // Oversized payloads are rejected up front.
        let max = sim.cfg.consensus.max_entry_bytes;
        let k = sim.propose(l, vec![0; max]);
        assert_too_large(&sim, k);
        sim.check_safety();
    }

    /// Packs the queued proposals (one step), checks they made `entries` entries, runs until all
    /// are applied and returns each one's entry, counted from 1 after `before`.
    fn entry_of_each(
        sim: &mut Sim,
        l: u64,
        before: u64,
        keys: &[SimKey],
        entries: u64,
    ) -> Vec<u64> {
        sim.step().unwrap();
        assert_eq!(
            sim.node(l).raw_node().raft.raft_log.last_index(),
            before + entries
        );
        assert!(sim.run_until(500, |s| keys.iter().all(|k| s.outcomes.contains_key(k))));
        keys.iter()
            .map(|k| match &sim.outcomes[k] {
                ProposeOutcome::Applied { index, .. } => *index - before,
                o => panic!("{o:?}"),
            })
            .collect()
    }

    fn assert_too_large(sim: &Sim, k: SimKey) {
        assert_eq!(
            sim.outcomes[&k],
            ProposeOutcome::Rejected {
                reason: crate::driver::RejectReason::TooLarge
            }
        );
    }

    /// An entry never carries more weight (ledger commands) than `max_weight_per_entry`, and a
    /// single heavier proposal is refused before it reaches the log.
    #[test]
    fn group_commit_respects_the_weight_limit() {
        let (mut sim, l, before) = converged(sim_seed(29), |c| c.max_weight_per_entry = 10);
        // Weights 6, 4, 5, 5, 1: entries {6, 4}, {5, 5}, {1}.
        let keys: Vec<SimKey> = [6u64, 4, 5, 5, 1]
            .iter()
            .map(|w| sim.propose_weighted(l, vec![*w as u8; 8], *w))
            .collect();
        let idx = entry_of_each(&mut sim, l, before, &keys, 3);
        assert_eq!(idx, vec![1, 1, 2, 2, 3]);
        let k = sim.propose_weighted(l, vec![0; 8], 11);
        assert_too_large(&sim, k);
        sim.check_safety();
    }

    #[test]
    fn garbage_messages_are_dropped() {
        let seed = sim_seed(23);
        let mut sim = Sim::new(SimConfig::new(3, seed));
        let l = elect(&mut sim);
        let mut rng = StdRng::seed_from_u64(seed);
        for _ in 0..200 {
            let len = rng.gen_range(0..64);
            let junk: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            sim.node_mut(l).step(&junk).unwrap();
        }
        let k = sim.propose(l, b"still-alive".to_vec());
        assert!(sim.run_until(500, |s| s.outcomes.contains_key(&k)));
        assert!(matches!(sim.outcomes[&k], ProposeOutcome::Applied { .. }));
    }
}
