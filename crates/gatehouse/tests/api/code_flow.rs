//! The authorization code flow over plain HTTP, step by step, the way a browser and a client
//! make it: the sign-in page, its form, the SSO cookie, the code, its exchange with PKCE, the
//! ID token, refresh tokens that rotate, and the attacks on each step.

use gatehouse_domain::client::ClientType;
use gatehouse_domain::ids::PoolSlug;
use gatehouse_service::clients::NewAppClient;
use gatehouse_service::grants::authorization_code::s256;
use gatehouse_service::{Operator, RequestMeta};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::Value;

use crate::common::{ClientCreds, TestApp, jwt_claims, spawn_app};

pub(crate) const REDIRECT: &str = "https://app.example.com/cb";
const LOGGED_OUT: &str = "https://app.example.com/logged-out";
pub(crate) const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";

pub(crate) struct Browser {
    http: reqwest::Client,
    pub(crate) cookies: Vec<(String, String)>,
}

impl Browser {
    pub(crate) fn new() -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, res: &reqwest::Response) {
        for v in res.headers().get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (kv, _) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = kv.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            if !v.contains("Max-Age=0") {
                self.cookies.push((k.to_owned(), val.to_owned()));
            }
        }
    }

    pub(crate) async fn get(&mut self, url: &str) -> reqwest::Response {
        let res = self
            .http
            .get(url)
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.keep_cookies(&res);
        res
    }

    pub(crate) async fn post(&mut self, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
        let res = self
            .http
            .post(url)
            .header(COOKIE, self.cookie_header())
            .form(form)
            .send()
            .await
            .unwrap();
        self.keep_cookies(&res);
        res
    }
}

/// The value of a hidden input in a page.
pub(crate) fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    html[start..end]
        .replace("&#x2f;", "/")
        .replace("&amp;", "&")
}

pub(crate) fn query_of(location: &str) -> std::collections::HashMap<String, String> {
    let url = url::Url::parse(location).unwrap();
    url.query_pairs().into_owned().collect()
}

pub(crate) async fn web_client(app: &TestApp, pool: &str, grants: &[&str]) -> ClientCreds {
    register(app, pool, grants, ClientType::Confidential).await
}

