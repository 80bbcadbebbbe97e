//! Compact binary encoding of raft entry data (what the ledger proposes).
//!
//! Layout v1 (all integers big-endian):
//! `[version u8 = 1][timestamp_ns u64][seed u64][count u32]` then per proposal
//! `[node_id u64][proposal_id u64][len u32][payload]`.
//! The leading version byte lets a future format coexist with old entries in the log.

use crate::state_machine::Proposal;

pub const ENTRY_FORMAT_V1: u8 = 1;
const HEADER_BYTES: usize = 1 + 8 + 8 + 4;
const PER_PROPOSAL_BYTES: usize = 8 + 8 + 4;

/// Decoded entry data; proposals borrow from the entry bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryData<'a> {
    pub timestamp_ns: u64,
    pub seed: u64,
    pub proposals: Vec<Proposal<'a>>,
}

/// Encoded size of an entry holding proposals with these payload sizes.
pub(crate) fn encoded_len(payload_lens: impl IntoIterator<Item = usize>) -> usize {
    HEADER_BYTES
        + payload_lens
            .into_iter()
            .map(|l| PER_PROPOSAL_BYTES + l)
            .sum::<usize>()
}

pub(crate) fn proposal_overhead_bytes() -> usize {
    PER_PROPOSAL_BYTES
}

pub(crate) fn header_bytes() -> usize {
    HEADER_BYTES
}

pub fn encode_entry_data(timestamp_ns: u64, seed: u64, proposals: &[Proposal<'_>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(encoded_len(proposals.iter().map(|p| p.payload.len())));
    out.push(ENTRY_FORMAT_V1);
    out.extend_from_slice(&timestamp_ns.to_be_bytes());
    out.extend_from_slice(&seed.to_be_bytes());
    out.extend_from_slice(&(proposals.len() as u32).to_be_bytes());
    for p in proposals {
        out.extend_from_slice(&p.node_id.to_be_bytes());
        out.extend_from_slice(&p.proposal_id.to_be_bytes());
        out.extend_from_slice(&(p.payload.len() as u32).to_be_bytes());
        out.extend_from_slice(p.payload);
    }
    out
}

/// Why entry bytes are not an entry this build can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryDecodeError {
    #[error("truncated: need {need} bytes, have {have}")]
    Truncated { need: usize, have: usize },
    #[error("unknown entry format version {0}")]
    UnknownVersion(u8),
    #[error("proposal count {0} exceeds entry size")]
    TooManyProposals(usize),
    #[error("{0} trailing bytes")]
    TrailingBytes(usize),
}

struct Cursor<'a> {
    buf: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], EntryDecodeError> {
        if self.buf.len() < n {
            return Err(EntryDecodeError::Truncated {
                need: n,
                have: self.buf.len(),
            });
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u64(&mut self) -> Result<u64, EntryDecodeError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, EntryDecodeError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
}

pub fn decode_entry_data(data: &[u8]) -> Result<EntryData<'_>, EntryDecodeError> {
    let mut c = Cursor { buf: data };
    let version = c.take(1)?[0];
    if version != ENTRY_FORMAT_V1 {
        return Err(EntryDecodeError::UnknownVersion(version));
    }
    let timestamp_ns = c.u64()?;
    let seed = c.u64()?;
    let count = c.u32()? as usize;
    // Bound the allocation by what the buffer can possibly hold.
    if count > c.buf.len() / PER_PROPOSAL_BYTES {
        return Err(EntryDecodeError::TooManyProposals(count));
    }
    let mut proposals = Vec::with_capacity(count);
    for _ in 0..count {
        let node_id = c.u64()?;
        let proposal_id = c.u64()?;
        let len = c.u32()? as usize;
        let payload = c.take(len)?;
        proposals.push(Proposal {
            node_id,
            proposal_id,
            payload,
        });
    }
    if !c.buf.is_empty() {
        return Err(EntryDecodeError::TrailingBytes(c.buf.len()));
    }
    Ok(EntryData {
        timestamp_ns,
        seed,
        proposals,
    })
}

/// Longest member address a conf change carries (`host:port`).
pub const MEMBER_ADDRESS_BYTES_MAX: usize = 256;

/// Context attached to conf-change entries: the proposer and its proposal (so its waiter can be
/// resolved) and, for an added node, the node's address (empty: not known), so that every member
/// — a later leader included — can reach it.
pub(crate) fn encode_cc_context(node_id: u64, proposal_id: u64, address: &str) -> Vec<u8> {
    let address = if address.len() <= MEMBER_ADDRESS_BYTES_MAX {
        address.as_bytes()
    } else {
        &[]
    };
    let mut v = Vec::with_capacity(17 + address.len());
    v.push(ENTRY_FORMAT_V1);
    v.extend_from_slice(&node_id.to_be_bytes());
    v.extend_from_slice(&proposal_id.to_be_bytes());
    v.extend_from_slice(address);
    v
}

/// `(proposer, proposal id, address)`; contexts written before addresses were carried have none.
pub(crate) fn decode_cc_context(ctx: &[u8]) -> Option<(u64, u64, &str)> {
    if ctx.len() < 17 || ctx.len() > 17 + MEMBER_ADDRESS_BYTES_MAX || ctx[0] != ENTRY_FORMAT_V1 {
        return None;
    }
    let node = u64::from_be_bytes(ctx[1..9].try_into().ok()?);
    let pid = u64::from_be_bytes(ctx[9..17].try_into().ok()?);
    let address = std::str::from_utf8(&ctx[17..]).ok()?;
    Some((node, pid, address))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conf_change_contexts_carry_the_address_and_old_ones_still_decode() {
        let ctx = encode_cc_context(2, 9, "10.0.0.4:7400");
        assert_eq!(decode_cc_context(&ctx), Some((2, 9, "10.0.0.4:7400")));
        assert_eq!(decode_cc_context(&ctx[..17]), Some((2, 9, "")));
        let long = "h".repeat(MEMBER_ADDRESS_BYTES_MAX + 1);
        assert_eq!(
            decode_cc_context(&encode_cc_context(2, 9, &long)),
            Some((2, 9, ""))
        );
        assert_eq!(decode_cc_context(&ctx[..16]), None);
        let mut bad = ctx.clone();
        bad[17] = 0xFF;
        assert_eq!(decode_cc_context(&bad), None);
    }

    #[test]
    fn roundtrip_and_rejects_garbage() {
        let ps = [
            Proposal {
                node_id: 1,
                proposal_id: 7,
                payload: b"abc",
            },
            Proposal {
                node_id: 2,
                proposal_id: 9,
                payload: b"",
            },
        ];
        let enc = encode_entry_data(123, 456, &ps);
        assert_eq!(enc.len(), encoded_len([3, 0]));
        let dec = decode_entry_data(&enc).unwrap();
        assert_eq!(dec.timestamp_ns, 123);
        assert_eq!(dec.seed, 456);
        assert_eq!(dec.proposals, ps.to_vec());
        for cut in 0..enc.len() {
            assert!(decode_entry_data(&enc[..cut]).is_err());
        }
        let mut bad = enc.clone();
        bad[0] = 9;
        assert!(decode_entry_data(&bad).is_err());
        let mut huge = enc.clone();
        huge[17..21].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode_entry_data(&huge).is_err());
        assert_eq!(
            decode_cc_context(&encode_cc_context(3, 4, "")),
            Some((3, 4, ""))
        );
        assert_eq!(decode_cc_context(b"x"), None);
    }
}
