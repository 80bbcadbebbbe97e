//! Pairs statement lines with the ledger's postings on the bank account.
//!
//! A statement credit (CRDT: money into our bank account) is a debit posting on the custodial
//! bank account (an asset), a statement debit a credit posting. For each line, in statement order:
//! 1. **one-to-one**: an unmatched posting with one of the line's references (as the transfer's
//!    reference or id), the same direction and amount, booked within the date window;
//! 2. **one-to-many**: else, the unmatched postings sharing one reference, same direction, within
//!    the window, whose amounts sum to the line's (one bank line settling several transfers);
//! 3. **duplicate**: else, a line whose reference, amount and direction an earlier line already
//!    matched;
//! 4. **amount_mismatch**: else, a posting with its reference and direction in the window but
//!    another amount (that posting is then accounted for, not also listed as only in the ledger);
//! 5. a **reversal** (`RvslInd`, `RC`/`RD`) with none of these cancels an earlier line with its
//!    reference and amount in the other direction that found no posting: both are `reversed`;
//! 6. otherwise **only_in_statement**.
//! At the end, postings booked within the statement's dates that no line took are
//! **only_in_ledger**.

use std::collections::{HashMap, HashSet};

use chrono::NaiveDate;
use rust_decimal::Decimal;

use super::{Direction, Line};

/// A posting of the bank account as the matcher sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    pub transfer: String,
    /// For the post of a hold (a withdrawal completed): the hold's id, which the bank may quote.
    pub hold: Option<String>,
    pub reference: String,
    pub amount: Decimal,
    /// In the statement's terms: a debit posting on the bank account is a statement credit.
    pub direction: Direction,
    /// Business date of the posting.
    pub date: NaiveDate,
    pub seq: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    Matched,
    AmountMismatch,
    OnlyInStatement,
    OnlyInLedger,
    Duplicate,
    Reversed,
}

impl Bucket {
    pub const ALL: [Bucket; 6] = [
        Bucket::Matched,
        Bucket::AmountMismatch,
        Bucket::OnlyInStatement,
        Bucket::OnlyInLedger,
        Bucket::Duplicate,
        Bucket::Reversed,
    ];
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Matched => "matched",
            Bucket::AmountMismatch => "amount_mismatch",
            Bucket::OnlyInStatement => "only_in_statement",
            Bucket::OnlyInLedger => "only_in_ledger",
            Bucket::Duplicate => "duplicates",
            Bucket::Reversed => "reversed",
        }
    }
    /// Whether the bucket is a break (anything but matched lines and reversal pairs).
    pub fn is_break(self) -> bool {
        !matches!(self, Bucket::Matched | Bucket::Reversed)
    }
}

/// One outcome: a statement line, a posting, or both.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub bucket: Bucket,
    /// The statement line (its index among entries) and where it is in the file.
    pub statement_line: Option<u64>,
    pub file_line: Option<u64>,
    /// The posting's transfer(s), comma-separated for a one-to-many match.
    pub transfer_id: Option<String>,
    /// The line's amount (the posting's for only_in_ledger).
    pub amount: Decimal,
    /// The ledger's amount where it differs (amount_mismatch).
    pub ledger_amount: Option<Decimal>,
    pub reference: String,
    pub date: NaiveDate,
    pub direction: Direction,
}

/// A 64-bit hash of a reference, optionally with an amount and direction. Memory is what bounds a
/// million-line statement, so the indexes hold these instead of strings: the posting index checks
/// each candidate's own strings (exact); the duplicate and reversal sets are sets of hashes (a
/// collision, about 10⁻⁷ over two million references, could only relabel a line that already
/// failed to match).
fn key_hash(reference: &str, with: Option<(Decimal, Direction)>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    reference.hash(&mut h);
    if let Some((amount, direction)) = with {
        amount.normalize().hash(&mut h);
        (direction == Direction::Credit).hash(&mut h);
    }
    h.finish()
}

