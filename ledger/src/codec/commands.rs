//! Commands inside Raft entries (their bytes are also what an idempotency fingerprint covers), and
//! results back.

use super::*;

// ---- commands -------------------------------------------------------------------------------------

/// Encodes one command's body (the part its idempotency fingerprint covers).
pub fn encode_command(e: &mut Enc, c: &Command) {
    match c {
        Command::CreateAccount(a) => {
            // Tag 45 adds the normal side (tag 1: without one, as logged before it existed).
            e.u8(if a.normal_side.is_some() { 45 } else { 1 });
            e.id(a.id);
            e.str(&a.currency);
            e.u8(a.kind as u8);
            e.bool(a.debits_must_not_exceed_credits);
            e.bool(a.credits_must_not_exceed_debits);
            e.opt_decimal(a.overdraft);
            e.opt_decimal(a.limits.per_transfer_max);
            e.opt_decimal(a.limits.daily_outflow_max);
            e.opt_u32(a.limits.daily_outflow_count_max);
            e.opt_decimal(a.limits.balance_max);
            e.str(&a.reference);
            e.map(&a.metadata);
            if let Some(s) = a.normal_side {
                e.u8(s as u8);
            }
        }
        Command::CreateTransfer(t) => {
            // Tag 8 carries each leg's declared currency; tag 2 (no currencies) is what commands
            // logged before that looked like, kept so they decode and fingerprint as they did.
            let declared = t.legs.iter().any(|l| l.currency.is_some());
            e.u8(if declared { 8 } else { 2 });
            e.id(t.id);
            e.u32(t.legs.len() as u32);
            for l in &t.legs {
                e.id(l.debit);
                e.id(l.credit);
                e.decimal(l.amount);
                if declared {
                    e.opt_currency(l.currency);
                }
            }
            e.opt_u64(t.pending_timeout_seconds);
            e.str(&t.reference);
        }
        Command::PostPending(p) => {
            // Tag 9 adds the declared currency (tag 3: as logged before it existed).
            e.u8(if p.currency.is_some() { 9 } else { 3 });
            e.id(p.id);
            e.id(p.pending_id);
            e.opt_decimal(p.amount);
            if let Some(c) = p.currency {
                e.currency(c);
            }
        }
        Command::VoidPending(v) => {
            e.u8(4);
            e.id(v.id);
            e.id(v.pending_id);
        }
        Command::SetAccountStatus(s) => {
            e.u8(5);
            e.id(s.id);
            e.id(s.account);
            e.u8(s.status as u8);
        }
        Command::RegisterClient(r) => {
            e.u8(6);
            e.id(r.id);
            e.buf.extend_from_slice(&r.public_key);
            e.u8(r.role as u8);
            e.str(&r.name);
        }
        Command::RevokeClient(r) => {
            e.u8(7);
            e.id(r.id);
            e.buf.extend_from_slice(&r.public_key);
        }
        Command::CreateMerchant(m) => {
            e.u8(10);
            e.id(m.id);
            e.str(&m.currency);
            e.str(&m.name);
            e.str(&m.city);
            e.str(&m.mcc);
            e.str(&m.country);
            e.u32(m.fee_bps);
            e.opt_id(m.fee_account);
        }
        Command::CreateOrder(o) => {
            e.u8(11);
            e.id(o.id);
            e.id(o.merchant);
            e.decimal(o.amount);
            e.opt_currency(o.currency);
            e.str(&o.reference);
            e.opt_u64(o.expires_in_seconds);
        }
        Command::PayQr(p) => {
            e.u8(12);
            e.id(p.id);
            e.id(p.payer);
            e.str(&p.qr);
            e.opt_decimal(p.amount);
            e.opt_currency(p.currency);
        }
        Command::CloseOrder(c) => {
            e.u8(13);
            e.id(c.id);
            e.id(c.order);
        }
        Command::Refund(r) => {
            e.u8(14);
            e.id(r.id);
            e.id(r.order);
            e.decimal(r.amount);
            e.opt_currency(r.currency);
            e.str(&r.reason);
        }
        Command::PayBill(b) => {
            e.u8(15);
            e.id(b.id);
            e.id(b.payer);
            e.id(b.biller);
            e.str(&b.bill_ref);
            e.decimal(b.amount);
            e.opt_currency(b.currency);
        }
        Command::BindPaycode(b) => {
            e.u8(16);
            e.id(b.id);
            e.id(b.wallet);
            e.buf.extend_from_slice(&b.public_key);
            e.opt_decimal(b.paycode_max);
        }
        Command::RevokePaycode(r) => {
            e.u8(17);
            e.id(r.id);
            e.id(r.wallet);
        }
        Command::PayCode(p) => {
            e.u8(18);
            e.id(p.id);
            e.id(p.merchant);
            e.id(p.token.wallet);
            e.buf.extend_from_slice(&p.token.nonce);
            e.u64(p.token.expires_ns);
            e.buf.extend_from_slice(&p.token.signature);
            e.decimal(p.amount);
            e.opt_currency(p.currency);
        }
        Command::Topup(t) => {
            e.u8(19);
            e.id(t.id);
            e.id(t.wallet);
            e.id(t.bank);
            e.decimal(t.amount);
            e.opt_currency(t.currency);
        }
        Command::Withdraw(w) => {
            e.u8(20);
            e.id(w.id);
            e.id(w.wallet);
            e.id(w.bank);
            e.decimal(w.amount);
            e.opt_currency(w.currency);
            e.u32(w.fee_bps);
            e.opt_id(w.fee_account);
            e.opt_u64(w.expires_in_seconds);
        }
        Command::CompleteWithdrawal(c) => {
            e.u8(21);
            e.id(c.id);
            e.id(c.withdrawal);
        }
        Command::FailWithdrawal(f) => {
            e.u8(22);
            e.id(f.id);
            e.id(f.withdrawal);
        }
        Command::Send(s) => {
            e.u8(23);
            e.id(s.id);
            e.id(s.from);
            e.id(s.to);
            e.decimal(s.amount);
            e.opt_currency(s.currency);
            e.str(&s.note);
            e.opt_u64(s.accept_within_seconds);
            e.u32(s.fee_bps);
            e.opt_id(s.fee_account);
        }
        Command::ReceiveTransfer(r) => {
            e.u8(24);
            e.id(r.id);
            e.id(r.transfer);
        }
        Command::ReturnTransfer(r) => {
            e.u8(25);
            e.id(r.id);
            e.id(r.transfer);
        }
        Command::CreateRequest(r) => {
            e.u8(26);
            e.id(r.id);
            e.id(r.payee);
            e.id(r.payer);
            e.decimal(r.amount);
            e.opt_currency(r.currency);
            e.str(&r.note);
            e.opt_u64(r.expires_in_seconds);
        }
        Command::PayRequest(a) | Command::DeclineRequest(a) | Command::CancelRequest(a) => {
            e.u8(match c {
                Command::PayRequest(_) => 27,
                Command::DeclineRequest(_) => 28,
                _ => 29,
            });
            e.id(a.id);
            e.id(a.request);
        }
        Command::CreateSplit(x) => {
            // Tag 44 adds the expiry (tag 30: without one, as logged before it existed).
            e.u8(if x.expires_in_seconds.is_some() {
                44
            } else {
                30
            });
            e.id(x.id);
            e.id(x.payer);
            e.decimal(x.total);
            e.currency(x.currency);
            e.u32(x.participants.len() as u32);
            for p in &x.participants {
                e.id(*p);
            }
            e.u8(x.mode as u8);
            e.u32(x.values.len() as u32);
            for v in &x.values {
                e.decimal(*v);
            }
            e.str(&x.note);
            e.opt_id(x.group);
            if let Some(s) = x.expires_in_seconds {
                e.u64(s);
            }
        }
        Command::PaySplit(p) => {
            e.u8(31);
            e.id(p.id);
            e.id(p.split);
            e.id(p.participant);
        }
        Command::CancelSplit(c) => {
            e.u8(32);
            e.id(c.id);
            e.id(c.split);
        }
        Command::CreateRedPacket(r) => {
            // Tag 43 adds the group (tag 33: without one, as logged before it existed).
            e.u8(if r.group.is_some() { 43 } else { 33 });
            e.id(r.id);
            e.id(r.sender);
            e.decimal(r.total);
            e.opt_currency(r.currency);
            e.u32(r.count);
            e.bool(r.random);
            e.opt_u64(r.expires_in_seconds);
            if let Some(g) = r.group {
                e.id(g);
            }
        }
        Command::ClaimRedPacket(c) => {
            e.u8(34);
            e.id(c.id);
            e.id(c.packet);
            e.id(c.wallet);
        }
        Command::CreateGroup(g) => {
            e.u8(35);
            e.id(g.id);
            e.str(&g.name);
            e.u32(g.members.len() as u32);
            for m in &g.members {
                e.id(*m);
            }
        }
        Command::SettleGroup(g) => {
            e.u8(36);
            e.id(g.id);
            e.id(g.group);
        }
        Command::DefineCurrency(c) => {
            e.u8(37);
            e.id(c.id);
            e.str(&c.code);
            e.u8(c.scale);
            e.str(&c.name);
        }
        Command::SetRate(r) => {
            e.u8(38);
            e.id(r.id);
            e.currency(r.from);
            e.currency(r.to);
            e.decimal(r.rate);
        }
        Command::Convert(c) => {
            e.u8(39);
            e.id(c.id);
            e.id(c.from);
            e.id(c.to);
            e.decimal(c.amount);
            e.opt_currency(c.currency);
            e.opt_decimal(c.expect_rate);
        }
        Command::DefineTier(t) => {
            e.u8(40);
            e.id(t.id);
            e.str(&t.name);
            e.opt_decimal(t.limits.per_transfer_max);
            e.opt_decimal(t.limits.daily_outflow_max);
            e.opt_u32(t.limits.daily_outflow_count_max);
            e.opt_decimal(t.limits.balance_max);
        }
        Command::SetAccountTier(t) => {
            e.u8(41);
            e.id(t.id);
            e.id(t.account);
            e.str(&t.tier);
        }
        Command::SetSetting(x) => {
            e.u8(42);
            e.id(x.id);
            e.str(&x.key);
            e.str(&x.value);
        }
    }
}

