//! The seed's fault schedule: crashes and restarts, partitions and one-way cuts, clock jumps,
//! leader transfers, and a lost disk replaced through remove + add-as-learner + promote.

use super::*;

impl Swarm {
    pub(super) fn inject_faults(&mut self) {
        let now = self.sim.now_step();
        let restart: Vec<u64> = self
            .restart_at
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in restart {
            self.restart_at.remove(&id);
            self.sim.restart(id);
            self.report.counts.faults.restarts += 1;
        }
        if self.heal_at.is_some_and(|at| at <= now) {
            self.heal_at = None;
            self.sim.heal();
        }
        let live = self.sim.live_nodes();
        let members = live.len() + self.restart_at.len();
        if self.rng.gen_bool(self.mix.crash_per_step) && !live.is_empty() {
            // Mostly at most a minority down; sometimes one more (no quorum for a while).
            let max_down = (members - 1) / 2 + usize::from(self.rng.gen_bool(0.15));
            if self.restart_at.len() < max_down {
                let victim = if self.rng.gen_bool(0.4) {
                    self.sim.leader().unwrap_or(live[0])
                } else {
                    live[self.rng.gen_range(0..live.len())]
                };
                self.sim.crash(victim);
                self.report.counts.faults.crashes += 1;
                let at = now + self.rng.gen_range(20..400);
                self.restart_at.insert(victim, at);
            }
        }
        if self.heal_at.is_none() && self.rng.gen_bool(self.mix.partition_per_step) {
            let all = self.sim.live_nodes();
            match self.rng.gen_range(0..3) {
                0 => {
                    if let Some(l) = self.sim.leader() {
                        self.sim.isolate(l);
                        self.report.counts.faults.partitions += 1;
                    }
                }
                1 => {
                    let (mut a, mut b) = (Vec::new(), Vec::new());
                    for id in all {
                        if self.rng.gen_bool(0.5) {
                            a.push(id)
                        } else {
                            b.push(id)
                        }
                    }
                    self.sim.partition(vec![a, b]);
                    self.report.counts.faults.partitions += 1;
                }
                _ => {
                    if all.len() >= 2 {
                        let from = all[self.rng.gen_range(0..all.len())];
                        let to = all[self.rng.gen_range(0..all.len())];
                        if from != to {
                            self.sim.cut_one_way(from, to);
                            self.report.counts.faults.one_way_cuts += 1;
                        }
                    }
                }
            }
            self.heal_at = Some(now + self.rng.gen_range(50..600));
        }
        if self.rng.gen_bool(self.mix.clock_per_step) && !live.is_empty() {
            let id = live[self.rng.gen_range(0..live.len())];
            let offset: i64 = if self.rng.gen_bool(0.5) {
                self.rng.gen_range(-500..500) * 1_000_000 // skew, ±0.5 s
            } else {
                self.rng.gen_range(-3_600..3_600) * 1_000_000_000 // a jump, ±1 h
            };
            self.sim.set_clock_offset(id, offset);
            self.report.counts.faults.clock_jumps += 1;
        }
        if self.rng.gen_bool(self.mix.transfer_per_step) {
            if let Some(l) = self.sim.leader() {
                let others: Vec<u64> = live.iter().copied().filter(|n| *n != l).collect();
                if !others.is_empty() {
                    let to = others[self.rng.gen_range(0..others.len())];
                    self.sim.node_mut(l).transfer_leader(to);
                    self.report.counts.faults.leader_transfers += 1;
                }
            }
        }
        if self.mix.disk_loss
            && self.replace.is_none()
            && self.report.counts.faults.disk_losses == 0
            && self.restart_at.is_empty()
            && now > self.cfg.safety_steps / 4
            && self.rng.gen_bool(0.002)
        {
            if let Some(l) = self.sim.leader() {
                let others: Vec<u64> = live.iter().copied().filter(|n| *n != l).collect();
                if let Some(&old) = others.first() {
                    // Its disk is gone: it may not come back under its id (it forgot its votes
                    // and log); it is removed, and a new node joins as a learner.
                    self.sim.destroy(old);
                    self.report.counts.faults.disk_losses += 1;
                    let new = self.next_node_id;
                    self.next_node_id += 1;
                    self.replace = Some((Replace::Remove { old, new }, None));
                }
            }
        }
    }

    /// Moves a replacement on: one membership change at a time, re-proposed until applied.
    pub(super) fn drive_replace(&mut self) {
        let now = self.sim.now_step();
        let Some((phase, attempt)) = &self.replace else {
            return;
        };
        if let Some((key, at)) = attempt {
            let alive = self.sim.live_nodes().contains(&key.0);
            if alive && now.saturating_sub(*at) < 1_000 {
                return;
            }
        }
        let Some(l) = self.sim.leader() else { return };
        let status = self.sim.node(l).status();
        let change = match phase {
            Replace::Remove { old, new } => {
                if !status.voters.contains(old) && !status.learners.contains(old) {
                    self.replace = Some((Replace::AddLearner { new: *new }, None));
                    return;
                }
                MembershipChange::Remove(*old)
            }
            Replace::AddLearner { new } => {
                if status.learners.contains(new) || status.voters.contains(new) {
                    self.replace = Some((Replace::Promote { new: *new }, None));
                    return;
                }
                if !self.sim.live_nodes().contains(new) {
                    self.sim.add_process(*new);
                }
                MembershipChange::AddLearner(*new, String::new())
            }
            Replace::Promote { new } => {
                // The leader promotes the learner itself once it has caught up.
                if status.voters.contains(new) {
                    self.replace = None;
                }
                return;
            }
        };
        let key = self.sim.propose_membership(l, change);
        if let Some(r) = &mut self.replace {
            r.1 = Some((key, now));
        }
    }

    pub(super) fn replace_outcome(&mut self, _outcome: ProposeOutcome) {
        // Whatever the outcome, the next drive_replace reads the leader's configuration and
        // moves on or proposes again.
        if let Some(r) = &mut self.replace {
            r.1 = None;
        }
    }
}
