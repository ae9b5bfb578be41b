//! The fleet feed's snapshot and stream over HTTP: what the snapshot holds (compacted, within
//! retention), what a stream delivers (events committed after it opened, through this
//! instance or another on the same database; resumed without loss or duplicate; heartbeats),
//! the cursors and callers both refuse, the 410 after a purge, and the cap on open streams.

use std::time::Duration;

use serde_json::Value;

use crate::common::*;
use crate::revocation_feed::revoke_a_token_at;

/// One item of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Sse {
    Heartbeat,
    Set { id: i64, set: String },
}

/// Reads a `text/event-stream` response item by item.
struct SseReader {
    res: reqwest::Response,
    buf: String,
}

impl SseReader {
    /// The next item, or `None` when the server ended the stream. A stream that stays silent
    /// for 30 seconds fails the test instead of hanging it.
    async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                return Some(parse_block(block.trim_end()));
            }
            let chunk = tokio::time::timeout(Duration::from_secs(30), self.res.chunk())
                .await
                .expect("the stream stayed silent")
                .expect("reading the stream failed")?;
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next SET, skipping heartbeats.
    async fn next_set(&mut self) -> (i64, String) {
        loop {
            match self.next().await.expect("the stream ended") {
                Sse::Heartbeat => continue,
                Sse::Set { id, set } => return (id, set),
            }
        }
    }
}

fn parse_block(block: &str) -> Sse {
    if block == ": heartbeat" {
        return Sse::Heartbeat;
    }
    let mut id = None;
    let mut set = None;
    let mut event = None;
    for line in block.lines() {
        let (name, value) = line.split_once(": ").expect("a field line");
        match name {
            "id" => id = Some(value.parse().unwrap()),
            "event" => event = Some(value.to_owned()),
            "data" => set = Some(value.to_owned()),
            other => panic!("unexpected field {other} in {block:?}"),
        }
    }
    assert_eq!(event.as_deref(), Some("set"), "{block:?}");
    Sse::Set {
        id: id.expect("an id"),
        set: set.expect("data"),
    }
}

/// Opens the stream of `pool` at `base` (an instance's address) with these headers.
async fn open_at(
    app: &TestApp,
    base: &str,
    pool: &str,
    token: &str,
    query: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .http
        .get(format!(
            "{base}/pools/{pool}/api/auth/revocations/stream{query}"
        ))
        .header("accept", "text/event-stream")
        .bearer_auth(token);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    req.send().await.unwrap()
}

/// Opens a stream that must answer 200 and start with a heartbeat.
async fn connect(
    app: &TestApp,
    base: &str,
    token: &str,
    query: &str,
    last_event_id: Option<&str>,
) -> SseReader {
    let res = open_at(app, base, "acme", token, query, last_event_id).await;
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    let mut reader = SseReader {
        res,
        buf: String::new(),
    };
    assert_eq!(reader.next().await, Some(Sse::Heartbeat));
    reader
}

