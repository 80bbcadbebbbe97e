//! `suanpan paycode`: customer-presented payment codes — bind a wallet's device key, revoke it, and
//! make a one-time code offline (what the payer's app does). Merchants charge codes with
//! `suanpan pay code`.

use super::*;
use ledger::paycode::{Token, VALIDITY_SECONDS_DEFAULT, VALIDITY_SECONDS_MAX};

#[derive(Subcommand, Debug)]
pub enum PaycodeCmd {
    /// Bind a wallet's device key (replacing any earlier one: its codes stop working).
    Bind {
        /// Command id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        wallet: String,
        /// The device's Ed25519 public key, 64 hex digits (`suanpan keys gen` prints it).
        #[arg(long)]
        public_key: String,
        /// Largest payment one code may make, in the wallet's currency (default 2000).
        #[arg(long)]
        paycode_max: Option<String>,
    },
    /// Revoke a wallet's device key (a lost phone): its codes are refused from now on.
    Revoke {
        /// Command id (idempotency key); generated and printed when omitted.
        #[arg(long)]
        id: Option<String>,
        #[arg(long)]
        wallet: String,
    },
    /// Make a one-time code offline with the device key (needs no cluster): prints the token and
    /// draws its QR code.
    Make {
        #[arg(long)]
        wallet: String,
        /// The device's key file (`suanpan keys gen`).
        #[arg(long)]
        device_key: PathBuf,
        /// Seconds the code stays valid (log time), 1 to 600.
        #[arg(long, default_value_t = VALIDITY_SECONDS_DEFAULT)]
        valid_for: u64,
    },
}

pub async fn paycode(conn: &Conn, cmd: PaycodeCmd) -> Result<Exit> {
    match cmd {
        PaycodeCmd::Bind {
            id,
            wallet,
            public_key,
            paycode_max,
        } => {
            let (id, wallet) = (id_or_new(&id)?, parse_id(&wallet)?);
            let pk = pubkey(&Some(public_key), &None)?.to_bytes();
            let c = conn.client()?;
            let cur = match &paycode_max {
                Some(_) => Some(super::transfers::currency_of(&c, wallet).await?),
                None => None,
            };
            let max = paycode_max.as_deref().zip(cur.as_deref());
            let o = c
                .submit_one(ops::bind_paycode(id, wallet, &pk, max))
                .await?;
            Ok(report(conn, "paycode bind", &o))
        }
        PaycodeCmd::Revoke { id, wallet } => {
            let c = conn.client()?;
            let o = c
                .submit_one(ops::revoke_paycode(id_or_new(&id)?, parse_id(&wallet)?))
                .await?;
            Ok(report(conn, "paycode revoke", &o))
        }
        PaycodeCmd::Make {
            wallet,
            device_key,
            valid_for,
        } => {
            use ed25519_dalek::Signer;
            use rand::RngCore;
            if valid_for == 0 || valid_for > VALIDITY_SECONDS_MAX {
                return Err(Usage(format!(
                    "--valid-for is 1 to {VALIDITY_SECONDS_MAX} seconds"
                ))
                .into());
            }
            let wallet = parse_id(&wallet)?;
            let key = client::load_key_file(&device_key)
                .with_context(|| format!("reading {}", device_key.display()))?;
            let mut nonce = [0u8; 16];
            rand::rngs::OsRng.fill_bytes(&mut nonce);
            let now_ns = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .context("the clock is before 1970")?
                .as_nanos() as u64;
            let expires_ns = now_ns + valid_for * 1_000_000_000;
            let signature = key
                .sign(&Token::signed_message(wallet, &nonce, expires_ns))
                .to_bytes();
            let token = Token {
                wallet,
                nonce,
                expires_ns,
                signature,
            }
            .encode();
            if conn.json {
                println!(
                    "{}",
                    json!({"code": token, "wallet": wallet.to_string(), "nonce": hex::encode(nonce), "expires_ns": expires_ns})
                );
            } else {
                println!("{token}");
                let art = qrcode::QrCode::new(token.as_bytes())
                    .context("encoding the QR code")?
                    .render::<qrcode::render::unicode::Dense1x2>()
                    .dark_color(qrcode::render::unicode::Dense1x2::Light)
                    .light_color(qrcode::render::unicode::Dense1x2::Dark)
                    .quiet_zone(true)
                    .build();
                println!("{art}");
            }
            Ok(Exit(0))
        }
    }
}
