//! `audit verify-chain`, `audit checkpoint`, `audit checkpoint-key`, `audit verify-checkpoint`:
//! the digest chain, checked replica by replica, and signed checkpoints of it.
//!
//! Each replica is asked directly (one client per member address) for its own chain, so a replica
//! that diverged cannot hide behind the leader. At every index the replicas' digests must be equal
//! and each retained link must recompute from the digest before it and the replica's journal; the
//! first index where either fails is named. A checkpoint pins the digest at one index under the
//! cluster's audit key; verifying it later walks the same check from that index to today, so the
//! history up to the index cannot have been rewritten without the check failing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;

/// Links fetched per call (the server's page limit).
const CHAIN_PAGE: u64 = 1_000;
const CHECKPOINT_FORMAT: &str = "suanpan-checkpoint/1";

/// One member as the audit sees it.
struct Replica {
    id: u64,
    address: String,
    client: Option<Client>,
    error: String,
    applied_index: u64,
    journal_from: u64,
}

impl Replica {
    fn json(&self) -> Value {
        json!({"id": self.id, "address": self.address, "reachable": self.client.is_some(),
               "error": self.error, "applied_index": self.applied_index,
               "journal_from": self.journal_from})
    }
}

/// Every member of the cluster (as the reached node knows them), each with its own client.
async fn replicas(conn: &Conn, c: &Client) -> Result<Vec<Replica>> {
    let key = conn.signing_key()?;
    let first = c.get_chain(u64::MAX, 1).await?;
    let mut out = Vec::with_capacity(first.members.len());
    for m in first.members {
        let mut r = Replica {
            id: m.id,
            address: m.address.clone(),
            client: None,
            error: String::new(),
            applied_index: 0,
            journal_from: 0,
        };
        if m.address.is_empty() {
            r.error = "address unknown".into();
            out.push(r);
            continue;
        }
        let mut cfg = conn.config(vec![m.address.clone()])?;
        cfg.max_attempts = 2;
        cfg.request_timeout_ms = 5_000;
        let reached = match Client::connect(cfg, key.clone()) {
            Ok(mc) => match mc.get_chain(u64::MAX, 1).await {
                Ok(p) if p.node_id == m.id => Ok((mc, p)),
                Ok(p) => Err(format!("{} answers as node {}", m.address, p.node_id)),
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e.to_string()),
        };
        match reached {
            Ok((mc, p)) => {
                r.applied_index = p.applied_index;
                r.journal_from = p.journal_from;
                r.client = Some(mc);
            }
            Err(e) => r.error = e,
        }
        out.push(r);
    }
    Ok(out)
}

/// The first place the chain does not hold.
struct Break {
    index: u64,
    reason: String,
    digests: BTreeMap<u64, String>,
}

/// What walking the chain over `[from, to]` on every reachable replica found.
struct Walk {
    from: u64,
    to: u64,
    indexes_checked: u64,
    links_recomputed: u64,
    not_journaled: u64,
    first_break: Option<Break>,
    /// The replicas' common digest at `to`.
    digest_at_to: String,
}

/// Walks every reachable replica's chain from `from` to the lowest applied index among them,
/// page by page; stops at the first break. `expect` pins one index's digest (a checkpoint).
async fn walk(replicas: &[Replica], from: u64, expect: Option<(u64, &str)>) -> Result<Walk> {
    let live: Vec<&Replica> = replicas.iter().filter(|r| r.client.is_some()).collect();
    let to = live.iter().map(|r| r.applied_index).min().unwrap_or(0);
    let mut w = Walk {
        from,
        to,
        indexes_checked: 0,
        links_recomputed: 0,
        not_journaled: 0,
        first_break: None,
        digest_at_to: String::new(),
    };
    if live.is_empty() || from > to {
        return Ok(w);
    }
    let bar = indicatif::ProgressBar::new(to - from + 1);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} indexes {per_sec}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut at = from;
    'pages: while at <= to {
        let n = (to - at + 1).min(CHAIN_PAGE);
        let mut pages = Vec::with_capacity(live.len());
        for r in &live {
            let c = r.client.as_ref().expect("live replicas have a client");
            let p = c
                .get_chain(at, n as u32)
                .await
                .with_context(|| format!("node {} at {}", r.id, r.address))?;
            pages.push((r.id, p.links));
        }
        for k in 0..n as usize {
            let index = at + k as u64;
            let mut digests = BTreeMap::new();
            let mut recomputed_bad = None;
            let mut journaled = 0u64;
            for (id, links) in &pages {
                let Some(l) = links.get(k).filter(|l| l.index == index) else {
                    bail!("node {id} did not return index {index}");
                };
                digests.insert(*id, l.digest.clone());
                match l.recomputed.as_str() {
                    "ok" => journaled += 1,
                    "mismatch" if recomputed_bad.is_none() => recomputed_bad = Some(*id),
                    _ => {}
                }
            }
            w.indexes_checked += 1;
            if journaled > 0 {
                w.links_recomputed += 1;
            } else {
                w.not_journaled += 1;
            }
            let recorded: std::collections::BTreeSet<&String> =
                digests.values().filter(|d| !d.is_empty()).collect();
            let reason = if recorded.len() > 1 {
                Some("replicas differ".to_string())
            } else if let Some(id) = recomputed_bad {
                Some(format!(
                    "node {id}: recomputing the link from its journal gives another digest"
                ))
            } else {
                match expect {
                    Some((i, d)) if i == index && recorded.iter().any(|x| x.as_str() != d) => {
                        Some(format!("differs from the checkpoint's digest {d}"))
                    }
                    Some((i, _)) if i == index && recorded.is_empty() => {
                        Some("no replica has a digest recorded at the checkpoint's index".into())
                    }
                    _ => None,
                }
            };
            if let Some(reason) = reason {
                w.first_break = Some(Break {
                    index,
                    reason,
                    digests,
                });
                break 'pages;
            }
            if index == to {
                w.digest_at_to = recorded.into_iter().next().cloned().unwrap_or_default();
            }
        }
        bar.inc(n);
        at += n;
    }
    bar.finish_and_clear();
    Ok(w)
}

