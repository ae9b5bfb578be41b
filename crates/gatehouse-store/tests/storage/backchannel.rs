//! Back-channel logout's storage: each pool's cursor in its event log, and deliveries claimed
//! under a lease, so that one instance at a time sends each.

use gatehouse_domain::backchannel::{Delivery, DeliveryState};
use gatehouse_domain::ids::{ClientId, PoolId};
use gatehouse_domain::store::Store;
use gatehouse_domain::time::Timestamp;

use crate::fixtures::*;

fn delivery(pool: PoolId, client: &str, id: &str, due: i64) -> Delivery {
    Delivery {
        pool,
        id: id.to_owned(),
        client_id: ClientId::parse(client).unwrap(),
        event_seq: 1,
        event_id: format!("event-{id}"),
        sub: "user".to_owned(),
        sid: Some("session".to_owned()),
        uri: "https://rp.example/bcl".to_owned(),
        state: DeliveryState::Pending,
        attempts: 0,
        status: None,
        error: None,
        created_at: T0,
        updated_at: T0,
        next_attempt_at: Some(Timestamp(T0.as_secs() + due)),
    }
}

fn ids(found: &[Delivery]) -> Vec<String> {
    let mut ids: Vec<String> = found.iter().map(|d| d.id.clone()).collect();
    ids.sort();
    ids
}

/// The cursor starts at 0, moves only with its transaction's commit, and is the pool's own.
pub async fn cursor_is_per_pool_and_transactional(db: &Db) {
    let store = db.store.clone();
    let pool = new_pool(&store, "acme").await;
    let other = new_pool(&store, "other").await;
    let mut w = store.write(pool.id).await.unwrap();
    assert_eq!(w.backchannel_cursor().await.unwrap(), 0);
    w.set_backchannel_cursor(7).await.unwrap();
    drop(w);
    assert_eq!(store.backchannel_cursor(pool.id).await.unwrap(), 0);
    let mut w = store.write(pool.id).await.unwrap();
    assert_eq!(w.backchannel_cursor().await.unwrap(), 0);
    w.set_backchannel_cursor(7).await.unwrap();
    w.commit().await.unwrap();
    assert_eq!(store.backchannel_cursor(pool.id).await.unwrap(), 7);
    assert_eq!(store.backchannel_cursor(other.id).await.unwrap(), 0);
}

/// Due deliveries are claimed once: a claimed one is leased, no other claim takes it until
/// the lease ends, and only the lease holder records its outcome. Not-yet-due ones wait.
pub async fn deliveries_are_claimed_under_a_lease(db: &Db) {
    let store = db.store.clone();
    let pool = new_pool(&store, "acme").await;
    new_client(&store, pool.id, "rp").await;
    let mut w = store.write(pool.id).await.unwrap();
    w.put_backchannel_deliveries(&[
        delivery(pool.id, "rp", "a", 0),
        delivery(pool.id, "rp", "b", 0),
        delivery(pool.id, "rp", "c", 0),
        delivery(pool.id, "rp", "later", 60),
    ])
    .await
    .unwrap();
    w.commit().await.unwrap();
    assert!(store.backchannel_due(pool.id, T0).await.unwrap());

    let lease_until = Timestamp(T0.as_secs() + 30);
    let mut first = store.write(pool.id).await.unwrap();
    let one = first
        .claim_backchannel_deliveries(T0, "lease-1", lease_until, 2)
        .await
        .unwrap();
    assert_eq!(one.len(), 2);
    if db.store.dialect() == gatehouse_store::Dialect::Postgres {
        // While the first claim is still open, a second skips the rows it locked.
        let mut second = store.write(pool.id).await.unwrap();
        let two = second
            .claim_backchannel_deliveries(T0, "lease-2", lease_until, 10)
            .await
            .unwrap();
        assert_eq!(two.len(), 1);
        assert!(!ids(&one).contains(&two[0].id));
        drop(second);
    }
    first.commit().await.unwrap();
    let mut w = store.write(pool.id).await.unwrap();
    let two = w
        .claim_backchannel_deliveries(T0, "lease-2", lease_until, 10)
        .await
        .unwrap();
    w.commit().await.unwrap();
    assert_eq!(
        two.len(),
        1,
        "the leased ones and the later one are not taken"
    );
    assert!(!ids(&one).contains(&two[0].id));

    // Only the lease holder records the outcome; it ends the lease.
    let mut done = one[0].clone();
    done.state = DeliveryState::Delivered;
    done.attempts = 1;
    done.status = Some(204);
    done.next_attempt_at = None;
    let mut w = store.write(pool.id).await.unwrap();
    assert!(
        !w.finish_backchannel_delivery(&done, "lease-2")
            .await
            .unwrap()
    );
    assert!(
        w.finish_backchannel_delivery(&done, "lease-1")
            .await
            .unwrap()
    );
    assert!(
        !w.finish_backchannel_delivery(&done, "lease-1")
            .await
            .unwrap()
    );
    w.commit().await.unwrap();

    // When its lease has run out, a claimed delivery can be claimed again.
    let after = Timestamp(lease_until.as_secs());
    let mut w = store.write(pool.id).await.unwrap();
    let again = w
        .claim_backchannel_deliveries(after, "lease-3", Timestamp(after.as_secs() + 30), 10)
        .await
        .unwrap();
    w.commit().await.unwrap();
    assert_eq!(ids(&again), vec![one[1].id.clone(), two[0].id.clone()]);

    let listed = store
        .backchannel_deliveries(pool.id, &ClientId::parse("rp").unwrap(), 10)
        .await
        .unwrap();
    assert_eq!(listed.len(), 4);
    let delivered = listed.iter().find(|d| d.id == done.id).unwrap();
    assert_eq!(delivered.state, DeliveryState::Delivered);
    assert_eq!(delivered.status, Some(204));
    assert_eq!(delivered.next_attempt_at, None);
    // Another pool sees none of them.
    let other = new_pool(&store, "other").await;
    assert!(!store.backchannel_due(other.id, after).await.unwrap());
}
