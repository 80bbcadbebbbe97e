//! Golden scripts: the ledger's behaviour as readable specifications, one folder per command family
//! under `tests/golden/`. Each script is a sequence of commands and the results, balances and
//! events they produce; `UPDATE_GOLDENFILES=1 cargo nextest run -p ledger --release golden`
//! rewrites the expected output, which is then reviewed like code.
//!
//! Commands (names stand for ids; every name maps to one id for the whole script):
//! - `account NAME CUR [kind=wallet|merchant|system] [overdraft=AMOUNT] [debits_must_not_exceed_credits=true]
//!   [credits_must_not_exceed_debits=true] [per_transfer_max=AMOUNT] [daily_outflow_max=AMOUNT]
//!   [daily_outflow_count_max=N] [balance_max=AMOUNT] [reference=TEXT] [metadata=N]`
//! - `transfer ID FROM TO AMOUNT [currency=CUR] [timeout=SECONDS] [reference=TEXT]`, or with legs
//!   `transfer ID leg=FROM/TO/AMOUNT[/CUR]... [timeout=SECONDS]` (a timeout makes it a hold)
//! - `post ID PENDING [amount=AMOUNT] [currency=CUR]`, `void ID PENDING`
//! - `status ID ACCOUNT open|frozen|closed`
//! - `register ID KEY payments|finance|admin [name=TEXT]`, `revoke ID KEY`
//! - `merchant NAME CUR [name=TEXT] [city=TEXT] [mcc=NNNN] [country=CC] [fee_bps=N]
//!   [fee_account=NAME]`, `merchants NAME...`
//! - `order ID MERCHANT AMOUNT ref=TEXT [currency=CUR] [expires_in=SECONDS]` (a dynamic QR order),
//!   `pay ID PAYER qr=order/NAME|static/MERCHANT|"raw/TEXT" [amount=AMOUNT] [currency=CUR]
//!   [tamper_amount=TEXT]` (the payload as the runner builds it; `tamper_amount` alters tag 54),
//!   `close ID ORDER`, `refund ID ORDER AMOUNT [currency=CUR] [reason=TEXT]`,
//!   `bill ID PAYER BILLER REF AMOUNT [currency=CUR]`, `orders NAME...`
//! - `paycode_bind ID WALLET KEY [max=AMOUNT]`, `paycode_revoke ID WALLET`; `paycode_make TOKEN
//!   WALLET KEY [nonce=N] [valid=DURATION]` signs a code with key KEY (made offline: no batch),
//!   valid from the current log time; `paycode_pay ID MERCHANT TOKEN AMOUNT [currency=CUR]`;
//!   `paycodes WALLET...`
//! - `topup ID WALLET BANK AMOUNT [currency=CUR]`, `withdraw ID WALLET BANK AMOUNT [fee_bps=N]
//!   [fee_account=NAME] [expires_in=SECONDS] [currency=CUR]`, `withdraw_complete ID WITHDRAWAL`,
//!   `withdraw_fail ID WITHDRAWAL`
//! - `send ID FROM TO AMOUNT [accept_within=SECONDS] [note=TEXT] [fee_bps=N fee_account=NAME]
//!   [currency=CUR]`, `receive ID TRANSFER`, `return ID TRANSFER`
//! - `request ID PAYEE PAYER AMOUNT [note=TEXT] [expires_in=SECONDS] [currency=CUR]`,
//!   `request_pay ID REQUEST`, `request_decline ID REQUEST`, `request_cancel ID REQUEST`,
//!   `requests NAME...`
//! - `split ID PAYER TOTAL CUR participants=A,B,… [mode=equal|exact|percent|shares|each]
//!   [values=V1,V2,…] [note=TEXT]`, `split_pay ID SPLIT PARTICIPANT`, `split_cancel ID SPLIT`,
//!   `splits NAME...`
//! - `group ID NAME members=A,B,…`, `group_settle ID GROUP`, `group_balances GROUP`; a split's
//!   `group=NAME`
//! - `redpacket ID SENDER TOTAL COUNT [mode=random|fixed] [expires_in=SECONDS] [currency=CUR]`,
//!   `claim ID PACKET WALLET`, `redpackets NAME...` (slots, claims, and the slots recomputed from the
//!   recorded seed)
//! - `currency_define ID CODE SCALE [name=TEXT]`, `rate ID FROM TO RATE`, `convert ID FROM TO AMOUNT
//!   [currency=CUR] [expect_rate=RATE]`, `conversions NAME...`; `tier ID NAME [per_transfer_max=…]
//!   [daily_outflow_max=…] [daily_outflow_count_max=N] [balance_max=…]`, `set_tier ID ACCOUNT TIER`;
//!   `setting ID KEY VALUE`; `config` (currencies, rates, tiers, settings). A split's
//!   `expires_in=SECONDS`, a red packet's `group=NAME`
//! - `settlement MERCHANT` (its settlement over all time), `by_reference REF` (transfers carrying it)
//! - `journal [from=INDEX]`: the journaled flow events from an index (each batch's events are
//!   also printed under its results)
//! - `begin` … `commit`: the commands between them go in one batch (else one batch each)
//! - `advance DURATION` (`90s`, `30m`, `2h`, `1d`): moves the leader's clock (each batch is
//!   stamped one second after the previous one anyway); `advance until=NAME`: the next batch is
//!   stamped exactly when NAME's timer falls due
//! - `clock_back DURATION`: a leader whose clock is behind its predecessor's
//! - `balances NAME...`, `history NAME [after=SEQ] [limit=N]`, `get ID...`, `timers`,
//!   `balance_at NAME DURATION_AGO`, `totals`
//!
//! After every batch the runner checks the ledger's full consistency (`verify`) and that a
//! snapshot restored into a fresh store has the same digest.

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt::Write as _;
use std::path::Path;
use std::str::FromStr;

use goldenscript::{Argument, Command as Line};
use ledger::*;
use rust_decimal::Decimal;

type Res<T> = Result<T, Box<dyn Error>>;

const SEC: u64 = 1_000_000_000;
/// 2026-11-25T00:00:00Z: scripts start at a fixed log time.
const T0: u64 = 1_795_564_800 * SEC;

struct Runner {
    ledger: Ledger<MemStore>,
    now: u64,
    names: BTreeMap<String, Id>,
    ids: BTreeMap<Id, String>,
    /// Commands of an open `begin` … `commit` group, with their names.
    group: Option<Vec<Command>>,
    /// Payment codes made by `paycode_make`.
    tokens: BTreeMap<String, paycode::Token>,
}

impl Runner {
    fn new() -> Runner {
        Runner {
            ledger: Ledger::open(MemStore::new()).expect("open"),
            now: T0,
            names: BTreeMap::new(),
            ids: BTreeMap::new(),
            group: None,
            tokens: BTreeMap::new(),
        }
    }

