//! Write transactions: reads inside them hold until the commit, so racing read-modify-write
//! operations never lose each other's changes; single-use values are used once; ending
//! sessions by actor reaches every pool; nothing is visible before the commit.

use gatehouse_domain::audit::AuditAction;
use gatehouse_domain::session::RevokedToken;
use gatehouse_domain::store::Store;
use gatehouse_domain::time::Timestamp;
use gatehouse_domain::txn::SessionsToEnd;
use gatehouse_domain::user::{Enabled, UserStatus};

use crate::fixtures::*;

/// Two kinds of writers race on one user, each reading and rewriting the whole row inside its
/// transaction: one keeps editing the profile, the other disables the user once. Whatever the
/// interleaving, the final row has the disable and the last profile edit.
pub async fn racing_writers_lose_nothing(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    for round in 0..4 {
        let user = new_user(store, pool.id, &format!("racer-{round}")).await;
        let mut editors = Vec::new();
        for e in 0..6 {
            let store = store.clone();
            let (pool_id, id) = (pool.id, user.id);
            editors.push(tokio::spawn(async move {
                for i in 0..5 {
                    let mut w = store.write(pool_id).await.unwrap();
                    let mut u = w.user_by_id(id).await.unwrap().unwrap();
                    u.attributes.name = format!("editor {e} edit {i}");
                    tokio::task::yield_now().await;
                    w.update_user(&u).await.unwrap();
                    w.audit(&event(pool_id, AuditAction::UserUpdated, "racer"))
                        .await
                        .unwrap();
                    w.commit().await.unwrap();
                }
            }));
        }
        let disabler = {
            let store = store.clone();
            let (pool_id, id) = (pool.id, user.id);
            tokio::spawn(async move {
                let mut w = store.write(pool_id).await.unwrap();
                let mut u = w.user_by_id(id).await.unwrap().unwrap();
                u.enabled = Enabled::No;
                u.status = UserStatus::ResetRequired;
                u.tokens_not_before = Some(Timestamp(1_000));
                tokio::task::yield_now().await;
                w.update_user(&u).await.unwrap();
                w.audit(&event(pool_id, AuditAction::UserDisabled, "racer"))
                    .await
                    .unwrap();
                w.commit().await.unwrap();
            })
        };
        for t in editors {
            t.await.unwrap();
        }
        disabler.await.unwrap();
        let last = store.user_by_id(pool.id, user.id).await.unwrap().unwrap();
        assert_eq!(last.enabled, Enabled::No, "round {round}");
        assert_eq!(last.status, UserStatus::ResetRequired, "round {round}");
        assert_eq!(last.tokens_not_before, Some(Timestamp(1_000)));
        assert!(
            last.attributes.name.ends_with("edit 4"),
            "{}",
            last.attributes.name
        );
    }
}

