//! Passkeys on the hosted pages, in headless Chromium with the DevTools virtual
//! authenticator (`tests/peers/passkey-browser.mjs`): a signed-in browser adds a passkey,
//! which then signs in without a password and as the second factor after one; refused when
//! the client skips user verification, when the signature is bogus, and when a cloned
//! credential's counter goes backwards (audited). Every page passes axe.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::browser::peers_dir;
use gatehouse_domain::client::ClientType;
use gatehouse_domain::ids::PoolSlug;
use gatehouse_service::clients::NewAppClient;

use crate::code_flow::{VERIFIER, query_of, urlencode};
use crate::common::*;
use crate::passkeys::spawn_app_at_localhost;

struct PasskeyBrowser {
    child: tokio::process::Child,
    lines: PeerLines,
    /// The relying party's redirect URI, on loopback.
    redirect_uri: String,
}

impl PasskeyBrowser {
    async fn start() -> Self {
        let mut cmd = tokio::process::Command::new("node");
        cmd.arg(peers_dir().join("passkey-browser.mjs"));
        let (child, lines, ready) = start_talking_peer(cmd, "passkey browser").await;
        let ready: Value = serde_json::from_str(&ready).unwrap();
        assert_eq!(ready["ready"], true, "{ready}");
        PasskeyBrowser {
            child,
            lines,
            redirect_uri: ready["redirect_uri"].as_str().unwrap().to_owned(),
        }
    }

    async fn call(&mut self, cmd: Value) -> Value {
        let stdin = self.child.stdin.as_mut().unwrap();
        let mut line = serde_json::to_vec(&cmd).unwrap();
        line.push(b'\n');
        stdin.write_all(&line).await.unwrap();
        stdin.flush().await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(60), self.lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("no answer to {cmd}"))
            .unwrap()
            .unwrap_or_else(|| panic!("the passkey browser exited on {cmd}"));
        let answer: Value = serde_json::from_str(&answer).unwrap();
        assert_eq!(answer["ok"], true, "{cmd} failed: {answer:#}");
        if let Some(violations) = answer.get("axe") {
            assert_eq!(
                violations,
                &json!([]),
                "axe on {}: {violations:#}",
                answer["url"]
            );
        }
        answer
    }
}

/// A URL of `pool` as the browser reaches it: at the public URL (`localhost`, the RP ID).
fn public(app: &TestApp, path: &str) -> String {
    format!("{}/pools/acme{path}", app.public_url)
}

fn authorize(app: &TestApp, client: &ClientCreds, redirect_uri: &str) -> String {
    public(
        app,
        &format!(
            "/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid\
             &state=st-1&nonce=n-1&code_challenge={}&code_challenge_method=S256&prompt=login",
            client.id,
            urlencode(redirect_uri),
            gatehouse_service::grants::authorization_code::s256(VERIFIER)
        ),
    )
}

