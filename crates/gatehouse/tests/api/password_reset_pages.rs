//! "Forgot your password?" on the hosted sign-in, over plain HTTP as a browser makes it: the
//! username step, the code sent by message, the code and new-password step that signs the
//! user in, and what must not work: telling users apart, a wrong or guessed code, a form
//! from another site.

use gatehouse_crypto::secret::Secret;
use gatehouse_domain::ids::PoolSlug;
use gatehouse_domain::user::UserAttributes;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::{Value, json};

use crate::code_flow::{Browser, VERIFIER, authorize_url, exchange, hidden, query_of, web_client};
use crate::common::{TestApp, spawn_app};

/// A user whose e-mail address is proven, with this password.
async fn proven_user(app: &TestApp, name: &str, password: &str) {
    let pool = app
        .gh
        .pool(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    app.gh
        .create_user_with_password(
            &pool,
            name,
            UserAttributes {
                email: format!("{name}@example.com"),
                email_verified: Some(true),
                name: name.to_owned(),
                ..UserAttributes::default()
            },
            Some(Secret::new(password)),
            None,
        )
        .await
        .unwrap();
}

/// The reset code of the last message sent to `to`.
fn code_sent_to(app: &TestApp, to: &str) -> String {
    let messages = app.outbox();
    let message = messages
        .iter()
        .rev()
        .find(|m| m["to_email"] == to)
        .unwrap_or_else(|| panic!("no message to {to} in {messages:?}"));
    let body = message["body"].as_str().unwrap();
    let start = body.find("code is ").unwrap() + "code is ".len();
    body[start..start + 6].to_owned()
}

fn messages_to(app: &TestApp, to: &str) -> usize {
    app.outbox().iter().filter(|m| m["to_email"] == to).count()
}

struct Pages {
    browser: Browser,
    action: String,
}

impl Pages {
    /// A browser at the sign-in page of a new authorization request: that page's HTML.
    async fn open(app: &TestApp, client: &crate::common::ClientCreds) -> (Self, String) {
        let mut browser = Browser::new();
        let res = browser.get(&authorize_url(app, "acme", client, "")).await;
        assert_eq!(res.status(), 200);
        let html = res.text().await.unwrap();
        let action = app.pool_url("acme", "/oauth2/authorize");
        (Self { browser, action }, html)
    }

    /// Submits a form of `page` (its request and CSRF token) with these fields.
    async fn submit(&mut self, page: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        let request = hidden(page, "request");
        let csrf = hidden(page, "csrf");
        let mut form = vec![("request", request.as_str()), ("csrf", csrf.as_str())];
        form.extend_from_slice(fields);
        self.browser.post(&self.action, &form).await
    }

    /// From the sign-in page to the code page for `username`.
    async fn ask_code(&mut self, sign_in_page: &str, username: &str) -> String {
        assert!(
            sign_in_page.contains(">Forgot your password?</button>"),
            "{sign_in_page}"
        );
        let res = self.submit(sign_in_page, &[("step", "forgot_start")]).await;
        assert_eq!(res.status(), 200);
        let page = res.text().await.unwrap();
        assert!(
            page.contains("<label for=\"username\">Username</label>"),
            "{page}"
        );
        let res = self
            .submit(&page, &[("step", "forgot"), ("username", username)])
            .await;
        assert_eq!(res.status(), 200);
        let page = res.text().await.unwrap();
        assert!(page.contains("<label for=\"code\">Code</label>"), "{page}");
        assert!(
            page.contains("<label for=\"new_password\">New password</label>"),
            "{page}"
        );
        page
    }

    async fn reset(
        &mut self,
        page: &str,
        username: &str,
        code: &str,
        new_password: &str,
    ) -> reqwest::Response {
        self.submit(
            page,
            &[
                ("step", "reset"),
                ("username", username),
                ("code", code),
                ("new_password", new_password),
            ],
        )
        .await
    }
}

#[tokio::test]
async fn a_forgotten_password_is_reset_by_code_and_the_user_signed_in() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    proven_user(&app, "ada", "ada-old-password-1").await;
    let client = web_client(&app, "acme", &["authorization_code", "refresh_token"]).await;
    let api_client = app.create_client("acme", &[]).await;
    let before = app
        .sign_in("acme", &api_client, "ada", "ada-old-password-1")
        .await;

    let (mut pages, html) = Pages::open(&app, &client).await;
    let page = pages.ask_code(&html, "ada").await;
    let code = code_sent_to(&app, "ada@example.com");
    let message = app.outbox().last().unwrap().clone();
    assert_eq!(message["subject"], "Your password reset code");
    assert_eq!(message["kind"], "password_reset", "{message}");
    // Asking does not lock the user out: the old password still works until the code is used.
    assert_eq!(app.userinfo_status("acme", &before).await, 200);

    // A wrong code: the page again, with the error, answered like a wrong password.
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let res = pages.reset(&page, "ada", wrong, "ada-new-password-2").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let page = res.text().await.unwrap();
    assert!(page.contains("The code is wrong or has expired"), "{page}");
    // A password the policy refuses: its text on the page, and the code not used up.
    let res = pages.reset(&page, "ada", &code, "short").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let page = res.text().await.unwrap();
    assert!(page.contains("role=\"alert\""), "{page}");
    assert!(page.contains("at least"), "{page}");

    // The right code and a good password: signed in, the code issued to the client.
    let res = pages.reset(&page, "ada", &code, "ada-new-password-2").await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    let location = res.headers()[LOCATION].to_str().unwrap().to_owned();
    let q = query_of(&location);
    assert_eq!(q["state"], "st-1");
    assert!(
        pages
            .browser
            .cookies
            .iter()
            .any(|(k, v)| k == "gatehouse_sso_acme" && !v.is_empty())
    );
    let res = exchange(&app, &client, &q["code"], Some(VERIFIER)).await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    assert_eq!(
        crate::common::jwt_claims(tokens["id_token"].as_str().unwrap())["preferred_username"],
        "ada"
    );

    // The new password signs in; the old one and the tokens issued under it do not.
    let res = app
        .http
        .post(app.pool_url("acme", "/api/auth/initiate"))
        .json(&json!({"flow": "USER_PASSWORD", "client_id": api_client.id,
            "client_secret": api_client.secret, "username": "ada", "password": "ada-old-password-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    app.sign_in("acme", &api_client, "ada", "ada-new-password-2")
        .await;
    assert_eq!(app.userinfo_status("acme", &before).await, 401);

    // The code was used up.
    let (mut pages, html) = Pages::open(&app, &client).await;
    let res = pages
        .submit(
            &html,
            &[
                ("step", "reset"),
                ("username", "ada"),
                ("code", &code),
                ("new_password", "ada-third-password-3"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn asking_for_a_code_tells_nobody_who_exists() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    proven_user(&app, "ada", "ada-password-123").await;
    // An address never proven gets no code: a stolen token could have just set it.
    app.create_user("acme", "eve", &[], "eve-password-123")
        .await;
    let client = web_client(&app, "acme", &["authorization_code"]).await;

    let (mut pages, html) = Pages::open(&app, &client).await;
    let known = pages.ask_code(&html, "ada").await;
    assert_eq!(messages_to(&app, "ada@example.com"), 1);
    let unknown = pages.ask_code(&html, "nobody-at-all").await;
    let unproven = pages.ask_code(&html, "eve").await;
    assert_eq!(messages_to(&app, "eve@example.com"), 0);
    assert_eq!(app.outbox().len(), 1);
    // The same page, but for the name shown.
    assert_eq!(
        known.replace("ada", "X"),
        unknown.replace("nobody-at-all", "X")
    );
    assert_eq!(known.replace("ada", "X"), unproven.replace("eve", "X"));
    // A code for nobody sets nobody's password.
    let res = pages
        .reset(&unknown, "nobody-at-all", "123456", "a-good-password-1")
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    // Past the per-hour limit of codes, the answer is still the same page and nothing is sent.
    for _ in 0..6 {
        let page = pages.ask_code(&html, "ada").await;
        assert_eq!(page, known);
    }
    assert_eq!(messages_to(&app, "ada@example.com"), 5);
    // While it is good, the same code is sent again.
    let codes: std::collections::HashSet<String> = app
        .outbox()
        .iter()
        .map(|m| {
            let body = m["body"].as_str().unwrap();
            let start = body.find("code is ").unwrap() + 8;
            body[start..start + 6].to_owned()
        })
        .collect();
    assert_eq!(codes.len(), 1);
}

#[tokio::test]
async fn a_code_ends_at_its_fifth_wrong_guess_on_the_page() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    proven_user(&app, "ada", "ada-password-123").await;
    let client = web_client(&app, "acme", &["authorization_code"]).await;
    let (mut pages, html) = Pages::open(&app, &client).await;
    let page = pages.ask_code(&html, "ada").await;
    let code = code_sent_to(&app, "ada@example.com");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        let res = pages.reset(&page, "ada", wrong, "ada-new-password-2").await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    }
    let res = pages.reset(&page, "ada", &code, "ada-new-password-2").await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // A new code works.
    let page = pages.ask_code(&html, "ada").await;
    let fresh = code_sent_to(&app, "ada@example.com");
    let res = pages
        .reset(&page, "ada", &fresh, "ada-new-password-2")
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn the_reset_forms_refuse_another_sites_post() {
    let app = spawn_app().await;
    app.create_pool("acme").await;
    proven_user(&app, "ada", "ada-password-123").await;
    let client = web_client(&app, "acme", &["authorization_code"]).await;
    let (mut pages, html) = Pages::open(&app, &client).await;
    let page = pages.ask_code(&html, "ada").await;
    let code = code_sent_to(&app, "ada@example.com");
    let sent = app.outbox().len();
    let request = hidden(&html, "request");
    for fields in [
        vec![("step", "forgot_start")],
        vec![("step", "forgot"), ("username", "ada")],
        vec![("step", "sign_in")],
        vec![
            ("step", "reset"),
            ("username", "ada"),
            ("code", code.as_str()),
            ("new_password", "attacker-password-1"),
        ],
    ] {
        for csrf in ["", "x", &"a".repeat(43)] {
            let mut form = vec![("request", request.as_str()), ("csrf", csrf)];
            form.extend_from_slice(&fields);
            let res = pages.browser.post(&pages.action, &form).await;
            assert_eq!(res.status(), StatusCode::FORBIDDEN, "{fields:?} {csrf}");
        }
        // A browser without the cookie, as a cross-site form arrives.
        let mut stranger = Browser::new();
        let csrf = hidden(&page, "csrf");
        let mut form = vec![("request", request.as_str()), ("csrf", csrf.as_str())];
        form.extend_from_slice(&fields);
        let res = stranger.post(&pages.action, &form).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{fields:?}");
    }
    assert_eq!(app.outbox().len(), sent);
    // The code is still good: nothing the refused forms sent was acted on.
    let res = pages.reset(&page, "ada", &code, "ada-new-password-2").await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn a_user_whose_password_was_reset_sets_a_new_one_on_the_page() {
    let app = spawn_app().await;
    let (_, admin) = app.acme_with_ada().await;
    proven_user(&app, "bob", "bobs-old-password-1").await;
    let res = app
        .http
        .post(app.pool_url(
            "acme",
            "/api/user-management/users/bob/actions/reset-password",
        ))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let code = code_sent_to(&app, "bob@example.com");
    let client = web_client(&app, "acme", &["authorization_code"]).await;
    let (mut pages, html) = Pages::open(&app, &client).await;

    // Any password: refused exactly as for a wrong one (the API says no more), with the way
    // out on the same page.
    let res = pages
        .submit(
            &html,
            &[
                ("step", "password"),
                ("username", "bob"),
                ("password", "bobs-old-password-1"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let page = res.text().await.unwrap();
    assert!(page.contains("Incorrect username or password."), "{page}");

    // "Forgot your password?" sends the administrator's code again, while it is good.
    let reset_page = pages.ask_code(&page, "bob").await;
    assert_eq!(code_sent_to(&app, "bob@example.com"), code);
    assert_eq!(messages_to(&app, "bob@example.com"), 2);
    let res = pages
        .reset(&reset_page, "bob", &code, "bobs-new-password-2")
        .await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    let location = res.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(query_of(&location).contains_key("code"), "{location}");
    let api_client = app.create_client("acme", &[]).await;
    app.sign_in("acme", &api_client, "bob", "bobs-new-password-2")
        .await;
}

#[tokio::test]
async fn a_disabled_users_reset_is_completed_without_signing_in() {
    let app = spawn_app().await;
    let (_, admin) = app.acme_with_ada().await;
    proven_user(&app, "bob", "bobs-old-password-1").await;
    for action in ["reset-password", "disable"] {
        let res = app
            .http
            .post(app.pool_url(
                "acme",
                &format!("/api/user-management/users/bob/actions/{action}"),
            ))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204);
    }
    let code = code_sent_to(&app, "bob@example.com");
    let client = web_client(&app, "acme", &["authorization_code"]).await;
    let (mut pages, html) = Pages::open(&app, &client).await;
    let res = pages
        .submit(
            &html,
            &[
                ("step", "reset"),
                ("username", "bob"),
                ("code", &code),
                ("new_password", "bobs-new-password-2"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = res.text().await.unwrap();
    assert!(
        page.contains("Your password was changed. Sign in with it."),
        "{page}"
    );
    assert!(
        !pages
            .browser
            .cookies
            .iter()
            .any(|(k, _)| k == "gatehouse_sso_acme")
    );
}

#[tokio::test]
async fn wrong_codes_from_one_address_are_throttled_like_wrong_passwords() {
    let app = crate::common::spawn_app_with(crate::common::Backend::from_env(), |c| {
        c.limits.address_burst = 3;
        c.limits.address_per_minute = 1;
    })
    .await;
    app.create_pool("acme").await;
    proven_user(&app, "ada", "ada-password-123").await;
    let client = web_client(&app, "acme", &["authorization_code"]).await;
    let (mut pages, html) = Pages::open(&app, &client).await;
    let page = pages.ask_code(&html, "ada").await;
    let code = code_sent_to(&app, "ada@example.com");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let res = pages.reset(&page, "ada", wrong, "ada-new-password-2").await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    // Even the right code waits now.
    let res = pages.reset(&page, "ada", &code, "ada-new-password-2").await;
    assert_eq!(res.status(), 429);
    assert!(res.headers().get("retry-after").is_some());
}
