use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::UserId;
use gatehouse_domain::store::{Store, StoreError};

use crate::fixtures::*;

pub async fn crud(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let group = group_value(pool.id, "Claims Team");
    let created = event(pool.id, AuditAction::GroupCreated, "Claims Team");
    store.create_group(&group, &created).await.unwrap();
    assert_written(store, &created).await;
    assert_eq!(
        store.group(pool.id, &gname("Claims Team")).await.unwrap(),
        Some(group.clone())
    );
    assert_eq!(
        store.group(pool.id, &gname("claims team")).await.unwrap(),
        None
    );

    let dup = event(pool.id, AuditAction::GroupCreated, "Claims Team");
    let err = store.create_group(&group, &dup).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(!was_written(store, &dup).await);

    let mut changed = group.clone();
    changed.description = "Handles claims".to_owned();
    changed.roles = vec![role("support"), role("user:CreateUser")];
    let updated = event(pool.id, AuditAction::GroupUpdated, "Claims Team");
    save_group(store, &changed, &updated).await.unwrap();
    assert_written(store, &updated).await;
    assert_eq!(
        store.group(pool.id, &gname("Claims Team")).await.unwrap(),
        Some(changed)
    );

    let ghost = group_value(pool.id, "ghost");
    let err = save_group(
        store,
        &ghost,
        &event(pool.id, AuditAction::GroupUpdated, "ghost"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");

    let deleted = event(pool.id, AuditAction::GroupDeleted, "Claims Team");
    store
        .delete_group(pool.id, &gname("Claims Team"), &deleted)
        .await
        .unwrap();
    assert_written(store, &deleted).await;
    assert_eq!(
        store.group(pool.id, &gname("Claims Team")).await.unwrap(),
        None
    );
    let again = event(pool.id, AuditAction::GroupDeleted, "Claims Team");
    let err = store
        .delete_group(pool.id, &gname("Claims Team"), &again)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert!(!was_written(store, &again).await);
}

pub async fn list_pages(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let names = ["beta", "Alpha", "alpha", "gamma", "Zeta team", "émigrés"];
    for name in names {
        new_group(store, pool.id, name).await;
    }
    let mut expected: Vec<String> = names.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store.list_groups(pool.id, after.as_ref(), 4).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.name.clone());
        seen.extend(page.iter().map(|g| g.name.as_str().to_owned()));
    }
    assert_eq!(seen, expected);
}

pub async fn memberships(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let alice = new_user(store, pool.id, "alice").await;
    let bob = new_user(store, pool.id, "bob").await;
    let carol = new_user(store, pool.id, "carol").await;
    let admins = new_group(store, pool.id, "admins").await;
    let support = new_group(store, pool.id, "support").await;
    let sales = new_group(store, pool.id, "sales").await;

    let ev = event(pool.id, AuditAction::UserGroupsUpdated, "alice");
    store
        .set_user_groups(
            pool.id,
            alice.id,
            &[gname("support"), gname("admins"), gname("support")],
            &ev,
        )
        .await
        .unwrap();
    assert_written(store, &ev).await;
    assert_eq!(
        store.groups_of_user(pool.id, alice.id).await.unwrap(),
        vec![admins.clone(), support.clone()]
    );

    // Replace semantics: the new list is the whole truth.
    store
        .set_user_groups(
            pool.id,
            alice.id,
            &[gname("sales"), gname("support")],
            &event(pool.id, AuditAction::UserGroupsUpdated, "alice"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.groups_of_user(pool.id, alice.id).await.unwrap(),
        vec![sales.clone(), support.clone()]
    );

    for user in [&carol, &bob] {
        store
            .set_user_groups(
                pool.id,
                user.id,
                &[gname("support")],
                &event(pool.id, AuditAction::UserGroupsUpdated, "x"),
            )
            .await
            .unwrap();
    }
    let first = store
        .users_in_group(pool.id, &gname("support"), None, 2)
        .await
        .unwrap();
    assert_eq!(first, vec![alice.clone(), bob.clone()]);
    let rest = store
        .users_in_group(pool.id, &gname("support"), Some(&bob.username), 2)
        .await
        .unwrap();
    assert_eq!(rest, vec![carol.clone()]);
    assert!(
        store
            .users_in_group(pool.id, &gname("admins"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .users_in_group(pool.id, &gname("nobody"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );

    // An unknown group changes nothing, and records nothing.
    let ev = event(pool.id, AuditAction::UserGroupsUpdated, "alice");
    let err = store
        .set_user_groups(
            pool.id,
            alice.id,
            &[gname("admins"), gname("no-such-group")],
            &ev,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert!(!was_written(store, &ev).await);
    assert_eq!(
        store.groups_of_user(pool.id, alice.id).await.unwrap(),
        vec![sales.clone(), support.clone()]
    );

    // So does an unknown user.
    let ev = event(pool.id, AuditAction::UserGroupsUpdated, "ghost");
    let err = store
        .set_user_groups(pool.id, UserId::new_random(), &[gname("admins")], &ev)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert!(!was_written(store, &ev).await);

    // Emptying the list removes every membership.
    store
        .set_user_groups(
            pool.id,
            bob.id,
            &[],
            &event(pool.id, AuditAction::UserGroupsUpdated, "bob"),
        )
        .await
        .unwrap();
    assert!(
        store
            .groups_of_user(pool.id, bob.id)
            .await
            .unwrap()
            .is_empty()
    );

    // Deleting a group removes its memberships.
    store
        .delete_group(
            pool.id,
            &gname("support"),
            &event(pool.id, AuditAction::GroupDeleted, "support"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.groups_of_user(pool.id, alice.id).await.unwrap(),
        vec![sales]
    );
    assert!(
        store
            .groups_of_user(pool.id, carol.id)
            .await
            .unwrap()
            .is_empty()
    );
}
