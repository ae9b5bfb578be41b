use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::ids::{PoolId, UserId};
use gatehouse_domain::store::{SessionFilter, Store, StoreError};
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::user::{
    Address, Enabled, FederatedIdentity, MfaState, PasswordCredential, UserStatus,
    VerifiableAttribute, VerificationCode,
};

use crate::fixtures::*;

pub async fn crud(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let user = user_value(pool.id, "alice");
    let created = event(pool.id, AuditAction::UserCreated, "alice");
    store.create_user(&user, &created).await.unwrap();
    assert_written(store, &created).await;

    assert_eq!(
        store
            .user_by_username(pool.id, &uname("alice"))
            .await
            .unwrap(),
        Some(user.clone())
    );
    assert_eq!(
        store.user_by_id(pool.id, user.id).await.unwrap(),
        Some(user.clone())
    );
    assert_eq!(
        store
            .user_by_username(pool.id, &uname("bob"))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .user_by_id(pool.id, UserId::new_random())
            .await
            .unwrap(),
        None
    );

    // Every mutable field changes, including to and from NULL.
    let mut changed = user.clone();
    changed.username = uname("alice.renamed");
    changed.enabled = Enabled::No;
    changed.status = UserStatus::ForceChangePassword;
    changed.attributes.name = "Alice Ünïcode 😀".to_owned();
    changed.attributes.roles = vec![role("admin"), role("user:Impersonate")];
    changed.attributes.zoneinfo = None;
    changed.attributes.email_verified = Some(true);
    changed.attributes.address = Some(Address {
        locality: Some("Lyon".to_owned()),
        ..Address::default()
    });
    changed.contact_id = Some("contact-9".to_owned());
    changed.password = Some(PasswordCredential {
        phc: "$argon2id$v=19$m=19456,t=2,p=1$bmV3$bmV3".to_owned(),
        temporary_until: Some(Timestamp(T0.0 + 7 * 86_400)),
    });
    changed.tokens_not_before = Some(Timestamp(T0.0 + 5));
    changed.mfa = MfaState::NONE.with_software_token();
    changed.updated_at = Timestamp(T0.0 + 10);
    let updated = event(pool.id, AuditAction::UserUpdated, "alice");
    save_user(store, &changed, &updated).await.unwrap();
    assert_written(store, &updated).await;
    assert_eq!(
        store.user_by_id(pool.id, user.id).await.unwrap(),
        Some(changed.clone())
    );
    assert_eq!(
        store
            .user_by_username(pool.id, &uname("alice"))
            .await
            .unwrap(),
        None
    );

    let mut cleared = changed.clone();
    cleared.password = None;
    cleared.contact_id = None;
    cleared.tokens_not_before = None;
    save_user(
        store,
        &cleared,
        &event(pool.id, AuditAction::UserUpdated, "alice"),
    )
    .await
    .unwrap();
    assert_eq!(
        store.user_by_id(pool.id, user.id).await.unwrap(),
        Some(cleared)
    );

    let deleted = event(pool.id, AuditAction::UserDeleted, "alice");
    store.delete_user(pool.id, user.id, &deleted).await.unwrap();
    assert_written(store, &deleted).await;
    assert_eq!(store.user_by_id(pool.id, user.id).await.unwrap(), None);

    let again = event(pool.id, AuditAction::UserDeleted, "alice");
    let err = store
        .delete_user(pool.id, user.id, &again)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert!(!was_written(store, &again).await);

    let ghost = user_value(pool.id, "ghost");
    let ev = event(pool.id, AuditAction::UserUpdated, "ghost");
    let err = save_user(store, &ghost, &ev).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert!(!was_written(store, &ev).await);
}

