//! Each pool's signing keys, opened from the store and kept in memory. A rotation made by
//! another process (the CLI, another instance) is seen after at most [`KEYS_TTL`], and at once
//! by a token that names a key this process has not loaded yet.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use gatehouse_crypto::jws::VerifyingKey;
use gatehouse_crypto::keys::{self, MasterKey, PublicJwk, SigningKey};
use gatehouse_domain::ids::PoolId;
use gatehouse_domain::pool::SigningAlg;
use gatehouse_domain::store::{KeyState, SigningKeyRecord, Store};
use gatehouse_domain::time::Timestamp;

use crate::error::{ServiceError, ServiceResult};

/// A pool's loaded keys: the one that signs, and every published one.
#[derive(Debug)]
pub struct PoolKeys {
    pub signing: SigningKey,
    pub verifying: Vec<VerifyingKey>,
    pub jwks: Vec<PublicJwk>,
}

impl PoolKeys {
    pub fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying.iter().find(|k| k.kid() == kid)
    }
}

/// How long loaded keys are trusted before the store is asked again.
const KEYS_TTL: Duration = Duration::from_secs(2);
/// A token naming an unknown key makes this process ask the store at once, at most this often
/// per pool (tokens with made-up key ids cost no more than one read per pool per interval).
const UNKNOWN_KID_RELOAD: Duration = Duration::from_millis(250);

struct Loaded {
    keys: Arc<PoolKeys>,
    /// What the keys were loaded from: an unchanged key set keeps its opened keys, and what
    /// was verified with them ([`crate::verified`]).
    shape: Vec<(String, KeyState)>,
    at: Instant,
}

pub struct Keyring {
    master: MasterKey,
    loaded: RwLock<HashMap<PoolId, Loaded>>,
}

impl Keyring {
    pub fn new(master: MasterKey) -> Self {
        Self {
            master,
            loaded: RwLock::new(HashMap::new()),
        }
    }

    /// Seals a code handed to a person, bound to its pool and to `label` (its user and
    /// purpose), so that it can be sent again.
    pub fn seal_code(
        &self,
        pool: PoolId,
        label: &str,
        code: &gatehouse_crypto::secret::Secret,
    ) -> ServiceResult<Vec<u8>> {
        Ok(self.master.seal(pool, label, code.expose().as_bytes())?)
    }

    /// The code sealed by [`Self::seal_code`], if it opens.
    pub fn open_code(
        &self,
        pool: PoolId,
        label: &str,
        sealed: &[u8],
    ) -> Option<gatehouse_crypto::secret::Secret> {
        let plain = self.master.open(pool, label, sealed).ok()?;
        String::from_utf8(plain)
            .ok()
            .map(gatehouse_crypto::secret::Secret::new)
    }

    /// Generates a key and seals it for storage.
    pub fn new_key(
        &self,
        pool: PoolId,
        alg: SigningAlg,
        state: KeyState,
        now: Timestamp,
    ) -> ServiceResult<SigningKeyRecord> {
        let generated = keys::generate(alg)?;
        let sealed = self.master.seal(pool, &generated.kid, &generated.pkcs8)?;
        let public_jwk = serde_json::to_string(&generated.jwk)
            .map_err(|e| ServiceError::internal(e.to_string()))?;
        Ok(SigningKeyRecord {
            pool,
            kid: generated.kid,
            alg,
            state,
            sealed_private_key: sealed,
            public_jwk,
            created_at: now,
            state_since: now,
        })
    }

    /// The pool's keys: those loaded in the last [`KEYS_TTL`], else the store's.
    pub async fn keys(&self, store: &dyn Store, pool: PoolId) -> ServiceResult<Arc<PoolKeys>> {
        if let Some(k) = self.cached(pool, KEYS_TTL) {
            return Ok(k);
        }
        self.load(store, pool).await
    }

    /// After a token named a key that `stale` lacks: the store's keys, if they were not read
    /// in the last [`UNKNOWN_KID_RELOAD`] and differ from `stale`.
    pub async fn keys_after_unknown_kid(
        &self,
        store: &dyn Store,
        pool: PoolId,
        stale: &Arc<PoolKeys>,
    ) -> ServiceResult<Option<Arc<PoolKeys>>> {
        if self.cached(pool, UNKNOWN_KID_RELOAD).is_some() {
            return Ok(None);
        }
        let fresh = self.load(store, pool).await?;
        Ok((!Arc::ptr_eq(&fresh, stale)).then_some(fresh))
    }

    /// Drops what this process loaded of the pool (after it rotated the pool's keys here).
    pub fn forget(&self, pool: PoolId) {
        if let Ok(mut map) = self.loaded.write() {
            map.remove(&pool);
        }
    }

    async fn load(&self, store: &dyn Store, pool: PoolId) -> ServiceResult<Arc<PoolKeys>> {
        let records = store.signing_keys(pool).await?;
        let shape: Vec<(String, KeyState)> =
            records.iter().map(|r| (r.kid.clone(), r.state)).collect();
        if let Ok(mut map) = self.loaded.write()
            && let Some(loaded) = map.get_mut(&pool)
            && loaded.shape == shape
        {
            loaded.at = Instant::now();
            return Ok(loaded.keys.clone());
        }
        let mut signing = None;
        let mut verifying = Vec::new();
        let mut jwks = Vec::new();
        for r in &records {
            let jwk: PublicJwk = serde_json::from_str(&r.public_jwk)
                .map_err(|e| ServiceError::internal(format!("stored JWK: {e}")))?;
            verifying.push(VerifyingKey::from_jwk(&jwk)?);
            jwks.push(jwk);
            if r.state == KeyState::Current {
                let pkcs8 = self.master.open(pool, &r.kid, &r.sealed_private_key)?;
                signing = Some(SigningKey::from_pkcs8_with_kid(
                    r.alg,
                    &pkcs8,
                    Some(&r.kid),
                )?);
            }
        }
        let signing = signing
            .ok_or_else(|| ServiceError::internal(format!("pool {pool} has no current key")))?;
        let keys = Arc::new(PoolKeys {
            signing,
            verifying,
            jwks,
        });
        if let Ok(mut map) = self.loaded.write() {
            map.insert(
                pool,
                Loaded {
                    keys: keys.clone(),
                    shape,
                    at: Instant::now(),
                },
            );
        }
        Ok(keys)
    }

    fn cached(&self, pool: PoolId, ttl: Duration) -> Option<Arc<PoolKeys>> {
        let map = self.loaded.read().ok()?;
        let loaded = map.get(&pool)?;
        (loaded.at.elapsed() < ttl).then(|| loaded.keys.clone())
    }
}
