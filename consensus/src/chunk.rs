//! Framing of encoded raft messages into bounded chunks for the transport.
//!
//! Snapshot messages can be arbitrarily large; transports (gRPC) must never see an unbounded
//! frame. Every outgoing message is split into frames of at most `max_frame_bytes`:
//!
//! `[magic u8 = 0xC1][from u64][message_id u64][chunk_index u32][chunk_count u32][payload]`
//!
//! Frames of one message must arrive in order (one ordered stream per peer); a gap, a new
//! message id or an oversized message discards the partial message — raft retransmits.

use std::collections::HashMap;

pub const CHUNK_HEADER_BYTES: usize = 1 + 8 + 8 + 4 + 4;
const MAGIC: u8 = 0xC1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    #[error("message of {0} bytes exceeds the reassembly limit")]
    TooLarge(u64),
    #[error("out-of-order chunk; partial message discarded")]
    OutOfOrder,
    #[error("too many concurrent partial messages")]
    TooManyPartials,
}

/// Split an encoded message into frames of at most `max_frame_bytes` (header included).
/// Always returns at least one frame. `message_id` must differ between consecutive messages of
/// the same sender (a per-sender counter).
pub fn chunk_message(
    from: u64,
    message_id: u64,
    msg: &[u8],
    max_frame_bytes: usize,
) -> Vec<Vec<u8>> {
    assert!(
        max_frame_bytes > CHUNK_HEADER_BYTES,
        "max_frame_bytes too small"
    );
    let body = max_frame_bytes - CHUNK_HEADER_BYTES;
    let count = msg.len().div_ceil(body).max(1);
    let mut frames = Vec::with_capacity(count);
    for i in 0..count {
        let part = &msg[(i * body).min(msg.len())..((i + 1) * body).min(msg.len())];
        let mut f = Vec::with_capacity(CHUNK_HEADER_BYTES + part.len());
        f.push(MAGIC);
        f.extend_from_slice(&from.to_be_bytes());
        f.extend_from_slice(&message_id.to_be_bytes());
        f.extend_from_slice(&(i as u32).to_be_bytes());
        f.extend_from_slice(&(count as u32).to_be_bytes());
        f.extend_from_slice(part);
        frames.push(f);
    }
    frames
}

struct Partial {
    message_id: u64,
    next_index: u32,
    count: u32,
    buf: Vec<u8>,
}

/// Reassembles frames produced by [`chunk_message`]. Memory is bounded by `max_message_bytes`
/// per message, `max_total_bytes` over all partial messages and `max_partials` senders.
pub struct Reassembler {
    max_message_bytes: usize,
    max_total_bytes: usize,
    max_partials: usize,
    partials: HashMap<u64, Partial>,
    buffered_bytes: usize,
}

impl Reassembler {
    pub fn new(max_message_bytes: usize) -> Self {
        Reassembler {
            max_message_bytes,
            max_total_bytes: max_message_bytes.saturating_mul(2),
            max_partials: 16,
            partials: HashMap::new(),
            buffered_bytes: 0,
        }
    }

    pub fn with_limits(
        max_message_bytes: usize,
        max_total_bytes: usize,
        max_partials: usize,
    ) -> Self {
        Reassembler {
            max_message_bytes,
            max_total_bytes,
            max_partials,
            partials: HashMap::new(),
            buffered_bytes: 0,
        }
    }

