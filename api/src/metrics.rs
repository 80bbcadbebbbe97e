//! Prometheus metrics of one node, served as text at `GET /metrics` on `--metrics-listen`.
//!
//! Event metrics are counted where the event happens: commands by kind and result and the apply
//! time per batch on the Raft thread (`LedgerStateMachine`), the time from proposal to answer in
//! `NodeContext::propose`, every refused request (status code and `x-suanpan-error` reason) in
//! the request layer. State metrics — Raft term, role, indexes, log size, snapshots, peer lag,
//! clock clamps, divergences — are read from the Raft node's status at each scrape. One registry
//! per node, so several nodes in one process (tests) keep their figures apart.

use std::sync::Arc;

use parking_lot::Mutex;
use prometheus::{
    Counter, CounterVec, Encoder, Gauge, Histogram, HistogramOpts, IntCounter, IntCounterVec,
    IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Latency buckets in seconds: 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Counters read from the Raft status as totals; the registry's counters move by the difference.
#[derive(Default)]
struct Seen {
    snapshots_taken: u64,
    snapshots_taken_ms: u64,
    snapshots_installed: u64,
    snapshots_installed_ms: u64,
    clock_clamps: u64,
    view_reloads: u64,
    log_syncs: u64,
    log_sync_us: u64,
}

pub struct Metrics {
    registry: Registry,
    commands: IntCounterVec,
    apply_seconds: Histogram,
    commit_seconds: Histogram,
    rejected: IntCounterVec,
    term: IntGauge,
    role: IntGaugeVec,
    commit_index: IntGauge,
    applied_index: IntGauge,
    log_first_index: IntGauge,
    log_last_index: IntGauge,
    log_entries: IntGauge,
    snapshots: IntCounterVec,
    snapshot_seconds: CounterVec,
    peer_lag: IntGaugeVec,
    clock_clamps: IntCounter,
    clock_ahead_seconds: Gauge,
    log_syncs: IntCounter,
    log_sync_seconds: Counter,
    divergences: IntGauge,
    view_reloads: IntCounter,
    up: Counter,
    seen: Mutex<Seen>,
}

fn reg<C: prometheus::core::Collector + Clone + 'static>(r: &Registry, c: C) -> C {
    r.register(Box::new(c.clone()))
        .expect("metric names are unique and valid");
    c
}

