//! The digest chain and its journal: what lets an auditor check, without trusting the nodes, that
//! the applied history was not rewritten.
//!
//! The digest after index `i` is `blake3(digest(i−1) ‖ i ‖ log time ‖ seed ‖ n ‖ for each command
//! (fingerprint ‖ result code ‖ result time))` — [`ChainHasher`] is the one place that computes it,
//! for apply and for the recomputation alike. Every apply writes, in the same atomic write:
//! - `d` + index → digest and log time, kept for ever (40 bytes per batch), so any replica can say
//!   what its digest was at any index and a signed checkpoint can be checked years later;
//! - `b` + index → the batch's seed and, per command, fingerprint, result code and result time:
//!   everything the step needs besides the previous digest. The last [`CHAIN_RETAIN_BATCHES`]
//!   indexes are kept (deterministically, like the event journal).
//!
//! [`Ledger::chain`] recomputes each retained link from the previous stored digest and compares
//! it with the stored one; across a range this proves every digest descends from the one before.

use super::*;

/// Applied indexes whose per-command chain journal is kept (recomputable links).
pub const CHAIN_RETAIN_BATCHES: u64 = 10_000;
/// Most links one [`Ledger::chain`] call returns.
pub const CHAIN_PAGE_MAX: usize = 1_000;

pub(super) const DIGEST_TAG: u8 = b'd';
/// The journal record's header: log time, seed and the command count.
const BODY_HEADER_BYTES: usize = 8 + 8 + 4;
pub(super) const BODY_TAG: u8 = b'b';

pub(super) fn chain_key(tag: u8, index: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(tag);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// Computes one link of the digest chain and, beside it, the journal record it can be recomputed
/// from.
pub(super) struct ChainHasher {
    hasher: blake3::Hasher,
    body: Vec<u8>,
}

impl ChainHasher {
    pub(super) fn new(prev: &[u8; 32], index: u64, ts: u64, seed: u64, commands: usize) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(prev);
        hasher.update(&index.to_le_bytes());
        hasher.update(&ts.to_le_bytes());
        hasher.update(&seed.to_le_bytes());
        hasher.update(&(commands as u64).to_le_bytes());
        let mut body = Vec::with_capacity(BODY_HEADER_BYTES + commands * 26);
        body.extend_from_slice(&ts.to_le_bytes());
        body.extend_from_slice(&seed.to_le_bytes());
        body.extend_from_slice(&(commands as u32).to_le_bytes());
        debug_assert_eq!(body.len(), BODY_HEADER_BYTES);
        ChainHasher { hasher, body }
    }

    /// Adds a command to the journal record only: the commands' part of the record is exactly
    /// what the digest hashes after the header, so [`ChainHasher::finish`] hashes it in one call
    /// (BLAKE3 then takes whole chunks in parallel, where three small updates per command went a
    /// block at a time).
    pub(super) fn command(&mut self, fingerprint: &[u8; 16], code: u16, result_ts: u64) {
        self.body.extend_from_slice(fingerprint);
        self.body.extend_from_slice(&code.to_le_bytes());
        self.body.extend_from_slice(&result_ts.to_le_bytes());
    }

    /// The digest, and the journal record (log time, seed, the commands).
    pub(super) fn finish(mut self) -> ([u8; 32], Vec<u8>) {
        self.hasher.update(&self.body[BODY_HEADER_BYTES..]);
        (*self.hasher.finalize().as_bytes(), self.body)
    }

    /// Recomputes a link from the previous digest and its journal record (`None`: the record is
    /// malformed).
    fn recompute(prev: &[u8; 32], index: u64, body: &[u8]) -> Option<[u8; 32]> {
        let ts = u64::from_le_bytes(body.get(0..8)?.try_into().ok()?);
        let seed = u64::from_le_bytes(body.get(8..16)?.try_into().ok()?);
        let n = u32::from_le_bytes(body.get(16..20)?.try_into().ok()?) as usize;
        let rest = body.get(20..)?;
        if rest.len() != n.checked_mul(26)? {
            return None;
        }
        let mut h = ChainHasher::new(prev, index, ts, seed, n);
        for c in rest.chunks_exact(26) {
            let fp: [u8; 16] = c[..16].try_into().ok()?;
            let code = u16::from_le_bytes(c[16..18].try_into().ok()?);
            let rts = u64::from_le_bytes(c[18..26].try_into().ok()?);
            h.command(&fp, code, rts);
        }
        Some(h.finish().0)
    }
}

/// Whether a link could be recomputed from the journal, and with what outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recomputed {
    /// The journal record is no longer retained (or the previous digest is unknown).
    NotJournaled,
    /// Recomputing gives the stored digest.
    Ok,
    /// Recomputing gives another digest (or the record is malformed): the chain is broken here.
    Mismatch,
}

/// One index of the chain as this replica stored it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainLink {
    pub index: u64,
    /// `None`: this replica has no digest recorded for the index (applied before the chain was
    /// recorded).
    pub digest: Option<[u8; 32]>,
    pub timestamp_ns: u64,
    pub recomputed: Recomputed,
}

