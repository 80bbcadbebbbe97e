//! The replicated configuration from the command line: `currency define|list`, `rate set|list`,
//! `convert [get]`, `tier define|list`, `settings set|get`. Defining currencies, rates, tiers and
//! settings is for operators (admin keys); `convert` is a payment.

use super::*;

#[derive(Subcommand, Debug)]
pub enum CurrencyCmd {
    /// Define an in-app currency (points, coins) accounts can then hold.
    Define {
        /// Command id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        /// 3 to 8 upper-case letters, not an ISO 4217 code.
        #[arg(long)]
        code: String,
        /// Fractional digits of the minor unit, 0 to 8.
        #[arg(long)]
        scale: u32,
        /// Display name, at most 64 bytes.
        #[arg(long, default_value = "")]
        name: String,
    },
    /// List the defined in-app currencies (with their position accounts).
    List,
}

#[derive(Subcommand, Debug)]
pub enum RateCmd {
    /// Set the rate at which FROM converts to TO: one unit of FROM buys RATE units of TO.
    Set {
        /// Command id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
        /// A positive decimal, at most 18 fractional digits.
        #[arg(long)]
        rate: String,
    },
    /// List the current rates.
    List,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ConvertArgs {
    #[command(subcommand)]
    pub sub: Option<ConvertCmd>,
    /// Conversion id (idempotency key); generated and printed when omitted.
    #[arg(long)]
    pub id: Option<String>,
    /// The wallet paying, in the source currency.
    #[arg(long)]
    pub from: Option<String>,
    /// The wallet receiving, in the target currency.
    #[arg(long)]
    pub to: Option<String>,
    /// Amount in the source wallet's currency.
    #[arg(long)]
    pub amount: Option<String>,
    /// The rate you were quoted: refused (`rate_changed`) if the current rate differs.
    #[arg(long)]
    pub expect_rate: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum ConvertCmd {
    /// Show conversions: both amounts and the rate used.
    Get {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TierCmd {
    /// Define a KYC tier: a named set of limits (in major units of each account it is applied
    /// to). Tiers are immutable; move a wallet to another tier to change its limits.
    Define {
        /// Command id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        /// 1 to 32 characters of [a-z0-9_-].
        #[arg(long)]
        name: String,
        #[arg(long)]
        per_transfer_max: Option<String>,
        #[arg(long)]
        daily_outflow_max: Option<String>,
        #[arg(long)]
        daily_outflow_count_max: Option<u32>,
        #[arg(long)]
        balance_max: Option<String>,
    },
    /// List the tiers.
    List,
}

#[derive(Subcommand, Debug)]
pub enum SettingsCmd {
    /// Change a replicated setting. Keys: business-utc-offset (`+08:00`: the limit day starts at
    /// midnight in that zone; write a negative offset `UTC-05:00` or after `--`).
    Set {
        /// Command id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        /// The setting's name (not `key`: that is the global key-file flag).
        #[arg(value_name = "KEY")]
        setting: String,
        value: String,
    },
    /// Show the settings.
    Get,
}

fn limits_json(l: &Option<pb::Limits>) -> Value {
    let l = l.clone().unwrap_or_default();
    json!({"per_transfer_max": l.per_transfer_max, "daily_outflow_max": l.daily_outflow_max,
           "daily_outflow_count_max": l.daily_outflow_count_max, "balance_max": l.balance_max})
}

pub async fn currency(conn: &Conn, cmd: CurrencyCmd) -> Result<Exit> {
    let c = conn.client()?;
    match cmd {
        CurrencyCmd::Define {
            id,
            code,
            scale,
            name,
        } => {
            let o = c
                .submit_one(ops::define_currency(id_or_new(&id)?, &code, scale, &name))
                .await?;
            Ok(report(conn, "currency", &o))
        }
        CurrencyCmd::List => {
            let r = c.get_config().await?;
            if conn.json {
                let v: Vec<Value> = r
                    .currencies
                    .iter()
                    .map(|c| json!({"code": c.code, "scale": c.scale, "name": c.name,
                                    "defined_ns": c.defined_ns, "position_account": c.position_account_id}))
                    .collect();
                println!(
                    "{}",
                    json!({"currencies": v, "applied_index": r.applied_index})
                );
            } else {
                for c in &r.currencies {
                    println!(
                        "{:<8} scale {}  {}  position {}",
                        c.code, c.scale, c.name, c.position_account_id
                    );
                }
            }
            Ok(Exit(0))
        }
    }
}

pub async fn rate(conn: &Conn, cmd: RateCmd) -> Result<Exit> {
    let c = conn.client()?;
    match cmd {
        RateCmd::Set { id, from, to, rate } => {
            let o = c
                .submit_one(ops::set_rate(id_or_new(&id)?, &from, &to, &rate))
                .await?;
            Ok(report(conn, "rate", &o))
        }
        RateCmd::List => {
            let r = c.get_config().await?;
            if conn.json {
                let v: Vec<Value> = r
                    .rates
                    .iter()
                    .map(|r| {
                        json!({"from": r.from_currency, "to": r.to_currency, "rate": r.rate,
                                    "set_by": r.set_by, "set_ns": r.set_ns})
                    })
                    .collect();
                println!("{}", json!({"rates": v, "applied_index": r.applied_index}));
            } else {
                for r in &r.rates {
                    println!("1 {} = {} {}", r.from_currency, r.rate, r.to_currency);
                }
            }
            Ok(Exit(0))
        }
    }
}

fn conversion_json(x: &pb::Conversion) -> Value {
    json!({"id": x.id, "from": x.from_account_id, "to": x.to_account_id,
           "from_currency": x.from_currency, "to_currency": x.to_currency,
           "from_amount": x.from_amount, "to_amount": x.to_amount, "rate": x.rate,
           "rate_set_ns": x.rate_set_ns, "timestamp_ns": x.timestamp_ns})
}

pub async fn convert(conn: &Conn, a: ConvertArgs) -> Result<Exit> {
    let c = conn.client()?;
    if let Some(ConvertCmd::Get { ids }) = a.sub {
        let ids: Vec<Id> = ids.iter().map(|s| parse_id(s)).collect::<Result<_>>()?;
        let r = c.get_conversions(&ids).await?;
        if conn.json {
            let v: Vec<Value> = r.conversions.iter().map(conversion_json).collect();
            println!(
                "{}",
                json!({"conversions": v, "not_found": r.not_found, "applied_index": r.applied_index})
            );
        } else {
            for x in &r.conversions {
                println!(
                    "{}  {} {} → {} {} at {}",
                    x.id, x.from_amount, x.from_currency, x.to_amount, x.to_currency, x.rate
                );
            }
            for n in &r.not_found {
                println!("{n}  not found");
            }
        }
        return Ok(Exit(if r.not_found.is_empty() { 0 } else { 3 }));
    }
    let need =
        |v: Option<String>, flag: &str| v.ok_or_else(|| Usage(format!("convert needs {flag}")));
    let from = parse_id(&need(a.from, "--from")?)?;
    let to = parse_id(&need(a.to, "--to")?)?;
    let amount = need(a.amount, "--amount")?;
    let id = id_or_new(&a.id)?;
    let currency = super::transfers::currency_of(&c, from).await?;
    let o = c
        .submit_one(ops::convert(pb::Convert {
            id: id.to_string(),
            from_account_id: from.to_string(),
            to_account_id: to.to_string(),
            amount,
            currency,
            expect_rate: a.expect_rate,
        }))
        .await?;
    if !o.is_ok() {
        return Ok(report(conn, "convert", &o));
    }
    // The conversion as recorded: both amounts and the rate used.
    let r = c.get_conversions(&[id]).await?;
    let x = r
        .conversions
        .first()
        .ok_or_else(|| anyhow!("conversion {id} was applied but cannot be read"))?;
    if conn.json {
        let mut v = outcome_json(&o);
        for k in [
            "from_amount",
            "to_amount",
            "from_currency",
            "to_currency",
            "rate",
        ] {
            v[k] = conversion_json(x)[k].clone();
        }
        println!("{v}");
    } else {
        println!(
            "convert {}: ok (index {}): {} {} → {} {} at {}",
            o.id,
            o.applied_index,
            x.from_amount,
            x.from_currency,
            x.to_amount,
            x.to_currency,
            x.rate
        );
    }
    Ok(Exit(0))
}

pub async fn tier(conn: &Conn, cmd: TierCmd) -> Result<Exit> {
    let c = conn.client()?;
    match cmd {
        TierCmd::Define {
            id,
            name,
            per_transfer_max,
            daily_outflow_max,
            daily_outflow_count_max,
            balance_max,
        } => {
            let limits = pb::Limits {
                per_transfer_max,
                daily_outflow_max,
                daily_outflow_count_max,
                balance_max,
            };
            let o = c
                .submit_one(ops::define_tier(id_or_new(&id)?, &name, limits))
                .await?;
            Ok(report(conn, "tier", &o))
        }
        TierCmd::List => {
            let r = c.get_config().await?;
            if conn.json {
                let v: Vec<Value> = r
                    .tiers
                    .iter()
                    .map(|t| json!({"name": t.name, "limits": limits_json(&t.limits), "defined_ns": t.defined_ns}))
                    .collect();
                println!("{}", json!({"tiers": v, "applied_index": r.applied_index}));
            } else {
                for t in &r.tiers {
                    println!("{:<16} {}", t.name, limits_json(&t.limits));
                }
            }
            Ok(Exit(0))
        }
    }
}

pub async fn settings(conn: &Conn, cmd: SettingsCmd) -> Result<Exit> {
    let c = conn.client()?;
    match cmd {
        SettingsCmd::Set { id, setting, value } => {
            let o = c
                .submit_one(ops::set_setting(id_or_new(&id)?, &setting, &value))
                .await?;
            Ok(report(conn, "setting", &o))
        }
        SettingsCmd::Get => {
            let r = c.get_config().await?;
            print_done(
                conn,
                json!({"business-utc-offset": r.business_utc_offset, "applied_index": r.applied_index}),
                &format!("business-utc-offset {}", r.business_utc_offset),
            );
            Ok(Exit(0))
        }
    }
}