    /// The id a name stands for (`0` is the zero id, for `invalid_id`).
    fn id(&mut self, name: &str) -> Id {
        if name == "0" {
            return Id(0);
        }
        if let Some(id) = self.names.get(name) {
            return *id;
        }
        // The derived escrow and position accounts of a currency (`escrow_CNY`, `position_QCOIN`).
        if let Some(c) = name.strip_prefix("escrow_").and_then(Currency::declared) {
            return escrow_account_id(c);
        }
        if let Some(c) = name.strip_prefix("position_").and_then(Currency::declared) {
            return position_account_id(c);
        }
        let id = Id(self.names.len() as u128 + 1);
        self.names.insert(name.to_string(), id);
        self.ids.insert(id, name.to_string());
        id
    }

    fn name(&self, id: Id) -> String {
        if let Some(n) = self.ids.get(&id) {
            return n.clone();
        }
        // The derived escrow and position accounts, by their documented names.
        for code in ["CNY", "USD", "JPY", "QCOIN", "PTS"] {
            let c = Currency::declared(code).expect("known currency");
            if escrow_account_id(c) == id {
                return format!("escrow_{code}");
            }
            if position_account_id(c) == id {
                return format!("position_{code}");
            }
        }
        id.to_string()
    }

    fn key(name: &str) -> [u8; 32] {
        *blake3::hash(name.as_bytes()).as_bytes()
    }

    /// The device key a name stands for.
    fn signing_key(name: &str) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&Runner::key(name))
    }

    /// Applies commands as one batch and prints each result, after any timers that fired.
    fn apply(&mut self, commands: Vec<Command>) -> Res<String> {
        let mut out = String::new();
        let timers_before: Vec<(u64, TimerKind, Id)> = self.ledger.timers().copied().collect();
        let index = self.ledger.applied_index() + 1;
        // Each batch one second of log time after the previous one, plus any `advance`.
        self.now += SEC;
        let batch = Batch {
            timestamp_ns: self.now,
            seed: index,
            commands,
        };
        let output = self.ledger.apply(index, &batch)?;
        let ts = output.timestamp_ns;
        let after: Vec<(u64, TimerKind, Id)> = self.ledger.timers().copied().collect();
        for t in &timers_before {
            if t.0 <= ts && !after.contains(t) {
                // Fired at the start of the batch, or settled by a command in it.
                let expired = match t.1 {
                    TimerKind::PendingTransfer => self
                        .ledger
                        .transfer(t.2)?
                        .is_some_and(|t| t.state == TransferState::PendingExpired),
                    TimerKind::Order => self
                        .ledger
                        .order(t.2)?
                        .is_some_and(|o| o.state == OrderState::Expired),
                    TimerKind::PaycodeNonce => true,
                    TimerKind::RedPacket => self
                        .ledger
                        .redpacket(t.2)?
                        .is_some_and(|(r, _, _)| r.state == RedPacketState::Expired),
                    TimerKind::Request => self
                        .ledger
                        .request(t.2)?
                        .is_some_and(|r| r.state == RequestState::Expired),
                    TimerKind::Split => self
                        .ledger
                        .split(t.2)?
                        .is_some_and(|x| x.state == SplitState::Expired),
                };
                if expired {
                    writeln!(out, "expired {} ({})", self.name(t.2), t.1)?;
                }
            }
        }
        for (c, r) in batch.commands.iter().zip(&output.results) {
            writeln!(out, "{} → {}", self.name(c.id()), r.code)?;
        }
        for e in &output.events {
            writeln!(out, "{}", self.event(e))?;
        }
        self.check()?;
        Ok(out)
    }

    /// Invariants after every batch: full consistency, and a snapshot restores to the same state.
    fn check(&self) -> Res<()> {
        self.ledger.verify()?;
        let snap = self.ledger.snapshot()?;
        let mut copy = Ledger::open(MemStore::new())?;
        copy.restore(self.ledger.applied_index(), &snap)?;
        if copy.digest() != self.ledger.digest() {
            return Err("snapshot restored to another digest".into());
        }
        Ok(())
    }

    fn submit(&mut self, c: Command) -> Res<String> {
        match &mut self.group {
            Some(g) => {
                g.push(c);
                Ok(String::new())
            }
            None => self.apply(vec![c]),
        }
    }

    /// One flow event, as the batch output and `journal` print it.
    fn event(&self, e: &FlowEvent) -> String {
        let accounts: Vec<String> = e.accounts.iter().map(|a| self.name(*a)).collect();
        format!(
            "  event {} {}{} → {} [{}] {} {}",
            e.kind,
            self.name(e.flow),
            if e.command == e.flow {
                String::new()
            } else {
                format!(" by {}", self.name(e.command))
            },
            e.state,
            accounts.join(" "),
            e.currency.to_decimal(e.amount),
            e.currency
        )
    }

    fn balances(&self, id: Id) -> Res<String> {
        let Some(a) = self.ledger.account(id) else {
            return Ok(format!("{}: no such account", self.name(id)));
        };
        let c = a.info.currency;
        let b = &a.state.balances;
        Ok(format!(
            "{}: balance {} {} available {} (posted dr {} cr {}, pending dr {} cr {}) {}",
            self.name(id),
            a.balance(),
            c,
            a.available(),
            c.to_decimal(b.debits_posted),
            c.to_decimal(b.credits_posted),
            c.to_decimal(b.debits_pending),
            c.to_decimal(b.credits_pending),
            a.status(),
        )
        .to_string()
            + &a.info
                .tier
                .as_ref()
                .map(|t| format!(" tier {t}"))
                .unwrap_or_default()
            + &(if a.info.normal_side == NormalSide::Debit {
                format!(" debit-normal {}", a.normal_balance())
            } else {
                String::new()
            }))
    }
}

impl Runner {
    /// The QR payload a `pay` line names: an order's own, a merchant's static code, or raw text;
    /// `tamper_amount` rebuilds an order's payload with another amount in tag 54.
    fn payload(&mut self, spec: &str, tamper_amount: Option<&str>) -> Res<String> {
        let (kind, rest) = spec.split_once('/').ok_or("qr=KIND/VALUE")?;
        Ok(match kind {
            "raw" => rest.to_string(),
            "static" => {
                let id = self.id(rest);
                let m = self.ledger.merchant(id).ok_or("no such merchant")?;
                let c = self.ledger.account(id).ok_or("no account")?.info.currency;
                emv::merchant_payload(m, c, None)?
            }
            "order" => {
                let id = self.id(rest);
                let o = self.ledger.order(id)?.ok_or("no such order")?;
                match tamper_amount {
                    None => self.ledger.order_payload(&o).ok_or("not a dynamic order")?,
                    Some(a) => {
                        let m = self.ledger.merchant(o.merchant).ok_or("no merchant")?;
                        let qr = emv::OrderQr {
                            id: o.id,
                            amount: a,
                            reference: &o.reference,
                        };
                        emv::merchant_payload(m, o.currency, Some(qr))?
                    }
                }
            }
            _ => return Err(format!("qr kind {kind:?}").into()),
        })
    }
}

