//! Replicas compare digests on their own: every `digest_check_interval_ms` a node asks each peer
//! for its digest at the highest index both have applied and compares it with its own. A
//! difference is a divergence — replicas that applied the same log must agree — logged as an
//! error and reported in `NodeInfo.divergences` (and `cluster status`) until the digests agree
//! again. Nothing is changed automatically: a diverged replica needs an operator.

use super::*;

/// Asks a peer for its chain from `from_index` (one link), signed with the node's admin key.
async fn fetch_chain(
    tls: Option<&crate::tls::NodeTls>,
    id: u64,
    addr: &str,
    key: &SigningKey,
    from_index: u64,
    timeout: Duration,
) -> Result<pb::GetChainResponse, String> {
    let channel = crate::transport::peer_channel(tls, id, addr, timeout).await?;
    let msg = pb::GetChainRequest {
        from_index,
        limit: 1,
    };
    let bytes = prost::Message::encode_to_vec(&msg);
    let mut req = Request::new(msg);
    let cluster = crate::identity::cluster_id(key);
    SignedHeaders::sign_now_for(Some(&cluster), key, "/suanpan.v1.Ledger/GetChain", &bytes)
        .apply(req.metadata_mut());
    pb::ledger_client::LedgerClient::new(channel)
        .get_chain(req)
        .await
        .map(|r| r.into_inner())
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
}

/// One round: compare with every peer at the highest common applied index.
pub(crate) async fn check_round(ctx: &NodeContext) {
    let Ok(st) = ctx.status() else { return };
    let book = ctx.peers.all();
    let timeout = Duration::from_millis(ctx.limits.status_fanout_timeout_ms);
    for peer in ctx.member_ids(&st.voters, &st.learners) {
        if peer == ctx.id {
            continue;
        }
        let Some(addr) = book.get(&peer).cloned() else {
            continue;
        };
        let tls = ctx.tls.as_deref();
        let Ok(head) = fetch_chain(tls, peer, &addr, &ctx.admin_key, u64::MAX, timeout).await
        else {
            continue; // unreachable: nothing to compare
        };
        let Ok(ours) = ctx.read(|l| Ok(l.applied_index())).await else {
            continue;
        };
        let index = head.applied_index.min(ours);
        if index == 0 {
            continue;
        }
        let Ok(theirs) = fetch_chain(tls, peer, &addr, &ctx.admin_key, index, timeout).await else {
            continue;
        };
        let ours = match ctx.read(move |l| Ok(l.chain(index, 1).ok())).await {
            Ok(Some(p)) => p.links.first().and_then(|l| l.digest).map(hex::encode),
            _ => None,
        };
        let theirs = theirs
            .links
            .first()
            .filter(|l| l.index == index && !l.digest.is_empty())
            .map(|l| l.digest.clone());
        let (Some(ours), Some(theirs)) = (ours, theirs) else {
            continue; // one side has no digest recorded there: nothing to compare
        };
        let mut d = ctx.divergences.lock();
        if ours == theirs {
            d.remove(&peer);
        } else {
            if !d.contains_key(&peer) {
                tracing::error!(
                    node = ctx.id,
                    peer,
                    index,
                    ours = %ours,
                    theirs = %theirs,
                    "REPLICA DIVERGENCE: digests differ at the same applied index"
                );
            }
            d.insert(peer, index);
        }
    }
}

/// Runs [`check_round`] every `digest_check_interval_ms` until the node closes.
pub(crate) async fn run(ctx: Arc<NodeContext>) {
    let every = ctx.limits.digest_check_interval_ms;
    if every == 0 {
        return;
    }
    let mut closing = ctx.closing.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(every)) => {}
            _ = crate::events::closed(&mut closing) => return,
        }
        check_round(&ctx).await;
    }
}