async fn get(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.http
        .get(app.pool_url("acme", path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// The newest cursor of acme's feed, read through its pages.
async fn newest(app: &TestApp, token: &str) -> i64 {
    let mut cursor = 0;
    loop {
        let page: Value = get(app, &format!("/api/auth/revocations?after={cursor}"), token)
            .await
            .json()
            .await
            .unwrap();
        let next = page["next"].as_i64().unwrap();
        if next == cursor {
            return cursor;
        }
        cursor = next;
    }
}

/// acme with ada and alice, a reader holding `auth:RetrieveRevocations` and its token, and a
/// client whose tokens the tests revoke to make events.
struct Fixture {
    client: ClientCreds,
    ada: String,
    reader: String,
    revoker: ClientCreds,
}

async fn fixture(app: &TestApp) -> Fixture {
    let (client, ada) = app.acme_with_ada().await;
    let reader = app
        .create_client("acme", &["auth:RetrieveRevocations"])
        .await;
    let reader = app.client_token("acme", &reader).await;
    let revoker = app.create_client("acme", &[]).await;
    Fixture {
        client,
        ada,
        reader,
        revoker,
    }
}

async fn sign_out_alice(app: &TestApp, ada: &str) {
    let res = app
        .http
        .post(app.pool_url("acme", "/api/user-management/users/alice/actions/sign-out"))
        .bearer_auth(ada)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

#[tokio::test]
async fn the_snapshot_holds_what_is_in_effect_compacted() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let doc: Value = app
        .http
        .get(app.pool_url("acme", "/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["revocation_feed_endpoint"],
        format!("{}/api/auth/revocations", app.issuer("acme"))
    );

    // Two sessions of alice end, and alice as a user twice: one entry for the user remains,
    // the newer one.
    for _ in 0..2 {
        app.sign_in("acme", &f.client, "alice", "alice-password-1")
            .await;
    }
    sign_out_alice(&app, &f.ada).await;
    sign_out_alice(&app, &f.ada).await;
    let head = newest(&app, &f.reader).await;
    let all: Value = get(&app, "/api/auth/revocations", &f.reader)
        .await
        .json()
        .await
        .unwrap();
    let all = all["items"].as_array().unwrap().clone();
    assert_eq!(all.len(), 4, "two sessions, the user twice");

    let res = get(&app, "/api/auth/revocations/snapshot", &f.reader).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let snap: Value = res.json().await.unwrap();
    assert_eq!(snap["cursor"], head);
    // The longest token lifetime (an hour) and five minutes.
    assert_eq!(snap["retention_seconds"], 3600 + 300);
    let items = snap["items"].as_array().unwrap();
    let cursors: Vec<i64> = items
        .iter()
        .map(|i| i["cursor"].as_i64().unwrap())
        .collect();
    let user_events: Vec<i64> = all
        .iter()
        .filter(|i| jwt_claims(i["set"].as_str().unwrap())["sub_id"]["session"].is_null())
        .map(|i| i["cursor"].as_i64().unwrap())
        .collect();
    assert_eq!(user_events.len(), 2);
    assert_eq!(cursors.len(), 3, "{snap}");
    assert!(cursors.contains(&user_events[1]));
    assert!(!cursors.contains(&user_events[0]), "the older entry stays");
    assert!(cursors.windows(2).all(|w| w[0] < w[1]), "oldest first");
    for item in items {
        let verified = verify_set_with_jose(&app, "acme", item["set"].as_str().unwrap())
            .await
            .unwrap();
        assert_eq!(verified["header"]["typ"], "secevent+jwt");
        assert_eq!(
            verified["payload"]["aud"],
            format!("{}/api/auth/revocations", app.issuer("acme"))
        );
    }

    // Past the retention nothing is in effect; the cursor stays where the feed is.
    app.clock.advance(3600 + 300 + 1);
    let reader = app
        .create_client("acme", &["auth:RetrieveRevocations"])
        .await;
    let reader = app.client_token("acme", &reader).await;
    let snap: Value = get(&app, "/api/auth/revocations/snapshot", &reader)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(snap["items"], serde_json::json!([]));
    assert_eq!(snap["cursor"], head);

    // Only a caller holding the permission, of this pool, reads it; no parameters.
    let alice = app
        .sign_in("acme", &f.client, "alice", "alice-password-1")
        .await;
    let snapshot = "/api/auth/revocations/snapshot";
    assert_api_error(get(&app, snapshot, &alice).await, 403).await;
    assert_api_error(get(&app, snapshot, "not-a-token").await, 401).await;
    app.create_pool("globex").await;
    let other = app
        .create_client("globex", &["auth:RetrieveRevocations"])
        .await;
    let other = app.client_token("globex", &other).await;
    assert_api_error(get(&app, snapshot, &other).await, 401).await;
    assert_api_error(
        get(&app, "/api/auth/revocations/snapshot?after=1", &reader).await,
        400,
    )
    .await;
}

#[tokio::test]
async fn a_stream_delivers_resumes_beats_and_ends_with_its_token() {
    let app = spawn_app_with(Backend::from_env(), |c| c.feed.heartbeat_secs = 1).await;
    let f = fixture(&app).await;
    let addr = app.addr.clone();

    // Live: an event committed after the stream opened arrives, as the feed numbers it.
    let mut live = connect(&app, &addr, &f.reader, "", None).await;
    revoke_a_token_at(&app, &addr, "acme", &f.revoker).await;
    let (first, set) = live.next_set().await;
    assert_eq!(first, newest(&app, &f.reader).await);
    let verified = verify_set_with_jose(&app, "acme", &set).await.unwrap();
    assert_eq!(verified["header"]["typ"], "secevent+jwt");
    assert_eq!(verified["header"]["alg"], "RS256");
    let claims = &verified["payload"];
    assert_eq!(claims["iss"], app.issuer("acme"));
    assert!(claims.get("sub").is_none() && claims.get("exp").is_none());
    assert_eq!(
        claims["events"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["urn:gatehouse:secevent:event-type:token-revoked"]
    );
    // Idle, it beats.
    assert_eq!(live.next().await, Some(Sse::Heartbeat));
    drop(live);

    // Events while away arrive on resumption, each once, in order: after Last-Event-ID,
    // which wins over `after`, or after `after`.
    for _ in 0..3 {
        revoke_a_token_at(&app, &addr, "acme", &f.revoker).await;
    }
    let mut resumed = connect(&app, &addr, &f.reader, "?after=0", Some(&first.to_string())).await;
    for expected in first + 1..=first + 3 {
        assert_eq!(resumed.next_set().await.0, expected);
    }
    revoke_a_token_at(&app, &addr, "acme", &f.revoker).await;
    assert_eq!(resumed.next_set().await.0, first + 4);
    let mut from_after = connect(&app, &addr, &f.reader, &format!("?after={first}"), None).await;
    for expected in first + 1..=first + 4 {
        assert_eq!(from_after.next_set().await.0, expected);
    }
    drop(from_after);

    // The stream ends once the token that opened it has expired.
    app.clock.advance(3600 + 1);
    loop {
        match resumed.next().await {
            None => break,
            Some(Sse::Heartbeat) => {}
            Some(other) => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn streams_refuse_bad_cursors_and_callers() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let addr = app.addr.clone();
    revoke_a_token_at(&app, &addr, "acme", &f.revoker).await;
    let head = newest(&app, &f.reader).await;

    for (query, last_event_id) in [
        (format!("?after={}", head + 1), None),
        (String::new(), Some((head + 1).to_string())),
        ("?after=-1".to_owned(), None),
        ("?after=soon".to_owned(), None),
        (String::new(), Some("soon".to_owned())),
        ("?cursor=1".to_owned(), None),
    ] {
        let res = open_at(
            &app,
            &addr,
            "acme",
            &f.reader,
            &query,
            last_event_id.as_deref(),
        )
        .await;
        assert_api_error(res, 400).await;
    }

    let alice = app
        .sign_in("acme", &f.client, "alice", "alice-password-1")
        .await;
    assert_api_error(open_at(&app, &addr, "acme", &alice, "", None).await, 403).await;
    assert_api_error(
        open_at(&app, &addr, "acme", "not-a-token", "", None).await,
        401,
    )
    .await;
    let res = app
        .http
        .get(app.pool_url("acme", "/api/auth/revocations/stream"))
        .send()
        .await
        .unwrap();
    assert_api_error(res, 401).await;
    app.create_pool("globex").await;
    let other = app
        .create_client("globex", &["auth:RetrieveRevocations"])
        .await;
    let other = app.client_token("globex", &other).await;
    assert_api_error(open_at(&app, &addr, "acme", &other, "", None).await, 401).await;
}

/// Past the retention the purge deletes events, but never a pool's newest; a cursor below the
/// horizon it leaves is answered 410 by the feed and the stream, one at or above it works,
/// and new events are numbered after everything handed out.
#[tokio::test]
async fn the_purge_leaves_a_horizon_older_cursors_are_gone() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let addr = app.addr.clone();
    for _ in 0..3 {
        revoke_a_token_at(&app, &addr, "acme", &f.revoker).await;
    }
    let old_head = newest(&app, &f.reader).await;

    // All of them past the retention: everything but the newest goes.
    app.clock.advance(3600 + 300 + 1);
    let purged = app.gh.purge_expired().await.unwrap();
    assert_eq!(purged.security_events, u64::try_from(old_head - 1).unwrap());
    let reader = app
        .create_client("acme", &["auth:RetrieveRevocations"])
        .await;
    let reader = app.client_token("acme", &reader).await;
    let page: Value = get(
        &app,
        &format!("/api/auth/revocations?after={}", old_head - 1),
        &reader,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["cursor"], old_head);

    for after in [0, old_head - 2] {
        let res = get(
            &app,
            &format!("/api/auth/revocations?after={after}"),
            &reader,
        )
        .await;
        let body = assert_api_error(res, 410).await;
        assert!(body.to_string().contains("snapshot"), "{body}");
        let res = open_at(
            &app,
            &addr,
            "acme",
            &reader,
            &format!("?after={after}"),
            None,
        )
        .await;
        assert_api_error(res, 410).await;
        let res = open_at(&app, &addr, "acme", &reader, "", Some(&after.to_string())).await;
        assert_api_error(res, 410).await;
    }

    // From the horizon on, the stream works, and the next event is numbered after the old.
    let mut stream = connect(
        &app,
        &addr,
        &reader,
        &format!("?after={}", old_head - 1),
        None,
    )
    .await;
    assert_eq!(stream.next_set().await.0, old_head);
    revoke_a_token_at(&app, &addr, "acme", &f.revoker).await;
    assert_eq!(stream.next_set().await.0, old_head + 1);
    // The new one is in effect; the kept old one is not.
    let snap: Value = get(&app, "/api/auth/revocations/snapshot", &reader)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(snap["cursor"], old_head + 1);
    assert_eq!(snap["items"].as_array().unwrap().len(), 1);
    assert_eq!(snap["items"][0]["cursor"], old_head + 1);
    // Now that it is no longer the newest, the old one goes too, and the horizon moves.
    assert_eq!(app.gh.purge_expired().await.unwrap().security_events, 1);
    let res = get(
        &app,
        &format!("/api/auth/revocations?after={}", old_head - 1),
        &reader,
    )
    .await;
    assert_api_error(res, 410).await;
    let page: Value = get(
        &app,
        &format!("/api/auth/revocations?after={old_head}"),
        &reader,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(page["items"][0]["cursor"], old_head + 1);
    assert_eq!(app.gh.purge_expired().await.unwrap().security_events, 0);
}

/// A pool has at most `feed.max_streams_per_pool` streams open; more are answered 503 with
/// `Retry-After` until one closes. Other pools are not affected.
#[tokio::test]
async fn open_streams_are_capped_per_pool() {
    let app = spawn_app_with(Backend::from_env(), |c| c.feed.max_streams_per_pool = 2).await;
    let f = fixture(&app).await;
    let addr = app.addr.clone();
    let a = connect(&app, &addr, &f.reader, "", None).await;
    let _b = connect(&app, &addr, &f.reader, "", None).await;
    let res = open_at(&app, &addr, "acme", &f.reader, "", None).await;
    assert!(res.headers().contains_key("retry-after"));
    assert_api_error(res, 503).await;

    app.create_pool("globex").await;
    let other = app
        .create_client("globex", &["auth:RetrieveRevocations"])
        .await;
    let other = app.client_token("globex", &other).await;
    let res = open_at(&app, &addr, "globex", &other, "", None).await;
    assert_eq!(res.status(), 200);

    // A reader that leaves frees its place.
    drop(a);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let res = open_at(&app, &addr, "acme", &f.reader, "", None).await;
        if res.status() == 200 {
            break;
        }
        assert_eq!(res.status(), 503);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the place stayed taken"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An event committed through one instance reaches a stream open on another instance of the
/// same database: on PostgreSQL by LISTEN/NOTIFY, on SQLite by the stream's re-reading.
#[tokio::test]
async fn an_event_through_one_instance_reaches_a_stream_on_another() {
    let app = spawn_app().await;
    let f = fixture(&app).await;
    let (second, _stop) = app.second_instance().await;
    let mut on_second = connect(&app, &second, &f.reader, "", None).await;
    let mut on_first = connect(&app, &app.addr, &f.reader, "", None).await;
    revoke_a_token_at(&app, &app.addr, "acme", &f.revoker).await;
    let head = newest(&app, &f.reader).await;
    assert_eq!(on_second.next_set().await.0, head);
    assert_eq!(on_first.next_set().await.0, head);
    revoke_a_token_at(&app, &second, "acme", &f.revoker).await;
    assert_eq!(on_first.next_set().await.0, head + 1);
    assert_eq!(on_second.next_set().await.0, head + 1);
}
