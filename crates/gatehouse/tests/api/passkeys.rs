//! Passkeys (WebAuthn) through the API and Cognito's API, with webauthn-authenticator-rs'
//! software authenticator as the user's device: registration, the `WEB_AUTHN` second factor,
//! `SELECT_MFA_TYPE`, and the attacks: a bogus signature, another origin, no user
//! verification, a counter that goes backwards, a ceremony or a session used twice or too
//! late, an impersonated token, `disable-mfa`. The hosted pages run in Chromium
//! (`passkeys_browser.rs`).

use gatehouse_domain::client::ClientType;
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::{CreationChallengeResponse, RequestChallengeResponse, Url};

use crate::common::*;

/// A server whose public URL is `http://localhost:PORT`: a secure context for WebAuthn,
/// with RP ID `localhost`.
pub(crate) async fn spawn_app_at_localhost() -> TestApp {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    spawn_app_with(Backend::from_env(), |c| {
        c.listen = format!("127.0.0.1:{port}");
        c.public_url = format!("http://localhost:{port}");
    })
    .await
}

fn origin(app: &TestApp) -> Url {
    Url::parse(&app.public_url).unwrap()
}

/// A user's device: a software passkey that verifies its user.
fn device() -> SoftPasskey {
    SoftPasskey::new(true)
}

