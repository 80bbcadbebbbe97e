//! The `Ledger` service: submit commands, read accounts, transfers, history, events.

use super::*;

/// Most accounts one `WatchEvents` call may filter by.
const WATCH_ACCOUNTS_MAX: usize = 64;

pub struct LedgerService {
    ctx: Arc<NodeContext>,
}

impl LedgerService {
    pub fn new(ctx: Arc<NodeContext>) -> Self {
        LedgerService { ctx }
    }
}

fn check_ids(ids: &[String]) -> Result<Vec<Id>, Status> {
    if ids.is_empty() {
        return Err(Status::invalid_argument("at least one id is required"));
    }
    if ids.len() > wire::READ_IDS_MAX {
        return Err(Status::invalid_argument(format!(
            "at most {} ids per call",
            wire::READ_IDS_MAX
        )));
    }
    ids.iter()
        .enumerate()
        .map(|(i, s)| wire::parse_id(&format!("ids[{i}]"), s))
        .collect()
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::WatchEvent, Status>> + Send + 'static>>;

impl LedgerService {
    /// The one read path of the `Get*` calls: checks the ids, waits for the read barrier, then looks
    /// each id up under one ledger lock. Returns the found values in request order, the ids not
    /// found, and the applied index the answer reflects.
    async fn lookup<T: Send + 'static>(
        &self,
        ids: &[String],
        allow_stale: bool,
        find: impl Fn(&ledger::Ledger<ledger::RocksStore>, Id) -> Result<Option<T>, Status>
            + Send
            + 'static,
    ) -> Result<(Vec<T>, Vec<String>, u64), Status> {
        let ids = check_ids(ids)?;
        self.ctx.read_barrier(allow_stale).await?;
        self.ctx
            .read(move |l| {
                let mut found = Vec::with_capacity(ids.len());
                let mut not_found = Vec::new();
                for id in ids {
                    match find(l, id)? {
                        Some(v) => found.push(v),
                        None => not_found.push(id.to_string()),
                    }
                }
                Ok((found, not_found, l.applied_index()))
            })
            .await
    }
}

/// A request's page size: `0` means `default`, more than `max` is `INVALID_ARGUMENT`.
fn page_limit(requested: u32, default: usize, max: usize) -> Result<usize, Status> {
    match requested as usize {
        0 => Ok(default),
        n if n > max => Err(Status::invalid_argument(format!(
            "limit must be at most {max}"
        ))),
        n => Ok(n),
    }
}

/// Most accounts one `ListAccounts` page checks against their postings.
const CHECKED_ACCOUNTS_PAGE_MAX: usize = 100;