    /// Bytes currently held in partial messages.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered_bytes
    }

    fn drop_partial(&mut self, from: u64) {
        if let Some(p) = self.partials.remove(&from) {
            self.buffered_bytes -= p.buf.len();
        }
    }

    /// Feed one frame. Returns `Some((from, message))` when a message is complete.
    pub fn push(&mut self, frame: &[u8]) -> Result<Option<(u64, Vec<u8>)>, ChunkError> {
        if frame.len() < CHUNK_HEADER_BYTES {
            return Err(ChunkError::Malformed("short frame"));
        }
        if frame[0] != MAGIC {
            return Err(ChunkError::Malformed("bad magic"));
        }
        let u64_at = |o: usize| u64::from_be_bytes(frame[o..o + 8].try_into().expect("8"));
        let u32_at = |o: usize| u32::from_be_bytes(frame[o..o + 4].try_into().expect("4"));
        let (from, message_id, index, count) = (u64_at(1), u64_at(9), u32_at(17), u32_at(21));
        let part = &frame[CHUNK_HEADER_BYTES..];
        if count == 0 || index >= count {
            return Err(ChunkError::Malformed("bad chunk index/count"));
        }
        if count == 1 {
            // Fast path; also abandons any stale partial of this sender.
            self.drop_partial(from);
            if part.len() > self.max_message_bytes {
                return Err(ChunkError::TooLarge(part.len() as u64));
            }
            return Ok(Some((from, part.to_vec())));
        }
        if index == 0 {
            self.drop_partial(from);
            if self.partials.len() >= self.max_partials {
                return Err(ChunkError::TooManyPartials);
            }
            self.partials.insert(
                from,
                Partial {
                    message_id,
                    next_index: 0,
                    count,
                    buf: Vec::new(),
                },
            );
        }
        let ok = matches!(self.partials.get(&from),
            Some(p) if p.message_id == message_id && p.next_index == index && p.count == count);
        if !ok {
            self.drop_partial(from);
            return Err(ChunkError::OutOfOrder);
        }
        let cur_len = self.partials[&from].buf.len();
        if cur_len + part.len() > self.max_message_bytes {
            self.drop_partial(from);
            return Err(ChunkError::TooLarge((cur_len + part.len()) as u64));
        }
        if self.buffered_bytes + part.len() > self.max_total_bytes {
            self.drop_partial(from);
            return Err(ChunkError::TooLarge(
                (self.buffered_bytes + part.len()) as u64,
            ));
        }
        let p = self.partials.get_mut(&from).expect("checked above");
        p.buf.extend_from_slice(part);
        p.next_index += 1;
        self.buffered_bytes += part.len();
        if p.next_index == p.count {
            let p = self.partials.remove(&from).expect("present");
            self.buffered_bytes -= p.buf.len();
            return Ok(Some((from, p.buf)));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_various_sizes() {
        let mut r = Reassembler::new(1 << 20);
        for len in [0usize, 1, 10, 74, 75, 76, 1000, 5000] {
            let msg: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let frames = chunk_message(7, len as u64, &msg, 100);
            assert!(frames.iter().all(|f| f.len() <= 100));
            let mut out = None;
            for f in &frames {
                assert!(out.is_none());
                out = r.push(f).unwrap();
            }
            assert_eq!(out, Some((7, msg)));
            assert_eq!(r.buffered_bytes(), 0);
        }
    }

    #[test]
    fn interleaved_senders_and_errors() {
        let mut r = Reassembler::with_limits(1000, 1500, 2);
        let a: Vec<u8> = vec![1; 300];
        let b: Vec<u8> = vec![2; 300];
        let fa = chunk_message(1, 1, &a, 125);
        let fb = chunk_message(2, 1, &b, 125);
        for (x, y) in fa.iter().zip(fb.iter()).take(fa.len() - 1) {
            assert_eq!(r.push(x).unwrap(), None);
            assert_eq!(r.push(y).unwrap(), None);
        }
        assert_eq!(r.push(fa.last().unwrap()).unwrap(), Some((1, a)));
        assert_eq!(r.push(fb.last().unwrap()).unwrap(), Some((2, b)));
        // Gap: skip a chunk.
        let fc = chunk_message(3, 9, &[3; 300], 125);
        r.push(&fc[0]).unwrap();
        assert_eq!(r.push(&fc[2]), Err(ChunkError::OutOfOrder));
        assert_eq!(r.buffered_bytes(), 0);
        // Too large.
        let big = chunk_message(4, 1, &[0; 2000], 125);
        let mut saw = false;
        for f in &big {
            if let Err(ChunkError::TooLarge(_)) = r.push(f) {
                saw = true;
                break;
            }
        }
        assert!(saw);
        // Garbage never panics.
        for junk in [&b""[..], &[0xC1; 5][..], &[0u8; 40][..]] {
            assert!(r.push(junk).is_err());
        }
        let mut bad = chunk_message(5, 1, b"hi", 100).remove(0);
        bad[21..25].copy_from_slice(&0u32.to_be_bytes());
        assert!(r.push(&bad).is_err());
    }
}
