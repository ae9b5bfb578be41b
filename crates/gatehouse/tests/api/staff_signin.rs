//! "Sign in with staff account": a client pool's hosted sign-in sends a staff member to the
//! staff pool and back, over plain HTTP as a browser makes it; the tokens name the staff
//! identity, and end with the pool's consent to staff or the staff member's account.

use gatehouse_domain::client::ClientType;
use gatehouse_domain::ids::{PoolSlug, Username};
use gatehouse_service::grants::authorization_code::s256;
use gatehouse_service::{Operator, RequestMeta};
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::{Value, json};

use crate::code_flow::{Browser, REDIRECT, VERIFIER, hidden, query_of, register, urlencode};
use crate::common::*;

fn authorize_url(app: &TestApp, pool: &str, client: &ClientCreds) -> String {
    app.pool_url(
        pool,
        &format!(
            "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}\
             &scope=openid%20profile%20email&state=st-1&nonce=n-1&code_challenge={}\
             &code_challenge_method=S256",
            client.id,
            urlencode(REDIRECT),
            s256(VERIFIER)
        ),
    )
}

fn location(res: &reqwest::Response) -> String {
    res.headers()[LOCATION].to_str().unwrap().to_owned()
}

/// A URL of the public address, at the address the test server listens on.
fn local(app: &TestApp, url: &str) -> String {
    url.replacen(&app.public_url, &app.url(""), 1)
}

