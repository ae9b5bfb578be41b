//! The fleet feed: a pool's security events as signed SETs for the services that verify its
//! tokens themselves. Pages (`revocation_feed` in `security_events.rs`), a snapshot of what is
//! still in effect, and the cursor checks of a stream; the HTTP layer carries the stream.
//!
//! A cursor is an event number. Readers are refused a cursor ahead of the newest event (it was
//! never handed out: they would miss what comes next), and a cursor below the pool's horizon,
//! the highest number the purge deleted (they missed events: 410, read the snapshot again).
//!
//! The SETs of the feed are the same bytes for every reader (one audience, deterministic
//! RS256 signatures), so each is signed once and kept in a small per-pool cache: a hundred
//! streams delivering the same event cost one signature, not a hundred.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use gatehouse_domain::ParseError;
use gatehouse_domain::ids::PoolId;
use gatehouse_domain::permission::Permission;
use gatehouse_domain::pool::Pool;
use gatehouse_domain::security_event::StoredSecurityEvent;

use crate::error::{ServiceError, ServiceResult};
use crate::{Gatehouse, Principal};

/// The SETs kept per pool; the oldest events go first.
const CACHED_PER_POOL: usize = 4096;

/// The pool's feed as read at one moment: every event still in effect, compacted, and the
/// cursor to follow the feed from.
#[derive(Debug)]
pub struct Snapshot {
    /// The newest event number when the snapshot was read.
    pub cursor: i64,
    /// How long an event matters (see `PoolSettings::security_event_retention_secs`).
    pub retention_seconds: i64,
    pub items: Vec<(i64, Arc<str>)>,
}

/// Signed feed SETs by pool, for the key and issuer they were signed with.
#[derive(Debug, Default)]
pub(crate) struct SetCache {
    pools: Mutex<HashMap<PoolId, PoolSets>>,
}

#[derive(Debug)]
struct PoolSets {
    kid: String,
    issuer: String,
    sets: BTreeMap<i64, Arc<str>>,
}

impl SetCache {
    fn get(&self, pool: PoolId, kid: &str, issuer: &str, seq: i64) -> Option<Arc<str>> {
        let pools = self.pools.lock().ok()?;
        let sets = pools.get(&pool)?;
        if sets.kid != kid || sets.issuer != issuer {
            return None;
        }
        sets.sets.get(&seq).cloned()
    }

    fn put(&self, pool: PoolId, kid: &str, issuer: &str, seq: i64, set: Arc<str>) {
        let Ok(mut pools) = self.pools.lock() else {
            return;
        };
        let sets = pools.entry(pool).or_insert_with(|| PoolSets {
            kid: kid.to_owned(),
            issuer: issuer.to_owned(),
            sets: BTreeMap::new(),
        });
        if sets.kid != kid || sets.issuer != issuer {
            // The key rotated or the issuer moved: what was signed before is stale.
            sets.kid = kid.to_owned();
            sets.issuer = issuer.to_owned();
            sets.sets.clear();
        }
        sets.sets.insert(seq, set);
        while sets.sets.len() > CACHED_PER_POOL {
            sets.sets.pop_first();
        }
    }
}

/// A cursor that is not one of this feed's: 400.
fn bad_cursor(detail: String) -> ServiceError {
    ParseError::new("after", detail).into()
}

impl Gatehouse {
    /// The feed's audience: the URL of its pages.
    pub fn revocation_feed_endpoint(&self, pool: &Pool) -> String {
        format!("{}/api/auth/revocations", self.issuer(pool))
    }

    /// The SET of a stored event for the feed's audience, signed once per key.
    pub(crate) async fn feed_set(
        &self,
        pool: &Pool,
        stored: &StoredSecurityEvent,
    ) -> ServiceResult<Arc<str>> {
        let keys = self.pool_keys(pool).await?;
        let kid = keys.id_token_signing.kid();
        let issuer = self.issuer(pool);
        if let Some(set) = self.feed_sets.get(pool.id, kid, &issuer, stored.seq) {
            return Ok(set);
        }
        let set: Arc<str> = self
            .security_event_token(pool, stored, &self.revocation_feed_endpoint(pool))
            .await?
            .into();
        self.feed_sets
            .put(pool.id, kid, &issuer, stored.seq, set.clone());
        Ok(set)
    }

