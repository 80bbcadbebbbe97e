//! `suanpan sim`: the deterministic cluster simulator with the real ledger in the loop.
//!
//! Each seed runs N replicas — the real consensus driver ([`consensus::sim::Sim`]) and the real
//! ledger through the api crate's bridge over a store that loses what was not written back
//! ([`machine::SimLedger`]) — under a bank workload from simulated clients that retry the way the
//! real client does (same ids after an unknown outcome). Swarm testing: every seed picks its own
//! fault mix (message loss, duplication, delay/reordering, symmetric and one-way partitions,
//! crashes that drop unwritten data, clock skew and jumps, leader transfers, small snapshot
//! thresholds so lagging nodes catch up from snapshots, a node whose disk is lost replaced through
//! remove + add-as-learner + promote). A safety phase, then heal and a liveness phase.
//!
//! Checkers, all from the recorded history (every committed entry as each replica applied it):
//! replicas applied the same entry and reached the same digest at every index; money conserved
//! after every apply (in the machine); replaying the history through a fresh ledger reproduces
//! every acknowledged reply and every digest; an independent model of posted balances, fed
//! each command id's first outcome only, equals every replica's balances (an acknowledged command
//! lost or a command applied twice shows here); every acknowledged command is known to the final
//! ledger with the acknowledged result; after healing, every client's request completes and the
//! replicas converge. Everything comes from the seed: a failing seed prints the command that
//! replays it bit for bit.

pub mod machine;

use std::collections::{BTreeMap, BTreeSet};
use std::panic::{catch_unwind, AssertUnwindSafe};

use api::state_machine::{decode_proposal, encode_proposal, LedgerStateMachine};
use consensus::sim::{Sim, SimConfig, SimKey};
use consensus::{CommittedEntry, MembershipChange, Proposal, ProposeOutcome, StateMachine};
use ledger::{
    AccountKind, Command, CommandResult, CreateAccount, CreateTransfer, Id, LegSpec, MemStore,
    PostPending, VoidPending,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rust_decimal::Decimal;
use serde::Serialize;

use machine::{AppliedEntry, SimLedger};

/// A deliberately injected bug, to show the checkers catch it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bug {
    /// Log appends are acknowledged before they are durable (no fsync).
    UnsyncedAppends,
}

#[derive(Debug, Clone)]
pub struct SwarmConfig {
    /// Steps of the safety phase (one step = 1 ms of simulated time; a tick every 4).
    pub safety_steps: u64,
    /// Bound on each wait of the liveness phase.
    pub liveness_steps_max: u64,
    /// 0: each seed picks 3 or 5.
    pub nodes: u64,
    pub bug: Option<Bug>,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        SwarmConfig {
            safety_steps: 4_000,
            liveness_steps_max: 20_000,
            nodes: 0,
            bug: None,
        }
    }
}

/// Faults injected, by type.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Faults {
    pub crashes: u64,
    pub restarts: u64,
    pub partitions: u64,
    pub one_way_cuts: u64,
    pub clock_jumps: u64,
    pub leader_transfers: u64,
    pub disk_losses: u64,
    pub messages_dropped: u64,
    pub messages_duplicated: u64,
}

impl Faults {
    fn add(&mut self, o: &Faults) {
        self.crashes += o.crashes;
        self.restarts += o.restarts;
        self.partitions += o.partitions;
        self.one_way_cuts += o.one_way_cuts;
        self.clock_jumps += o.clock_jumps;
        self.leader_transfers += o.leader_transfers;
        self.disk_losses += o.disk_losses;
        self.messages_dropped += o.messages_dropped;
        self.messages_duplicated += o.messages_duplicated;
    }
}

/// What a run did and found (per seed, and summed over seeds).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub faults: Faults,
    pub leader_changes: u64,
    pub snapshots_installed: u64,
    pub entries: u64,
    /// Commands whose request was acknowledged (applied, result returned to the client).
    pub commands_acknowledged: u64,
    /// Of those, the ones the ledger refused (insufficient funds, conflicts, expired holds...).
    pub commands_refused: u64,
    /// Requests refused before the log (not the leader, overloaded, stopped): retried.
    pub requests_rejected: u64,
    /// Requests whose outcome was unknown at least once (leader change, crash, timeout): retried
    /// with the same ids.
    pub requests_unknown: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub divergences: u64,
    pub liveness_failures: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.faults.add(&o.faults);
        self.leader_changes += o.leader_changes;
        self.snapshots_installed += o.snapshots_installed;
        self.entries += o.entries;
        self.commands_acknowledged += o.commands_acknowledged;
        self.commands_refused += o.commands_refused;
        self.requests_rejected += o.requests_rejected;
        self.requests_unknown += o.requests_unknown;
        self.lost += o.lost;
        self.duplicated += o.duplicated;
        self.divergences += o.divergences;
        self.liveness_failures += o.liveness_failures;
    }
}