/// Postings by the keys a bank may quote (transfer id, hold id, reference): a multimap of
/// reference hash → chain of posting indexes in posting order, in two flat allocations.
struct KeyIndex {
    /// Hash → (first, last) node.
    heads: HashMap<u64, (u32, u32)>,
    /// (posting index, next node or `u32::MAX`).
    nodes: Vec<(u32, u32)>,
}

impl KeyIndex {
    fn new(entries: &[LedgerEntry]) -> KeyIndex {
        fn keys(e: &LedgerEntry) -> [Option<&String>; 3] {
            let reference =
                (!e.reference.is_empty() && e.reference != e.transfer).then_some(&e.reference);
            [Some(&e.transfer), e.hold.as_ref(), reference]
        }
        let n: usize = entries
            .iter()
            .map(|e| keys(e).iter().flatten().count())
            .sum();
        let mut ix = KeyIndex {
            heads: HashMap::with_capacity(n),
            nodes: Vec::with_capacity(n),
        };
        for (i, e) in entries.iter().enumerate() {
            for k in keys(e).into_iter().flatten() {
                let node = ix.nodes.len() as u32;
                ix.nodes.push((i as u32, u32::MAX));
                match ix.heads.entry(key_hash(k, None)) {
                    std::collections::hash_map::Entry::Occupied(mut o) => {
                        let (_, last) = *o.get();
                        ix.nodes[last as usize].1 = node;
                        o.get_mut().1 = node;
                    }
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert((node, node));
                    }
                }
            }
        }
        ix
    }

    /// Posting indexes under `key`'s hash, in posting order (callers check the strings).
    fn get(&self, key: &str) -> impl Iterator<Item = u32> + '_ {
        let mut node = self
            .heads
            .get(&key_hash(key, None))
            .map_or(u32::MAX, |h| h.0);
        std::iter::from_fn(move || {
            let (i, next) = *self.nodes.get(node as usize)?;
            node = next;
            Some(i)
        })
    }
}

pub struct Matcher {
    entries: Vec<LedgerEntry>,
    taken: Vec<bool>,
    by_key: KeyIndex,
    window_days: i64,
    /// (reference, amount, direction) hashes of lines already matched: a repeat is a duplicate.
    done: HashSet<u64>,
    /// Lines that found no posting, held to the end (a later reversal may cancel one).
    unmatched: Vec<Option<Line>>,
    unmatched_by_key: HashMap<u64, Vec<usize>>,
}

impl Matcher {
    pub fn new(entries: Vec<LedgerEntry>, window_days: i64) -> Matcher {
        Matcher {
            taken: vec![false; entries.len()],
            by_key: KeyIndex::new(&entries),
            entries,
            window_days,
            done: HashSet::new(),
            unmatched: Vec::new(),
            unmatched_by_key: HashMap::new(),
        }
    }

    fn candidates(&self, key: &str, line: &Line) -> Vec<u32> {
        let mut c: Vec<u32> = self
            .by_key
            .get(key)
            .filter(|&i| {
                let e = &self.entries[i as usize];
                (e.transfer == key || e.hold.as_deref() == Some(key) || e.reference == key)
                    && !self.taken[i as usize]
                    && e.direction == line.direction
                    && (e.date - line.booking_date).num_days().abs() <= self.window_days
            })
            .collect();
        // A posting quoted under two of its keys (its hold id as its reference) counts once; its
        // nodes are adjacent in the chain.
        c.dedup();
        c
    }

    fn outcome(
        bucket: Bucket,
        line: &Line,
        transfer: Option<String>,
        ledger_amount: Option<Decimal>,
    ) -> Outcome {
        Outcome {
            bucket,
            statement_line: Some(line.index),
            file_line: Some(line.file_line),
            transfer_id: transfer,
            amount: line.amount,
            ledger_amount,
            reference: line.references.first().cloned().unwrap_or_default(),
            date: line.booking_date,
            direction: line.direction,
        }
    }