pub(crate) async fn register(
    app: &TestApp,
    pool: &str,
    grants: &[&str],
    client_type: ClientType,
) -> ClientCreds {
    let pool = app.gh.pool(&PoolSlug::parse(pool).unwrap()).await.unwrap();
    let (client, secret) = app
        .gh
        .create_app_client(
            &pool,
            &Operator::new("test").in_pool(&pool.slug),
            NewAppClient {
                name: "Web app".to_owned(),
                scopes: None,
                grant_types: Some(grants.iter().map(|g| (*g).to_owned()).collect()),
                redirect_uris: Some(vec![REDIRECT.to_owned()]),
                post_logout_redirect_uris: Some(vec![LOGGED_OUT.to_owned()]),
                client_type,
                third_party: false,
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

pub(crate) fn authorize_url(
    app: &TestApp,
    pool: &str,
    client: &ClientCreds,
    extra: &str,
) -> String {
    app.pool_url(
        pool,
        &format!(
            "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid%20profile%20email\
             &state=st-1&nonce=n-1&code_challenge={}&code_challenge_method=S256{extra}",
            client.id,
            urlencode(REDIRECT),
            s256(VERIFIER)
        ),
    )
}

pub(crate) fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Signs in through the page; answers the redirect's location.
async fn sign_in(browser: &mut Browser, app: &TestApp, url: &str, password: &str) -> String {
    let page = browser.get(url).await;
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("<label for=\"username\">Username</label>"),
        "{html}"
    );
    let action = url.split('?').next().unwrap();
    let res = browser
        .post(
            action,
            &[
                ("step", "password"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "ada"),
                ("password", password),
            ],
        )
        .await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    let _ = app;
    res.headers()[LOCATION].to_str().unwrap().to_owned()
}

pub(crate) async fn exchange(
    app: &TestApp,
    client: &ClientCreds,
    code: &str,
    verifier: Option<&str>,
) -> reqwest::Response {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    app.http
        .post(app.pool_url("acme", "/oauth2/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&form)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn refresh(app: &TestApp, client: &ClientCreds, token: &str) -> reqwest::Response {
    app.http
        .post(app.pool_url("acme", "/oauth2/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", token)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_browser_signs_in_and_the_client_exchanges_its_code_once() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &[], "ada-password-123")
        .await;
    let client = web_client(&app, "acme", &["authorization_code", "refresh_token"]).await;
    let mut browser = Browser::new();

    let location = sign_in(
        &mut browser,
        &app,
        &authorize_url(&app, "acme", &client, ""),
        "ada-password-123",
    )
    .await;
    assert!(location.starts_with(REDIRECT), "{location}");
    let q = query_of(&location);
    assert_eq!(q["state"], "st-1");
    assert_eq!(q["iss"], app.issuer("acme"));
    let sso = browser
        .cookies
        .iter()
        .find(|(k, _)| k == "gatehouse_sso_acme")
        .expect("the SSO cookie is set");
    assert!(!sso.1.is_empty());

    let res = exchange(&app, &client, &q["code"], Some(VERIFIER)).await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    let id = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(id["aud"], client.id.as_str());
    assert_eq!(id["nonce"], "n-1");
    assert_eq!(id["preferred_username"], "ada");
    assert_eq!(id["email"], "ada@example.com");
    assert!(id["at_hash"].is_string() && id["sid"].is_string() && id["auth_time"].is_i64());
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(jwt_claims(access)["scope"], "openid profile email");
    assert_eq!(
        app.introspect("acme", &client, access).await["active"],
        true
    );
    let userinfo: Value = app
        .http
        .get(app.pool_url("acme", "/oauth2/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(userinfo["sub"], id["sub"]);

    // The code again: refused, and what the first exchange issued ends with it.
    let replay = exchange(&app, &client, &q["code"], Some(VERIFIER)).await;
    assert_eq!(replay.status(), 400);
    assert_eq!(
        replay.json::<Value>().await.unwrap()["error"],
        "invalid_grant"
    );
    assert_eq!(
        app.introspect("acme", &client, access).await["active"],
        false
    );
    let refused = refresh(&app, &client, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refused.status(), 400);

    // Single sign-on: the same browser gets a code without the page.
    let again = browser.get(&authorize_url(&app, "acme", &client, "")).await;
    assert_eq!(again.status(), StatusCode::SEE_OTHER);
    let code = query_of(again.headers()[LOCATION].to_str().unwrap())["code"].clone();
    let res = exchange(&app, &client, &code, Some(VERIFIER)).await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();

    // Refresh tokens rotate; presenting a used one ends the whole family.
    let first = tokens["refresh_token"].as_str().unwrap().to_owned();
    let res = refresh(&app, &client, &first).await;
    assert_eq!(res.status(), 200);
    let second: Value = res.json().await.unwrap();
    let rotated = second["refresh_token"].as_str().unwrap();
    assert_ne!(rotated, first);
    assert!(jwt_claims(second["id_token"].as_str().unwrap())["nonce"].is_null());
    let latest_access = second["access_token"].as_str().unwrap();
    assert_eq!(
        app.introspect("acme", &client, latest_access).await["active"],
        true
    );
    let reused = refresh(&app, &client, &first).await;
    assert_eq!(reused.status(), 400);
    assert_eq!(
        app.introspect("acme", &client, latest_access).await["active"],
        false
    );
    assert_eq!(refresh(&app, &client, rotated).await.status(), 400);

    // prompt=login asks for the password even with a session.
    let forced = browser
        .get(&authorize_url(&app, "acme", &client, "&prompt=login"))
        .await;
    assert_eq!(forced.status(), 200);
    // max_age=0 too, once a second has passed since the sign-in.
    app.clock.advance(1);
    let stale = browser
        .get(&authorize_url(&app, "acme", &client, "&max_age=0"))
        .await;
    assert_eq!(stale.status(), 200);
}

#[tokio::test]
async fn attacks_on_the_code_flow_are_refused() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_pool("beta").await;
    app.create_user("acme", "ada", &[], "ada-password-123")
        .await;
    app.create_user("beta", "ada", &[], "ada-password-123")
        .await;
    let client = web_client(&app, "acme", &["authorization_code"]).await;
    let beta_client = web_client(&app, "beta", &["authorization_code"]).await;
    let mut browser = Browser::new();

    // An unregistered or prefix-matched redirect URI: a page, never a redirect.
    for evil in [
        "https://evil.example.com/cb",
        "https://app.example.com/cb/../evil",
        "https://app.example.com/cbx",
        "https://app.example.com/cb?x=1",
    ] {
        let url = authorize_url(&app, "acme", &client, "")
            .replace(&urlencode(REDIRECT), &urlencode(evil));
        let res = browser.get(&url).await;
        assert_eq!(res.status(), 400, "{evil}");
        assert!(res.headers().get(LOCATION).is_none(), "{evil}");
    }

    // prompt=none without a session: login_required, at the client.
    let res = browser
        .get(&authorize_url(&app, "acme", &client, "&prompt=none"))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let q = query_of(res.headers()[LOCATION].to_str().unwrap());
    assert_eq!(q["error"], "login_required");
    assert_eq!(q["state"], "st-1");

    // PKCE plain is a downgrade: refused.
    let plain = authorize_url(&app, "acme", &client, "").replace("S256", "plain");
    let res = browser.get(&plain).await;
    let q = query_of(res.headers()[LOCATION].to_str().unwrap());
    assert_eq!(q["error"], "invalid_request");

    // The form without its CSRF token, or with another browser's: refused.
    let page = browser
        .get(&authorize_url(&app, "acme", &client, ""))
        .await
        .text()
        .await
        .unwrap();
    let action = app.pool_url("acme", "/oauth2/authorize");
    let request = hidden(&page, "request");
    let mut stranger = Browser::new();
    for csrf in ["", "x".repeat(43).as_str()] {
        let res = stranger
            .post(
                &action,
                &[
                    ("step", "password"),
                    ("request", &request),
                    ("csrf", csrf),
                    ("username", "ada"),
                    ("password", "ada-password-123"),
                ],
            )
            .await;
        assert_eq!(res.status(), 403);
    }
    // A wrong password: the page again, with the error, and no cookie.
    let res = browser
        .post(
            &action,
            &[
                ("step", "password"),
                ("request", &request),
                ("csrf", &hidden(&page, "csrf")),
                ("username", "ada"),
                ("password", "wrong-password-1"),
            ],
        )
        .await;
    assert_eq!(res.status(), 401);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Incorrect username or password.")
    );
    assert!(
        !browser
            .cookies
            .iter()
            .any(|(k, _)| k.starts_with("gatehouse_sso"))
    );

    // Signed in, the code: a wrong verifier, none, or another client's code are refused.
    let location = sign_in(
        &mut browser,
        &app,
        &authorize_url(&app, "acme", &client, ""),
        "ada-password-123",
    )
    .await;
    let code = query_of(&location)["code"].clone();
    let wrong = exchange(&app, &client, &code, Some(&"a".repeat(43))).await;
    assert_eq!(wrong.status(), 400);
    // The code was presented: it is used up, whatever the verifier.
    assert_eq!(
        exchange(&app, &client, &code, Some(VERIFIER))
            .await
            .status(),
        400
    );
    let location = browser.get(&authorize_url(&app, "acme", &client, "")).await;
    let code = query_of(location.headers()[LOCATION].to_str().unwrap())["code"].clone();
    assert_eq!(exchange(&app, &client, &code, None).await.status(), 400);

    // The acme cookie means nothing to beta: its sign-in page is shown.
    let beta = browser
        .get(&authorize_url(&app, "beta", &beta_client, ""))
        .await;
    assert_eq!(beta.status(), 200);
    // Even under beta's own cookie name.
    let acme_value = browser
        .cookies
        .iter()
        .find(|(k, _)| k == "gatehouse_sso_acme")
        .unwrap()
        .1
        .clone();
    browser
        .cookies
        .push(("gatehouse_sso_beta".to_owned(), acme_value));
    let beta = browser
        .get(&authorize_url(&app, "beta", &beta_client, ""))
        .await;
    assert_eq!(beta.status(), 200);
}

#[tokio::test]
async fn a_public_client_must_use_pkce_and_authenticates_with_its_id_alone() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &[], "ada-password-123")
        .await;
    let spa = register(
        &app,
        "acme",
        &["authorization_code", "refresh_token"],
        ClientType::Public,
    )
    .await;
    let mut browser = Browser::new();

    // Without a challenge: refused at the client's redirect URI.
    let url = authorize_url(&app, "acme", &spa, "");
    let bare = url.split("&code_challenge=").next().unwrap().to_owned();
    let res = browser.get(&bare).await;
    let q = query_of(res.headers()[LOCATION].to_str().unwrap());
    assert_eq!(q["error"], "invalid_request");

    let location = sign_in(&mut browser, &app, &url, "ada-password-123").await;
    let code = query_of(&location)["code"].clone();
    let token = |code: String, verifier: &'static str| {
        let app = &app;
        let spa = &spa;
        async move {
            app.http
                .post(app.pool_url("acme", "/oauth2/token"))
                .form(&[
                    ("grant_type", "authorization_code"),
                    ("client_id", spa.id.as_str()),
                    ("code", code.as_str()),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", verifier),
                ])
                .send()
                .await
                .unwrap()
        }
    };
    let res = token(code, VERIFIER).await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    let rt = tokens["refresh_token"].as_str().unwrap();
    let res = app
        .http
        .post(app.pool_url("acme", "/oauth2/token"))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", spa.id.as_str()),
            ("refresh_token", rt),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // A public client gets no client-credentials token.
    let res = app
        .http
        .post(app.pool_url("acme", "/oauth2/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", spa.id.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[tokio::test]
async fn logout_ends_the_browser_session_and_what_it_authorized() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &[], "ada-password-123")
        .await;
    let client = web_client(&app, "acme", &["authorization_code", "refresh_token"]).await;
    let mut browser = Browser::new();
    let location = sign_in(
        &mut browser,
        &app,
        &authorize_url(&app, "acme", &client, ""),
        "ada-password-123",
    )
    .await;
    let tokens: Value = exchange(&app, &client, &query_of(&location)["code"], Some(VERIFIER))
        .await
        .json()
        .await
        .unwrap();
    let id_token = tokens["id_token"].as_str().unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    let logout = |extra: &str| {
        app.pool_url(
            "acme",
            &format!("/oauth2/logout?client_id={}{extra}", client.id),
        )
    };

    // An unregistered post-logout URI: a page, never a redirect; the session stands.
    let res = browser
        .get(&logout(&format!(
            "&post_logout_redirect_uri={}",
            urlencode("https://evil.example.com/")
        )))
        .await;
    assert_eq!(res.status(), 400);
    assert!(res.headers().get(LOCATION).is_none());
    // The redirect URI is not a post-logout URI either.
    let res = browser
        .get(&logout(&format!(
            "&post_logout_redirect_uri={}",
            urlencode(REDIRECT)
        )))
        .await;
    assert_eq!(res.status(), 400);

    // Without the hint the user confirms, with the Sign out button; a forged post is refused.
    let res = browser
        .get(&logout(&format!(
            "&post_logout_redirect_uri={}&state=bye",
            urlencode(LOGGED_OUT)
        )))
        .await;
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains(">Sign out</button>"), "{html}");
    // The page says who would be signed out.
    assert!(html.contains("as <strong>ada</strong>"), "{html}");
    let mut stranger = Browser::new();
    let forged = stranger
        .post(
            &app.pool_url("acme", "/oauth2/logout"),
            &[("csrf", &"x".repeat(43))],
        )
        .await;
    assert_eq!(forged.status(), 403);
    assert_eq!(
        app.introspect("acme", &client, access).await["active"],
        true
    );

    // With the hint of this session: out at once, back at the client with its state.
    let res = browser
        .get(&logout(&format!(
            "&id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye",
            urlencode(LOGGED_OUT)
        )))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        res.headers()[LOCATION],
        format!("{LOGGED_OUT}?state=bye").as_str()
    );
    assert!(
        !browser
            .cookies
            .iter()
            .any(|(k, _)| k == "gatehouse_sso_acme")
    );
    assert_eq!(
        app.introspect("acme", &client, access).await["active"],
        false
    );
    let rt = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(refresh(&app, &client, rt).await.status(), 400);
    // The sign-in page again.
    assert_eq!(
        browser
            .get(&authorize_url(&app, "acme", &client, ""))
            .await
            .status(),
        200
    );

    // Confirmed through the page: the same.
    let location = sign_in(
        &mut browser,
        &app,
        &authorize_url(&app, "acme", &client, ""),
        "ada-password-123",
    )
    .await;
    let tokens: Value = exchange(&app, &client, &query_of(&location)["code"], Some(VERIFIER))
        .await
        .json()
        .await
        .unwrap();
    let html = browser.get(&logout("")).await.text().await.unwrap();
    let res = browser
        .post(
            &app.pool_url("acme", "/oauth2/logout"),
            &[("csrf", &hidden(&html, "csrf")), ("client_id", &client.id)],
        )
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("Signed out"));
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(
        app.introspect("acme", &client, access).await["active"],
        false
    );
}