/// What one seed did and found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SeedReport {
    pub seed: u64,
    pub nodes: u64,
    /// The seed's fault mix (swarm testing).
    pub mix: String,
    #[serde(flatten)]
    pub counts: Counts,
    /// The first failure, if any.
    pub failure: Option<String>,
}

mod check;
mod cli;
mod faults;
mod workload;

pub use cli::{run_cli, SimArgs};
use workload::*;

/// A request in flight: its commands travel as one proposal; retried unchanged.
struct Request {
    commands: Vec<Command>,
    payload: Vec<u8>,
    attempt: Option<(SimKey, u64)>,
    retry_at: u64,
    unknown: bool,
}

struct Client {
    n: u128,
    next_id: u64,
    request: Option<Request>,
    /// Commands this client sent, for exact retries and conflicting reuses.
    sent: Vec<Command>,
    /// Holds it created: (id, amount).
    holds: Vec<(u128, i128)>,
    idle_until: u64,
}

impl Client {
    fn id(&mut self) -> u128 {
        self.next_id += 1;
        (self.n << 64) | self.next_id as u128
    }
}

/// A node whose disk was lost, being replaced (remove, add the new one as a learner, promote).
enum Replace {
    Remove { old: u64, new: u64 },
    AddLearner { new: u64 },
    Promote { new: u64 },
}

struct Mix {
    crash_per_step: f64,
    partition_per_step: f64,
    clock_per_step: f64,
    transfer_per_step: f64,
    disk_loss: bool,
}

struct Swarm {
    cfg: SwarmConfig,
    sim: Sim<SimLedger>,
    rng: StdRng,
    mix: Mix,
    wallets: u128,
    clients: Vec<Client>,
    /// Every proposal attempt: key → the request's commands (outcomes can arrive late).
    attempts: BTreeMap<SimKey, Vec<Command>>,
    /// Acknowledged attempts: key → (index, result bytes).
    acks: Vec<(SimKey, u64, Vec<u8>)>,
    history: BTreeMap<u64, (u64, AppliedEntry)>,
    restart_at: BTreeMap<u64, u64>,
    heal_at: Option<u64>,
    replace: Option<(Replace, Option<(SimKey, u64)>)>,
    next_node_id: u64,
    setup_done: bool,
    report: SeedReport,
}

/// Runs one seed; a panic anywhere (a ledger assertion, a driver that cannot restart) is a
/// failure of that seed.
pub fn run_seed(seed: u64, cfg: &SwarmConfig) -> SeedReport {
    let mut s = Swarm::new(seed, cfg.clone());
    let outcome = catch_unwind(AssertUnwindSafe(|| s.run()));
    let failure = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(failure)) => Some(failure),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "panic".into());
            Some(format!("panic: {msg}"))
        }
    };
    SeedReport {
        failure,
        ..s.report
    }
}