async fn post(app: &TestApp, path: &str, bearer: Option<&str>, body: Value) -> reqwest::Response {
    let mut req = app.http.post(app.pool_url("acme", path)).json(&body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

/// `register/start` for the holder of `token`: the creation options.
async fn start_registration(app: &TestApp, token: &str) -> CreationChallengeResponse {
    let res = post(
        app,
        "/api/auth/mfa/webauthn/register/start",
        Some(token),
        json!({}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let rp = &body["publicKey"]["rp"];
    assert_eq!(rp["id"], "localhost", "{body}");
    assert_eq!(
        body["publicKey"]["authenticatorSelection"]["residentKey"], "required",
        "a discoverable credential, for passwordless sign-in"
    );
    assert_eq!(
        body["publicKey"]["authenticatorSelection"]["userVerification"],
        "required"
    );
    device_options(body)
}

/// The creation options as the software passkey takes them: it keeps no resident keys, so
/// it is offered a non-discoverable credential (a second factor still; passwordless sign-in,
/// which needs a discoverable one, is tested in Chromium).
fn device_options(mut body: Value) -> CreationChallengeResponse {
    let selection = &mut body["publicKey"]["authenticatorSelection"];
    selection["residentKey"] = "discouraged".into();
    selection["requireResidentKey"] = false.into();
    serde_json::from_value(body).unwrap()
}

async fn finish_registration(
    app: &TestApp,
    token: &str,
    credential: &Value,
    name: &str,
) -> reqwest::Response {
    post(
        app,
        "/api/auth/mfa/webauthn/register/finish",
        Some(token),
        json!({"credential": credential, "name": name}),
    )
    .await
}

/// Registers `device` as a passkey of the holder of `token`.
async fn register(app: &TestApp, token: &str, device: &mut SoftPasskey) {
    let options = start_registration(app, token).await;
    let credential = device.do_registration(origin(app), options).unwrap();
    let res = finish_registration(
        app,
        token,
        &serde_json::to_value(&credential).unwrap(),
        "laptop",
    )
    .await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["name"], "laptop");
}

/// The password step of a user with passkeys: the `WEB_AUTHN` session and request options.
async fn password_step(
    app: &TestApp,
    c: &ClientCreds,
    username: &str,
    password: &str,
) -> (String, RequestChallengeResponse) {
    let res = post(
        app,
        "/api/auth/initiate",
        None,
        json!({"flow": "USER_PASSWORD", "client_id": c.id, "client_secret": c.secret,
               "username": username, "password": password}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["challenge"], "WEB_AUTHN", "{body}");
    assert!(body.get("access_token").is_none());
    web_authn_challenge(&body)
}

fn web_authn_challenge(body: &Value) -> (String, RequestChallengeResponse) {
    let options: Value = serde_json::from_str(
        body["parameters"]["CREDENTIAL_REQUEST_OPTIONS"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(options["userVerification"], "required", "{options}");
    let options = serde_json::from_value(json!({ "publicKey": options })).unwrap();
    (body["session"].as_str().unwrap().to_owned(), options)
}

async fn answer(
    app: &TestApp,
    c: &ClientCreds,
    session: &str,
    credential: &Value,
) -> reqwest::Response {
    post(
        app,
        "/api/auth/respond",
        None,
        json!({"challenge": "WEB_AUTHN", "client_id": c.id, "client_secret": c.secret,
               "session": session, "credential": credential}),
    )
    .await
}

fn assertion(app: &TestApp, device: &mut SoftPasskey, options: RequestChallengeResponse) -> Value {
    serde_json::to_value(device.do_authentication(origin(app), options).unwrap()).unwrap()
}

#[tokio::test]
async fn a_passkey_registered_through_the_api_is_a_second_factor_once_per_session() {
    let app = spawn_app_at_localhost().await;
    let (client, ada) = app.acme_with_ada().await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let mut laptop = device();

    // A registration response answers its ceremony once.
    let options = start_registration(&app, &alice).await;
    let credential =
        serde_json::to_value(laptop.do_registration(origin(&app), options).unwrap()).unwrap();
    let res = finish_registration(&app, &alice, &credential, "laptop").await;
    assert_eq!(res.status(), 201);
    let res = finish_registration(&app, &alice, &credential, "laptop").await;
    assert_eq!(res.status(), 401, "a registration ceremony is single use");
    assert_eq!(app.audit_count("acme", "user.passkey_registered").await, 1);

    // The password is no longer enough.
    let (session, options) = password_step(&app, &client, "alice", "alice-password-1").await;
    let signed = assertion(&app, &mut laptop, options);
    let res = answer(&app, &client, &session, &signed).await;
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.userinfo_status("acme", access).await, 200);
    assert_eq!(app.audit_count("acme", "user.passkey_used").await, 1);

    // The same answer again: the session and the ceremony are spent.
    let res = answer(&app, &client, &session, &signed).await;
    assert_eq!(res.status(), 401);

    // The list shows it, used.
    let res = app
        .http
        .get(app.pool_url("acme", "/api/auth/mfa/webauthn/credentials"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let list: Value = res.json().await.unwrap();
    let creds = list["credentials"].as_array().unwrap();
    assert_eq!(creds.len(), 1, "{list}");
    assert_eq!(creds[0]["name"], "laptop");
    assert!(creds[0]["last_used_at"].is_i64(), "{list}");

    // A second factor's session is bound to the challenge: it cannot answer another.
    let (session, _) = password_step(&app, &client, "alice", "alice-password-1").await;
    let res = post(
        &app,
        "/api/auth/respond",
        None,
        json!({"challenge": "SOFTWARE_TOKEN_MFA", "client_id": client.id,
               "client_secret": client.secret, "session": session, "code": "123456"}),
    )
    .await;
    assert_eq!(res.status(), 401);

    // Malformed answers are the client's mistake, said clearly.
    let (session, _) = password_step(&app, &client, "alice", "alice-password-1").await;
    let res = answer(&app, &client, &session, &json!({"id": "x"})).await;
    assert_eq!(res.status(), 400);
    let res = post(
        &app,
        "/api/auth/respond",
        None,
        json!({"challenge": "WEB_AUTHN", "client_id": client.id,
               "client_secret": client.secret, "session": session}),
    )
    .await;
    assert_eq!(res.status(), 400, "credential is required");

    // Alice removes her passkey: the password alone signs her in again.
    let id = creds[0]["credential_id"].as_str().unwrap().to_owned();
    let path = format!("/api/auth/mfa/webauthn/credentials/{id}");
    let acting = app.impersonate("acme", &ada, "alice").await;
    let res = app
        .http
        .delete(app.pool_url("acme", &path))
        .bearer_auth(&acting)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "not with an impersonated token");
    let res = app
        .http
        .delete(app.pool_url("acme", "/api/auth/mfa/webauthn/credentials/AAAA"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app
        .http
        .delete(app.pool_url("acme", &path))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.audit_count("acme", "user.passkey_deleted").await, 1);
    app.sign_in("acme", &client, "alice", "alice-password-1")
        .await;
}

#[tokio::test]
async fn forged_cloned_and_unverified_assertions_are_refused_and_audited() {
    let app = spawn_app_at_localhost().await;
    let (client, _ada) = app.acme_with_ada().await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let mut laptop = device();
    register(&app, &alice, &mut laptop).await;

    // A bogus signature.
    let (session, options) = password_step(&app, &client, "alice", "alice-password-1").await;
    let mut forged = assertion(&app, &mut laptop, options);
    let signature = forged["response"]["signature"].as_str().unwrap().to_owned();
    let mut bytes = base64_url_decode(&signature);
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    forged["response"]["signature"] = base64_url_encode(&bytes).into();
    let res = answer(&app, &client, &session, &forged).await;
    assert_eq!(res.status(), 401, "a bogus signature");
    assert_eq!(app.audit_count("acme", "user.passkey_refused").await, 1);
    assert!(
        app.audit_count("acme", "user.sign_in_failed").await >= 1,
        "a failed assertion counts toward the lockout"
    );
    // The ceremony was spent by the failure: the session cannot be retried with it.
    let res = answer(&app, &client, &session, &forged).await;
    assert_eq!(res.status(), 401);

    // Another origin (a phishing site) signed the challenge.
    let (session, options) = password_step(&app, &client, "alice", "alice-password-1").await;
    let phished = serde_json::to_value(
        laptop
            .do_authentication(Url::parse("http://localhost:1").unwrap(), options)
            .unwrap(),
    )
    .unwrap();
    let res = answer(&app, &client, &session, &phished).await;
    assert_eq!(res.status(), 401, "another origin");

    // A cloned authenticator: two ceremonies signed in order, answered in the other order,
    // so the second answer's counter is behind the one the first recorded.
    let (first_session, first_options) =
        password_step(&app, &client, "alice", "alice-password-1").await;
    let (second_session, second_options) =
        password_step(&app, &client, "alice", "alice-password-1").await;
    let older = assertion(&app, &mut laptop, first_options);
    let newer = assertion(&app, &mut laptop, second_options);
    let res = answer(&app, &client, &second_session, &newer).await;
    assert_eq!(res.status(), 200);
    let res = answer(&app, &client, &first_session, &older).await;
    assert_eq!(res.status(), 401, "a sign count that went backwards");
    assert_eq!(
        app.audit_count("acme", "user.passkey_sign_count_regressed")
            .await,
        1
    );

    // (A device that does not verify its user: the hosted pages' test in Chromium, whose
    // virtual authenticator can answer without user verification.)
    let res = app
        .http
        .get(app.pool_url("acme", "/api/auth/mfa/webauthn/credentials"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    let list: Value = res.json().await.unwrap();
    assert_eq!(list["credentials"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn ceremonies_and_sessions_expire() {
    let app = spawn_app_at_localhost().await;
    let (client, _ada) = app.acme_with_ada().await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let mut laptop = device();

    // A registration answered after its five minutes.
    let options = start_registration(&app, &alice).await;
    let credential = laptop.do_registration(origin(&app), options).unwrap();
    app.clock.advance(301);
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let res = finish_registration(
        &app,
        &alice,
        &serde_json::to_value(&credential).unwrap(),
        "late",
    )
    .await;
    assert_eq!(res.status(), 401, "an expired ceremony");

    register(&app, &alice, &mut laptop).await;
    // A second factor answered after its session's three minutes.
    let (session, options) = password_step(&app, &client, "alice", "alice-password-1").await;
    let signed = assertion(&app, &mut laptop, options);
    app.clock.advance(181);
    let res = answer(&app, &client, &session, &signed).await;
    assert_eq!(res.status(), 401, "an expired session");
    // The purge removes what was never answered.
    let purged = app.gh.purge_expired().await.unwrap();
    assert!(purged.webauthn_ceremonies <= 1, "{purged:?}");
}

#[tokio::test]
async fn both_factors_ask_to_choose_and_disable_mfa_removes_passkeys() {
    let app = spawn_app_at_localhost().await;
    let (client, ada) = app.acme_with_ada().await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;

    // An impersonated token cannot add a passkey to the user it acts as.
    let acting = app.impersonate("acme", &ada, "alice").await;
    let res = post(
        &app,
        "/api/auth/mfa/webauthn/register/start",
        Some(&acting),
        json!({}),
    )
    .await;
    assert_eq!(res.status(), 403);

    let mut laptop = device();
    register(&app, &alice, &mut laptop).await;
    crate::mfa::enroll(&app, &alice).await;

    let res = post(
        &app,
        "/api/auth/initiate",
        None,
        json!({"flow": "USER_PASSWORD", "client_id": client.id, "client_secret": client.secret,
               "username": "alice", "password": "alice-password-1"}),
    )
    .await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["challenge"], "SELECT_MFA_TYPE", "{body}");
    let choices: Value =
        serde_json::from_str(body["parameters"]["MFAS_CAN_CHOOSE"].as_str().unwrap()).unwrap();
    assert_eq!(choices, json!(["SOFTWARE_TOKEN_MFA", "WEB_AUTHN"]));
    let select = body["session"].as_str().unwrap().to_owned();
    let choose = |answer: &str| {
        json!({"challenge": "SELECT_MFA_TYPE", "client_id": client.id,
               "client_secret": client.secret, "session": select, "answer": answer})
    };
    let res = post(&app, "/api/auth/respond", None, choose("SMS_MFA")).await;
    assert_eq!(res.status(), 400, "not a factor of this pool");
    let res = post(&app, "/api/auth/respond", None, choose("WEB_AUTHN")).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["challenge"], "WEB_AUTHN");
    let (session, options) = web_authn_challenge(&body);
    let res = post(&app, "/api/auth/respond", None, choose("WEB_AUTHN")).await;
    assert_eq!(res.status(), 401, "the choice's session is single use");
    let signed = assertion(&app, &mut laptop, options);
    let res = answer(&app, &client, &session, &signed).await;
    assert_eq!(res.status(), 200);

    // disable-mfa removes the passkeys with the token: the password alone signs in again.
    let res = post(
        &app,
        "/api/user-management/users/alice/actions/disable-mfa",
        Some(&ada),
        json!({}),
    )
    .await;
    assert_eq!(res.status(), 204);
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let res = app
        .http
        .get(app.pool_url("acme", "/api/auth/mfa/webauthn/credentials"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    let list: Value = res.json().await.unwrap();
    assert_eq!(list, json!({"credentials": []}));
}

#[tokio::test]
async fn cognito_registers_a_passkey_and_answers_web_authn() {
    let app = spawn_app_at_localhost().await;
    let (_client, _ada) = app.acme_with_ada().await;
    let (client_id, _) = crate::cognito::sign_in_client(&app, "acme", ClientType::Public).await;
    let initiate = json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client_id,
        "AuthParameters": {"USERNAME": "alice", "PASSWORD": "alice-password-1"}});
    let (status, _, body) =
        crate::cognito::call(&app, "acme", "InitiateAuth", initiate.clone()).await;
    assert_eq!(status, 200, "{body}");
    let access = body["AuthenticationResult"]["AccessToken"]
        .as_str()
        .unwrap()
        .to_owned();

    let (status, _, body) = crate::cognito::call(
        &app,
        "acme",
        "StartWebAuthnRegistration",
        json!({"AccessToken": access}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let options = device_options(json!({"publicKey": body["CredentialCreationOptions"]}));
    let mut laptop = device();
    let credential = laptop.do_registration(origin(&app), options).unwrap();
    let complete = json!({"AccessToken": access, "Credential": credential});
    let (status, _, body) = crate::cognito::call(
        &app,
        "acme",
        "CompleteWebAuthnRegistration",
        complete.clone(),
    )
    .await;
    assert_eq!((status, body), (200, json!({})));
    let (status, kind, _) =
        crate::cognito::call(&app, "acme", "CompleteWebAuthnRegistration", complete).await;
    assert_eq!(
        (status, kind.as_str()),
        (400, "WebAuthnChallengeNotFoundException")
    );

    let (status, _, body) =
        crate::cognito::call(&app, "acme", "InitiateAuth", initiate.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(body["ChallengeName"], "WEB_AUTHN", "{body}");
    let options: Value = serde_json::from_str(
        body["ChallengeParameters"]["CREDENTIAL_REQUEST_OPTIONS"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let options: RequestChallengeResponse =
        serde_json::from_value(json!({ "publicKey": options })).unwrap();
    let signed = assertion(&app, &mut laptop, options);
    let respond = json!({"ChallengeName": "WEB_AUTHN", "ClientId": client_id,
        "Session": body["Session"],
        "ChallengeResponses": {"USERNAME": "alice", "CREDENTIAL": signed.to_string()}});
    let (status, _, body) =
        crate::cognito::call(&app, "acme", "RespondToAuthChallenge", respond.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["AuthenticationResult"]["IdToken"].is_string());
    let (status, kind, _) =
        crate::cognito::call(&app, "acme", "RespondToAuthChallenge", respond).await;
    assert_eq!(
        (status, kind.as_str()),
        (400, "NotAuthorizedException"),
        "a used session"
    );

    // With a software token too, the user chooses (SELECT_MFA_TYPE, MFAS_CAN_CHOOSE).
    crate::mfa::enroll(&app, &access).await;
    let (status, _, body) =
        crate::cognito::call(&app, "acme", "InitiateAuth", initiate.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(body["ChallengeName"], "SELECT_MFA_TYPE", "{body}");
    assert_eq!(
        body["ChallengeParameters"]["MFAS_CAN_CHOOSE"],
        r#"["SOFTWARE_TOKEN_MFA","WEB_AUTHN"]"#
    );
    let select = json!({"ChallengeName": "SELECT_MFA_TYPE", "ClientId": client_id,
        "Session": body["Session"],
        "ChallengeResponses": {"USERNAME": "alice", "ANSWER": "WEB_AUTHN"}});
    let (status, _, body) =
        crate::cognito::call(&app, "acme", "RespondToAuthChallenge", select).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["ChallengeName"], "WEB_AUTHN", "{body}");
    let options: Value = serde_json::from_str(
        body["ChallengeParameters"]["CREDENTIAL_REQUEST_OPTIONS"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let signed = assertion(
        &app,
        &mut laptop,
        serde_json::from_value(json!({ "publicKey": options })).unwrap(),
    );
    let respond = json!({"ChallengeName": "WEB_AUTHN", "ClientId": client_id,
        "Session": body["Session"],
        "ChallengeResponses": {"USERNAME": "alice", "CREDENTIAL": signed.to_string()}});
    let (status, _, body) =
        crate::cognito::call(&app, "acme", "RespondToAuthChallenge", respond).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["AuthenticationResult"]["AccessToken"].is_string());
}

fn base64_url_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s.trim_end_matches('='))
        .unwrap()
}

fn base64_url_encode(b: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The text of an attribute as minijinja escaped it.
fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#x2f;", "/")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The value of attribute `name` in a page.
fn attribute(html: &str, name: &str) -> String {
    let marker = format!("{name}=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} in {html}"))
        + marker.len();
    let end = start + html[start..].find('"').unwrap();
    unescape(&html[start..end])
}

/// Alice's password on the hosted sign-in page: the form's action and the next page.
async fn hosted_password_step(
    app: &TestApp,
    client: &ClientCreds,
    browser: &mut crate::code_flow::Browser,
) -> (String, String) {
    use crate::code_flow::{authorize_url, hidden};
    let url = authorize_url(app, "acme", client, "");
    let action = url.split('?').next().unwrap().to_owned();
    let page = browser.get(&url).await;
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_owned();
    let html = page.text().await.unwrap();
    let nonce = attribute(&html, "nonce");
    assert!(
        csp.contains(&format!("script-src 'nonce-{nonce}';")),
        "the one script is allowed by its nonce: {csp}"
    );
    assert!(html.contains(&format!(
        "<script src=\"passkeys.js\" nonce=\"{nonce}\"></script>"
    )));
    let res = browser
        .post(
            &action,
            &[
                ("step", "password"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "alice"),
                ("password", "alice-password-1"),
            ],
        )
        .await;
    assert_eq!(res.status(), 200);
    (action, res.text().await.unwrap())
}

#[tokio::test]
async fn the_hosted_sign_in_lets_a_user_with_both_factors_choose() {
    use crate::code_flow::{Browser, hidden, query_of, web_client};
    use reqwest::StatusCode;
    use reqwest::header::LOCATION;

    let app = spawn_app_at_localhost().await;
    let (api_client, _ada) = app.acme_with_ada().await;
    let alice = app
        .sign_in("acme", &api_client, "alice", "alice-password-1")
        .await;
    let mut laptop = device();
    register(&app, &alice, &mut laptop).await;
    let (secret, _) = crate::mfa::enroll(&app, &alice).await;
    let client = web_client(&app, "acme", &["authorization_code"]).await;

    // The password, then the choice.
    let choose = |html: &str, answer: &str| {
        vec![
            ("step".to_owned(), "select_mfa".to_owned()),
            ("answer".to_owned(), answer.to_owned()),
            ("request".to_owned(), hidden(html, "request")),
            ("challenge".to_owned(), hidden(html, "challenge")),
            ("csrf".to_owned(), hidden(html, "csrf")),
        ]
    };

    // The authenticator app.
    let mut browser = Browser::new();
    let (action, html) = hosted_password_step(&app, &client, &mut browser).await;
    assert!(
        html.contains(">Use a passkey</button>")
            && html.contains(">Use your authenticator app</button>"),
        "{html}"
    );
    let form = choose(&html, "SOFTWARE_TOKEN_MFA");
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = browser.post(&action, &refs).await;
    assert_eq!(res.status(), StatusCode::OK);
    let code_html = res.text().await.unwrap();
    assert!(
        code_html.contains("<label for=\"code\">Code</label>"),
        "{code_html}"
    );
    // The choice is made once.
    let res = browser.post(&action, &refs).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    app.clock.advance(30);
    let code = crate::mfa::pyotp_code(&secret, crate::mfa::now(&app));
    let res = browser
        .post(
            &action,
            &[
                ("step", "mfa_code"),
                ("request", &hidden(&code_html, "request")),
                ("challenge", &hidden(&code_html, "challenge")),
                ("csrf", &hidden(&code_html, "csrf")),
                ("code", &code),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(query_of(&location).contains_key("code"), "{location}");

    // The passkey: its page carries the request options; the assertion signs in.
    let mut browser = Browser::new();
    let (action, html) = hosted_password_step(&app, &client, &mut browser).await;
    let form = choose(&html, "WEB_AUTHN");
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = browser.post(&action, &refs).await;
    assert_eq!(res.status(), StatusCode::OK);
    let passkey_html = res.text().await.unwrap();
    assert!(
        passkey_html.contains(">Use passkey</button>"),
        "{passkey_html}"
    );
    let options: Value = serde_json::from_str(&attribute(&passkey_html, "data-options")).unwrap();
    let options = serde_json::from_value(json!({ "publicKey": options })).unwrap();
    let signed = assertion(&app, &mut laptop, options).to_string();
    let answer = |credential: &str| {
        vec![
            ("step".to_owned(), "passkey".to_owned()),
            ("request".to_owned(), hidden(&passkey_html, "request")),
            ("challenge".to_owned(), hidden(&passkey_html, "challenge")),
            ("csrf".to_owned(), hidden(&passkey_html, "csrf")),
            ("credential".to_owned(), credential.to_owned()),
        ]
    };
    let form = answer("not json");
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = browser.post(&action, &refs).await;
    assert_eq!(
        res.status(),
        StatusCode::BAD_REQUEST,
        "an unreadable answer"
    );
    let form = answer(&signed);
    let refs: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let res = browser.post(&action, &refs).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    let location = res.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(query_of(&location).contains_key("code"), "{location}");
    // Its challenge and its ceremony are spent: refused, and nobody is signed in.
    let res = browser.post(&action, &refs).await;
    assert!(
        matches!(
            res.status(),
            StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED
        ),
        "{}",
        res.status()
    );
    assert!(res.headers().get(LOCATION).is_none());
}

#[tokio::test]
async fn a_passwordless_start_writes_nothing_and_its_ceremony_stays_with_the_browser() {
    use crate::code_flow::{Browser, authorize_url, hidden, web_client};
    use reqwest::StatusCode;

    let app = spawn_app_at_localhost().await;
    app.acme_with_ada().await;
    let client = web_client(&app, "acme", &["authorization_code"]).await;
    let mut browser = Browser::new();
    let html = browser
        .get(&authorize_url(&app, "acme", &client, ""))
        .await
        .text()
        .await
        .unwrap();
    let options_url = app.pool_url("acme", "/oauth2/passkey/options");

    // The sign-in page's CSRF token is required.
    let res = browser.post(&options_url, &[("csrf", "forged")]).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let res = browser
        .post(&options_url, &[("csrf", &hidden(&html, "csrf"))])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let cookie = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("gatehouse_passkey_acme="))
        .expect("the sealed ceremony goes to the browser");
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && cookie.contains("Max-Age=300"),
        "{cookie}"
    );
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["publicKey"]["userVerification"], "required", "{body}");
    assert_eq!(body["publicKey"]["rpId"], "localhost", "{body}");
    assert!(body["publicKey"]["challenge"].is_string());
    // Nothing was stored for it: the purge, long after, finds no ceremony.
    app.clock.advance(3600);
    assert_eq!(app.gh.purge_expired().await.unwrap().webauthn_ceremonies, 0);

    // Another browser, without the cookie, has no ceremony to answer.
    let mut other = Browser::new();
    let html = other
        .get(&authorize_url(&app, "acme", &client, ""))
        .await
        .text()
        .await
        .unwrap();
    let client_data = base64_url_encode(
        json!({"type": "webauthn.get", "challenge": body["publicKey"]["challenge"],
               "origin": app.public_url})
        .to_string()
        .as_bytes(),
    );
    let credential = json!({"id": "AAAA", "rawId": "AAAA", "type": "public-key",
        "response": {"clientDataJSON": client_data, "authenticatorData": "AAAA",
                     "signature": "AAAA", "userHandle": "AAAA"}});
    let action = app.pool_url("acme", "/oauth2/authorize");
    let res = other
        .post(
            &action,
            &[
                ("step", "passkey_signin"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
                ("credential", &credential.to_string()),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("That passkey was not accepted.")
    );
}

#[tokio::test]
async fn a_username_that_is_backing_off_cannot_answer_with_its_passkey() {
    let app = spawn_app_at_localhost().await;
    let (client, _ada) = app.acme_with_ada().await;
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    let mut laptop = device();
    register(&app, &alice, &mut laptop).await;
    let (session, options) = password_step(&app, &client, "alice", "alice-password-1").await;
    let signed = assertion(&app, &mut laptop, options);

    // Someone guesses Alice's password meanwhile, past the free failures.
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let res = post(
            &app,
            "/api/auth/initiate",
            None,
            json!({"flow": "USER_PASSWORD", "client_id": client.id,
                   "client_secret": client.secret, "username": "alice", "password": "guess"}),
        )
        .await;
        statuses.push(res.status().as_u16());
    }
    assert_eq!(statuses.last(), Some(&429), "{statuses:?}");

    // While the username waits, even a good assertion is not looked at.
    let res = answer(&app, &client, &session, &signed).await;
    assert_eq!(res.status(), 429);
    // Once the wait is over, it signs in (the session and the ceremony still stand).
    app.clock.advance(60);
    let res = answer(&app, &client, &session, &signed).await;
    assert_eq!(res.status(), 200);
}
