//! Each pool's security events: stored as appended, isolated per pool, and numbered in commit
//! order, so that a reader following the log by `seq` never misses one.

use gatehouse_domain::ids::PoolId;
use gatehouse_domain::ids::{SessionId, UserId};
use gatehouse_domain::security_event::{
    ChangeType, CredentialType, EventKind, EventSubject, InitiatingEntity, SecurityEvent,
};
use gatehouse_domain::session::RevokedToken;
use gatehouse_domain::store::{Store, StoreError};
use gatehouse_domain::time::Timestamp;

use crate::fixtures::*;

fn revoked(pool: PoolId, id: &str) -> SecurityEvent {
    SecurityEvent {
        pool,
        id: id.to_owned(),
        txn: format!("txn-{id}"),
        kind: EventKind::SessionRevoked {
            initiating_entity: InitiatingEntity::Admin,
            reason_admin: "signed out".to_owned(),
        },
        subject: EventSubject::User {
            user: UserId::new_random(),
        },
        at: T0,
    }
}

async fn ids_after(db: &Db, pool: PoolId, after: i64) -> Vec<(i64, String)> {
    db.store
        .security_events_after(pool, after, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.seq, e.event.id))
        .collect()
}

/// Every kind and subject reads back as it was appended; ids are unique per pool; pools do
/// not see each other's events.
pub async fn events_round_trip_per_pool(db: &Db) {
    let store = db.store.clone();
    let pool = new_pool(&store, "acme").await;
    let other = new_pool(&store, "other").await;
    let user = UserId::new_random();
    let kinds = [
        EventKind::SessionRevoked {
            initiating_entity: InitiatingEntity::User,
            reason_admin: "logout".to_owned(),
        },
        EventKind::CredentialChange {
            credential_type: CredentialType::Password,
            change_type: ChangeType::Update,
        },
        EventKind::TokenClaimsChange {
            roles: vec!["admin".to_owned()],
            groups: vec!["ops".to_owned()],
        },
        EventKind::AccountDisabled,
        EventKind::AccountEnabled,
        EventKind::AccountPurged,
        EventKind::TokenRevoked {
            reason_admin: "RFC 7009".to_owned(),
        },
    ];
    let subjects = [
        EventSubject::Session {
            session: SessionId::new_ordered(),
            user,
        },
        EventSubject::User { user },
        EventSubject::Pool,
        EventSubject::Token {
            jti: "j-1".to_owned(),
        },
    ];
    let events: Vec<SecurityEvent> = kinds
        .iter()
        .enumerate()
        .map(|(i, kind)| SecurityEvent {
            pool: pool.id,
            id: format!("e{i}"),
            txn: "one cause".to_owned(),
            kind: kind.clone(),
            subject: subjects[i % subjects.len()].clone(),
            at: Timestamp(T0.0 + i as i64),
        })
        .collect();
    let mut w = store.write(pool.id).await.unwrap();
    let seqs = w.append_security_events(&events).await.unwrap();
    w.commit().await.unwrap();
    assert!(seqs.windows(2).all(|s| s[0] < s[1]), "{seqs:?}");
    let read = store.security_events_after(pool.id, 0, 100).await.unwrap();
    assert_eq!(read.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
    assert_eq!(
        read.into_iter().map(|e| e.event).collect::<Vec<_>>(),
        events
    );
    assert_eq!(
        store
            .security_events_after(pool.id, 0, 3)
            .await
            .unwrap()
            .len(),
        3,
        "the limit holds"
    );
    assert!(ids_after(db, other.id, 0).await.is_empty());

    // An id once more in the pool is a conflict, and nothing of that transaction stays.
    let mut w = store.write(pool.id).await.unwrap();
    let again = w.append_security_events(&[revoked(pool.id, "e0")]).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    drop(w);
    // The same id in another pool is that pool's own.
    let mut w = store.write(other.id).await.unwrap();
    w.append_security_events(&[revoked(other.id, "e0")])
        .await
        .unwrap();
    w.commit().await.unwrap();
    assert_eq!(ids_after(db, other.id, 0).await, [(1, "e0".to_owned())]);

    // A transaction appends only to its own pool (or one it reached ending an actor's
    // sessions there).
    let mut w = store.write(pool.id).await.unwrap();
    let elsewhere = w.append_security_events(&[revoked(other.id, "x")]).await;
    assert!(elsewhere.is_err());
}

/// Writers of one pool get their numbers in commit order: one that starts while another
/// holds a number waits for its commit; a reader past N never meets a smaller number later;
/// many writers at once, some also revoking tokens (in either order), lose nothing and
/// deadlock nowhere.
pub async fn events_are_read_in_commit_order(db: &Db) {
    let store = db.store.clone();
    let pool = new_pool(&store, "acme").await;

    let mut first = store.write(pool.id).await.unwrap();
    first
        .append_security_events(&[revoked(pool.id, "a")])
        .await
        .unwrap();
    let second = {
        let store = store.clone();
        let b = revoked(pool.id, "b");
        tokio::spawn(async move {
            let mut w = store.write(b.pool).await.unwrap();
            w.append_security_events(&[b]).await.unwrap();
            w.commit().await.unwrap();
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!second.is_finished(), "a second event committed first");
    assert!(ids_after(db, pool.id, 0).await.is_empty());
    first.commit().await.unwrap();
    second.await.unwrap();
    assert_eq!(
        ids_after(db, pool.id, 0).await,
        [(1, "a".to_owned()), (2, "b".to_owned())]
    );

    let mut writers = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        let pool_id = pool.id;
        writers.push(tokio::spawn(async move {
            let events = [
                revoked(pool_id, &format!("w{i}-1")),
                revoked(pool_id, &format!("w{i}-2")),
            ];
            let token = RevokedToken {
                pool: pool_id,
                jti: format!("jti-{i}"),
                expires_at: Timestamp(T0.0 + 3600),
                revoked_at: T0,
            };
            let mut w = store.write(pool_id).await.unwrap();
            if i % 2 == 0 {
                w.revoke_token(&token).await.unwrap();
                w.append_security_events(&events).await.unwrap();
            } else {
                w.append_security_events(&events).await.unwrap();
                w.revoke_token(&token).await.unwrap();
            }
            w.commit().await.unwrap();
        }));
    }
    let mut cursor = 2;
    let mut followed = std::collections::BTreeSet::new();
    loop {
        let done = writers.iter().all(|w| w.is_finished());
        for (seq, id) in ids_after(db, pool.id, cursor).await {
            assert_eq!(
                seq,
                cursor + 1,
                "a number was skipped, or seen out of order"
            );
            cursor = seq;
            assert!(followed.insert(id));
        }
        if done {
            break;
        }
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    for (seq, id) in ids_after(db, pool.id, cursor).await {
        assert_eq!(seq, cursor + 1);
        cursor = seq;
        assert!(followed.insert(id));
    }
    assert_eq!(followed.len(), 48, "{followed:?}");
}

/// Waits (with a generous deadline, so that a broken bell fails instead of hanging) until
/// `store`'s bell moves from `mark`.
async fn rung(store: &gatehouse_store::SqlStore, mark: u64) -> u64 {
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        store.security_events_committed(mark),
    )
    .await
    .expect("the bell did not ring")
}

/// The bell rings after a commit that appended events, and not for a commit without events
/// or a transaction dropped before its commit.
pub async fn the_bell_rings_after_commits_that_appended(db: &Db) {
    let store = db.store.clone();
    let pool = new_pool(&store, "acme").await;
    if store.dialect() == gatehouse_store::Dialect::Postgres {
        // The listener rings once it is connected.
        rung(&store, 0).await;
    }
    let mark = store.security_event_mark();

    let w = store.write(pool.id).await.unwrap();
    w.commit().await.unwrap();
    let mut dropped = store.write(pool.id).await.unwrap();
    dropped
        .append_security_events(&[revoked(pool.id, "dropped")])
        .await
        .unwrap();
    drop(dropped);
    assert_eq!(store.security_event_mark(), mark);

    let mut w = store.write(pool.id).await.unwrap();
    w.append_security_events(&[revoked(pool.id, "a")])
        .await
        .unwrap();
    w.commit().await.unwrap();
    assert_ne!(store.security_event_mark(), mark);
    // A waiter holding an old mark returns at once.
    assert_ne!(rung(&store, mark).await, mark);
}

/// PostgreSQL: a commit through one store wakes a waiter on another store of the same
/// database (LISTEN/NOTIFY), which is how one instance's revocation wakes the streams and
/// long polls of every instance.
#[tokio::test]
async fn postgres_the_bell_rings_across_stores() {
    let url = gatehouse_store::test_support::fresh_postgres_url().await;
    let a = gatehouse_store::SqlStore::connect(&url).await.unwrap();
    let b = gatehouse_store::SqlStore::connect(&url).await.unwrap();
    let pool = new_pool(&a, "acme").await;
    // B's listener rings once it is connected; from then on it hears every commit.
    rung(&b, 0).await;
    let mark = b.security_event_mark();
    let waiter = {
        let b = b.clone();
        tokio::spawn(async move { rung(&b, mark).await })
    };
    let mut w = a.write(pool.id).await.unwrap();
    w.append_security_events(&[revoked(pool.id, "a")])
        .await
        .unwrap();
    w.commit().await.unwrap();
    assert_ne!(waiter.await.unwrap(), mark);
    assert_eq!(
        b.security_events_after(pool.id, 0, 10).await.unwrap().len(),
        1
    );
    a.close().await;
    b.close().await;
    gatehouse_store::test_support::drop_postgres_database(&url).await;
}