fn amount(s: &str) -> Res<Decimal> {
    Ok(Decimal::from_str(s).map_err(|e| format!("amount {s:?}: {e}"))?)
}

/// The optional `currency=CUR` argument.
fn opt_currency(args: &mut goldenscript::ArgumentConsumer) -> Res<Option<Currency>> {
    args.lookup("currency")
        .map(|a| currency(&a.value))
        .transpose()
}

/// An optional amount argument.
fn opt_amount(args: &mut goldenscript::ArgumentConsumer, key: &str) -> Res<Option<Decimal>> {
    args.lookup(key).map(|a| amount(&a.value)).transpose()
}

/// A currency as a client declares it (an ISO code, or an in-app code the ledger resolves).
fn currency(s: &str) -> Res<Currency> {
    Ok(Currency::declared(s).ok_or_else(|| format!("unknown currency {s}"))?)
}

fn duration_ns(s: &str) -> Res<u64> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|_| format!("duration {s:?}"))?;
    let unit = match unit {
        "ns" => 1,
        "s" | "" => SEC,
        "m" => 60 * SEC,
        "h" => 3_600 * SEC,
        "d" => 86_400 * SEC,
        _ => return Err(format!("duration unit {unit:?}").into()),
    };
    Ok(n * unit)
}

fn pos<'a>(args: &mut goldenscript::ArgumentConsumer<'a>, what: &str) -> Res<&'a Argument> {
    Ok(args.next_pos().ok_or_else(|| format!("{what} not given"))?)
}

