//! E-mail one-time codes (`EMAIL_OTP`): as a second factor after a password (through the API,
//! the Cognito API and the hosted pages), the choice among several factors
//! (`SELECT_MFA_TYPE`), and as a first factor in the choice-based `USER_AUTH` flow with
//! `SELECT_CHALLENGE`. Codes are read from the file outbox, as a user reads its mail.

use gatehouse_crypto::secret::Secret;
use gatehouse_domain::client::ClientType;
use gatehouse_domain::ids::PoolSlug;
use gatehouse_domain::user::UserAttributes;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::{Value, json};

use crate::code_flow::{Browser, authorize_url, hidden, query_of, web_client};
use crate::cognito::{boto3, call, sign_in_client};
use crate::common::*;

/// A user of `pool` whose e-mail address `{name}@mail.example` is verified.
async fn verified_user(app: &TestApp, pool: &str, name: &str, password: &str) {
    let pool = app.gh.pool(&PoolSlug::parse(pool).unwrap()).await.unwrap();
    app.gh
        .create_user_with_password(
            &pool,
            name,
            UserAttributes {
                email: format!("{name}@mail.example"),
                name: name.to_owned(),
                email_verified: Some(true),
                ..UserAttributes::default()
            },
            Some(Secret::new(password)),
            None,
        )
        .await
        .unwrap();
}

/// The sign-in codes sent to `to` so far, oldest first.
fn codes_sent(app: &TestApp, to: &str) -> Vec<String> {
    app.outbox()
        .iter()
        .filter(|m| m["kind"] == "sign_in_code" && m["to_email"] == to)
        .map(|m| {
            let body = m["body"].as_str().unwrap();
            let code: String = body.split(" is ").nth(1).unwrap().chars().take(6).collect();
            assert!(code.chars().all(|c| c.is_ascii_digit()), "{body}");
            code
        })
        .collect()
}

fn last_code(app: &TestApp, to: &str) -> String {
    codes_sent(app, to).pop().expect("a sign-in code was sent")
}

