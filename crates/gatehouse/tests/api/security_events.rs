//! Every revocation appends its security events (SSF/CAEP/RISC) in the transaction that
//! makes it: each source, through the HTTP interface, and the Security Event Token each
//! event becomes, verified by npm `jose` against the pool's JWKS.

use gatehouse_domain::security_event::StoredSecurityEvent;
use serde_json::{Value, json};

use crate::common::*;

const USERS: &str = "/api/user-management/users";
const CAEP: &str = "https://schemas.openid.net/secevent/caep/event-type/";
const RISC: &str = "https://schemas.openid.net/secevent/risc/event-type/";

/// The events appended to `pool` after `cursor`; moves the cursor past them.
async fn events_since(app: &TestApp, pool: &str, cursor: &mut i64) -> Vec<StoredSecurityEvent> {
    let p = app
        .gh
        .pool(&gatehouse_domain::ids::PoolSlug::parse(pool).unwrap())
        .await
        .unwrap();
    let events = app.gh.security_events(&p, *cursor, 1000).await.unwrap();
    if let Some(last) = events.last() {
        *cursor = last.seq;
    }
    events
}

/// The SETs of `events`, verified with jose: their claims.
async fn sets(app: &TestApp, pool: &str, events: &[StoredSecurityEvent]) -> Vec<Value> {
    let p = app
        .gh
        .pool(&gatehouse_domain::ids::PoolSlug::parse(pool).unwrap())
        .await
        .unwrap();
    let mut out = Vec::new();
    for e in events {
        let token = app
            .gh
            .security_event_token(&p, e, "https://receiver.example.com")
            .await
            .unwrap();
        let verified = verify_set_with_jose(app, pool, &token).await.unwrap();
        assert_eq!(verified["header"]["typ"], "secevent+jwt");
        assert_eq!(verified["header"]["alg"], "RS256");
        out.push(verified["payload"].clone());
    }
    out
}

fn event_type(set: &Value) -> String {
    let events = set["events"].as_object().unwrap();
    assert_eq!(events.len(), 1, "exactly one event per SET: {set}");
    events.keys().next().unwrap().clone()
}