/// Prints the walk's outcome; exit 3 when the chain broke or a replica could not be checked.
fn report(conn: &Conn, replicas: &[Replica], w: &Walk, extra: Value) -> Exit {
    let unreachable: Vec<&Replica> = replicas.iter().filter(|r| r.client.is_none()).collect();
    let ok = w.first_break.is_none() && unreachable.is_empty() && w.from <= w.to;
    if conn.json {
        let first_break = w.first_break.as_ref().map(|b| {
            json!({"index": b.index, "reason": b.reason,
                   "digests": b.digests.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>()})
        });
        let mut doc = json!({
            "ok": ok, "from": w.from, "to": w.to,
            "replicas": replicas.iter().map(Replica::json).collect::<Vec<_>>(),
            "indexes_checked": w.indexes_checked, "links_recomputed": w.links_recomputed,
            "not_journaled": w.not_journaled, "digest_at_to": w.digest_at_to,
            "first_break": first_break,
        });
        if let (Some(d), Some(e)) = (doc.as_object_mut(), extra.as_object()) {
            d.extend(e.clone());
        }
        println!("{doc}");
    } else {
        for r in replicas {
            if r.client.is_some() {
                println!(
                    "node {:<3} {:<22} applied {:>10}  journal from {}",
                    r.id, r.address, r.applied_index, r.journal_from
                );
            } else {
                println!(
                    "node {:<3} {:<22} NOT CHECKED: {}",
                    r.id, r.address, r.error
                );
            }
        }
        match &w.first_break {
            Some(b) => {
                println!("BROKEN at index {}: {}", b.index, b.reason);
                for (id, d) in &b.digests {
                    println!(
                        "  node {id}: {}",
                        if d.is_empty() { "(none recorded)" } else { d }
                    );
                }
            }
            None if w.from > w.to => println!(
                "Nothing to check: index {} is past what every replica applied ({}).",
                w.from, w.to
            ),
            None => {
                println!(
                    "Indexes {}..={} on {} replicas: digests equal at every index; {} links \
                     recomputed from the journal, {} no longer journaled.",
                    w.from,
                    w.to,
                    replicas.len() - unreachable.len(),
                    w.links_recomputed,
                    w.not_journaled
                );
                println!("Digest at {}: {}", w.to, w.digest_at_to);
            }
        }
        if !unreachable.is_empty() {
            println!(
                "Not every replica could be checked ({} of {}).",
                unreachable.len(),
                replicas.len()
            );
        }
        println!("{}", if ok { "OK" } else { "NOT VERIFIED" });
    }
    Exit(if ok { 0 } else { 3 })
}

pub(super) async fn verify_chain(conn: &Conn, c: &Client, from: u64) -> Result<Exit> {
    let reps = replicas(conn, c).await?;
    let w = walk(&reps, from.max(1), None).await?;
    Ok(report(conn, &reps, &w, json!({})))
}

/// A checkpoint file.
struct Checkpoint {
    node_id: u64,
    index: u64,
    digest: [u8; 32],
    timestamp_ns: u64,
    audit_key: [u8; 32],
    signature: [u8; 64],
}

impl Checkpoint {
    fn json(&self) -> Value {
        json!({"format": CHECKPOINT_FORMAT, "node_id": self.node_id, "index": self.index,
               "digest": hex::encode(self.digest), "log_time_ns": self.timestamp_ns,
               "log_time": log_time(self.timestamp_ns),
               "audit_key": hex::encode(self.audit_key), "signature": hex::encode(self.signature)})
    }

    fn signed(&self) -> bool {
        api::auth::verify_checkpoint(
            &self.audit_key,
            self.index,
            &self.digest,
            self.timestamp_ns,
            &self.signature,
        )
    }