    /// Matches one statement line; returns the outcomes decided now (a line that found no posting
    /// is decided at [`Matcher::finish`], or now when it cancels an earlier one).
    pub fn push(&mut self, line: Line) -> Vec<Outcome> {
        // 1. One to one, closest booking date first.
        let mut best: Option<u32> = None;
        for key in &line.references {
            for i in self.candidates(key, &line) {
                let e = &self.entries[i as usize];
                if e.amount == line.amount {
                    let closer = best.is_none_or(|b| {
                        (e.date - line.booking_date).num_days().abs()
                            < (self.entries[b as usize].date - line.booking_date)
                                .num_days()
                                .abs()
                    });
                    if closer {
                        best = Some(i);
                    }
                }
            }
        }
        if let Some(i) = best {
            self.taken[i as usize] = true;
            self.remember(&line);
            let t = self.entries[i as usize].transfer.clone();
            return vec![Self::outcome(Bucket::Matched, &line, Some(t), None)];
        }
        // 2. One bank line for several postings with one reference.
        for key in &line.references {
            let c = self.candidates(key, &line);
            if c.len() >= 2 {
                let sum: Decimal = c.iter().map(|&i| self.entries[i as usize].amount).sum();
                if sum == line.amount {
                    let ids: Vec<String> = c
                        .iter()
                        .map(|&i| {
                            self.taken[i as usize] = true;
                            self.entries[i as usize].transfer.clone()
                        })
                        .collect();
                    self.remember(&line);
                    return vec![Self::outcome(
                        Bucket::Matched,
                        &line,
                        Some(ids.join(",")),
                        None,
                    )];
                }
            }
        }
        // 3. A line already matched once.
        if line.references.iter().any(|r| {
            self.done
                .contains(&key_hash(r, Some((line.amount, line.direction))))
        }) {
            return vec![Self::outcome(Bucket::Duplicate, &line, None, None)];
        }
        // 4. Same reference, another amount.
        for key in &line.references {
            if let Some(&i) = self.candidates(key, &line).first() {
                self.taken[i as usize] = true;
                let e = &self.entries[i as usize];
                let (t, a) = (e.transfer.clone(), e.amount);
                return vec![Self::outcome(
                    Bucket::AmountMismatch,
                    &line,
                    Some(t),
                    Some(a),
                )];
            }
        }
        // 5. A reversal cancelling an earlier unmatched line.
        if line.reversal {
            for key in &line.references {
                let k = key_hash(key, Some((line.amount, line.direction.opposite())));
                if let Some(slot) = self.unmatched_by_key.get_mut(&k).and_then(|v| v.pop()) {
                    if let Some(original) = self.unmatched[slot].take() {
                        return vec![
                            Self::outcome(Bucket::Reversed, &original, None, None),
                            Self::outcome(Bucket::Reversed, &line, None, None),
                        ];
                    }
                }
            }
        }
        // 6. Held: only in the statement, unless a later reversal cancels it.
        let slot = self.unmatched.len();
        for key in &line.references {
            self.unmatched_by_key
                .entry(key_hash(key, Some((line.amount, line.direction))))
                .or_default()
                .push(slot);
        }
        self.unmatched.push(Some(line));
        Vec::new()
    }

    fn remember(&mut self, line: &Line) {
        for r in &line.references {
            self.done
                .insert(key_hash(r, Some((line.amount, line.direction))));
        }
    }

    /// The statement lines that found nothing, then the postings booked within `from ..= to` that
    /// no line took.
    pub fn finish(self, from: NaiveDate, to: NaiveDate) -> Vec<Outcome> {
        let mut out: Vec<Outcome> = self
            .unmatched
            .into_iter()
            .flatten()
            .map(|l| Self::outcome(Bucket::OnlyInStatement, &l, None, None))
            .collect();
        for (e, taken) in self.entries.iter().zip(&self.taken) {
            if !taken && e.date >= from && e.date <= to {
                out.push(Outcome {
                    bucket: Bucket::OnlyInLedger,
                    statement_line: None,
                    file_line: None,
                    transfer_id: Some(e.transfer.clone()),
                    amount: e.amount,
                    ledger_amount: Some(e.amount),
                    reference: e.reference.clone(),
                    date: e.date,
                    direction: e.direction,
                });
            }
        }
        out
    }
}
