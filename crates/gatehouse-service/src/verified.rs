//! Access tokens whose signature has been verified. A resource server presents the same token
//! many times in its life, and checking an ES256 signature costs more than the rest of a bearer
//! check together; so the exact text of a token that verified is remembered with its claims.
//!
//! Only what verified is remembered, so a forged token can never be served from here. An
//! entry counts only with the very key set it was verified with (a pool whose keys are
//! reloaded starts over) and under the issuer the pool has now. Expiry, revocation and the
//! standing of the user or client are checked on every use, as for a token verified anew.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use gatehouse_domain::ids::PoolId;

use crate::keyring::PoolKeys;
use crate::tokens::AccessClaims;

/// Tokens remembered at most; beyond that, the expired ones go, then all.
const MAX_ENTRIES: usize = 10_000;

#[derive(Default)]
pub struct VerifiedTokens {
    map: RwLock<HashMap<Box<str>, Remembered>>,
}

impl std::fmt::Debug for VerifiedTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedTokens").finish_non_exhaustive()
    }
}

/// A remembered token: its claims and what they were verified with.
#[derive(Clone)]
pub struct Remembered {
    pool: PoolId,
    keys: Arc<PoolKeys>,
    claims: Arc<AccessClaims>,
}

impl Remembered {
    /// The issuer the token names, to choose the pool it is checked against.
    pub fn issuer(&self) -> &str {
        &self.claims.iss
    }

    /// The claims, if they were verified with `keys` of `pool` and name `issuer`.
    pub fn claims_for(
        &self,
        pool: PoolId,
        keys: &Arc<PoolKeys>,
        issuer: &str,
    ) -> Option<&AccessClaims> {
        (self.pool == pool && Arc::ptr_eq(&self.keys, keys) && self.claims.iss == issuer)
            .then_some(&*self.claims)
    }
}

impl VerifiedTokens {
    /// What is remembered of `token`, if it verified before.
    pub fn get(&self, token: &str) -> Option<Remembered> {
        self.map.read().ok()?.get(token).cloned()
    }

    /// Remembers a token that has just verified.
    pub fn put(
        &self,
        token: &str,
        pool: PoolId,
        keys: Arc<PoolKeys>,
        claims: Arc<AccessClaims>,
        now_secs: i64,
    ) {
        let Ok(mut map) = self.map.write() else {
            return;
        };
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, e| e.claims.exp > now_secs);
            if map.len() >= MAX_ENTRIES {
                map.clear();
            }
        }
        map.insert(token.into(), Remembered { pool, keys, claims });
    }
}