    /// Refuses `after` unless it is a cursor of `pool`'s feed: 0 or more (400), not ahead of
    /// `newest` (400).
    pub(crate) fn check_cursor(after: i64, newest: i64) -> ServiceResult<()> {
        if after < 0 {
            return Err(bad_cursor("a cursor of this feed is 0 or more".to_owned()));
        }
        if after > newest {
            return Err(bad_cursor(format!(
                "the cursor {after} is ahead of this feed, whose newest is {newest}"
            )));
        }
        Ok(())
    }

    /// Refuses `after` when the purge has deleted events after it (410). Read after the
    /// events it guards: the horizon rises in the transaction that deletes, so a reader that
    /// found the events gone finds the horizon past them.
    pub(crate) async fn check_horizon(&self, pool: &Pool, after: i64) -> ServiceResult<()> {
        let horizon = self.store.security_event_horizon(pool.id).await?;
        if after < horizon {
            return Err(ServiceError::Gone(format!(
                "events after the cursor {after} are no longer kept (the feed now starts after \
                 {horizon}): read the snapshot again"
            )));
        }
        Ok(())
    }

    /// Up to `limit` SETs of `pool` after the cursor `after`, oldest first; 410 when events
    /// after it were purged. For a stream, whose opening checked the caller and the cursor.
    pub async fn feed_sets_after(
        &self,
        pool: &Pool,
        after: i64,
        limit: u32,
    ) -> ServiceResult<Vec<(i64, Arc<str>)>> {
        let events = self
            .store
            .security_events_after(pool.id, after, limit)
            .await?;
        self.check_horizon(pool, after).await?;
        let mut items = Vec::with_capacity(events.len());
        for stored in &events {
            items.push((stored.seq, self.feed_set(pool, stored).await?));
        }
        Ok(items)
    }

    /// Checks a stream's caller and its resume cursor (`Last-Event-ID`, else `after`, else
    /// none: live only) and returns the cursor the stream starts after.
    pub async fn open_revocation_stream(
        &self,
        pool: &Pool,
        principal: &Principal,
        resume: Option<i64>,
    ) -> ServiceResult<i64> {
        principal.require(Permission::RetrieveRevocations)?;
        let newest = self.store.latest_security_event(pool.id).await?;
        let Some(after) = resume else {
            return Ok(newest);
        };
        Self::check_cursor(after, newest)?;
        self.check_horizon(pool, after).await?;
        Ok(after)
    }

    /// Every event of `pool` still in effect (its time within the pool's retention of now),
    /// compacted: of several events of the same type about the same subject, only the newest
    /// (it refuses every token the older ones did). `cursor` is the newest event number, read
    /// first: the events are read up to it, and every event numbered up to it had committed
    /// when it was read, so following the feed from `cursor` misses nothing.
    pub async fn revocation_snapshot(
        &self,
        pool: &Pool,
        principal: &Principal,
    ) -> ServiceResult<Snapshot> {
        principal.require(Permission::RetrieveRevocations)?;
        let retention_seconds = pool.settings.security_event_retention_secs();
        let cursor = self.store.latest_security_event(pool.id).await?;
        let since = self.now().plus_secs(-retention_seconds);
        let events = self
            .store
            .security_events_in_effect(pool.id, since, cursor)
            .await?;
        let mut seen = HashSet::new();
        let mut newest_first = Vec::new();
        for stored in events.iter().rev() {
            let subject = serde_json::to_string(&stored.event.subject)
                .map_err(|e| ServiceError::internal(format!("an event's subject: {e}")))?;
            if seen.insert((stored.event.kind.uri(), subject)) {
                newest_first.push(stored);
            }
        }
        let mut items = Vec::with_capacity(newest_first.len());
        for stored in newest_first.into_iter().rev() {
            items.push((stored.seq, self.feed_set(pool, stored).await?));
        }
        Ok(Snapshot {
            cursor,
            retention_seconds,
            items,
        })
    }
}