#[tokio::test]
async fn wrong_passwords_from_one_address_are_throttled_on_a_page() {
    let app = crate::common::spawn_app_with(crate::common::Backend::from_env(), |c| {
        c.limits.address_burst = 3;
        c.limits.address_per_minute = 1;
    })
    .await;
    app.create_pool("acme").await;
    app.create_user("acme", "ada", &[], "ada-password-123")
        .await;
    let client = web_client(&app, "acme", &["authorization_code"]).await;
    let mut browser = Browser::new();
    let html = browser
        .get(&authorize_url(&app, "acme", &client, ""))
        .await
        .text()
        .await
        .unwrap();
    let form = |password: &'static str| {
        vec![
            ("step", "password".to_owned()),
            ("request", hidden(&html, "request")),
            ("csrf", hidden(&html, "csrf")),
            ("username", "nobody".to_owned()),
            ("password", password.to_owned()),
        ]
    };
    let action = app.pool_url("acme", "/oauth2/authorize");
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let f = form("wrong-password-1");
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let res = browser.post(&action, &f).await;
        statuses.push(res.status().as_u16());
        if res.status() == 429 {
            assert!(res.headers().get("retry-after").is_some());
            let page = res.text().await.unwrap();
            assert!(page.contains("Too many failed sign-ins"), "{page}");
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
}

