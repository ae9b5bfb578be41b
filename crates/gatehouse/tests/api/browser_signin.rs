//! Browser sign-in against Gatehouse itself, judged by an independent relying party: npm
//! `openid-client` runs the protocol (discovery, authorization code with PKCE S256, state and
//! nonce, the ID token's signature and claims, userinfo, refresh, RP-initiated logout) while
//! Debian's Chromium goes through the hosted pages, each checked with axe and screenshotted
//! at 1280×800 and 390×844 (see `browser.rs` and `tests/peers/rp-browser.mjs`).
//!
//! The browser must reach the server at its issuer, so these servers' public URL is their own
//! loopback address rather than the suite's usual `http://gatehouse.test`.

use std::path::Path;

use gatehouse_crypto::secret::Secret;
use gatehouse_domain::client::ClientType;
use gatehouse_domain::ids::{PoolSlug, Username};
use gatehouse_domain::user::UserAttributes;
use gatehouse_service::clients::NewAppClient;
use gatehouse_service::grants::authorization_code::s256;
use serde_json::{Value, json};

use crate::browser::{Rp, screenshot_dir};
use crate::common::{Backend, ClientCreds, TestApp, spawn_app_with};

const ADA_PASSWORD: &str = "ada-password-123";
const SCOPE: &str = "openid profile email offline_access";

/// A server on the suite's backend whose public URL is the address it listens on.
pub(crate) async fn spawn_app_at_its_address() -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    spawn_app_with(Backend::from_env(), |c| {
        c.listen = format!("127.0.0.1:{port}");
        c.public_url = format!("http://127.0.0.1:{port}");
    })
    .await
}

/// Registers a client of the code flow (with refresh tokens) for the relying party's
/// redirect and post-logout URIs.
pub(crate) async fn register(
    app: &TestApp,
    rp: &Rp,
    pool: &str,
    client_type: ClientType,
) -> ClientCreds {
    let pool = app.gh.pool(&PoolSlug::parse(pool).unwrap()).await.unwrap();
    let name = match client_type {
        ClientType::Public => "Acme single-page app",
        ClientType::Confidential => "Acme web app",
    };
    let (client, secret) = app
        .gh
        .create_app_client_as_operator(
            &pool,
            NewAppClient {
                name: name.to_owned(),
                scopes: None,
                grant_types: Some(vec![
                    "authorization_code".to_owned(),
                    "refresh_token".to_owned(),
                ]),
                redirect_uris: Some(vec![rp.redirect_uri().to_owned()]),
                post_logout_redirect_uris: Some(vec![rp.post_logout_redirect_uri().to_owned()]),
                client_type,
                third_party: false,
                ..NewAppClient::default()
            },
        )
        .await
        .unwrap();
    ClientCreds {
        id: client.client_id.to_string(),
        secret: secret.map(|s| s.expose().to_owned()).unwrap_or_default(),
    }
}

/// The relying party's login command for `client` (with its secret when it has one).
pub(crate) fn login(issuer: &str, client: &ClientCreds, username: &str, password: &str) -> Value {
    let mut cmd = json!({
        "op": "login", "issuer": issuer, "client_id": client.id,
        "username": username, "password": password, "scope": SCOPE,
    });
    if !client.secret.is_empty() {
        cmd["client_secret"] = json!(client.secret);
    }
    cmd
}

fn expecting_page(mut cmd: Value, shown: bool) -> Value {
    cmd["expect_page"] = json!(shown);
    cmd
}

/// With axe and screenshots into `dir`, the files named after `label`.
fn reviewed(mut cmd: Value, dir: &Path, label: &str) -> Value {
    cmd["axe"] = json!(true);
    cmd["screenshot_dir"] = json!(dir);
    cmd["label"] = json!(label);
    cmd
}

