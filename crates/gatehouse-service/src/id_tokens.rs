//! Signing OpenID Connect ID tokens: with the pool's ID-token key (a family of its own, RS256,
//! published in the pool's JWKS beside the access-token keys), `typ: JWT`. What an ID token
//! claims is its issuer's business (the sign-in flows); this is where it gets its signature.

use gatehouse_crypto::jws::{self, TYP_JWT};
use gatehouse_crypto::secret::Secret;
use gatehouse_domain::pool::{Pool, SigningAlg};
use gatehouse_domain::store::ID_TOKEN_SIGNING_ALG;
use serde::Serialize;

use crate::Gatehouse;
use crate::error::ServiceResult;

impl Gatehouse {
    /// The algorithm of every pool's ID tokens, for discovery
    /// (`id_token_signing_alg_values_supported`).
    pub fn id_token_alg(&self) -> SigningAlg {
        ID_TOKEN_SIGNING_ALG
    }

    /// Signs `claims` as an ID token of `pool`: header `{alg: RS256, typ: JWT, kid}` with the
    /// pool's current ID-token key. The caller makes the claims (`iss`, `sub`, `aud`, `exp`,
    /// `iat`, `nonce`, ...); access tokens never come from here, and no access-token check
    /// accepts what this key signs.
    pub async fn sign_id_token<T: Serialize>(
        &self,
        pool: &Pool,
        claims: &T,
    ) -> ServiceResult<Secret> {
        let keys = self.pool_keys(pool).await?;
        Ok(Secret::new(jws::sign(
            &keys.id_token_signing,
            TYP_JWT,
            claims,
        )?))
    }
}
