//! The mixed payment workload of `suanpan bench --workload payments`: what a wallet provider's day
//! looks like to the ledger. Each generated command may leave follow-ups (pay the order, receive the
//! chat transfer, pay the split shares, claim the packet, refund the payment) that the same task
//! submits in its next batch, so every flow runs to its end under load.

use api::client::{self, cmd as ops};
use api::pb;
use ledger::rng::SplitMix64 as Rng;
use ledger::Id;

/// The kinds of command the mix submits, with their share of new flows (follow-ups come on top).
pub const KINDS: [(&str, u64); 9] = [
    ("p2p_transfer", 25),
    ("qr_static_payment", 20),
    ("qr_order", 10),
    ("chat_transfer", 10),
    ("payment_request", 10),
    ("split", 10),
    ("redpacket", 5),
    ("conversion", 5),
    ("refund", 5),
];

/// Follow-up kinds (counted separately).
pub const FOLLOW_UPS: [&str; 6] = [
    "order_pay",
    "chat_receive",
    "request_pay",
    "split_pay",
    "redpacket_claim",
    "refund_of_payment",
];

/// Index of a kind in the report (new flows, then follow-ups).
pub fn kind_index(name: &str) -> usize {
    KINDS
        .iter()
        .map(|(k, _)| *k)
        .chain(FOLLOW_UPS)
        .position(|k| k == name)
        .expect("a known kind")
}

pub fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|(k, _)| *k).chain(FOLLOW_UPS).collect()
}

/// What the mix needs from the setup.
pub struct Mix {
    pub wallets: std::sync::Arc<Vec<Id>>,
    pub coins: std::sync::Arc<Vec<Id>>,
    pub merchant: ledger::MerchantProfile,
    pub static_qr: String,
}

fn amount(rng: &mut Rng, max_yuan: u64) -> String {
    format!("{}.{:02}", 1 + rng.next() % max_yuan, rng.next() % 100)
}

impl Mix {
    fn wallet(&self, rng: &mut Rng) -> Id {
        self.wallets[(rng.next() % self.wallets.len() as u64) as usize]
    }

    fn other(&self, rng: &mut Rng, not: Id) -> Id {
        loop {
            let w = self.wallet(rng);
            if w != not || self.wallets.len() < 2 {
                return w;
            }
        }
    }

    /// One new flow: its first command (with its kind), and the follow-ups for the next batch.
    pub fn next(
        &self,
        rng: &mut Rng,
        later: &mut Vec<(&'static str, pb::Command)>,
    ) -> (&'static str, pb::Command) {
        let total: u64 = KINDS.iter().map(|(_, s)| s).sum();
        let mut pick = rng.next() % total;
        let kind = KINDS
            .iter()
            .find(|(_, s)| {
                if pick < *s {
                    true
                } else {
                    pick -= s;
                    false
                }
            })
            .map(|(k, _)| *k)
            .expect("shares sum to total");
        let id = client::new_id();
        let from = self.wallet(rng);
        let to = self.other(rng, from);
        let cmd = match kind {
            "p2p_transfer" => ops::transfer(id, from, to, &amount(rng, 100), "CNY"),
            "qr_static_payment" => {
                ops::pay_qr(id, from, &self.static_qr, Some((&amount(rng, 200), "CNY")))
            }
            "refund" => {
                // A static payment now, part of it refunded in the next batch.
                later.push((
                    "refund_of_payment",
                    ops::refund(client::new_id(), id, "1.00", "CNY", "bench"),
                ));
                ops::pay_qr(id, from, &self.static_qr, Some(("20.00", "CNY")))
            }
            "qr_order" => {
                let amt = amount(rng, 200);
                let reference = format!("B{}", id.0 & 0xFFFF_FFFF);
                let payload = ledger::emv::merchant_payload(
                    &self.merchant,
                    ledger::Currency::from_code("CNY").expect("CNY"),
                    Some(ledger::emv::OrderQr {
                        id,
                        amount: &amt,
                        reference: &reference,
                    }),
                )
                .expect("a valid order payload");
                later.push((
                    "order_pay",
                    ops::pay_qr(client::new_id(), from, &payload, None),
                ));
                ops::create_order(
                    id,
                    self.merchant.account,
                    &amt,
                    "CNY",
                    &reference,
                    Some(600),
                )
            }
            "chat_transfer" => {
                later.push((
                    "chat_receive",
                    ops::settle_chat_transfer(client::new_id(), id, true),
                ));
                ops::send(pb::Send {
                    id: id.to_string(),
                    from_account_id: from.to_string(),
                    to_account_id: to.to_string(),
                    amount: amount(rng, 100),
                    currency: "CNY".into(),
                    accept_within_seconds: Some(3600),
                    ..Default::default()
                })
            }
            "payment_request" => {
                later.push((
                    "request_pay",
                    ops::request_action(client::new_id(), id, ops::RequestVerb::Pay),
                ));
                ops::create_request(pb::CreateRequest {
                    id: id.to_string(),
                    payee_account_id: from.to_string(),
                    payer_account_id: to.to_string(),
                    amount: amount(rng, 100),
                    currency: "CNY".into(),
                    ..Default::default()
                })
            }
            "split" => {
                let third = self.other(rng, from);
                let mut ps = vec![from, to];
                if third != to {
                    ps.push(third);
                }
                for p in &ps[1..] {
                    later.push(("split_pay", ops::pay_split(client::new_id(), id, *p)));
                }
                ops::create_split(pb::CreateSplit {
                    id: id.to_string(),
                    payer_account_id: from.to_string(),
                    total: amount(rng, 300),
                    currency: "CNY".into(),
                    participant_ids: ps.iter().map(Id::to_string).collect(),
                    mode: pb::SplitMode::Equal as i32,
                    ..Default::default()
                })
            }
            "redpacket" => {
                let mut claimers: Vec<Id> = Vec::with_capacity(5);
                while claimers.len() < 5.min(self.wallets.len()) {
                    let w = self.wallet(rng);
                    if !claimers.contains(&w) {
                        claimers.push(w);
                    }
                }
                for w in claimers {
                    later.push((
                        "redpacket_claim",
                        ops::claim_redpacket(client::new_id(), id, w),
                    ));
                }
                ops::create_redpacket(pb::CreateRedPacket {
                    id: id.to_string(),
                    sender_account_id: from.to_string(),
                    total: amount(rng, 100),
                    currency: "CNY".into(),
                    count: 5,
                    random: true,
                    expires_in_seconds: None,
                    group_id: None,
                })
            }
            "conversion" => ops::convert(pb::Convert {
                id: id.to_string(),
                from_account_id: from.to_string(),
                to_account_id: self.coins[(rng.next() % self.coins.len() as u64) as usize]
                    .to_string(),
                amount: amount(rng, 50),
                currency: "CNY".into(),
                expect_rate: None,
            }),
            _ => unreachable!("every kind is generated"),
        };
        (kind, cmd)
    }
}
