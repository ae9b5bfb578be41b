//! Pools: creation (with the first signing key), lookup by slug or host, and a short-lived
//! cache so that the hot paths do not read the pool row on every request.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::{PoolId, PoolSlug};
use gatehouse_domain::permission::Permission;
use gatehouse_domain::pool::{HostName, Pool, PoolSettings};
use gatehouse_domain::store::{KeyPurpose, KeyState};

use crate::audit::EventExt;
use crate::cache::TtlCache;
use crate::error::{ServiceError, ServiceResult};
use crate::{Gatehouse, Operator, Principal, RequestMeta};

/// How long a pool row read from the store is trusted.
const POOL_CACHE_TTL: Duration = Duration::from_secs(2);
const POOL_CACHE_ENTRIES: usize = 10_000;

pub struct PoolCache {
    by_slug: TtlCache<PoolSlug, Arc<Pool>>,
    by_host: TtlCache<HostName, Arc<Pool>>,
}

impl Default for PoolCache {
    fn default() -> Self {
        Self {
            by_slug: TtlCache::new(POOL_CACHE_TTL, POOL_CACHE_ENTRIES),
            by_host: TtlCache::new(POOL_CACHE_TTL, POOL_CACHE_ENTRIES),
        }
    }
}

/// The outcome of re-binding a pool's hosts. When the issuer changed, tokens issued under the
/// previous one are refused from then on: every token is checked against the pool's current
/// issuer, here and by downstream verifiers that discover it.
#[derive(Debug, Clone)]
pub struct HostChange {
    pub pool: Pool,
    pub previous_issuer: String,
    pub issuer: String,
}

impl HostChange {
    pub fn issuer_changed(&self) -> bool {
        self.previous_issuer != self.issuer
    }
}

impl PoolCache {
    pub fn forget(&self, slug: &PoolSlug) {
        self.by_slug.retain(|k, _| k != slug);
        self.by_host.retain(|_, p| &p.slug != slug);
    }
}

