//! Cognito's user-pool API at `POST {base}/cognito`: boto3's `cognito-idp` client, unmodified,
//! through the whole password life cycle, and every refusal over plain HTTP.

use std::time::Duration;

use gatehouse_crypto::secret::Secret;
use gatehouse_domain::client::ClientType;
use gatehouse_domain::ids::PoolSlug;
use gatehouse_domain::user::UserAttributes;
use gatehouse_service::clients::NewAppClient;
use gatehouse_service::cognito::secret_hash;
use serde_json::{Value, json};
use tokio::process::Command;

use crate::browser::peers_dir;
use crate::common::*;

const USERS: &str = "/api/user-management/users";
const TARGET: &str = "AWSCognitoIdentityProviderService.";

/// A public app client of `pool` that holds the refresh grant (what a Cognito app client
/// without a secret is).
async fn public_client(app: &TestApp, pool: &str) -> String {
    sign_in_client(app, pool, ClientType::Public).await.0
}

/// An app client of `pool` that holds the refresh grant: its id, and its secret if it has one.
pub(crate) async fn sign_in_client(
    app: &TestApp,
    pool: &str,
    kind: ClientType,
) -> (String, Option<String>) {
    let pool = app.gh.pool(&PoolSlug::parse(pool).unwrap()).await.unwrap();
    let new = NewAppClient {
        name: "cognito app".to_owned(),
        client_type: kind,
        grant_types: Some(vec![
            "authorization_code".to_owned(),
            "refresh_token".to_owned(),
        ]),
        redirect_uris: Some(vec!["https://app.example.test/cb".to_owned()]),
        ..NewAppClient::default()
    };
    let (client, secret) = app
        .gh
        .create_app_client_as_operator(&pool, new)
        .await
        .unwrap();
    (
        client.client_id.to_string(),
        secret.map(|s| s.expose().to_owned()),
    )
}

/// A Cognito API call over plain HTTP: its status, `x-amzn-ErrorType` and body.
pub(crate) async fn call(
    app: &TestApp,
    pool: &str,
    operation: &str,
    body: Value,
) -> (u16, String, Value) {
    raw(app, pool, &format!("{TARGET}{operation}"), body.to_string()).await
}

async fn raw(app: &TestApp, pool: &str, target: &str, body: String) -> (u16, String, Value) {
    let res = app
        .http
        .post(app.pool_url(pool, "/cognito"))
        .header("x-amz-target", target)
        .header("content-type", "application/x-amz-json-1.1")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    assert_eq!(
        res.headers()["content-type"],
        "application/x-amz-json-1.1",
        "every answer is AWS JSON 1.1"
    );
    let kind = res
        .headers()
        .get("x-amzn-errortype")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = res.json().await.unwrap();
    if status != 200 {
        assert_eq!(
            body["__type"],
            kind.as_str(),
            "the header names the body's exception"
        );
    }
    (status, kind, body)
}