/// Decodes one command. Structural limits (legs, metadata entries) are enforced here; business
/// validation happens at apply time.
pub fn decode_command(d: &mut Dec<'_>) -> Result<Command, DecodeError> {
    Ok(match d.u8()? {
        tag @ (1 | 45) => Command::CreateAccount(CreateAccount {
            id: d.id()?,
            currency: d.string()?,
            kind: AccountKind::from_repr(d.u8()?).ok_or(DecodeError("bad account kind"))?,
            debits_must_not_exceed_credits: d.bool()?,
            credits_must_not_exceed_debits: d.bool()?,
            overdraft: d.opt_decimal()?,
            limits: LimitsSpec {
                per_transfer_max: d.opt_decimal()?,
                daily_outflow_max: d.opt_decimal()?,
                daily_outflow_count_max: d.opt_u32()?,
                balance_max: d.opt_decimal()?,
            },
            reference: d.string()?,
            metadata: d.map(METADATA_ENTRIES_ENCODED_MAX)?,
            normal_side: if tag == 45 {
                Some(NormalSide::from_repr(d.u8()?).ok_or(DecodeError("bad normal side"))?)
            } else {
                None
            },
        }),
        tag @ (2 | 8) => {
            let declared = tag == 8;
            let id = d.id()?;
            let n = d.count(LEGS_ENCODED_MAX)?;
            let mut legs = Vec::with_capacity(n);
            for _ in 0..n {
                legs.push(LegSpec {
                    debit: d.id()?,
                    credit: d.id()?,
                    amount: d.decimal()?,
                    currency: if declared { d.opt_currency()? } else { None },
                });
            }
            if declared && legs.iter().all(|l| l.currency.is_none()) {
                // Canonical form only: the encoder writes such a transfer with tag 2.
                return Err(DecodeError("tag 8 without a declared currency"));
            }
            Command::CreateTransfer(CreateTransfer {
                id,
                legs,
                pending_timeout_seconds: d.opt_u64()?,
                reference: d.string()?,
            })
        }
        tag @ (3 | 9) => Command::PostPending(PostPending {
            id: d.id()?,
            pending_id: d.id()?,
            amount: d.opt_decimal()?,
            currency: if tag == 9 { Some(d.currency()?) } else { None },
        }),
        4 => Command::VoidPending(VoidPending {
            id: d.id()?,
            pending_id: d.id()?,
        }),
        5 => Command::SetAccountStatus(SetAccountStatus {
            id: d.id()?,
            account: d.id()?,
            status: AccountStatus::from_repr(d.u8()?).ok_or(DecodeError("bad status"))?,
        }),
        6 => Command::RegisterClient(RegisterClient {
            id: d.id()?,
            public_key: d.arr()?,
            role: ClientRole::from_repr(d.u8()?).ok_or(DecodeError("bad role"))?,
            name: d.string()?,
        }),
        7 => Command::RevokeClient(RevokeClient {
            id: d.id()?,
            public_key: d.arr()?,
        }),
        10 => Command::CreateMerchant(CreateMerchant {
            id: d.id()?,
            currency: d.string()?,
            name: d.string()?,
            city: d.string()?,
            mcc: d.string()?,
            country: d.string()?,
            fee_bps: d.u32()?,
            fee_account: d.opt_id()?,
        }),
        11 => Command::CreateOrder(CreateOrder {
            id: d.id()?,
            merchant: d.id()?,
            amount: d.decimal()?,
            currency: d.opt_currency()?,
            reference: d.string()?,
            expires_in_seconds: d.opt_u64()?,
        }),
        12 => Command::PayQr(PayQr {
            id: d.id()?,
            payer: d.id()?,
            qr: d.string()?,
            amount: d.opt_decimal()?,
            currency: d.opt_currency()?,
        }),
        13 => Command::CloseOrder(CloseOrder {
            id: d.id()?,
            order: d.id()?,
        }),
        14 => Command::Refund(Refund {
            id: d.id()?,
            order: d.id()?,
            amount: d.decimal()?,
            currency: d.opt_currency()?,
            reason: d.string()?,
        }),
        15 => Command::PayBill(PayBill {
            id: d.id()?,
            payer: d.id()?,
            biller: d.id()?,
            bill_ref: d.string()?,
            amount: d.decimal()?,
            currency: d.opt_currency()?,
        }),
        16 => Command::BindPaycode(BindPaycode {
            id: d.id()?,
            wallet: d.id()?,
            public_key: d.arr()?,
            paycode_max: d.opt_decimal()?,
        }),
        17 => Command::RevokePaycode(RevokePaycode {
            id: d.id()?,
            wallet: d.id()?,
        }),
        18 => Command::PayCode(PayCode {
            id: d.id()?,
            merchant: d.id()?,
            token: crate::paycode::Token {
                wallet: d.id()?,
                nonce: d.arr()?,
                expires_ns: d.u64()?,
                signature: d.arr()?,
            },
            amount: d.decimal()?,
            currency: d.opt_currency()?,
        }),
        19 => Command::Topup(Topup {
            id: d.id()?,
            wallet: d.id()?,
            bank: d.id()?,
            amount: d.decimal()?,
            currency: d.opt_currency()?,
        }),
        20 => Command::Withdraw(Withdraw {
            id: d.id()?,
            wallet: d.id()?,
            bank: d.id()?,
            amount: d.decimal()?,
            currency: d.opt_currency()?,
            fee_bps: d.u32()?,
            fee_account: d.opt_id()?,
            expires_in_seconds: d.opt_u64()?,
        }),
        21 => Command::CompleteWithdrawal(CompleteWithdrawal {
            id: d.id()?,
            withdrawal: d.id()?,
        }),
        22 => Command::FailWithdrawal(FailWithdrawal {
            id: d.id()?,
            withdrawal: d.id()?,
        }),
        23 => Command::Send(Send {
            id: d.id()?,
            from: d.id()?,
            to: d.id()?,
            amount: d.decimal()?,
            currency: d.opt_currency()?,
            note: d.string()?,
            accept_within_seconds: d.opt_u64()?,
            fee_bps: d.u32()?,
            fee_account: d.opt_id()?,
        }),
        24 => Command::ReceiveTransfer(ReceiveTransfer {
            id: d.id()?,
            transfer: d.id()?,
        }),
        25 => Command::ReturnTransfer(ReturnTransfer {
            id: d.id()?,
            transfer: d.id()?,
        }),
        26 => Command::CreateRequest(CreateRequest {
            id: d.id()?,
            payee: d.id()?,
            payer: d.id()?,
            amount: d.decimal()?,
            currency: d.opt_currency()?,
            note: d.string()?,
            expires_in_seconds: d.opt_u64()?,
        }),
        tag @ 27..=29 => {
            let a = RequestAction {
                id: d.id()?,
                request: d.id()?,
            };
            match tag {
                27 => Command::PayRequest(a),
                28 => Command::DeclineRequest(a),
                _ => Command::CancelRequest(a),
            }
        }
        tag @ (30 | 44) => {
            let id = d.id()?;
            let payer = d.id()?;
            let total = d.decimal()?;
            let currency = d.currency()?;
            let n = d.count(SPLIT_PARTICIPANTS_MAX * 4)?;
            let mut participants = Vec::with_capacity(n);
            for _ in 0..n {
                participants.push(d.id()?);
            }
            let mode = SplitMode::from_repr(d.u8()?).ok_or(DecodeError("bad split mode"))?;
            let k = d.count(SPLIT_PARTICIPANTS_MAX * 4)?;
            let mut values = Vec::with_capacity(k);
            for _ in 0..k {
                values.push(d.decimal()?);
            }
            Command::CreateSplit(CreateSplit {
                id,
                payer,
                total,
                currency,
                participants,
                mode,
                values,
                note: d.string()?,
                group: d.opt_id()?,
                expires_in_seconds: if tag == 44 { Some(d.u64()?) } else { None },
            })
        }
        31 => Command::PaySplit(PaySplit {
            id: d.id()?,
            split: d.id()?,
            participant: d.id()?,
        }),
        32 => Command::CancelSplit(CancelSplit {
            id: d.id()?,
            split: d.id()?,
        }),
        tag @ (33 | 43) => Command::CreateRedPacket(CreateRedPacket {
            id: d.id()?,
            sender: d.id()?,
            total: d.decimal()?,
            currency: d.opt_currency()?,
            count: d.u32()?,
            random: d.bool()?,
            expires_in_seconds: d.opt_u64()?,
            group: if tag == 43 { Some(d.id()?) } else { None },
        }),
        34 => Command::ClaimRedPacket(ClaimRedPacket {
            id: d.id()?,
            packet: d.id()?,
            wallet: d.id()?,
        }),
        35 => {
            let id = d.id()?;
            let name = d.string()?;
            let n = d.count(GROUP_MEMBERS_MAX * 4)?;
            let mut members = Vec::with_capacity(n);
            for _ in 0..n {
                members.push(d.id()?);
            }
            Command::CreateGroup(CreateGroup { id, name, members })
        }
        36 => Command::SettleGroup(SettleGroup {
            id: d.id()?,
            group: d.id()?,
        }),
        37 => Command::DefineCurrency(DefineCurrency {
            id: d.id()?,
            code: d.string()?,
            scale: d.u8()?,
            name: d.string()?,
        }),
        38 => Command::SetRate(SetRate {
            id: d.id()?,
            from: d.currency()?,
            to: d.currency()?,
            rate: d.decimal()?,
        }),
        39 => Command::Convert(Convert {
            id: d.id()?,
            from: d.id()?,
            to: d.id()?,
            amount: d.decimal()?,
            currency: d.opt_currency()?,
            expect_rate: d.opt_decimal()?,
        }),
        40 => Command::DefineTier(DefineTier {
            id: d.id()?,
            name: d.string()?,
            limits: LimitsSpec {
                per_transfer_max: d.opt_decimal()?,
                daily_outflow_max: d.opt_decimal()?,
                daily_outflow_count_max: d.opt_u32()?,
                balance_max: d.opt_decimal()?,
            },
        }),
        41 => Command::SetAccountTier(SetAccountTier {
            id: d.id()?,
            account: d.id()?,
            tier: d.string()?,
        }),
        42 => Command::SetSetting(SetSetting {
            id: d.id()?,
            key: d.string()?,
            value: d.string()?,
        }),
        _ => return Err(DecodeError("unknown command tag")),
    })
}