impl Gatehouse {
    /// Creates a pool and its first signing keys, one of each family. Used by the CLI and at first start.
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
        // The first key of each family: access tokens in the pool's algorithm, ID tokens RS256
        // (always a key of its own, even when access tokens are RS256 too).
        let mut keys = Vec::with_capacity(KeyPurpose::ALL.len());
        for purpose in KeyPurpose::ALL {
            let alg = purpose.alg(&pool.settings);
            keys.push(
                self.keyring
                    .new_key(pool.id, purpose, alg, KeyState::Current, now)
                    .await?,
            );
        }
        let event = self
            .event(&pool, AuditAction::PoolCreated, principal, meta)
            .subject(&pool.slug);
        self.store.create_pool(&pool, &keys, &event).await?;
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
        if let Some(p) = self.pools.by_slug.get(slug) {
            return Ok(p);
        }
        let pool = self
            .store
            .pool_by_slug(slug)
            .await?
            .map(Arc::new)
            .ok_or(ServiceError::NotFound("pool"))?;
        self.pools.by_slug.put(slug.clone(), pool.clone());
        Ok(pool)
    }

    /// The pool bound to a host name, if any.
    pub async fn pool_for_host(&self, host: &HostName) -> ServiceResult<Option<Arc<Pool>>> {
        if let Some(p) = self.pools.by_host.get(host) {
            return Ok(Some(p));
        }
        let Some(pool) = self.store.pool_by_host(host).await?.map(Arc::new) else {
            return Ok(None);
        };
        self.pools.by_host.put(host.clone(), pool.clone());
        Ok(Some(pool))
    }

    /// The operator's listing (the CLI, with access to the database): a page of pools in slug
    /// order, with no permission check.
    pub async fn list_pools_as_operator(
        &self,
        cursor: Option<&str>,
        limit: u32,
    ) -> ServiceResult<crate::users::Page<Pool>> {
        let after = cursor
            .filter(|c| !c.is_empty())
            .map(PoolSlug::parse)
            .transpose()?;
        let limit = crate::users::page_limit(limit);
        let pools = self
            .store
            .list_pools_page(after.as_ref(), limit + 1)
            .await?;
        Ok(crate::users::Page::from_overfetch(pools, limit, |p| {
            p.slug.to_string()
        }))
    }

    /// A page of pools in slug order, after `cursor` (a slug).
    pub async fn list_pools(
        &self,
        principal: &Principal,
        cursor: Option<&str>,
        limit: u32,
    ) -> ServiceResult<crate::users::Page<Pool>> {
        principal.require(Permission::RetrievePools)?;
        if !principal.home_pool.is_staff() {
            return Err(ServiceError::Forbidden(
                "only staff administrators manage pools".to_owned(),
            ));
        }
        self.list_pools_as_operator(cursor, limit).await
    }

    /// Binds a pool to these host names, in this order, replacing its bindings: the first
    /// host names the pool's issuer (SPEC §4). A staff administrator's operation.
    pub async fn set_pool_hosts(
        &self,
        principal: &Principal,
        slug: &PoolSlug,
        hosts: Vec<HostName>,
        meta: &RequestMeta,
    ) -> ServiceResult<HostChange> {
        principal.require(Permission::UpdatePool)?;
        if !principal.home_pool.is_staff() {
            return Err(ServiceError::Forbidden(
                "only staff administrators manage pools".to_owned(),
            ));
        }
        self.change_hosts(slug, hosts, Some(principal), meta).await
    }

    /// [`Gatehouse::set_pool_hosts`] for the operator's command line.
    pub async fn set_pool_hosts_as_operator(
        &self,
        operator: &Operator,
        slug: &PoolSlug,
        hosts: Vec<HostName>,
    ) -> ServiceResult<HostChange> {
        let principal = operator.in_pool(slug);
        self.change_hosts(slug, hosts, Some(&principal), &RequestMeta::default())
            .await
    }

    /// Deletes a pool with everything in it: its users, groups, app clients, keys and
    /// sessions. Its tokens are refused from then on (by other instances once their cached
    /// pool row expires, within seconds). The deletion is recorded in the staff pool's audit
    /// log, since the pool's own goes with it. The staff pool cannot be deleted.
    pub async fn delete_pool_as_operator(
        &self,
        operator: &Operator,
        slug: &PoolSlug,
        meta: &RequestMeta,
    ) -> ServiceResult<Pool> {
        if slug.is_staff() {
            return Err(ServiceError::Conflict(
                "the staff pool cannot be deleted: staff sign in to every pool through it"
                    .to_owned(),
            ));
        }
        let pool = self
            .store
            .pool_by_slug(slug)
            .await?
            .ok_or(ServiceError::NotFound("pool"))?;
        let staff = self.pool(&PoolSlug::staff()).await?;
        let principal = operator.in_pool(slug);
        let event = self
            .event(&staff, AuditAction::PoolDeleted, Some(&principal), meta)
            .subject(slug)
            .detail("pool_id", pool.id);
        self.store.delete_pool(pool.id, &event).await?;
        self.pools.forget(slug);
        self.keyring.forget(pool.id);
        Ok(pool)
    }

    async fn change_hosts(
        &self,
        slug: &PoolSlug,
        hosts: Vec<HostName>,
        principal: Option<&Principal>,
        meta: &RequestMeta,
    ) -> ServiceResult<HostChange> {
        let before = self
            .store
            .pool_by_slug(slug)
            .await?
            .ok_or(ServiceError::NotFound("pool"))?;
        let mut after = before.clone();
        let mut seen = std::collections::BTreeSet::new();
        after.hosts = hosts
            .into_iter()
            .filter(|h| seen.insert(h.clone()))
            .collect();
        let previous_issuer = self.issuer(&before);
        let issuer = self.issuer(&after);
        let listed: Vec<&str> = after.hosts.iter().map(HostName::as_str).collect();
        let event = self
            .event(&before, AuditAction::PoolHostsChanged, principal, meta)
            .subject(&before.slug)
            .detail("hosts", listed.join(" "))
            .detail("issuer", &issuer)
            .detail("previous_issuer", &previous_issuer);
        self.store
            .set_pool_hosts(before.id, &after.hosts, &event)
            .await?;
        self.pools.forget(slug);
        Ok(HostChange {
            pool: after,
            previous_issuer,
            issuer,
        })
    }

    /// The pool's public keys, for its JWKS document: every published key of both families.
    pub async fn jwks(&self, pool: &Pool) -> ServiceResult<Vec<gatehouse_crypto::keys::PublicJwk>> {
        Ok(self.pool_keys(pool).await?.jwks.clone())
    }
}
