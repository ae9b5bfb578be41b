use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::PoolId;
use gatehouse_domain::pool::{PoolSettings, SigningAlg, StaffAccess};
use gatehouse_domain::store::{Store, StoreError};
use gatehouse_domain::time::Timestamp;

use crate::fixtures::*;

pub async fn create_and_look_up(db: &Db) {
    let store = &db.store;
    // Hosts come back in the order they were bound: the first one names the issuer.
    let pool = pool_value("acme", &["login.acme.example", "acme.example.com"]);
    let created = event(pool.id, AuditAction::PoolCreated, "acme");
    let keys = [key(pool.id, "k1"), id_key(pool.id, "k2")];
    store.create_pool(&pool, &keys, &created).await.unwrap();

    let expected = pool.clone();
    assert_eq!(
        store.pool_by_slug(&slug("acme")).await.unwrap(),
        Some(expected.clone())
    );
    assert_eq!(
        store
            .pool_by_host(&host("login.acme.example"))
            .await
            .unwrap(),
        Some(expected.clone())
    );
    assert_eq!(store.pool_by_slug(&slug("other")).await.unwrap(), None);
    assert_eq!(
        store.pool_by_host(&host("other.example")).await.unwrap(),
        None
    );
    // Each key comes back with its family.
    assert_eq!(store.signing_keys(pool.id).await.unwrap(), keys);
    assert_written(store, &created).await;

    let staff = new_pool(store, "staff").await;
    let listed = store.list_pools().await.unwrap();
    assert_eq!(listed, vec![expected, staff]);
}

pub async fn slug_is_unique(db: &Db) {
    let store = &db.store;
    new_pool(store, "acme").await;
    let again = pool_value("acme", &[]);
    let ev = event(again.id, AuditAction::PoolCreated, "acme");
    let err = store
        .create_pool(&again, &[key(again.id, "k1")], &ev)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(!was_written(store, &ev).await);
    assert!(store.signing_keys(again.id).await.unwrap().is_empty());
}