impl Swarm {
    fn new(seed: u64, cfg: SwarmConfig) -> Swarm {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5157_4152_4d00_0000);
        let nodes = if cfg.nodes == 0 {
            if rng.gen_bool(0.7) {
                3
            } else {
                5
            }
        } else {
            cfg.nodes
        };
        let mut sc = SimConfig::new(nodes, seed);
        // Swarm testing: each fault kind is on or off per seed, at its own rate.
        let on = |rng: &mut StdRng| rng.gen_bool(0.6);
        sc.loss = if on(&mut rng) {
            rng.gen_range(0.0..0.3)
        } else {
            0.0
        };
        sc.duplicate = if on(&mut rng) {
            rng.gen_range(0.0..0.1)
        } else {
            0.0
        };
        sc.max_delay_steps = rng.gen_range(1..=8);
        sc.writeback = [0.01, 0.05, 0.3][rng.gen_range(0..3)];
        sc.unsynced_appends = cfg.bug == Some(Bug::UnsyncedAppends);
        sc.consensus.snapshot_threshold_entries = [30, 100, 400][rng.gen_range(0..3)];
        sc.consensus.log_retain_entries = [2, 10, 50][rng.gen_range(0..3)];
        // Mostly the node's default (the log synced in the background), sometimes inline.
        sc.consensus.log_sync_pipelined = rng.gen_bool(0.75);
        // The same for applying (off the Raft thread by default).
        sc.consensus.apply_pipelined = rng.gen_bool(0.75);
        let mix = Mix {
            crash_per_step: if on(&mut rng) {
                rng.gen_range(1.0..6.0) / 1_000.0
            } else {
                0.0
            },
            partition_per_step: if on(&mut rng) {
                rng.gen_range(0.5..3.0) / 1_000.0
            } else {
                0.0
            },
            clock_per_step: if on(&mut rng) { 1.0 / 800.0 } else { 0.0 },
            transfer_per_step: if on(&mut rng) { 1.0 / 700.0 } else { 0.0 },
            disk_loss: on(&mut rng),
        };
        let report = SeedReport {
            seed,
            nodes,
            mix: format!(
                "loss={:.2} dup={:.2} delay<={} writeback={} snapshot_every={} crash/kstep={:.1} \
                 partition/kstep={:.1} clock={} leader_transfer={} disk_loss={} \
                 log_sync_pipelined={} apply_pipelined={}",
                sc.loss,
                sc.duplicate,
                sc.max_delay_steps,
                sc.writeback,
                sc.consensus.snapshot_threshold_entries,
                mix.crash_per_step * 1_000.0,
                mix.partition_per_step * 1_000.0,
                mix.clock_per_step > 0.0,
                mix.transfer_per_step > 0.0,
                mix.disk_loss,
                sc.consensus.log_sync_pipelined,
                sc.consensus.apply_pipelined
            ),
            ..SeedReport::default()
        };
        let wallets = rng.gen_range(4..=10);
        let clients = (0..rng.gen_range(2..=6))
            .map(|n| Client {
                n: n + 1,
                next_id: 0,
                request: None,
                sent: Vec::new(),
                holds: Vec::new(),
                idle_until: 0,
            })
            .collect();
        Swarm {
            cfg,
            sim: Sim::with_machines(sc),
            rng,
            mix,
            wallets,
            clients,
            attempts: BTreeMap::new(),
            acks: Vec::new(),
            history: BTreeMap::new(),
            restart_at: BTreeMap::new(),
            heal_at: None,
            replace: None,
            next_node_id: 100,
            setup_done: false,
            report,
        }
    }

    fn run(&mut self) -> Result<(), String> {
        // Safety phase: faults on.
        for _ in 0..self.cfg.safety_steps {
            self.inject_faults();
            self.drive_clients(true);
            self.drive_replace();
            self.step()?;
        }
        // Heal: network whole, clocks right, every node up.
        self.sim.heal();
        self.sim.set_loss(0.0);
        self.sim.cfg.duplicate = 0.0;
        for id in self.sim.live_nodes() {
            self.sim.set_clock_offset(id, 0);
        }
        for id in self.sim.down_nodes() {
            self.sim.restart(id);
            self.report.counts.faults.restarts += 1;
        }
        self.restart_at.clear();
        let bound = self.cfg.liveness_steps_max;
        // Liveness: outstanding requests and any replacement complete...
        if !self.run_until(bound, |s| {
            s.replace.is_none() && s.clients.iter().all(|c| c.request.is_none()) && s.setup_done
        })? {
            return self.liveness_failure("outstanding requests did not complete after healing");
        }
        // ...every client's next request completes...
        for i in 0..self.clients.len() {
            let req = self.new_request(i);
            self.clients[i].request = Some(req);
        }
        if !self.run_until(bound, |s| s.clients.iter().all(|c| c.request.is_none()))? {
            return self.liveness_failure("a request after healing did not complete");
        }
        // ...and the replicas converge on one state.
        if !self.run_until(bound, |s| s.sim.converged())? {
            return self.liveness_failure("replicas did not converge after healing");
        }
        self.check_final()
    }

    fn liveness_failure(&mut self, what: &str) -> Result<(), String> {
        self.report.counts.liveness_failures += 1;
        Err(format!("liveness: {what}; {}", self.describe()))
    }

    /// The cluster's state, for a failure message.
    fn describe(&self) -> String {
        let mut out = format!("step {}", self.sim.now_step());
        for id in self.sim.live_nodes() {
            let s = self.sim.node(id).status();
            let raft = &self.sim.node(id).raw_node().raft;
            out += &format!(
                "; node {id}: {:?} term {} vote {} leader {:?} last {}/{} commit {} applied {} \
                 voters {:?} learners {:?} election {}/{}",
                s.role,
                s.term,
                raft.vote,
                s.leader_id,
                raft.raft_log.last_index(),
                raft.raft_log.last_term(),
                s.commit_index,
                s.applied_index,
                s.voters,
                s.learners,
                raft.election_elapsed,
                raft.randomized_election_timeout()
            );
        }
        let waiting: Vec<String> = self
            .clients
            .iter()
            .filter_map(|c| {
                c.request
                    .as_ref()
                    .map(|r| format!("client {} attempt {:?}", c.n, r.attempt))
            })
            .collect();
        out += &format!("; setup_done {}; waiting {waiting:?}", self.setup_done);
        if self.replace.is_some() {
            out += "; a replacement is in progress";
        }
        out
    }

    fn run_until(&mut self, max_steps: u64, pred: impl Fn(&Swarm) -> bool) -> Result<bool, String> {
        for _ in 0..max_steps {
            if pred(self) {
                return Ok(true);
            }
            self.drive_clients(false);
            self.drive_replace();
            self.step()?;
        }
        Ok(pred(self))
    }

    fn step(&mut self) -> Result<(), String> {
        self.sim
            .step()
            .map_err(|e| format!("step {}: a node failed: {e}", self.sim.now_step()))?;
        for id in self.sim.live_nodes() {
            let m = self.sim.node_mut(id).state_machine_mut();
            self.report.counts.snapshots_installed += m.take_restores();
            for e in m.take_applied() {
                self.record(id, e)?;
            }
        }
        let stats = &self.sim.stats;
        self.report.counts.leader_changes = stats.leader_changes;
        self.report.counts.faults.messages_dropped = stats.messages_dropped;
        self.report.counts.faults.messages_duplicated = stats.messages_duplicated;
        self.collect_outcomes();
        Ok(())
    }

    /// Every replica must apply the same entry and reach the same digest at each index.
    fn record(&mut self, node: u64, e: AppliedEntry) -> Result<(), String> {
        match self.history.get(&e.index) {
            None => {
                self.history.insert(e.index, (node, e));
                Ok(())
            }
            Some((first, h)) if *h != e => {
                self.report.counts.divergences += 1;
                let what = if h.proposals != e.proposals || h.timestamp_ns != e.timestamp_ns {
                    "applied another entry"
                } else {
                    "reached another digest"
                };
                Err(format!(
                    "divergence at index {}: node {node} {what} than node {first}",
                    e.index
                ))
            }
            Some(_) => Ok(()),
        }
    }
}