/// Encodes a list of commands: the payload a client batch travels in through the Raft log.
pub fn encode_commands(commands: &[Command]) -> Vec<u8> {
    let mut e = Enc::with_capacity(16 + commands.len() * 96);
    e.u8(VERSION);
    e.u32(commands.len() as u32);
    for c in commands {
        encode_command(&mut e, c);
    }
    e.buf
}

pub fn decode_commands(bytes: &[u8]) -> Result<Vec<Command>, DecodeError> {
    let mut d = Dec::new(bytes);
    d.version()?;
    let n = d.count(BATCH_COMMANDS_MAX)?;
    // Bound the pre-allocation by what the input could possibly hold (a command is > 16 bytes).
    let mut v = Vec::with_capacity(n.min(bytes.len() / 16));
    for _ in 0..n {
        v.push(decode_command(&mut d)?);
    }
    d.finish()?;
    Ok(v)
}

pub fn encode_result(e: &mut Enc, r: &CommandResult) {
    e.u16(r.code as u16);
    e.u64(r.timestamp_ns);
}

pub fn decode_result(d: &mut Dec<'_>) -> Result<CommandResult, DecodeError> {
    Ok(CommandResult {
        code: ResultCode::from_u16(d.u16()?).ok_or(DecodeError("unknown result code"))?,
        timestamp_ns: d.u64()?,
    })
}

pub fn encode_results(results: &[CommandResult]) -> Vec<u8> {
    let mut e = Enc::with_capacity(5 + results.len() * 10);
    e.u8(VERSION);
    e.u32(results.len() as u32);
    for r in results {
        encode_result(&mut e, r);
    }
    e.buf
}

pub fn decode_results(bytes: &[u8]) -> Result<Vec<CommandResult>, DecodeError> {
    let mut d = Dec::new(bytes);
    d.version()?;
    let n = d.count(BATCH_COMMANDS_MAX)?;
    let mut v = Vec::with_capacity(n.min(bytes.len() / 10));
    for _ in 0..n {
        v.push(decode_result(&mut d)?);
    }
    d.finish()?;
    Ok(v)
}

/// The body of the `ledger_codec` fuzz target (and of its corpus replay test): decoding must not
/// panic, and a successful decode must round-trip byte for byte.
pub fn fuzz_decode_commands(data: &[u8]) {
    if let Ok(cmds) = decode_commands(data) {
        assert_eq!(encode_commands(&cmds), data, "decode/encode round trip");
    }
    let _ = decode_results(data);
}
