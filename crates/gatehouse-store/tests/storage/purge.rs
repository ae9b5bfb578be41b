//! The periodic purge: what is kept and what is deleted at each limit, per pool, in batches,
//! and what it must never break (the revocation readers' cursors).

use gatehouse_domain::audit::{AuditAction, AuditEvent};
use gatehouse_domain::ids::{EventId, PoolId, UserId};
use gatehouse_domain::lockout::LockoutPolicy;
use gatehouse_domain::pool::PoolSettings;
use gatehouse_domain::retention::{DAY_SECS, PurgeCounts, PurgePolicy};
use gatehouse_domain::session::RevokedToken;
use gatehouse_domain::store::Store;
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::user::{VerifiableAttribute, VerificationCode};
use gatehouse_store::SqlStore;

use crate::fixtures::*;

/// When the purges of these tests run: long after everything the fixtures create at T0.
const NOW: Timestamp = Timestamp(T0.0 + 400 * DAY_SECS);

fn at(secs_from_now: i64) -> Timestamp {
    NOW.plus_secs(secs_from_now)
}

async fn codes_of(store: &SqlStore, user: UserId) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM verification_codes WHERE user_id = $1")
        .bind(user.to_string())
        .fetch_one(store.pool())
        .await
        .unwrap()
}

async fn count(store: &SqlStore, table: &str, pool: PoolId) -> i64 {
    sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table} WHERE pool_id = $1"))
        .bind(pool.to_string())
        .fetch_one(store.pool())
        .await
        .unwrap()
}

fn revoked(pool: PoolId, jti: &str, expires_at: Timestamp) -> RevokedToken {
    RevokedToken {
        pool,
        jti: jti.to_owned(),
        expires_at,
        revoked_at: T0,
    }
}

async fn revoke(store: &SqlStore, token: &RevokedToken) {
    store
        .revoke_token(
            token,
            &event(token.pool, AuditAction::TokenRevoked, &token.jti),
        )
        .await
        .unwrap();
}

fn event_at(pool: PoolId, at: Timestamp) -> AuditEvent {
    AuditEvent {
        id: EventId::new_random(),
        at,
        ..event(pool, AuditAction::TokenIssued, "alice")
    }
}

pub async fn sessions_codes_and_failures_at_their_limits(db: &Db) {
    let store = &db.store;
    let policy = PurgePolicy::default();
    let grace = policy.session_grace_secs;
    let quiet = policy.failure_quiet_secs;
    let pool = new_pool(store, "acme").await;
    let alice = new_user(store, pool.id, "alice").await;
    let bob = new_user(store, pool.id, "bob").await;

    // Sessions: one second past the grace period goes, at the grace period stays.
    let expired_long_ago = sign_in(&alice, at(-grace - 1));
    let expired_at_limit = sign_in(&alice, at(-grace));
    let revoked_long_ago = impersonation(&bob, at(3600)).with_revoked(at(-grace - 1));
    let revoked_at_limit = sign_in(&bob, at(3600)).with_revoked(at(-grace));
    let active = sign_in(&alice, at(3600));
    for s in [
        &expired_long_ago,
        &expired_at_limit,
        &revoked_long_ago,
        &revoked_at_limit,
        &active,
    ] {
        store
            .create_session(s, &event(pool.id, AuditAction::UserSignedIn, "alice"))
            .await
            .unwrap();
    }

    // Codes: expired a second ago goes, expiring now stays.
    let code = |user: UserId, expires_at| VerificationCode {
        pool: pool.id,
        user_id: user,
        attribute: VerifiableAttribute::Email,
        code_sha256: [9; 32],
        expires_at,
        attempts: 0,
        destination: "someone@example.com".to_owned(),
        sealed_code: None,
    };
    store
        .put_verification_code(&code(alice.id, at(-1)))
        .await
        .unwrap();
    store
        .put_verification_code(&code(bob.id, NOW))
        .await
        .unwrap();

    // Failed sign-ins: quiet for longer than the policy's quiet time goes, unless still
    // locked; a lock that ends now still holds.
    let record = |name: &'static str, last: Timestamp, lock_secs: Option<i64>| async move {
        let lockout = LockoutPolicy {
            lock_at: if lock_secs.is_some() { 1 } else { 100 },
            lock_secs: lock_secs.unwrap_or(0),
            ..LockoutPolicy::default()
        };
        store
            .record_sign_in_failure(pool.id, &uname(name), last, &lockout)
            .await
            .unwrap();
    };
    record("quiet-long", at(-quiet - 1), None).await;
    record("quiet-at-limit", at(-quiet), None).await;
    record("still-locked", at(-quiet - 1), Some(quiet + 1)).await;
    record("lock-ended", at(-quiet - 1), Some(quiet)).await;
    let failures =
        |name: &'static str| async move { store.sign_in_failures(pool.id, &uname(name)).await };
    assert_eq!(
        failures("still-locked")
            .await
            .unwrap()
            .unwrap()
            .locked_until,
        Some(NOW)
    );

    // Counts of codes sent: a window that opened a window's length ago has closed and goes.
    let mut w = store.write(pool.id).await.unwrap();
    for (key, opened) in [
        ("closed", at(-policy.code_window_secs - 1)),
        ("open", at(-policy.code_window_secs + 1)),
    ] {
        w.count_code_sent(key, opened, policy.code_window_secs, 5)
            .await
            .unwrap()
            .unwrap();
    }
    w.commit().await.unwrap();

    let counts = store.purge_expired(NOW, &policy).await.unwrap();
    assert_eq!(
        counts,
        PurgeCounts {
            sessions: 2,
            verification_codes: 1,
            sign_in_failures: 2,
            code_issuance: 1,
            ..PurgeCounts::default()
        }
    );
    for gone in [&expired_long_ago, &revoked_long_ago] {
        assert_eq!(store.session(pool.id, gone.id).await.unwrap(), None);
    }
    for kept in [&expired_at_limit, &revoked_at_limit, &active] {
        assert_eq!(
            store.session(pool.id, kept.id).await.unwrap().as_ref(),
            Some(kept)
        );
    }
    assert_eq!(codes_of(store, alice.id).await, 0);
    assert_eq!(codes_of(store, bob.id).await, 1);
    assert!(failures("quiet-long").await.unwrap().is_none());
    assert!(failures("lock-ended").await.unwrap().is_none());
    assert!(failures("quiet-at-limit").await.unwrap().is_some());
    assert!(failures("still-locked").await.unwrap().is_some());
    // The users and their audit trail are untouched (no retention set).
    assert_eq!(store.list_users(pool.id, None, 10).await.unwrap().len(), 2);
    assert_eq!(all_events(store, pool.id).await.len(), 8);

    // Again: nothing left to do.
    let again = store.purge_expired(NOW, &policy).await.unwrap();
    assert_eq!(again, PurgeCounts::default());
}

