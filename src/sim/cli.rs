//! `suanpan sim`: flags, per-seed lines or JSON, totals.

use super::*;

/// `suanpan sim`: run seeds, print one line per seed (or JSON), exit 1 when any seed fails.
#[derive(clap::Args, Debug)]
pub struct SimArgs {
    /// How many seeds to run (from --first-seed).
    #[arg(long, default_value_t = 20)]
    pub seeds: u64,
    /// First seed of the range (default: a fresh one from the clock, printed).
    #[arg(long)]
    pub first_seed: Option<u64>,
    /// Run exactly this seed (replays a failure bit for bit).
    #[arg(long, conflicts_with_all = ["seeds", "first_seed"])]
    pub seed: Option<u64>,
    /// Steps of the safety phase per seed (1 step = 1 ms simulated).
    #[arg(long, default_value_t = SwarmConfig::default().safety_steps)]
    pub steps: u64,
    /// Cluster size (default: each seed picks 3 or 5).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=7))]
    pub nodes: Option<u64>,
    /// Stop starting new seeds after this many seconds.
    #[arg(long)]
    pub time_limit_s: Option<u64>,
    /// Inject a known bug to show the checkers catch it.
    #[arg(long, value_enum)]
    pub bug: Option<Bug>,
    /// One JSON document: per-seed reports and totals.
    #[arg(long)]
    pub json: bool,
}

pub fn run_cli(a: SimArgs) -> anyhow::Result<i32> {
    let cfg = SwarmConfig {
        safety_steps: a.steps,
        nodes: a.nodes.unwrap_or(0),
        bug: a.bug,
        ..SwarmConfig::default()
    };
    let (first, count) = match a.seed {
        Some(s) => (s, 1),
        None => (
            a.first_seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_secs())
            }),
            a.seeds,
        ),
    };
    // A failing seed's panic is reported in its line; the default hook would print it twice.
    std::panic::set_hook(Box::new(|_| {}));
    let json = a.json;
    if !json {
        println!(
            "simulating seeds {first}..{} (bug: {:?})",
            first.saturating_add(count),
            a.bug
        );
    }
    let reports = run_seeds(first, count, &cfg, a.time_limit_s, |r| {
        if json {
            return;
        }
        match &r.failure {
            None => println!(
                "seed {}: ok  nodes={} entries={} acked={} unknown_requests={} leader_changes={} \
                 snapshots={} crashes={} partitions={}",
                r.seed,
                r.nodes,
                r.counts.entries,
                r.counts.commands_acknowledged,
                r.counts.requests_unknown,
                r.counts.leader_changes,
                r.counts.snapshots_installed,
                r.counts.faults.crashes,
                r.counts.faults.partitions + r.counts.faults.one_way_cuts
            ),
            Some(f) => println!(
                "seed {}: FAILED: {f}\n  mix: {}\n  replay: {}",
                r.seed,
                r.mix,
                replay_command(r.seed, &cfg)
            ),
        }
    });
    let t = totals(&reports);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "first_seed": first,
                "bug": a.bug,
                "totals": t,
                "seeds": reports,
            }))?
        );
    } else {
        println!("{}", serde_json::to_string_pretty(&t)?);
    }
    Ok(if t.failed_seeds.is_empty() { 0 } else { 1 })
}
