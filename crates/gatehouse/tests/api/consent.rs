//! Consent for third-party clients, over plain HTTP the way a browser makes it: the page
//! after sign-in, Allow and Deny, remembered consents and new scopes, `prompt=consent` and
//! `prompt=none`, the form's CSRF check, and the admin API that lists and revokes consents.

use gatehouse_domain::client::ClientType;
use gatehouse_domain::ids::PoolSlug;
use gatehouse_service::clients::NewAppClient;
use gatehouse_service::grants::authorization_code::s256;
use gatehouse_service::{Operator, RequestMeta};
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::Value;

use crate::code_flow::{Browser, REDIRECT, VERIFIER, hidden, query_of, urlencode};
use crate::common::{ClientCreds, TestApp, spawn_app};

const PASSWORD: &str = "carol-password-1";

async fn client(app: &TestApp, name: &str, third_party: bool) -> ClientCreds {
    let pool = app
        .gh
        .pool(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    let (client, secret) = app
        .gh
        .create_app_client(
            &pool,
            &Operator::new("test").in_pool(&pool.slug),
            NewAppClient {
                name: name.to_owned(),
                scopes: None,
                grant_types: Some(vec![
                    "authorization_code".to_owned(),
                    "refresh_token".to_owned(),
                ]),
                redirect_uris: Some(vec![REDIRECT.to_owned()]),
                post_logout_redirect_uris: None,
                client_type: ClientType::Confidential,
                third_party,
                ..NewAppClient::default()
            },
            &RequestMeta::default(),
        )
        .await
        .unwrap();
    ClientCreds {
        id: client.client_id.to_string(),
        secret: secret.map(|s| s.expose().to_owned()).unwrap_or_default(),
    }
}

fn authorize_url(app: &TestApp, client: &ClientCreds, scope: &str, extra: &str) -> String {
    app.pool_url(
        "acme",
        &format!(
            "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope={}\
             &state=st-9&code_challenge={}&code_challenge_method=S256{extra}",
            client.id,
            urlencode(REDIRECT),
            urlencode(scope),
            s256(VERIFIER)
        ),
    )
}

/// An administrator `ada`, a partial administrator `bob` who may list sessions and sign
/// users out but holds nothing else, and `carol`, who signs in with the browser and holds
/// `user:GetUser` (which bob lacks, so bob does not dominate her).
async fn acme() -> (TestApp, String, String) {
    let app = spawn_app().await;
    let (api_client, ada) = app.acme_with_ada().await;
    app.create_user(
        "acme",
        "bob",
        &["user:RetrieveUserSessions", "user:SignOutUser"],
        "bob-password-12",
    )
    .await;
    app.create_user("acme", "carol", &["user:GetUser"], PASSWORD)
        .await;
    let bob = app
        .sign_in("acme", &api_client, "bob", "bob-password-12")
        .await;
    (app, ada, bob)
}

/// Signs carol in through the page; answers the response to the password step.
async fn sign_in(browser: &mut Browser, url: &str) -> reqwest::Response {
    sign_in_as(browser, url, "carol", PASSWORD).await
}

async fn sign_in_as(
    browser: &mut Browser,
    url: &str,
    username: &str,
    password: &str,
) -> reqwest::Response {
    let page = browser.get(url).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    browser
        .post(
            url.split('?').next().unwrap(),
            &[
                ("step", "password"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", username),
                ("password", password),
            ],
        )
        .await
}

/// The consent page's HTML, checked to be one.
async fn consent_page(res: reqwest::Response) -> String {
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains(r#"name="step" value="consent""#), "{html}");
    assert!(html.contains(r#"<button type="submit" name="decision" value="allow">Allow</button>"#));
    assert!(html.contains(r#"value="deny" class="secondary">Deny</button>"#));
    html
}

async fn answer(
    browser: &mut Browser,
    app: &TestApp,
    html: &str,
    decision: &str,
) -> reqwest::Response {
    browser
        .post(
            &app.pool_url("acme", "/oauth2/authorize"),
            &[
                ("step", "consent"),
                ("request", &hidden(html, "request")),
                ("csrf", &hidden(html, "csrf")),
                ("session", &hidden(html, "session")),
                ("decision", decision),
            ],
        )
        .await
}

fn location(res: &reqwest::Response) -> std::collections::HashMap<String, String> {
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res.headers()[LOCATION].to_str().unwrap();
    assert!(location.starts_with(REDIRECT), "{location}");
    query_of(location)
}

async fn exchange(app: &TestApp, client: &ClientCreds, code: &str) -> Value {
    let res = app
        .http
        .post(app.pool_url("acme", "/oauth2/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn consents(app: &TestApp, token: &str, username: &str) -> reqwest::Response {
    app.http
        .get(app.pool_url(
            "acme",
            &format!("/api/user-management/users/{username}/consents"),
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn revoke(app: &TestApp, token: &str, username: &str, client_id: &str) -> reqwest::Response {
    app.http
        .delete(app.pool_url(
            "acme",
            &format!("/api/user-management/users/{username}/consents/{client_id}"),
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn first_party_clients_never_ask() {
    let (app, _, _) = acme().await;
    let own = client(&app, "Acme portal", false).await;
    let mut browser = Browser::new();
    let res = sign_in(&mut browser, &authorize_url(&app, &own, "openid email", "")).await;
    let q = location(&res);
    assert!(q.contains_key("code"));
    // Not even when the client asks for it.
    let res = browser
        .get(&authorize_url(
            &app,
            &own,
            "openid email phone",
            "&prompt=consent",
        ))
        .await;
    assert!(location(&res).contains_key("code"));
    assert_eq!(app.audit_count("acme", "consent.granted").await, 0);
}

#[tokio::test]
async fn third_party_clients_ask_and_remember_what_was_allowed() {
    let (app, ada, _) = acme().await;
    let other = client(&app, "Partner <Quotes>", true).await;
    let mut browser = Browser::new();

    // After the password, the consent page: the application, the account, the scopes.
    let url = authorize_url(&app, &other, "openid profile email", "");
    let html = consent_page(sign_in(&mut browser, &url).await).await;
    assert!(html.contains("Allow Partner &lt;Quotes&gt;?"), "{html}");
    assert!(html.contains("<strong>carol</strong>"));
    assert!(html.contains("Know who you are"));
    assert!(html.contains("See your name and profile details"));
    assert!(html.contains("See your email address"));
    assert!(!html.contains("phone"));

    // Deny: back to the client with access_denied, its state and our issuer; nothing kept.
    let q = location(&answer(&mut browser, &app, &html, "deny").await);
    assert_eq!(q["error"], "access_denied");
    assert_eq!(q["state"], "st-9");
    assert_eq!(q["iss"], app.issuer("acme"));
    assert!(!q.contains_key("code"));
    let listed: Value = consents(&app, &ada, "carol").await.json().await.unwrap();
    assert_eq!(listed["consents"], serde_json::json!([]));

    // Signed in already, so the page comes at once; Allow gives a code that works.
    let html = consent_page(browser.get(&url).await).await;
    let q = location(&answer(&mut browser, &app, &html, "allow").await);
    assert_eq!(q["state"], "st-9");
    let tokens = exchange(&app, &other, &q["code"]).await;
    assert_eq!(
        crate::common::jwt_claims(tokens["access_token"].as_str().unwrap())["scope"],
        "openid profile email"
    );
    assert_eq!(app.audit_count("acme", "consent.granted").await, 1);

    // Remembered: the same scopes, or fewer, get a code without the page.
    assert!(location(&browser.get(&url).await).contains_key("code"));
    let fewer = authorize_url(&app, &other, "openid", "");
    assert!(location(&browser.get(&fewer).await).contains_key("code"));

    // A new scope asks again, naming it; allowed, the consent holds the union.
    let more = authorize_url(&app, &other, "openid phone", "");
    let html = consent_page(browser.get(&more).await).await;
    assert!(html.contains("See your phone number"));
    assert!(location(&answer(&mut browser, &app, &html, "allow").await).contains_key("code"));
    let listed: Value = consents(&app, &ada, "carol").await.json().await.unwrap();
    let list = listed["consents"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["client_id"], other.id.as_str());
    assert_eq!(
        list[0]["scopes"],
        serde_json::json!(["openid", "profile", "email", "phone"])
    );
    assert!(list[0]["granted_at"].is_i64() && list[0]["updated_at"].is_i64());
    assert!(location(&browser.get(&url).await).contains_key("code"));

    // prompt=consent always asks, as discovery says it can.
    let meta: Value = app
        .http
        .get(app.pool_url("acme", "/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["prompt_values_supported"],
        serde_json::json!(["none", "login", "consent"])
    );
    consent_page(
        browser
            .get(&authorize_url(&app, &other, "openid", "&prompt=consent"))
            .await,
    )
    .await;

    // prompt=none cannot ask: consent_required, at the client.
    let q = location(
        &browser
            .get(&authorize_url(
                &app,
                &other,
                "openid address",
                "&prompt=none",
            ))
            .await,
    );
    assert_eq!(q["error"], "consent_required");
    assert_eq!(q["state"], "st-9");
    assert!(!q.contains_key("code"));
    // prompt=none with a consent that covers the scopes: a code.
    let q = location(
        &browser
            .get(&authorize_url(&app, &other, "openid email", "&prompt=none"))
            .await,
    );
    assert!(q.contains_key("code"));
}

#[tokio::test]
async fn the_consent_form_needs_its_csrf_token_and_its_account() {
    let (app, ada, _) = acme().await;
    let other = client(&app, "Partner", true).await;
    let mut browser = Browser::new();
    let url = authorize_url(&app, &other, "openid email", "");
    let html = consent_page(sign_in(&mut browser, &url).await).await;
    let action = app.pool_url("acme", "/oauth2/authorize");

    // A forged form: the browser's cookies, but not its CSRF token.
    for csrf in ["", "x".repeat(43).as_str()] {
        let res = browser
            .post(
                &action,
                &[
                    ("step", "consent"),
                    ("request", &hidden(&html, "request")),
                    ("csrf", csrf),
                    ("session", &hidden(&html, "session")),
                    ("decision", "allow"),
                ],
            )
            .await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN);
    }
    // The same form from a browser without the cookies.
    let mut stranger = Browser::new();
    let res = answer(&mut stranger, &app, &html, "allow").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    // A form shown to another sign-in of this browser is not this one's.
    let res = browser
        .post(
            &action,
            &[
                ("step", "consent"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
                ("session", "0190b5c0-0000-7000-8000-000000000000"),
                ("decision", "allow"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    // Neither an unknown decision.
    let res = answer(&mut browser, &app, &html, "maybe").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    // Nothing was allowed by any of them.
    let listed: Value = consents(&app, &ada, "carol").await.json().await.unwrap();
    assert_eq!(listed["consents"], serde_json::json!([]));
    assert_eq!(app.audit_count("acme", "consent.granted").await, 0);
    consent_page(browser.get(&url).await).await;
}

#[tokio::test]
async fn a_revoked_consent_asks_again_and_only_dominating_admins_revoke() {
    let (app, ada, bob) = acme().await;
    let other = client(&app, "Partner", true).await;
    let mut browser = Browser::new();
    let url = authorize_url(&app, &other, "openid email", "");
    let html = consent_page(sign_in(&mut browser, &url).await).await;
    let q = location(&answer(&mut browser, &app, &html, "allow").await);
    let tokens = exchange(&app, &other, &q["code"]).await;
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    // A first-party client's authorization in the same browser, which the revocation spares.
    let own = client(&app, "Acme portal", false).await;
    let q = location(&browser.get(&authorize_url(&app, &own, "openid", "")).await);
    let own_access = exchange(&app, &own, &q["code"]).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    // bob may list sessions and sign users out, but carol holds user:GetUser, which he
    // does not: he can neither see nor take back her consents.
    assert_eq!(consents(&app, &bob, "carol").await.status(), 403);
    assert_eq!(revoke(&app, &bob, "carol", &other.id).await.status(), 403);
    assert!(location(&browser.get(&url).await).contains_key("code"));
    // A plain user cannot either, nor anyone without a token.
    let plain_client = app.create_client("acme", &[]).await;
    let alice = app
        .sign_in("acme", &plain_client, "alice", "alice-password-1")
        .await;
    assert_eq!(consents(&app, &alice, "carol").await.status(), 403);
    assert_eq!(revoke(&app, &alice, "carol", &other.id).await.status(), 403);
    let anonymous = app
        .http
        .get(app.pool_url("acme", "/api/user-management/users/carol/consents"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // The administrator revokes it: audited, gone, what the client held by it ends (its
    // access and refresh tokens), and the next authorization asks again.
    assert_eq!(app.introspect("acme", &other, access).await["active"], true);
    assert_eq!(revoke(&app, &ada, "carol", &other.id).await.status(), 204);
    assert_eq!(
        app.introspect("acme", &other, access).await["active"],
        false
    );
    let refused = app
        .http
        .post(app.pool_url("acme", "/oauth2/token"))
        .basic_auth(&other.id, Some(&other.secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh)])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400);
    assert_eq!(
        app.introspect("acme", &own, &own_access).await["active"],
        true
    );
    assert_eq!(app.audit_count("acme", "consent.revoked").await, 1);
    let listed: Value = consents(&app, &ada, "carol").await.json().await.unwrap();
    assert_eq!(listed["consents"], serde_json::json!([]));
    assert_eq!(revoke(&app, &ada, "carol", &other.id).await.status(), 404);
    assert_eq!(
        revoke(&app, &ada, "carol", "no such client!")
            .await
            .status(),
        404
    );
    assert_eq!(revoke(&app, &ada, "nobody", &other.id).await.status(), 404);
    consent_page(browser.get(&url).await).await;
}

#[tokio::test]
async fn consents_go_with_their_client_and_their_user() {
    let (app, ada, bob) = acme().await;
    let first = client(&app, "Partner one", true).await;
    let second = client(&app, "Partner two", true).await;
    // dave holds nothing beyond self-service: bob dominates him, and may manage his consents.
    app.create_user("acme", "dave", &[], "dave-password-1")
        .await;
    let mut browser = Browser::new();
    let url = authorize_url(&app, &first, "openid", "");
    let html = consent_page(sign_in_as(&mut browser, &url, "dave", "dave-password-1").await).await;
    assert!(location(&answer(&mut browser, &app, &html, "allow").await).contains_key("code"));
    let html = consent_page(
        browser
            .get(&authorize_url(&app, &second, "openid", ""))
            .await,
    )
    .await;
    assert!(location(&answer(&mut browser, &app, &html, "allow").await).contains_key("code"));
    let listed: Value = consents(&app, &bob, "dave").await.json().await.unwrap();
    assert_eq!(listed["consents"].as_array().unwrap().len(), 2);

    // Deleting a client deletes the consents given to it.
    let res = app
        .http
        .delete(app.pool_url(
            "acme",
            &format!("/api/user-management/app-clients/{}", first.id),
        ))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let listed: Value = consents(&app, &bob, "dave").await.json().await.unwrap();
    let list = listed["consents"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["client_id"], second.id.as_str());

    // Deleting the user deletes the rest (the consents referring to it do not hold it
    // back): a new dave starts with none.
    let res = app
        .http
        .delete(app.pool_url("acme", "/api/user-management/users/dave"))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    app.create_user("acme", "dave", &[], "dave-password-1")
        .await;
    let listed: Value = consents(&app, &bob, "dave").await.json().await.unwrap();
    assert_eq!(listed["consents"], serde_json::json!([]));
}
