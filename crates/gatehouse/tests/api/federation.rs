//! Federation (spec section 7b) end to end: a real SAML 2.0 identity provider (npm `samlify`,
//! `tests/peers/saml-idp.mjs`) and a real OpenID provider as upstream (npm `oidc-provider`,
//! `tests/peers/upstream-op.mjs`) sign users into a pool through its hosted pages in
//! Chromium, while the relying party (npm `openid-client`, `tests/peers/rp-browser.mjs`)
//! gets the pool's tokens. Then the attacks on the assertion consumer service and the OAuth
//! callback, over plain HTTP.

use gatehouse_domain::client::ClientType;
use serde_json::{Value, json};

use crate::browser::{Rp, peers_dir};
use crate::browser_signin::{login, register, spawn_app_at_its_address};
use crate::code_flow::{Browser, hidden};
use crate::common::{TestApp, spawn_app, start_peer};

const IDPS: &str = "/api/user-management/identity-providers";
const USERS: &str = "/api/user-management/users";
pub(crate) const CLAIM: &str = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims";
pub(crate) const ALICE_AT_CORP: &str = "alice-at-corp-password";
pub(crate) const UPSTREAM_SECRET: &str = "the-upstream-client-secret-of-32b";

/// A running peer and where it listens.
pub(crate) struct Peer {
    pub(crate) base: String,
    _child: tokio::process::Child,
}

pub(crate) async fn peer(script: &str, config: Value) -> Peer {
    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(peers_dir().join(script)).arg(config.to_string());
    let (child, line) = start_peer(cmd, script).await;
    let ready: Value =
        serde_json::from_str(&line).unwrap_or_else(|_| panic!("{script} did not start: {line}"));
    Peer {
        base: ready["base"].as_str().unwrap().to_owned(),
        _child: child,
    }
}

/// samlify as Corp's directory, for the SP of `issuer`: alice, with AD FS claim URIs.
pub(crate) async fn saml_idp(issuer: &str) -> Peer {
    peer(
        "saml-idp.mjs",
        json!({
            "sp_metadata_url": format!("{issuer}/saml2/metadata"),
            "users": {"alice": {"password": ALICE_AT_CORP, "name_id": "alice@corp.example",
                "attributes": {
                    format!("{CLAIM}/emailaddress"): "alice@corp.example",
                    format!("{CLAIM}/givenname"): "Alice",
                    format!("{CLAIM}/surname"): "Smith",
                    format!("{CLAIM}/name"): "Alice Smith",
                    "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups": ["admins"],
                }}},
            "sign": "assertion",
        }),
    )
    .await
}

/// oidc-provider as an upstream with a client for the pool of `issuer`, and alice.
async fn upstream_op(issuer: &str) -> Peer {
    peer(
        "upstream-op.mjs",
        json!({
            "clients": [{"client_id": "gatehouse", "client_secret": UPSTREAM_SECRET,
                "redirect_uris": [format!("{issuer}/oauth2/idpresponse")],
                "grant_types": ["authorization_code"], "response_types": ["code"]}],
            "users": {"alice": {"password": ALICE_AT_CORP, "claims": {
                "sub": "op-alice", "email": "alice@social.example", "email_verified": true,
                "name": "Alice from the OP", "given_name": "Alice", "family_name": "Op"}}},
        }),
    )
    .await
}

/// An administrator's token in `pool`.
pub(crate) async fn admin_token(app: &TestApp, pool: &str) -> String {
    app.create_user(pool, "ada", &["admin"], "ada-password-123")
        .await;
    let client = app.create_client(pool, &[]).await;
    app.sign_in(pool, &client, "ada", "ada-password-123").await
}

pub(crate) async fn api(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    let mut req = app
        .http
        .request(method, app.pool_url("acme", path))
        .bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap()
}

pub(crate) async fn create_idp(app: &TestApp, token: &str, attributes: Value) -> Value {
    let res = api(
        app,
        token,
        reqwest::Method::POST,
        IDPS,
        Some(json!({"data": {"type": "identity-provider", "attributes": attributes}})),
    )
    .await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 201, "{body}");
    body
}

