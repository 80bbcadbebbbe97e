//! API client commands: register (or re-register with a new role) and revoke a key.

use super::*;

impl<S: Store> Ledger<S> {
    pub(super) fn register_client(
        &mut self,
        ctx: &mut BatchCtx,
        r: &RegisterClient,
    ) -> Result<(), Failure> {
        if r.name.is_empty() || r.name.len() > CLIENT_NAME_BYTES_MAX {
            return Err(ResultCode::InvalidName.into());
        }
        let c = Client {
            public_key: r.public_key,
            role: r.role,
            name: r.name.clone(),
            revoked: false,
            registered_ns: ctx.ts,
        };
        ctx.wb
            .put(Cf::Clients, r.public_key.to_vec(), codec::encode_client(&c));
        self.clients.insert(r.public_key, c);
        Ok(())
    }

    pub(super) fn revoke_client(
        &mut self,
        ctx: &mut BatchCtx,
        r: &RevokeClient,
    ) -> Result<(), Failure> {
        let c = self
            .clients
            .get_mut(&r.public_key)
            .ok_or(ResultCode::ClientNotFound)?;
        c.revoked = true;
        ctx.wb
            .put(Cf::Clients, r.public_key.to_vec(), codec::encode_client(c));
        Ok(())
    }
}
