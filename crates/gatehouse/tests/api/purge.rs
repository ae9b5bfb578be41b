//! Expired rows are purged in the background while the server serves.

use std::time::{Duration, Instant};

use gatehouse_domain::ids::{PoolSlug, SessionId};
use gatehouse_domain::retention::PurgePolicy;
use gatehouse_domain::session::Session;
use gatehouse_domain::store::Store;
use gatehouse_store::SqlStore;

use crate::common::*;

/// Signs ada in at `acme`; her session id, and a view of the database to look for it.
async fn signed_in_session(app: &TestApp) -> (SessionId, SqlStore, ClientCreds) {
    let (client, token) = app.acme_with_ada().await;
    let sid = jwt_claims(&token)["sid"].as_str().unwrap().to_owned();
    let store = SqlStore::connect(&app.database_url).await.unwrap();
    (SessionId::parse(&sid).unwrap(), store, client)
}

async fn session(app: &TestApp, store: &SqlStore, sid: SessionId) -> Option<Session> {
    let pool = app
        .gh
        .pool(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    store.session(pool.id, sid).await.unwrap()
}

/// Past the session's expiry (the pool's token lifetime) and the week it is kept after.
fn past_grace(app: &TestApp) {
    app.clock
        .advance(3600 + PurgePolicy::default().session_grace_secs + 1);
}

#[tokio::test]
async fn expired_sessions_are_purged_on_schedule_while_the_server_serves() {
    let app = spawn_app_with(Backend::from_env(), |c| {
        c.maintenance.purge_interval_secs = 1;
    })
    .await;
    let (sid, store, client) = signed_in_session(&app).await;
    // Purges have been running since the start; a live session is not theirs to take.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(session(&app, &store, sid).await.is_some());

    past_grace(&app);
    let deadline = Instant::now() + Duration::from_secs(15);
    while session(&app, &store, sid).await.is_some() {
        assert!(
            Instant::now() < deadline,
            "the expired session was not purged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The server goes on serving, and the sessions it starts now outlive the next purges.
    let token = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let fresh = SessionId::parse(jwt_claims(&token)["sid"].as_str().unwrap()).unwrap();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(session(&app, &store, fresh).await.is_some());
    assert_eq!(app.userinfo_status("acme", &token).await, 200);
    store.close().await;
}

#[tokio::test]
async fn an_interval_of_zero_turns_the_purge_off_and_it_can_be_run_by_hand() {
    let app = spawn_app_with(Backend::from_env(), |c| {
        c.maintenance.purge_interval_secs = 0;
    })
    .await;
    let (sid, store, _) = signed_in_session(&app).await;
    past_grace(&app);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert!(session(&app, &store, sid).await.is_some());

    let counts = app.gh.purge_expired().await.unwrap();
    assert_eq!(counts.sessions, 1);
    assert!(session(&app, &store, sid).await.is_none());
    store.close().await;
}