pub async fn hosts_conflict_and_are_replaced(db: &Db) {
    let store = &db.store;
    let a = pool_value("a", &["shared.example.com"]);
    store
        .create_pool(
            &a,
            &[key(a.id, "k1")],
            &event(a.id, AuditAction::PoolCreated, "a"),
        )
        .await
        .unwrap();

    // A new pool may not take a host of another.
    let b = pool_value("b", &["b.example.com", "shared.example.com"]);
    let ev = event(b.id, AuditAction::PoolCreated, "b");
    let err = store
        .create_pool(&b, &[key(b.id, "k1")], &ev)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert_eq!(store.pool_by_slug(&slug("b")).await.unwrap(), None);
    assert_eq!(
        store.pool_by_host(&host("b.example.com")).await.unwrap(),
        None
    );

    // Nor bind one later.
    let b = new_pool(store, "b").await;
    let ev = event(b.id, AuditAction::PoolSettingsUpdated, "b");
    let err = store
        .set_pool_hosts(
            b.id,
            &[host("b.example.com"), host("shared.example.com")],
            &ev,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(!was_written(store, &ev).await);
    assert_eq!(
        store.pool_by_host(&host("b.example.com")).await.unwrap(),
        None
    );
    let owner = store
        .pool_by_host(&host("shared.example.com"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(owner.id, a.id);

    // Replacing keeps none of the old hosts; a duplicate in the list is harmless.
    let ev = event(a.id, AuditAction::PoolSettingsUpdated, "a");
    store
        .set_pool_hosts(
            a.id,
            &[
                host("new.example.com"),
                host("two.example.com"),
                host("new.example.com"),
            ],
            &ev,
        )
        .await
        .unwrap();
    assert_written(store, &ev).await;
    assert_eq!(
        store
            .pool_by_host(&host("shared.example.com"))
            .await
            .unwrap(),
        None
    );
    let a_now = store.pool_by_slug(&slug("a")).await.unwrap().unwrap();
    assert_eq!(
        a_now.hosts,
        vec![host("new.example.com"), host("two.example.com")]
    );

    // A new order is an order too, in every way a pool is read.
    store
        .set_pool_hosts(
            a.id,
            &[host("two.example.com"), host("new.example.com")],
            &event(a.id, AuditAction::PoolSettingsUpdated, "a"),
        )
        .await
        .unwrap();
    let reordered = vec![host("two.example.com"), host("new.example.com")];
    assert_eq!(
        store.pool_by_slug(&slug("a")).await.unwrap().unwrap().hosts,
        reordered
    );
    let by_host = store.pool_by_host(&host("new.example.com")).await.unwrap();
    assert_eq!(by_host.unwrap().hosts, reordered);
    let listed = store.list_pools().await.unwrap();
    let listed_a = listed.iter().find(|p| p.id == a.id).unwrap();
    assert_eq!(listed_a.hosts, reordered);

    // The freed host can now go to b.
    store
        .set_pool_hosts(
            b.id,
            &[host("shared.example.com")],
            &event(b.id, AuditAction::PoolSettingsUpdated, "b"),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .pool_by_host(&host("shared.example.com"))
            .await
            .unwrap()
            .unwrap()
            .id,
        b.id
    );

    let missing = PoolId::new_random();
    let err = store
        .set_pool_hosts(
            missing,
            &[],
            &event(missing, AuditAction::PoolSettingsUpdated, "x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

pub async fn settings_update(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let mut settings = PoolSettings {
        access_token_ttl_secs: 600,
        staff_access: StaffAccess::Denied,
        signing_alg: SigningAlg::EdDSA,
        ..PoolSettings::default()
    };
    settings.password_policy.minimum_length = 12;
    settings.password_policy.require_symbols = true;
    settings.invitation_messages.email_subject = "Welcome — «bienvenue»".to_owned();
    let ev = event(pool.id, AuditAction::PoolSettingsUpdated, "acme");
    save_settings(store, pool.id, &settings, &ev).await.unwrap();
    assert_written(store, &ev).await;
    let read = store.pool_by_slug(&slug("acme")).await.unwrap().unwrap();
    assert_eq!(read.settings, settings);

    let missing = PoolId::new_random();
    let ev = event(missing, AuditAction::PoolSettingsUpdated, "x");
    let err = save_settings(store, missing, &settings, &ev)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert!(!was_written(store, &ev).await);
}

/// Connecting again to a migrated database changes nothing and sees the data.
pub async fn reconnect_keeps_data(db: &Db) {
    new_pool(&db.store, "acme").await;
    let again = gatehouse_store::SqlStore::connect(&db.url).await.unwrap();
    again.ping().await.unwrap();
    assert!(again.pool_by_slug(&slug("acme")).await.unwrap().is_some());
    assert_eq!(again.dialect(), db.store.dialect());
    again.close().await;
}

/// Replacements of one pool's hosts racing each other end as exactly one of them: never a
/// merge of two lists, which would leave two hosts claiming to name the issuer.
pub async fn racing_host_replacements_do_not_merge(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    for round in 0..3 {
        let lists: Vec<Vec<gatehouse_domain::pool::HostName>> = (0..8)
            .map(|i| {
                vec![
                    host(&format!("r{round}-w{i}-a.example.com")),
                    host(&format!("r{round}-w{i}-b.example.com")),
                ]
            })
            .collect();
        let mut tasks = Vec::new();
        for list in lists.clone() {
            let store = store.clone();
            let id = pool.id;
            tasks.push(tokio::spawn(async move {
                store
                    .set_pool_hosts(id, &list, &event(id, AuditAction::PoolHostsChanged, "acme"))
                    .await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let now = store.pool_by_slug(&slug("acme")).await.unwrap().unwrap();
        assert!(lists.contains(&now.hosts), "round {round}: {:?}", now.hosts);
    }
}

/// A rotation reads the keys and replaces them in one transaction: what it writes is kept
/// with each key's state and the time it took it; racing rotations run one after the other,
/// each from what the one before left.
pub async fn signing_keys_are_replaced_in_a_transaction(db: &Db) {
    use gatehouse_domain::store::{KeyState, SigningKeyRecord};
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let mut tasks = Vec::new();
    for i in 0..6 {
        let store = store.clone();
        let id = pool.id;
        tasks.push(tokio::spawn(async move {
            let mut w = store.write(id).await.unwrap();
            let mut keys: Vec<SigningKeyRecord> = w.signing_keys().await.unwrap();
            for k in &mut keys {
                k.state = KeyState::Previous;
                k.state_since = Timestamp(T0.as_secs() + i);
            }
            let mut fresh = key(id, &format!("r{i}"));
            fresh.state_since = Timestamp(T0.as_secs() + i);
            keys.push(fresh);
            w.replace_signing_keys(&keys).await.unwrap();
            w.commit().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let keys = store.signing_keys(pool.id).await.unwrap();
    // Every rotation saw every one before it: none of their keys was lost.
    assert_eq!(keys.len(), 7, "{keys:?}");
    assert_eq!(
        keys.iter().filter(|k| k.state == KeyState::Current).count(),
        1
    );

    // A transaction that is not committed changes nothing.
    let mut w = store.write(pool.id).await.unwrap();
    w.replace_signing_keys(&[]).await.unwrap();
    drop(w);
    assert_eq!(store.signing_keys(pool.id).await.unwrap(), keys);

    // A key of another pool is refused.
    let other = new_pool(store, "other").await;
    let mut w = store.write(pool.id).await.unwrap();
    assert!(w.replace_signing_keys(&[key(other.id, "x")]).await.is_err());
}

/// Deleting a pool deletes what is in it, and nothing of another pool; its deletion is
/// recorded where the event says.
pub async fn deleting_a_pool_deletes_what_it_holds(db: &Db) {
    let store = &db.store;
    let acme = new_pool(store, "acme").await;
    let other = new_pool(store, "other").await;
    for pool in [&acme, &other] {
        let user = new_user(store, pool.id, "ada").await;
        new_group(store, pool.id, "ops").await;
        new_client(store, pool.id, "app").await;
        let mut w = store.write(pool.id).await.unwrap();
        w.create_session(&sign_in(&user, Timestamp(T0.as_secs() + 3600)))
            .await
            .unwrap();
        w.commit().await.unwrap();
    }
    let deleted = event(other.id, AuditAction::PoolDeleted, "acme");
    store.delete_pool(acme.id, &deleted).await.unwrap();
    assert_written(store, &deleted).await;

    assert_eq!(store.pool_by_slug(&slug("acme")).await.unwrap(), None);
    assert!(store.signing_keys(acme.id).await.unwrap().is_empty());
    assert_eq!(
        store
            .user_by_username(acme.id, &uname("ada"))
            .await
            .unwrap(),
        None
    );
    assert!(store.list_clients(acme.id).await.unwrap().is_empty());
    // The other pool is whole.
    assert!(
        store
            .user_by_username(other.id, &uname("ada"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(store.list_clients(other.id).await.unwrap().len(), 1);
    assert_eq!(store.signing_keys(other.id).await.unwrap().len(), 1);

    // Deleting it again: not found.
    let again = store
        .delete_pool(acme.id, &event(other.id, AuditAction::PoolDeleted, "acme"))
        .await
        .unwrap_err();
    assert!(matches!(again, StoreError::NotFound), "{again:?}");
}

/// Keys keep their family through a replacement, and a family has at most one current key:
/// a write that would leave two is refused and changes nothing.
pub async fn key_families_round_trip_with_one_current_key_each(db: &Db) {
    use gatehouse_domain::store::{KeyPurpose, KeyState};
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let mut previous_id = id_key(pool.id, "i0");
    previous_id.state = KeyState::Previous;
    let mut keys = store.signing_keys(pool.id).await.unwrap();
    keys.extend([previous_id, id_key(pool.id, "i1")]);
    // The store's order: oldest first, then by key id.
    keys.sort_by(|a, b| a.kid.cmp(&b.kid));
    let mut w = store.write(pool.id).await.unwrap();
    w.replace_signing_keys(&keys).await.unwrap();
    w.commit().await.unwrap();
    let stored = store.signing_keys(pool.id).await.unwrap();
    assert_eq!(stored, keys);
    let families: Vec<(&str, KeyPurpose, KeyState)> = stored
        .iter()
        .map(|k| (k.kid.as_str(), k.purpose, k.state))
        .collect();
    assert_eq!(
        families,
        [
            ("i0", KeyPurpose::IdToken, KeyState::Previous),
            ("i1", KeyPurpose::IdToken, KeyState::Current),
            ("k1", KeyPurpose::Access, KeyState::Current),
        ]
    );

    // A second current ID-token key is refused; so is a second current access key.
    for extra in [id_key(pool.id, "i2"), key(pool.id, "k2")] {
        let mut w = store.write(pool.id).await.unwrap();
        let mut more = w.signing_keys().await.unwrap();
        more.push(extra);
        assert!(w.replace_signing_keys(&more).await.is_err());
        drop(w);
        assert_eq!(store.signing_keys(pool.id).await.unwrap(), keys);
    }
}

/// Instances that find a pool without an ID-token key race to give it one: each reads the
/// keys under the pool's lock in the transaction that would add it, so exactly one adds it.
pub async fn racing_backfills_add_one_id_token_key(db: &Db) {
    use gatehouse_domain::rotation::lacks_current;
    use gatehouse_domain::store::KeyPurpose;
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let before = store.signing_keys(pool.id).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = store.clone();
        let id = pool.id;
        tasks.push(tokio::spawn(async move {
            let mut w = store.write(id).await.unwrap();
            let mut keys = w.signing_keys().await.unwrap();
            if !lacks_current(&keys, KeyPurpose::IdToken) {
                return false;
            }
            keys.push(id_key(id, &format!("i{i}")));
            w.replace_signing_keys(&keys).await.unwrap();
            w.audit(&event(id, AuditAction::SigningKeyCreated, "acme"))
                .await
                .unwrap();
            w.commit().await.unwrap();
            true
        }));
    }
    let mut added = 0;
    for t in tasks {
        added += usize::from(t.await.unwrap());
    }
    assert_eq!(added, 1);
    let after = store.signing_keys(pool.id).await.unwrap();
    let id_keys: Vec<_> = after
        .iter()
        .filter(|k| k.purpose == KeyPurpose::IdToken)
        .collect();
    assert_eq!(id_keys.len(), 1, "{after:?}");
    // The access key is as it was.
    assert_eq!(
        after
            .iter()
            .filter(|k| k.purpose == KeyPurpose::Access)
            .cloned()
            .collect::<Vec<_>>(),
        before
    );
}
