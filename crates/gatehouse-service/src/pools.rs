//! Pools: creation (with the first signing key), lookup by slug or host, and a short-lived
//! cache so that the hot paths do not read the pool row on every request.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::{PoolId, PoolSlug};
use gatehouse_domain::permission::Permission;
use gatehouse_domain::pool::{HostName, Pool, PoolSettings};
use gatehouse_domain::store::KeyState;

use crate::audit::EventExt;
use crate::error::{ServiceError, ServiceResult};
use crate::{Gatehouse, Principal, RequestMeta};

/// How long a pool row read from the store is trusted. Settings changed by another instance
/// are seen after at most this long.
const POOL_CACHE_TTL: Duration = Duration::from_secs(2);

#[derive(Default)]
pub struct PoolCache {
    by_slug: RwLock<HashMap<PoolSlug, (Arc<Pool>, Instant)>>,
    by_host: RwLock<HashMap<HostName, (Arc<Pool>, Instant)>>,
}

impl PoolCache {
    fn get<K: std::hash::Hash + Eq>(
        map: &RwLock<HashMap<K, (Arc<Pool>, Instant)>>,
        k: &K,
    ) -> Option<Arc<Pool>> {
        let map = map.read().ok()?;
        let (pool, at) = map.get(k)?;
        (at.elapsed() < POOL_CACHE_TTL).then(|| pool.clone())
    }

    fn put<K: std::hash::Hash + Eq>(
        map: &RwLock<HashMap<K, (Arc<Pool>, Instant)>>,
        k: K,
        pool: Arc<Pool>,
    ) {
        if let Ok(mut map) = map.write() {
            if map.len() > 10_000 {
                map.clear();
            }
            map.insert(k, (pool, Instant::now()));
        }
    }

    pub fn forget(&self, slug: &PoolSlug) {
        if let Ok(mut m) = self.by_slug.write() {
            m.remove(slug);
        }
        if let Ok(mut m) = self.by_host.write() {
            m.retain(|_, (p, _)| &p.slug != slug);
        }
    }
}

impl Gatehouse {
    /// Creates a pool and its first signing key. Used by the CLI and at first start.
    pub async fn create_pool(
        &self,
        slug: PoolSlug,
        settings: PoolSettings,
        hosts: Vec<HostName>,
        principal: Option<&Principal>,
        meta: &RequestMeta,
    ) -> ServiceResult<Pool> {
        if let Some(p) = principal {
            p.require(Permission::CreatePool)?;
            if !p.home_pool.is_staff() {
                return Err(ServiceError::Forbidden(
                    "only staff administrators manage pools".to_owned(),
                ));
            }
        }
        let now = self.now();
        let pool = Pool {
            id: PoolId::new_random(),
            slug,
            settings,
            hosts,
            created_at: now,
        };
        let key =
            self.keyring
                .new_key(pool.id, pool.settings.signing_alg, KeyState::Current, now)?;
        let event = self
            .event(&pool, AuditAction::PoolCreated, principal, meta)
            .subject(&pool.slug);
        self.store.create_pool(&pool, &key, &event).await?;
        Ok(pool)
    }

    /// Creates the staff pool if it does not exist yet; true if it was created now.
    pub async fn ensure_staff_pool(&self) -> ServiceResult<bool> {
        if self.store.pool_by_slug(&PoolSlug::staff()).await?.is_some() {
            return Ok(false);
        }
        match self
            .create_pool(
                PoolSlug::staff(),
                PoolSettings::default(),
                Vec::new(),
                None,
                &RequestMeta::default(),
            )
            .await
        {
            Ok(_) => Ok(true),
            // Another instance created it at the same moment.
            Err(ServiceError::Conflict(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn pool(&self, slug: &PoolSlug) -> ServiceResult<Arc<Pool>> {
        if let Some(p) = PoolCache::get(&self.pools.by_slug, slug) {
            return Ok(p);
        }
        let pool = self
            .store
            .pool_by_slug(slug)
            .await?
            .map(Arc::new)
            .ok_or(ServiceError::NotFound("pool"))?;
        PoolCache::put(&self.pools.by_slug, slug.clone(), pool.clone());
        Ok(pool)
    }

    /// The pool bound to a host name, if any.
    pub async fn pool_for_host(&self, host: &HostName) -> ServiceResult<Option<Arc<Pool>>> {
        if let Some(p) = PoolCache::get(&self.pools.by_host, host) {
            return Ok(Some(p));
        }
        let Some(pool) = self.store.pool_by_host(host).await?.map(Arc::new) else {
            return Ok(None);
        };
        PoolCache::put(&self.pools.by_host, host.clone(), pool.clone());
        Ok(Some(pool))
    }

    pub async fn list_pools(&self, principal: &Principal) -> ServiceResult<Vec<Pool>> {
        principal.require(Permission::RetrievePools)?;
        if !principal.home_pool.is_staff() {
            return Err(ServiceError::Forbidden(
                "only staff administrators manage pools".to_owned(),
            ));
        }
        Ok(self.store.list_pools().await?)
    }

    /// Replaces a pool's settings (after validating them) and drops it from the cache.
    pub(crate) async fn save_pool_settings(
        &self,
        pool: &Pool,
        settings: PoolSettings,
        principal: &Principal,
        meta: &RequestMeta,
        what: &str,
    ) -> ServiceResult<()> {
        let event = self
            .event(
                pool,
                AuditAction::PoolSettingsUpdated,
                Some(principal),
                meta,
            )
            .subject(&pool.slug)
            .detail("changed", what);
        self.store
            .update_pool_settings(pool.id, &settings, &event)
            .await?;
        self.pools.forget(&pool.slug);
        Ok(())
    }

    /// The pool's public keys, for its JWKS document.
    pub async fn jwks(&self, pool: &Pool) -> ServiceResult<Vec<gatehouse_crypto::keys::PublicJwk>> {
        Ok(self
            .keyring
            .keys(self.store.as_ref(), pool.id)
            .await?
            .jwks
            .clone())
    }
}