#[tonic::async_trait]
impl pb::ledger_server::Ledger for LedgerService {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let role = request
            .extensions()
            .get::<crate::auth::Caller>()
            .map(|c| c.role);
        let req = request.into_inner();
        let commands = wire::submit_from_pb(
            &req,
            self.ctx.limits.max_batch_commands,
            &self.ctx.currency_lookup(),
        )?;
        // Configuration changes (currencies, rates, tiers, settings) are for operators only.
        if let Some(role) = role.filter(|r| *r != ledger::ClientRole::Admin) {
            if let Some((i, name)) = commands
                .iter()
                .enumerate()
                .find_map(|(i, c)| wire::operator_command(c).map(|n| (i, n)))
            {
                return Err(Status::permission_denied(format!(
                    "commands[{i}]: {name} is an operator command; role {} may not submit it",
                    role.name()
                )));
            }
        }
        let (index, results) = self.ctx.propose(&commands).await?;
        Ok(Response::new(pb::SubmitResponse {
            results: commands
                .iter()
                .zip(&results)
                .map(|(c, r)| wire::result_to_pb(c.id(), r))
                .collect(),
            applied_index: index,
        }))
    }

    async fn submit_transfers(
        &self,
        request: Request<pb::SubmitTransfersRequest>,
    ) -> Result<Response<pb::SubmitTransfersResponse>, Status> {
        let req = request.into_inner();
        // Transfers only: never an operator command, so no role check beyond the auth layer's.
        let commands = wire::transfers_from_v2(
            &req.transfers,
            self.ctx.limits.max_batch_commands,
            &self.ctx.currency_lookup(),
        )?;
        let (index, results) = self.ctx.propose(&commands).await?;
        Ok(Response::new(pb::SubmitTransfersResponse {
            results: wire::pack_results(&results),
            applied_index: index,
        }))
    }

    async fn get_accounts(
        &self,
        request: Request<pb::GetAccountsRequest>,
    ) -> Result<Response<pb::GetAccountsResponse>, Status> {
        let req = request.into_inner();
        let (accounts, not_found, applied_index) = self
            .lookup(&req.ids, req.allow_stale, |l, id| {
                Ok(l.account(id).map(wire::account_to_pb))
            })
            .await?;
        Ok(Response::new(pb::GetAccountsResponse {
            accounts,
            not_found,
            applied_index,
        }))
    }

    async fn get_merchants(
        &self,
        request: Request<pb::GetMerchantsRequest>,
    ) -> Result<Response<pb::GetMerchantsResponse>, Status> {
        let req = request.into_inner();
        let (merchants, not_found, applied_index) = self
            .lookup(&req.ids, req.allow_stale, |l, id| {
                Ok(l.merchant(id)
                    .zip(l.account(id))
                    .map(|(m, a)| wire::merchant_to_pb(m, a.info.currency)))
            })
            .await?;
        Ok(Response::new(pb::GetMerchantsResponse {
            merchants,
            not_found,
            applied_index,
        }))
    }

    async fn get_orders(
        &self,
        request: Request<pb::GetOrdersRequest>,
    ) -> Result<Response<pb::GetOrdersResponse>, Status> {
        let req = request.into_inner();
        let (orders, not_found, applied_index) = self
            .lookup(&req.ids, req.allow_stale, |l, id| {
                Ok(l.order(id)
                    .map_err(internal)?
                    .map(|o| wire::order_to_pb(&o, l.order_payload(&o))))
            })
            .await?;
        Ok(Response::new(pb::GetOrdersResponse {
            orders,
            not_found,
            applied_index,
        }))
    }

    async fn get_requests(
        &self,
        request: Request<pb::GetRequestsRequest>,
    ) -> Result<Response<pb::GetRequestsResponse>, Status> {
        let req = request.into_inner();
        let (requests, not_found, applied_index) = self
            .lookup(&req.ids, req.allow_stale, |l, id| {
                Ok(l.request(id)
                    .map_err(internal)?
                    .map(|r| wire::request_to_pb(&r)))
            })
            .await?;
        Ok(Response::new(pb::GetRequestsResponse {
            requests,
            not_found,
            applied_index,
        }))
    }

    async fn get_splits(
        &self,
        request: Request<pb::GetSplitsRequest>,
    ) -> Result<Response<pb::GetSplitsResponse>, Status> {
        let req = request.into_inner();
        let (splits, not_found, applied_index) = self
            .lookup(&req.ids, req.allow_stale, |l, id| {
                Ok(l.split(id)
                    .map_err(internal)?
                    .map(|x| wire::split_to_pb(&x)))
            })
            .await?;
        Ok(Response::new(pb::GetSplitsResponse {
            splits,
            not_found,
            applied_index,
        }))
    }

    async fn get_red_packets(
        &self,
        request: Request<pb::GetRedPacketsRequest>,
    ) -> Result<Response<pb::GetRedPacketsResponse>, Status> {
        let req = request.into_inner();
        let (redpackets, not_found, applied_index) = self
            .lookup(&req.ids, req.allow_stale, |l, id| {
                Ok(l.redpacket(id)
                    .map_err(internal)?
                    .map(|(r, slots, claims)| wire::redpacket_to_pb(&r, &slots, &claims)))
            })
            .await?;
        Ok(Response::new(pb::GetRedPacketsResponse {
            redpackets,
            not_found,
            applied_index,
        }))
    }

    async fn get_group_balances(
        &self,
        request: Request<pb::GetGroupBalancesRequest>,
    ) -> Result<Response<pb::GetGroupBalancesResponse>, Status> {
        let req = request.into_inner();
        let id = wire::parse_id("group_id", &req.group_id)?;
        self.ctx.read_barrier(req.allow_stale).await?;
        let resp = self
            .ctx
            .read(move |l| {
                let (Some(g), Some(nets)) = (
                    l.group(id).map_err(internal)?,
                    l.group_balances(id).map_err(internal)?,
                ) else {
                    return Err(Status::not_found(format!("group {id} not found")));
                };
                Ok(pb::GetGroupBalancesResponse {
                    id: g.id.to_string(),
                    name: g.name.clone(),
                    member_ids: g.members.iter().map(Id::to_string).collect(),
                    open_split_ids: g.open_splits.iter().map(Id::to_string).collect(),
                    nets: nets
                        .iter()
                        .flat_map(|(cur, m)| {
                            m.iter().map(move |(a, n)| pb::MemberNet {
                                account_id: a.to_string(),
                                currency: cur.code().to_string(),
                                net: cur.to_decimal_signed(*n).to_string(),
                            })
                        })
                        .collect(),
                    applied_index: l.applied_index(),
                })
            })
            .await?;
        Ok(Response::new(resp))
    }

    async fn list_accounts(
        &self,
        request: Request<pb::ListAccountsRequest>,
    ) -> Result<Response<pb::ListAccountsResponse>, Status> {
        let req = request.into_inner();
        let after = match req.after_id.as_str() {
            "" => None,
            s => Some(wire::parse_id("after_id", s)?),
        };
        let limit = page_limit(
            req.limit,
            ledger::ACCOUNT_PAGE_MAX,
            ledger::ACCOUNT_PAGE_MAX,
        )?;
        // Checking postings reads every posting of the page's accounts under the ledger lock:
        // smaller pages keep the apply loop from waiting long.
        let limit = if req.check_postings {
            limit.min(CHECKED_ACCOUNTS_PAGE_MAX)
        } else {
            limit
        };
        self.ctx.read_barrier(req.allow_stale).await?;
        let resp = self
            .ctx
            .read(move |l| {
                let page = l.account_page(after, limit);
                let mut out = Vec::with_capacity(page.len());
                for a in &page {
                    let c = a.info.currency;
                    let balances_at = match req.at_ns {
                        Some(at) => l
                            .balance_at(a.info.id, at)
                            .map_err(internal)?
                            .map(|b| wire::balances_to_pb(c, &b)),
                        None => None,
                    };
                    let problem = if req.check_postings {
                        l.check_account(a.info.id)
                            .map_err(internal)?
                            .and_then(|c| c.problem)
                            .unwrap_or_default()
                    } else {
                        String::new()
                    };
                    out.push(pb::ListedAccount {
                        account: Some(wire::account_to_pb(a)),
                        balances_at,
                        problem,
                    });
                }
                let next_after_id = if page.len() == limit {
                    page.last()
                        .map(|a| a.info.id.to_string())
                        .unwrap_or_default()
                } else {
                    String::new()
                };
                Ok(pb::ListAccountsResponse {
                    accounts: out,
                    next_after_id,
                    applied_index: l.applied_index(),
                })
            })
            .await?;
        Ok(Response::new(resp))
    }

    async fn find_transfers(
        &self,
        request: Request<pb::FindTransfersRequest>,
    ) -> Result<Response<pb::FindTransfersResponse>, Status> {
        let req = request.into_inner();
        if req.reference.is_empty() || req.reference.len() > ledger::REFERENCE_BYTES_MAX {
            return Err(Status::invalid_argument(format!(
                "reference: 1 ..= {} bytes",
                ledger::REFERENCE_BYTES_MAX
            )));
        }
        let after = match req.after_id.as_str() {
            "" => None,
            s => Some(wire::parse_id("after_id", s)?),
        };
        let limit = page_limit(
            req.limit,
            wire::HISTORY_PAGE_DEFAULT as usize,
            wire::HISTORY_PAGE_MAX as usize,
        )?;
        self.ctx.read_barrier(req.allow_stale).await?;
        let resp = self
            .ctx
            .read(move |l| {
                let ids = l
                    .transfers_by_reference(&req.reference, after, limit)
                    .map_err(internal)?;
                let currency_of = |id| l.account(id).map(|a| a.info.currency);
                let mut transfers = Vec::with_capacity(ids.len());
                for id in &ids {
                    if let Some(t) = l.transfer(*id).map_err(internal)? {
                        transfers.push(wire::transfer_to_pb(&t, &currency_of));
                    }
                }
                Ok(pb::FindTransfersResponse {
                    transfers,
                    next_after_id: if ids.len() == limit {
                        ids.last().map(Id::to_string).unwrap_or_default()
                    } else {
                        String::new()
                    },
                    applied_index: l.applied_index(),
                })
            })
            .await?;
        Ok(Response::new(resp))
    }

    async fn get_merchant_settlement(
        &self,
        request: Request<pb::GetMerchantSettlementRequest>,
    ) -> Result<Response<pb::GetMerchantSettlementResponse>, Status> {
        let req = request.into_inner();
        let merchant = wire::parse_id("merchant_id", &req.merchant_id)?;
        if req.from_ns >= req.to_ns {
            return Err(Status::invalid_argument("from_ns must be before to_ns"));
        }
        self.ctx.read_barrier(req.allow_stale).await?;
        let resp = self
            .ctx
            .read(move |l| {
                let s = l
                    .merchant_settlement(merchant, req.from_ns, req.to_ns)
                    .map_err(internal)?
                    .ok_or_else(|| Status::not_found(format!("merchant {merchant} not found")))?;
                let c = l
                    .account(merchant)
                    .map(|a| a.info.currency)
                    .ok_or_else(|| Status::internal("merchant without an account"))?;
                let amt = |v: u128| wire::amount_str(c, v);
                Ok(pb::GetMerchantSettlementResponse {
                    merchant_id: merchant.to_string(),
                    currency: c.code().to_string(),
                    payments: s.payments,
                    gross: amt(s.gross),
                    fees: amt(s.fees),
                    refunds: s.refunds,
                    refunded: amt(s.refunded),
                    fees_refunded: amt(s.fees_refunded),
                    other_in: amt(s.other_in),
                    other_out: amt(s.other_out),
                    net: c.to_decimal_signed(s.net).to_string(),
                    applied_index: l.applied_index(),
                })
            })
            .await?;
        Ok(Response::new(resp))
    }

    async fn get_chain(
        &self,
        request: Request<pb::GetChainRequest>,
    ) -> Result<Response<pb::GetChainResponse>, Status> {
        let req = request.into_inner();
        let limit = page_limit(req.limit, ledger::CHAIN_PAGE_MAX, ledger::CHAIN_PAGE_MAX)?;
        // No read barrier: every replica answers for its own chain (that is the point).
        let page = self
            .ctx
            .read(move |l| l.chain(req.from_index, limit).map_err(internal))
            .await?;
        let st = self.ctx.status()?;
        let book = self.ctx.peers.all();
        let mut ids: std::collections::BTreeSet<u64> = st
            .voters
            .iter()
            .chain(st.learners.iter())
            .copied()
            .collect();
        ids.insert(self.ctx.id);
        let members = ids
            .into_iter()
            .map(|id| pb::ChainMember {
                id,
                address: if id == self.ctx.id {
                    self.ctx.advertise.clone()
                } else {
                    book.get(&id).cloned().unwrap_or_default()
                },
            })
            .collect();
        Ok(Response::new(pb::GetChainResponse {
            node_id: self.ctx.id,
            applied_index: page.applied_index,
            journal_from: page.journal_from,
            links: page
                .links
                .iter()
                .map(|l| pb::ChainLink {
                    index: l.index,
                    digest: l.digest.map(hex::encode).unwrap_or_default(),
                    timestamp_ns: l.timestamp_ns,
                    recomputed: match l.recomputed {
                        ledger::Recomputed::Ok => "ok",
                        ledger::Recomputed::Mismatch => "mismatch",
                        ledger::Recomputed::NotJournaled => "not_journaled",
                    }
                    .into(),
                })
                .collect(),
            members,
        }))
    }

    async fn get_checkpoint(
        &self,
        _request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let (index, digest, ts) = self
            .ctx
            .read(|l| Ok((l.applied_index(), l.digest(), l.last_timestamp_ns())))
            .await?;
        let sig = crate::auth::sign_checkpoint(&self.ctx.audit_key, index, &digest, ts);
        Ok(Response::new(pb::GetCheckpointResponse {
            node_id: self.ctx.id,
            index,
            digest: hex::encode(digest),
            timestamp_ns: ts,
            audit_key: hex::encode(self.ctx.audit_key.verifying_key().to_bytes()),
            signature: hex::encode(sig),
        }))
    }

    async fn get_audit_key(
        &self,
        _request: Request<pb::GetAuditKeyRequest>,
    ) -> Result<Response<pb::GetAuditKeyResponse>, Status> {
        Ok(Response::new(pb::GetAuditKeyResponse {
            audit_key: hex::encode(self.ctx.audit_key.verifying_key().to_bytes()),
        }))
    }

    async fn get_config(
        &self,
        request: Request<pb::GetConfigRequest>,
    ) -> Result<Response<pb::GetConfigResponse>, Status> {
        let req = request.into_inner();
        self.ctx.read_barrier(req.allow_stale).await?;
        let resp = self.ctx.read(|l| Ok(wire::config_to_pb(l))).await?;
        Ok(Response::new(resp))
    }

    async fn get_conversions(
        &self,
        request: Request<pb::GetConversionsRequest>,
    ) -> Result<Response<pb::GetConversionsResponse>, Status> {
        let req = request.into_inner();
        let (conversions, not_found, applied_index) = self
            .lookup(&req.ids, req.allow_stale, |l, id| {
                Ok(l.conversion(id)
                    .map_err(internal)?
                    .map(|c| wire::conversion_to_pb(&c)))
            })
            .await?;
        Ok(Response::new(pb::GetConversionsResponse {
            conversions,
            not_found,
            applied_index,
        }))
    }

    async fn get_transfers(
        &self,
        request: Request<pb::GetTransfersRequest>,
    ) -> Result<Response<pb::GetTransfersResponse>, Status> {
        let req = request.into_inner();
        let (transfers, not_found, applied_index) = self
            .lookup(&req.ids, req.allow_stale, |l, id| {
                let currency_of = |id| l.account(id).map(|a| a.info.currency);
                Ok(l.transfer(id)
                    .map_err(internal)?
                    .map(|t| wire::transfer_to_pb(&t, &currency_of)))
            })
            .await?;
        Ok(Response::new(pb::GetTransfersResponse {
            transfers,
            not_found,
            applied_index,
        }))
    }

    async fn list_account_history(
        &self,
        request: Request<pb::ListAccountHistoryRequest>,
    ) -> Result<Response<pb::ListAccountHistoryResponse>, Status> {
        let req = request.into_inner();
        let account = wire::parse_id("account_id", &req.account_id)?;
        let limit = page_limit(
            req.limit,
            wire::HISTORY_PAGE_DEFAULT as usize,
            wire::HISTORY_PAGE_MAX as usize,
        )?;
        self.ctx.read_barrier(req.allow_stale).await?;
        let resp = self
            .ctx
            .read(move |l| {
                let a = l
                    .account(account)
                    .ok_or_else(|| Status::not_found(format!("account {account} not found")))?;
                let currency = a.info.currency;
                let last_seq = a.state.posting_seq;
                let timed = req.from_ns.is_some() || req.to_ns.is_some();
                let postings = if timed {
                    l.history_between(
                        account,
                        req.from_ns.unwrap_or(0),
                        req.to_ns.unwrap_or(u64::MAX),
                        req.after_seq,
                        limit,
                    )
                } else {
                    l.history(account, req.after_seq, limit)
                }
                .map_err(internal)?;
                let next = postings.last().map_or(req.after_seq, |p| p.seq);
                // Each posting's transfer reference and, for a hold's post or void, the hold (one read
                // per distinct transfer of the page; a post takes its hold's reference).
                let mut references: std::collections::HashMap<Id, (String, Option<Id>)> =
                    Default::default();
                for p in &postings {
                    if !references.contains_key(&p.transfer) {
                        let t = l.transfer(p.transfer).map_err(internal)?;
                        let hold = t.as_ref().and_then(|t| t.pending_id);
                        let mut r = t.map(|t| t.reference).unwrap_or_default();
                        if let (true, Some(h)) = (r.is_empty(), hold) {
                            r = l
                                .transfer(h)
                                .map_err(internal)?
                                .map(|t| t.reference)
                                .unwrap_or_default();
                        }
                        references.insert(p.transfer, (r, hold));
                    }
                }
                Ok(pb::ListAccountHistoryResponse {
                    currency: currency.code().to_string(),
                    postings: postings
                        .iter()
                        .map(|p| {
                            let (r, hold) = &references[&p.transfer];
                            wire::posting_to_pb(currency, p, r, *hold)
                        })
                        .collect(),
                    next_after_seq: next,
                    // A time-bounded page ends the range when it came back short.
                    has_more: next < last_seq && (!timed || postings.len() == limit),
                    applied_index: l.applied_index(),
                })
            })
            .await?;
        Ok(Response::new(resp))
    }

    async fn get_balance_at(
        &self,
        request: Request<pb::GetBalanceAtRequest>,
    ) -> Result<Response<pb::GetBalanceAtResponse>, Status> {
        let req = request.into_inner();
        let account = wire::parse_id("account_id", &req.account_id)?;
        self.ctx.read_barrier(req.allow_stale).await?;
        let resp = self
            .ctx
            .read(move |l| {
                let a = l
                    .account(account)
                    .ok_or_else(|| Status::not_found(format!("account {account} not found")))?;
                let currency = a.info.currency;
                let b = l
                    .balance_at(account, req.timestamp_ns)
                    .map_err(internal)?
                    .ok_or_else(|| Status::not_found(format!("account {account} not found")))?;
                Ok(pb::GetBalanceAtResponse {
                    currency: currency.code().to_string(),
                    balances: Some(wire::balances_to_pb(currency, &b)),
                    balance: wire::net_balance(currency, &b),
                    applied_index: l.applied_index(),
                })
            })
            .await?;
        Ok(Response::new(resp))
    }

    type WatchEventsStream = EventStream;

    async fn watch_events(
        &self,
        request: Request<pb::WatchEventsRequest>,
    ) -> Result<Response<Self::WatchEventsStream>, Status> {
        let req = request.into_inner();
        if req.account_ids.len() > WATCH_ACCOUNTS_MAX {
            return Err(Status::invalid_argument(format!(
                "account_ids: {} ids, over the limit of {WATCH_ACCOUNTS_MAX}",
                req.account_ids.len()
            )));
        }
        let accounts = req
            .account_ids
            .iter()
            .enumerate()
            .map(|(i, s)| wire::parse_id(&format!("account_ids[{i}]"), s).map(|id| id.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if req.from_index != 0 {
            // Say plainly, before streaming, when the start is no longer retained.
            let from = req.from_index;
            self.ctx
                .read(move |l| crate::events::retained(l.first_journaled_index(), from))
                .await?;
        }
        let journal = Arc::new(crate::events::LedgerJournal(self.ctx.view.clone()));
        let rx = self.ctx.events.watch(
            req.from_index,
            accounts,
            journal,
            self.ctx.closing.subscribe(),
        )?;
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Admin service