/// The users of the pool whose status is `EXTERNAL_PROVIDER`.
async fn federated_users(app: &TestApp, token: &str) -> Vec<Value> {
    let res = api(app, token, reqwest::Method::GET, USERS, None).await;
    let page: Value = res.json().await.unwrap();
    page["users"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["status"] == "EXTERNAL_PROVIDER")
        .cloned()
        .collect()
}

/// The done-when of issue 11: alice signs in from Corp's SAML directory, SP-initiated
/// through the hosted page and IdP-initiated, as one just-in-time user with her mapped
/// profile; after `link-to-provider`, signing in through the OpenID provider is the same
/// person with the same `sub`. A local user with alice's upstream e-mail address is never
/// merged with her.
#[tokio::test]
async fn a_directory_and_an_openid_provider_sign_in_one_person() {
    let app = spawn_app_at_its_address().await;
    app.create_pool("acme").await;
    let issuer = app.issuer("acme");
    let admin = admin_token(&app, "acme").await;
    // A local account that happens to have the address Corp's directory gives alice.
    app.create_user("acme", "local-alice", &["admin"], "local-alice-password")
        .await;
    let res = api(
        &app,
        &admin,
        reqwest::Method::PUT,
        &format!("{USERS}/local-alice"),
        Some(
            json!({"attributes": {"email": "alice@corp.example", "name": "Local Alice",
            "roles": ["admin"]}}),
        ),
    )
    .await;
    assert_eq!(res.status(), 204);

    let idp = saml_idp(&issuer).await;
    let op = upstream_op(&issuer).await;
    // The directory by its metadata URL (fetched through the outbound client), the OpenID
    // provider by its issuer.
    let corp = create_idp(
        &app,
        &admin,
        json!({"name": "corp", "provider_type": "saml",
            "saml_metadata_url": format!("{}/metadata", idp.base)}),
    )
    .await;
    assert_eq!(
        corp["data"]["attributes"]["saml_entity_id"],
        format!("{}/metadata", idp.base)
    );
    create_idp(
        &app,
        &admin,
        json!({"name": "op", "provider_type": "oidc", "issuer": op.base,
            "client_id": "gatehouse", "client_secret": UPSTREAM_SECRET,
            "scopes": ["email", "profile"]}),
    )
    .await;
    // The pool's SP metadata is served where the IdP reads it.
    let metadata = app
        .http
        .get(format!("{issuer}/saml2/metadata"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        metadata.headers()["content-type"],
        "application/samlmetadata+xml"
    );
    let metadata = metadata.text().await.unwrap();
    assert!(metadata.contains(&format!("entityID=\"{issuer}/saml2/metadata\"")));
    assert!(metadata.contains(&format!("Location=\"{issuer}/saml2/idpresponse\"")));

    let mut rp = Rp::start().await;
    let web = register(&app, &rp, "acme", ClientType::Confidential).await;

    // SP-initiated, through the hosted page's "Sign in with corp" and Corp's own form.
    let mut cmd = login(&issuer, &web, "alice", ALICE_AT_CORP);
    cmd["provider"] = json!("corp");
    cmd["axe"] = json!(true);
    let saml = rp.ok(cmd).await;
    // The sign-in page with its provider buttons passes axe's serious and critical rules.
    assert_eq!(saml["pages"][0]["axe"], json!([]), "{saml:#}");
    let steps: Vec<&str> = saml["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["sign-in", "provider-sign-in"], "{saml:#}");
    let claims = &saml["claims"];
    assert_eq!(claims["email"], "alice@corp.example", "{claims:#}");
    assert_eq!(claims["given_name"], "Alice");
    assert_eq!(claims["family_name"], "Smith");
    assert_eq!(claims["name"], "Alice Smith");
    let sub = claims["sub"].as_str().unwrap().to_owned();
    // Cognito's `identities`: the directory's identity of hers.
    let identities = claims["identities"].as_array().unwrap();
    assert_eq!(identities.len(), 1, "{claims:#}");
    assert_eq!(identities[0]["providerName"], "corp");
    assert_eq!(identities[0]["providerType"], "SAML");
    assert_eq!(identities[0]["userId"], "alice@corp.example");
    assert_eq!(identities[0]["primary"], "true");

    // She is a user of her own, created just in time, with no role from the directory's
    // groups; the local account with her address is untouched and another user.
    let federated = federated_users(&app, &admin).await;
    assert_eq!(federated.len(), 1, "{federated:?}");
    let alice = &federated[0];
    assert_eq!(alice["username"], "corp_alice@corp.example");
    assert_eq!(alice["attributes"]["roles"], json!([]));
    assert_eq!(alice["attributes"]["family_name"], "Smith");
    let local = crate::browser_signin::user_id(&app, "acme", "local-alice").await;
    assert_ne!(local, sub);
    let local_user: Value = api(
        &app,
        &admin,
        reqwest::Method::GET,
        &format!("{USERS}/local-alice"),
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(local_user["attributes"]["name"], "Local Alice");

    // IdP-initiated: Corp's portal sends her to the application's authorization request.
    let unsolicited = rp
        .ok(
            json!({"op": "idp_initiated", "issuer": issuer, "client_id": web.id,
            "client_secret": web.secret, "scope": "openid email profile",
            "start_url": format!("{}/idp-initiated?user=alice", idp.base),
            "username": "alice", "password": ALICE_AT_CORP}),
        )
        .await;
    assert_eq!(
        unsolicited["claims"]["sub"],
        sub.as_str(),
        "{unsolicited:#}"
    );

    // The administrator links her to her identity at the OpenID provider: from then on,
    // signing in there is signing in as her.
    let res = api(
        &app,
        &admin,
        reqwest::Method::POST,
        &format!("{USERS}/corp_alice@corp.example/actions/link-to-provider"),
        Some(json!({"provider_name": "op", "provider_user_id": "op-alice"})),
    )
    .await;
    assert_eq!(res.status(), 204);
    let mut cmd = login(&issuer, &web, "alice", ALICE_AT_CORP);
    cmd["provider"] = json!("op");
    cmd["extra_params"] = json!({"prompt": "login"});
    let oidc = rp.ok(cmd).await;
    assert_eq!(oidc["claims"]["sub"], sub.as_str(), "{oidc:#}");
    // The OP's profile is hers now (its mapped claims replace the directory's).
    assert_eq!(oidc["claims"]["email"], "alice@social.example");
    let names: Vec<&str> = oidc["claims"]["identities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["providerName"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{oidc:#}");
    assert!(
        names.contains(&"corp") && names.contains(&"op"),
        "{names:?}"
    );
    let op_identity = oidc["claims"]["identities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["providerName"] == "op")
        .unwrap();
    assert_eq!(op_identity["providerType"], "OIDC");
    assert_eq!(op_identity["issuer"], op.base.as_str());
    assert_eq!(op_identity["userId"], "op-alice");
    assert_eq!(federated_users(&app, &admin).await.len(), 1);

    // `identity_provider=corp` skips the hosted page, as Cognito's does.
    let mut cmd = login(&issuer, &web, "alice", ALICE_AT_CORP);
    cmd["extra_params"] = json!({"prompt": "login", "identity_provider": "corp"});
    let direct = rp.ok(cmd).await;
    assert_eq!(direct["claims"]["sub"], sub.as_str());
    let direct_steps: Vec<&str> = direct["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["step"].as_str().unwrap())
        .collect();
    assert!(!direct_steps.contains(&"sign-in"), "{direct:#}");
}

/// Alice's IdP-initiated sign-in at `idp`, by hand in `browser` (which keeps the IdP's
/// session cookie): the IdP's form, then the page that posts its Response to the pool.
pub(crate) async fn idp_initiated_page(browser: &mut Browser, idp: &Peer) -> String {
    let form = browser
        .get(&format!("{}/idp-initiated?user=alice", idp.base))
        .await
        .text()
        .await
        .unwrap();
    let pending = hidden(&form, "pending");
    let page = browser
        .post(
            &format!("{}/login", idp.base),
            &[
                ("pending", pending.as_str()),
                ("username", "alice"),
                ("password", ALICE_AT_CORP),
            ],
        )
        .await;
    assert_eq!(page.status(), 200);
    page.text().await.unwrap()
}

/// A SAMLResponse for the IdP-initiated sign-in of alice, as the IdP hands it to the browser.
async fn unsolicited_response(idp: &Peer) -> String {
    hidden(
        &idp_initiated_page(&mut Browser::new(), idp).await,
        "SAMLResponse",
    )
}

async fn post_acs(app: &TestApp, pool: &str, form: &[(&str, &str)]) -> reqwest::Response {
    app.http
        .post(app.pool_url(pool, "/saml2/idpresponse"))
        .form(form)
        .send()
        .await
        .unwrap()
}

/// The assertion consumer service refuses a replayed assertion, a tampered one, one for
/// another pool, unsolicited ones when the provider takes none, and oversized posts; each
/// refusal is audited and none is a server error.
#[tokio::test]
async fn the_assertion_consumer_service_refuses_replays_and_forgeries() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_pool("beta").await;
    let issuer = app.issuer("acme");
    let admin = admin_token(&app, "acme").await;
    // The IdP reads the SP's metadata from the app's address, not its public name.
    let idp = peer(
        "saml-idp.mjs",
        json!({
            "sp_metadata_url": format!("{}/saml2/metadata", app.pool_url("acme", "")),
            "users": {"alice": {"password": ALICE_AT_CORP, "name_id": "alice@corp.example",
                "attributes": {format!("{CLAIM}/emailaddress"): "alice@corp.example"}}},
        }),
    )
    .await;
    let metadata = reqwest::get(format!("{}/metadata", idp.base))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    create_idp(
        &app,
        &admin,
        json!({"name": "corp", "provider_type": "saml", "saml_metadata": metadata}),
    )
    .await;
    assert!(issuer.starts_with(&app.public_url));

    let response = unsolicited_response(&idp).await;
    // Accepted once: the browser is signed in (no request to continue, so a page says so).
    let first = post_acs(&app, "acme", &[("SAMLResponse", &response)]).await;
    assert_eq!(first.status(), 200);
    assert!(
        first
            .headers()
            .get_all("set-cookie")
            .iter()
            .any(|c| c.to_str().unwrap().starts_with("gatehouse_sso_acme="))
    );
    // Replayed: refused.
    let replay = post_acs(&app, "acme", &[("SAMLResponse", &response)]).await;
    assert_eq!(replay.status(), 400);
    assert!(replay.headers().get("set-cookie").is_none());

    // A fresh response, altered: one character of the signed document changed.
    let fresh = unsolicited_response(&idp).await;
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let xml = String::from_utf8(b64.decode(&fresh).unwrap()).unwrap();
    let tampered = b64.encode(xml.replace("alice@corp.example", "ada@corp.example"));
    assert_eq!(
        post_acs(&app, "acme", &[("SAMLResponse", &tampered)])
            .await
            .status(),
        400
    );
    // For another pool, which has no such provider: refused there.
    assert_eq!(
        post_acs(&app, "beta", &[("SAMLResponse", &fresh)])
            .await
            .status(),
        404
    );
    // Garbage, an empty form, a huge one: 4xx, never 5xx.
    for form in [
        vec![("SAMLResponse", "not base64 at all!")],
        vec![("SAMLResponse", "PHg+PC94Pg==")],
        vec![],
    ] {
        let status = post_acs(&app, "acme", &form).await.status();
        assert!(status.is_client_error(), "{form:?}: {status}");
    }
    let huge = "A".repeat(300 * 1024);
    let status = post_acs(&app, "acme", &[("SAMLResponse", &huge)])
        .await
        .status();
    assert_eq!(status, 413);

    // The provider stops taking unsolicited responses: the fresh one is refused.
    let res = api(
        &app,
        &admin,
        reqwest::Method::PATCH,
        &format!("{IDPS}/corp"),
        Some(json!({"data": {"attributes": {"idp_initiated": false}}})),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        post_acs(&app, "acme", &[("SAMLResponse", &fresh)])
            .await
            .status(),
        404
    );

    // Each refusal of an answer that named the provider is in the audit log.
    let events: Value = api(
        &app,
        &admin,
        reqwest::Method::GET,
        "/api/audit/events?action=user.federated_sign_in_refused",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    let reasons: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["details"]["reason"].as_str().unwrap_or(""))
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("already used")),
        "{events:#}"
    );
    assert!(
        reasons
            .iter()
            .any(|r| r.contains("digest") || r.contains("signature") || r.contains("Digest")),
        "{events:#}"
    );
}

/// The OAuth callback is bound to the browser that started the sign-in and taken once: a
/// callback with another state, from another browser, or replayed signs no one in.
#[tokio::test]
async fn oauth_callbacks_are_bound_to_their_browser_and_taken_once() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    let admin = admin_token(&app, "acme").await;
    let op = upstream_op(&app.issuer("acme")).await;
    create_idp(
        &app,
        &admin,
        json!({"name": "op", "provider_type": "oidc", "issuer": op.base,
            "client_id": "gatehouse", "client_secret": UPSTREAM_SECRET}),
    )
    .await;
    let client = crate::code_flow::web_client(&app, "acme", &["authorization_code"]).await;
    let authorize = crate::code_flow::authorize_url(&app, "acme", &client, "&identity_provider=op");
    let mut browser = Browser::new();
    let res = browser.get(&authorize).await;
    assert_eq!(res.status(), 303);
    let upstream = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(upstream.starts_with(&op.base), "{upstream}");
    let sent = crate::code_flow::query_of(&upstream);
    assert_eq!(sent["code_challenge_method"], "S256");
    assert!(sent.contains_key("nonce"));
    let state = sent["state"].clone();
    let callback = |state: &str| {
        app.pool_url(
            "acme",
            &format!("/oauth2/idpresponse?code=whatever&state={state}"),
        )
    };

    // Another state: nothing pending under it.
    let res = browser.get(&callback("forged-state")).await;
    assert_eq!(res.status(), 400);
    // The right state from another browser (no federation cookie): refused.
    let mut other = Browser::new();
    assert_eq!(other.get(&callback(&state)).await.status(), 400);
    // Another browser's cookie with this browser's state: refused.
    let mut third = Browser::new();
    let res = third.get(&authorize).await;
    assert_eq!(res.status(), 303);
    assert_eq!(third.get(&callback(&state)).await.status(), 400);
    // The starting browser with its state reaches the provider's token endpoint, which
    // refuses the made-up code: refused, and audited.
    assert_eq!(browser.get(&callback(&state)).await.status(), 400);
    // An unknown provider name.
    let res = browser
        .get(&authorize.replace("identity_provider=op", "identity_provider=nobody"))
        .await;
    assert_eq!(res.status(), 404);
}

// Login with Amazon, as a local stand-in (the real one is out of reach): it checks what
// Amazon checks (client, code once, redirect URI, PKCE) and answers its documented shapes.
#[derive(Clone, Default)]
struct AmazonStandIn {
    codes: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (String, String)>>>,
    token_calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

const AMZN_CLIENT: &str = "amzn1.application-oa2-client.gatehouse";
const AMZN_SECRET: &str = "amazon-client-secret";
const AMZN_TOKEN: &str = "Atza|amazon-access-token";

async fn amazon_dialog(
    axum::extract::State(s): axum::extract::State<AmazonStandIn>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if q.get("client_id").map(String::as_str) != Some(AMZN_CLIENT)
        || q.get("scope").map(String::as_str) != Some("profile")
        || q.get("code_challenge_method").map(String::as_str) != Some("S256")
    {
        return (axum::http::StatusCode::BAD_REQUEST, "bad request").into_response();
    }
    s.codes.lock().unwrap().insert(
        "amzn-code".to_owned(),
        (q["redirect_uri"].clone(), q["code_challenge"].clone()),
    );
    let mut back = url::Url::parse(&q["redirect_uri"]).unwrap();
    back.query_pairs_mut()
        .append_pair("code", "amzn-code")
        .append_pair("state", &q["state"]);
    axum::response::Redirect::to(back.as_str()).into_response()
}

async fn amazon_token(
    axum::extract::State(s): axum::extract::State<AmazonStandIn>,
    axum::Form(f): axum::Form<std::collections::HashMap<String, String>>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    use base64::Engine;
    s.token_calls
        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let refuse = || {
        (
            axum::http::StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant"})),
        )
            .into_response()
    };
    if f.get("client_id").map(String::as_str) != Some(AMZN_CLIENT)
        || f.get("client_secret").map(String::as_str) != Some(AMZN_SECRET)
    {
        return refuse();
    }
    let Some((redirect, challenge)) = f
        .get("code")
        .and_then(|c| s.codes.lock().unwrap().remove(c))
    else {
        return refuse();
    };
    let verifier = f.get("code_verifier").cloned().unwrap_or_default();
    let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(gatehouse_crypto::secret::sha256(verifier.as_bytes()));
    if f.get("redirect_uri") != Some(&redirect) || computed != challenge {
        return refuse();
    }
    axum::Json(json!({"access_token": AMZN_TOKEN, "token_type": "bearer", "expires_in": 3600}))
        .into_response()
}

async fn amazon_profile(headers: axum::http::HeaderMap) -> axum::response::Response {
    use axum::response::IntoResponse;
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {AMZN_TOKEN}"))
    {
        return axum::http::StatusCode::UNAUTHORIZED.into_response();
    }
    axum::Json(
        json!({"user_id": "amzn1.account.AGATEHOUSE", "name": "Grace Hopper",
        "email": "grace@amazon.example"}),
    )
    .into_response()
}

/// The Login with Amazon preset through a pool: Gatehouse's own flow (authorization request,
/// the callback, the code exchange and the profile API at endpoints overridden to the stand-in)
/// signs Grace in as a user of her own, whose tokens name her Amazon identity.
#[tokio::test]
async fn the_amazon_preset_signs_in_through_the_pool() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    let admin = admin_token(&app, "acme").await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let amazon = format!("http://{}", listener.local_addr().unwrap());
    let stand_in = AmazonStandIn::default();
    let router = axum::Router::new()
        .route("/ap/oa", axum::routing::get(amazon_dialog))
        .route("/auth/o2/token", axum::routing::post(amazon_token))
        .route("/user/profile", axum::routing::get(amazon_profile))
        .with_state(stand_in.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    create_idp(
        &app,
        &admin,
        json!({"name": "amazon", "provider_type": "amazon",
            "client_id": AMZN_CLIENT, "client_secret": AMZN_SECRET,
            "authorization_endpoint": format!("{amazon}/ap/oa"),
            "token_endpoint": format!("{amazon}/auth/o2/token"),
            "userinfo_endpoint": format!("{amazon}/user/profile")}),
    )
    .await;
    let client = crate::code_flow::web_client(&app, "acme", &["authorization_code"]).await;
    let mut browser = Browser::new();
    let to_amazon = browser
        .get(&crate::code_flow::authorize_url(
            &app,
            "acme",
            &client,
            "&identity_provider=amazon",
        ))
        .await;
    assert_eq!(to_amazon.status(), 303);
    let back = browser
        .get(to_amazon.headers()["location"].to_str().unwrap())
        .await;
    let callback =
        back.headers()["location"]
            .to_str()
            .unwrap()
            .replacen(&app.public_url, &app.addr, 1);
    let cookies = browser.cookies.clone();
    let done = browser.get(&callback).await;
    assert_eq!(done.status(), 303, "{}", done.text().await.unwrap());
    // The same answer again, with the same cookie: its state was taken, so Amazon is not
    // even asked.
    let calls = || {
        stand_in
            .token_calls
            .load(std::sync::atomic::Ordering::SeqCst)
    };
    assert_eq!(calls(), 1);
    let mut replayer = Browser::new();
    replayer.cookies = cookies;
    assert_eq!(replayer.get(&callback).await.status(), 400);
    assert_eq!(calls(), 1);
    let location = done.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        location.starts_with(crate::code_flow::REDIRECT),
        "{location}"
    );
    let code = crate::code_flow::query_of(&location)["code"].clone();
    let tokens: Value = app
        .http
        .post(app.pool_url("acme", "/oauth2/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", crate::code_flow::REDIRECT),
            ("code_verifier", crate::code_flow::VERIFIER),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = crate::common::jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["email"], "grace@amazon.example", "{id:#}");
    assert_eq!(id["name"], "Grace Hopper");
    assert_eq!(id["identities"][0]["providerType"], "LoginWithAmazon");
    assert_eq!(id["identities"][0]["userId"], "amzn1.account.AGATEHOUSE");
    let users = federated_users(&app, &admin).await;
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["username"], "amazon_amzn1.account.AGATEHOUSE");
}
