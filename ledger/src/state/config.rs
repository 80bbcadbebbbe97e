//! The ledger's replicated configuration and the commands that use it: in-app currencies, exchange
//! rates and conversions, KYC tiers, settings.
//!
//! Configuration is state like any other — changed only by commands in the log, so every replica
//! applies a command under the same currencies, rates, tiers and business time zone. It is small
//! (bounded by [`CURRENCIES_MAX`], [`RATES_MAX`], [`TIERS_MAX`]) and cached in memory in full.
//!
//! A conversion is one transfer of two balanced halves, one per currency, through that currency's
//! position account (a system account with a derived id, [`position_account_id`]):
//! `Dr wallet(from) / Cr position(from)` for the amount paid and `Dr position(to) / Cr wallet(to)`
//! for the amount bought, `⌊amount × rate⌋` in the target's minor unit. The position accounts
//! show the operator's exposure per currency; the conversion record keeps the rate used.

use super::*;
use crate::money::{self, MAX_MINOR};

/// Key prefixes in [`Cf::Config`].
const CURRENCY_PREFIX: &[u8] = b"c/";
const RATE_PREFIX: &[u8] = b"r/";
const TIER_PREFIX: &[u8] = b"t/";
const SETTING_PREFIX: &[u8] = b"s/";

/// The one setting so far: the business time zone (`±HH:MM`).
pub const SETTING_BUSINESS_UTC_OFFSET: &str = "business-utc-offset";

/// The position account of `currency`: the first 16 bytes of BLAKE3("suanpan/position/" ‖ code).
pub fn position_account_id(currency: Currency) -> Id {
    let h = blake3::hash(format!("suanpan/position/{}", currency.code()).as_bytes());
    Id::from_bytes(h.as_bytes()[..16].try_into().expect("16 bytes"))
}

fn key(prefix: &[u8], rest: &str) -> Vec<u8> {
    let mut k = prefix.to_vec();
    k.extend_from_slice(rest.as_bytes());
    k
}

fn rate_key(from: Currency, to: Currency) -> Vec<u8> {
    key(RATE_PREFIX, &format!("{}/{}", from.code(), to.code()))
}