impl goldenscript::Runner for Runner {
    fn run(&mut self, line: &Line) -> Res<String> {
        let mut args = line.consume_args();
        let out = match line.name.as_str() {
            "account" => {
                let id = self.id(&pos(&mut args, "name")?.value);
                let cur = pos(&mut args, "currency")?.value.clone();
                let kind = match args.lookup("kind").map(|a| a.value.as_str()) {
                    None | Some("wallet") => AccountKind::Wallet,
                    Some("merchant") => AccountKind::Merchant,
                    Some("system") => AccountKind::System,
                    Some(k) => return Err(format!("kind {k}").into()),
                };
                let opt =
                    |args: &mut goldenscript::ArgumentConsumer, k: &str| -> Res<Option<Decimal>> {
                        args.lookup(k).map(|a| amount(&a.value)).transpose()
                    };
                let overdraft = opt(&mut args, "overdraft")?;
                let limits = LimitsSpec {
                    per_transfer_max: opt(&mut args, "per_transfer_max")?,
                    daily_outflow_max: opt(&mut args, "daily_outflow_max")?,
                    daily_outflow_count_max: args.lookup_parse("daily_outflow_count_max")?,
                    balance_max: opt(&mut args, "balance_max")?,
                };
                let metadata_n: usize = args.lookup_parse("metadata")?.unwrap_or(0);
                let metadata_value_len: usize =
                    args.lookup_parse("metadata_value_len")?.unwrap_or(1);
                let c = CreateAccount {
                    id,
                    currency: cur,
                    kind,
                    debits_must_not_exceed_credits: args
                        .lookup_parse("debits_must_not_exceed_credits")?
                        .unwrap_or(false),
                    credits_must_not_exceed_debits: args
                        .lookup_parse("credits_must_not_exceed_debits")?
                        .unwrap_or(false),
                    overdraft,
                    limits,
                    reference: args
                        .lookup("reference")
                        .map(|a| a.value.clone())
                        .unwrap_or_default(),
                    metadata: (0..metadata_n)
                        .map(|i| (format!("k{i}"), "v".repeat(metadata_value_len)))
                        .collect(),
                    normal_side: args
                        .lookup("normal_side")
                        .map(|a| NormalSide::from_name(&a.value).ok_or("normal_side"))
                        .transpose()?,
                };
                args.reject_rest()?;
                self.submit(Command::CreateAccount(c))?
            }
            "merchant" => {
                let id = self.id(&pos(&mut args, "name")?.value);
                let currency = pos(&mut args, "currency")?.value.clone();
                let text = |args: &mut goldenscript::ArgumentConsumer, k: &str, default: &str| {
                    args.lookup(k)
                        .map_or_else(|| default.to_string(), |a| a.value.clone())
                };
                let name = text(&mut args, "name", "NOODLES");
                let city = text(&mut args, "city", "CHONGQING");
                let mcc = text(&mut args, "mcc", "5814");
                let country = text(&mut args, "country", "CN");
                let fee_bps = args.lookup_parse("fee_bps")?.unwrap_or(0);
                let fee_account = args.lookup("fee_account").map(|a| a.value.clone());
                let fee_account = fee_account.map(|a| self.id(&a));
                args.reject_rest()?;
                self.submit(Command::CreateMerchant(CreateMerchant {
                    id,
                    currency,
                    name,
                    city,
                    mcc,
                    country,
                    fee_bps,
                    fee_account,
                }))?
            }
            "merchants" => {
                let mut out = String::new();
                for a in args.rest_pos() {
                    let id = self.id(&a.value);
                    match self.ledger.merchant(id) {
                        None => writeln!(out, "{}: no merchant", a.value)?,
                        Some(m) => writeln!(
                            out,
                            "{}: {:?} {:?} {} mcc {} fee {} bps{} ({} account)",
                            a.value,
                            m.name,
                            m.city,
                            m.country,
                            m.mcc,
                            m.fee_bps,
                            m.fee_account
                                .map(|f| format!(" to {}", self.name(f)))
                                .unwrap_or_default(),
                            self.ledger.account(id).map_or("no", |a| a.info.kind.name()),
                        )?,
                    }
                }
                args.reject_rest()?;
                out
            }
            "transfer" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let mut legs = Vec::new();
                let first: Vec<String> = args.rest_pos().iter().map(|a| a.value.clone()).collect();
                if !first.is_empty() {
                    let [from, to, amt] =
                        <[String; 3]>::try_from(first).map_err(|_| "transfer ID FROM TO AMOUNT")?;
                    let declared = opt_currency(&mut args)?;
                    legs.push(LegSpec {
                        debit: self.id(&from),
                        credit: self.id(&to),
                        amount: amount(&amt)?,
                        currency: declared,
                    });
                }
                // Every `leg=` in order (a lookup consumes them all and returns only the last).
                args.lookup("leg");
                for leg in line.args.iter().filter(|a| a.key.as_deref() == Some("leg")) {
                    let parts: Vec<&str> = leg.value.split('/').collect();
                    let (from, to, amt, cur) = match parts[..] {
                        [f, t, a] => (f, t, a, None),
                        [f, t, a, c] => (f, t, a, Some(currency(c)?)),
                        _ => {
                            return Err(format!("leg {:?}: FROM/TO/AMOUNT[/CUR]", leg.value).into())
                        }
                    };
                    legs.push(LegSpec {
                        debit: self.id(from),
                        credit: self.id(to),
                        amount: amount(amt)?,
                        currency: cur,
                    });
                }
                // `legs=N`: N identical legs of the first (for the leg-count limits).
                if let Some(n) = args.lookup_parse::<usize>("legs")? {
                    let leg = legs.first().cloned().ok_or("legs=N needs a first leg")?;
                    legs = vec![leg; n];
                }
                let t = CreateTransfer {
                    id,
                    legs,
                    pending_timeout_seconds: args.lookup_parse("timeout")?,
                    reference: args
                        .lookup("reference")
                        .map(|a| a.value.clone())
                        .unwrap_or_default(),
                };
                args.reject_rest()?;
                self.submit(Command::CreateTransfer(t))?
            }
            "post" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let pending_id = self.id(&pos(&mut args, "pending")?.value);
                let amount = opt_amount(&mut args, "amount")?;
                let currency = opt_currency(&mut args)?;
                args.reject_rest()?;
                self.submit(Command::PostPending(PostPending {
                    id,
                    pending_id,
                    amount,
                    currency,
                }))?
            }
            "void" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let pending_id = self.id(&pos(&mut args, "pending")?.value);
                args.reject_rest()?;
                self.submit(Command::VoidPending(VoidPending { id, pending_id }))?
            }
            "status" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let account = self.id(&pos(&mut args, "account")?.value);
                let status = AccountStatus::from_name(&pos(&mut args, "status")?.value)
                    .ok_or("status: open|frozen|closed")?;
                args.reject_rest()?;
                self.submit(Command::SetAccountStatus(SetAccountStatus {
                    id,
                    account,
                    status,
                }))?
            }
            "register" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let key = Runner::key(&pos(&mut args, "key")?.value);
                let role = ClientRole::from_name(&pos(&mut args, "role")?.value)
                    .ok_or("role: payments|finance|admin")?;
                let name = args
                    .lookup("name")
                    .map(|a| a.value.clone())
                    .unwrap_or_else(|| "client".into());
                args.reject_rest()?;
                self.submit(Command::RegisterClient(RegisterClient {
                    id,
                    public_key: key,
                    role,
                    name,
                }))?
            }
            "revoke" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let key = Runner::key(&pos(&mut args, "key")?.value);
                args.reject_rest()?;
                self.submit(Command::RevokeClient(RevokeClient {
                    id,
                    public_key: key,
                }))?
            }
            "clients" => {
                args.reject_rest()?;
                let mut out = String::new();
                for c in self.ledger.clients() {
                    writeln!(
                        out,
                        "{} {}{}",
                        c.name,
                        c.role,
                        if c.revoked { " revoked" } else { "" }
                    )?;
                }
                out
            }
            "order" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let merchant = self.id(&pos(&mut args, "merchant")?.value);
                let amount = amount(&pos(&mut args, "amount")?.value)?;
                let reference = args
                    .lookup("ref")
                    .map(|a| a.value.clone())
                    .unwrap_or_default();
                let currency = opt_currency(&mut args)?;
                let expires_in_seconds = args.lookup_parse("expires_in")?;
                args.reject_rest()?;
                self.submit(Command::CreateOrder(CreateOrder {
                    id,
                    merchant,
                    amount,
                    currency,
                    reference,
                    expires_in_seconds,
                }))?
            }
            "pay" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let payer = self.id(&pos(&mut args, "payer")?.value);
                let qr = args.lookup("qr").ok_or("qr= not given")?.value.clone();
                let tamper = args.lookup("tamper_amount").map(|a| a.value.clone());
                let qr = self.payload(&qr, tamper.as_deref())?;
                let amount = opt_amount(&mut args, "amount")?;
                let currency = opt_currency(&mut args)?;
                args.reject_rest()?;
                self.submit(Command::PayQr(PayQr {
                    id,
                    payer,
                    qr,
                    amount,
                    currency,
                }))?
            }
            "close" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let order = self.id(&pos(&mut args, "order")?.value);
                args.reject_rest()?;
                self.submit(Command::CloseOrder(CloseOrder { id, order }))?
            }
            "refund" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let order = self.id(&pos(&mut args, "order")?.value);
                let amount = amount(&pos(&mut args, "amount")?.value)?;
                let currency = opt_currency(&mut args)?;
                let reason = args
                    .lookup("reason")
                    .map(|a| a.value.clone())
                    .unwrap_or_default();
                args.reject_rest()?;
                self.submit(Command::Refund(Refund {
                    id,
                    order,
                    amount,
                    currency,
                    reason,
                }))?
            }
            "bill" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let payer = self.id(&pos(&mut args, "payer")?.value);
                let biller = self.id(&pos(&mut args, "biller")?.value);
                let bill_ref = pos(&mut args, "ref")?.value.clone();
                let amount = amount(&pos(&mut args, "amount")?.value)?;
                let currency = opt_currency(&mut args)?;
                args.reject_rest()?;
                self.submit(Command::PayBill(PayBill {
                    id,
                    payer,
                    biller,
                    bill_ref,
                    amount,
                    currency,
                }))?
            }
            "orders" => {
                let mut out = String::new();
                for a in args.rest_pos() {
                    let id = self.id(&a.value);
                    match self.ledger.order(id)? {
                        None => writeln!(out, "{}: no order", a.value)?,
                        Some(o) => {
                            let c = o.currency;
                            let amt = |v: u128| c.to_decimal(v);
                            write!(
                                out,
                                "{}: {} {} of {} for {} {c}",
                                a.value,
                                o.kind,
                                o.state,
                                self.name(o.merchant),
                                amt(o.amount)
                            )?;
                            if !o.reference.is_empty() {
                                write!(out, " ref {:?}", o.reference)?;
                            }
                            if let Some(p) = o.payer {
                                write!(
                                    out,
                                    "; paid {} by {} (fee {}), refunded {} (fee {})",
                                    amt(o.paid_amount),
                                    self.name(p),
                                    amt(o.fee),
                                    amt(o.refunded_amount),
                                    amt(o.fee_refunded)
                                )?;
                            }
                            if let (Some(e), OrderState::Unpaid) = (o.expires_ns, o.state) {
                                write!(out, "; expires +{}", pos_str(e - o.created_ns))?;
                            }
                            writeln!(out)?;
                        }
                    }
                }
                args.reject_rest()?;
                out
            }
            "paycode_bind" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let wallet = self.id(&pos(&mut args, "wallet")?.value);
                let key = Runner::signing_key(&pos(&mut args, "key")?.value);
                let paycode_max = args.lookup("max").map(|a| amount(&a.value)).transpose()?;
                args.reject_rest()?;
                self.submit(Command::BindPaycode(BindPaycode {
                    id,
                    wallet,
                    public_key: key.verifying_key().to_bytes(),
                    paycode_max,
                }))?
            }
            "paycode_revoke" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let wallet = self.id(&pos(&mut args, "wallet")?.value);
                args.reject_rest()?;
                self.submit(Command::RevokePaycode(RevokePaycode { id, wallet }))?
            }
            "paycode_make" => {
                use ed25519_dalek::Signer;
                let name = pos(&mut args, "token")?.value.clone();
                let wallet = self.id(&pos(&mut args, "wallet")?.value);
                let key = Runner::signing_key(&pos(&mut args, "key")?.value);
                let nonce: u128 = args
                    .lookup_parse("nonce")?
                    .unwrap_or(self.tokens.len() as u128 + 1);
                let valid = duration_ns(
                    &args
                        .lookup("valid")
                        .map_or("60s".to_string(), |a| a.value.clone()),
                )?;
                args.reject_rest()?;
                let nonce = nonce.to_be_bytes();
                let expires_ns = self.ledger.last_timestamp_ns().max(T0) + valid;
                let signature = key
                    .sign(&paycode::Token::signed_message(wallet, &nonce, expires_ns))
                    .to_bytes();
                let token = paycode::Token {
                    wallet,
                    nonce,
                    expires_ns,
                    signature,
                };
                // The text form round-trips (what the app shows is what the merchant scans).
                assert_eq!(paycode::Token::parse(&token.encode()), Ok(token));
                self.tokens.insert(name, token);
                String::new()
            }
            "paycode_pay" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let merchant = self.id(&pos(&mut args, "merchant")?.value);
                let token_name = pos(&mut args, "token")?.value.clone();
                let token = *self.tokens.get(&token_name).ok_or("no such token")?;
                let amount = amount(&pos(&mut args, "amount")?.value)?;
                let currency = opt_currency(&mut args)?;
                args.reject_rest()?;
                self.submit(Command::PayCode(PayCode {
                    id,
                    merchant,
                    token,
                    amount,
                    currency,
                }))?
            }
            "paycodes" => {
                let mut out = String::new();
                for a in args.rest_pos() {
                    let id = self.id(&a.value);
                    match self.ledger.paycode(id)? {
                        None => writeln!(out, "{}: no payment-code key", a.value)?,
                        Some(b) => {
                            let c = self.ledger.account(id).ok_or("no account")?.info.currency;
                            writeln!(
                                out,
                                "{}: key bound, max {} {c}{}",
                                a.value,
                                c.to_decimal(b.paycode_max),
                                if b.revoked { ", revoked" } else { "" }
                            )?
                        }
                    }
                }
                args.reject_rest()?;
                out
            }
            "topup" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let wallet = self.id(&pos(&mut args, "wallet")?.value);
                let bank = self.id(&pos(&mut args, "bank")?.value);
                let amount = amount(&pos(&mut args, "amount")?.value)?;
                let currency = opt_currency(&mut args)?;
                args.reject_rest()?;
                self.submit(Command::Topup(Topup {
                    id,
                    wallet,
                    bank,
                    amount,
                    currency,
                }))?
            }
            "withdraw" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let wallet = self.id(&pos(&mut args, "wallet")?.value);
                let bank = self.id(&pos(&mut args, "bank")?.value);
                let amount = amount(&pos(&mut args, "amount")?.value)?;
                let currency = opt_currency(&mut args)?;
                let fee_bps = args.lookup_parse("fee_bps")?.unwrap_or(0);
                let fee_account = args.lookup("fee_account").map(|a| a.value.clone());
                let fee_account = fee_account.map(|a| self.id(&a));
                let expires_in_seconds = args.lookup_parse("expires_in")?;
                args.reject_rest()?;
                self.submit(Command::Withdraw(Withdraw {
                    id,
                    wallet,
                    bank,
                    amount,
                    currency,
                    fee_bps,
                    fee_account,
                    expires_in_seconds,
                }))?
            }
            "withdraw_complete" | "withdraw_fail" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let withdrawal = self.id(&pos(&mut args, "withdrawal")?.value);
                args.reject_rest()?;
                self.submit(if line.name == "withdraw_complete" {
                    Command::CompleteWithdrawal(CompleteWithdrawal { id, withdrawal })
                } else {
                    Command::FailWithdrawal(FailWithdrawal { id, withdrawal })
                })?
            }
            "send" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let from = self.id(&pos(&mut args, "from")?.value);
                let to = self.id(&pos(&mut args, "to")?.value);
                let amount = amount(&pos(&mut args, "amount")?.value)?;
                let currency = opt_currency(&mut args)?;
                let note = args
                    .lookup("note")
                    .map(|a| a.value.clone())
                    .unwrap_or_default();
                let accept_within_seconds = args.lookup_parse("accept_within")?;
                let fee_bps = args.lookup_parse("fee_bps")?.unwrap_or(0);
                let fee_account = args.lookup("fee_account").map(|a| a.value.clone());
                let fee_account = fee_account.map(|a| self.id(&a));
                args.reject_rest()?;
                self.submit(Command::Send(Send {
                    id,
                    from,
                    to,
                    amount,
                    currency,
                    note,
                    accept_within_seconds,
                    fee_bps,
                    fee_account,
                }))?
            }
            "receive" | "return" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let transfer = self.id(&pos(&mut args, "transfer")?.value);
                args.reject_rest()?;
                self.submit(if line.name == "receive" {
                    Command::ReceiveTransfer(ReceiveTransfer { id, transfer })
                } else {
                    Command::ReturnTransfer(ReturnTransfer { id, transfer })
                })?
            }
            "request" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let payee = self.id(&pos(&mut args, "payee")?.value);
                let payer = self.id(&pos(&mut args, "payer")?.value);
                let amount = amount(&pos(&mut args, "amount")?.value)?;
                let currency = opt_currency(&mut args)?;
                let note = args
                    .lookup("note")
                    .map(|a| a.value.clone())
                    .unwrap_or_default();
                let expires_in_seconds = args.lookup_parse("expires_in")?;
                args.reject_rest()?;
                self.submit(Command::CreateRequest(CreateRequest {
                    id,
                    payee,
                    payer,
                    amount,
                    currency,
                    note,
                    expires_in_seconds,
                }))?
            }
            "request_pay" | "request_decline" | "request_cancel" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let request = self.id(&pos(&mut args, "request")?.value);
                args.reject_rest()?;
                let a = RequestAction { id, request };
                self.submit(match line.name.as_str() {
                    "request_pay" => Command::PayRequest(a),
                    "request_decline" => Command::DeclineRequest(a),
                    _ => Command::CancelRequest(a),
                })?
            }
            "requests" => {
                let mut out = String::new();
                for a in args.rest_pos() {
                    let id = self.id(&a.value);
                    match self.ledger.request(id)? {
                        None => writeln!(out, "{}: no request", a.value)?,
                        Some(r) => writeln!(
                            out,
                            "{}: {} {} {} from {} to {}{}{}",
                            a.value,
                            r.state,
                            r.currency.to_decimal(r.amount),
                            r.currency,
                            self.name(r.payer),
                            self.name(r.payee),
                            if r.note.is_empty() {
                                String::new()
                            } else {
                                format!(" {:?}", r.note)
                            },
                            r.payment
                                .map(|p| format!(" paid by {}", self.name(p)))
                                .unwrap_or_default()
                        )?,
                    }
                }
                args.reject_rest()?;
                out
            }
            "split" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let payer = self.id(&pos(&mut args, "payer")?.value);
                let total = amount(&pos(&mut args, "total")?.value)?;
                let currency = currency(&pos(&mut args, "currency")?.value)?;
                let names = args
                    .lookup("participants")
                    .ok_or("participants=")?
                    .value
                    .clone();
                let participants = names.split(',').map(|n| self.id(n)).collect();
                let mode = match args.lookup("mode") {
                    None => SplitMode::Equal,
                    Some(m) => SplitMode::from_name(&m.value).ok_or("mode")?,
                };
                let values = match args.lookup("values") {
                    None => Vec::new(),
                    Some(v) => v.value.split(',').map(amount).collect::<Res<_>>()?,
                };
                let note = args
                    .lookup("note")
                    .map(|a| a.value.clone())
                    .unwrap_or_default();
                let group = args.lookup("group").map(|a| a.value.clone());
                let group = group.map(|g| self.id(&g));
                let expires_in_seconds = args.lookup_parse("expires_in")?;
                args.reject_rest()?;
                self.submit(Command::CreateSplit(CreateSplit {
                    id,
                    payer,
                    total,
                    currency,
                    participants,
                    mode,
                    values,
                    note,
                    group,
                    expires_in_seconds,
                }))?
            }
            "group" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let name = pos(&mut args, "name")?.value.clone();
                let names = args.lookup("members").ok_or("members=")?.value.clone();
                let members = names.split(',').map(|n| self.id(n)).collect();
                args.reject_rest()?;
                self.submit(Command::CreateGroup(CreateGroup { id, name, members }))?
            }
            "group_settle" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let group = self.id(&pos(&mut args, "group")?.value);
                args.reject_rest()?;
                self.submit(Command::SettleGroup(SettleGroup { id, group }))?
            }
            "group_balances" => {
                let id = self.id(&pos(&mut args, "group")?.value);
                args.reject_rest()?;
                let mut out = String::new();
                match self.ledger.group_balances(id)? {
                    None => writeln!(out, "no group")?,
                    Some(nets) => {
                        for (cur, m) in nets {
                            let v: Vec<String> = m
                                .iter()
                                .map(|(a, n)| {
                                    format!("{} {}", self.name(*a), cur.to_decimal_signed(*n))
                                })
                                .collect();
                            writeln!(out, "{cur}: {}", v.join(", "))?;
                        }
                    }
                }
                out
            }
            "split_pay" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let split = self.id(&pos(&mut args, "split")?.value);
                let participant = self.id(&pos(&mut args, "participant")?.value);
                args.reject_rest()?;
                self.submit(Command::PaySplit(PaySplit {
                    id,
                    split,
                    participant,
                }))?
            }
            "split_cancel" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let split = self.id(&pos(&mut args, "split")?.value);
                args.reject_rest()?;
                self.submit(Command::CancelSplit(CancelSplit { id, split }))?
            }
            "splits" => {
                let mut out = String::new();
                for a in args.rest_pos() {
                    let id = self.id(&a.value);
                    match self.ledger.split(id)? {
                        None => writeln!(out, "{}: no split", a.value)?,
                        Some(x) => {
                            let c = x.currency;
                            let items: Vec<String> = x
                                .items
                                .iter()
                                .map(|i| {
                                    format!(
                                        "{} {} {}",
                                        self.name(i.participant),
                                        c.to_decimal(i.amount),
                                        i.state
                                    )
                                })
                                .collect();
                            writeln!(
                                out,
                                "{}: {} {} {} {c} paid by {}: {}",
                                a.value,
                                x.mode,
                                x.state,
                                c.to_decimal(x.total),
                                self.name(x.payer),
                                items.join(", ")
                            )?
                        }
                    }
                }
                args.reject_rest()?;
                out
            }
            "redpacket" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let sender = self.id(&pos(&mut args, "sender")?.value);
                let total = amount(&pos(&mut args, "total")?.value)?;
                let count: u32 = pos(&mut args, "count")?.value.parse()?;
                let currency = opt_currency(&mut args)?;
                let random = match args.lookup("mode").map(|a| a.value.clone()).as_deref() {
                    None | Some("random") => true,
                    Some("fixed") => false,
                    Some(m) => return Err(format!("mode {m}").into()),
                };
                let expires_in_seconds = args.lookup_parse("expires_in")?;
                let group = args.lookup("group").map(|a| a.value.clone());
                let group = group.map(|g| self.id(&g));
                args.reject_rest()?;
                self.submit(Command::CreateRedPacket(CreateRedPacket {
                    id,
                    sender,
                    total,
                    currency,
                    count,
                    random,
                    expires_in_seconds,
                    group,
                }))?
            }
            "claim" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let packet = self.id(&pos(&mut args, "packet")?.value);
                let wallet = self.id(&pos(&mut args, "wallet")?.value);
                args.reject_rest()?;
                self.submit(Command::ClaimRedPacket(ClaimRedPacket {
                    id,
                    packet,
                    wallet,
                }))?
            }
            "redpackets" => {
                let mut out = String::new();
                for a in args.rest_pos() {
                    let id = self.id(&a.value);
                    match self.ledger.redpacket(id)? {
                        None => writeln!(out, "{}: no red packet", a.value)?,
                        Some((r, slots, claims)) => {
                            let c = r.currency;
                            let fmt = |v: u128| c.to_decimal(v).to_string();
                            let recomputed =
                                redpacket::slots(r.seed, r.total as u64, r.count, r.random);
                            writeln!(
                                out,
                                "{}: {} {} {c} in {} slots, claimed {} ({}); slots [{}]; verify {}",
                                a.value,
                                r.state,
                                fmt(r.total),
                                r.count,
                                r.claimed,
                                fmt(r.claimed_amount),
                                slots
                                    .iter()
                                    .map(|s| fmt(u128::from(*s)))
                                    .collect::<Vec<_>>()
                                    .join(" "),
                                if recomputed == slots {
                                    "ok"
                                } else {
                                    "MISMATCH"
                                }
                            )?;
                            for cl in claims {
                                writeln!(
                                    out,
                                    "  slot {} → {} {} by {}",
                                    cl.slot,
                                    self.name(cl.wallet),
                                    fmt(cl.amount),
                                    self.name(cl.claim)
                                )?;
                            }
                        }
                    }
                }
                args.reject_rest()?;
                out
            }
            "journal" => {
                let from: u64 = args.lookup_parse("from")?.unwrap_or(1);
                args.reject_rest()?;
                let (batches, next) = self.ledger.events(from)?;
                let mut out = format!(
                    "journal from {from}: {} batches with events, next {next}, oldest kept {}\n",
                    batches.len(),
                    self.ledger.first_journaled_index()
                );
                for b in batches {
                    writeln!(out, "index {}:", b.index)?;
                    for e in &b.events {
                        writeln!(out, "{}", self.event(e))?;
                    }
                }
                out
            }
            "begin" => {
                args.reject_rest()?;
                if self.group.replace(Vec::new()).is_some() {
                    return Err("begin inside begin".into());
                }
                String::new()
            }
            "commit" => {
                args.reject_rest()?;
                let g = self.group.take().ok_or("commit without begin")?;
                self.apply(g)?
            }
            "advance" => {
                if let Some(a) = args.lookup("until") {
                    // The next batch is stamped exactly when the named object's timer falls due.
                    let id = self.id(&a.value);
                    let due = self
                        .ledger
                        .timers()
                        .find(|t| t.2 == id)
                        .ok_or_else(|| format!("no timer for {}", a.value))?
                        .0;
                    self.now = due - SEC;
                } else {
                    self.now += duration_ns(&pos(&mut args, "duration")?.value)?;
                }
                args.reject_rest()?;
                String::new()
            }
            "clock_back" => {
                self.now -= duration_ns(&pos(&mut args, "duration")?.value)?;
                args.reject_rest()?;
                String::new()
            }
            "currency_define" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let code = pos(&mut args, "code")?.value.clone();
                let scale: u8 = pos(&mut args, "scale")?.value.parse()?;
                let name = args
                    .lookup("name")
                    .map(|a| a.value.clone())
                    .unwrap_or_default();
                args.reject_rest()?;
                self.submit(Command::DefineCurrency(DefineCurrency {
                    id,
                    code,
                    scale,
                    name,
                }))?
            }
            "rate" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let from = currency(&pos(&mut args, "from")?.value)?;
                let to = currency(&pos(&mut args, "to")?.value)?;
                let rate = Decimal::from_str(&pos(&mut args, "rate")?.value)?;
                args.reject_rest()?;
                self.submit(Command::SetRate(SetRate { id, from, to, rate }))?
            }
            "convert" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let from = self.id(&pos(&mut args, "from")?.value);
                let to = self.id(&pos(&mut args, "to")?.value);
                let amount = amount(&pos(&mut args, "amount")?.value)?;
                let currency = opt_currency(&mut args)?;
                let expect_rate = args
                    .lookup("expect_rate")
                    .map(|a| Decimal::from_str(&a.value))
                    .transpose()?;
                args.reject_rest()?;
                self.submit(Command::Convert(Convert {
                    id,
                    from,
                    to,
                    amount,
                    currency,
                    expect_rate,
                }))?
            }
            "tier" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let name = pos(&mut args, "name")?.value.clone();
                let limits = LimitsSpec {
                    per_transfer_max: opt_amount(&mut args, "per_transfer_max")?,
                    daily_outflow_max: opt_amount(&mut args, "daily_outflow_max")?,
                    daily_outflow_count_max: args.lookup_parse("daily_outflow_count_max")?,
                    balance_max: opt_amount(&mut args, "balance_max")?,
                };
                args.reject_rest()?;
                self.submit(Command::DefineTier(DefineTier { id, name, limits }))?
            }
            "set_tier" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let account = self.id(&pos(&mut args, "account")?.value);
                let tier = pos(&mut args, "tier")?.value.clone();
                args.reject_rest()?;
                self.submit(Command::SetAccountTier(SetAccountTier {
                    id,
                    account,
                    tier,
                }))?
            }
            "setting" => {
                let id = self.id(&pos(&mut args, "id")?.value);
                let key = pos(&mut args, "key")?.value.clone();
                let value = pos(&mut args, "value")?.value.clone();
                args.reject_rest()?;
                self.submit(Command::SetSetting(SetSetting { id, key, value }))?
            }
            "config" => {
                args.reject_rest()?;
                let mut out = String::new();
                for c in self.ledger.currencies() {
                    writeln!(
                        out,
                        "currency {} scale {} {:?}",
                        c.currency,
                        c.currency.exponent(),
                        c.name
                    )?;
                }
                for r in self.ledger.rates() {
                    writeln!(
                        out,
                        "rate {}→{} {} set by {}",
                        r.from,
                        r.to,
                        r.rate,
                        self.name(r.set_by)
                    )?;
                }
                for t in self.ledger.tiers() {
                    let l = &t.limits;
                    writeln!(
                        out,
                        "tier {} per_transfer_max {:?} daily_outflow_max {:?} daily_outflow_count_max {:?} balance_max {:?}",
                        t.name,
                        l.per_transfer_max.map(|d| d.to_string()),
                        l.daily_outflow_max.map(|d| d.to_string()),
                        l.daily_outflow_count_max,
                        l.balance_max.map(|d| d.to_string()),
                    )?;
                }
                writeln!(
                    out,
                    "business-utc-offset {}",
                    Settings::format_offset(self.ledger.settings().business_utc_offset_seconds)
                )?;
                out
            }
            "conversions" => {
                let mut out = String::new();
                for a in args.rest_pos() {
                    let id = self.id(&a.value);
                    match self.ledger.conversion(id)? {
                        None => writeln!(out, "{}: no conversion", a.value)?,
                        Some(c) => writeln!(
                            out,
                            "{}: {} paid {} {} → {} got {} {} at {}",
                            a.value,
                            self.name(c.from_account),
                            c.from_currency.to_decimal(c.from_amount),
                            c.from_currency,
                            self.name(c.to_account),
                            c.to_currency.to_decimal(c.to_amount),
                            c.to_currency,
                            c.rate
                        )?,
                    }
                }
                args.reject_rest()?;
                out
            }
            "settlement" => {
                // The merchant's settlement over its whole history so far.
                let id = self.id(&pos(&mut args, "merchant")?.value);
                args.reject_rest()?;
                let c = self
                    .ledger
                    .account(id)
                    .ok_or("no such account")?
                    .info
                    .currency;
                let Some(x) = self.ledger.merchant_settlement(id, 0, u64::MAX)? else {
                    return Ok("no such merchant\n".into());
                };
                format!(
                    "payments {} gross {} fees {}; refunds {} refunded {} fees refunded {}; other in {} out {}; net {}\n",
                    x.payments,
                    c.to_decimal(x.gross),
                    c.to_decimal(x.fees),
                    x.refunds,
                    c.to_decimal(x.refunded),
                    c.to_decimal(x.fees_refunded),
                    c.to_decimal(x.other_in),
                    c.to_decimal(x.other_out),
                    c.to_decimal_signed(x.net)
                )
            }
            "by_reference" => {
                let reference = pos(&mut args, "reference")?.value.clone();
                args.reject_rest()?;
                let ids = self.ledger.transfers_by_reference(&reference, None, 100)?;
                let names: Vec<String> = ids.iter().map(|i| self.name(*i)).collect();
                format!("{reference}: [{}]\n", names.join(" "))
            }
            "balances" => {
                let mut out = String::new();
                for a in args.rest_pos() {
                    let id = self.id(&a.value);
                    writeln!(out, "{}", self.balances(id)?)?;
                }
                args.reject_rest()?;
                out
            }
            "history" => {
                let id = self.id(&pos(&mut args, "account")?.value);
                let after: u64 = args.lookup_parse("after")?.unwrap_or(0);
                let limit: usize = args.lookup_parse("limit")?.unwrap_or(100);
                args.reject_rest()?;
                let c = self
                    .ledger
                    .account(id)
                    .ok_or("no such account")?
                    .info
                    .currency;
                let mut out = String::new();
                for p in self.ledger.history(id, after, limit)? {
                    writeln!(
                        out,
                        "#{} {} {} {} {} by {} leg {} ({} with {}) → posted dr {} cr {}, pending dr {} cr {}",
                        p.seq,
                        p.kind,
                        if p.is_debit { "dr" } else { "cr" },
                        c.to_decimal(p.amount),
                        c,
                        self.name(p.transfer),
                        p.leg,
                        p.flow,
                        p.counterparty.map_or("?".to_string(), |a| self.name(a)),
                        c.to_decimal(p.balances_after.debits_posted),
                        c.to_decimal(p.balances_after.credits_posted),
                        c.to_decimal(p.balances_after.debits_pending),
                        c.to_decimal(p.balances_after.credits_pending),
                    )?;
                }
                out
            }
            "balance_at" => {
                let id = self.id(&pos(&mut args, "account")?.value);
                let ago = duration_ns(&pos(&mut args, "ago")?.value)?;
                args.reject_rest()?;
                let c = self
                    .ledger
                    .account(id)
                    .ok_or("no such account")?
                    .info
                    .currency;
                let at = self.ledger.last_timestamp_ns() - ago;
                let b = self.ledger.balance_at(id, at)?.ok_or("no such account")?;
                format!(
                    "{} {} ago: net {} {}\n",
                    self.name(id),
                    pos_str(ago),
                    c.to_decimal_signed(b.credits_posted as i128 - b.debits_posted as i128),
                    c
                )
            }
            "get" => {
                let mut out = String::new();
                for a in args.rest_pos() {
                    let id = self.id(&a.value);
                    match self.ledger.transfer(id)? {
                        None => writeln!(out, "{}: no transfer", a.value)?,
                        Some(t) => {
                            let legs: Vec<String> = t
                                .legs
                                .iter()
                                .map(|l| {
                                    let c = self.ledger.account(l.debit).map(|a| a.info.currency);
                                    let amt = c.map_or(l.amount.to_string(), |c| {
                                        format!("{} {c}", c.to_decimal(l.amount))
                                    });
                                    format!("{}→{} {amt}", self.name(l.debit), self.name(l.credit))
                                })
                                .collect();
                            write!(out, "{}: {} [{}]", a.value, t.state, legs.join(", "))?;
                            if let Some(p) = t.pending_id {
                                write!(out, " of {}", self.name(p))?;
                            }
                            if let Some(p) = t.posted_amount {
                                let c = t
                                    .legs
                                    .first()
                                    .and_then(|l| self.ledger.account(l.debit))
                                    .map(|a| a.info.currency);
                                match c {
                                    Some(c) => write!(out, " posted {} {c}", c.to_decimal(p))?,
                                    None => write!(out, " posted {p}")?,
                                }
                            }
                            if let Some(e) = t.expires_ns {
                                write!(out, " expires +{}", pos_str(e - t.timestamp_ns))?;
                            }
                            writeln!(out)?;
                        }
                    }
                }
                args.reject_rest()?;
                out
            }
            "timers" => {
                args.reject_rest()?;
                let mut out = String::new();
                let now = self.ledger.last_timestamp_ns();
                for (due, kind, id) in self.ledger.timers() {
                    writeln!(
                        out,
                        "{} {} due in {}",
                        self.name(*id),
                        kind,
                        pos_str(due.saturating_sub(now))
                    )?;
                }
                if out.is_empty() {
                    out.push_str("no timers\n");
                }
                out
            }
            "totals" => {
                args.reject_rest()?;
                let mut out = String::new();
                for (c, t) in self.ledger.totals() {
                    writeln!(
                        out,
                        "{c}: {} accounts, posted dr {} cr {}, pending dr {} cr {}",
                        t.accounts,
                        c.to_decimal(t.debits_posted),
                        c.to_decimal(t.credits_posted),
                        c.to_decimal(t.debits_pending),
                        c.to_decimal(t.credits_pending)
                    )?;
                }
                out
            }
            name => return Err(format!("unknown command {name}").into()),
        };
        Ok(out)
    }

    fn end_script(&mut self) -> Res<()> {
        if self.group.is_some() {
            return Err("begin without commit".into());
        }
        Ok(())
    }
}