trait Revoked {
    fn with_revoked(self, at: Timestamp) -> Self;
}

impl Revoked for gatehouse_domain::session::Session {
    fn with_revoked(mut self, at: Timestamp) -> Self {
        self.revoked_at = Some(at);
        self
    }
}

pub async fn revoked_tokens_go_but_the_newest_of_each_pool_stays(db: &Db) {
    let store = &db.store;
    let policy = PurgePolicy::default();
    let limit = -policy.revocation_margin_secs;
    let pool = new_pool(store, "acme").await;
    let other = new_pool(store, "other").await;

    revoke(store, &revoked(pool.id, "a", at(limit - 1))).await;
    revoke(store, &revoked(pool.id, "b", at(limit))).await;
    revoke(store, &revoked(pool.id, "c", at(limit - 1))).await;
    revoke(store, &revoked(other.id, "z", T0)).await;

    // A reader that has read everything: the newest row moved its cursor, expired as it is.
    let seen = store.revocations_after(pool.id, 0, NOW).await.unwrap();
    let ids: Vec<_> = seen.iter().map(|r| r.jti.as_str()).collect();
    assert_eq!(ids, ["c"]);
    let cursor = seen[0].seq;
    // A reader that had read only the first.
    let early_cursor = cursor - 2;

    let counts = store.purge_expired(NOW, &policy).await.unwrap();

    // Revocations committed after the purge are numbered after what the readers saw.
    revoke(store, &revoked(pool.id, "d", at(3600))).await;
    let after = store.revocations_after(pool.id, cursor, NOW).await.unwrap();
    let ids: Vec<_> = after.iter().map(|r| r.jti.as_str()).collect();
    assert_eq!(
        ids,
        ["d"],
        "a reader whose cursor predates the purge missed a revocation"
    );
    assert!(after[0].seq > cursor);
    let after = store
        .revocations_after(pool.id, early_cursor, NOW)
        .await
        .unwrap();
    let ids: Vec<_> = after.iter().map(|r| r.jti.as_str()).collect();
    assert_eq!(ids, ["d"]);
    revoke(store, &revoked(other.id, "y", at(3600))).await;
    let in_other = store.revocations_after(other.id, 1, NOW).await.unwrap();
    let ids: Vec<_> = in_other.iter().map(|r| r.jti.as_str()).collect();
    assert_eq!(ids, ["y"]);

    assert_eq!(
        counts,
        PurgeCounts {
            revoked_tokens: 1,
            ..PurgeCounts::default()
        }
    );
    assert!(!store.is_token_revoked(pool.id, "a").await.unwrap());
    assert!(store.is_token_revoked(pool.id, "b").await.unwrap());
    assert!(store.is_token_revoked(pool.id, "c").await.unwrap());
    assert!(store.is_token_revoked(other.id, "z").await.unwrap());

    // `c` is no longer the newest: it goes now (and `z`, behind `y`).
    let counts = store.purge_expired(NOW, &policy).await.unwrap();
    assert_eq!(counts.revoked_tokens, 2);
    assert!(!store.is_token_revoked(pool.id, "c").await.unwrap());
    assert!(!store.is_token_revoked(other.id, "z").await.unwrap());
    assert_eq!(count(store, "revoked_tokens", pool.id).await, 2);
    assert_eq!(count(store, "revoked_tokens", other.id).await, 1);
}

