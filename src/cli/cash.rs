//! `suanpan topup` and `suanpan withdraw`: cash-in and cash-out through the custodial bank account.

use super::*;

#[derive(Args, Debug)]
pub struct TopupArgs {
    /// Command id (idempotency key); generated and printed when omitted.
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long)]
    pub wallet: String,
    #[arg(long)]
    pub amount: String,
    /// The custodial bank account: an asset account (created with credits-must-not-exceed-debits).
    #[arg(long)]
    pub bank_account: String,
}

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct WithdrawArgs {
    #[command(subcommand)]
    pub sub: Option<WithdrawCmd>,
    /// Withdrawal id (idempotency key); generated and printed when omitted.
    #[arg(long)]
    pub id: Option<String>,
    #[arg(long)]
    pub wallet: Option<String>,
    /// Paid out to the bank; the fee comes on top.
    #[arg(long)]
    pub amount: Option<String>,
    #[arg(long)]
    pub bank_account: Option<String>,
    /// Fee on top of the amount, in basis points (0 to 10 000).
    #[arg(long, default_value_t = 0)]
    pub fee_bps: u32,
    /// Where the fee goes (required with --fee-bps above 0).
    #[arg(long)]
    pub fee_account: Option<String>,
    /// Seconds of log time to wait for the bank before the money returns (default 259200, 3 days).
    #[arg(long)]
    pub expires_in: Option<u64>,
}

#[derive(Subcommand, Debug)]
pub enum WithdrawCmd {
    /// The bank paid out: the held money leaves the wallet.
    Complete {
        /// Command id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        withdrawal: String,
    },
    /// The bank refused: the held money returns to the wallet.
    Fail {
        /// Command id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        withdrawal: String,
    },
}

pub async fn topup(conn: &Conn, a: TopupArgs) -> Result<Exit> {
    let c = conn.client()?;
    let (id, wallet, bank) = (
        id_or_new(&a.id)?,
        parse_id(&a.wallet)?,
        parse_id(&a.bank_account)?,
    );
    let cur = super::transfers::currency_of(&c, wallet).await?;
    let o = c
        .submit_one(ops::topup(id, wallet, bank, &a.amount, &cur))
        .await?;
    Ok(report(conn, "topup", &o))
}

pub async fn withdraw(conn: &Conn, a: WithdrawArgs) -> Result<Exit> {
    let c = conn.client()?;
    let settle = match a.sub {
        Some(WithdrawCmd::Complete { id, withdrawal }) => Some((id, withdrawal, true)),
        Some(WithdrawCmd::Fail { id, withdrawal }) => Some((id, withdrawal, false)),
        None => None,
    };
    if let Some((id, withdrawal, completed)) = settle {
        let cmd = ops::settle_withdrawal(id_or_new(&id)?, parse_id(&withdrawal)?, completed);
        let o = c.submit_one(cmd).await?;
        return Ok(report(conn, "withdrawal", &o));
    }
    let (Some(wallet), Some(amount), Some(bank)) = (a.wallet, a.amount, a.bank_account) else {
        return Err(Usage(
            "withdraw needs --wallet, --amount and --bank-account, or `withdraw complete|fail`"
                .into(),
        )
        .into());
    };
    let (id, wallet, bank) = (id_or_new(&a.id)?, parse_id(&wallet)?, parse_id(&bank)?);
    let fee_account = a.fee_account.as_deref().map(parse_id).transpose()?;
    let cur = super::transfers::currency_of(&c, wallet).await?;
    let o = c
        .submit_one(ops::withdraw(pb::Withdraw {
            id: id.to_string(),
            wallet_id: wallet.to_string(),
            bank_account_id: bank.to_string(),
            amount,
            currency: cur,
            fee_bps: a.fee_bps,
            fee_account_id: fee_account.map(|f| f.to_string()),
            expires_in_seconds: a.expires_in,
        }))
        .await?;
    Ok(report(conn, "withdrawal", &o))
}
