//! `/api/user-management/identity-providers`: JSON:API like app clients; the secret written,
//! never read; the checks a provider's settings pass; and the dominance rule over the users
//! linked to a provider, which a partial administrator cannot get around.

use reqwest::Method;
use serde_json::{Value, json};

use super::*;
use crate::common::assert_api_error;

pub const IDPS: &str = "/api/user-management/identity-providers";

fn oidc(name: &str) -> Value {
    json!({"data": {"type": "identity-provider", "attributes": {
        "name": name, "provider_type": "oidc", "issuer": "http://127.0.0.1:9/op",
        "client_id": "gatehouse", "client_secret": "s3cret-upstream",
        "scopes": ["email", "profile"],
        "attribute_mapping": {"name": "display_name"}}}})
}

#[tokio::test]
async fn identity_providers_speak_json_api_and_keep_their_secret() {
    let (app, _, admin) = acme().await;
    let res = app
        .http
        .post(app.pool_url("acme", IDPS))
        .bearer_auth(&admin)
        .header("content-type", "application/vnd.api+json")
        .body(oidc("corp").to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/vnd.api+json");
    let created = json_of(res, 201).await;
    let data = &created["data"];
    assert_eq!(data["type"], "identity-provider");
    assert_eq!(data["id"], "corp");
    let a = &data["attributes"];
    assert_eq!(a["provider_type"], "oidc");
    assert_eq!(a["enabled"], true);
    assert_eq!(a["client_id"], "gatehouse");
    assert_eq!(a["attribute_mapping"], json!({"name": "display_name"}));
    assert_eq!(
        a["callback_url"],
        "http://gatehouse.test/pools/acme/oauth2/idpresponse"
    );
    assert!(a.get("client_secret").is_none(), "{a}");
    assert!(!created.to_string().contains("s3cret-upstream"));

    let one = json_of(
        call(&app, Method::GET, &format!("{IDPS}/corp"), &admin, None).await,
        200,
    )
    .await;
    assert_eq!(one["data"]["attributes"]["issuer"], "http://127.0.0.1:9/op");
    let all = json_of(call(&app, Method::GET, IDPS, &admin, None).await, 200).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 1);

    // A change replaces what it names; the name and type stay.
    let changed = json_of(
        call(
            &app,
            Method::PATCH,
            &format!("{IDPS}/corp"),
            &admin,
            Some(json!({"data": {"type": "identity-provider", "id": "corp",
                "attributes": {"enabled": false, "client_secret": "rotated-secret",
                    "attribute_mapping": {"email": "mail"}}}})),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(changed["data"]["attributes"]["enabled"], false);
    assert_eq!(
        changed["data"]["attributes"]["attribute_mapping"],
        json!({"email": "mail"})
    );
    let res = call(
        &app,
        Method::PATCH,
        &format!("{IDPS}/corp"),
        &admin,
        Some(json!({"data": {"attributes": {"provider_type": "saml"}}})),
    )
    .await;
    assert_api_error(res, 400).await;

    // Creating, changing and deleting are audited.
    let events = json_of(
        call(
            &app,
            Method::GET,
            "/api/audit/events?action=identity_provider.updated",
            &admin,
            None,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(events["events"].as_array().unwrap().len(), 1, "{events}");

    assert_eq!(
        call(&app, Method::DELETE, &format!("{IDPS}/corp"), &admin, None)
            .await
            .status(),
        204
    );
    let res = call(&app, Method::GET, &format!("{IDPS}/corp"), &admin, None).await;
    assert_api_error(res, 404).await;
    let res = call(&app, Method::DELETE, &format!("{IDPS}/corp"), &admin, None).await;
    assert_api_error(res, 404).await;
}

#[tokio::test]
async fn a_providers_settings_are_checked() {
    let (app, _, admin) = acme().await;
    let create = |body: Value| call(&app, Method::POST, IDPS, &admin, Some(body));
    let with = |changes: Value| {
        let mut body = oidc("corp");
        for (k, v) in changes.as_object().unwrap() {
            body["data"]["attributes"][k] = v.clone();
        }
        body
    };
    for (bad, status) in [
        // A directory never grants the pool's roles.
        (with(json!({"attribute_mapping": {"roles": "groups"}})), 400),
        (with(json!({"attribute_mapping": {"password": "x"}})), 400),
        (with(json!({"name": "staff"})), 400),
        (with(json!({"name": "has space"})), 400),
        (with(json!({"provider_type": "ldap"})), 400),
        (with(json!({"client_secret": null})), 400),
        (with(json!({"issuer": null})), 400),
        // Outbound calls reach private addresses only when outbound.allow lists them.
        (with(json!({"issuer": "https://10.0.0.1/op"})), 400),
        (
            with(json!({"token_endpoint": "https://169.254.169.254/latest"})),
            400,
        ),
        (with(json!({"token_endpoint": "file:///etc/passwd"})), 400),
        (
            with(json!({"authorization_endpoint": "javascript:alert(1)"})),
            400,
        ),
        (with(json!({"saml_metadata": "<x/>"})), 400),
        (with(json!({"unknown": 1})), 400),
        (
            json!({"data": {"type": "app-client", "attributes": {"name": "x"}}}),
            409,
        ),
    ] {
        let res = create(bad.clone()).await;
        assert_eq!(res.status().as_u16(), status, "{bad}");
    }
    assert_eq!(create(oidc("corp")).await.status(), 201);
    assert_api_error(create(oidc("corp")).await, 409).await;
    // A preset needs no issuer; Google's is known.
    let google = json!({"data": {"attributes": {"name": "Google", "provider_type": "google",
        "client_id": "g", "client_secret": "gs"}}});
    let res = json_of(create(google).await, 201).await;
    assert_eq!(
        res["data"]["attributes"]["issuer"],
        "https://accounts.google.com"
    );
}

#[tokio::test]
async fn link_to_provider_needs_the_provider() {
    let (app, _, admin) = acme().await;
    let path = format!("{USERS}/alice/actions/link-to-provider");
    let link = |provider: &str| {
        call(
            &app,
            Method::POST,
            &path,
            &admin,
            Some(json!({"provider_name": provider, "provider_user_id": "42"})),
        )
    };
    assert_api_error(link("corp").await, 400).await;
    app.create_oidc_provider("acme", "corp", "http://127.0.0.1:9/op")
        .await;
    assert_eq!(link("corp").await.status(), 204);
    // Deleting the provider deletes the link: the identity can be linked again after.
    assert_eq!(
        call(&app, Method::DELETE, &format!("{IDPS}/corp"), &admin, None)
            .await
            .status(),
        204
    );
    app.create_oidc_provider("acme", "corp", "http://127.0.0.1:9/op")
        .await;
    assert_eq!(link("corp").await.status(), 204);
}

/// A partial administrator who may manage identity providers and link users cannot use a
/// provider to become an administrator: not by repointing or deleting the provider an
/// administrator is linked to, not by linking the administrator to a provider of its own,
/// and not by mapping upstream groups into roles.
#[tokio::test]
async fn a_provider_cannot_be_turned_against_the_users_linked_to_it() {
    let (app, client, admin) = acme().await;
    app.create_user(
        "acme",
        "idpadmin",
        &[
            "identity-provider:Create",
            "identity-provider:Retrieve",
            "identity-provider:Update",
            "identity-provider:Delete",
            "user:LinkUserToIdentityProvider",
        ],
        "idpadmin-password-1",
    )
    .await;
    let partial = app
        .sign_in("acme", &client, "idpadmin", "idpadmin-password-1")
        .await;
    app.create_oidc_provider("acme", "corp", "http://127.0.0.1:9/op")
        .await;
    // The administrator signs in through corp.
    assert_eq!(
        call(
            &app,
            Method::POST,
            &format!("{USERS}/ada/actions/link-to-provider"),
            &admin,
            Some(json!({"provider_name": "corp", "provider_user_id": "ada-at-corp"})),
        )
        .await
        .status(),
        204
    );

    // Repointing corp at an issuer the partial administrator controls would let it sign in
    // as ada: refused, as is every other change and the deletion.
    for change in [
        json!({"issuer": "http://127.0.0.1:10/evil"}),
        json!({"client_secret": "mine"}),
        json!({"token_endpoint": "http://127.0.0.1:10/token"}),
        json!({"enabled": false}),
    ] {
        let res = call(
            &app,
            Method::PATCH,
            &format!("{IDPS}/corp"),
            &partial,
            Some(json!({"data": {"attributes": change}})),
        )
        .await;
        let body = assert_api_error(res, 403).await;
        assert!(body.to_string().contains("linked"), "{body}");
    }
    let res = call(
        &app,
        Method::DELETE,
        &format!("{IDPS}/corp"),
        &partial,
        None,
    )
    .await;
    assert_api_error(res, 403).await;

    // Its own provider it manages freely, but it cannot link the administrator to it.
    let res = call(&app, Method::POST, IDPS, &partial, Some(oidc("mine"))).await;
    assert_eq!(res.status(), 201);
    let res = call(
        &app,
        Method::POST,
        &format!("{USERS}/ada/actions/link-to-provider"),
        &partial,
        Some(json!({"provider_name": "mine", "provider_user_id": "me"})),
    )
    .await;
    assert_api_error(res, 403).await;
    let res = call(
        &app,
        Method::PATCH,
        &format!("{IDPS}/mine"),
        &partial,
        Some(json!({"data": {"attributes": {"attribute_mapping": {"roles": "groups"}}}})),
    )
    .await;
    assert_api_error(res, 400).await;
    // The administrator, who holds everything, changes corp.
    let res = call(
        &app,
        Method::PATCH,
        &format!("{IDPS}/corp"),
        &admin,
        Some(json!({"data": {"attributes": {"enabled": false}}})),
    )
    .await;
    assert_eq!(res.status(), 200);
    // Reading providers needs its permission.
    let alice = app
        .sign_in("acme", &client, "alice", "alice-password-1")
        .await;
    assert_api_error(call(&app, Method::GET, IDPS, &alice, None).await, 403).await;
}