async fn post_json(app: &TestApp, path: &str, bearer: Option<&str>, body: Value) -> (u16, Value) {
    let mut req = app.http.post(app.pool_url("acme", path)).json(&body);
    if let Some(t) = bearer {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn initiate(app: &TestApp, c: &ClientCreds, username: &str, password: &str) -> Value {
    let (status, body) = post_json(
        app,
        "/api/auth/initiate",
        None,
        json!({"flow": "USER_PASSWORD", "client_id": c.id, "client_secret": c.secret,
               "username": username, "password": password}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn respond(
    app: &TestApp,
    c: &ClientCreds,
    challenge: &str,
    session: &str,
    field: (&str, &str),
) -> (u16, Value) {
    let mut body = json!({"challenge": challenge, "client_id": c.id,
                          "client_secret": c.secret, "session": session});
    body[field.0] = Value::from(field.1);
    post_json(app, "/api/auth/respond", None, body).await
}

async fn enable_email(app: &TestApp, token: &str) -> u16 {
    post_json(app, "/api/auth/mfa/email", Some(token), json!({}))
        .await
        .0
}

#[tokio::test]
async fn an_email_code_is_a_second_factor_good_once_and_only_for_its_session() {
    let app = spawn_app().await;
    let (client, ada) = app.acme_with_ada().await;
    verified_user(&app, "acme", "erin", "erin-password-1").await;

    // Codes go only to a verified address: alice's is not.
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    assert_eq!(enable_email(&app, &alice).await, 409);
    // Nor can someone acting as the user turn it on.
    let acting = app.impersonate("acme", &ada, "erin").await;
    assert_eq!(enable_email(&app, &acting).await, 403);
    assert_eq!(
        post_json(&app, "/api/auth/mfa/email", None, json!({}))
            .await
            .0,
        401
    );

    let erin = app
        .sign_in("acme", &client, "erin", "erin-password-1")
        .await;
    assert_eq!(enable_email(&app, &erin).await, 204);
    let enrolled = app.audit_details("acme", "user.mfa_enrolled").await;
    assert!(
        enrolled.iter().any(|d| d["factor"] == "email_otp"),
        "{enrolled:?}"
    );

    let first = initiate(&app, &client, "erin", "erin-password-1").await;
    assert_eq!(first["challenge"], "EMAIL_OTP", "{first}");
    assert!(first.get("access_token").is_none());
    assert_eq!(
        first["parameters"]["CODE_DELIVERY_DESTINATION"],
        "e***@m***"
    );
    assert_eq!(
        first["parameters"]["CODE_DELIVERY_DELIVERY_MEDIUM"],
        "EMAIL"
    );
    let first_session = first["session"].as_str().unwrap().to_owned();
    let first_code = last_code(&app, "erin@mail.example");
    // The session carries the code sealed: nothing in it reads as the code.
    let payload = jwt_claims(&first_session).to_string();
    assert!(!payload.contains(&first_code), "{payload}");

    let second = initiate(&app, &client, "erin", "erin-password-1").await;
    let second_session = second["session"].as_str().unwrap().to_owned();
    let second_code = last_code(&app, "erin@mail.example");
    assert_eq!(codes_sent(&app, "erin@mail.example").len(), 2);

    // A code is good for its own session only.
    if first_code != second_code {
        let (status, _) = respond(
            &app,
            &client,
            "EMAIL_OTP",
            &second_session,
            ("code", &first_code),
        )
        .await;
        assert_eq!(status, 401);
    }
    let wrong = if second_code == "000000" {
        "111111"
    } else {
        "000000"
    };
    let (status, body) =
        respond(&app, &client, "EMAIL_OTP", &second_session, ("code", wrong)).await;
    assert_eq!(status, 401, "{body}");
    // A wrong code leaves the session good; the right one signs in, once.
    let (status, body) = respond(
        &app,
        &client,
        "EMAIL_OTP",
        &second_session,
        ("code", &second_code),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(jwt_claims(token)["username"], "erin");
    let (status, _) = respond(
        &app,
        &client,
        "EMAIL_OTP",
        &second_session,
        ("code", &second_code),
    )
    .await;
    assert_eq!(status, 401, "a used session is refused");

    // The first session's code still signs in its own session; a session of another
    // challenge does not take an e-mail code.
    let (status, _) = respond(
        &app,
        &client,
        "SOFTWARE_TOKEN_MFA",
        &first_session,
        ("code", &first_code),
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = respond(
        &app,
        &client,
        "EMAIL_OTP",
        &first_session,
        ("code", &first_code),
    )
    .await;
    assert_eq!(status, 200);

    // Sessions expire with the pool's challenge-session lifetime (three minutes).
    let expiring = initiate(&app, &client, "erin", "erin-password-1").await;
    let code = last_code(&app, "erin@mail.example");
    app.clock.advance(181);
    let (status, _) = respond(
        &app,
        &client,
        "EMAIL_OTP",
        expiring["session"].as_str().unwrap(),
        ("code", &code),
    )
    .await;
    assert_eq!(status, 401, "an expired session");
}

#[tokio::test]
async fn sending_is_limited_and_wrong_codes_count_toward_the_lockout() {
    let app = spawn_app().await;
    let (client, _ada) = app.acme_with_ada().await;
    verified_user(&app, "acme", "erin", "erin-password-1").await;
    let erin = app
        .sign_in("acme", &client, "erin", "erin-password-1")
        .await;
    assert_eq!(enable_email(&app, &erin).await, 204);

    let challenge = initiate(&app, &client, "erin", "erin-password-1").await;
    let session = challenge["session"].as_str().unwrap().to_owned();
    let code = last_code(&app, "erin@mail.example");
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let mut throttled = false;
    for _ in 0..12 {
        let (status, _) = respond(&app, &client, "EMAIL_OTP", &session, ("code", wrong)).await;
        if status == 429 {
            throttled = true;
            break;
        }
        assert_eq!(status, 401);
    }
    assert!(throttled, "wrong codes lead to the back-off");
    // The right code does not get past the back-off either.
    let (status, _) = respond(&app, &client, "EMAIL_OTP", &session, ("code", &code)).await;
    assert_eq!(status, 429);

    // Codes sent in an hour are limited per user and address.
    app.clock.advance(3600);
    let mut sent = 0;
    let mut limited = false;
    for _ in 0..8 {
        let (status, body) = post_json(
            &app,
            "/api/auth/initiate",
            None,
            json!({"flow": "USER_PASSWORD", "client_id": client.id,
                   "client_secret": client.secret, "username": "erin",
                   "password": "erin-password-1"}),
        )
        .await;
        if status == 429 {
            limited = true;
            break;
        }
        assert_eq!(status, 200, "{body}");
        sent += 1;
    }
    assert!(limited && sent >= 1, "sent {sent} codes before the limit");
}

#[tokio::test]
async fn select_mfa_type_offers_the_factors_the_user_holds() {
    let app = spawn_app().await;
    let (client, ada) = app.acme_with_ada().await;
    verified_user(&app, "acme", "erin", "erin-password-1").await;
    let erin = app
        .sign_in("acme", &client, "erin", "erin-password-1")
        .await;
    crate::mfa::enroll(&app, &erin).await;
    assert_eq!(enable_email(&app, &erin).await, 204);

    let select = initiate(&app, &client, "erin", "erin-password-1").await;
    assert_eq!(select["challenge"], "SELECT_MFA_TYPE", "{select}");
    let choices: Value =
        serde_json::from_str(select["parameters"]["MFAS_CAN_CHOOSE"].as_str().unwrap()).unwrap();
    assert_eq!(choices, json!(["SOFTWARE_TOKEN_MFA", "EMAIL_OTP"]));
    let session = select["session"].as_str().unwrap();
    // A factor the user does not hold is not a choice, and the session stays good.
    let (status, _) = respond(
        &app,
        &client,
        "SELECT_MFA_TYPE",
        session,
        ("answer", "WEB_AUTHN"),
    )
    .await;
    assert_eq!(status, 400);
    let (status, body) = respond(
        &app,
        &client,
        "SELECT_MFA_TYPE",
        session,
        ("answer", "EMAIL_OTP"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["challenge"], "EMAIL_OTP");
    let code = last_code(&app, "erin@mail.example");
    let (status, body) = respond(
        &app,
        &client,
        "EMAIL_OTP",
        body["session"].as_str().unwrap(),
        ("code", &code),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = respond(
        &app,
        &client,
        "SELECT_MFA_TYPE",
        session,
        ("answer", "EMAIL_OTP"),
    )
    .await;
    assert_eq!(status, 401, "the choice is made once");

    // disable-mfa removes e-mail codes with the rest.
    let res = app
        .http
        .post(app.pool_url(
            "acme",
            "/api/user-management/users/erin/actions/disable-mfa",
        ))
        .bearer_auth(&ada)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let signed_in = initiate(&app, &client, "erin", "erin-password-1").await;
    assert!(signed_in["access_token"].is_string(), "{signed_in}");
}

#[tokio::test]
async fn the_hosted_sign_in_asks_for_the_emailed_code() {
    let app = spawn_app().await;
    let (client_api, _ada) = app.acme_with_ada().await;
    verified_user(&app, "acme", "erin", "erin-password-1").await;
    let erin = app
        .sign_in("acme", &client_api, "erin", "erin-password-1")
        .await;
    assert_eq!(enable_email(&app, &erin).await, 204);
    let client = web_client(&app, "acme", &["authorization_code"]).await;

    let mut browser = Browser::new();
    let url = authorize_url(&app, "acme", &client, "");
    let action = url.split('?').next().unwrap().to_owned();
    let html = browser.get(&url).await.text().await.unwrap();
    let res = browser
        .post(
            &action,
            &[
                ("step", "password"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "erin"),
                ("password", "erin-password-1"),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("Check your e-mail"), "{html}");
    assert!(html.contains("e***@m***"), "{html}");
    assert!(!html.contains("recovery code"), "{html}");
    let code = last_code(&app, "erin@mail.example");
    let form = |html: &str, code: &str| {
        vec![
            ("step".to_owned(), "email_code".to_owned()),
            ("request".to_owned(), hidden(html, "request")),
            ("challenge".to_owned(), hidden(html, "challenge")),
            ("csrf".to_owned(), hidden(html, "csrf")),
            ("destination".to_owned(), hidden(html, "destination")),
            ("code".to_owned(), code.to_owned()),
        ]
    };
    let wrong = if code == "000000" { "111111" } else { "000000" };
    let res = post_form(&mut browser, &action, form(&html, wrong)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let html = res.text().await.unwrap();
    assert!(html.contains("That code is not valid"), "{html}");
    assert!(html.contains("e***@m***"), "{html}");
    let res = post_form(&mut browser, &action, form(&html, &code)).await;
    assert_eq!(
        res.status(),
        StatusCode::SEE_OTHER,
        "{}",
        res.text().await.unwrap()
    );
    let location = res.headers()[LOCATION].to_str().unwrap().to_owned();
    assert!(query_of(&location).contains_key("code"), "{location}");

    // With a software token too, the page offers the factors erin holds, and no other.
    let token = {
        let (_, body) = post_json(
            &app,
            "/api/auth/initiate",
            None,
            json!({"flow": "USER_PASSWORD", "client_id": client_api.id,
                   "client_secret": client_api.secret, "username": "erin",
                   "password": "erin-password-1"}),
        )
        .await;
        let code = last_code(&app, "erin@mail.example");
        let (status, tokens) = respond(
            &app,
            &client_api,
            "EMAIL_OTP",
            body["session"].as_str().unwrap(),
            ("code", &code),
        )
        .await;
        assert_eq!(status, 200, "{tokens}");
        tokens["access_token"].as_str().unwrap().to_owned()
    };
    crate::mfa::enroll(&app, &token).await;
    let mut browser = Browser::new();
    let html = browser.get(&url).await.text().await.unwrap();
    let res = browser
        .post(
            &action,
            &[
                ("step", "password"),
                ("request", &hidden(&html, "request")),
                ("csrf", &hidden(&html, "csrf")),
                ("username", "erin"),
                ("password", "erin-password-1"),
            ],
        )
        .await;
    let html = res.text().await.unwrap();
    assert!(html.contains("E-mail me a code"), "{html}");
    assert!(html.contains("Use your authenticator app"), "{html}");
    assert!(!html.contains("Use a passkey"), "{html}");
    let res = browser
        .post(
            &action,
            &[
                ("step", "select_mfa"),
                ("answer", "EMAIL_OTP"),
                ("request", &hidden(&html, "request")),
                ("challenge", &hidden(&html, "challenge")),
                ("csrf", &hidden(&html, "csrf")),
            ],
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let html = res.text().await.unwrap();
    assert!(html.contains("Check your e-mail"), "{html}");
    let code = last_code(&app, "erin@mail.example");
    let res = post_form(&mut browser, &action, form(&html, &code)).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

async fn post_form(
    browser: &mut Browser,
    action: &str,
    f: Vec<(String, String)>,
) -> reqwest::Response {
    let pairs: Vec<(&str, &str)> = f.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    browser.post(action, &pairs).await
}

/// A Cognito app client that may use the choice-based flow (`ALLOW_USER_AUTH`), which no
/// client may use unless it says so.
async fn user_auth_client(app: &TestApp, kind: ClientType) -> (String, Option<String>) {
    let pool = app
        .gh
        .pool(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    let new = gatehouse_service::clients::NewAppClient {
        name: "choice-based app".to_owned(),
        client_type: kind,
        grant_types: Some(vec![
            "authorization_code".to_owned(),
            "refresh_token".to_owned(),
        ]),
        redirect_uris: Some(vec!["https://app.example.test/cb".to_owned()]),
        auth_flows: Some(vec![
            "ALLOW_USER_AUTH".to_owned(),
            "ALLOW_REFRESH_TOKEN_AUTH".to_owned(),
        ]),
        ..Default::default()
    };
    let (client, secret_of) = app
        .gh
        .create_app_client_as_operator(&pool, new)
        .await
        .unwrap();
    (
        client.client_id.to_string(),
        secret_of.map(|s| s.expose().to_owned()),
    )
}

#[tokio::test]
async fn boto3_turns_email_codes_on_and_answers_email_otp() {
    let app = spawn_app().await;
    app.acme_with_ada().await;
    verified_user(&app, "acme", "erin", "erin-password-1").await;
    let (client_id, secret) = sign_in_client(&app, "acme", ClientType::Confidential).await;
    let out = boto3(&json!({
        "flow": "email_otp",
        "endpoint_url": app.pool_url("acme", "/cognito"),
        "client_id": client_id, "client_secret": secret,
        "username": "erin", "password": "erin-password-1",
        "email": "erin@mail.example", "outbox": app.outbox,
    }))
    .await;
    assert_eq!(
        out["get_user"],
        json!({"UserMFASettingList": ["EMAIL_OTP"], "PreferredMfaSetting": "EMAIL_OTP"})
    );
    assert_eq!(out["disable_refused"]["code"], "InvalidParameterException");
    assert_eq!(out["challenge"]["ChallengeName"], "EMAIL_OTP");
    assert_eq!(
        out["challenge"]["ChallengeParameters"]["CODE_DELIVERY_DESTINATION"],
        "e***@m***"
    );
    assert_eq!(out["wrong_code"]["code"], "CodeMismatchException");
    let access = out["signed_in"]["AccessToken"].as_str().unwrap();
    assert_eq!(jwt_claims(access)["username"], "erin");
    assert!(out["signed_in"]["IdToken"].is_string());
    assert_eq!(out["session_again"]["code"], "NotAuthorizedException");
}

#[tokio::test]
async fn boto3_signs_in_through_user_auth_with_and_without_a_password() {
    let app = spawn_app().await;
    app.acme_with_ada().await;
    verified_user(&app, "acme", "erin", "erin-password-1").await;
    let (client_id, secret) = user_auth_client(&app, ClientType::Confidential).await;
    let out = boto3(&json!({
        "flow": "user_auth",
        "endpoint_url": app.pool_url("acme", "/cognito"),
        "client_id": client_id, "client_secret": secret,
        "username": "erin", "password": "erin-password-1",
        "email": "erin@mail.example", "outbox": app.outbox,
    }))
    .await;
    assert_eq!(
        out["select"],
        json!({"ChallengeName": "SELECT_CHALLENGE", "AvailableChallenges": ["PASSWORD", "EMAIL_OTP"]})
    );
    assert_eq!(out["emailed"]["ChallengeName"], "EMAIL_OTP");
    for key in [
        "passwordless",
        "with_password",
        "preferred_password",
        "preferred_email_signed_in",
    ] {
        let access = out[key]["AccessToken"]
            .as_str()
            .unwrap_or_else(|| panic!("{key}: {out}"));
        assert_eq!(jwt_claims(access)["username"], "erin", "{key}");
        assert!(out[key]["IdToken"].is_string(), "{key}");
    }
    assert_eq!(out["select_again"]["code"], "NotAuthorizedException");
    assert_eq!(out["wrong_password"]["code"], "NotAuthorizedException");
    assert_eq!(out["preferred_email"], "EMAIL_OTP");
    assert_eq!(out["srp_refused"]["code"], "InvalidParameterException");
}

#[tokio::test]
async fn user_auth_answers_a_stranger_as_it_answers_a_user_and_binds_its_sessions() {
    let app = spawn_app().await;
    let (api_client, _ada) = app.acme_with_ada().await;
    verified_user(&app, "acme", "erin", "erin-password-1").await;
    let (public, _) = user_auth_client(&app, ClientType::Public).await;
    let start = |user: &str, extra: Value| {
        let mut params = json!({"USERNAME": user});
        params
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"AuthFlow": "USER_AUTH", "ClientId": public, "AuthParameters": params})
    };
    let respond = |name: &str, session: &Value, responses: Value| {
        json!({"ChallengeName": name, "ClientId": public, "Session": session,
               "ChallengeResponses": responses})
    };

    // A client that did not ask for the choice-based flow is refused it.
    let (default_client, _) = sign_in_client(&app, "acme", ClientType::Public).await;
    let (status, kind, body) = call(
        &app,
        "acme",
        "InitiateAuth",
        json!({"AuthFlow": "USER_AUTH", "ClientId": default_client,
               "AuthParameters": {"USERNAME": "erin"}}),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterException"));
    assert_eq!(
        body["message"],
        "USER_AUTH flow not enabled for this client"
    );
    let (status, _, erin) = call(&app, "acme", "InitiateAuth", start("erin", json!({}))).await;
    assert_eq!(status, 200, "{erin}");
    let (status, _, nobody) = call(&app, "acme", "InitiateAuth", start("nobody", json!({}))).await;
    assert_eq!(status, 200, "{nobody}");
    assert_eq!(erin["ChallengeName"], "SELECT_CHALLENGE");
    assert_eq!(erin["AvailableChallenges"], nobody["AvailableChallenges"]);
    assert_eq!(
        erin["AvailableChallenges"],
        json!(["PASSWORD", "EMAIL_OTP"])
    );

    // A stranger's EMAIL_OTP is a challenge like any other, no message goes out, and every
    // code fails as a wrong one does.
    let sent = app.outbox().len();
    let (status, _, emailed) = call(
        &app,
        "acme",
        "RespondToAuthChallenge",
        respond(
            "SELECT_CHALLENGE",
            &nobody["Session"],
            json!({"USERNAME": "nobody", "ANSWER": "EMAIL_OTP"}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{emailed}");
    assert_eq!(emailed["ChallengeName"], "EMAIL_OTP");
    assert_eq!(app.outbox().len(), sent);
    let (status, kind, _) = call(
        &app,
        "acme",
        "RespondToAuthChallenge",
        respond(
            "EMAIL_OTP",
            &emailed["Session"],
            json!({"USERNAME": "nobody", "EMAIL_OTP_CODE": "123456"}),
        ),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "CodeMismatchException"));

    // Erin's SELECT_CHALLENGE session is erin's: alice's password does not answer it.
    let (status, kind, _) = call(
        &app,
        "acme",
        "RespondToAuthChallenge",
        respond(
            "SELECT_CHALLENGE",
            &erin["Session"],
            json!({"USERNAME": "alice", "ANSWER": "PASSWORD", "PASSWORD": "alice-password-1"}),
        ),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "NotAuthorizedException"));
    // A factor that is not offered, and PASSWORD without one.
    let (status, kind, _) = call(
        &app,
        "acme",
        "RespondToAuthChallenge",
        respond(
            "SELECT_CHALLENGE",
            &erin["Session"],
            json!({"USERNAME": "erin", "ANSWER": "WEB_AUTHN"}),
        ),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterException"));
    // Neither refusal used the session up: erin's own password answers it, once.
    let with_password = respond(
        "SELECT_CHALLENGE",
        &erin["Session"],
        json!({"USERNAME": "erin", "ANSWER": "PASSWORD", "PASSWORD": "erin-password-1"}),
    );
    let (status, _, tokens) = call(
        &app,
        "acme",
        "RespondToAuthChallenge",
        with_password.clone(),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["AuthenticationResult"]["IdToken"].is_string());
    let (status, kind, _) = call(&app, "acme", "RespondToAuthChallenge", with_password).await;
    assert_eq!((status, kind.as_str()), (400, "NotAuthorizedException"));
    let (status, kind, _) = call(
        &app,
        "acme",
        "InitiateAuth",
        start("erin", json!({"PREFERRED_CHALLENGE": "PASSWORD"})),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterException"));
    let (status, kind, _) = call(
        &app,
        "acme",
        "InitiateAuth",
        start("erin", json!({"PREFERRED_CHALLENGE": "SMS_OTP"})),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterException"));

    // A passwordless e-mail code is one factor: a user with a software token is asked for
    // it next.
    let token = app
        .sign_in("acme", &api_client, "erin", "erin-password-1")
        .await;
    let (secret, _) = crate::mfa::enroll(&app, &token).await;
    let (status, _, emailed) = call(
        &app,
        "acme",
        "InitiateAuth",
        start("erin", json!({"PREFERRED_CHALLENGE": "EMAIL_OTP"})),
    )
    .await;
    assert_eq!(status, 200, "{emailed}");
    assert_eq!(emailed["ChallengeName"], "EMAIL_OTP");
    let code = last_code(&app, "erin@mail.example");
    let (status, _, next) = call(
        &app,
        "acme",
        "RespondToAuthChallenge",
        respond(
            "EMAIL_OTP",
            &emailed["Session"],
            json!({"USERNAME": "erin", "EMAIL_OTP_CODE": code}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{next}");
    assert_eq!(next["ChallengeName"], "SOFTWARE_TOKEN_MFA", "{next}");
    assert!(next.get("AuthenticationResult").is_none());
    app.clock.advance(30);
    let totp = crate::mfa::pyotp_code(&secret, crate::mfa::now(&app));
    let (status, _, done) = call(
        &app,
        "acme",
        "RespondToAuthChallenge",
        respond(
            "SOFTWARE_TOKEN_MFA",
            &next["Session"],
            json!({"USERNAME": "erin", "SOFTWARE_TOKEN_MFA_CODE": totp}),
        ),
    )
    .await;
    assert_eq!(status, 200, "{done}");
    assert!(done["AuthenticationResult"]["AccessToken"].is_string());

    // A pool that requires MFA does not take an e-mail code alone.
    let ada = app
        .sign_in("acme", &api_client, "ada", "ada-password-123")
        .await;
    let res = app
        .http
        .put(app.pool_url("acme", "/api/auth/settings/mfa"))
        .bearer_auth(&ada)
        .json(&json!({"MfaConfiguration": "required"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let (_, _, required) = call(&app, "acme", "InitiateAuth", start("erin", json!({}))).await;
    assert_eq!(required["AvailableChallenges"], json!(["PASSWORD"]));
    let (status, kind, _) = call(
        &app,
        "acme",
        "RespondToAuthChallenge",
        respond(
            "SELECT_CHALLENGE",
            &required["Session"],
            json!({"USERNAME": "erin", "ANSWER": "EMAIL_OTP"}),
        ),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterException"));
}

#[tokio::test]
async fn the_api_speaks_user_auth_too() {
    let app = spawn_app().await;
    app.acme_with_ada().await;
    verified_user(&app, "acme", "erin", "erin-password-1").await;
    let (id, secret) = user_auth_client(&app, ClientType::Confidential).await;
    let client = ClientCreds {
        id,
        secret: secret.unwrap(),
    };
    let (status, select) = post_json(
        &app,
        "/api/auth/initiate",
        None,
        json!({"flow": "USER_AUTH", "client_id": client.id, "client_secret": client.secret,
               "username": "erin"}),
    )
    .await;
    assert_eq!(status, 200, "{select}");
    assert_eq!(select["challenge"], "SELECT_CHALLENGE");
    assert_eq!(
        select["parameters"]["AVAILABLE_CHALLENGES"],
        json!(["PASSWORD", "EMAIL_OTP"]).to_string()
    );
    let session = select["session"].as_str().unwrap();
    let (status, body) = respond(
        &app,
        &client,
        "SELECT_CHALLENGE",
        session,
        ("answer", "PASSWORD"),
    )
    .await;
    assert_eq!(
        status, 400,
        "PASSWORD needs the username and password: {body}"
    );
    let (status, emailed) = respond(
        &app,
        &client,
        "SELECT_CHALLENGE",
        session,
        ("answer", "EMAIL_OTP"),
    )
    .await;
    assert_eq!(status, 200, "{emailed}");
    assert_eq!(emailed["challenge"], "EMAIL_OTP");
    let code = last_code(&app, "erin@mail.example");
    let (status, tokens) = respond(
        &app,
        &client,
        "EMAIL_OTP",
        emailed["session"].as_str().unwrap(),
        ("code", &code),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        jwt_claims(tokens["access_token"].as_str().unwrap())["username"],
        "erin"
    );
    let (status, tokens) = post_json(
        &app,
        "/api/auth/initiate",
        None,
        json!({"flow": "USER_AUTH", "client_id": client.id, "client_secret": client.secret,
               "username": "erin", "preferred_challenge": "PASSWORD",
               "password": "erin-password-1"}),
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert!(tokens["access_token"].is_string());
}

#[tokio::test]
async fn answers_racing_on_one_email_code_sign_in_once() {
    let app = spawn_app().await;
    let (client, _ada) = app.acme_with_ada().await;
    verified_user(&app, "acme", "erin", "erin-password-1").await;
    let erin = app
        .sign_in("acme", &client, "erin", "erin-password-1")
        .await;
    assert_eq!(enable_email(&app, &erin).await, 204);
    let challenge = initiate(&app, &client, "erin", "erin-password-1").await;
    let session = challenge["session"].as_str().unwrap().to_owned();
    let code = last_code(&app, "erin@mail.example");
    let answer = || respond(&app, &client, "EMAIL_OTP", &session, ("code", &code));
    let (a, b, c, d) = tokio::join!(answer(), answer(), answer(), answer());
    let mut statuses: Vec<u16> = [a, b, c, d].iter().map(|(s, _)| *s).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 401, 401, 401], "one session, one sign-in");
}
