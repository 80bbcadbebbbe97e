//! The simulated clients: a bank workload (top-ups, transfers, holds, posts, voids, exact retries,
//! conflicting reuses of ids) sent as proposals and retried under the same ids after an unknown
//! outcome, the way the real client does.

use super::*;

pub(super) const CURRENCY: &str = "CNY";
pub(super) const BANK: u128 = 1;
pub(super) const WALLET0: u128 = 100;
pub(super) const TOPUP_MINOR: i128 = 100_000;

pub(super) fn amount(minor: i128) -> Decimal {
    Decimal::from_i128_with_scale(minor, 2)
}

pub(super) fn minor(d: Decimal) -> i128 {
    use rust_decimal::prelude::ToPrimitive;
    (d * Decimal::from(100)).trunc().to_i128().unwrap_or(0)
}

pub(super) fn account(id: u128, kind: AccountKind) -> Command {
    Command::CreateAccount(CreateAccount::basic(Id(id), CURRENCY, kind))
}

pub(super) fn transfer(
    id: u128,
    debit: u128,
    credit: u128,
    minor: i128,
    timeout_s: Option<u64>,
) -> Command {
    Command::CreateTransfer(CreateTransfer {
        id: Id(id),
        legs: vec![LegSpec {
            debit: Id(debit),
            credit: Id(credit),
            amount: amount(minor),
            currency: None,
        }],
        pending_timeout_seconds: timeout_s,
        reference: String::new(),
    })
}

impl Swarm {
    pub(super) fn new_request(&mut self, i: usize) -> Request {
        let mut commands = Vec::new();
        if !self.setup_done {
            // Only client 0 sets up; the others wait.
            commands.push(account(BANK, AccountKind::System));
            for w in 0..self.wallets {
                commands.push(account(WALLET0 + w, AccountKind::Wallet));
                commands.push(transfer(1_000 + w, BANK, WALLET0 + w, TOPUP_MINOR, None));
            }
        } else {
            let n = self.rng.gen_range(1..=4);
            for _ in 0..n {
                let c = self.command(i);
                commands.push(c);
            }
        }
        self.clients[i].sent.extend(commands.iter().cloned());
        let payload = encode_proposal(&commands);
        Request {
            commands,
            payload,
            attempt: None,
            retry_at: 0,
            unknown: false,
        }
    }

    pub(super) fn command(&mut self, i: usize) -> Command {
        let w = self.wallets;
        let (a, b) = (self.rng.gen_range(0..w), self.rng.gen_range(0..w));
        let minor = self.rng.gen_range(1..=30_000);
        let roll = self.rng.gen_range(0..100);
        let c = &mut self.clients[i];
        match roll {
            0..=54 => transfer(c.id(), WALLET0 + a, WALLET0 + b, minor, None),
            55..=69 => {
                let id = c.id();
                c.holds.push((id, minor));
                let timeout = self.rng.gen_range(1..=5);
                transfer(id, WALLET0 + a, WALLET0 + b, minor, Some(timeout))
            }
            70..=79 if !c.holds.is_empty() => {
                let (hold, held) = c.holds.swap_remove(self.rng.gen_range(0..c.holds.len()));
                let part = if self.rng.gen_bool(0.3) {
                    Some(amount(self.rng.gen_range(1..=held)))
                } else {
                    None
                };
                Command::PostPending(PostPending {
                    id: Id(c.id()),
                    pending_id: Id(hold),
                    amount: part,
                    currency: None,
                })
            }
            80..=87 if !c.holds.is_empty() => {
                let (hold, _) = c.holds.swap_remove(self.rng.gen_range(0..c.holds.len()));
                Command::VoidPending(VoidPending {
                    id: Id(c.id()),
                    pending_id: Id(hold),
                })
            }
            88..=94 if !c.sent.is_empty() => {
                // An exact retry of an earlier command: replays its first outcome.
                c.sent[self.rng.gen_range(0..c.sent.len())].clone()
            }
            95..=99 if !c.sent.is_empty() => {
                // An earlier id with another body: an idempotency conflict (or, if the first
                // was never applied, this body is the first).
                let old = c.sent[self.rng.gen_range(0..c.sent.len())].id();
                transfer(old.0, WALLET0 + a, WALLET0 + b, minor + 1, None)
            }
            _ => transfer(c.id(), WALLET0 + a, WALLET0 + b, minor, None),
        }
    }