impl Metrics {
    pub fn new(node_id: u64) -> Arc<Metrics> {
        let r = Registry::new_custom(
            Some("suanpan".into()),
            Some([("node".to_string(), node_id.to_string())].into()),
        )
        .expect("valid registry");
        let opts = |n: &str, h: &str| Opts::new(n, h);
        let hist = |n: &str, h: &str| {
            Histogram::with_opts(HistogramOpts::new(n, h).buckets(LATENCY_BUCKETS.to_vec()))
                .expect("valid histogram")
        };
        Arc::new(Metrics {
            commands: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "commands_total",
                        "Commands applied, by kind and result code",
                    ),
                    &["kind", "result"],
                )
                .expect("valid"),
            ),
            apply_seconds: reg(
                &r,
                hist(
                    "apply_batch_seconds",
                    "Time to apply one committed batch to the ledger",
                ),
            ),
            commit_seconds: reg(
                &r,
                hist(
                    "submit_commit_seconds",
                    "Time from proposing a client batch to its applied results (this node)",
                ),
            ),
            rejected: reg(
                &r,
                IntCounterVec::new(
                    opts(
                        "rejected_requests_total",
                        "Calls answered with an error status, by gRPC code and reason",
                    ),
                    &["code", "reason"],
                )
                .expect("valid"),
            ),
            term: reg(
                &r,
                IntGauge::with_opts(opts("raft_term", "Raft term")).expect("valid"),
            ),
            role: reg(
                &r,
                IntGaugeVec::new(opts("raft_role", "1 for this node's Raft role"), &["role"])
                    .expect("valid"),
            ),
            commit_index: reg(
                &r,
                IntGauge::with_opts(opts("raft_commit_index", "Highest committed log index"))
                    .expect("valid"),
            ),
            applied_index: reg(
                &r,
                IntGauge::with_opts(opts("raft_applied_index", "Highest applied log index"))
                    .expect("valid"),
            ),
            log_first_index: reg(
                &r,
                IntGauge::with_opts(opts("raft_log_first_index", "First index in the log"))
                    .expect("valid"),
            ),
            log_last_index: reg(
                &r,
                IntGauge::with_opts(opts("raft_log_last_index", "Last index in the log"))
                    .expect("valid"),
            ),
            log_entries: reg(
                &r,
                IntGauge::with_opts(opts("raft_log_entries", "Entries held in the log"))
                    .expect("valid"),
            ),
            snapshots: reg(
                &r,
                IntCounterVec::new(
                    opts("snapshots_total", "Snapshots taken and installed"),
                    &["kind"],
                )
                .expect("valid"),
            ),
            snapshot_seconds: reg(
                &r,
                CounterVec::new(
                    opts(
                        "snapshot_seconds_total",
                        "Time spent taking and installing snapshots",
                    ),
                    &["kind"],
                )
                .expect("valid"),
            ),
            peer_lag: reg(
                &r,
                IntGaugeVec::new(
                    opts(
                        "raft_peer_lag_entries",
                        "On the leader: commit index minus each member's matched index",
                    ),
                    &["peer"],
                )
                .expect("valid"),
            ),
            clock_clamps: reg(
                &r,
                IntCounter::with_opts(opts(
                    "clock_clamps_total",
                    "Entries stamped earlier than this node's wall clock (its clock ran ahead)",
                ))
                .expect("valid"),
            ),
            clock_ahead_seconds: reg(
                &r,
                Gauge::with_opts(opts(
                    "clock_ahead_seconds",
                    "How far the wall clock ran ahead of log time at the last clamp (0: none)",
                ))
                .expect("valid"),
            ),
            log_syncs: reg(
                &r,
                IntCounter::with_opts(opts(
                    "raft_log_syncs_total",
                    "Fsyncs of the Raft log by the log-sync thread (pipelined persistence)",
                ))
                .expect("valid"),
            ),
            log_sync_seconds: reg(
                &r,
                Counter::with_opts(opts(
                    "raft_log_sync_seconds_total",
                    "Time those fsyncs took (rate(seconds)/rate(total) = mean fsync time)",
                ))
                .expect("valid"),
            ),
            divergences: reg(
                &r,
                IntGauge::with_opts(opts(
                    "divergences",
                    "Peers whose digest differed from this node's at the same index",
                ))
                .expect("valid"),
            ),
            view_reloads: reg(
                &r,
                IntCounter::with_opts(opts(
                    "read_view_reloads_total",
                    "Times the read view was reloaded from storage",
                ))
                .expect("valid"),
            ),
            up: reg(
                &r,
                Counter::with_opts(opts("scrapes_total", "Scrapes of this endpoint"))
                    .expect("valid"),
            ),
            seen: Mutex::new(Seen::default()),
            registry: r,
        })
    }

    /// One applied batch: its apply time and each command's kind and result.
    pub fn applied<'a>(
        &self,
        seconds: f64,
        outcomes: impl Iterator<Item = (&'static str, &'a ledger::CommandResult)>,
    ) {
        use ledger::StableEnum;
        self.apply_seconds.observe(seconds);
        // Batches are mostly one kind and one result: count runs, not every command.
        let mut run: Option<((&str, &str), u64)> = None;
        for (kind, r) in outcomes {
            let key = (kind, r.code.name());
            match &mut run {
                Some((k, n)) if *k == key => *n += 1,
                _ => {
                    if let Some(((k, c), n)) = run.take() {
                        self.commands.with_label_values(&[k, c]).inc_by(n);
                    }
                    run = Some((key, 1));
                }
            }
        }
        if let Some(((k, c), n)) = run {
            self.commands.with_label_values(&[k, c]).inc_by(n);
        }
    }

    /// A client batch answered after `seconds` (proposal to results).
    pub fn committed(&self, seconds: f64) {
        self.commit_seconds.observe(seconds);
    }

    /// A call answered with an error status.
    pub fn rejected(&self, code: &str, reason: &str) {
        self.rejected.with_label_values(&[code, reason]).inc();
    }

    /// The text exposition, after reading the state metrics from `status`.
    pub fn render(
        &self,
        status: Option<&consensus::NodeStatus>,
        divergences: usize,
        view_reloads: u64,
    ) -> String {
        self.up.inc();
        let mut seen = self.seen.lock();
        if let Some(st) = status {
            self.term.set(st.term as i64);
            for (role, name) in [
                (consensus::Role::Follower, "follower"),
                (consensus::Role::PreCandidate, "pre_candidate"),
                (consensus::Role::Candidate, "candidate"),
                (consensus::Role::Leader, "leader"),
            ] {
                self.role
                    .with_label_values(&[name])
                    .set((st.role == role) as i64);
            }
            self.commit_index.set(st.commit_index as i64);
            self.applied_index.set(st.applied_index as i64);
            self.log_first_index.set(st.first_index as i64);
            self.log_last_index.set(st.last_index as i64);
            self.log_entries
                .set((st.last_index + 1).saturating_sub(st.first_index) as i64);
            let s = &st.snapshots;
            let bump = |c: &IntCounter, seen: &mut u64, now: u64| {
                c.inc_by(now.saturating_sub(*seen));
                *seen = now.max(*seen);
            };
            bump(
                &self.snapshots.with_label_values(&["taken"]),
                &mut seen.snapshots_taken,
                s.taken,
            );
            bump(
                &self.snapshots.with_label_values(&["installed"]),
                &mut seen.snapshots_installed,
                s.installed,
            );
            // A total of `units_per_s` units a second into a counter of seconds.
            let bump_secs = |c: &Counter, seen: &mut u64, now: u64, units_per_s: f64| {
                c.inc_by(now.saturating_sub(*seen) as f64 / units_per_s);
                *seen = now.max(*seen);
            };
            bump_secs(
                &self.snapshot_seconds.with_label_values(&["taken"]),
                &mut seen.snapshots_taken_ms,
                s.taken_ms_total,
                1e3,
            );
            bump_secs(
                &self.snapshot_seconds.with_label_values(&["installed"]),
                &mut seen.snapshots_installed_ms,
                s.installed_ms_total,
                1e3,
            );
            bump(&self.clock_clamps, &mut seen.clock_clamps, st.clock_clamps);
            bump(&self.log_syncs, &mut seen.log_syncs, st.log_syncs.syncs);
            bump_secs(
                &self.log_sync_seconds,
                &mut seen.log_sync_us,
                st.log_syncs.sync_us_total,
                1e6,
            );
            self.clock_ahead_seconds.set(st.clock_ahead_ns as f64 / 1e9);
            self.peer_lag.reset();
            for (peer, matched) in &st.progress {
                if *peer != st.id {
                    self.peer_lag
                        .with_label_values(&[&peer.to_string()])
                        .set(st.commit_index.saturating_sub(*matched) as i64);
                }
            }
        }
        self.divergences.set(divergences as i64);
        let reloads = &mut seen.view_reloads;
        self.view_reloads
            .inc_by(view_reloads.saturating_sub(*reloads));
        *reloads = view_reloads.max(*reloads);
        drop(seen);
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into memory");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}
