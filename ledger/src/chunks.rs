//! How postings lie in RocksDB: in chunks, one key per run of an account's consecutive postings.
//!
//! The ledger sees one record per posting, keyed (account id, sequence number), as in any store.
//! In RocksDB the write-behind flusher ([`crate::writebehind`]) stores a generation's consecutive
//! postings of one account as one record, keyed by the first posting's key: a transfer's two
//! postings then cost RocksDB a share of one memtable insert instead of two (the key count, not
//! the bytes, is what RocksDB's writes cost; see docs/performance.md). A record that is not a
//! chunk (a snapshot install, an unbuffered store, a database written before chunks) holds one
//! posting, as before; both read the same.
//!
//! Invariant this relies on: postings are append-only — each key is written once and never
//! overwritten or deleted (only a whole-state replacement clears them). Chunks therefore never
//! overlap, and the record covering a posting is the last one at or before its key.

use crate::store::{posting_key, StoreError};

/// The key of a posting: a 16-byte account id, then a big-endian sequence number.
const ACCOUNT_BYTES: usize = 16;
const KEY_BYTES: usize = ACCOUNT_BYTES + 8;
/// First byte of a chunk; a single posting starts with its codec's version byte (1 or 2).
const CHUNK_TAG: u8 = 0xC5;
/// At most this many postings per chunk, so that reading one posting reads a bounded record.
pub(crate) const CHUNK_POSTINGS_MAX: usize = 64;

fn corrupt(what: &str) -> StoreError {
    StoreError::Io(format!("corrupt posting chunk: {what}"))
}

/// A posting key's parts: the account's id bytes and the sequence number (`None`: the key is
/// not posting-shaped).
pub(crate) fn split(key: &[u8]) -> Option<([u8; ACCOUNT_BYTES], u64)> {
    if key.len() != KEY_BYTES {
        return None;
    }
    let (account, seq) = key.split_first_chunk::<ACCOUNT_BYTES>()?;
    Some((*account, u64::from_be_bytes(seq.try_into().ok()?)))
}

/// One chunk record of consecutive postings' values (at least two; one is stored as it is);
/// `bytes` sizes it.
pub(crate) fn encode<'a>(values: impl Iterator<Item = &'a [u8]>, bytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + bytes);
    out.push(CHUNK_TAG);
    for v in values {
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
        out.extend_from_slice(v);
    }
    out
}

/// The posting values a stored record holds, in sequence order.
fn decode(v: &[u8]) -> Result<Vec<&[u8]>, StoreError> {
    if v.first() != Some(&CHUNK_TAG) {
        return Ok(vec![v]);
    }
    let mut out = Vec::new();
    let mut rest = &v[1..];
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| corrupt("truncated length"))?;
        let len = u32::from_le_bytes(*len) as usize;
        if tail.len() < len || out.len() == CHUNK_POSTINGS_MAX {
            return Err(corrupt("bad length"));
        }
        out.push(&tail[..len]);
        rest = &tail[len..];
    }
    if out.len() < 2 {
        return Err(corrupt("fewer than two postings"));
    }
    Ok(out)
}

/// The value of posting `key` in the stored record `(at, value)` — the last record at or before
/// `key` — if that record covers it.
pub(crate) fn find(key: &[u8], at: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
    let (Some((account, seq)), Some((at_account, first))) = (split(key), split(at)) else {
        return Ok((key == at).then(|| value.to_vec()));
    };
    if account != at_account || seq < first {
        return Ok(None);
    }
    let values = decode(value)?;
    Ok(usize::try_from(seq - first)
        .ok()
        .and_then(|i| values.get(i))
        .map(|v| v.to_vec()))
}

