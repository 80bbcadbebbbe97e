//! The body of the `peer_frames` fuzz target (and of its stable corpus replay): everything a
//! node decodes from a peer's bytes before Raft sees them.
//!
//! Input: repeated `[u16 length BE][length bytes]`, each chunk one transport frame. Every frame
//! goes through a [`Reassembler`] with small limits; every message it completes is decoded as a
//! Raft `Message`, re-encoded and decoded again (the round trip must be stable), and the data of
//! every entry it carries is decoded as entry data ([`decode_entry_data`]). The last chunk is also
//! cut with [`chunk_message`] into small frames and reassembled, which must give it back.
//!
//! Checked: no panic on any input; the reassembler never holds more than its limits, never
//! returns a message over the per-message limit; decode → encode → decode is a fixed point; a
//! chunked message reassembles to itself.
//!
//! Raft's own state machine is not fed these messages: Raft trusts its (authenticated) members,
//! and raft-rs asserts on messages a correct member never sends.

use prost011::Message as _;
use raft::prelude::Message;

use crate::{chunk_message, decode_entry_data, Reassembler};

/// Limits small enough that the fuzzer reaches them.
const MESSAGE_BYTES_MAX: usize = 4 << 10;
const TOTAL_BYTES_MAX: usize = 8 << 10;
const PARTIALS_MAX: usize = 4;
/// Most frames per input.
const FRAMES_MAX: usize = 256;

/// Splits the input into frames.
fn frames(mut data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while data.len() >= 2 && out.len() < FRAMES_MAX {
        let len = u16::from_be_bytes([data[0], data[1]]) as usize;
        data = &data[2..];
        let take = len.min(data.len());
        out.push(&data[..take]);
        data = &data[take..];
    }
    out
}

/// Decodes a complete message the way a node does, checking the round trip and every entry.
fn decode_message(bytes: &[u8]) {
    let Ok(m) = Message::decode(bytes) else {
        return;
    };
    let again = m.encode_to_vec();
    let m2 = Message::decode(&again[..]).expect("re-encoded message decodes");
    assert_eq!(m, m2, "decode → encode → decode is not a fixed point");
    for e in &m.entries {
        if let Ok(d) = decode_entry_data(&e.data) {
            for p in &d.proposals {
                assert!(p.payload.len() <= e.data.len());
            }
        }
    }
    if let Some(s) = &m.snapshot {
        let _ = s.get_metadata().index;
    }
}

/// One input's run; panics on any violated invariant (that is the finding).
pub fn fuzz_peer_frames(data: &[u8]) {
    let mut r = Reassembler::with_limits(MESSAGE_BYTES_MAX, TOTAL_BYTES_MAX, PARTIALS_MAX);
    let fs = frames(data);
    for f in &fs {
        if let Ok(Some((_from, msg))) = r.push(f) {
            assert!(msg.len() <= MESSAGE_BYTES_MAX, "message over the limit");
            decode_message(&msg);
        }
        assert!(
            r.buffered_bytes() <= TOTAL_BYTES_MAX,
            "reassembler holds {} bytes",
            r.buffered_bytes()
        );
    }
    // Whatever the last chunk is, as a message, survives chunking and reassembly.
    if let Some(last) = fs.last().filter(|l| l.len() <= MESSAGE_BYTES_MAX) {
        let mut r = Reassembler::with_limits(MESSAGE_BYTES_MAX, TOTAL_BYTES_MAX, PARTIALS_MAX);
        let max_frame = crate::CHUNK_HEADER_BYTES + 1 + last.len() % 97;
        let mut got = None;
        for f in chunk_message(7, 1, last, max_frame) {
            assert!(f.len() <= max_frame, "a frame over its limit");
            if let Some(m) = r.push(&f).expect("our own frames reassemble") {
                assert!(got.is_none(), "one message, completed twice");
                got = Some(m);
            }
        }
        assert_eq!(
            got,
            Some((7, last.to_vec())),
            "chunked message came back different"
        );
    }
}

/// Frames that encode real Raft messages (seeds for the corpus).
pub fn seed_inputs() -> Vec<Vec<u8>> {
    use raft::prelude::{Entry, MessageType, Snapshot, SnapshotMetadata};
    let entry_data = crate::encode_entry_data(
        1_790_000_000_000_000_000,
        42,
        &[crate::Proposal {
            node_id: 1,
            proposal_id: 9,
            payload: b"\x01payload",
        }],
    );
    let append = Message {
        msg_type: MessageType::MsgAppend as i32,
        to: 2,
        from: 1,
        term: 3,
        log_term: 3,
        index: 10,
        entries: vec![Entry {
            term: 3,
            index: 11,
            data: entry_data.into(),
            ..Default::default()
        }],
        commit: 10,
        ..Default::default()
    };
    let heartbeat = Message {
        msg_type: MessageType::MsgHeartbeat as i32,
        to: 2,
        from: 1,
        term: 3,
        commit: 11,
        ..Default::default()
    };
    let snapshot = Message {
        msg_type: MessageType::MsgSnapshot as i32,
        to: 3,
        from: 1,
        term: 3,
        snapshot: Some(Snapshot {
            data: vec![0x53; 300].into(),
            metadata: Some(SnapshotMetadata {
                index: 40,
                term: 3,
                ..Default::default()
            }),
        }),
        ..Default::default()
    };
    let mut out = Vec::new();
    for (i, m) in [append, heartbeat, snapshot].iter().enumerate() {
        let bytes = m.encode_to_vec();
        // One frame, then the same message in small frames.
        for max in [
            bytes.len() + crate::CHUNK_HEADER_BYTES,
            crate::CHUNK_HEADER_BYTES + 50,
        ] {
            let mut input = Vec::new();
            for f in chunk_message(1, i as u64 + 1, &bytes, max) {
                input.extend_from_slice(&(f.len() as u16).to_be_bytes());
                input.extend_from_slice(&f);
            }
            out.push(input);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_run_clean_and_bytes_do_not_panic() {
        for s in seed_inputs() {
            fuzz_peer_frames(&s);
        }
        use rand::{Rng, SeedableRng};
        let seed = 5;
        eprintln!("seed={seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..2_000 {
            let n = rng.gen_range(0..600);
            let bytes: Vec<u8> = (0..n).map(|_| rng.gen()).collect();
            fuzz_peer_frames(&bytes);
        }
        // Mutations of real frames reach the decoders past the framing checks.
        for s in seed_inputs() {
            for _ in 0..300 {
                let mut m = s.clone();
                for _ in 0..rng.gen_range(1..4) {
                    let i = rng.gen_range(0..m.len());
                    m[i] = rng.gen();
                }
                fuzz_peer_frames(&m);
            }
        }
    }
}