/// Runs seeds `first..first+count` (or until `time_limit_s`), calling `each` per seed.
pub fn run_seeds(
    first: u64,
    count: u64,
    cfg: &SwarmConfig,
    time_limit_s: Option<u64>,
    mut each: impl FnMut(&SeedReport),
) -> Vec<SeedReport> {
    let start = std::time::Instant::now();
    let mut out = Vec::new();
    for seed in first..first.saturating_add(count) {
        if time_limit_s.is_some_and(|t| start.elapsed().as_secs() >= t) {
            break;
        }
        let r = run_seed(seed, cfg);
        each(&r);
        out.push(r);
    }
    out
}

/// Totals over seeds (docs/reliability.md reports these).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub seeds: u64,
    pub failed_seeds: Vec<u64>,
    #[serde(flatten)]
    pub counts: Counts,
    pub nodes_3: u64,
    pub nodes_5: u64,
}

pub fn totals(reports: &[SeedReport]) -> Totals {
    let mut t = Totals::default();
    for r in reports {
        t.seeds += 1;
        if r.failure.is_some() {
            t.failed_seeds.push(r.seed);
        }
        t.counts.add(&r.counts);
        if r.nodes == 5 {
            t.nodes_5 += 1;
        } else {
            t.nodes_3 += 1;
        }
    }
    t
}