/// Where a RocksDB iterator must start to see every posting at or after `start`: at the record
/// covering `start`, found by `last_at_or_before`. Chunks being append-only, a record found
/// earlier than the iterator is opened is still at or before the covering one.
pub(crate) fn iter_start(
    start: &[u8],
    last_at_or_before: impl FnOnce(&[u8]) -> Result<Option<Box<[u8]>>, StoreError>,
) -> Result<Vec<u8>, StoreError> {
    if start.len() < ACCOUNT_BYTES {
        // Every record before such a start belongs to an account wholly before it.
        return Ok(start.to_vec());
    }
    Ok(match last_at_or_before(start)? {
        Some(k) if k.len() == KEY_BYTES && k[..ACCOUNT_BYTES] == start[..ACCOUNT_BYTES] => k.into(),
        _ => start.to_vec(),
    })
}

type Item = Result<(Box<[u8]>, Box<[u8]>), StoreError>;

/// The stored records of `items` as one record per posting, from `start` on.
pub(crate) fn expand<E>(
    items: impl Iterator<Item = Result<(Box<[u8]>, Box<[u8]>), E>>,
    start: Vec<u8>,
    err: impl Fn(E) -> StoreError,
) -> impl Iterator<Item = Item> {
    items
        .flat_map(move |item| {
            let rows: Vec<Item> = match item {
                Err(e) => vec![Err(err(e))],
                Ok((k, v)) => match (split(&k), decode(&v)) {
                    (_, Err(e)) => vec![Err(e)],
                    (_, Ok(values)) if values.len() == 1 => vec![Ok((k, v))],
                    (None, Ok(_)) => vec![Err(corrupt("chunk under a short key"))],
                    (Some((account, first)), Ok(values)) => values
                        .iter()
                        .enumerate()
                        .map(|(i, v)| {
                            let k = posting_key(&account, first + i as u64).into_boxed_slice();
                            Ok((k, Box::<[u8]>::from(*v)))
                        })
                        .collect(),
                },
            };
            rows
        })
        // Only the covering record's first postings can lie before `start`.
        .filter(move |r| r.as_ref().map_or(true, |(k, _)| **k >= *start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(a: u8, s: u64) -> Vec<u8> {
        posting_key(&[a; 16], s).into_vec()
    }

    #[test]
    fn a_chunk_answers_for_each_of_its_postings_and_no_other() {
        let values: Vec<Vec<u8>> = (0..5u8).map(|i| vec![1, i, i]).collect();
        let chunk = encode(values.iter().map(|v| v.as_slice()), 20);
        let at = key(7, 10);
        for (i, v) in values.iter().enumerate() {
            assert_eq!(
                find(&key(7, 10 + i as u64), &at, &chunk).unwrap(),
                Some(v.clone())
            );
        }
        assert_eq!(find(&key(7, 15), &at, &chunk).unwrap(), None);
        assert_eq!(find(&key(7, 9), &at, &chunk).unwrap(), None);
        assert_eq!(find(&key(8, 11), &at, &chunk).unwrap(), None);
        // A single posting is stored as it is.
        assert_eq!(find(&at, &at, &[1, 2]).unwrap(), Some(vec![1, 2]));
        assert_eq!(find(&key(7, 11), &at, &[1, 2]).unwrap(), None);
        let rows: Vec<_> = expand(
            [Ok::<_, StoreError>((at.clone().into(), chunk.into()))].into_iter(),
            key(7, 12),
            |e| e,
        )
        .map(|r| r.unwrap())
        .collect();
        let want: Vec<(Box<[u8]>, Box<[u8]>)> = (2..5)
            .map(|i| (key(7, 10 + i).into(), values[i as usize].clone().into()))
            .collect();
        assert_eq!(rows, want);
    }

    #[test]
    fn damaged_chunks_are_errors_not_panics() {
        let at = key(1, 1);
        for bad in [
            vec![CHUNK_TAG, 9, 0, 0, 0, 1],
            vec![CHUNK_TAG, 1, 0],
            vec![CHUNK_TAG, 1, 0, 0, 0, 5],
        ] {
            assert!(find(&key(1, 1), &at, &bad).is_err(), "{bad:?}");
        }
    }
}