async fn post(app: &TestApp, path: &str, token: &str, body: Option<Value>) -> u16 {
    let mut req = app.http.post(app.pool_url("acme", path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn every_revocation_appends_its_security_events() {
    let app = spawn_app().await;
    let (client, ada) = app.acme_with_ada().await;
    let alice_token = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let alice = jwt_claims(&alice_token);
    let mut cursor = 0;
    let _ = events_since(&app, "acme", &mut cursor).await;

    // Sign-out: each session, and the user as a whole (a not-before for the user).
    let signed_out = post(&app, &format!("{USERS}/alice/actions/sign-out"), &ada, None).await;
    assert_eq!(signed_out, 204);
    let events = events_since(&app, "acme", &mut cursor).await;
    let s = sets(&app, "acme", &events).await;
    assert_eq!(s.len(), 2, "{s:#?}");
    for set in &s {
        assert_eq!(event_type(set), format!("{CAEP}session-revoked"));
        assert_eq!(set["iss"], app.issuer("acme"));
        assert_eq!(set["aud"], "https://receiver.example.com");
        assert!(
            set.get("sub").is_none() && set.get("exp").is_none(),
            "{set}"
        );
        assert_eq!(set["sub_id"]["format"], "complex");
        assert_eq!(set["sub_id"]["user"]["sub"], alice["sub"]);
        assert_eq!(set["sub_id"]["tenant"]["id"], "acme");
        let payload = &set["events"][format!("{CAEP}session-revoked")];
        assert_eq!(payload["initiating_entity"], "admin");
        assert!(payload["reason_admin"]["en"].is_string());
        assert!(payload["event_timestamp"].is_i64());
    }
    assert!(
        s[0]["sub_id"].get("session").is_none(),
        "the user-wide event first: verifiers refuse the user's tokens at once"
    );
    assert_eq!(s[1]["sub_id"]["session"]["id"], alice["sid"]);
    assert_eq!(s[0]["txn"], s[1]["txn"], "one cause, one txn");

    // Disable, enable, reset, roles, groups, delete: the account's events.
    assert_eq!(
        post(&app, &format!("{USERS}/alice/actions/disable"), &ada, None).await,
        204
    );
    let s = sets(&app, "acme", &events_since(&app, "acme", &mut cursor).await).await;
    let types: Vec<String> = s.iter().map(event_type).collect();
    assert_eq!(
        types,
        [
            format!("{CAEP}session-revoked"),
            format!("{RISC}account-disabled")
        ],
        "the user-wide session-revoked, then the account"
    );
    assert_eq!(s[0]["txn"], s[1]["txn"], "one disable, one txn");
    assert_eq!(
        post(&app, &format!("{USERS}/alice/actions/enable"), &ada, None).await,
        204
    );
    let s = sets(&app, "acme", &events_since(&app, "acme", &mut cursor).await).await;
    assert_eq!(
        s.iter().map(event_type).collect::<Vec<_>>(),
        [format!("{RISC}account-enabled")]
    );
    assert_eq!(s[0]["sub_id"]["user"]["sub"], alice["sub"]);

    assert_eq!(
        post(
            &app,
            &format!("{USERS}/alice/actions/reset-password"),
            &ada,
            None
        )
        .await,
        204
    );
    let s = sets(&app, "acme", &events_since(&app, "acme", &mut cursor).await).await;
    let change = s
        .iter()
        .find(|set| event_type(set) == format!("{CAEP}credential-change"))
        .unwrap_or_else(|| panic!("{s:#?}"));
    let payload = &change["events"][format!("{CAEP}credential-change")];
    assert!(
        s.iter()
            .filter(|set| event_type(set) == format!("{CAEP}session-revoked"))
            .all(|set| set["txn"] == change["txn"]),
        "a reset's session-revoked and credential-change share their txn: {s:#?}"
    );
    assert_eq!(payload["credential_type"], "password");
    assert_eq!(payload["change_type"], "update");

    let res = app
        .http
        .post(app.pool_url("acme", "/api/user-management/groups"))
        .bearer_auth(&ada)
        .json(&json!({"name": "brokers", "description": "Brokers", "roles": ["support"]}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let _ = events_since(&app, "acme", &mut cursor).await;
    let res = app
        .http
        .put(app.pool_url("acme", &format!("{USERS}/alice/groups")))
        .bearer_auth(&ada)
        .json(&json!({"groups": ["brokers"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let s = sets(&app, "acme", &events_since(&app, "acme", &mut cursor).await).await;
    assert_eq!(
        s.iter().map(event_type).collect::<Vec<_>>(),
        [format!("{CAEP}token-claims-change")]
    );
    assert_eq!(
        s[0]["events"][format!("{CAEP}token-claims-change")]["claims"]["groups"],
        json!(["brokers"])
    );

    // The group's roles change, then the group goes: every token naming it is told, once.
    let res = app
        .http
        .put(app.pool_url("acme", "/api/user-management/groups/brokers"))
        .bearer_auth(&ada)
        .json(&json!({"description": "Brokers", "roles": []}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204, "{}", res.text().await.unwrap());
    let res = app
        .http
        .delete(app.pool_url("acme", "/api/user-management/groups/brokers"))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let s = sets(&app, "acme", &events_since(&app, "acme", &mut cursor).await).await;
    assert_eq!(s.len(), 2, "{s:#?}");
    for set in &s {
        assert_eq!(event_type(set), format!("{CAEP}token-claims-change"));
        assert_eq!(set["sub_id"]["group"]["id"], "brokers");
        assert_eq!(
            set["events"][format!("{CAEP}token-claims-change")]["claims"]["roles"],
            json!([])
        );
    }

    let res = app
        .http
        .delete(app.pool_url("acme", &format!("{USERS}/alice")))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let types: Vec<String> = sets(&app, "acme", &events_since(&app, "acme", &mut cursor).await)
        .await
        .iter()
        .map(event_type)
        .collect();
    assert_eq!(
        types.last().unwrap(),
        &format!("{RISC}account-purged"),
        "{types:?}"
    );

    // A refused operation appends nothing.
    assert_eq!(
        post(&app, &format!("{USERS}/ada/actions/disable"), &ada, None).await,
        409,
        "nobody disables itself"
    );
    assert!(events_since(&app, "acme", &mut cursor).await.is_empty());

    // RFC 7009 revocation of a client's token: the token, by its jti.
    let machine = app.create_client("acme", &[]).await;
    let token = app.client_token("acme", &machine).await;
    assert_eq!(app.revoke("acme", &machine, &token).await.status(), 200);
    let s = sets(&app, "acme", &events_since(&app, "acme", &mut cursor).await).await;
    assert_eq!(
        s.iter().map(event_type).collect::<Vec<_>>(),
        ["urn:gatehouse:secevent:event-type:token-revoked"]
    );
    assert_eq!(s[0]["sub_id"]["format"], "jwt_id");
    assert_eq!(s[0]["sub_id"]["jti"], jwt_claims(&token)["jti"]);

    // Ending an impersonation: its session.
    app.create_user("acme", "bob", &[], "bob-password-1").await;
    let impersonated = app.impersonate("acme", &ada, "bob").await;
    let _ = events_since(&app, "acme", &mut cursor).await;
    let sid = jwt_claims(&impersonated)["sid"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .http
        .delete(app.pool_url(
            "acme",
            &format!("/api/user-management/impersonations/{sid}"),
        ))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let s = sets(&app, "acme", &events_since(&app, "acme", &mut cursor).await).await;
    assert_eq!(s.len(), 1, "{s:#?}");
    assert_eq!(s[0]["sub_id"]["session"]["id"], sid.as_str());

    // Cursors are per pool, and numbers only grow.
    let mut other = 0;
    app.create_pool("globex").await;
    assert!(events_since(&app, "globex", &mut other).await.is_empty());
    assert!(cursor > 0);
}

/// The browser's sources: a reused refresh token (by policy) and RP-initiated logout (by the
/// user) append `session-revoked` for each session they end.
#[tokio::test]
async fn refresh_reuse_and_logout_append_their_events() {
    use crate::code_flow::{Browser, REDIRECT, VERIFIER, hidden, query_of, register, urlencode};
    use gatehouse_domain::client::ClientType;
    use gatehouse_service::grants::authorization_code::s256;

    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &[], "ada-password-123")
        .await;
    let client = register(
        &app,
        "acme",
        &["authorization_code", "refresh_token"],
        ClientType::Confidential,
    )
    .await;
    let url = app.pool_url(
        "acme",
        &format!(
            "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid\
             &code_challenge={}&code_challenge_method=S256",
            client.id,
            urlencode(REDIRECT),
            s256(VERIFIER)
        ),
    );
    let mut browser = Browser::new();
    let html = browser.get(&url).await.text().await.unwrap();
    let res = browser
        .post(
            &app.pool_url("acme", "/oauth2/authorize"),
            &[
                ("step", "password"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "ada"),
                ("password", "ada-password-123"),
            ],
        )
        .await;
    let code = query_of(res.headers()["location"].to_str().unwrap())["code"].clone();
    let token = |form: Vec<(&'static str, String)>| {
        let app = &app;
        let client = &client;
        async move {
            app.http
                .post(app.pool_url("acme", "/oauth2/token"))
                .basic_auth(&client.id, Some(&client.secret))
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let tokens: Value = token(vec![
        ("grant_type", "authorization_code".into()),
        ("code", code),
        ("redirect_uri", REDIRECT.into()),
        ("code_verifier", VERIFIER.into()),
    ])
    .await
    .json()
    .await
    .unwrap();
    let sid = jwt_claims(tokens["access_token"].as_str().unwrap())["sid"].clone();
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refresh = |t: String| {
        token(vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", t),
        ])
    };
    assert_eq!(refresh(first.clone()).await.status(), 200);
    let mut cursor = 0;
    let _ = events_since(&app, "acme", &mut cursor).await;

    // The used refresh token again: its family ends, by policy.
    assert_eq!(refresh(first).await.status(), 400);
    let s = sets(&app, "acme", &events_since(&app, "acme", &mut cursor).await).await;
    assert_eq!(s.len(), 1, "{s:#?}");
    assert_eq!(s[0]["sub_id"]["session"]["id"], sid);
    assert_eq!(
        s[0]["events"][format!("{CAEP}session-revoked")]["initiating_entity"],
        "policy"
    );

    // Logout (confirmed on the page): the browser session, by the user.
    let page = browser
        .get(&app.pool_url("acme", &format!("/oauth2/logout?client_id={}", client.id)))
        .await
        .text()
        .await
        .unwrap();
    let res = browser
        .post(
            &app.pool_url("acme", "/oauth2/logout"),
            &[
                ("csrf", hidden(&page, "csrf").as_str()),
                ("client_id", client.id.as_str()),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let s = sets(&app, "acme", &events_since(&app, "acme", &mut cursor).await).await;
    assert_eq!(
        s.len(),
        1,
        "the browser session (its authorization ended before): {s:#?}"
    );
    assert_eq!(
        s[0]["events"][format!("{CAEP}session-revoked")]["initiating_entity"],
        "user"
    );
}
