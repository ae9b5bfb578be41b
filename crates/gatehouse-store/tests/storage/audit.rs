use std::collections::BTreeMap;

use gatehouse_domain::audit::{AuditAction, AuditEvent, AuditQuery, Outcome};
use gatehouse_domain::ids::{ClientId, EventId, PoolSlug};
use gatehouse_domain::session::{Actor, ActorKind};
use gatehouse_domain::store::Store;
use gatehouse_domain::time::Timestamp;

use crate::fixtures::*;

fn client_actor() -> Actor {
    Actor {
        kind: ActorKind::Client,
        id: "console".to_owned(),
        username: None,
        pool: PoolSlug::parse("acme").unwrap(),
        client_id: Some(ClientId::parse("console").unwrap()),
    }
}

/// Events of several kinds, at T0, T0+10, T0+20, …
fn events(pool: gatehouse_domain::ids::PoolId) -> Vec<AuditEvent> {
    let mut out = Vec::new();
    for i in 0..12_i64 {
        let action = match i % 3 {
            0 => AuditAction::TokenIssued,
            1 => AuditAction::ImpersonationDenied,
            _ => AuditAction::UserSignInFailed,
        };
        let mut details = BTreeMap::new();
        details.insert("n".to_owned(), i.to_string());
        details.insert("quote".to_owned(), "\"x\" & 'y' — ü".to_owned());
        out.push(AuditEvent {
            id: EventId::new_random(),
            pool,
            at: Timestamp(T0.0 + 10 * i),
            action,
            outcome: if i % 2 == 0 {
                Outcome::Success
            } else {
                Outcome::Denied
            },
            actor: if i % 4 == 0 {
                None
            } else if i % 4 == 1 {
                Some(client_actor())
            } else {
                Some(admin())
            },
            subject: Some(if i < 6 { "alice" } else { "bob" }.to_owned()),
            client_id: (i % 2 == 1).then(|| ClientId::parse("console").unwrap()),
            ip: (i % 5 != 0).then(|| "2001:db8::1".to_owned()),
            impersonator: (i >= 9).then(admin),
            details,
        });
    }
    out
}

fn ids(found: &[gatehouse_domain::audit::StoredAuditEvent]) -> Vec<EventId> {
    found.iter().map(|e| e.event.id).collect()
}

