//! `suanpan merchant`: merchant accounts and their profiles.

use super::*;

#[derive(Subcommand, Debug)]
pub enum MerchantCmd {
    /// Create a merchant: a merchant account and the profile QR codes print (the id is also the
    /// idempotency key: retrying with it is safe).
    Create {
        /// Merchant account id (UUID); a new time-ordered one is generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        /// ISO 4217 code, e.g. CNY.
        #[arg(long)]
        currency: String,
        /// Merchant name (EMV tag 59): 1 to 25 characters.
        #[arg(long)]
        name: String,
        /// Merchant city (EMV tag 60): 1 to 15 characters.
        #[arg(long)]
        city: String,
        /// Merchant category code (EMV tag 52): 4 digits, e.g. 5814 for fast food.
        #[arg(long)]
        mcc: String,
        /// ISO 3166 alpha-2 country (EMV tag 58).
        #[arg(long, default_value = "CN")]
        country: String,
        /// Fee on each payment, in basis points of the amount (0 to 10 000).
        #[arg(long, default_value_t = 0)]
        fee_bps: u32,
        /// Where fees go: an account in the merchant's currency (required with --fee-bps above 0).
        #[arg(long)]
        fee_account: Option<String>,
    },
    /// Show merchant profiles.
    Get {
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// One business day of a merchant: payments (gross, fees), refunds (the fee part returned),
    /// other movements, net and counts. The day is in the ledger's business time zone.
    Settlement {
        #[arg(long)]
        merchant: String,
        /// YYYY-MM-DD.
        #[arg(long)]
        date: String,
        #[arg(long, value_enum, default_value = "table")]
        format: super::finance::ReportFormat,
    },
}

fn merchant_json(m: &pb::Merchant) -> Value {
    json!({"id": m.account_id, "currency": m.currency, "name": m.name, "city": m.city, "mcc": m.mcc,
           "country": m.country, "fee_bps": m.fee_bps, "fee_account": m.fee_account_id,
           "created_ns": m.created_ns})
}

pub async fn merchant(conn: &Conn, cmd: MerchantCmd) -> Result<Exit> {
    let c = conn.client()?;
    match cmd {
        MerchantCmd::Settlement {
            merchant,
            date,
            format,
        } => super::finance::settlement(conn, &merchant, &date, format).await,
        MerchantCmd::Create {
            id,
            currency,
            name,
            city,
            mcc,
            country,
            fee_bps,
            fee_account,
        } => {
            let id = id_or_new(&id)?;
            let fee_account = fee_account.as_deref().map(parse_id).transpose()?;
            let cmd = ops::create_merchant(pb::CreateMerchant {
                id: id.to_string(),
                currency,
                name,
                city,
                mcc,
                country,
                fee_bps,
                fee_account_id: fee_account.map(|a| a.to_string()),
            });
            let o = c.submit_one(cmd).await?;
            let hint = (o.name == "invalid_fee").then_some(
                "--fee-bps is at most 10000 and needs --fee-account, an account other than the \
                 merchant's own",
            );
            Ok(report_with_hint(conn, "merchant", &o, hint))
        }
        MerchantCmd::Get { ids } => {
            let ids: Vec<Id> = ids.iter().map(|s| parse_id(s)).collect::<Result<_>>()?;
            let r = c.get_merchants(&ids).await?;
            if conn.json {
                let v: Vec<Value> = r.merchants.iter().map(merchant_json).collect();
                println!(
                    "{}",
                    json!({"merchants": v, "not_found": r.not_found, "applied_index": r.applied_index})
                );
            } else {
                for m in &r.merchants {
                    println!(
                        "{}  {} ({}, {}) mcc {} {}  fee {} bps",
                        m.account_id, m.name, m.city, m.country, m.mcc, m.currency, m.fee_bps
                    );
                }
                for n in &r.not_found {
                    println!("{n}  not found");
                }
            }
            Ok(Exit(if r.not_found.is_empty() { 0 } else { 3 }))
        }
    }
}