#[tokio::test]
async fn a_temporary_password_is_replaced_on_the_new_password_page() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    let pool = app
        .gh
        .pool(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    let (_, temporary) = app
        .gh
        .create_user_with_password(
            &pool,
            "bob",
            gatehouse_domain::user::UserAttributes {
                email: "bob@example.com".to_owned(),
                name: "Bob".to_owned(),
                ..Default::default()
            },
            None,
            None,
        )
        .await
        .unwrap();
    let temporary = temporary.unwrap();
    let client = web_client(&app, "acme", &["authorization_code"]).await;
    let mut browser = Browser::new();
    let url = authorize_url(&app, "acme", &client, "");
    let html = browser.get(&url).await.text().await.unwrap();
    let action = app.pool_url("acme", "/oauth2/authorize");
    let res = browser
        .post(
            &action,
            &[
                ("step", "password"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "bob"),
                ("password", temporary.expose()),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("<label for=\"new_password\">New password</label>"),
        "{page}"
    );
    // Password managers learn whose password this is: the username rides along, hidden.
    let username_field = "<input type=\"text\" name=\"username\" value=\"bob\" autocomplete=\"username\" readonly hidden>";
    assert!(page.contains(username_field), "{page}");
    let step = |page: &str, new_password: &str| {
        [
            ("step", "new_password".to_owned()),
            ("request", hidden(page, "request")),
            ("challenge", hidden(page, "challenge")),
            ("csrf", hidden(page, "csrf")),
            ("username", hidden(page, "username")),
            ("new_password", new_password.to_owned()),
        ]
    };
    // Too short for the policy: the page again, with the error and the username.
    let form = step(&page, "short");
    let res = browser
        .post(&action, &form.each_ref().map(|(k, v)| (*k, v.as_str())))
        .await;
    assert_eq!(res.status(), 400);
    let page = res.text().await.unwrap();
    assert!(page.contains("role=\"alert\""), "{page}");
    assert!(page.contains(username_field), "{page}");
    // A good one: signed in, back at the client with a code.
    let form = step(&page, "bobs-own-password-7");
    let res = browser
        .post(&action, &form.each_ref().map(|(k, v)| (*k, v.as_str())))
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(query_of(&location).contains_key("code"), "{location}");
}