/// Eight transactions present one challenge at once: exactly one uses it.
pub async fn single_use_values_are_used_once(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        let pool_id = pool.id;
        tasks.push(tokio::spawn(async move {
            let mut w = store.write(pool_id).await.unwrap();
            let first = w
                .use_once("challenge-1", Timestamp(10), Timestamp(1_000))
                .await
                .unwrap();
            w.commit().await.unwrap();
            first
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap());
    }
    assert_eq!(wins, 1);
    assert!(
        store
            .is_token_revoked(pool.id, "challenge-1")
            .await
            .unwrap()
    );

    // A use that is rolled back did not happen.
    let mut w = store.write(pool.id).await.unwrap();
    assert!(
        w.use_once("challenge-2", T0, Timestamp(1_000))
            .await
            .unwrap()
    );
    drop(w);
    let mut w = store.write(pool.id).await.unwrap();
    assert!(
        w.use_once("challenge-2", T0, Timestamp(1_000))
            .await
            .unwrap()
    );
    w.commit().await.unwrap();
}

/// Nothing a transaction writes is seen before its commit, and a dropped one leaves nothing.
pub async fn uncommitted_writes_are_invisible_and_dropped_ones_vanish(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let user = new_user(store, pool.id, "ursula").await;
    let ev = event(pool.id, AuditAction::UserDisabled, "ursula");
    let mut w = store.write(pool.id).await.unwrap();
    let mut u = w.user_by_id(user.id).await.unwrap().unwrap();
    u.enabled = Enabled::No;
    w.update_user(&u).await.unwrap();
    w.audit(&ev).await.unwrap();
    drop(w);
    let now = store.user_by_id(pool.id, user.id).await.unwrap().unwrap();
    assert_eq!(now.enabled, Enabled::Yes);
    assert!(!was_written(store, &ev).await);
}

/// Ending sessions: one, a user's, the staff-started ones of a pool, and an actor's in every
/// pool, with audit events allowed in the pools reached and nowhere else.
pub async fn sessions_end_by_user_by_staff_and_by_actor_across_pools(db: &Db) {
    let store = &db.store;
    let acme = new_pool(store, "acme").await;
    let beta = new_pool(store, "beta").await;
    let gamma = new_pool(store, "gamma").await;
    let alice = new_user(store, acme.id, "alice").await;
    let bob = new_user(store, beta.id, "bob").await;
    let later = Timestamp(T0.as_secs() + 3_600);
    let at = Timestamp(T0.as_secs() + 10);
    let mk = |s| event(acme.id, AuditAction::ImpersonationStarted, s);

    // Staff (the fixture's actor) impersonates in acme and beta; alice also signs in.
    let imp_acme = impersonation(&alice, later);
    let imp_beta = impersonation(&bob, later);
    let own = sign_in(&alice, later);
    for s in [&imp_acme, &own] {
        store.create_session(s, &mk("alice")).await.unwrap();
    }
    store
        .create_session(
            &imp_beta,
            &event(beta.id, AuditAction::ImpersonationStarted, "bob"),
        )
        .await
        .unwrap();

    // Staff-started sessions of acme only.
    let mut w = store.write(acme.id).await.unwrap();
    let ended = w
        .end_sessions(&SessionsToEnd::ActedByStaff, at)
        .await
        .unwrap();
    assert_eq!(
        ended.iter().map(|s| s.id).collect::<Vec<_>>(),
        [imp_acme.id]
    );
    assert_eq!(ended[0].revoked_at, Some(at));
    w.commit().await.unwrap();
    assert!(
        !store
            .session(acme.id, imp_acme.id)
            .await
            .unwrap()
            .unwrap()
            .is_active_at(at)
    );
    assert!(
        store
            .session(acme.id, own.id)
            .await
            .unwrap()
            .unwrap()
            .is_active_at(at)
    );
    assert!(
        store
            .session(beta.id, imp_beta.id)
            .await
            .unwrap()
            .unwrap()
            .is_active_at(at)
    );

    // The actor's sessions in every pool, from a transaction on a third pool; audit events go
    // to the pools reached and not to an unrelated one.
    let actor = admin();
    let mut w = store.write(gamma.id).await.unwrap();
    let ended = w
        .end_sessions(
            &SessionsToEnd::ActedBy {
                pool: actor.pool.clone(),
                actor_id: actor.id.clone(),
            },
            at,
        )
        .await
        .unwrap();
    assert_eq!(
        ended.iter().map(|s| s.id).collect::<Vec<_>>(),
        [imp_beta.id]
    );
    let in_beta = event(beta.id, AuditAction::ImpersonationEnded, "bob");
    w.audit(&in_beta).await.unwrap();
    assert!(w.audit(&mk("not reached")).await.is_err());
    drop(w);
    let mut w = store.write(gamma.id).await.unwrap();
    let again = w
        .end_sessions(
            &SessionsToEnd::ActedBy {
                pool: actor.pool.clone(),
                actor_id: actor.id.clone(),
            },
            at,
        )
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "the dropped transaction ended nothing");
    w.audit(&in_beta).await.unwrap();
    w.commit().await.unwrap();
    assert_written(store, &in_beta).await;

    // A user's sessions; ending them twice ends nothing more.
    let mut w = store.write(acme.id).await.unwrap();
    let ended = w
        .end_sessions(&SessionsToEnd::OfUser(alice.id), at)
        .await
        .unwrap();
    assert_eq!(ended.iter().map(|s| s.id).collect::<Vec<_>>(), [own.id]);
    assert!(
        w.end_sessions(&SessionsToEnd::OfUser(alice.id), at)
            .await
            .unwrap()
            .is_empty()
    );
    w.commit().await.unwrap();
}

