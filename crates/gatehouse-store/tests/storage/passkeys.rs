//! Passkeys: one credential id per pool, counters moved by compare-and-set, gone with their
//! user and with `disable-mfa`; ceremonies taken once, refused once expired, purged.

use gatehouse_domain::passkey::{Ceremony, CeremonyPurpose, PasskeyCredential, PasskeyUse};
use gatehouse_domain::store::{Store, StoreError};
use gatehouse_domain::time::Timestamp;

use crate::fixtures::*;

const T0: Timestamp = Timestamp(1_700_000_000);

fn passkey(user: &gatehouse_domain::user::User, id: &str, at: Timestamp) -> PasskeyCredential {
    PasskeyCredential {
        pool: user.pool,
        user_id: user.id,
        credential_id: id.to_owned(),
        passkey: format!("{{\"cred\":\"{id}\"}}"),
        sign_count: 1,
        backup_eligible: true,
        backup_state: false,
        name: format!("key {id}"),
        created_at: at,
        last_used_at: None,
    }
}

pub async fn credentials_round_trip_and_count_once(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let other_pool = new_pool(store, "other").await;
    let alice = new_user(store, pool.id, "alice").await;
    let bob = new_user(store, pool.id, "bob").await;
    let carol = new_user(store, other_pool.id, "carol").await;

    let mut w = store.write(pool.id).await.unwrap();
    let first = passkey(&alice, "AAAA", T0);
    let second = passkey(&alice, "BBBB", T0.plus_secs(1));
    w.add_passkey(&first).await.unwrap();
    w.add_passkey(&second).await.unwrap();
    w.commit().await.unwrap();

    // One authenticator's credential belongs to one user of a pool.
    let mut w = store.write(pool.id).await.unwrap();
    let stolen = passkey(&bob, "AAAA", T0);
    assert!(matches!(
        w.add_passkey(&stolen).await,
        Err(StoreError::Conflict(_))
    ));
    drop(w);
    // Another pool's user may hold the same id: pools are apart.
    let mut w = store.write(other_pool.id).await.unwrap();
    w.add_passkey(&passkey(&carol, "AAAA", T0)).await.unwrap();
    w.commit().await.unwrap();

    let mut w = store.write(pool.id).await.unwrap();
    assert_eq!(
        w.passkeys_of_user(alice.id).await.unwrap(),
        vec![first.clone(), second.clone()]
    );
    assert!(w.passkeys_of_user(bob.id).await.unwrap().is_empty());
    assert_eq!(w.passkey("AAAA").await.unwrap(), Some(first.clone()));
    assert_eq!(w.passkey("CCCC").await.unwrap(), None);

    // A use passes only against the counter it was checked with.
    let used = PasskeyUse {
        credential_id: "AAAA".to_owned(),
        expected_sign_count: 1,
        sign_count: 2,
        backup_state: true,
        backup_eligible: true,
        passkey: "{\"cred\":\"AAAA\",\"counter\":2}".to_owned(),
        at: T0.plus_secs(10),
    };
    assert!(w.record_passkey_use(&used).await.unwrap());
    assert!(!w.record_passkey_use(&used).await.unwrap());
    let now = w.passkey("AAAA").await.unwrap().unwrap();
    assert_eq!(now.sign_count, 2);
    assert!(now.backup_state);
    assert_eq!(now.last_used_at, Some(T0.plus_secs(10)));
    assert_eq!(now.passkey, used.passkey);
    w.commit().await.unwrap();

    // Deleting names the owner: bob cannot delete alice's.
    let mut w = store.write(pool.id).await.unwrap();
    assert!(!w.delete_passkey(bob.id, "BBBB").await.unwrap());
    assert!(w.delete_passkey(alice.id, "BBBB").await.unwrap());
    assert!(!w.delete_passkey(alice.id, "BBBB").await.unwrap());
    // Removing the factors removes the passkeys.
    assert!(w.remove_mfa_factors(alice.id).await.unwrap());
    assert!(w.passkeys_of_user(alice.id).await.unwrap().is_empty());
    w.commit().await.unwrap();

    // The other pool's credential stands, and goes with its user.
    let mut w = store.write(other_pool.id).await.unwrap();
    assert_eq!(w.passkeys_of_user(carol.id).await.unwrap().len(), 1);
    w.delete_user(carol.id).await.unwrap();
    assert_eq!(w.passkey("AAAA").await.unwrap(), None);
    w.commit().await.unwrap();
}

pub async fn ceremonies_are_taken_once(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let other_pool = new_pool(store, "other").await;
    let alice = new_user(store, pool.id, "alice").await;
    let ceremony = Ceremony {
        pool: pool.id,
        handle_sha256: [1; 32],
        purpose: CeremonyPurpose::Registration,
        user_id: alice.id,
        state: "{\"rs\":1}".to_owned(),
        expires_at: T0.plus_secs(300),
    };
    let second_factor = Ceremony {
        handle_sha256: [2; 32],
        purpose: CeremonyPurpose::SecondFactor,
        ..ceremony.clone()
    };
    let mut w = store.write(pool.id).await.unwrap();
    w.put_ceremony(&ceremony).await.unwrap();
    w.put_ceremony(&second_factor).await.unwrap();
    w.commit().await.unwrap();

    // Another pool does not find it.
    let mut w = store.write(other_pool.id).await.unwrap();
    assert_eq!(w.take_ceremony(&[1; 32], T0).await.unwrap(), None);
    drop(w);
    // Taken in a transaction that rolls back, it is still there.
    let mut w = store.write(pool.id).await.unwrap();
    assert_eq!(
        w.take_ceremony(&[1; 32], T0).await.unwrap(),
        Some(ceremony.clone())
    );
    drop(w);
    let mut w = store.write(pool.id).await.unwrap();
    assert_eq!(
        w.take_ceremony(&[1; 32], T0).await.unwrap(),
        Some(ceremony.clone())
    );
    assert_eq!(w.take_ceremony(&[1; 32], T0).await.unwrap(), None);
    assert_eq!(
        w.take_ceremony(&[2; 32], T0).await.unwrap(),
        Some(second_factor.clone())
    );
    w.commit().await.unwrap();

    // Expired: refused when taken, and purged otherwise.
    let mut w = store.write(pool.id).await.unwrap();
    w.put_ceremony(&Ceremony {
        handle_sha256: [3; 32],
        ..ceremony.clone()
    })
    .await
    .unwrap();
    w.put_ceremony(&Ceremony {
        handle_sha256: [4; 32],
        ..ceremony.clone()
    })
    .await
    .unwrap();
    w.commit().await.unwrap();
    let mut w = store.write(pool.id).await.unwrap();
    assert_eq!(
        w.take_ceremony(&[3; 32], T0.plus_secs(300)).await.unwrap(),
        None
    );
    w.commit().await.unwrap();
    let counts = store
        .purge_expired(T0.plus_secs(299), &Default::default())
        .await
        .unwrap();
    assert_eq!(counts.webauthn_ceremonies, 0);
    let counts = store
        .purge_expired(T0.plus_secs(301), &Default::default())
        .await
        .unwrap();
    assert_eq!(counts.webauthn_ceremonies, 1);
}
