//! Logout across federation (spec section 7b), end to end with the real peers: RP-initiated
//! logout at a pool ends a session that a provider's sign-in started at the provider too
//! (SAML single logout at npm `samlify`, RP-initiated logout at npm `oidc-provider`), in
//! Chromium; a SAML IdP's own logout ends the pool's sessions it started; forged, replayed and
//! misdirected logout messages end nothing.

use gatehouse_domain::client::ClientType;
use serde_json::{Value, json};

use crate::browser::Rp;
use crate::browser_signin::{login, register, spawn_app_at_its_address};
use crate::code_flow::{Browser, hidden};
use crate::common::{ClientCreds, TestApp};
use crate::federation::{
    ALICE_AT_CORP, UPSTREAM_SECRET, admin_token, api, create_idp, idp_initiated_page, peer,
    saml_idp,
};

/// Whether `token` is active at the pool's introspection endpoint.
async fn active(app: &TestApp, client: &ClientCreds, token: &str) -> bool {
    app.introspect("acme", client, token).await["active"] == true
}

/// The steps a login went through (`sign-in`, `provider-sign-in`, ...).
fn steps(login: &Value) -> Vec<String> {
    login["pages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["step"].as_str().unwrap().to_owned())
        .collect()
}

/// The pool's `session.revoked` audit events.
async fn revoked_events(app: &TestApp, admin: &str) -> Vec<Value> {
    let events: Value = api(
        app,
        admin,
        reqwest::Method::GET,
        "/api/audit/events?action=session.revoked",
        None,
    )
    .await
    .json()
    .await
    .unwrap();
    events["events"].as_array().unwrap().clone()
}

/// Signing out at the application ends alice's session at Corp's directory too: the browser
/// passes through the IdP's single logout service (a signed LogoutRequest, a signed
/// LogoutResponse back) and arrives at the application's post-logout URI with its state; the
/// pool's tokens are dead, and signing in again asks Corp for her password again.
#[tokio::test]
async fn logout_ends_the_session_at_the_saml_directory_too() {
    let app = spawn_app_at_its_address().await;
    app.create_pool("acme").await;
    let issuer = app.issuer("acme");
    let admin = admin_token(&app, "acme").await;
    let idp = saml_idp(&issuer).await;
    create_idp(
        &app,
        &admin,
        json!({"name": "corp", "provider_type": "saml",
            "saml_metadata_url": format!("{}/metadata", idp.base)}),
    )
    .await;
    let mut rp = Rp::start().await;
    let web = register(&app, &rp, "acme", ClientType::Confidential).await;

    let mut cmd = login(&issuer, &web, "alice", ALICE_AT_CORP);
    cmd["provider"] = json!("corp");
    let signed_in = rp.ok(cmd.clone()).await;
    assert_eq!(steps(&signed_in), ["sign-in", "provider-sign-in"]);
    let access = signed_in["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(active(&app, &web, &access).await);

    let out = rp.ok(json!({"op": "logout", "client_id": web.id})).await;
    assert_eq!(out["at_post_logout_redirect"], true, "{out:#}");
    assert_eq!(out["state_ok"], true, "{out:#}");
    // Through the IdP and back: our LogoutRequest at its /slo, its LogoutResponse at ours.
    let went: Vec<&str> = out["navigations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    let at_idp = went
        .iter()
        .position(|u| u.starts_with(&format!("{}/slo?SAMLRequest=", idp.base)))
        .unwrap_or_else(|| panic!("never at the IdP's SLO: {went:#?}"));
    let back = went
        .iter()
        .position(|u| u.starts_with(&format!("{issuer}/saml2/logout?SAMLResponse=")))
        .unwrap_or_else(|| panic!("never back from the IdP: {went:#?}"));
    assert!(at_idp < back, "{went:#?}");

    // The pool's session and what it authorized ended.
    assert!(!active(&app, &web, &access).await);
    let refresh = rp.call(json!({"op": "refresh", "client_id": web.id})).await;
    assert_eq!(refresh["error"]["error"], "invalid_grant", "{refresh:#}");
    // The IdP's session ended too: signing in again shows Corp's form again.
    let again = rp.ok(cmd).await;
    assert_eq!(steps(&again), ["sign-in", "provider-sign-in"], "{again:#}");
    assert_eq!(again["claims"]["sub"], signed_in["claims"]["sub"]);
}

/// The same with an upstream OpenID provider: the browser goes to its end-session endpoint
/// with the ID token it issued as `id_token_hint`, the user confirms there with **Sign out**,
/// and the provider sends the browser back to the pool, which sends it on to the
/// application.
#[tokio::test]
async fn logout_ends_the_session_at_the_openid_provider_too() {
    let app = spawn_app_at_its_address().await;
    app.create_pool("acme").await;
    let issuer = app.issuer("acme");
    let admin = admin_token(&app, "acme").await;
    let op = peer(
        "upstream-op.mjs",
        json!({
            "clients": [{"client_id": "gatehouse", "client_secret": UPSTREAM_SECRET,
                "redirect_uris": [format!("{issuer}/oauth2/idpresponse")],
                "post_logout_redirect_uris": [format!("{issuer}/oauth2/idplogout")],
                "grant_types": ["authorization_code"], "response_types": ["code"]}],
            "users": {"alice": {"password": ALICE_AT_CORP, "claims": {
                "sub": "op-alice", "email": "alice@social.example", "email_verified": true,
                "name": "Alice from the OP", "given_name": "Alice", "family_name": "Op"}}},
        }),
    )
    .await;
    create_idp(
        &app,
        &admin,
        json!({"name": "op", "provider_type": "oidc", "issuer": op.base,
            "client_id": "gatehouse", "client_secret": UPSTREAM_SECRET,
            "scopes": ["email", "profile"]}),
    )
    .await;
    let mut rp = Rp::start().await;
    let web = register(&app, &rp, "acme", ClientType::Confidential).await;

    let mut cmd = login(&issuer, &web, "alice", ALICE_AT_CORP);
    cmd["provider"] = json!("op");
    let signed_in = rp.ok(cmd.clone()).await;
    assert_eq!(steps(&signed_in), ["sign-in", "provider-sign-in"]);
    let access = signed_in["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(active(&app, &web, &access).await);

    let out = rp.ok(json!({"op": "logout", "client_id": web.id})).await;
    // The confirmation is the OpenID provider's (the pool's needs none with the hint).
    assert_eq!(out["confirm_shown"], true, "{out:#}");
    assert!(
        out["pages"][0]["url"]
            .as_str()
            .unwrap()
            .starts_with(&op.base),
        "{out:#}"
    );
    assert_eq!(out["at_post_logout_redirect"], true, "{out:#}");
    assert_eq!(out["state_ok"], true, "{out:#}");
    let went: Vec<&str> = out["navigations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    let end_session = went
        .iter()
        .find(|u| u.starts_with(&op.base) && u.contains("id_token_hint="))
        .unwrap_or_else(|| panic!("never at the provider's end-session endpoint: {went:#?}"));
    assert!(
        end_session.contains(&format!(
            "post_logout_redirect_uri={}",
            crate::code_flow::urlencode(&format!("{issuer}/oauth2/idplogout"))
        )),
        "{end_session}"
    );
    assert!(
        went.iter()
            .any(|u| u.starts_with(&format!("{issuer}/oauth2/idplogout?"))),
        "{went:#?}"
    );

    assert!(!active(&app, &web, &access).await);
    // The provider's session ended: its form is shown again.
    let again = rp.ok(cmd).await;
    assert_eq!(steps(&again), ["sign-in", "provider-sign-in"], "{again:#}");
    assert_eq!(again["claims"]["sub"], signed_in["claims"]["sub"]);
}

/// Corp's directory signs alice out on its own (its `/logout?user=alice`): its signed
/// LogoutRequest at the pool's `/saml2/logout` ends her session there and what it authorized,
/// audited, and is answered with a signed LogoutResponse that the IdP accepts. Before that, the
/// same request with its signature broken, sent to another pool, or as a LogoutResponse
/// nobody asked for ends nothing and is a client error; another directory of the pool logging
/// out a user of the same name ends nothing of Corp's session; replayed after, it is refused.
#[tokio::test]
async fn the_directorys_own_logout_ends_the_sessions_it_started() {
    let app = spawn_app_at_its_address().await;
    app.create_pool("acme").await;
    app.create_pool("beta").await;
    let issuer = app.issuer("acme");
    let admin = admin_token(&app, "acme").await;
    let idp = saml_idp(&issuer).await;
    create_idp(
        &app,
        &admin,
        json!({"name": "corp", "provider_type": "saml",
            "saml_metadata_url": format!("{}/metadata", idp.base)}),
    )
    .await;
    // Beta knows another directory under the same name: the request is not its.
    let beta_admin = admin_token(&app, "beta").await;
    let other = saml_idp(&app.issuer("beta")).await;
    let res = app
        .http
        .post(app.pool_url("beta", "/api/user-management/identity-providers"))
        .bearer_auth(&beta_admin)
        .json(
            &json!({"data": {"type": "identity-provider", "attributes": {
            "name": "corp", "provider_type": "saml",
            "saml_metadata_url": format!("{}/metadata", other.base)}}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    let mut rp = Rp::start().await;
    let web = register(&app, &rp, "acme", ClientType::Confidential).await;
    let mut cmd = login(&issuer, &web, "alice", ALICE_AT_CORP);
    cmd["provider"] = json!("corp");
    let signed_in = rp.ok(cmd).await;
    let access = signed_in["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(active(&app, &web, &access).await);

    // The IdP's front-channel logout request, as its redirect carries it.
    let mut browser = Browser::new();
    let res = browser
        .get(&format!("{}/logout?user=alice", idp.base))
        .await;
    assert_eq!(res.status(), 302);
    let request = res.headers()["location"].to_str().unwrap().to_owned();
    let prefix = format!("{issuer}/saml2/logout?");
    assert!(request.starts_with(&prefix), "{request}");
    let query = &request[prefix.len()..];

    // Its signature broken (one character of it changed): refused, nothing ended.
    let (signed, signature) = query.split_once("&Signature=").unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let forged = format!("{prefix}{signed}&Signature={flipped}{}", &signature[1..]);
    let res = browser.get(&forged).await;
    assert_eq!(res.status(), 400);
    // Unsigned: refused.
    let res = browser.get(&format!("{prefix}{signed}")).await;
    assert_eq!(res.status(), 400);
    // Sent to another pool, whose provider of that name is another directory: refused.
    let res = browser
        .get(&format!(
            "{}?{query}",
            app.pool_url("beta", "/saml2/logout")
        ))
        .await;
    assert_eq!(res.status(), 400);
    // Garbage, and a LogoutResponse nobody is waiting for: client errors, not server ones.
    for junk in [
        "SAMLRequest=not-base64!",
        "SAMLResponse=PHg%2BPC94Pg%3D%3D&RelayState=never-sent",
        "",
    ] {
        let res = browser
            .get(&format!("{}?{junk}", app.pool_url("acme", "/saml2/logout")))
            .await;
        assert!(res.status().is_client_error(), "{junk}: {}", res.status());
    }
    let res = browser
        .get(&app.pool_url("acme", "/oauth2/idplogout?state=never-sent"))
        .await;
    assert_eq!(res.status(), 400);
    assert!(
        active(&app, &web, &access).await,
        "a refused logout ended the session"
    );

    // Another directory of the pool (signing with the same key, as two AD FS farms of one
    // company might) logs out its own alice: its request verifies as its own, and ends
    // nothing of the session Corp started.
    let corp2 = saml_idp(&issuer).await;
    create_idp(
        &app,
        &admin,
        json!({"name": "corp2", "provider_type": "saml",
            "saml_metadata_url": format!("{}/metadata", corp2.base)}),
    )
    .await;
    let mut elsewhere = Browser::new();
    idp_initiated_page(&mut elsewhere, &corp2).await;
    let res = elsewhere
        .get(&format!("{}/logout?user=alice", corp2.base))
        .await;
    assert_eq!(res.status(), 302);
    let theirs = res.headers()["location"].to_str().unwrap().to_owned();
    let res = elsewhere.get(&theirs).await;
    assert_eq!(res.status(), 303);
    let answer = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        answer.starts_with(&format!("{}/slo?SAMLResponse=", corp2.base)),
        "{answer}"
    );
    assert!(
        active(&app, &web, &access).await,
        "another provider's logout ended corp's session"
    );

    // The real request: alice's session ends, and the IdP gets a signed LogoutResponse.
    let res = browser.get(&request).await;
    assert_eq!(res.status(), 303);
    let answer = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        answer.starts_with(&format!("{}/slo?SAMLResponse=", idp.base)),
        "{answer}"
    );
    let at_idp = browser.get(&answer).await;
    let status = at_idp.status();
    let text = at_idp.text().await.unwrap();
    assert_eq!(status, 200, "the IdP refused the LogoutResponse: {text}");
    assert!(text.contains("You are signed out"), "{text}");
    assert!(!active(&app, &web, &access).await);
    let refresh = rp.call(json!({"op": "refresh", "client_id": web.id})).await;
    assert_eq!(refresh["error"]["error"], "invalid_grant", "{refresh:#}");
    let events = revoked_events(&app, &admin).await;
    assert!(
        events
            .iter()
            .any(|e| e["details"]["via"] == "identity provider logout"
                && e["details"]["provider"] == "corp"
                && e["subject"] == "corp_alice@corp.example"),
        "{events:#?}"
    );

    // Replayed: refused.
    let res = browser.get(&request).await;
    assert_eq!(res.status(), 400);
}

/// A LogoutResponse that does not verify (its signature broken on the way back) cannot keep
/// the session alive: the session here ended before the browser left, and the page says that
/// the IdP did not confirm. The genuine answer, arriving after, finds its logout spent and
/// never claims a sign-out it did not see.
#[tokio::test]
async fn a_refused_logout_answer_still_leaves_the_browser_signed_out_here() {
    let app = spawn_app_at_its_address().await;
    app.create_pool("acme").await;
    let issuer = app.issuer("acme");
    let admin = admin_token(&app, "acme").await;
    let idp = saml_idp(&issuer).await;
    create_idp(
        &app,
        &admin,
        json!({"name": "corp", "provider_type": "saml",
            "saml_metadata_url": format!("{}/metadata", idp.base)}),
    )
    .await;

    // IdP-initiated sign-in, by hand: the IdP's form, its Response posted to the pool.
    let mut browser = Browser::new();
    let page = idp_initiated_page(&mut browser, &idp).await;
    let res = browser
        .post(
            &format!("{issuer}/saml2/idpresponse"),
            &[("SAMLResponse", hidden(&page, "SAMLResponse").as_str())],
        )
        .await;
    assert_eq!(res.status(), 200);
    let sso = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap())
        .find(|c| c.starts_with("gatehouse_sso_acme="))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();

    // Logout at the pool, confirmed (no hint): the session ends and the browser goes to the
    // IdP with a signed LogoutRequest.
    let confirm = browser
        .get(&format!("{issuer}/oauth2/logout"))
        .await
        .text()
        .await
        .unwrap();
    let res = browser
        .post(
            &format!("{issuer}/oauth2/logout"),
            &[("csrf", hidden(&confirm, "csrf").as_str())],
        )
        .await;
    assert_eq!(res.status(), 303);
    let to_idp = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to_idp.starts_with(&format!("{}/slo?SAMLRequest=", idp.base)),
        "{to_idp}"
    );
    let res = browser.get(&to_idp).await;
    assert_eq!(res.status(), 302);
    let back = res.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        back.starts_with(&format!("{issuer}/saml2/logout?SAMLResponse=")),
        "{back}"
    );

    // The answer with its signature broken: the page says so, and offers nothing else.
    let (signed, signature) = back.split_once("&Signature=").unwrap();
    let flipped = if signature.starts_with('A') { "B" } else { "A" };
    let res = browser
        .get(&format!("{signed}&Signature={flipped}{}", &signature[1..]))
        .await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains("You have signed out of acme"), "{text}");
    assert!(text.contains("did not confirm"), "{text}");
    // The genuine answer, after: its logout is spent.
    let res = browser.get(&back).await;
    assert_eq!(res.status(), 400);
    let text = res.text().await.unwrap();
    assert!(!text.contains("You have signed out"), "{text}");

    // The session had ended: its cookie, presented again, names no session, so logout has
    // nothing to confirm.
    let again = app
        .http
        .get(format!("{issuer}/oauth2/logout"))
        .header("cookie", &sso)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!again.contains("name=\"csrf\""), "{again}");
    assert!(again.contains("You have signed out of acme"), "{again}");
}