    fn parse(v: &Value) -> Result<Checkpoint, String> {
        if v["format"] != CHECKPOINT_FORMAT {
            return Err(format!("format is not {CHECKPOINT_FORMAT}"));
        }
        let num = |k: &str| v[k].as_u64().ok_or_else(|| format!("{k}: not a number"));
        Ok(Checkpoint {
            node_id: num("node_id")?,
            index: num("index")?,
            digest: hex_field(v, "digest")?,
            timestamp_ns: num("log_time_ns")?,
            audit_key: hex_field(v, "audit_key")?,
            signature: hex_field(v, "signature")?,
        })
    }
}

fn hex_field<const N: usize>(v: &Value, k: &str) -> Result<[u8; N], String> {
    hex_bytes(v[k].as_str().ok_or_else(|| format!("{k}: missing"))?, k)
}

fn hex_bytes<const N: usize>(s: &str, what: &str) -> Result<[u8; N], String> {
    let b = hex::decode(s).map_err(|e| format!("{what}: {e}"))?;
    b.try_into()
        .map_err(|_| format!("{what}: not {N} bytes of hex"))
}

fn log_time(ns: u64) -> String {
    chrono::DateTime::from_timestamp((ns / 1_000_000_000) as i64, (ns % 1_000_000_000) as u32)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        .unwrap_or_default()
}

pub(super) async fn checkpoint(conn: &Conn, c: &Client, out: &Path) -> Result<Exit> {
    let r = c.get_checkpoint().await?;
    let cp = Checkpoint {
        node_id: r.node_id,
        index: r.index,
        digest: hex_bytes(&r.digest, "digest").map_err(|e| anyhow!(e))?,
        timestamp_ns: r.timestamp_ns,
        audit_key: hex_bytes(&r.audit_key, "audit_key").map_err(|e| anyhow!(e))?,
        signature: hex_bytes(&r.signature, "signature").map_err(|e| anyhow!(e))?,
    };
    if !cp.signed() {
        bail!(
            "node {} returned a checkpoint its audit key did not sign",
            r.node_id
        );
    }
    let doc = cp.json();
    // Written whole or not at all: a temporary file beside the target, then a rename.
    let tmp = out.with_extension("tmp");
    std::fs::write(&tmp, format!("{}\n", serde_json::to_string_pretty(&doc)?))
        .with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    if conn.json {
        println!("{doc}");
    } else {
        println!(
            "Checkpoint at index {} (log time {}), digest {}",
            cp.index,
            log_time(cp.timestamp_ns),
            hex::encode(cp.digest)
        );
        println!(
            "Signed by the audit key {}; written to {}",
            hex::encode(cp.audit_key),
            out.display()
        );
    }
    Ok(Exit(0))
}

pub(super) async fn checkpoint_key(conn: &Conn, c: &Client) -> Result<Exit> {
    let k = c.get_audit_key().await?;
    if conn.json {
        println!("{}", json!({"audit_key": k}));
    } else {
        println!("{k}");
    }
    Ok(Exit(0))
}

pub(super) async fn verify_checkpoint(
    conn: &Conn,
    c: &Client,
    file: &PathBuf,
    audit_key: Option<String>,
) -> Result<Exit> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| Usage(format!("{}: not a checkpoint: {e}", file.display())))?;
    let cp = Checkpoint::parse(&v)
        .map_err(|e| Usage(format!("{}: not a checkpoint: {e}", file.display())))?;
    // The key the checkpoint must be signed by: the one the auditor pinned, else the cluster's.
    let trusted = match audit_key {
        Some(k) => k.to_lowercase(),
        None => c.get_audit_key().await?,
    };
    let signature_ok = cp.signed();
    let mut problem = None;
    if hex::encode(cp.audit_key) != trusted {
        problem = Some(format!(
            "the checkpoint names audit key {}, not {trusted}",
            hex::encode(cp.audit_key)
        ));
    } else if !signature_ok {
        problem = Some("the signature does not match the checkpoint".to_string());
    }
    let reps = replicas(conn, c).await?;
    let w = match problem {
        Some(reason) => Walk {
            from: cp.index,
            to: cp.index,
            indexes_checked: 0,
            links_recomputed: 0,
            not_journaled: 0,
            first_break: Some(Break {
                index: cp.index,
                reason,
                digests: BTreeMap::new(),
            }),
            digest_at_to: String::new(),
        },
        None => {
            let d = hex::encode(cp.digest);
            walk(&reps, cp.index.max(1), Some((cp.index, &d))).await?
        }
    };
    if !conn.json {
        println!(
            "Checkpoint {}: index {}, log time {}, digest {}",
            file.display(),
            cp.index,
            log_time(cp.timestamp_ns),
            hex::encode(cp.digest)
        );
    }
    Ok(report(
        conn,
        &reps,
        &w,
        json!({"checkpoint": cp.json(), "signature_ok": signature_ok,
               "audit_key_trusted": hex::encode(cp.audit_key) == trusted}),
    ))
}
