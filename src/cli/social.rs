//! Money between people: `suanpan send` (chat transfers), `suanpan receive`, `suanpan request`.

use super::*;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct SendArgs {
    #[command(subcommand)]
    pub sub: Option<SendCmd>,
    /// Transfer id (idempotency key); generated and printed when omitted.
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long)]
    pub from: Option<String>,
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long)]
    pub amount: Option<String>,
    /// Free text, at most 64 bytes.
    #[arg(long, default_value = "")]
    pub note: String,
    /// Hold the money until the payee receives it, at most this many seconds of log time (given
    /// without a value: 86400); unaccepted, it returns to the sender. Without: moved at once.
    #[arg(long, num_args = 0..=1, default_missing_value = "86400")]
    pub accept_within: Option<u64>,
    /// Fee charged to the sender on top, in basis points (needs --fee-account).
    #[arg(long, default_value_t = 0)]
    pub fee_bps: u32,
    #[arg(long)]
    pub fee_account: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum SendCmd {
    /// The sender takes back a transfer its payee has not received yet.
    Return {
        /// Command id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        transfer: String,
    },
}

#[derive(Args, Debug)]
pub struct ReceiveArgs {
    /// Command id (idempotency key); generated and printed when omitted.
    #[arg(long)]
    pub id: Option<String>,
    /// The held chat transfer.
    #[arg(long)]
    pub transfer: String,
}

#[derive(Subcommand, Debug)]
pub enum RequestCmd {
    /// Ask a payer for an amount (`open → paid | declined | cancelled | expired`).
    Create {
        /// Request id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        payee: String,
        #[arg(long)]
        payer: String,
        #[arg(long)]
        amount: String,
        /// Free text, at most 64 bytes.
        #[arg(long, default_value = "")]
        note: String,
        /// Seconds of log time the request stays open (default 86400, at most 2592000).
        #[arg(long)]
        expires_in: Option<u64>,
    },
    /// The payer pays the request.
    Pay {
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        request: String,
    },
    /// The payer declines the request.
    Decline {
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        request: String,
    },
    /// The payee cancels the request.
    Cancel {
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        request: String,
    },
    /// Show payment requests.
    Get {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

pub async fn send(conn: &Conn, a: SendArgs) -> Result<Exit> {
    let c = conn.client()?;
    if let Some(SendCmd::Return { id, transfer }) = a.sub {
        let cmd = ops::settle_chat_transfer(id_or_new(&id)?, parse_id(&transfer)?, false);
        let o = c.submit_one(cmd).await?;
        return Ok(report(conn, "return", &o));
    }
    let (Some(from), Some(to), Some(amount)) = (a.from, a.to, a.amount) else {
        return Err(Usage(
            "send needs --from, --to and --amount, or `send return --transfer ID`".into(),
        )
        .into());
    };
    let (id, from, to) = (id_or_new(&a.id)?, parse_id(&from)?, parse_id(&to)?);
    let fee_account = a.fee_account.as_deref().map(parse_id).transpose()?;
    let cur = super::transfers::currency_of(&c, from).await?;
    let o = c
        .submit_one(ops::send(pb::Send {
            id: id.to_string(),
            from_account_id: from.to_string(),
            to_account_id: to.to_string(),
            amount,
            currency: cur,
            note: a.note,
            accept_within_seconds: a.accept_within,
            fee_bps: a.fee_bps,
            fee_account_id: fee_account.map(|f| f.to_string()),
        }))
        .await?;
    Ok(report(conn, "send", &o))
}

pub async fn receive(conn: &Conn, a: ReceiveArgs) -> Result<Exit> {
    let c = conn.client()?;
    let cmd = ops::settle_chat_transfer(id_or_new(&a.id)?, parse_id(&a.transfer)?, true);
    let o = c.submit_one(cmd).await?;
    Ok(report(conn, "receive", &o))
}

fn request_json(r: &pb::PaymentRequest) -> Value {
    json!({"id": r.id, "payee": r.payee_account_id, "payer": r.payer_account_id, "amount": r.amount,
           "currency": r.currency, "note": r.note, "state": name::<ledger::RequestState>(r.state),
           "created_ns": r.created_ns, "expires_ns": r.expires_ns, "payment": r.payment_id})
}

pub async fn request(conn: &Conn, cmd: RequestCmd) -> Result<Exit> {
    let c = conn.client()?;
    let (id, request, verb) = match cmd {
        RequestCmd::Create {
            id,
            payee,
            payer,
            amount,
            note,
            expires_in,
        } => {
            let (id, payee, payer) = (id_or_new(&id)?, parse_id(&payee)?, parse_id(&payer)?);
            let cur = super::transfers::currency_of(&c, payee).await?;
            let o = c
                .submit_one(ops::create_request(pb::CreateRequest {
                    id: id.to_string(),
                    payee_account_id: payee.to_string(),
                    payer_account_id: payer.to_string(),
                    amount,
                    currency: cur,
                    note,
                    expires_in_seconds: expires_in,
                }))
                .await?;
            return Ok(report(conn, "request", &o));
        }
        RequestCmd::Get { ids } => {
            let ids: Vec<Id> = ids.iter().map(|s| parse_id(s)).collect::<Result<_>>()?;
            let r = c.get_requests(&ids).await?;
            if conn.json {
                let v: Vec<Value> = r.requests.iter().map(request_json).collect();
                println!(
                    "{}",
                    json!({"requests": v, "not_found": r.not_found, "applied_index": r.applied_index})
                );
            } else {
                for q in &r.requests {
                    println!(
                        "{}  {}  {} {}  {} -> {}",
                        q.id,
                        name::<ledger::RequestState>(q.state),
                        q.amount,
                        q.currency,
                        q.payer_account_id,
                        q.payee_account_id
                    );
                }
                for n in &r.not_found {
                    println!("{n}  not found");
                }
            }
            return Ok(Exit(if r.not_found.is_empty() { 0 } else { 3 }));
        }
        RequestCmd::Pay { id, request } => (id, request, ops::RequestVerb::Pay),
        RequestCmd::Decline { id, request } => (id, request, ops::RequestVerb::Decline),
        RequestCmd::Cancel { id, request } => (id, request, ops::RequestVerb::Cancel),
    };
    let cmd = ops::request_action(id_or_new(&id)?, parse_id(&request)?, verb);
    let o = c.submit_one(cmd).await?;
    Ok(report(conn, "request", &o))
}