pub async fn append_and_filter(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let other = new_pool(store, "other").await;
    let written = events(pool.id);
    for e in &written {
        store.append_audit(e).await.unwrap();
    }
    store
        .append_audit(&event(other.id, AuditAction::TokenIssued, "alice"))
        .await
        .unwrap();

    let q = |f: fn(&mut AuditQuery)| {
        let mut query = AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        };
        f(&mut query);
        query
    };
    let expect = |pred: &dyn Fn(&AuditEvent) -> bool| -> Vec<EventId> {
        written.iter().filter(|e| pred(e)).map(|e| e.id).collect()
    };

    // Everything, in order, exactly as written; the pool's creation comes first.
    let all = store.list_audit(pool.id, &q(|_| {})).await.unwrap();
    assert_eq!(all.len(), written.len() + 1);
    assert_eq!(all[0].event.action, AuditAction::PoolCreated);
    let read: Vec<AuditEvent> = all[1..].iter().map(|e| e.event.clone()).collect();
    assert_eq!(read, written);
    assert!(all.windows(2).all(|w| w[0].seq < w[1].seq));

    let by_action = store
        .list_audit(
            pool.id,
            &q(|q| q.action = Some(AuditAction::ImpersonationDenied)),
        )
        .await
        .unwrap();
    assert_eq!(
        ids(&by_action),
        expect(&|e| e.action == AuditAction::ImpersonationDenied)
    );

    let by_actor = store
        .list_audit(pool.id, &q(|q| q.actor_id = Some("console".to_owned())))
        .await
        .unwrap();
    assert_eq!(
        ids(&by_actor),
        expect(&|e| e.actor.as_ref().is_some_and(|a| a.id == "console"))
    );

    let by_subject = store
        .list_audit(pool.id, &q(|q| q.subject = Some("bob".to_owned())))
        .await
        .unwrap();
    assert_eq!(
        ids(&by_subject),
        expect(&|e| e.subject.as_deref() == Some("bob"))
    );

    let admin_id = admin().id;
    let by_impersonator = store
        .list_audit(
            pool.id,
            &AuditQuery {
                impersonator_id: Some(admin_id.clone()),
                limit: 100,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(ids(&by_impersonator), expect(&|e| e.impersonator.is_some()));
    assert_eq!(by_impersonator.len(), 3);

    // since and until are inclusive.
    let window = store
        .list_audit(
            pool.id,
            &q(|q| {
                q.since = Some(Timestamp(T0.0 + 20));
                q.until = Some(Timestamp(T0.0 + 50));
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        ids(&window),
        expect(&|e| e.at.0 >= T0.0 + 20 && e.at.0 <= T0.0 + 50)
    );
    assert_eq!(window.len(), 4);

    // Filters combine.
    let combined = store
        .list_audit(
            pool.id,
            &q(|q| {
                q.action = Some(AuditAction::TokenIssued);
                q.subject = Some("alice".to_owned());
                q.since = Some(Timestamp(T0.0 + 1));
            }),
        )
        .await
        .unwrap();
    assert_eq!(
        ids(&combined),
        expect(&|e| e.action == AuditAction::TokenIssued
            && e.subject.as_deref() == Some("alice")
            && e.at.0 > T0.0)
    );
    assert_eq!(combined.len(), 1);

    // Paging by seq visits every event once.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_audit(
                pool.id,
                &AuditQuery {
                    after_seq: after,
                    limit: 5,
                    ..AuditQuery::default()
                },
            )
            .await
            .unwrap();
        assert!(page.len() <= 5);
        let Some(last) = page.last() else { break };
        after = Some(last.seq);
        seen.extend(page);
    }
    assert_eq!(seen, all);

    let filtered_page = store
        .list_audit(
            pool.id,
            &AuditQuery {
                action: Some(AuditAction::UserSignInFailed),
                after_seq: Some(by_action[0].seq),
                limit: 2,
                ..AuditQuery::default()
            },
        )
        .await
        .unwrap();
    let expected: Vec<EventId> = expect(&|e| e.action == AuditAction::UserSignInFailed)
        .into_iter()
        .take(2)
        .collect();
    assert_eq!(ids(&filtered_page), expected);

    let other_events = store.list_audit(other.id, &q(|_| {})).await.unwrap();
    assert_eq!(other_events.len(), 2);
}

/// Each mutation records its own event, once, with nothing lost on the way.
pub async fn mutations_record_their_events(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    new_user(store, pool.id, "alice").await;
    new_group(store, pool.id, "team").await;
    new_client(store, pool.id, "app").await;
    let actions: Vec<AuditAction> = all_events(store, pool.id)
        .await
        .iter()
        .map(|e| e.event.action)
        .collect();
    assert_eq!(
        actions,
        vec![
            AuditAction::PoolCreated,
            AuditAction::UserCreated,
            AuditAction::GroupCreated,
            AuditAction::AppClientCreated
        ]
    );

    // A conflicting creation adds no row at all.
    let before = all_events(store, pool.id).await;
    let dup = user_value(pool.id, "alice");
    let ev = event(pool.id, AuditAction::UserCreated, "alice");
    assert!(store.create_user(&dup, &ev).await.is_err());
    assert_eq!(all_events(store, pool.id).await, before);
}

/// When the audit row cannot be written, the change it records is undone: no impersonation
/// session exists without its audit event.
pub async fn failed_audit_write_undoes_the_mutation(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let alice = new_user(store, pool.id, "alice").await;
    let first = event(pool.id, AuditAction::ImpersonationStarted, "alice");
    store
        .create_session(&impersonation(&alice, Timestamp(T0.0 + 600)), &first)
        .await
        .unwrap();

    // Reusing an event id makes the audit insert fail after the session insert succeeded.
    let session = impersonation(&alice, Timestamp(T0.0 + 600));
    let reused = AuditEvent {
        subject: Some("reused".to_owned()),
        ..first.clone()
    };
    assert!(store.create_session(&session, &reused).await.is_err());
    assert_eq!(store.session(pool.id, session.id).await.unwrap(), None);

    let bob = user_value(pool.id, "bob");
    assert!(store.create_user(&bob, &reused).await.is_err());
    assert_eq!(store.user_by_id(pool.id, bob.id).await.unwrap(), None);

    let events = all_events(store, pool.id).await;
    assert_eq!(events.iter().filter(|e| e.event.id == first.id).count(), 1);
    assert_eq!(events.last().map(|e| &e.event), Some(&first));
}

/// A batch is written whole, in order, or not at all.
pub async fn batches_are_all_or_nothing(db: &Db) {
    let store = &db.store;
    let pool = new_pool(store, "acme").await;
    let batch: Vec<AuditEvent> = (0..50)
        .map(|i| event(pool.id, AuditAction::TokenIssued, &format!("client-{i:02}")))
        .collect();
    store.append_audit_batch(&batch).await.unwrap();
    let subjects: Vec<String> = all_events(store, pool.id)
        .await
        .into_iter()
        .filter(|e| e.event.action == AuditAction::TokenIssued)
        .map(|e| e.event.subject.unwrap())
        .collect();
    let expected: Vec<String> = (0..50).map(|i| format!("client-{i:02}")).collect();
    assert_eq!(subjects, expected);

    // One event of the next batch repeats an id: nothing of that batch is kept.
    let mut bad: Vec<AuditEvent> = (0..3)
        .map(|i| event(pool.id, AuditAction::TokenIssued, &format!("late-{i}")))
        .collect();
    bad.push(batch[0].clone());
    assert!(store.append_audit_batch(&bad).await.is_err());
    for e in &bad[..3] {
        assert!(!was_written(store, e).await);
    }
}