/// The command that replays one seed bit for bit.
pub fn replay_command(seed: u64, cfg: &SwarmConfig) -> String {
    let mut s = format!("suanpan sim --seed {seed}");
    if cfg.safety_steps != SwarmConfig::default().safety_steps {
        s += &format!(" --steps {}", cfg.safety_steps);
    }
    if cfg.nodes != 0 {
        s += &format!(" --nodes {}", cfg.nodes);
    }
    if let Some(Bug::UnsyncedAppends) = cfg.bug {
        s += " --bug unsynced-appends";
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeds every run checks (a regression list), then fresh seeds for a bounded time; with
    /// SUANPAN_SOAK=1 the fresh run is longer. Every failing seed is printed with its replay.
    #[test]
    fn fixed_and_fresh_seeds_lose_nothing() {
        std::panic::set_hook(Box::new(|_| {}));
        let cfg = SwarmConfig::default();
        let check = |reports: &[SeedReport]| {
            let failed: Vec<String> = reports
                .iter()
                .filter_map(|r| {
                    r.failure.as_ref().map(|f| {
                        format!(
                            "seed {}: {f} (replay: {})",
                            r.seed,
                            replay_command(r.seed, &cfg)
                        )
                    })
                })
                .collect();
            assert!(failed.is_empty(), "{failed:#?}");
        };
        let fixed = run_seeds(1, 60, &cfg, None, |_| {});
        check(&fixed);
        let t = totals(&fixed);
        // The fixed list does exercise what it claims to.
        assert!(t.counts.faults.crashes > 50, "{t:?}");
        assert!(t.counts.faults.disk_losses > 5, "{t:?}");
        assert!(t.counts.snapshots_installed > 20, "{t:?}");
        assert!(t.counts.leader_changes > 100, "{t:?}");
        assert!(t.counts.requests_unknown > 100, "{t:?}");
        assert!(t.nodes_5 > 5, "{t:?}");
        let soak = std::env::var("SUANPAN_SOAK").is_ok_and(|v| v == "1");
        let first = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(7, |d| d.as_nanos() as u64);
        let limit_s = if soak { 600 } else { 15 };
        let fresh = run_seeds(first, u64::MAX, &cfg, Some(limit_s), |_| {});
        eprintln!(
            "fresh seeds {first}..{} in {limit_s} s",
            first + fresh.len() as u64
        );
        check(&fresh);
    }

    /// The same seed gives the same run, report for report.
    #[test]
    fn a_seed_replays_bit_for_bit() {
        let cfg = SwarmConfig::default();
        for seed in [3, 9, 4242] {
            let a = serde_json::to_string(&run_seed(seed, &cfg)).unwrap();
            let b = serde_json::to_string(&run_seed(seed, &cfg)).unwrap();
            assert_eq!(a, b, "seed {seed}");
        }
    }

    /// A store that acknowledges appends before they are durable is caught: replicas diverge
    /// or refuse to restart with a ledger ahead of their durable log.
    #[test]
    fn the_injected_bug_is_caught() {
        std::panic::set_hook(Box::new(|_| {}));
        let cfg = SwarmConfig {
            bug: Some(Bug::UnsyncedAppends),
            ..SwarmConfig::default()
        };
        let reports = run_seeds(1, 40, &cfg, None, |_| {});
        let failed = reports.iter().filter(|r| r.failure.is_some()).count();
        assert!(failed >= 5, "only {failed} of 40 seeds caught the bug");
    }

    /// The final checks can fail: an acknowledgement the history does not hold, or a reply that
    /// is not the reference's, is reported.
    #[test]
    fn the_checkers_find_a_forged_acknowledgement() {
        let cfg = SwarmConfig::default();
        let mut s = Swarm::new(5, cfg.clone());
        s.run().expect("seed 5 passes");
        let (key, index, result) = s.acks[0].clone();
        s.acks.push(((key.0, key.1 ^ 1), index, result.clone()));
        let e = s.check_final().unwrap_err();
        assert!(e.contains("is not there"), "{e}");
        let mut s = Swarm::new(5, cfg);
        s.run().expect("seed 5 passes");
        let (key, index, mut result) = s.acks[0].clone();
        result.push(0);
        s.acks.push((key, index, result));
        let e = s.check_final().unwrap_err();
        assert!(e.contains("is not the reference's"), "{e}");
    }
}