/// A reader that follows a pool's revocations by `seq` never misses one: a revocation that
/// starts after another has taken its number waits for it to commit, so the numbers become
/// visible in order, and expired ones are skipped without holding the cursor back.
pub async fn revocations_are_read_in_commit_order(db: &Db) {
    let store = db.store.clone();
    let pool = new_pool(&store, "acme").await;
    let other = new_pool(&store, "other").await;
    let now = Timestamp(T0.0 + 10);
    let revoked = |jti: &str, expires_at: i64| RevokedToken {
        pool: pool.id,
        jti: jti.to_owned(),
        expires_at: Timestamp(expires_at),
        revoked_at: T0,
    };

    // `a` takes its number and stays uncommitted; `b` starts meanwhile.
    let mut first = store.write(pool.id).await.unwrap();
    first
        .revoke_token(&revoked("a", T0.0 + 3600))
        .await
        .unwrap();
    let second = {
        let store = store.clone();
        let b = revoked("b", T0.0 + 3600);
        tokio::spawn(async move {
            let mut w = store.write(b.pool).await.unwrap();
            w.revoke_token(&b).await.unwrap();
            w.commit().await.unwrap();
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(!second.is_finished(), "a second revocation committed first");
    assert!(
        store
            .revocations_after(pool.id, 0, now)
            .await
            .unwrap()
            .is_empty()
    );
    first.commit().await.unwrap();
    second.await.unwrap();

    let seen = store.revocations_after(pool.id, 0, now).await.unwrap();
    let ids: Vec<_> = seen.iter().map(|r| r.jti.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert!(seen[0].seq < seen[1].seq);
    let cursor = seen[1].seq;
    assert!(
        store
            .revocations_after(pool.id, cursor, now)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .revocations_after(other.id, 0, now)
            .await
            .unwrap()
            .is_empty()
    );

    // An expired revocation is not reported, except as the newest, to move the cursor on.
    let mut w = store.write(pool.id).await.unwrap();
    w.revoke_token(&revoked("expired", T0.0)).await.unwrap();
    w.commit().await.unwrap();
    let newer = store.revocations_after(pool.id, cursor, now).await.unwrap();
    assert_eq!(newer.len(), 1);
    assert_eq!(newer[0].jti, "expired");
    let mut w = store.write(pool.id).await.unwrap();
    w.revoke_token(&revoked("c", T0.0 + 3600)).await.unwrap();
    w.commit().await.unwrap();
    let newer = store.revocations_after(pool.id, cursor, now).await.unwrap();
    let ids: Vec<_> = newer.iter().map(|r| r.jti.as_str()).collect();
    assert_eq!(
        ids,
        ["c"],
        "an expired revocation that is not the newest is skipped"
    );

    // Many writers at once: every revocation is seen exactly once by a reader that follows.
    let mut writers = Vec::new();
    for i in 0..24 {
        let store = store.clone();
        let r = revoked(&format!("w{i}"), T0.0 + 3600);
        writers.push(tokio::spawn(async move {
            let mut w = store.write(r.pool).await.unwrap();
            w.revoke_token(&r).await.unwrap();
            w.commit().await.unwrap();
        }));
    }
    let mut cursor = newer[0].seq;
    let mut followed = std::collections::BTreeSet::new();
    loop {
        let done = writers.iter().all(|w| w.is_finished());
        for r in store.revocations_after(pool.id, cursor, now).await.unwrap() {
            assert!(r.seq > cursor);
            cursor = r.seq;
            assert!(followed.insert(r.jti));
        }
        if done {
            break;
        }
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.unwrap();
    }
    assert_eq!(followed.len(), 24, "{followed:?}");
}

/// Impersonations started at once (committed together on SQLite, each in a savepoint): a
/// refusal writes nothing, a failing insert undoes only its own, and everything else commits.
pub async fn concurrent_impersonations_fail_alone(db: &Db) {
    use gatehouse_domain::ids::SessionId;
    use gatehouse_domain::store::{SessionFilter, StoreError};
    use gatehouse_domain::txn::{ImpersonationOutcome, Refusal, Standing};

    let store = db.store.clone();
    let pool = new_pool(&store, "acme").await;
    let alice = new_user(&store, pool.id, "alice").await;
    let later = Timestamp(T0.0 + 3600);
    let taken = impersonation(&alice, later);
    store
        .create_session(
            &taken,
            &event(pool.id, AuditAction::ImpersonationStarted, "alice"),
        )
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for i in 0..24usize {
        let store = store.clone();
        let taken_id = taken.id;
        tasks.push(tokio::spawn(async move {
            let rules = Box::new(move |facts: &gatehouse_domain::txn::ImpersonationFacts| {
                let mut session = impersonation(&facts.target, later);
                match i % 4 {
                    0 => return Err(Refusal::Forbidden(format!("no {i}"))),
                    // An id already taken: its insert fails.
                    1 => session.id = taken_id,
                    _ => session.id = SessionId::new_random(),
                }
                let ev = event(
                    facts.target.pool,
                    AuditAction::ImpersonationStarted,
                    &format!("s{i}"),
                );
                Ok((session, ev))
            });
            let outcome = store
                .start_impersonation(pool.id, &uname("alice"), Standing::NotAsked, rules)
                .await;
            (i, outcome)
        }));
    }
    let mut started = Vec::new();
    for t in tasks {
        let (i, outcome) = t.await.unwrap();
        match (i % 4, outcome) {
            (0, Ok(ImpersonationOutcome::Refused(Refusal::Forbidden(m)))) => {
                assert_eq!(m, format!("no {i}"));
            }
            (1, Err(StoreError::Conflict(_))) => {}
            (2 | 3, Ok(ImpersonationOutcome::Started(s))) => started.push((i, s.1.id)),
            (_, other) => panic!("impersonation {i}: {other:?}"),
        }
    }
    assert_eq!(started.len(), 12);
    let sessions = store
        .list_sessions(pool.id, SessionFilter::ActiveImpersonations(T0))
        .await
        .unwrap();
    assert_eq!(sessions.len(), 13, "the 12 started and the one made first");
    for (_, id) in &started {
        assert!(sessions.iter().any(|s| s.id == *id));
    }
    let events = all_events(&store, pool.id).await;
    for i in 0..24usize {
        let written = events
            .iter()
            .any(|e| e.event.subject.as_deref() == Some(&format!("s{i}")));
        assert_eq!(written, i % 4 >= 2, "audit event of impersonation {i}");
    }
    let missing = store
        .start_impersonation(
            pool.id,
            &uname("nobody"),
            Standing::NotAsked,
            Box::new(|_| panic!("no rules without a target")),
        )
        .await
        .unwrap();
    assert!(matches!(missing, ImpersonationOutcome::NoSuchUser));
}

/// A user of another pool read as acting in this one (a staff member signing in to a client
/// pool) is locked like this pool's rows: a transaction changing that user in its own pool
/// (disabling it, which ends the sessions it acts in everywhere) and one reading it here run
/// one after the other, so the second sees what the first committed.
pub async fn an_acting_user_is_read_under_its_lock(db: &Db) {
    let store = db.store.clone();
    let staff = new_pool(&store, "staff").await;
    let acme = new_pool(&store, "acme").await;
    let sue = new_user(&store, staff.id, "sue").await;

    // The staff pool disables sue, and has not committed yet.
    let mut disabling = store.write(staff.id).await.unwrap();
    let mut user = disabling.user_by_id(sue.id).await.unwrap().unwrap();
    user.enabled = Enabled::No;
    disabling.update_user(&user).await.unwrap();

    let reader = {
        let store = store.clone();
        let (acme, staff, sue) = (acme.id, staff.id, sue.id);
        tokio::spawn(async move {
            let mut w = store.write(acme).await.unwrap();
            let seen = w.acting_user(staff, sue).await.unwrap().unwrap();
            w.commit().await.unwrap();
            seen.enabled
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        !reader.is_finished(),
        "the acting user was read while a change to it was uncommitted"
    );
    disabling.commit().await.unwrap();
    assert_eq!(reader.await.unwrap(), Enabled::No);
}