    /// The node a client sends to: the leader if there is one, else any live node.
    pub(super) fn target(&mut self) -> Option<u64> {
        if let Some(l) = self.sim.leader() {
            if self.rng.gen_bool(0.9) {
                return Some(l);
            }
        }
        let live = self.sim.live_nodes();
        if live.is_empty() {
            return None;
        }
        Some(live[self.rng.gen_range(0..live.len())])
    }

    pub(super) fn drive_clients(&mut self, new_work: bool) {
        let now = self.sim.now_step();
        for i in 0..self.clients.len() {
            if self.clients[i].request.is_none() {
                let may_start = if self.setup_done {
                    new_work && now >= self.clients[i].idle_until
                } else {
                    i == 0
                };
                if !may_start {
                    continue;
                }
                let req = self.new_request(i);
                self.clients[i].request = Some(req);
            }
            let req = self.clients[i].request.as_mut().expect("request");
            if let Some((key, sent)) = req.attempt {
                // No answer: the node died, or the answer is taking too long — unknown.
                let alive = self.sim.live_nodes().contains(&key.0);
                if !alive || now.saturating_sub(sent) > 1_500 {
                    req.attempt = None;
                    if !req.unknown {
                        req.unknown = true;
                        self.report.counts.requests_unknown += 1;
                    }
                    req.retry_at = now + 20;
                }
                continue;
            }
            if now < req.retry_at {
                continue;
            }
            let Some(node) = self.target() else { continue };
            let req = self.clients[i].request.as_mut().expect("request");
            let key = self.sim.propose(node, req.payload.clone());
            req.attempt = Some((key, now));
            self.attempts.insert(key, req.commands.clone());
        }
    }

    pub(super) fn collect_outcomes(&mut self) {
        let now = self.sim.now_step();
        let outcomes = std::mem::take(&mut self.sim.outcomes);
        for (key, outcome) in outcomes {
            if let Some(r) = &self.replace {
                if r.1.map(|a| a.0) == Some(key) {
                    self.replace_outcome(outcome);
                    continue;
                }
            }
            if !self.attempts.contains_key(&key) {
                continue;
            }
            if let ProposeOutcome::Applied { index, result } = &outcome {
                self.acks.push((key, *index, result.clone()));
            }
            let Some(i) = self.clients.iter().position(|c| {
                c.request
                    .as_ref()
                    .and_then(|r| r.attempt)
                    .is_some_and(|a| a.0 == key)
            }) else {
                continue; // an answer to an attempt the client already gave up on
            };
            let client = &mut self.clients[i];
            let req = client.request.as_mut().expect("request");
            match outcome {
                ProposeOutcome::Applied { result, .. } => {
                    let results = ledger::codec::decode_results(&result).unwrap_or_default();
                    self.report.counts.commands_acknowledged += results.len() as u64;
                    self.report.counts.commands_refused +=
                        results.iter().filter(|r| !r.is_ok()).count() as u64;
                    client.request = None;
                    client.idle_until = now + self.rng.gen_range(0..50);
                    if i == 0 && !self.setup_done {
                        self.setup_done = true;
                    }
                }
                ProposeOutcome::NotLeader { .. } | ProposeOutcome::Rejected { .. } => {
                    self.report.counts.requests_rejected += 1;
                    req.attempt = None;
                    req.retry_at = now + 5;
                }
                ProposeOutcome::Unknown => {
                    if !req.unknown {
                        req.unknown = true;
                        self.report.counts.requests_unknown += 1;
                    }
                    req.attempt = None;
                    req.retry_at = now + 10;
                }
            }
        }
    }
}