pub async fn username_unique_per_pool(db: &Db) {
    let store = &db.store;
    let a = new_pool(store, "a").await;
    let b = new_pool(store, "b").await;
    new_user(store, a.id, "alice").await;

    let dup = user_value(a.id, "alice");
    let ev = event(a.id, AuditAction::UserCreated, "alice");
    let err = store.create_user(&dup, &ev).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    // The failed mutation wrote no audit row.
    assert!(!was_written(store, &ev).await);
    assert_eq!(store.user_by_id(a.id, dup.id).await.unwrap(), None);

    // The same username in another pool is another user.
    let in_b = new_user(store, b.id, "alice").await;
    assert_eq!(
        store.user_by_username(b.id, &uname("alice")).await.unwrap(),
        Some(in_b)
    );

    // Renaming onto a taken username is a conflict too.
    let mut bob = new_user(store, a.id, "bob").await;
    bob.username = uname("alice");
    let ev = event(a.id, AuditAction::UserUpdated, "bob");
    let err = save_user(store, &bob, &ev).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(!was_written(store, &ev).await);
    assert!(
        store
            .user_by_username(a.id, &uname("bob"))
            .await
            .unwrap()
            .is_some()
    );

    // Usernames are compared exactly: case makes another name.
    new_user(store, a.id, "Alice").await;

    // A user of a pool that does not exist cannot be created.
    let missing = PoolId::new_random();
    let err = store
        .create_user(
            &user_value(missing, "x"),
            &event(missing, AuditAction::UserCreated, "x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

/// Usernames that sort differently under a linguistic collation than under byte order.
const NAMES: &[&str] = &[
    "zoe", "Zed", "alice", "Alice", "bob", "_under", "a-b", "a.b", "a_b", "0001", "10", "9",
    "Émile", "emile", "ñandu", "nora", "~tilde", "ZZ", "a", "ab", "abc", "b", "ß", "日本", "😀",
];

pub async fn list_pages_in_byte_order(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let other = new_pool(store, "other").await;
    for name in NAMES {
        new_user(store, pool.id, name).await;
    }
    new_user(store, other.id, "in-other-pool").await;

    let mut expected: Vec<String> = NAMES.iter().map(|s| (*s).to_owned()).collect();
    expected.sort();

    let mut seen = Vec::new();
    let mut after = None;
    let mut pages = 0;
    loop {
        let page = store.list_users(pool.id, after.as_ref(), 4).await.unwrap();
        assert!(page.len() <= 4);
        pages += 1;
        let Some(last) = page.last() else { break };
        after = Some(last.username.clone());
        seen.extend(page.iter().map(|u| u.username.as_str().to_owned()));
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, NAMES.len().div_ceil(4) + 1);

    let all = store.list_users(pool.id, None, 1000).await.unwrap();
    assert_eq!(all.len(), NAMES.len());
    assert!(store.list_users(pool.id, None, 0).await.unwrap().is_empty());
    let tail = store
        .list_users(pool.id, Some(&uname("zoe")), 10)
        .await
        .unwrap();
    let tail: Vec<&str> = tail.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(tail, vec!["~tilde", "Émile", "ß", "ñandu", "日本", "😀"]);
    let from_zoe: Vec<&str> = expected
        .iter()
        .map(String::as_str)
        .skip_while(|n| *n != "zoe")
        .skip(1)
        .collect();
    assert_eq!(tail, from_zoe);
}

pub async fn identity_links(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let alice = new_user(store, pool.id, "alice").await;
    let bob = new_user(store, pool.id, "bob").await;

    let link = FederatedIdentity {
        pool: pool.id,
        provider_name: "Google".to_owned(),
        provider_user_id: "1234567890".to_owned(),
        user_id: alice.id,
        created_at: T0,
    };
    let ev = event(pool.id, AuditAction::UserLinkedToProvider, "alice");
    store.link_identity(&link, &ev).await.unwrap();
    assert_written(store, &ev).await;
    let saml = FederatedIdentity {
        provider_name: "Okta".to_owned(),
        provider_user_id: "alice@corp".to_owned(),
        ..link.clone()
    };
    store
        .link_identity(
            &saml,
            &event(pool.id, AuditAction::UserLinkedToProvider, "alice"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.identities_of_user(pool.id, alice.id).await.unwrap(),
        vec![link.clone(), saml]
    );

    // One upstream identity links to one user.
    let stolen = FederatedIdentity {
        user_id: bob.id,
        ..link.clone()
    };
    let ev = event(pool.id, AuditAction::UserLinkedToProvider, "bob");
    let err = store.link_identity(&stolen, &ev).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(!was_written(store, &ev).await);
    assert!(
        store
            .identities_of_user(pool.id, bob.id)
            .await
            .unwrap()
            .is_empty()
    );

    let ghost = FederatedIdentity {
        user_id: UserId::new_random(),
        provider_user_id: "x".to_owned(),
        ..link
    };
    let err = store
        .link_identity(
            &ghost,
            &event(pool.id, AuditAction::UserLinkedToProvider, "x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

pub async fn verification_codes(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let alice = new_user(store, pool.id, "alice").await;
    let code = |digest: u8, attribute| VerificationCode {
        pool: pool.id,
        user_id: alice.id,
        attribute,
        code_sha256: [digest; 32],
        expires_at: Timestamp(T0.0 + 600 + i64::from(digest)),
        // Every column comes back as stored.
        attempts: u32::from(digest),
        destination: format!("to-{digest}"),
        sealed_code: digest.is_multiple_of(2).then(|| vec![digest; 40]),
    };
    store
        .put_verification_code(&code(1, VerifiableAttribute::Email))
        .await
        .unwrap();
    store
        .put_verification_code(&code(2, VerifiableAttribute::Email))
        .await
        .unwrap();
    store
        .put_verification_code(&code(3, VerifiableAttribute::Phone))
        .await
        .unwrap();

    let take = |attribute| store.take_verification_code(pool.id, alice.id, attribute);
    assert_eq!(
        take(VerifiableAttribute::Email).await.unwrap(),
        Some(code(2, VerifiableAttribute::Email))
    );
    assert_eq!(take(VerifiableAttribute::Email).await.unwrap(), None);
    assert_eq!(
        take(VerifiableAttribute::Phone).await.unwrap(),
        Some(code(3, VerifiableAttribute::Phone))
    );
    assert_eq!(take(VerifiableAttribute::Phone).await.unwrap(), None);

    let other = new_pool(store, "other").await;
    store
        .put_verification_code(&code(4, VerifiableAttribute::Email))
        .await
        .unwrap();
    assert_eq!(
        store
            .take_verification_code(other.id, alice.id, VerifiableAttribute::Email)
            .await
            .unwrap(),
        None
    );

    let ghost = VerificationCode {
        user_id: UserId::new_random(),
        ..code(5, VerifiableAttribute::Email)
    };
    let err = store.put_verification_code(&ghost).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
}

pub async fn delete_removes_what_belongs_to_the_user(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let alice = new_user(store, pool.id, "alice").await;
    let bob = new_user(store, pool.id, "bob").await;
    new_group(store, pool.id, "staff").await;
    for user in [&alice, &bob] {
        store
            .set_user_groups(
                pool.id,
                user.id,
                &[gname("staff")],
                &event(pool.id, AuditAction::UserGroupsUpdated, "x"),
            )
            .await
            .unwrap();
    }
    let link = FederatedIdentity {
        pool: pool.id,
        provider_name: "Google".to_owned(),
        provider_user_id: "g-1".to_owned(),
        user_id: alice.id,
        created_at: T0,
    };
    store
        .link_identity(
            &link,
            &event(pool.id, AuditAction::UserLinkedToProvider, "alice"),
        )
        .await
        .unwrap();
    let session = sign_in(&alice, Timestamp(T0.0 + 3600));
    store
        .create_session(
            &session,
            &event(pool.id, AuditAction::UserSignedIn, "alice"),
        )
        .await
        .unwrap();
    let code = VerificationCode {
        pool: pool.id,
        user_id: alice.id,
        attribute: VerifiableAttribute::Email,
        code_sha256: [9; 32],
        expires_at: Timestamp(T0.0 + 600),
        attempts: 0,
        destination: "alice@example.com".to_owned(),
        sealed_code: None,
    };
    store.put_verification_code(&code).await.unwrap();

    store
        .delete_user(
            pool.id,
            alice.id,
            &event(pool.id, AuditAction::UserDeleted, "alice"),
        )
        .await
        .unwrap();

    let members = store
        .users_in_group(pool.id, &gname("staff"), None, 10)
        .await
        .unwrap();
    assert_eq!(members, vec![bob.clone()]);
    assert!(
        store
            .groups_of_user(pool.id, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .identities_of_user(pool.id, alice.id)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store.session(pool.id, session.id).await.unwrap(), None);
    assert!(
        store
            .list_sessions(pool.id, SessionFilter::ActiveOfUser(alice.id, T0))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .take_verification_code(pool.id, alice.id, VerifiableAttribute::Email)
            .await
            .unwrap(),
        None
    );
    // The upstream identity is free again.
    let relinked = FederatedIdentity {
        user_id: bob.id,
        ..link
    };
    store
        .link_identity(
            &relinked,
            &event(pool.id, AuditAction::UserLinkedToProvider, "bob"),
        )
        .await
        .unwrap();
    assert_eq!(
        store.identities_of_user(pool.id, bob.id).await.unwrap(),
        vec![relinked]
    );
}

/// Writers that run at once all succeed (SQLite serialises them, PostgreSQL runs them).
pub async fn concurrent_writers(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    new_group(store, pool.id, "g1").await;
    new_group(store, pool.id, "g2").await;
    let mut tasks = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        let pool_id = pool.id;
        tasks.push(tokio::spawn(async move {
            let user = new_user(&store, pool_id, &format!("user-{i:02}")).await;
            let groups = if i % 2 == 0 {
                vec![gname("g1")]
            } else {
                vec![gname("g1"), gname("g2")]
            };
            store
                .set_user_groups(
                    pool_id,
                    user.id,
                    &groups,
                    &event(pool_id, AuditAction::UserGroupsUpdated, "x"),
                )
                .await
                .unwrap();
            let mut changed = user.clone();
            changed.status = UserStatus::Archived;
            save_user(
                &store,
                &changed,
                &event(pool_id, AuditAction::UserUpdated, "x"),
            )
            .await
            .unwrap();
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        store.list_users(pool.id, None, 100).await.unwrap().len(),
        24
    );
    assert_eq!(
        store
            .users_in_group(pool.id, &gname("g1"), None, 100)
            .await
            .unwrap()
            .len(),
        24
    );
    assert_eq!(
        store
            .users_in_group(pool.id, &gname("g2"), None, 100)
            .await
            .unwrap()
            .len(),
        12
    );
    // One creation, one membership change and one update each, plus the pool and the groups.
    assert_eq!(all_events(store, pool.id).await.len(), 24 * 3 + 3);
}

/// Failed sign-ins racing on one username all count, the lock falls on the one that reached
/// the lock count, and a quiet hour or a clear starts over.
pub async fn sign_in_failures_count_every_racer(db: &Db) {
    use gatehouse_domain::lockout::LockoutPolicy;
    let store = db.store.clone();
    let pool = new_pool(&store, "acme").await;
    let policy = LockoutPolicy::default();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .record_sign_in_failure(pool.id, &uname("alice"), T0, &policy)
                .await
                .unwrap()
        }));
    }
    let mut counts = Vec::new();
    for t in tasks {
        let f = t.await.unwrap();
        assert_eq!(f.locked_until.is_some(), f.count >= policy.lock_at);
        counts.push(f.count);
    }
    counts.sort_unstable();
    assert_eq!(counts, (1..=16).collect::<Vec<_>>());
    let now = store
        .sign_in_failures(pool.id, &uname("alice"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.count, 16);
    assert_eq!(now.locked_until, Some(T0.plus_secs(policy.lock_secs)));
    // Other usernames and pools are apart.
    assert!(
        store
            .sign_in_failures(pool.id, &uname("bob"))
            .await
            .unwrap()
            .is_none()
    );
    // After a quiet hour the next failure starts a new run, unlocked.
    let later = T0.plus_secs(policy.reset_after_secs + 1);
    let fresh = store
        .record_sign_in_failure(pool.id, &uname("alice"), later, &policy)
        .await
        .unwrap();
    assert_eq!((fresh.count, fresh.locked_until), (1, None));
    store
        .clear_sign_in_failures(pool.id, &uname("alice"))
        .await
        .unwrap();
    assert!(
        store
            .sign_in_failures(pool.id, &uname("alice"))
            .await
            .unwrap()
            .is_none()
    );
}
