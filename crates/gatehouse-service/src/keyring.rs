//! Each pool's signing keys, opened from the store and kept in memory. A rotation made by
//! another process (the CLI, another instance) is seen after at most [`KEYS_TTL`], and at once
//! by a token that names a key this process has not loaded yet.
//!
//! The keyring only reads. A pool created before ID tokens has no ID-token key; the keyring
//! says so ([`Found::NoIdTokenKey`]) and the service gives it one in a write transaction of
//! its own ([`crate::Gatehouse::ensure_id_token_key`]), audited like every other write.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use gatehouse_crypto::jws::VerifyingKey;
use gatehouse_crypto::keys::{self, MasterKey, PublicJwk, SigningKey};
use gatehouse_domain::ids::PoolId;
use gatehouse_domain::pool::SigningAlg;
use gatehouse_domain::store::{KeyPurpose, KeyState, SigningKeyRecord, Store};
use gatehouse_domain::time::Timestamp;

use crate::error::{ServiceError, ServiceResult};

/// A pool's loaded keys: the current key of each family, and every published one.
#[derive(Debug)]
pub struct PoolKeys {
    /// Signs access tokens (and challenge sessions), in the pool's configured algorithm.
    pub signing: SigningKey,
    /// Signs ID tokens, RS256.
    pub id_token_signing: SigningKey,
    /// Every published key of both families, in the order of [`Self::jwks`].
    pub verifying: Vec<VerifyingKey>,
    /// The pool's JWKS: every published key of both families.
    pub jwks: Vec<PublicJwk>,
    /// The family of each key of [`Self::verifying`], at the same index.
    purposes: Vec<KeyPurpose>,
}

impl PoolKeys {
    /// The published access-family key `kid`: the only keys an access token (or anything
    /// else the access key signs) verifies with. An ID-token key is never one of them.
    pub fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying_key_of(KeyPurpose::Access, kid)
    }

    /// The published ID-token key `kid`.
    pub fn id_token_verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.verifying_key_of(KeyPurpose::IdToken, kid)
    }

    fn verifying_key_of(&self, purpose: KeyPurpose, kid: &str) -> Option<&VerifyingKey> {
        self.verifying
            .iter()
            .zip(&self.purposes)
            .find(|(k, p)| **p == purpose && k.kid() == kid)
            .map(|(k, _)| k)
    }
}

/// What the store holds of a pool's keys.
#[derive(Debug)]
pub enum Found {
    Keys(Arc<PoolKeys>),
    /// The pool was created before ID tokens and has no ID-token key yet.
    NoIdTokenKey,
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
    shape: Vec<(String, KeyPurpose, KeyState)>,
    at: Instant,
}

pub struct Keyring {
    master: MasterKey,
    loaded: RwLock<HashMap<PoolId, Loaded>>,
    /// Held while this process gives a pool its missing ID-token key, so that requests
    /// arriving together generate one RSA key between them, not one each.
    backfill: tokio::sync::Mutex<()>,
}