/// A duration in the largest whole unit.
fn pos_str(ns: u64) -> String {
    for (unit, n) in [
        ("d", 86_400 * SEC),
        ("h", 3_600 * SEC),
        ("m", 60 * SEC),
        ("s", SEC),
    ] {
        if ns >= n && ns % n == 0 {
            return format!("{}{unit}", ns / n);
        }
    }
    format!("{ns}ns")
}

/// Runs every script of one family folder, each with a fresh ledger.
fn family(name: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no scripts in {}", dir.display());
    for f in files {
        eprintln!("golden script {}", f.display());
        goldenscript::run(&mut Runner::new(), &f)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
    }
}

#[test]
fn accounts() {
    family("accounts");
}

#[test]
fn transfers() {
    family("transfers");
}

#[test]
fn pending() {
    family("pending");
}

#[test]
fn limits() {
    family("limits");
}

#[test]
fn idempotency() {
    family("idempotency");
}

#[test]
fn clients() {
    family("clients");
}

#[test]
fn merchants() {
    family("merchants");
}

#[test]
fn orders() {
    family("orders");
}

#[test]
fn paycodes() {
    family("paycodes");
}

#[test]
fn cash() {
    family("cash");
}

#[test]
fn social() {
    family("social");
}

#[test]
fn log_time() {
    family("log_time");
}

#[test]
fn config() {
    family("config");
}