/// A recorded page: the step expected, no serious or critical axe violation, and a PNG
/// screenshot at each of 1280×800 and 390×844 (full page: at least that tall).
fn assert_reviewed(page: &Value, step: &str) {
    assert_eq!(page["step"], step, "{page:#}");
    assert_eq!(page["axe"], json!([]), "axe violations on the {step} page");
    let shots: Vec<&str> = page["screenshots"]
        .as_array()
        .unwrap_or_else(|| panic!("no screenshots: {page:#}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(shots.len(), 2, "{page:#}");
    for (path, (width, height)) in shots.iter().zip([(1280, 800), (390, 844)]) {
        let png = std::fs::read(path).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "{path}");
        let size = |at: usize| u32::from_be_bytes(png[at..at + 4].try_into().unwrap());
        assert_eq!(size(16), width, "{path}");
        assert!(size(20) >= height, "{path}");
    }
}

/// The user id of `username` in `pool`: the `sub` of its tokens.
pub(crate) async fn user_id(app: &TestApp, pool: &str, username: &str) -> String {
    let pool = app.gh.pool(&PoolSlug::parse(pool).unwrap()).await.unwrap();
    app.gh
        .user_named(&pool, &Username::parse(username).unwrap())
        .await
        .unwrap()
        .id
        .to_string()
}

/// A hand-made authorization request for `client` of `pool`, with a valid S256 challenge.
fn authorize_url(
    app: &TestApp,
    pool: &str,
    client: &ClientCreds,
    redirect_uri: &str,
    extra: &str,
) -> String {
    let challenge = s256(&"v".repeat(43));
    let redirect: String = url::form_urlencoded::byte_serialize(redirect_uri.as_bytes()).collect();
    format!(
        "{}/oauth2/authorize?response_type=code&client_id={}&scope=openid\
         &code_challenge={challenge}&code_challenge_method=S256&redirect_uri={redirect}{extra}",
        app.issuer(pool),
        client.id,
    )
}

/// Sign-in with PKCE for a confidential and a public client of one pool: discovery, the
/// hosted page, the code exchange with its ID token, userinfo, refresh tokens that rotate and
/// a reused one refused, single sign-on within the pool and not across pools, RP-initiated
/// logout with and without `id_token_hint`, and the sign-in page again after it.
#[tokio::test]
async fn a_relying_party_signs_in_refreshes_and_signs_out_through_the_hosted_pages() {
    let app = spawn_app_at_its_address().await;
    let mut rp = Rp::start().await;
    let (shots, _keep) = screenshot_dir("browser_signin");
    for pool in ["acme", "beta"] {
        app.create_pool(pool).await;
        app.create_user(pool, "ada", &[], ADA_PASSWORD).await;
    }
    let web = register(&app, &rp, "acme", ClientType::Confidential).await;
    let spa = register(&app, &rp, "acme", ClientType::Public).await;
    let post = register(&app, &rp, "acme", ClientType::Confidential).await;
    let beta = register(&app, &rp, "beta", ClientType::Public).await;
    let acme = app.issuer("acme");
    let ada = user_id(&app, "acme", "ada").await;

    // Discovery says what the relying party relies on (it reads the same document).
    let meta: Value = app
        .http
        .get(format!("{acme}/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(meta["issuer"], acme);
    assert_eq!(
        meta["authorization_endpoint"],
        format!("{acme}/oauth2/authorize")
    );
    assert_eq!(
        meta["end_session_endpoint"],
        format!("{acme}/oauth2/logout")
    );
    assert_eq!(
        meta["id_token_signing_alg_values_supported"],
        json!(["RS256"])
    );
    assert_eq!(meta["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        meta["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );

    // The confidential client: the sign-in page, filled in; the code exchanged with PKCE and
    // the ID token's signature, iss, aud and nonce checked by openid-client.
    let signed_in = rp
        .ok(reviewed(
            expecting_page(login(&acme, &web, "ada", ADA_PASSWORD), true),
            &shots,
            "web",
        ))
        .await;
    assert_eq!(signed_in["page_shown"], true);
    assert_eq!(
        signed_in["pages"].as_array().unwrap().len(),
        1,
        "{signed_in:#}"
    );
    assert_reviewed(&signed_in["pages"][0], "sign-in");
    let claims = &signed_in["claims"];
    assert_eq!(claims["iss"], acme);
    assert_eq!(claims["sub"], ada.as_str());
    assert_eq!(claims["aud"], web.id.as_str());
    assert_eq!(claims["preferred_username"], "ada");
    assert!(claims["nonce"].is_string(), "{claims:#}");
    assert!(claims["sid"].is_string(), "{claims:#}");
    assert_eq!(signed_in["userinfo"]["sub"], ada.as_str());
    assert_eq!(signed_in["userinfo"]["email"], "ada@example.com");
    assert!(
        signed_in["tokens"]["refresh_token"].is_string(),
        "{signed_in:#}"
    );

    // Refresh twice; each answer carries a new refresh token, and the new access token works.
    let mut previous = signed_in["tokens"]["refresh_token"].clone();
    for _ in 0..2 {
        let r = rp.ok(json!({"op": "refresh", "client_id": web.id})).await;
        assert_eq!(r["rotated"], true, "{r:#}");
        assert_ne!(r["tokens"]["refresh_token"], previous);
        assert_eq!(r["claims"]["sub"], ada.as_str());
        assert_eq!(r["claims"]["aud"], web.id.as_str());
        assert_eq!(r["claims"]["sid"], claims["sid"]);
        assert_eq!(r["claims"]["auth_time"], claims["auth_time"]);
        previous = r["tokens"]["refresh_token"].clone();
    }
    let r = rp.ok(json!({"op": "userinfo", "client_id": web.id})).await;
    assert_eq!(r["userinfo"]["sub"], ada.as_str());

    // The public client of the same pool, in the same browser: a code without the page, for
    // the same user and browser session.
    let sso = rp
        .ok(expecting_page(
            login(&acme, &spa, "ada", ADA_PASSWORD),
            false,
        ))
        .await;
    assert_eq!(sso["page_shown"], false);
    assert_eq!(sso["pages"], json!([]));
    assert_eq!(sso["claims"]["aud"], spa.id.as_str());
    assert_eq!(sso["claims"]["sub"], ada.as_str());
    assert_eq!(sso["claims"]["sid"], claims["sid"]);
    let first = sso["tokens"]["refresh_token"].clone();
    for _ in 0..2 {
        let r = rp.ok(json!({"op": "refresh", "client_id": spa.id})).await;
        assert_eq!(r["rotated"], true, "{r:#}");
    }
    // A rotated-away refresh token is refused, and ends its family: the latest one too.
    let reused = rp
        .call(json!({"op": "refresh", "client_id": spa.id, "refresh_token": first}))
        .await;
    assert_eq!(reused["ok"], false, "{reused:#}");
    assert_eq!(reused["error"]["error"], "invalid_grant", "{reused:#}");
    let latest = rp.call(json!({"op": "refresh", "client_id": spa.id})).await;
    assert_eq!(latest["error"]["error"], "invalid_grant", "{latest:#}");
    // The confidential client's authorization is another family: untouched.
    rp.ok(json!({"op": "refresh", "client_id": web.id})).await;

    // A confidential client that sends its secret in the form (client_secret_post, which
    // discovery advertises) exchanges its code and refreshes alike.
    let mut cmd = expecting_page(login(&acme, &post, "ada", ADA_PASSWORD), false);
    cmd["auth_method"] = json!("client_secret_post");
    let by_post = rp.ok(cmd).await;
    assert_eq!(by_post["claims"]["aud"], post.id.as_str());
    let r = rp.ok(json!({"op": "refresh", "client_id": post.id})).await;
    assert_eq!(r["rotated"], true, "{r:#}");

    // Another pool never rides on acme's session: its sign-in page is shown.
    let other = rp
        .ok(expecting_page(
            login(&app.issuer("beta"), &beta, "ada", ADA_PASSWORD),
            true,
        ))
        .await;
    assert_eq!(other["claims"]["iss"], app.issuer("beta"));
    assert_ne!(other["claims"]["sub"], ada.as_str());

    // One SSO cookie per pool, out of scripts' reach, kept off cross-site posts.
    let cookies = rp.ok(json!({"op": "cookies"})).await;
    for pool in ["acme", "beta"] {
        let name = format!("gatehouse_sso_{pool}");
        let cookie = cookies["cookies"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name.as_str())
            .unwrap_or_else(|| panic!("no {name}: {cookies:#}"));
        assert_eq!(cookie["httpOnly"], true, "{cookie:#}");
        assert_eq!(cookie["sameSite"], "Lax", "{cookie:#}");
    }

    // RP-initiated logout without id_token_hint: the confirmation, Sign out, back at the
    // relying party with its state.
    let out = rp
        .ok(reviewed(
            json!({"op": "logout", "client_id": web.id, "id_token_hint": false}),
            &shots,
            "web",
        ))
        .await;
    assert_eq!(out["confirm_shown"], true, "{out:#}");
    assert_reviewed(&out["pages"][0], "sign-out");
    assert_eq!(out["at_post_logout_redirect"], true, "{out:#}");
    assert_eq!(out["state_ok"], true, "{out:#}");
    // What the browser session authorized ended with it.
    let ended = rp.call(json!({"op": "refresh", "client_id": web.id})).await;
    assert_eq!(ended["error"]["error"], "invalid_grant", "{ended:#}");

    // After logout the sign-in page is shown again: a login expecting SSO says so.
    let shown = rp
        .call(expecting_page(
            login(&acme, &spa, "ada", ADA_PASSWORD),
            false,
        ))
        .await;
    assert_eq!(shown["ok"], false, "{shown:#}");
    assert!(
        shown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sign-in page was shown"),
        "{shown:#}"
    );
    let again = rp
        .ok(expecting_page(
            login(&acme, &spa, "ada", ADA_PASSWORD),
            true,
        ))
        .await;
    assert_eq!(again["claims"]["sub"], ada.as_str());

    // Signing out of acme left beta's session alone.
    let beta_sso = rp
        .ok(expecting_page(
            login(&app.issuer("beta"), &beta, "ada", ADA_PASSWORD),
            false,
        ))
        .await;
    assert_eq!(beta_sso["page_shown"], false);

    // With the hint of the current session: out at once, without the confirmation, even once
    // the ID token has expired (RP-Initiated Logout §2: the hint is accepted past its `exp`).
    app.clock.advance(2 * 3600);
    let out = rp
        .ok(json!({"op": "logout", "client_id": spa.id, "id_token_hint": true}))
        .await;
    assert_eq!(out["confirm_shown"], false, "{out:#}");
    assert_eq!(out["at_post_logout_redirect"], true, "{out:#}");
    assert_eq!(out["state_ok"], true, "{out:#}");
    let ended = rp.call(json!({"op": "refresh", "client_id": spa.id})).await;
    assert_eq!(ended["error"]["error"], "invalid_grant", "{ended:#}");
    // No session is left: prompt=none answers login_required at the relying party.
    let url = authorize_url(
        &app,
        "acme",
        &spa,
        rp.redirect_uri(),
        "&prompt=none&state=st-9",
    );
    let raw = rp.ok(json!({"op": "authorize_raw", "url": url})).await;
    assert_eq!(raw["at_redirect_uri"], true, "{raw:#}");
    assert_eq!(raw["params"]["error"], "login_required", "{raw:#}");
    assert_eq!(raw["params"]["state"], "st-9", "{raw:#}");
    assert_eq!(raw["params"]["iss"], acme, "{raw:#}");
}

/// The new-password step for a user created with a temporary password, the error page for a
/// redirect URI that is not registered (the browser never reaches it), `prompt=none` without a
/// session, and the signed-out page: each page passes axe and is screenshotted.
#[tokio::test]
async fn the_hosted_pages_ask_for_a_new_password_and_refuse_what_they_must() {
    let app = spawn_app_at_its_address().await;
    let mut rp = Rp::start().await;
    let (shots, _keep) = screenshot_dir("browser_signin_steps");
    app.create_pool("acme").await;
    let spa = register(&app, &rp, "acme", ClientType::Public).await;
    let acme = app.issuer("acme");
    let pool = app
        .gh
        .pool(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    let attributes = UserAttributes {
        email: "bob@example.com".to_owned(),
        name: "Bob".to_owned(),
        ..UserAttributes::default()
    };
    let (bob, temporary) = app
        .gh
        .create_user_with_password(&pool, "bob", attributes, None, None)
        .await
        .unwrap();
    let temporary: Secret = temporary.unwrap();

    // prompt=none without a session: login_required at the relying party, with its state.
    let url = authorize_url(
        &app,
        "acme",
        &spa,
        rp.redirect_uri(),
        "&prompt=none&state=st-1",
    );
    let raw = rp.ok(json!({"op": "authorize_raw", "url": url})).await;
    assert_eq!(raw["at_redirect_uri"], true, "{raw:#}");
    assert_eq!(raw["params"]["error"], "login_required", "{raw:#}");
    assert_eq!(raw["params"]["state"], "st-1", "{raw:#}");
    assert!(raw["params"].get("code").is_none(), "{raw:#}");

    // Bob signs in with the temporary password, is asked for a new one, and comes back with
    // a code.
    let mut cmd = reviewed(
        expecting_page(login(&acme, &spa, "bob", temporary.expose()), true),
        &shots,
        "bob",
    );
    cmd["new_password"] = json!("bobs-own-password-7");
    let signed_in = rp.ok(cmd).await;
    assert_eq!(
        signed_in["pages"].as_array().unwrap().len(),
        2,
        "{signed_in:#}"
    );
    assert_reviewed(&signed_in["pages"][0], "sign-in");
    assert_reviewed(&signed_in["pages"][1], "new-password");
    assert_eq!(signed_in["claims"]["sub"], bob.id.to_string());
    assert_eq!(signed_in["claims"]["preferred_username"], "bob");

    // In a fresh browser the temporary password no longer works: the page says so.
    rp.ok(json!({"op": "new_context"})).await;
    let refused = rp.call(login(&acme, &spa, "bob", temporary.expose())).await;
    assert_eq!(refused["ok"], false, "{refused:#}");
    assert!(
        refused["text"]
            .as_str()
            .unwrap()
            .contains("Incorrect username or password."),
        "{refused:#}"
    );

    // An unregistered redirect URI: the error page, and the browser never goes there.
    let evil = format!("{}/evil", rp.redirect_uri());
    let url = authorize_url(&app, "acme", &spa, &evil, "&state=st-2");
    let raw = rp
        .ok(reviewed(
            json!({"op": "authorize_raw", "url": url}),
            &shots,
            "unregistered",
        ))
        .await;
    assert_eq!(raw["at_redirect_uri"], false, "{raw:#}");
    assert_eq!(raw["status"], 400, "{raw:#}");
    assert_eq!(raw["navigations"].as_array().unwrap().len(), 1, "{raw:#}");
    assert!(
        raw["text"]
            .as_str()
            .unwrap()
            .contains("The redirect_uri is not registered for this application."),
        "{raw:#}"
    );
    assert_reviewed(&raw["pages"][0], "raw");

    // Logout with nothing to end and no post-logout URI: the signed-out page.
    let url = format!("{acme}/oauth2/logout?client_id={}", spa.id);
    let raw = rp
        .ok(reviewed(
            json!({"op": "authorize_raw", "url": url}),
            &shots,
            "signed-out",
        ))
        .await;
    assert_eq!(raw["status"], 200, "{raw:#}");
    assert!(
        raw["text"].as_str().unwrap().contains("Signed out"),
        "{raw:#}"
    );
    assert_reviewed(&raw["pages"][0], "raw");
}

/// "Sign in with staff account" in a real browser: the client pool's page, the staff pool's
/// page, back with a code for the relying party, whose ID token (verified by openid-client)
/// names the staff identity; then another client pool with the staff pool's single sign-on.
#[tokio::test]
async fn a_staff_member_signs_in_with_the_staff_account_through_the_hosted_pages() {
    let app = spawn_app_at_its_address().await;
    let mut rp = Rp::start().await;
    let (shots, _keep) = screenshot_dir("staff_signin");
    app.create_user("staff", "sue", &["support"], "sue-staff-password-1")
        .await;
    let sue = user_id(&app, "staff", "sue").await;
    for pool in ["acme", "beta"] {
        app.create_pool(pool).await;
    }
    let acme_web = register(&app, &rp, "acme", ClientType::Confidential).await;
    let beta_web = register(&app, &rp, "beta", ClientType::Public).await;
    let mut cmd = reviewed(
        expecting_page(
            login(
                &app.issuer("acme"),
                &acme_web,
                "sue",
                "sue-staff-password-1",
            ),
            true,
        ),
        &shots,
        "staff",
    );
    cmd["staff"] = json!(true);
    let signed_in = rp.ok(cmd).await;
    let pages = signed_in["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2, "{signed_in:#}");
    assert_reviewed(&pages[0], "sign-in");
    assert_reviewed(&pages[1], "staff-sign-in");
    assert!(
        pages[1]["url"]
            .as_str()
            .unwrap()
            .starts_with(&app.issuer("staff")),
        "{signed_in:#}"
    );
    let claims = &signed_in["claims"];
    assert_eq!(claims["iss"], app.issuer("acme"));
    assert_eq!(claims["username"], "staff_sue");
    assert_eq!(claims["identities"][0]["providerName"], "staff");
    assert_eq!(claims["identities"][0]["userId"], sue.as_str());
    assert_eq!(signed_in["userinfo"]["email"], "sue@example.com");
    let r = rp
        .ok(json!({"op": "refresh", "client_id": acme_web.id}))
        .await;
    assert_eq!(r["rotated"], true, "{r:#}");

    // Another client pool: its own page, then straight through the staff pool.
    let mut cmd = expecting_page(
        login(
            &app.issuer("beta"),
            &beta_web,
            "sue",
            "sue-staff-password-1",
        ),
        true,
    );
    cmd["staff"] = json!(true);
    let beta = rp.ok(cmd).await;
    let steps: Vec<&str> = beta["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["sign-in"], "{beta:#}");
    assert_eq!(beta["claims"]["iss"], app.issuer("beta"));
    assert_eq!(beta["claims"]["identities"][0]["userId"], sue.as_str());
}

/// "Forgot your password?" in the browser: the sign-in page's button, the username step, the
/// code sent by message, a wrong code shown on the page, then the right one with a new
/// password signs the user in and the relying party gets its tokens. Each page passes axe
/// and is screenshotted.
#[tokio::test]
async fn a_forgotten_password_is_reset_through_the_hosted_pages() {
    let app = spawn_app_at_its_address().await;
    let mut rp = Rp::start().await;
    let (shots, _keep) = screenshot_dir("browser_forgot_password");
    app.create_pool("acme").await;
    let web = register(&app, &rp, "acme", ClientType::Confidential).await;
    let acme = app.issuer("acme");
    let pool = app
        .gh
        .pool(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    let attributes = UserAttributes {
        email: "carol@example.com".to_owned(),
        email_verified: Some(true),
        name: "Carol".to_owned(),
        ..UserAttributes::default()
    };
    let (carol, _) = app
        .gh
        .create_user_with_password(
            &pool,
            "carol",
            attributes,
            Some(Secret::new("carols-forgotten-1")),
            None,
        )
        .await
        .unwrap();

    let mut cmd = reviewed(login(&acme, &web, "carol", ""), &shots, "carol");
    cmd["op"] = json!("forgot");
    let asked = rp.ok(cmd).await;
    let pages = asked["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 3, "{asked:#}");
    for (page, step) in pages
        .iter()
        .zip(["sign-in", "forgot-password", "reset-password"])
    {
        assert_reviewed(page, step);
    }
    let body = app.outbox().last().unwrap()["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let at = body.find("code is ").unwrap() + "code is ".len();
    let code = &body[at..at + 6];

    // A wrong code: the page says so, and the login waits.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let refused = rp
        .ok(reviewed(
            json!({"op": "reset", "code": wrong, "new_password": "carols-new-password-2"}),
            &shots,
            "carol",
        ))
        .await;
    assert_eq!(refused["arrived"], false, "{refused:#}");
    assert_reviewed(&refused["pages"][0], "reset-error");
    assert!(
        refused["text"]
            .as_str()
            .unwrap()
            .contains("The code is wrong or has expired"),
        "{refused:#}"
    );

    // The right code: signed in, and the relying party has its tokens.
    let signed_in = rp
        .ok(json!({"op": "reset", "code": code, "new_password": "carols-new-password-2"}))
        .await;
    assert_eq!(signed_in["arrived"], true, "{signed_in:#}");
    assert_eq!(signed_in["claims"]["sub"], carol.id.to_string());
    assert_eq!(signed_in["userinfo"]["email"], "carol@example.com");
    rp.ok(json!({"op": "refresh", "client_id": web.id})).await;

    // In a fresh browser the new password signs in.
    rp.ok(json!({"op": "new_context"})).await;
    rp.ok(expecting_page(
        login(&acme, &web, "carol", "carols-new-password-2"),
        true,
    ))
    .await;
}

/// A 160×40 PNG logo: a green square and two grey bars.
const LOGO_PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAKAAAAAoCAIAAAD2TmbPAAAAk0lEQVR42u3aoRWAIABFUTqLGI1s4SZmo9EhrTZ30GTVQ0HB+86fgNuAcKjpgiP4BXAch2Jz6IAFWIAFGDBgwIABAwZ81fXJsgYY8BPwum9ZAwwYMGADbIABAwZcElgvXHQABgwYMGDAAqzKgad5aXKAAQMGDBjw1x/8AQMG7NOdAAMGDBgwYMCABViAdQcswKqyE62oMoqoqZTYAAAAAElFTkSuQmCC";

/// A third-party client of a themed pool: the themed sign-in page, then the consent page,
/// both passing axe; Allow gives the relying party its tokens, and the next login of that
/// client in the same browser asks neither again.
#[tokio::test]
async fn a_third_party_client_asks_consent_on_a_themed_pool_s_pages() {
    let app = spawn_app_at_its_address().await;
    let mut rp = Rp::start().await;
    let (shots, _keep) = screenshot_dir("browser_consent");
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &[], ADA_PASSWORD).await;
    let slug = PoolSlug::parse("acme").unwrap();
    let pool = app.gh.pool(&slug).await.unwrap();
    app.gh
        .update_theme(
            &pool,
            &gatehouse_service::Operator::new("test").in_pool(&slug),
            gatehouse_service::settings::ThemeUpdate {
                display_name: Some("Acme Insurance".to_owned()),
                accent_color: Some("#0b6e4f".to_owned()),
                background_color: Some("#eef3f0".to_owned()),
                logo: Some(format!("data:image/png;base64,{LOGO_PNG}")),
                ..Default::default()
            },
            &gatehouse_service::RequestMeta::default(),
        )
        .await
        .unwrap();
    let pool = app.gh.pool(&slug).await.unwrap();
    let (client, secret) = app
        .gh
        .create_app_client_as_operator(
            &pool,
            NewAppClient {
                name: "QuoteCompare".to_owned(),
                scopes: None,
                grant_types: Some(vec!["authorization_code".to_owned()]),
                redirect_uris: Some(vec![rp.redirect_uri().to_owned()]),
                post_logout_redirect_uris: None,
                client_type: ClientType::Confidential,
                third_party: true,
                ..NewAppClient::default()
            },
        )
        .await
        .unwrap();
    let partner = ClientCreds {
        id: client.client_id.to_string(),
        secret: secret.map(|s| s.expose().to_owned()).unwrap_or_default(),
    };
    let acme = app.issuer("acme");

    let mut cmd = reviewed(
        login(&acme, &partner, "ada", ADA_PASSWORD),
        &shots,
        "third-party",
    );
    cmd["scope"] = json!("openid profile email");
    cmd["expect_consent"] = json!(true);
    let first = rp.ok(cmd.clone()).await;
    let pages = first["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2, "{first:#}");
    assert_reviewed(&pages[0], "sign-in");
    assert_eq!(pages[0]["title"], "Sign in · Acme Insurance");
    assert_reviewed(&pages[1], "consent");
    assert_eq!(pages[1]["title"], "Allow QuoteCompare · Acme Insurance");
    assert_eq!(first["claims"]["aud"], partner.id.as_str());
    assert_eq!(first["userinfo"]["email"], "ada@example.com");

    // Remembered: single sign-on and the consent given carry the next login through.
    let mut again = login(&acme, &partner, "ada", ADA_PASSWORD);
    again["scope"] = json!("openid email");
    again["expect_page"] = json!(false);
    again["expect_consent"] = json!(false);
    let second = rp.ok(again).await;
    assert_eq!(second["pages"], json!([]));
    assert_eq!(second["claims"]["sub"], first["claims"]["sub"]);

    // A pool themed with a name and no logo, and a client asking for a permission by name:
    // the name heads the pages as text, the permission is listed as it is called.
    app.create_pool("beta").await;
    app.create_user("beta", "ada", &[], ADA_PASSWORD).await;
    let slug = PoolSlug::parse("beta").unwrap();
    let pool = app.gh.pool(&slug).await.unwrap();
    app.gh
        .update_theme(
            &pool,
            &gatehouse_service::Operator::new("test").in_pool(&slug),
            gatehouse_service::settings::ThemeUpdate {
                display_name: Some("Beta Brokers".to_owned()),
                accent_color: Some("#6b2c91".to_owned()),
                ..Default::default()
            },
            &gatehouse_service::RequestMeta::default(),
        )
        .await
        .unwrap();
    let pool = app.gh.pool(&slug).await.unwrap();
    let (client, secret) = app
        .gh
        .create_app_client_as_operator(
            &pool,
            NewAppClient {
                name: "Directory sync".to_owned(),
                scopes: Some(vec!["user:RetrieveUsers".to_owned()]),
                grant_types: Some(vec!["authorization_code".to_owned()]),
                redirect_uris: Some(vec![rp.redirect_uri().to_owned()]),
                post_logout_redirect_uris: None,
                client_type: ClientType::Confidential,
                third_party: true,
                ..NewAppClient::default()
            },
        )
        .await
        .unwrap();
    let sync = ClientCreds {
        id: client.client_id.to_string(),
        secret: secret.map(|s| s.expose().to_owned()).unwrap_or_default(),
    };
    let mut cmd = reviewed(
        login(&app.issuer("beta"), &sync, "ada", ADA_PASSWORD),
        &shots,
        "named-pool",
    );
    cmd["scope"] = json!("openid user:RetrieveUsers");
    cmd["expect_consent"] = json!(true);
    let third = rp.ok(cmd).await;
    let pages = third["pages"].as_array().unwrap();
    assert_eq!(pages.len(), 2, "{third:#}");
    assert_reviewed(&pages[0], "sign-in");
    assert_eq!(pages[0]["title"], "Sign in · Beta Brokers");
    assert_reviewed(&pages[1], "consent");
}
