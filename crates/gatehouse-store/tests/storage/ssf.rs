//! SSF streams: one per receiver, changes and fan-outs as compare-and-sets, queues in order,
//! and one push lease at a time.

use gatehouse_domain::ssf::{DeliveryMethod, FanOut, QueuedSet, SsfStore, SsfStream, StreamStatus};
use gatehouse_domain::store::StoreError;

use crate::fixtures::*;

fn stream(pool: gatehouse_domain::ids::PoolId, id: &str, client: &str) -> SsfStream {
    SsfStream {
        pool,
        id: id.to_owned(),
        client: gatehouse_domain::ids::ClientId::parse(client).unwrap(),
        description: None,
        events_requested: Vec::new(),
        method: DeliveryMethod::Poll,
        endpoint_url: None,
        authorization_header: None,
        status: StreamStatus::Enabled,
        status_reason: None,
        position: 0,
        version: 0,
        created_at: T0,
        last_verification_at: None,
    }
}

fn set(jti: &str) -> QueuedSet {
    QueuedSet::new(jti.to_owned(), format!("set-{jti}"), T0)
}

async fn jtis(db: &Db, pool: gatehouse_domain::ids::PoolId, stream: &str) -> Vec<String> {
    db.store
        .ssf_queued(pool, stream, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|q| q.jti)
        .collect()
}

pub async fn streams_are_compared_and_set(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let other = new_pool(store, "other").await;
    new_client(store, pool.id, "receiver1").await;
    new_client(store, other.id, "receiver1").await;

    let created = store
        .ssf_create_stream(&stream(pool.id, "s1", "receiver1"))
        .await
        .unwrap();
    assert_eq!((created.position, created.version), (0, 1));
    // One stream per receiver.
    let again = store
        .ssf_create_stream(&stream(pool.id, "s2", "receiver1"))
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    // Another pool's stream of the same client id is its own, and invisible here.
    store
        .ssf_create_stream(&stream(other.id, "s1", "receiver1"))
        .await
        .unwrap();
    assert_eq!(store.ssf_streams(pool.id, None).await.unwrap().len(), 1);

    // An update decided on a stale version changes nothing.
    let mut changed = created.clone();
    changed.description = Some("first".into());
    assert!(store.ssf_update_stream(&changed).await.unwrap());
    let mut stale = created.clone();
    stale.description = Some("stale".into());
    assert!(!store.ssf_update_stream(&stale).await.unwrap());
    let now = store.ssf_stream(pool.id, "s1").await.unwrap().unwrap();
    assert_eq!(now.description.as_deref(), Some("first"));

    // A fan-out from a position that moved meanwhile writes nothing.
    let sets = [set("a"), set("b")];
    let fan = FanOut {
        from: 0,
        to: 2,
        sets: &sets,
    };
    assert!(store.ssf_fan_out(pool.id, "s1", fan).await.unwrap());
    let fan = FanOut {
        from: 0,
        to: 3,
        sets: &[set("c")],
    };
    assert!(!store.ssf_fan_out(pool.id, "s1", fan).await.unwrap());
    store.ssf_enqueue(pool.id, "s1", &[set("v")]).await.unwrap();
    assert_eq!(jtis(db, pool.id, "s1").await, ["a", "b", "v"]);
    assert_eq!(
        store
            .ssf_stream(pool.id, "s1")
            .await
            .unwrap()
            .unwrap()
            .position,
        2
    );
    assert!(store.ssf_queued_more_than(pool.id, "s1", 2).await.unwrap());
    assert!(!store.ssf_queued_more_than(pool.id, "s1", 3).await.unwrap());
    assert!(jtis(db, other.id, "s1").await.is_empty());

    // Dequeued SETs are gone; the others keep their order.
    assert_eq!(
        store
            .ssf_dequeue(pool.id, "s1", &["a".into(), "zz".into()])
            .await
            .unwrap(),
        1
    );
    assert_eq!(jtis(db, pool.id, "s1").await, ["b", "v"]);

    // Disabling discards the queue.
    let mut disabled = store.ssf_stream(pool.id, "s1").await.unwrap().unwrap();
    disabled.status = StreamStatus::Disabled;
    assert!(store.ssf_update_stream(&disabled).await.unwrap());
    assert!(jtis(db, pool.id, "s1").await.is_empty());

    // One push lease at a time, until released or expired.
    let later = T0.plus_secs(60);
    assert!(
        store
            .ssf_take_lease(pool.id, "s1", "one", T0, later)
            .await
            .unwrap()
    );
    assert!(
        !store
            .ssf_take_lease(pool.id, "s1", "two", T0, later)
            .await
            .unwrap()
    );
    assert!(
        store
            .ssf_take_lease(pool.id, "s1", "one", T0, later)
            .await
            .unwrap()
    );
    assert!(
        store
            .ssf_take_lease(pool.id, "s1", "two", T0.plus_secs(61), later.plus_secs(61))
            .await
            .unwrap()
    );
    store.ssf_release_lease(pool.id, "s1", "two").await.unwrap();
    assert!(
        store
            .ssf_take_lease(pool.id, "s1", "one", T0, later)
            .await
            .unwrap()
    );

    // Verification requests: a compare-and-set on the last one.
    assert!(
        store
            .ssf_mark_verification(pool.id, "s1", None, T0)
            .await
            .unwrap()
    );
    assert!(
        !store
            .ssf_mark_verification(pool.id, "s1", None, T0)
            .await
            .unwrap()
    );
    assert!(
        store
            .ssf_mark_verification(pool.id, "s1", Some(T0), later)
            .await
            .unwrap()
    );

    // Subjects, and deletion with everything the stream holds.
    store
        .ssf_exclude_subject(pool.id, "s1", "user:u1", true)
        .await
        .unwrap();
    store
        .ssf_exclude_subject(pool.id, "s1", "user:u1", true)
        .await
        .unwrap();
    assert_eq!(
        store.ssf_excluded_subjects(pool.id, "s1").await.unwrap(),
        ["user:u1"]
    );
    store
        .ssf_exclude_subject(pool.id, "s1", "user:u1", false)
        .await
        .unwrap();
    assert!(
        store
            .ssf_excluded_subjects(pool.id, "s1")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.ssf_delete_stream(pool.id, "s1").await.unwrap());
    assert!(!store.ssf_delete_stream(pool.id, "s1").await.unwrap());
    assert!(store.ssf_stream(other.id, "s1").await.unwrap().is_some());
}
