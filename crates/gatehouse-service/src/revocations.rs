//! The revoked token ids of each pool, in memory: what every bearer check asks, answered
//! without a database round trip.
//!
//! A pool's set is brought up to date from the store ([`Store::revocations_after`], ordered by
//! commit) when it is older than [`FRESH_FOR`], so a revocation committed by another instance
//! or by the admin CLI is refused here within that time. A revocation committed by this
//! process marks the set stale at once ([`Revocations::changed`]), before the revoking request
//! is answered: here it holds from that moment on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use gatehouse_domain::ids::PoolId;
use gatehouse_domain::store::{Store, StoreResult};
use gatehouse_domain::time::Timestamp;

/// How long a pool's set is trusted before it is brought up to date.
pub const FRESH_FOR: Duration = Duration::from_millis(250);

/// How often expired ids are dropped from a set, at most.
const PRUNE_EVERY_SECS: i64 = 60;

#[derive(Debug, Default)]
pub struct Revocations {
    pools: Mutex<HashMap<PoolId, Arc<PoolRevocations>>>,
}

#[derive(Debug, Default)]
struct PoolRevocations {
    state: RwLock<State>,
    /// One refresh at a time per pool; the others wait for it and use its result.
    refreshing: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    /// Revoked ids and when they would have expired anyway.
    ids: HashMap<String, i64>,
    /// The newest `seq` read.
    cursor: i64,
    /// When the read that brought the set up to date started.
    synced: Option<Instant>,
    /// When this process last committed a revocation of the pool.
    changed: Option<Instant>,
    pruned_at: i64,
}

impl State {
    fn is_fresh(&self) -> bool {
        match self.synced {
            Some(at) => at.elapsed() < FRESH_FOR && self.changed.is_none_or(|c| c < at),
            None => false,
        }
    }
}

impl Revocations {
    fn of(&self, pool: PoolId) -> Arc<PoolRevocations> {
        let mut pools = self.pools.lock().unwrap_or_else(|e| e.into_inner());
        pools.entry(pool).or_default().clone()
    }

    /// Whether `jti` is revoked (or used) in `pool`.
    pub async fn is_revoked(
        &self,
        store: &dyn Store,
        pool: PoolId,
        jti: &str,
        now: Timestamp,
    ) -> StoreResult<bool> {
        let p = self.of(pool);
        if let Some(answer) = p.answer(jti) {
            return Ok(answer);
        }
        let _turn = p.refreshing.lock().await;
        if let Some(answer) = p.answer(jti) {
            return Ok(answer);
        }
        let started = Instant::now();
        let cursor = p.read().cursor;
        let rows = store.revocations_after(pool, cursor, now).await?;
        let mut s = p.write();
        for r in rows {
            s.cursor = s.cursor.max(r.seq);
            if r.expires_at.as_secs() > now.as_secs() {
                s.ids.insert(r.jti, r.expires_at.as_secs());
            }
        }
        if now.as_secs() - s.pruned_at >= PRUNE_EVERY_SECS {
            s.ids.retain(|_, exp| *exp > now.as_secs());
            s.pruned_at = now.as_secs();
        }
        s.synced = Some(started);
        Ok(s.ids.contains_key(jti))
    }

    /// This process committed a revocation in `pool`: the next check reads the store.
    pub fn changed(&self, pool: PoolId) {
        self.of(pool).write().changed = Some(Instant::now());
    }
}

impl PoolRevocations {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The answer from memory, if the set is fresh.
    fn answer(&self, jti: &str) -> Option<bool> {
        let s = self.read();
        s.is_fresh().then(|| s.ids.contains_key(jti))
    }
}
