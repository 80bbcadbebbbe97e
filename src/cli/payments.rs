//! Merchant payments: `suanpan pay` (a scanned merchant code), `suanpan order close|get`,
//! `suanpan refund`, `suanpan bill pay`. QR orders are made with `suanpan qr order`.

use super::*;

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct PayArgs {
    #[command(subcommand)]
    pub sub: Option<PayCmd>,
    /// Payment id (the idempotency key: retry with the same id); generated and printed when
    /// omitted. A static-code payment is later refunded by this id.
    #[arg(long)]
    pub id: Option<String>,
    /// The paying wallet.
    #[arg(long)]
    pub payer: Option<String>,
    /// The scanned EMV payload: a QR order's (`suanpan qr order`) or a merchant's static code.
    #[arg(long)]
    pub qr: Option<String>,
    /// The amount: required for a static code; for an order it must equal the order's.
    #[arg(long)]
    pub amount: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum PayCmd {
    /// The merchant charges a customer's payment code (`suanpan paycode make`).
    Code {
        /// Payment id (idempotency key); generated and printed when omitted. Refund by this id.
        #[arg(long)]
        id: Option<String>,
        /// The charging merchant.
        #[arg(long)]
        merchant: String,
        /// The scanned code: `spc1:` and 208 hex digits.
        #[arg(long)]
        code: String,
        /// In the merchant's currency; at most the wallet's payment-code limit.
        #[arg(long)]
        amount: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum OrderCmd {
    /// Close an unpaid QR order (`unpaid → closed`): its code can no longer be paid.
    Close {
        /// Command id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        order: String,
    },
    /// Show orders and merchant payments (QR orders, static-code payments, bills) with their
    /// refunds; a QR order also shows its payload.
    Get {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Args, Debug)]
pub struct RefundArgs {
    /// Refund id (`out_refund_no`, the idempotency key); generated and printed when omitted.
    #[arg(long)]
    pub id: Option<String>,
    /// The order (or payment id of a static-code payment or bill) to refund.
    #[arg(long)]
    pub order: String,
    /// Part or all of what is left to refund.
    #[arg(long)]
    pub amount: String,
    /// Free text, at most 128 bytes.
    #[arg(long, default_value = "")]
    pub reason: String,
}

#[derive(Subcommand, Debug)]
pub enum BillCmd {
    /// Pay a bill; a (biller, bill reference) pair is paid at most once.
    Pay {
        /// Payment id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        payer: String,
        /// The biller: a merchant account id.
        #[arg(long)]
        biller: String,
        /// The bill's reference (1 to 64 bytes).
        #[arg(long)]
        bill_ref: String,
        #[arg(long)]
        amount: String,
    },
}

/// The JSON shape of an order (`order get`); names documented in docs/payments.md.
pub(super) fn order_json(o: &pb::Order) -> Value {
    json!({
        "id": o.id,
        "kind": name::<ledger::OrderKind>(o.kind),
        "merchant": o.merchant_id,
        "state": name::<ledger::OrderState>(o.state),
        "amount": o.amount,
        "currency": o.currency,
        "paid_amount": o.paid_amount,
        "refunded_amount": o.refunded_amount,
        "fee": o.fee,
        "fee_refunded": o.fee_refunded,
        "payer": o.payer_account_id,
        "payment": o.payment_id,
        "reference": o.reference,
        "created_ns": o.created_ns,
        "expires_ns": o.expires_ns,
        "payload": o.payload,
    })
}

pub async fn pay(conn: &Conn, args: PayArgs) -> Result<Exit> {
    let c = conn.client()?;
    if let Some(PayCmd::Code {
        id,
        merchant,
        code,
        amount,
    }) = args.sub
    {
        let (id, merchant) = (id_or_new(&id)?, parse_id(&merchant)?);
        let cur = super::transfers::currency_of(&c, merchant).await?;
        let o = c
            .submit_one(ops::pay_code(id, merchant, &code, &amount, &cur))
            .await?;
        return Ok(report(conn, "payment", &o));
    }
    let (Some(payer), Some(qr)) = (&args.payer, &args.qr) else {
        return Err(Usage(
            "pay needs --payer and --qr (and --amount for a static code), or `pay code`".into(),
        )
        .into());
    };
    let (id, payer) = (id_or_new(&args.id)?, parse_id(payer)?);
    // The amount travels with its currency: the one the code names (tag 53).
    let amount = match &args.amount {
        None => None,
        Some(a) => {
            let scanned = ledger::emv::scan(qr)
                .map_err(|e| anyhow!("--qr is not a payable merchant code: {e}"))?;
            let cur =
                ledger::Currency::from_numeric(scanned.currency_numeric).ok_or_else(|| {
                    anyhow!(
                        "--qr names an unknown currency {}",
                        scanned.currency_numeric
                    )
                })?;
            Some((a.clone(), cur.code().to_string()))
        }
    };
    let cmd = ops::pay_qr(
        id,
        payer,
        qr,
        amount.as_ref().map(|(a, c)| (a.as_str(), c.as_str())),
    );
    let o = c.submit_one(cmd).await?;
    let hint = (o.name == "amount_required").then_some("a static code needs --amount");
    Ok(report_with_hint(conn, "payment", &o, hint))
}

/// The currency of an order (the wire carries it with every amount).
async fn order_currency(c: &Client, order: Id) -> Result<String> {
    let r = c.get_orders(&[order]).await?;
    Ok(r.orders
        .first()
        .ok_or_else(|| anyhow!("order {order} not found"))?
        .currency
        .clone())
}

pub async fn order(conn: &Conn, cmd: OrderCmd) -> Result<Exit> {
    let c = conn.client()?;
    match cmd {
        OrderCmd::Close { id, order } => {
            let cmd = ops::close_order(id_or_new(&id)?, parse_id(&order)?);
            let o = c.submit_one(cmd).await?;
            Ok(report(conn, "close", &o))
        }
        OrderCmd::Get { ids } => {
            let ids: Vec<Id> = ids.iter().map(|s| parse_id(s)).collect::<Result<_>>()?;
            let r = c.get_orders(&ids).await?;
            if conn.json {
                let v: Vec<Value> = r.orders.iter().map(order_json).collect();
                println!(
                    "{}",
                    json!({"orders": v, "not_found": r.not_found, "applied_index": r.applied_index})
                );
            } else {
                for o in &r.orders {
                    println!(
                        "{}  {} {}  {} {}  merchant {}{}",
                        o.id,
                        name::<ledger::OrderKind>(o.kind),
                        name::<ledger::OrderState>(o.state),
                        o.amount,
                        o.currency,
                        o.merchant_id,
                        if o.reference.is_empty() {
                            String::new()
                        } else {
                            format!("  ref {:?}", o.reference)
                        }
                    );
                    if let Some(p) = &o.payer_account_id {
                        println!(
                            "    paid {} by {p} (fee {}), refunded {} (fee {})",
                            o.paid_amount, o.fee, o.refunded_amount, o.fee_refunded
                        );
                    }
                    if !o.payload.is_empty() {
                        println!("    {}", o.payload);
                    }
                }
                for n in &r.not_found {
                    println!("{n}  not found");
                }
            }
            Ok(Exit(if r.not_found.is_empty() { 0 } else { 3 }))
        }
    }
}

pub async fn refund(conn: &Conn, args: RefundArgs) -> Result<Exit> {
    let c = conn.client()?;
    let (id, order) = (id_or_new(&args.id)?, parse_id(&args.order)?);
    let cur = match order_currency(&c, order).await {
        Ok(cur) => cur,
        Err(e) => {
            return not_found_or(
                conn,
                client::ClientError::Status(tonic::Status::not_found(e.to_string())),
            )
        }
    };
    let o = c
        .submit_one(ops::refund(id, order, &args.amount, &cur, &args.reason))
        .await?;
    Ok(report(conn, "refund", &o))
}

pub async fn bill(conn: &Conn, cmd: BillCmd) -> Result<Exit> {
    let c = conn.client()?;
    match cmd {
        BillCmd::Pay {
            id,
            payer,
            biller,
            bill_ref,
            amount,
        } => {
            let (id, payer, biller) = (id_or_new(&id)?, parse_id(&payer)?, parse_id(&biller)?);
            let cur = super::transfers::currency_of(&c, biller).await?;
            let cmd = ops::pay_bill(id, payer, biller, &bill_ref, &amount, &cur);
            let o = c.submit_one(cmd).await?;
            Ok(report(conn, "bill payment", &o))
        }
    }
}
