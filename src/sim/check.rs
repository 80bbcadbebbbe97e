//! The final checks over the recorded history: a reference replay, the independent balance model,
//! every acknowledgement against the reference and the final replicas.

use super::*;

impl Swarm {
    pub(super) fn check_final(&mut self) -> Result<(), String> {
        let last = *self.history.keys().last().unwrap_or(&0);
        self.report.counts.entries = last;
        // Replay the history through a fresh ledger (the reference).
        let shared = std::sync::Arc::new(parking_lot::Mutex::new(
            ledger::Ledger::open(MemStore::new()).map_err(|e| e.to_string())?,
        ));
        let events = api::events::EventLog::new(Default::default(), 0);
        let mut reference = LedgerStateMachine::new(shared.clone(), std::sync::Arc::new(events));
        let mut replies: BTreeMap<(u64, SimKey), Vec<u8>> = BTreeMap::new();
        // The independent model: posted balance (credits - debits) per account, from each id's
        // first outcome.
        let mut model: BTreeMap<u128, i128> = BTreeMap::new();
        let mut seen: BTreeSet<u128> = BTreeSet::new();
        let mut holds: BTreeMap<u128, (u128, u128, i128)> = BTreeMap::new();
        for index in 1..=last {
            let Some((_, h)) = self.history.get(&index) else {
                return Err(format!("history has no entry at index {index}"));
            };
            let entry = CommittedEntry {
                index,
                term: 0,
                timestamp_ns: h.timestamp_ns,
                seed: h.seed,
                proposals: h
                    .proposals
                    .iter()
                    .map(|(node, pid, payload)| Proposal {
                        node_id: *node,
                        proposal_id: *pid,
                        payload,
                    })
                    .collect(),
            };
            let results = reference
                .apply(std::slice::from_ref(&entry))
                .map_err(|e| format!("reference replay at {index}: {e}"))?
                .pop()
                .unwrap_or_default();
            if results != h.results || shared.lock().digest() != h.digest {
                self.report.counts.divergences += 1;
                return Err(format!(
                    "the reference replay differs from the replicas at index {index}"
                ));
            }
            for ((node, pid, payload), result) in h.proposals.iter().zip(&results) {
                replies.insert((index, (*node, *pid)), result.clone());
                let (Some(commands), Ok(outcomes)) = (
                    decode_proposal(payload),
                    ledger::codec::decode_results(result),
                ) else {
                    continue;
                };
                for (c, r) in commands.iter().zip(&outcomes) {
                    if seen.insert(c.id().0) {
                        model_apply(&mut model, &mut holds, c, r);
                    }
                }
            }
        }
        // Every acknowledged reply is the reference's reply for that proposal at that index.
        for (key, index, result) in &self.acks {
            match replies.get(&(*index, *key)) {
                Some(r) if r == result => {}
                Some(_) => {
                    self.report.counts.divergences += 1;
                    return Err(format!(
                        "the reply acknowledged to proposal {key:?} at index {index} is not the \
                         reference's"
                    ));
                }
                None => {
                    self.report.counts.lost += 1;
                    return Err(format!(
                        "proposal {key:?} was acknowledged at index {index} but is not there"
                    ));
                }
            }
        }
        // Every replica: at the last index, with the reference's digest, balances = the model,
        // and every acknowledged command known with its acknowledged result.
        let digest = shared.lock().digest();
        for id in self.sim.live_nodes() {
            if !self.is_member(id) {
                continue;
            }
            let m = self.sim.node(id).state_machine();
            let l = m.ledger();
            if l.applied_index() != last || l.digest() != digest {
                self.report.counts.divergences += 1;
                return Err(format!(
                    "node {id} ends at {} with another digest than the reference at {last}",
                    l.applied_index()
                ));
            }
            for w in std::iter::once(BANK).chain((0..self.wallets).map(|w| WALLET0 + w)) {
                let got = l.account(Id(w)).map_or(0, |a| {
                    a.state.balances.credits_posted as i128 - a.state.balances.debits_posted as i128
                });
                let want = model.get(&w).copied().unwrap_or(0);
                if got != want {
                    if got.abs() > want.abs() {
                        self.report.counts.duplicated += 1;
                    } else {
                        self.report.counts.lost += 1;
                    }
                    return Err(format!(
                        "node {id}: account {w} has posted balance {got}, the model {want}"
                    ));
                }
            }
            for (key, _, result) in &self.acks {
                let Ok(results) = ledger::codec::decode_results(result) else {
                    continue;
                };
                for (c, r) in self.attempts[key].iter().zip(&results) {
                    let now = l.command_result(c.id()).map_err(|e| e.to_string())?;
                    if now.as_ref() != Some(r) && r.code != ledger::ResultCode::IdempotencyConflict
                    {
                        self.report.counts.lost += 1;
                        return Err(format!(
                            "node {id}: acknowledged command {:?} is {now:?}, acknowledged as {r:?}",
                            c.id()
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    pub(super) fn is_member(&self, id: u64) -> bool {
        let Some(l) = self.sim.leader() else {
            return true;
        };
        let s = self.sim.node(l).status();
        s.voters.contains(&id) || s.learners.contains(&id)
    }
}

/// The model's reading of one command's first outcome.
fn model_apply(
    model: &mut BTreeMap<u128, i128>,
    holds: &mut BTreeMap<u128, (u128, u128, i128)>,
    c: &Command,
    r: &CommandResult,
) {
    if !r.is_ok() {
        return;
    }
    let mut post = |debit: u128, credit: u128, amt: i128| {
        *model.entry(debit).or_default() -= amt;
        *model.entry(credit).or_default() += amt;
    };
    match c {
        Command::CreateTransfer(t) => {
            let leg = &t.legs[0];
            let amt = minor(leg.amount);
            if t.pending_timeout_seconds.is_some() {
                holds.insert(t.id.0, (leg.debit.0, leg.credit.0, amt));
            } else {
                post(leg.debit.0, leg.credit.0, amt);
            }
        }
        Command::PostPending(p) => {
            if let Some((debit, credit, held)) = holds.get(&p.pending_id.0).copied() {
                post(debit, credit, p.amount.map_or(held, minor));
            }
        }
        _ => {}
    }
}
