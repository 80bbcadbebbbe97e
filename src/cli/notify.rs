//! `suanpan notify`: forwards a merchant's flow events to its notify URL as HTTP POSTs (JSON), the
//! way WeChat Pay calls a merchant's `notify_url`.
//!
//! Delivery is at least once: each event is retried with exponential backoff until the URL answers
//! 2xx; the cursor file (the last log index whose events were all delivered) is replaced
//! atomically after each batch, so a restart resumes after it and redelivers at most the batch it
//! was in. Receivers deduplicate by the event's `id` (`"<index>-<seq>"`).

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;

use super::*;

#[derive(Args, Debug)]
pub struct NotifyArgs {
    /// The merchant (or any account) whose events to forward; repeat for several.
    #[arg(long = "account", required = true)]
    pub accounts: Vec<String>,
    /// Where to POST each event: `http://host:port/path` (plain HTTP; put a TLS proxy in front for
    /// HTTPS).
    #[arg(long)]
    pub url: String,
    /// Holds the last log index whose events were all delivered; created if missing.
    #[arg(long)]
    pub cursor_file: PathBuf,
    /// Where to start when the cursor file does not exist yet.
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    /// Longest wait between retries of one event, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub retry_max_ms: u64,
    /// Timeout of one POST, in milliseconds.
    #[arg(long, default_value_t = 5_000)]
    pub timeout_ms: u64,
    /// Stop after delivering this many events (for scripts and tests).
    #[arg(long)]
    pub max_events: Option<u64>,
}

/// Where a POST goes.
struct Target {
    authority: String,
    path: String,
}

fn parse_url(url: &str) -> Result<Target> {
    let uri: hyper::Uri = url.parse().map_err(|e| anyhow!("--url {url:?}: {e}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            bail!("--url: https is not supported; put a TLS-terminating proxy in front")
        }
        _ => bail!("--url {url:?}: expected http://host:port/path"),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow!("--url {url:?} has no host"))?
        .to_string();
    let path = uri
        .path_and_query()
        .map_or("/".to_string(), |p| p.as_str().to_string());
    Ok(Target { authority, path })
}

/// One POST; `Ok(status)` for any HTTP answer.
async fn post(t: &Target, body: &str, timeout: Duration) -> Result<u16> {
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(&t.authority).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = hyper::Request::post(&t.path)
            .header(hyper::header::HOST, &t.authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.to_string())))?;
        let resp = sender.send_request(req).await?;
        Ok::<u16, anyhow::Error>(resp.status().as_u16())
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| anyhow!("timed out after {} ms", timeout.as_millis()))?
}

fn read_cursor(path: &Path) -> Result<Option<u64>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().parse().with_context(|| {
            format!("{}: not a log index: {:?}", path.display(), s.trim())
        })?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Replaces the cursor atomically (write a temporary file, sync it, rename it over).
fn write_cursor(path: &Path, index: u64) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        use std::io::Write;
        let mut f =
            std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
        writeln!(f, "{index}")?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// The JSON body of one event (documented in docs/payments.md).
fn event_body(ev: &pb::WatchEvent, f: &pb::FlowEvent) -> Value {
    json!({
        "id": format!("{}-{}", ev.index, f.seq),
        "index": ev.index,
        "seq": f.seq,
        "timestamp_ns": ev.timestamp_ns,
        "kind": f.kind,
        "flow_id": f.flow_id,
        "command_id": f.command_id,
        "state": f.state,
        "accounts": f.account_ids,
        "amount": f.amount,
        "currency": f.currency,
    })
}

pub async fn notify(conn: &Conn, a: NotifyArgs) -> Result<Exit> {
    let target = parse_url(&a.url)?;
    let accounts: Vec<Id> = a
        .accounts
        .iter()
        .map(|s| parse_id(s))
        .collect::<Result<_>>()?;
    let c = conn.client()?;
    let timeout = Duration::from_millis(a.timeout_ms.max(1));
    let retry_max = Duration::from_millis(a.retry_max_ms.max(10));
    let mut delivered = 0u64;
    let mut reconnect_wait = Duration::from_millis(100);
    loop {
        let from = match read_cursor(&a.cursor_file)? {
            Some(i) => i + 1,
            None => a.from.max(1),
        };
        let mut stream = match c.watch_flow_events(from, &accounts).await {
            Ok(s) => s,
            Err(e)
                if e.status()
                    .is_some_and(|s| s.code() == tonic::Code::OutOfRange) =>
            {
                bail!("{e}")
            }
            Err(e) => {
                eprintln!("notify: watch from {from}: {e}; retrying");
                tokio::time::sleep(reconnect_wait).await;
                reconnect_wait = (reconnect_wait * 2).min(retry_max);
                continue;
            }
        };
        loop {
            let ev = match stream.message().await {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(s) if s.code() == tonic::Code::OutOfRange => bail!("{}", s.message()),
                Err(s) => {
                    eprintln!(
                        "notify: stream ended: {}: {}; resuming",
                        s.code(),
                        s.message()
                    );
                    break;
                }
            };
            reconnect_wait = Duration::from_millis(100);
            for f in &ev.flow_events {
                let body = event_body(&ev, f).to_string();
                let mut wait = Duration::from_millis(100);
                let mut attempt = 1u32;
                loop {
                    match post(&target, &body, timeout).await {
                        Ok(status) if (200..300).contains(&status) => break,
                        Ok(status) => eprintln!(
                            "notify: event {}-{} attempt {attempt}: HTTP {status}",
                            ev.index, f.seq
                        ),
                        Err(e) => eprintln!(
                            "notify: event {}-{} attempt {attempt}: {e:#}",
                            ev.index, f.seq
                        ),
                    }
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(retry_max);
                    attempt += 1;
                }
                if conn.json {
                    println!(
                        "{}",
                        json!({"delivered": format!("{}-{}", ev.index, f.seq), "kind": f.kind, "flow_id": f.flow_id, "attempts": attempt})
                    );
                }
                delivered += 1;
            }
            write_cursor(&a.cursor_file, ev.index)?;
            if a.max_events.is_some_and(|m| delivered >= m) {
                return Ok(Exit(0));
            }
        }
        tokio::time::sleep(reconnect_wait).await;
        reconnect_wait = (reconnect_wait * 2).min(retry_max);
    }
}