/// A page of the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainPage {
    pub links: Vec<ChainLink>,
    /// The oldest index whose journal record is retained.
    pub journal_from: u64,
    pub applied_index: u64,
}

impl<S: Store> Ledger<S> {
    /// Records the batch's link: the digest for ever, the journal record for
    /// [`CHAIN_RETAIN_BATCHES`] indexes.
    pub(super) fn journal_chain(
        ctx: &mut BatchCtx,
        index: u64,
        digest: &[u8; 32],
        ts: u64,
        body: Vec<u8>,
    ) {
        let mut d = Vec::with_capacity(40);
        d.extend_from_slice(digest);
        d.extend_from_slice(&ts.to_le_bytes());
        ctx.wb.put(Cf::Chain, chain_key(DIGEST_TAG, index), d);
        ctx.wb.put(Cf::Chain, chain_key(BODY_TAG, index), body);
        if index > CHAIN_RETAIN_BATCHES {
            ctx.wb
                .delete(Cf::Chain, chain_key(BODY_TAG, index - CHAIN_RETAIN_BATCHES));
        }
    }

    /// The oldest applied index whose chain journal record is retained.
    pub fn first_chain_journaled_index(&self) -> u64 {
        self.applied_index
            .saturating_sub(CHAIN_RETAIN_BATCHES - 1)
            .max(1)
    }

    fn stored_link(&self, index: u64) -> Result<Option<([u8; 32], u64)>, LedgerError> {
        if index == 0 {
            return Ok(Some(([0; 32], 0)));
        }
        match self.store.get(Cf::Chain, &chain_key(DIGEST_TAG, index))? {
            None => Ok(None),
            Some(v) if v.len() == 40 => Ok(Some((
                v[..32].try_into().expect("32 bytes"),
                u64::from_le_bytes(v[32..].try_into().expect("8 bytes")),
            ))),
            Some(_) => Err(LedgerError::Corrupt(format!("chain link {index}"))),
        }
    }

    /// The chain from index `from` (at least 1) on, at most `limit` links (capped at
    /// [`CHAIN_PAGE_MAX`]), each recomputed from the journal where it is retained. The link at the
    /// applied index is also compared with the digest the ledger holds.
    pub fn chain(&self, from: u64, limit: usize) -> Result<ChainPage, LedgerError> {
        let from = from.max(1);
        let limit = limit.clamp(1, CHAIN_PAGE_MAX) as u64;
        let mut links = Vec::new();
        if from <= self.applied_index {
            let to = self.applied_index.min(from.saturating_add(limit - 1));
            let mut prev = self.stored_link(from - 1)?.map(|(d, _)| d);
            for index in from..=to {
                let stored = self.stored_link(index)?;
                let body = self.store.get(Cf::Chain, &chain_key(BODY_TAG, index))?;
                let recomputed = match (&stored, &prev, body) {
                    (Some((d, _)), Some(p), Some(b)) => {
                        match ChainHasher::recompute(p, index, &b) {
                            Some(r) if r == *d => Recomputed::Ok,
                            _ => Recomputed::Mismatch,
                        }
                    }
                    _ => Recomputed::NotJournaled,
                };
                let recomputed = match &stored {
                    Some((d, _)) if index == self.applied_index && *d != self.digest => {
                        Recomputed::Mismatch
                    }
                    _ => recomputed,
                };
                prev = stored.map(|(d, _)| d);
                links.push(ChainLink {
                    index,
                    digest: stored.map(|(d, _)| d),
                    timestamp_ns: stored.map_or(0, |(_, t)| t),
                    recomputed,
                });
            }
        }
        Ok(ChainPage {
            links,
            journal_from: self.first_chain_journaled_index(),
            applied_index: self.applied_index,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The digest is the module doc's formula, field by field, whatever the number of commands
    /// (none, less than a block, several chunks), and a journal record recomputes to it.
    #[test]
    fn the_digest_is_the_documented_formula() {
        let prev = [7u8; 32];
        for n in [0usize, 1, 2, 3, 40, 1_000] {
            let (index, ts, seed) = (42 + n as u64, 1_790_000_000_000_000_000u64, 99u64);
            let mut h = ChainHasher::new(&prev, index, ts, seed, n);
            let mut want = blake3::Hasher::new();
            want.update(&prev);
            want.update(&index.to_le_bytes());
            want.update(&ts.to_le_bytes());
            want.update(&seed.to_le_bytes());
            want.update(&(n as u64).to_le_bytes());
            for i in 0..n {
                let fp = [(i % 251) as u8; 16];
                let (code, rts) = ((i % 7) as u16, ts + i as u64);
                h.command(&fp, code, rts);
                want.update(&fp);
                want.update(&code.to_le_bytes());
                want.update(&rts.to_le_bytes());
            }
            let (digest, body) = h.finish();
            assert_eq!(digest, *want.finalize().as_bytes(), "{n} commands");
            assert_eq!(body.len(), BODY_HEADER_BYTES + n * 26);
            assert_eq!(ChainHasher::recompute(&prev, index, &body), Some(digest));
        }
    }
}