impl Keyring {
    pub fn new(master: MasterKey) -> Self {
        Self {
            master,
            loaded: RwLock::new(HashMap::new()),
            backfill: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn backfill_lock(&self) -> &tokio::sync::Mutex<()> {
        &self.backfill
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

    /// Seals bytes the service keeps and must find unchanged (a hook's compiled artifact),
    /// bound to its pool and to `label`.
    pub fn seal_bytes(&self, pool: PoolId, label: &str, bytes: &[u8]) -> ServiceResult<Vec<u8>> {
        Ok(self.master.seal(pool, label, bytes)?)
    }

    /// The bytes sealed by [`Self::seal_bytes`], if they open (authenticated: a changed byte
    /// or another pool's or label's copy does not).
    pub fn open_bytes(&self, pool: PoolId, label: &str, sealed: &[u8]) -> Option<Vec<u8>> {
        self.master.open(pool, label, sealed).ok()
    }

    /// Generates a key and seals it for storage. An RSA key takes tens of milliseconds of CPU,
    /// so it is generated on a blocking thread; make it before a write transaction opens, not
    /// inside one.
    pub async fn new_key(
        &self,
        pool: PoolId,
        purpose: KeyPurpose,
        alg: SigningAlg,
        state: KeyState,
        now: Timestamp,
    ) -> ServiceResult<SigningKeyRecord> {
        let generated = tokio::task::spawn_blocking(move || keys::generate(alg))
            .await
            .map_err(|e| ServiceError::internal(format!("key generation: {e}")))??;
        let sealed = self.master.seal(pool, &generated.kid, &generated.pkcs8)?;
        let public_jwk = serde_json::to_string(&generated.jwk)
            .map_err(|e| ServiceError::internal(e.to_string()))?;
        Ok(SigningKeyRecord {
            pool,
            kid: generated.kid,
            alg,
            purpose,
            state,
            sealed_private_key: sealed,
            public_jwk,
            created_at: now,
            state_since: now,
        })
    }

    /// The pool's keys: those loaded in the last [`KEYS_TTL`], else the store's.
    pub async fn keys(&self, store: &dyn Store, pool: PoolId) -> ServiceResult<Found> {
        if let Some(k) = self.cached(pool, KEYS_TTL) {
            return Ok(Found::Keys(k));
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
        // `stale` had an ID-token key, and a rotation never leaves a family without a current
        // key; were it gone, the next ordinary load would give the pool one.
        match self.load(store, pool).await? {
            Found::Keys(fresh) => Ok((!Arc::ptr_eq(&fresh, stale)).then_some(fresh)),
            Found::NoIdTokenKey => Ok(None),
        }
    }

    /// Drops what this process loaded of the pool (after it rotated the pool's keys here).
    pub fn forget(&self, pool: PoolId) {
        if let Ok(mut map) = self.loaded.write() {
            map.remove(&pool);
        }
    }

    async fn load(&self, store: &dyn Store, pool: PoolId) -> ServiceResult<Found> {
        let records = store.signing_keys(pool).await?;
        let shape: Vec<(String, KeyPurpose, KeyState)> = records
            .iter()
            .map(|r| (r.kid.clone(), r.purpose, r.state))
            .collect();
        if let Ok(mut map) = self.loaded.write()
            && let Some(loaded) = map.get_mut(&pool)
            && loaded.shape == shape
        {
            loaded.at = Instant::now();
            return Ok(Found::Keys(loaded.keys.clone()));
        }
        let mut signing = None;
        let mut id_token_signing = None;
        let mut verifying = Vec::new();
        let mut jwks = Vec::new();
        let mut purposes = Vec::new();
        for r in &records {
            let jwk: PublicJwk = serde_json::from_str(&r.public_jwk)
                .map_err(|e| ServiceError::internal(format!("stored JWK: {e}")))?;
            verifying.push(VerifyingKey::from_jwk(&jwk)?);
            jwks.push(jwk);
            purposes.push(r.purpose);
            if r.state == KeyState::Current {
                let pkcs8 = self.master.open(pool, &r.kid, &r.sealed_private_key)?;
                let key = SigningKey::from_pkcs8_with_kid(r.alg, &pkcs8, Some(&r.kid))?;
                match r.purpose {
                    KeyPurpose::Access => signing = Some(key),
                    KeyPurpose::IdToken => id_token_signing = Some(key),
                }
            }
        }
        let signing = signing
            .ok_or_else(|| ServiceError::internal(format!("pool {pool} has no current key")))?;
        let Some(id_token_signing) = id_token_signing else {
            return Ok(Found::NoIdTokenKey);
        };
        let keys = Arc::new(PoolKeys {
            signing,
            id_token_signing,
            verifying,
            jwks,
            purposes,
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
        Ok(Found::Keys(keys))
    }

    fn cached(&self, pool: PoolId, ttl: Duration) -> Option<Arc<PoolKeys>> {
        let map = self.loaded.read().ok()?;
        let loaded = map.get(&pool)?;
        (loaded.at.elapsed() < ttl).then(|| loaded.keys.clone())
    }
}