/// The browser is back at the client: the code, exchanged for tokens that work.
async fn at_client(
    app: &TestApp,
    client: &ClientCreds,
    redirect_uri: &str,
    page: &Value,
) -> String {
    let url = page["url"].as_str().unwrap();
    assert!(
        url.starts_with(redirect_uri),
        "not back at the client: {page:#}"
    );
    let code = query_of(url)["code"].clone();
    let res = app
        .http
        .post(app.pool_url("acme", "/oauth2/token"))
        .basic_auth(&client.id, Some(&client.secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", redirect_uri),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let tokens: Value = res.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.userinfo_status("acme", &access).await, 200);
    access
}

/// A confidential client of the code flow whose redirect URI is the browser's.
async fn web_app(app: &TestApp, redirect_uri: &str) -> ClientCreds {
    let pool = app
        .gh
        .pool(&PoolSlug::parse("acme").unwrap())
        .await
        .unwrap();
    let (client, secret) = app
        .gh
        .create_app_client_as_operator(
            &pool,
            NewAppClient {
                name: "Acme web app".to_owned(),
                grant_types: Some(vec!["authorization_code".to_owned()]),
                redirect_uris: Some(vec![redirect_uri.to_owned()]),
                client_type: ClientType::Confidential,
                ..NewAppClient::default()
            },
        )
        .await
        .unwrap();
    ClientCreds {
        id: client.client_id.to_string(),
        secret: secret.unwrap().expose().to_owned(),
    }
}

#[tokio::test]
async fn a_passkey_added_on_the_pages_signs_in_alone_and_as_second_factor() {
    let app = spawn_app_at_localhost().await;
    let (_, _ada) = app.acme_with_ada().await;
    let mut b = PasskeyBrowser::start().await;
    let redirect = b.redirect_uri.clone();
    let client = web_app(&app, &redirect).await;
    b.call(json!({"op": "authenticator"})).await;

    // Without a signed-in browser, the passkeys page says to sign in.
    let page = b
        .call(json!({"op": "goto", "url": public(&app, "/oauth2/passkeys")}))
        .await;
    assert!(
        page["text"].as_str().unwrap().contains("Sign in first"),
        "{page:#}"
    );

    // Alice signs in with her password, then adds a passkey.
    let page = b
        .call(json!({"op": "goto", "url": authorize(&app, &client, &redirect), "axe": true}))
        .await;
    assert!(
        page["text"]
            .as_str()
            .unwrap()
            .contains("Sign in with a passkey")
    );
    let page = b
        .call(json!({"op": "password", "username": "alice", "password": "alice-password-1"}))
        .await;
    let alice = at_client(&app, &client, &redirect, &page).await;
    b.call(json!({"op": "goto", "url": public(&app, "/oauth2/passkeys"), "axe": true}))
        .await;
    b.call(json!({"op": "fill", "label": "Name", "value": "Chromium"}))
        .await;
    let page = b
        .call(json!({"op": "click", "button": "Add a passkey", "axe": true}))
        .await;
    let text = page["text"].as_str().unwrap();
    assert!(
        text.contains("Your passkey was added.") && text.contains("Chromium"),
        "{page:#}"
    );
    assert_eq!(app.audit_count("acme", "user.passkey_registered").await, 1);
    let registered = b.call(json!({"op": "credentials"})).await;
    let credential = registered["credentials"][0].clone();
    assert_eq!(credential["isResidentCredential"], true);

    // Passwordless: the discoverable credential names Alice.
    b.call(json!({"op": "goto", "url": authorize(&app, &client, &redirect)}))
        .await;
    let page = b
        .call(json!({"op": "click", "button": "Sign in with a passkey"}))
        .await;
    at_client(&app, &client, &redirect, &page).await;

    // Second factor: after the password, the passkey page.
    b.call(json!({"op": "goto", "url": authorize(&app, &client, &redirect)}))
        .await;
    let page = b
        .call(json!({"op": "password", "username": "alice", "password": "alice-password-1", "axe": true}))
        .await;
    assert_eq!(page["title"], "Use your passkey · acme", "{page:#}");
    let page = b
        .call(json!({"op": "click", "button": "Use passkey"}))
        .await;
    at_client(&app, &client, &redirect, &page).await;
    assert_eq!(app.audit_count("acme", "user.passkey_used").await, 2);

    // A client that asks the authenticator for no user verification: refused by the server.
    b.call(json!({"op": "set", "downgrade_uv": true})).await;
    b.call(json!({"op": "set", "user_verified": false})).await;
    b.call(json!({"op": "goto", "url": authorize(&app, &client, &redirect)}))
        .await;
    let page = b
        .call(json!({"op": "click", "button": "Sign in with a passkey", "axe": true}))
        .await;
    assert!(
        page["text"]
            .as_str()
            .unwrap()
            .contains("That passkey was not accepted."),
        "{page:#}"
    );
    b.call(json!({"op": "set", "downgrade_uv": false})).await;
    // The page itself asks for user verification: the browser refuses to go on without it.
    let page = b
        .call(json!({"op": "click", "button": "Sign in with a passkey", "expect_error": true}))
        .await;
    assert!(
        page["error"].as_str().unwrap().contains("NotAllowedError"),
        "{page:#}"
    );
    b.call(json!({"op": "set", "user_verified": true})).await;

    // A bogus signature.
    b.call(json!({"op": "set", "bogus_signature": true})).await;
    b.call(json!({"op": "goto", "url": authorize(&app, &client, &redirect)}))
        .await;
    b.call(json!({"op": "password", "username": "alice", "password": "alice-password-1"}))
        .await;
    let page = b
        .call(json!({"op": "click", "button": "Use passkey"}))
        .await;
    assert!(
        page["text"]
            .as_str()
            .unwrap()
            .contains("That passkey was not accepted."),
        "{page:#}"
    );
    b.call(json!({"op": "set", "bogus_signature": false})).await;
    assert!(app.audit_count("acme", "user.passkey_refused").await >= 2);

    // A clone: the credential put back with the counter it had at registration.
    b.call(json!({"op": "put_credential", "credential": credential}))
        .await;
    b.call(json!({"op": "goto", "url": authorize(&app, &client, &redirect)}))
        .await;
    let page = b
        .call(json!({"op": "click", "button": "Sign in with a passkey"}))
        .await;
    assert!(
        page["text"]
            .as_str()
            .unwrap()
            .contains("That passkey was not accepted."),
        "{page:#}"
    );
    assert_eq!(
        app.audit_count("acme", "user.passkey_sign_count_regressed")
            .await,
        1
    );

    // With an authenticator app too, the page offers the choice.
    crate::mfa::enroll(&app, &alice).await;
    b.call(json!({"op": "goto", "url": authorize(&app, &client, &redirect)}))
        .await;
    let page = b
        .call(json!({"op": "password", "username": "alice", "password": "alice-password-1", "axe": true}))
        .await;
    assert_eq!(page["title"], "Verify it's you · acme", "{page:#}");
    let page = b
        .call(json!({"op": "click", "button": "Use your authenticator app", "axe": true}))
        .await;
    assert_eq!(page["title"], "Enter your code · acme", "{page:#}");
}