/// Invites `username` through the admin API; returns the temporary password it was sent.
async fn invite(app: &TestApp, admin: &str, username: &str) -> String {
    let res = app
        .http
        .post(app.pool_url("acme", USERS))
        .bearer_auth(admin)
        .json(&json!({"username": username, "attributes": {
            "email": format!("{username}@acme.example"), "name": "Bob Example", "roles": []}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let invitation = app.outbox().last().unwrap()["body"]
        .as_str()
        .unwrap()
        .to_owned();
    invitation
        .strip_prefix(&format!(
            "Your username is {username} and temporary password is "
        ))
        .and_then(|s| s.strip_suffix('.'))
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn boto3_runs_the_password_life_cycle_against_the_cognito_api() {
    let app = spawn_app().await;
    let (oauth_client, ada) = app.acme_with_ada().await;
    // A client with a secret: every call proves it with SECRET_HASH.
    let (client_id, secret) = sign_in_client(&app, "acme", ClientType::Confidential).await;
    assert!(secret.is_some());
    let temporary = invite(&app, &ada, "bob").await;
    let scenario = json!({
        "endpoint_url": app.pool_url("acme", "/cognito"),
        "client_id": client_id,
        "client_secret": secret,
        "username": "bob",
        "temporary_password": temporary,
        "new_password": "bob-new-password-1",
        "changed_password": "bob-changed-password-2",
    });
    let mut py = Command::new(venv_tool("python3"));
    py.arg(peers_dir().join("cognito-client.py"))
        .arg(scenario.to_string());
    let out = tokio::time::timeout(Duration::from_secs(120), py.output())
        .await
        .expect("boto3 finishes within 120 s")
        .unwrap();
    assert!(
        out.status.success(),
        "boto3 failed: {}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let out: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(out["initiate"]["ChallengeName"], "NEW_PASSWORD_REQUIRED");
    assert!(out["initiate"]["Session"].as_str().unwrap().len() > 20);
    let first = &out["respond"];
    assert_eq!(first["TokenType"], "Bearer");
    assert!(first["ExpiresIn"].as_u64().unwrap() > 0);
    let access = first["AccessToken"].as_str().unwrap();
    assert_eq!(jwt_claims(access)["username"], "bob");
    assert!(first["RefreshToken"].is_string());
    // The ID token is the client's, verifies against the pool's JWKS, and names the user.
    let id_token = first["IdToken"].as_str().unwrap();
    let verified = verify_id_token_with_jose(&app, "acme", id_token)
        .await
        .unwrap();
    let id_claims = &verified["payload"];
    assert_eq!(id_claims["aud"], client_id.as_str());
    assert_eq!(id_claims["token_use"], "id");
    assert_eq!(id_claims["sub"], jwt_claims(access)["sub"]);
    assert_eq!(id_claims["email"], "bob@acme.example");
    assert_eq!(id_claims["sid"], jwt_claims(access)["sid"]);
    // A used challenge session is refused.
    assert_eq!(out["respond_again"]["code"], "NotAuthorizedException");
    assert_eq!(
        out["respond_again"]["message"],
        "Invalid session for the user."
    );
    assert_eq!(out["respond_again"]["status"], 400);

    let user = &out["get_user"];
    assert_eq!(user["Username"], "bob");
    let attrs: Vec<(String, String)> = user["UserAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["Name"].as_str().unwrap().to_owned(),
                a["Value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let sub = jwt_claims(access)["sub"].as_str().unwrap().to_owned();
    assert!(attrs.contains(&("sub".to_owned(), sub)));
    assert!(attrs.contains(&("email".to_owned(), "bob@acme.example".to_owned())));
    assert!(attrs.contains(&("name".to_owned(), "Bob Example".to_owned())));
    assert_eq!(user["MFAOptions"], json!([]));
    assert_eq!(user["UserMFASettingList"], json!([]));

    let refreshed = &out["refresh"];
    assert_eq!(refreshed["TokenType"], "Bearer");
    assert_eq!(
        jwt_claims(refreshed["AccessToken"].as_str().unwrap())["username"],
        "bob"
    );

    // The old password no longer signs in, and the answer is the unknown user's.
    assert_eq!(out["wrong_password"]["code"], "NotAuthorizedException");
    assert_eq!(
        out["wrong_password"]["message"],
        "Incorrect username or password."
    );

    // After GlobalSignOut the tokens are refused everywhere, not only by GetUser.
    assert_eq!(
        out["get_user_after_sign_out"]["code"],
        "NotAuthorizedException"
    );
    let signed_out = &out["sign_in_changed"];
    let signed_out_access = signed_out["AccessToken"].as_str().unwrap();
    assert_eq!(
        app.introspect("acme", &oauth_client, signed_out_access)
            .await["active"],
        false
    );
    assert_eq!(app.userinfo_status("acme", signed_out_access).await, 401);
    assert_eq!(
        app.introspect("acme", &oauth_client, access).await["active"],
        false
    );
    let res = app
        .http
        .post(app.pool_url("acme", "/oauth2/token"))
        .basic_auth(&client_id, secret.as_deref())
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                signed_out["RefreshToken"].as_str().unwrap(),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_oauth_error(res, 400, "invalid_grant").await;

    // RevokeToken ended that refresh token's family: its refresh and its access token.
    assert_eq!(
        out["refresh_after_revoke"]["code"],
        "NotAuthorizedException"
    );
    let revoked_access = out["revoked_family_access"].as_str().unwrap();
    assert_eq!(
        app.introspect("acme", &oauth_client, revoked_access).await["active"],
        false
    );
    assert!(app.audit_count("acme", "user.signed_out").await >= 1);
}

#[tokio::test]
async fn the_cognito_api_refuses_what_it_must() {
    let app = spawn_app().await;
    let (secret_client, ada) = app.acme_with_ada().await;
    let public = public_client(&app, "acme").await;
    let password_auth = |client: &str, username: &str, password: &str, hash: Option<&str>| {
        let mut params = json!({"USERNAME": username, "PASSWORD": password});
        if let Some(h) = hash {
            params["SECRET_HASH"] = json!(h);
        }
        json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": client, "AuthParameters": params})
    };

    // A client with a secret: SECRET_HASH missing, or wrong.
    let (status, kind, body) = call(
        &app,
        "acme",
        "InitiateAuth",
        password_auth(&secret_client.id, "alice", "alice-password-1", None),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "NotAuthorizedException"));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("SECRET_HASH was not received")
    );
    let (status, kind, body) = call(
        &app,
        "acme",
        "InitiateAuth",
        password_auth(
            &secret_client.id,
            "alice",
            "alice-password-1",
            Some("bm90IHRoZSBoYXNoIG9mIGFueXRoaW5nIGF0IGFsbA=="),
        ),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "NotAuthorizedException"));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("Unable to verify secret hash")
    );

    // The right SECRET_HASH signs in; one of another username, or with another secret, not.
    let secret = Secret::new(secret_client.secret.clone());
    let right = secret_hash(&secret, "alice", &secret_client.id);
    let (status, _, _) = call(
        &app,
        "acme",
        "InitiateAuth",
        password_auth(&secret_client.id, "alice", "alice-password-1", Some(&right)),
    )
    .await;
    assert_eq!(status, 200);
    for forged in [
        secret_hash(&secret, "ada", &secret_client.id),
        secret_hash(&Secret::new("guessed"), "alice", &secret_client.id),
    ] {
        let (status, kind, _) = call(
            &app,
            "acme",
            "InitiateAuth",
            password_auth(
                &secret_client.id,
                "alice",
                "alice-password-1",
                Some(&forged),
            ),
        )
        .await;
        assert_eq!((status, kind.as_str()), (400, "NotAuthorizedException"));
    }

    // A wrong password and an unknown user get the same answer.
    let wrong = call(
        &app,
        "acme",
        "InitiateAuth",
        password_auth(&public, "alice", "nope-nope-1", None),
    )
    .await;
    let unknown = call(
        &app,
        "acme",
        "InitiateAuth",
        password_auth(&public, "nobody", "nope-nope-1", None),
    )
    .await;
    assert_eq!(wrong.0, 400);
    assert_eq!(wrong.1, "NotAuthorizedException");
    assert_eq!(wrong.2["message"], "Incorrect username or password.");
    assert_eq!(wrong.1, unknown.1);
    assert_eq!(wrong.2, unknown.2);

    // The right password signs in.
    let (status, _, ok) = call(
        &app,
        "acme",
        "InitiateAuth",
        password_auth(&public, "alice", "alice-password-1", None),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ok["AuthenticationResult"]["TokenType"], "Bearer");
    let alice = ok["AuthenticationResult"]["AccessToken"]
        .as_str()
        .unwrap()
        .to_owned();

    // An unknown operation, a foreign service, malformed JSON, a body that is not an object.
    let (status, kind, _) = call(&app, "acme", "DeleteUserPool", json!({})).await;
    assert_eq!((status, kind.as_str()), (400, "UnknownOperationException"));
    let (status, kind, _) = raw(&app, "acme", "AmazonS3.ListBuckets", "{}".into()).await;
    assert_eq!((status, kind.as_str()), (400, "UnknownOperationException"));
    let (status, kind, _) = raw(
        &app,
        "acme",
        &format!("{TARGET}InitiateAuth"),
        "{not json".into(),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "SerializationException"));
    let (status, kind, _) = raw(
        &app,
        "acme",
        &format!("{TARGET}InitiateAuth"),
        "[1,2]".into(),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "SerializationException"));
    let (status, kind, _) = call(&app, "acme", "InitiateAuth", json!({"AuthFlow": 7})).await;
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterException"));
    // What issue 12's later parts bring is refused clearly.
    let (status, kind, body) = call(
        &app,
        "acme",
        "AssociateSoftwareToken",
        json!({"AccessToken": alice}),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "InvalidParameterException"));
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("not supported yet")
    );

    // A token of another pool proves nobody here.
    app.create_pool("other").await;
    app.create_user("other", "olga", &[], "olga-password-1")
        .await;
    let other_client = public_client(&app, "other").await;
    let (status, _, other) = call(
        &app,
        "other",
        "InitiateAuth",
        password_auth(&other_client, "olga", "olga-password-1", None),
    )
    .await;
    assert_eq!(status, 200);
    let olga = other["AuthenticationResult"]["AccessToken"]
        .as_str()
        .unwrap();
    let (status, kind, _) = call(&app, "acme", "GetUser", json!({"AccessToken": olga})).await;
    assert_eq!((status, kind.as_str()), (400, "NotAuthorizedException"));
    let (status, _, me) = call(&app, "other", "GetUser", json!({"AccessToken": olga})).await;
    assert_eq!(status, 200);
    assert_eq!(me["Username"], "olga");

    // An impersonated token cannot change the user's password.
    let impersonated = app.impersonate("acme", &ada, "alice").await;
    let (status, kind, _) = call(
        &app,
        "acme",
        "ChangePassword",
        json!({"AccessToken": impersonated, "PreviousPassword": "alice-password-1",
               "ProposedPassword": "taken-over-password-1"}),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "NotAuthorizedException"));
    // Nor can a wrong current password, which counts toward the username's lockout as a
    // failed sign-in does; and the password is unchanged.
    let failed_before = app.audit_count("acme", "user.sign_in_failed").await;
    let (status, kind, body) = call(
        &app,
        "acme",
        "ChangePassword",
        json!({"AccessToken": alice, "PreviousPassword": "not-alices-password",
               "ProposedPassword": "taken-over-password-1"}),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "NotAuthorizedException"));
    assert_eq!(body["message"], "Incorrect username or password.");
    assert_eq!(
        app.audit_count("acme", "user.sign_in_failed").await,
        failed_before + 1
    );
    let (status, _, _) = call(
        &app,
        "acme",
        "InitiateAuth",
        password_auth(&public, "alice", "alice-password-1", None),
    )
    .await;
    assert_eq!(status, 200);
    // A password the policy refuses.
    let (status, kind, _) = call(
        &app,
        "acme",
        "ChangePassword",
        json!({"AccessToken": alice, "PreviousPassword": "alice-password-1", "ProposedPassword": "x"}),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "InvalidPasswordException"));

    // A NEW_PASSWORD_REQUIRED session answers once.
    let temporary = invite(&app, &ada, "bob").await;
    let (status, _, challenge) = call(
        &app,
        "acme",
        "InitiateAuth",
        password_auth(&public, "bob", &temporary, None),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(challenge["ChallengeName"], "NEW_PASSWORD_REQUIRED");
    let respond = json!({"ClientId": public, "ChallengeName": "NEW_PASSWORD_REQUIRED",
        "Session": challenge["Session"],
        "ChallengeResponses": {"USERNAME": "bob", "NEW_PASSWORD": "bob-new-password-1"}});
    let (status, _, _) = call(&app, "acme", "RespondToAuthChallenge", respond.clone()).await;
    assert_eq!(status, 200);
    let (status, kind, body) = call(&app, "acme", "RespondToAuthChallenge", respond).await;
    assert_eq!((status, kind.as_str()), (400, "NotAuthorizedException"));
    assert_eq!(body["message"], "Invalid session for the user.");

    // ForgotPassword answers the same whatever the username; the code it sends works once.
    let acme = app
        .gh
        .pool(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    app.gh
        .create_user_with_password(
            &acme,
            "carol",
            UserAttributes {
                email: "carol@acme.example".to_owned(),
                name: "Carol".to_owned(),
                email_verified: Some(true),
                ..UserAttributes::default()
            },
            Some(Secret::new("carol-password-1")),
            None,
        )
        .await
        .unwrap();
    let asked = call(
        &app,
        "acme",
        "ForgotPassword",
        json!({"ClientId": public, "Username": "carol"}),
    )
    .await;
    let nobody = call(
        &app,
        "acme",
        "ForgotPassword",
        json!({"ClientId": public, "Username": "nobody"}),
    )
    .await;
    assert_eq!(asked.0, 200);
    assert_eq!(asked.2, nobody.2);
    let code = reset_code(&app, "carol@acme.example").await;
    let confirm = |code: &str| {
        json!({"ClientId": public, "Username": "carol", "ConfirmationCode": code,
               "Password": "carol-reset-password-1"})
    };
    let (status, kind, _) = call(&app, "acme", "ConfirmForgotPassword", confirm("000000x")).await;
    assert_eq!((status, kind.as_str()), (400, "CodeMismatchException"));
    let (status, _, _) = call(&app, "acme", "ConfirmForgotPassword", confirm(&code)).await;
    assert_eq!(status, 200);
    let (status, kind, _) = call(&app, "acme", "ConfirmForgotPassword", confirm(&code)).await;
    assert_eq!((status, kind.as_str()), (400, "CodeMismatchException"));
    let (status, _, _) = call(
        &app,
        "acme",
        "InitiateAuth",
        password_auth(&public, "carol", "carol-reset-password-1", None),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn failed_cognito_sign_ins_count_toward_the_failure_limits() {
    let app = spawn_app_with(Backend::from_env(), |c| {
        c.limits.address_burst = 3;
        c.limits.address_per_minute = 1;
    })
    .await;
    app.create_pool("acme").await;
    app.create_user("acme", "alice", &[], "alice-password-1")
        .await;
    let public = public_client(&app, "acme").await;
    let attempt = json!({"AuthFlow": "USER_PASSWORD_AUTH", "ClientId": public,
        "AuthParameters": {"USERNAME": "alice", "PASSWORD": "wrong-password"}});
    for _ in 0..3 {
        let (status, kind, _) = call(&app, "acme", "InitiateAuth", attempt.clone()).await;
        assert_eq!((status, kind.as_str()), (400, "NotAuthorizedException"));
    }
    let (status, kind, _) = call(&app, "acme", "InitiateAuth", attempt).await;
    assert_eq!((status, kind.as_str()), (400, "TooManyRequestsException"));
}

/// The reset code of the last message to `to`, waiting a little for its delivery.
async fn reset_code(app: &TestApp, to: &str) -> String {
    for _ in 0..50 {
        let found = app.outbox().iter().rev().find_map(|m| {
            (m["to_email"] == to)
                .then(|| m["body"].as_str().unwrap_or_default().to_owned())
                .and_then(|b| {
                    b.split("reset code is ")
                        .nth(1)
                        .map(|c| c.chars().take_while(char::is_ascii_alphanumeric).collect())
                })
        });
        if let Some(code) = found {
            return code;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no reset code to {to} in {:?}", app.outbox());
}