pub async fn audit_retention_is_per_pool(db: &Db) {
    let store = &db.store;
    let policy = PurgePolicy::default();
    let short = new_pool(store, "short").await;
    let forever = new_pool(store, "forever").await;
    let settings = PoolSettings {
        audit_retention_days: Some(30),
        ..PoolSettings::default()
    };
    save_settings(
        store,
        short.id,
        &settings,
        &event(short.id, AuditAction::PoolSettingsUpdated, "short"),
    )
    .await
    .unwrap();
    let cutoff = at(-30 * DAY_SECS);
    let mut events = Vec::new();
    for pool in [short.id, forever.id] {
        events.push(event_at(pool, cutoff.plus_secs(-1)));
        events.push(event_at(pool, cutoff));
        events.push(event_at(pool, NOW));
    }
    store.append_audit_batch(&events).await.unwrap();

    let counts = store.purge_expired(NOW, &policy).await.unwrap();
    // In `short`: its creation, the settings change (both at T0) and the one just too old.
    assert_eq!(
        counts,
        PurgeCounts {
            audit_events: 3,
            ..PurgeCounts::default()
        }
    );
    let left: Vec<_> = all_events(store, short.id)
        .await
        .into_iter()
        .map(|e| e.event.id)
        .collect();
    assert_eq!(left, [events[1].id, events[2].id]);
    let kept = all_events(store, forever.id).await;
    assert_eq!(kept.len(), 4, "the pool that keeps its events lost some");
}

pub async fn purges_go_in_batches_until_done(db: &Db) {
    let store = &db.store;
    let policy = PurgePolicy {
        batch: 5,
        ..PurgePolicy::default()
    };
    let pool = new_pool(store, "acme").await;
    let alice = new_user(store, pool.id, "alice").await;
    for _ in 0..12 {
        store
            .create_session(
                &sign_in(&alice, T0),
                &event(pool.id, AuditAction::UserSignedIn, "alice"),
            )
            .await
            .unwrap();
    }
    for i in 0..13 {
        revoke(store, &revoked(pool.id, &format!("t{i}"), T0)).await;
    }
    let counts = store.purge_expired(NOW, &policy).await.unwrap();
    assert_eq!(counts.sessions, 12);
    assert_eq!(counts.revoked_tokens, 12);
    assert_eq!(count(store, "sessions", pool.id).await, 0);
    assert_eq!(count(store, "revoked_tokens", pool.id).await, 1);

    // More audit events than the default batch.
    let settings = PoolSettings {
        audit_retention_days: Some(1),
        ..PoolSettings::default()
    };
    save_settings(
        store,
        pool.id,
        &settings,
        &event(pool.id, AuditAction::PoolSettingsUpdated, "acme"),
    )
    .await
    .unwrap();
    let old: Vec<_> = (0..2_345).map(|_| event_at(pool.id, T0)).collect();
    store.append_audit_batch(&old).await.unwrap();
    store.append_audit(&event_at(pool.id, NOW)).await.unwrap();
    let before = count(store, "audit_events", pool.id).await;
    let counts = store
        .purge_expired(NOW, &PurgePolicy::default())
        .await
        .unwrap();
    assert_eq!(counts.audit_events, u64::try_from(before - 1).unwrap());
    assert_eq!(count(store, "audit_events", pool.id).await, 1);
}

/// Instances purging at once (two connection pools on one database) delete each row once
/// between them, and neither fails.
pub async fn concurrent_purges_delete_each_row_once(db: &Db) {
    let store = &db.store;
    let policy = PurgePolicy {
        batch: 7,
        ..PurgePolicy::default()
    };
    let pool = new_pool(store, "acme").await;
    let alice = new_user(store, pool.id, "alice").await;
    for i in 0..40 {
        store
            .create_session(
                &sign_in(&alice, T0),
                &event(pool.id, AuditAction::UserSignedIn, "alice"),
            )
            .await
            .unwrap();
        revoke(store, &revoked(pool.id, &format!("t{i}"), T0)).await;
    }
    let second = SqlStore::connect(&db.url).await.unwrap();
    let (a, b) = tokio::join!(
        store.purge_expired(NOW, &policy),
        second.purge_expired(NOW, &policy)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.sessions + b.sessions, 40);
    assert_eq!(a.revoked_tokens + b.revoked_tokens, 39);
    assert_eq!(count(store, "sessions", pool.id).await, 0);
    assert_eq!(count(store, "revoked_tokens", pool.id).await, 1);
    second.close().await;
}
