//! Merchants: a merchant account plus the profile the QR and payment flows read (name, city, MCC,
//! country for the EMV payload; the fee and where it goes).

use super::*;

/// The EMV rules for the profile's fields (the API checks the same before proposing).
fn profile_ok(c: &CreateMerchant) -> bool {
    let chars = |s: &str, max: usize| (1..=max).contains(&s.chars().count());
    chars(&c.name, MERCHANT_NAME_CHARS_MAX)
        && chars(&c.city, MERCHANT_CITY_CHARS_MAX)
        && c.mcc.len() == 4
        && c.mcc.bytes().all(|b| b.is_ascii_digit())
        && c.country.len() == 2
        && c.country.bytes().all(|b| b.is_ascii_uppercase())
}

impl<S: Store> Ledger<S> {
    pub(super) fn create_merchant(
        &mut self,
        ctx: &mut BatchCtx,
        c: &CreateMerchant,
    ) -> Result<(), Failure> {
        let currency = self
            .resolve_currency(&c.currency)
            .ok_or(ResultCode::InvalidCurrency)?;
        if !profile_ok(c) {
            return Err(ResultCode::InvalidMerchantProfile.into());
        }
        if c.fee_bps > FEE_BPS_MAX
            || (c.fee_bps > 0 && c.fee_account.is_none())
            || c.fee_account == Some(c.id)
        {
            return Err(ResultCode::InvalidFee.into());
        }
        if let Some(f) = c.fee_account {
            let fee = self.accounts.get(&f).ok_or(ResultCode::AccountNotFound)?;
            if fee.info.currency != currency {
                return Err(ResultCode::CurrencyMismatch.into());
            }
        }
        // The account: a merchant's balance never goes below zero (refunds need the funds).
        self.create_account(
            ctx,
            &CreateAccount {
                debits_must_not_exceed_credits: true,
                ..CreateAccount::basic(c.id, &c.currency, AccountKind::Merchant)
            },
        )?;
        let m = MerchantProfile {
            account: c.id,
            name: c.name.clone(),
            city: c.city.clone(),
            mcc: c.mcc.clone(),
            country: c.country.clone(),
            fee_bps: c.fee_bps,
            fee_account: c.fee_account,
            created_ns: ctx.ts,
        };
        ctx.wb.put(
            Cf::Merchants,
            c.id.to_bytes().to_vec(),
            codec::encode_merchant(&m),
        );
        self.merchants.insert(c.id, m);
        Ok(())
    }

    /// A merchant's profile.
    pub fn merchant(&self, id: Id) -> Option<&MerchantProfile> {
        self.merchants.get(&id)
    }

    pub(super) fn load_merchants(&mut self) -> Result<(), LedgerError> {
        let merchants = &mut self.merchants;
        self.store.for_each(Cf::Merchants, &mut |_, v| {
            let m = codec::decode_merchant(v).map_err(|e| StoreError::Corrupt {
                cf: Cf::Merchants,
                reason: e.to_string(),
            })?;
            merchants.insert(m.account, m);
            Ok(())
        })?;
        Ok(())
    }
}