/// A valid tier name: 1 ..= 32 bytes of `[a-z0-9_-]`.
fn valid_tier_name(n: &str) -> bool {
    (1..=TIER_NAME_BYTES_MAX).contains(&n.len())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The replicated configuration, cached in memory.
#[derive(Clone, Debug, Default)]
pub(super) struct Config {
    pub currencies: BTreeMap<String, CurrencyDef>,
    pub rates: BTreeMap<(Currency, Currency), Rate>,
    pub tiers: BTreeMap<String, Tier>,
    pub settings: Settings,
}

impl<S: Store> Ledger<S> {
    pub(super) fn load_config(&mut self) -> Result<(), LedgerError> {
        let mut c = Config::default();
        let mut err: Option<LedgerError> = None;
        self.store.for_each(Cf::Config, &mut |k, v| {
            let r: Result<(), codec::DecodeError> = (|| {
                if k.starts_with(CURRENCY_PREFIX) {
                    let d = codec::decode_currency_def(v)?;
                    c.currencies.insert(d.currency.code().to_string(), d);
                } else if k.starts_with(RATE_PREFIX) {
                    let r = codec::decode_rate(v)?;
                    c.rates.insert((r.from, r.to), r);
                } else if k.starts_with(TIER_PREFIX) {
                    let t = codec::decode_tier(v)?;
                    c.tiers.insert(t.name.clone(), t);
                } else if k == key(SETTING_PREFIX, SETTING_BUSINESS_UTC_OFFSET).as_slice() {
                    let mut d = Dec::new(v);
                    c.settings.business_utc_offset_seconds = d.u32()? as i32;
                    d.finish()?;
                } else {
                    return Err(codec::DecodeError("unknown config key"));
                }
                Ok(())
            })();
            if let Err(e) = r {
                err.get_or_insert(LedgerError::Corrupt(format!("config: {e}")));
            }
            Ok(())
        })?;
        if let Some(e) = err {
            return Err(e);
        }
        self.config = c;
        Ok(())
    }

    /// The currency a code names: an accepted ISO 4217 currency or a defined in-app one.
    pub fn resolve_currency(&self, code: &str) -> Option<Currency> {
        Currency::from_code(code).or_else(|| self.config.currencies.get(code).map(|d| d.currency))
    }

    /// Defined in-app currencies, in code order.
    pub fn currencies(&self) -> impl Iterator<Item = &CurrencyDef> {
        self.config.currencies.values()
    }
    /// Exchange rates, in (from, to) order.
    pub fn rates(&self) -> impl Iterator<Item = &Rate> {
        self.config.rates.values()
    }
    /// KYC tiers, in name order.
    pub fn tiers(&self) -> impl Iterator<Item = &Tier> {
        self.config.tiers.values()
    }
    pub fn settings(&self) -> Settings {
        self.config.settings
    }
    /// A conversion by its command id.
    pub fn conversion(&self, id: Id) -> Result<Option<Conversion>, LedgerError> {
        match self.store.get(Cf::Conversions, &id.to_bytes())? {
            Some(b) => Ok(Some(codec::decode_conversion(&b)?)),
            None => Ok(None),
        }
    }

    pub(super) fn define_currency(
        &mut self,
        ctx: &mut BatchCtx,
        c: &DefineCurrency,
    ) -> Result<(), Failure> {
        let currency = Currency::in_app(&c.code, c.scale)
            .filter(|_| c.name.len() <= CURRENCY_NAME_BYTES_MAX)
            .ok_or(ResultCode::InvalidCurrencyDefinition)?;
        if self.config.currencies.contains_key(&c.code) {
            return Err(ResultCode::CurrencyExists.into());
        }
        if self.config.currencies.len() >= CURRENCIES_MAX {
            return Err(ResultCode::ConfigFull.into());
        }
        let def = CurrencyDef {
            currency,
            name: c.name.clone(),
            defined_ns: ctx.ts,
        };
        ctx.wb.put(
            Cf::Config,
            key(CURRENCY_PREFIX, &c.code),
            codec::encode_currency_def(&def),
        );
        self.config.currencies.insert(c.code.clone(), def);
        Ok(())
    }

    pub(super) fn set_rate(&mut self, ctx: &mut BatchCtx, r: &SetRate) -> Result<(), Failure> {
        let from = self
            .resolve_currency(r.from.code())
            .ok_or(ResultCode::InvalidCurrency)?;
        let to = self
            .resolve_currency(r.to.code())
            .ok_or(ResultCode::InvalidCurrency)?;
        if from == to
            || r.rate.is_sign_negative()
            || r.rate.is_zero()
            || r.rate.normalize().scale() > RATE_SCALE_MAX
        {
            return Err(ResultCode::InvalidRate.into());
        }
        if !self.config.rates.contains_key(&(from, to)) && self.config.rates.len() >= RATES_MAX {
            return Err(ResultCode::ConfigFull.into());
        }
        let rate = Rate {
            from,
            to,
            rate: r.rate.normalize(),
            set_by: r.id,
            set_ns: ctx.ts,
        };
        ctx.wb
            .put(Cf::Config, rate_key(from, to), codec::encode_rate(&rate));
        self.config.rates.insert((from, to), rate);
        Ok(())
    }

    pub(super) fn convert(&mut self, ctx: &mut BatchCtx, c: &Convert) -> Result<Transfer, Failure> {
        let account = |id: Id| {
            self.accounts
                .get(&id)
                .map(|a| a.info.currency)
                .ok_or(ResultCode::AccountNotFound)
        };
        let (from, to) = (account(c.from)?, account(c.to)?);
        if c.currency.is_some_and(|d| d != from) {
            return Err(ResultCode::CurrencyMismatch.into());
        }
        if c.from == c.to {
            return Err(ResultCode::SameAccount.into());
        }
        let rate = self
            .config
            .rates
            .get(&(from, to))
            .cloned()
            .ok_or(ResultCode::RateNotFound)?;
        if c.expect_rate.is_some_and(|e| e.normalize() != rate.rate) {
            return Err(ResultCode::RateChanged.into());
        }
        let paid = from.to_minor(c.amount)?;
        // bought = ⌊paid × m × 10^e_to / (10^s × 10^e_from)⌋ for rate m / 10^s: m < 2^96 and
        // 10^e_to ≤ 10^8 keep the multiplier in u128; 10^(s + e_from) ≤ 10^26 < 2^126.
        let m = rate.rate.mantissa().unsigned_abs();
        let mult = m * 10u128.pow(u32::from(to.exponent()));
        let div = 10u128.pow(rate.rate.scale() + u32::from(from.exponent()));
        let bought = money::mul_div_floor(paid, mult, div).ok_or(ResultCode::Overflow)?;
        if bought > MAX_MINOR {
            return Err(ResultCode::Overflow.into());
        }
        if bought == 0 {
            return Err(ResultCode::ConversionTooSmall.into());
        }
        // Position accounts go either way: the operator is short the currency it sells.
        // FX positions are assets: debit-normal.
        let position = |l: &mut Self, ctx: &mut BatchCtx, c: Currency| {
            l.system_account(
                ctx,
                position_account_id(c),
                c,
                "position",
                false,
                NormalSide::Debit,
            )
        };
        let pos_from = position(self, ctx, from)?;
        let pos_to = position(self, ctx, to)?;
        let t = self.create_transfer(
            ctx,
            &CreateTransfer {
                id: c.id,
                legs: vec![
                    LegSpec {
                        debit: c.from,
                        credit: pos_from,
                        amount: from.to_decimal(paid),
                        currency: Some(from),
                    },
                    LegSpec {
                        debit: pos_to,
                        credit: c.to,
                        amount: to.to_decimal(bought),
                        currency: Some(to),
                    },
                ],
                pending_timeout_seconds: None,
                // The conversion record keeps the pair and the rate.
                reference: String::new(),
            },
        )?;
        let conv = Conversion {
            id: c.id,
            from_account: c.from,
            to_account: c.to,
            from_currency: from,
            to_currency: to,
            from_amount: paid,
            to_amount: bought,
            rate: rate.rate,
            rate_set_ns: rate.set_ns,
            timestamp_ns: ctx.ts,
        };
        ctx.wb.put(
            Cf::Conversions,
            c.id.to_bytes().to_vec(),
            codec::encode_conversion(&conv),
        );
        Self::emit(
            ctx,
            EventKind::Converted,
            c.id,
            c.id,
            "converted",
            &[c.from, c.to],
            paid,
            from,
        );
        Ok(t)
    }

    pub(super) fn define_tier(
        &mut self,
        ctx: &mut BatchCtx,
        t: &DefineTier,
    ) -> Result<(), Failure> {
        if !valid_tier_name(&t.name) {
            return Err(ResultCode::InvalidTier.into());
        }
        let l = &t.limits;
        if [l.per_transfer_max, l.daily_outflow_max, l.balance_max]
            .iter()
            .flatten()
            .any(|d| d.is_sign_negative() && !d.is_zero())
        {
            return Err(ResultCode::InvalidTier.into());
        }
        if self.config.tiers.contains_key(&t.name) {
            return Err(ResultCode::TierExists.into());
        }
        if self.config.tiers.len() >= TIERS_MAX {
            return Err(ResultCode::ConfigFull.into());
        }
        let tier = Tier {
            name: t.name.clone(),
            limits: t.limits.clone(),
            defined_ns: ctx.ts,
        };
        ctx.wb.put(
            Cf::Config,
            key(TIER_PREFIX, &t.name),
            codec::encode_tier(&tier),
        );
        self.config.tiers.insert(t.name.clone(), tier);
        Ok(())
    }

    pub(super) fn set_account_tier(
        &mut self,
        ctx: &mut BatchCtx,
        s: &SetAccountTier,
    ) -> Result<(), Failure> {
        let tier = self
            .config
            .tiers
            .get(&s.tier)
            .ok_or(ResultCode::TierNotFound)?;
        let a = self
            .accounts
            .get(&s.account)
            .ok_or(ResultCode::AccountNotFound)?;
        if a.status() == AccountStatus::Closed {
            return Err(ResultCode::AccountClosed.into());
        }
        // The tier's amounts read in the account's currency (a limit finer than its minor unit is
        // `amount_precision`: the tier does not fit this account).
        let currency = a.info.currency;
        let conv = |d: Option<rust_decimal::Decimal>| {
            d.map(|d| currency.to_minor_allow_zero(d)).transpose()
        };
        let limits = Limits {
            per_transfer_max: conv(tier.limits.per_transfer_max)?,
            daily_outflow_max: conv(tier.limits.daily_outflow_max)?,
            daily_outflow_count_max: tier.limits.daily_outflow_count_max,
            balance_max: conv(tier.limits.balance_max)?,
        };
        let name = tier.name.clone();
        let a = self.accounts.get_mut(&s.account).expect("checked above");
        // Marks the account touched so the batch writes it (its info changed, not its money).
        Self::touch(ctx, s.account, a);
        ctx.infos.push(s.account);
        let info = std::sync::Arc::make_mut(&mut a.info);
        info.limits = limits;
        info.tier = Some(name.clone());
        Self::emit(
            ctx,
            EventKind::TierChanged,
            s.id,
            s.id,
            &name,
            &[s.account],
            0,
            currency,
        );
        Ok(())
    }

    pub(super) fn set_setting(
        &mut self,
        ctx: &mut BatchCtx,
        s: &SetSetting,
    ) -> Result<(), Failure> {
        match s.key.as_str() {
            SETTING_BUSINESS_UTC_OFFSET => {
                let secs = Settings::parse_offset(&s.value).ok_or(ResultCode::InvalidSetting)?;
                let mut e = Enc::with_capacity(8);
                e.u32(secs as u32);
                ctx.wb.put(Cf::Config, key(SETTING_PREFIX, &s.key), e.buf);
                self.config.settings.business_utc_offset_seconds = secs;
                // The next command counts its limits in the new business day.
                ctx.day = self.config.settings.day_of(ctx.ts);
                Ok(())
            }
            _ => Err(ResultCode::InvalidSetting.into()),
        }
    }

    /// A system account with a derived id (escrow, position), created the first time it is needed.
    pub(super) fn system_account(
        &mut self,
        ctx: &mut BatchCtx,
        id: Id,
        currency: Currency,
        reference: &str,
        never_negative: bool,
        normal_side: NormalSide,
    ) -> Result<Id, Failure> {
        if !self.accounts.contains_key(&id) {
            self.create_account(
                ctx,
                &CreateAccount {
                    id,
                    currency: currency.code().to_string(),
                    kind: AccountKind::System,
                    debits_must_not_exceed_credits: never_negative,
                    credits_must_not_exceed_debits: false,
                    overdraft: None,
                    limits: LimitsSpec::default(),
                    reference: reference.into(),
                    metadata: BTreeMap::new(),
                    normal_side: Some(normal_side),
                },
            )?;
        }
        Ok(id)
    }
}