/// From a client pool's sign-in page, **Sign in with staff account**: answers the staff
/// pool's URL it leads to.
async fn choose_staff_account(browser: &mut Browser, url: &str) -> String {
    let page = browser.get(url).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(">Sign in with staff account</button>"),
        "{html}"
    );
    let res = browser
        .post(
            url.split('?').next().unwrap(),
            &[
                ("step", "staff"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    location(&res)
}

/// At the staff pool's sign-in page: signs in; answers the client pool's response URL.
async fn staff_password(
    browser: &mut Browser,
    app: &TestApp,
    staff_url: &str,
    name: &str,
) -> String {
    let page = browser.get(&local(app, staff_url)).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("with your staff account"), "{html}");
    let res = browser
        .post(
            &local(app, staff_url.split('?').next().unwrap()),
            &[
                ("step", "password"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
                ("for_pool", &hidden(&html, "for_pool")),
                ("binding", &hidden(&html, "binding")),
                ("username", name),
                ("password", &format!("{name}-staff-password-1")),
            ],
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    location(&res)
}

/// The whole way from a client pool's page to its client's redirect URI with a code.
async fn staff_sign_in(
    browser: &mut Browser,
    app: &TestApp,
    pool: &str,
    client: &ClientCreds,
    name: &str,
) -> String {
    let staff_url = choose_staff_account(browser, &authorize_url(app, pool, client)).await;
    let response_url = staff_password(browser, app, &staff_url, name).await;
    let res = browser.get(&local(app, &response_url)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let to = location(&res);
    assert!(to.starts_with(REDIRECT), "{to}");
    query_of(&to)["code"].clone()
}

async fn exchange(app: &TestApp, pool: &str, client: &ClientCreds, code: &str) -> Value {
    let res = app
        .http
        .post(app.pool_url(pool, "/oauth2/token"))
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

async fn refresh_status(app: &TestApp, pool: &str, client: &ClientCreds, token: &str) -> u16 {
    app.http
        .post(app.pool_url(pool, "/oauth2/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn web_client(app: &TestApp, pool: &str) -> ClientCreds {
    register(
        app,
        pool,
        &["authorization_code", "refresh_token"],
        ClientType::Confidential,
    )
    .await
}

async fn set_staff_access(app: &TestApp, admin: &str, enabled: bool) {
    let res = app
        .http
        .put(app.pool_url("acme", "/api/auth/settings/staff-access"))
        .bearer_auth(admin)
        .json(&json!({ "StaffAccessEnabled": enabled }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

/// The staff user's id, as the staff pool's own tokens name it.
async fn staff_id(app: &TestApp, name: &str) -> String {
    let client = app.create_client("staff", &[]).await;
    let token = app
        .sign_in("staff", &client, name, &format!("{name}-staff-password-1"))
        .await;
    jwt_claims(&token)["sub"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_staff_member_signs_in_to_client_pools_with_one_staff_account() {
    let app = spawn_app().await;
    app.create_user("staff", "sue", &["support"], "sue-staff-password-1")
        .await;
    let (_, ada) = app.acme_with_ada().await;
    app.create_pool("globex").await;
    let acme = web_client(&app, "acme").await;
    let globex = web_client(&app, "globex").await;
    let mut browser = Browser::new();
    let created = app.audit_count("acme", "user.created").await;

    let staff_url = choose_staff_account(&mut browser, &authorize_url(&app, "acme", &acme)).await;
    assert!(
        staff_url.starts_with(&format!("{}/oauth2/staff?", app.issuer("staff"))),
        "{staff_url}"
    );
    assert!(
        browser
            .cookies
            .iter()
            .any(|(k, _)| k == "gatehouse_staff_acme")
    );
    let response_url = staff_password(&mut browser, &app, &staff_url, "sue").await;
    assert!(
        response_url.starts_with(&format!("{}/oauth2/staff/response?", app.issuer("acme"))),
        "{response_url}"
    );
    assert!(
        browser
            .cookies
            .iter()
            .any(|(k, _)| k == "gatehouse_sso_staff")
    );
    let res = browser.get(&local(&app, &response_url)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let q = query_of(&location(&res));
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], app.issuer("acme"));
    assert!(
        browser
            .cookies
            .iter()
            .any(|(k, _)| k == "gatehouse_sso_acme")
    );
    assert!(
        !browser
            .cookies
            .iter()
            .any(|(k, _)| k == "gatehouse_staff_acme"),
        "the binding is spent"
    );

    // The pool's tokens name the staff identity, and carry the staff member's profile.
    let tokens = exchange(&app, "acme", &acme, &q["code"]).await;
    let sue = staff_id(&app, "sue").await;
    let access = tokens["access_token"].as_str().unwrap();
    let claims = jwt_claims(access);
    assert_eq!(claims["iss"], app.issuer("acme"));
    assert_eq!(claims["username"], "staff_sue");
    assert_eq!(claims["identities"][0]["providerName"], "staff");
    assert_eq!(claims["identities"][0]["userId"], sue.as_str());
    assert_eq!(claims["identities"][0]["issuer"], app.issuer("staff"));
    assert_eq!(
        claims["roles"],
        json!([]),
        "staff roles stay in the staff pool"
    );
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["identities"], claims["identities"]);
    assert_eq!(id["email"], "sue@example.com");
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(app.introspect("acme", &acme, access).await["active"], true);

    // One linked user in the pool, provisioned just in time.
    let user: Value = app
        .http
        .get(app.pool_url("acme", "/api/user-management/users/staff_sue"))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(user["status"], "EXTERNAL_PROVIDER", "{user}");
    assert_eq!(app.audit_count("acme", "user.created").await, created + 1);

    // Single sign-on in the client pool: another client gets its code without a page.
    let other = web_client(&app, "acme").await;
    let again = browser.get(&authorize_url(&app, "acme", &other)).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    let code = query_of(&location(&again))["code"].clone();
    let tokens = exchange(&app, "acme", &other, &code).await;
    assert_eq!(
        jwt_claims(tokens["access_token"].as_str().unwrap())["username"],
        "staff_sue"
    );

    // Single sign-on at the staff pool: another client pool needs no password.
    let staff_url =
        choose_staff_account(&mut browser, &authorize_url(&app, "globex", &globex)).await;
    let straight = browser.get(&local(&app, &staff_url)).await;
    assert_eq!(
        straight.status(),
        StatusCode::SEE_OTHER,
        "no staff sign-in page"
    );
    let res = browser.get(&local(&app, &location(&straight))).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let code = query_of(&location(&res))["code"].clone();
    let tokens = exchange(&app, "globex", &globex, &code).await;
    let claims = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["iss"], app.issuer("globex"));
    assert_eq!(claims["identities"][0]["userId"], sue.as_str());

    // A second sign-in, with the password again, finds the same linked user.
    browser
        .cookies
        .retain(|(k, _)| !k.starts_with("gatehouse_sso_"));
    let code = staff_sign_in(&mut browser, &app, "acme", &acme, "sue").await;
    let tokens = exchange(&app, "acme", &acme, &code).await;
    let again = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(again["sub"], jwt_claims(access)["sub"]);
    assert_eq!(app.audit_count("acme", "user.created").await, created + 1);
}

#[tokio::test]
async fn staff_assertions_are_bound_single_use_and_for_one_pool() {
    let app = spawn_app().await;
    app.create_user("staff", "sue", &["support"], "sue-staff-password-1")
        .await;
    let (_, ada) = app.acme_with_ada().await;
    app.create_pool("globex").await;
    let acme = web_client(&app, "acme").await;
    let globex = web_client(&app, "globex").await;

    // An answer that reaches another browser (without the binding cookie) is refused.
    let mut browser = Browser::new();
    let staff_url = choose_staff_account(&mut browser, &authorize_url(&app, "acme", &acme)).await;
    let response_url = staff_password(&mut browser, &app, &staff_url, "sue").await;
    let mut other = Browser::new();
    let stolen = other.get(&local(&app, &response_url)).await;
    assert_eq!(stolen.status(), StatusCode::BAD_REQUEST);
    assert!(stolen.headers().get(LOCATION).is_none());

    // Tampered: its signature no longer verifies.
    let q = query_of(&response_url);
    let mut forged = q["assertion"].clone();
    let last = forged.pop().unwrap();
    forged.push(if last == 'A' { 'B' } else { 'A' });
    let tampered = app.pool_url(
        "acme",
        &format!(
            "/oauth2/staff/response?assertion={}&request={}",
            urlencode(&forged),
            urlencode(&q["request"])
        ),
    );
    assert_eq!(
        browser.get(&tampered).await.status(),
        StatusCode::BAD_REQUEST
    );

    // A staff access token is not an assertion.
    let staff_client = app.create_client("staff", &[]).await;
    let staff_token = app
        .sign_in("staff", &staff_client, "sue", "sue-staff-password-1")
        .await;
    let wrong_type = app.pool_url(
        "acme",
        &format!(
            "/oauth2/staff/response?assertion={}&request={}",
            urlencode(&staff_token),
            urlencode(&q["request"])
        ),
    );
    assert_eq!(
        browser.get(&wrong_type).await.status(),
        StatusCode::BAD_REQUEST
    );

    // Presented to another pool, with that pool's own request and binding: refused.
    let mut globex_browser = Browser::new();
    let globex_staff =
        choose_staff_account(&mut globex_browser, &authorize_url(&app, "globex", &globex)).await;
    let globex_request = query_of(&globex_staff)["request"].clone();
    let elsewhere = app.pool_url(
        "globex",
        &format!(
            "/oauth2/staff/response?assertion={}&request={}",
            urlencode(&q["assertion"]),
            urlencode(&globex_request)
        ),
    );
    assert_eq!(
        globex_browser.get(&elsewhere).await.status(),
        StatusCode::BAD_REQUEST
    );

    // The real browser: once, then never again, even with its binding put back.
    let binding = browser
        .cookies
        .iter()
        .find(|(k, _)| k == "gatehouse_staff_acme")
        .unwrap()
        .clone();
    let first = browser.get(&local(&app, &response_url)).await;
    assert_eq!(first.status(), StatusCode::SEE_OTHER);
    assert!(location(&first).starts_with(REDIRECT));
    browser.cookies.retain(|(k, _)| k != "gatehouse_sso_acme");
    browser.cookies.push(binding);
    let replay = browser.get(&local(&app, &response_url)).await;
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    assert!(
        !browser
            .cookies
            .iter()
            .any(|(k, _)| k == "gatehouse_sso_acme")
    );

    // The forms are CSRF-protected like every other step.
    let page = browser.get(&authorize_url(&app, "acme", &acme)).await;
    let html = page.text().await.unwrap();
    let no_csrf = browser
        .post(
            &app.pool_url("acme", "/oauth2/authorize"),
            &[("step", "staff"), ("request", &hidden(&html, "request"))],
        )
        .await;
    assert_eq!(no_csrf.status(), StatusCode::FORBIDDEN);

    // The staff pool's sign-in serves only pools that take staff, and only from the staff pool.
    let not_staff = browser
        .get(&local(&app, &staff_url).replacen("/pools/staff/", "/pools/globex/", 1))
        .await;
    assert_eq!(not_staff.status(), StatusCode::NOT_FOUND);

    // Nobody links a user to the staff pool by hand.
    let res = app
        .http
        .post(app.pool_url(
            "acme",
            "/api/user-management/users/alice/actions/link-to-provider",
        ))
        .bearer_auth(&ada)
        .json(&json!({ "provider_name": "Staff", "provider_user_id": staff_id(&app, "sue").await }))
        .send()
        .await
        .unwrap();
    assert_api_error(res, 400).await;
}

#[tokio::test]
async fn staff_sign_ins_end_with_staff_access_and_with_the_staff_account() {
    let app = spawn_app().await;
    app.create_user("staff", "sue", &["support"], "sue-staff-password-1")
        .await;
    let (_, ada) = app.acme_with_ada().await;
    let acme = web_client(&app, "acme").await;
    let mut browser = Browser::new();
    let code = staff_sign_in(&mut browser, &app, "acme", &acme, "sue").await;
    let tokens = exchange(&app, "acme", &acme, &code).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    // An answer the staff pool gave before the pool changed its mind.
    browser.cookies.retain(|(k, _)| k != "gatehouse_sso_acme");
    let staff_url = choose_staff_account(&mut browser, &authorize_url(&app, "acme", &acme)).await;
    let pending = browser.get(&local(&app, &staff_url)).await;
    assert_eq!(pending.status(), StatusCode::SEE_OTHER);
    let pending = location(&pending);

    set_staff_access(&app, &ada, false).await;
    assert_eq!(
        app.introspect("acme", &acme, &access).await["active"],
        false
    );
    assert_eq!(app.userinfo_status("acme", &access).await, 401);
    assert_eq!(refresh_status(&app, "acme", &acme, &refresh).await, 400);
    // The pool's own session is over: the page again, without the staff button.
    let page = browser.get(&authorize_url(&app, "acme", &acme)).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(!html.contains("Sign in with staff account"));
    let refused = browser
        .post(
            &app.pool_url("acme", "/oauth2/authorize"),
            &[
                ("step", "staff"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
            ],
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let late = browser.get(&local(&app, &pending)).await;
    assert_eq!(late.status(), StatusCode::SEE_OTHER);
    assert_eq!(query_of(&location(&late))["error"], "access_denied");
    assert_eq!(app.audit_count("acme", "session.revoked").await, 2);

    // Back on; then the staff pool disables the staff member: every pool's session ends.
    set_staff_access(&app, &ada, true).await;
    let code = staff_sign_in(&mut Browser::new(), &app, "acme", &acme, "sue").await;
    let tokens = exchange(&app, "acme", &acme, &code).await;
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.introspect("acme", &acme, &access).await["active"], true);
    let staff = app.gh.pool(&PoolSlug::staff()).await.unwrap();
    app.gh
        .disable_user(
            &staff,
            &Operator::new("test").in_pool(&staff.slug),
            &Username::parse("sue").unwrap(),
            &RequestMeta::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        app.introspect("acme", &acme, &access).await["active"],
        false
    );
    assert_eq!(
        refresh_status(
            &app,
            "acme",
            &acme,
            tokens["refresh_token"].as_str().unwrap()
        )
        .await,
        400
    );
}
